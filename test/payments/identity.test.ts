// Vectors from ../shared/spec/livepeer-pm.md §7.2 (Hardhat account #0, a public test key).
import { keccak256, recoverMessageAddress, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { flattenSegment, segmentCredentials } from '../../src/payments/credentials.ts';
import { accountIdentity, offchainIdentity } from '../../src/payments/identity.ts';
import { decodeMessage } from '../../src/wire/lp-rpc.ts';

const TEST_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const EMPTY_HASH = '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470';

describe('gateway identity', () => {
  const identity = accountIdentity(privateKeyToAccount(TEST_KEY));

  it('signs GetOrchestrator over keccak256 of the checksummed address string (EIP-191)', async () => {
    expect(identity.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
    const sig = toHex(await identity.signOrchestratorRequest());
    // go-livepeer: bcast.Sign([]byte(addr.Hex())) = personal_sign(keccak256(utf8 of the EIP-55 string)),
    // checked by VerifySig(addr, keccak256(addr.Hex()), sig). The spec's §7.2 vector hashed the
    // 20 address bytes instead (its keccak is 0xe9707d0e…), which an orchestrator would reject.
    const message = { raw: keccak256(stringToBytes('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')) };
    expect(await recoverMessageAddress({ message, signature: sig })).toBe(identity.address);
    expect(sig).toBe(
      '0x47d66008c2c5b0671b8e7b43b62245ae9c4ba5f6ff7e94328b68eb45090cb1080815dec67a20bdec15ce794c9ce271fa8e6552d6b0976ab7a0b92d5516b32ef31c',
    );
    const lowercase = { raw: keccak256(stringToBytes('0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266')) };
    expect(await recoverMessageAddress({ message: lowercase, signature: sig })).not.toBe(identity.address);
  });

  it('signs segment credentials as go-livepeer does', async () => {
    const flat = flattenSegment('a1b2c3d4', 0n, Buffer.from(EMPTY_HASH.slice(2), 'hex'));
    expect(toHex(flat)).toBe(
      '0x61316232633364340000000000000000000000000000000000000000000000000000000000000000c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
    expect(toHex(await identity.signHashOf(flat))).toBe(
      '0xfb4b2a62db704c0bff485b11c8dde85e1767509de100c94a9c476be81ad54d2344c0857c49fb1ec18b5ad09cf7f511cb6ef5012eef4d5089c3d2b8774e7ee3661c',
    );
    const seq7 = flattenSegment('a1b2c3d4', 7n, Buffer.from(EMPTY_HASH.slice(2), 'hex'));
    expect(toHex(await identity.signHashOf(seq7))).toBe(
      '0x52b3ae679ab171ede8805f0685797eeefd9c41a48a39b1f0ac6158527bbec41303771ad81aa3bc1d36da7ea190255c6fc033ee5ec1ba2522818116227eac45731b',
    );
  });

  it('off-chain: zero address and empty signatures, auth token carried in Livepeer-Segment', async () => {
    expect(offchainIdentity.address).toBe('0x0000000000000000000000000000000000000000');
    expect((await offchainIdentity.signOrchestratorRequest()).length).toBe(0);
    const authToken = { token: new Uint8Array([1, 2, 3]), sessionId: 'sess', expiration: 1700000000n };
    const header = await segmentCredentials({ authToken }, offchainIdentity, { manifestId: 'm1' });
    const seg = decodeMessage('SegData', Buffer.from(header, 'base64'));
    expect(seg.authToken).toEqual(authToken);
    expect(Buffer.from(seg.manifestId ?? []).toString()).toBe('m1');
    expect(seg.sig).toBeUndefined();
  });
});
