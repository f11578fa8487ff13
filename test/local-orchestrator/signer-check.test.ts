// The local orchestrator's fast signature check (src/local-orchestrator/signer-check.ts) always
// gives recovery's verdict: for good signatures of a known sender, a flipped v, another key's
// signature, and tampered r or s.
import { type Hex, keccak256, recoverMessageAddress, stringToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { SignerCheck } from '../../src/local-orchestrator/signer-check.ts';

const alice = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
const bob = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
const hashOf = (i: number): Hex => keccak256(stringToBytes(`ticket ${i}`));
const sign = (who: typeof alice, hash: Hex) => who.signMessage({ message: { raw: hash } });

/** What recovery says: the address, or 'throws'. */
async function reference(hash: Hex, sig: Hex): Promise<string> {
  return recoverMessageAddress({ message: { raw: hash }, signature: sig }).catch(() => 'throws');
}
async function fast(check: SignerCheck, expected: Hex, hash: Hex, sig: Hex): Promise<string> {
  return check.signer(expected, hash, sig).catch(() => 'throws');
}

const replace = (sig: Hex, from: number, to: number, hex: string): Hex =>
  `${sig.slice(0, from)}${hex}${sig.slice(to)}` as Hex;

describe('SignerCheck', () => {
  it("names the signer of a known sender's good signatures, as recovery does", async () => {
    const check = new SignerCheck();
    for (let i = 0; i < 12; i++) {
      const sig = await sign(alice, hashOf(i));
      expect(await fast(check, alice.address, hashOf(i), sig)).toBe(alice.address);
    }
    // Only the first was recovered; the rest were checked against the kept key.
    expect(check.recoveries).toBe(1);
  });

  it('gives recovery’s answer for a flipped v, another key, and tampered r or s', async () => {
    const check = new SignerCheck();
    await check.signer(alice.address, hashOf(0), await sign(alice, hashOf(0))); // alice is known now
    const cases: [string, Hex, Hex][] = [];
    for (let i = 1; i <= 4; i++) {
      const hash = hashOf(i);
      const good = await sign(alice, hash);
      const v = good.slice(130);
      cases.push(
        ['flipped v', hash, replace(good, 130, 132, v === '1b' ? '1c' : '1b')],
        ["bob's signature", hash, await sign(bob, hash)],
        [
          'r + 1',
          hash,
          replace(good, 2, 66, (BigInt(`0x${good.slice(2, 66)}`) + 1n).toString(16).padStart(64, '0')),
        ],
        [
          's + 1',
          hash,
          replace(good, 66, 130, (BigInt(`0x${good.slice(66, 130)}`) + 1n).toString(16).padStart(64, '0')),
        ],
        ['another hash', hashOf(i + 100), good],
        ['r = 0', hash, replace(good, 2, 66, '0'.repeat(64))],
      );
    }
    for (const [what, hash, sig] of cases) {
      const want = await reference(hash, sig);
      expect(want, what).not.toBe(alice.address);
      expect(await fast(check, alice.address, hash, sig), what).toBe(want);
    }
  });
});
