// `npm run orchestrator` on chain: the local orchestrator as its own process with a keystore
// account, against ganache with our contract doubles. Its ticket params name the account as the
// recipient and follow the chain's L1 block and round; it refuses a payment that is not for it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Hex, hexToBigInt, keccak256, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { accountIdentity } from '../../src/payments/identity.ts';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type LocalChain, startLocalChain } from '../helpers/local-chain.ts';
import { type LocalOrchestratorProcess, spawnLocalOrchestrator } from '../helpers/orchestrator-process.ts';

const PASSWORD = 'orchestrator test';
const ROUND_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';

let lc: LocalChain;
let orch: LocalOrchestratorProcess | undefined;

beforeAll(async () => {
  lc = await startLocalChain();
  const admin = lc.accounts[0]!;
  await lc.send(admin, 'RoundsManager', 'setRounds', [12n, 12n]);
  await lc.send(admin, 'RoundsManager', 'setBlockHashForRound', [12n, ROUND_HASH]);
  await lc.send(admin, 'RoundsManager', 'setBlockNum', [7000n]);
}, 30_000);

afterAll(async () => {
  await orch?.kill();
  await lc?.close();
});

describe('npm run orchestrator -network arbitrum-one-mainnet', () => {
  it('takes tickets for its keystore account, its params on the chain clock', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lp-orch-onchain-'));
    const keyFile = join(dir, 'orchestrator.json');
    // test/helpers/local-chain.ts derives account i's key from this string.
    const orchKey = keccak256(stringToBytes('lp-gateway test account 2'));
    const orchAccount = lc.accounts[2]!;
    expect(privateKeyToAccount(orchKey).address).toBe(orchAccount.address);
    writeFileSync(keyFile, JSON.stringify(await encryptKeystore(orchKey, PASSWORD, { n: 1024 })));
    orch = await spawnLocalOrchestrator({
      models: ['passthrough'],
      pricePerUnit: 1n,
      args: [
        ...['-network', 'arbitrum-one-mainnet', '-ethUrl', lc.url, '-ethController', lc.controller],
        ...['-ethKeystorePath', keyFile, '-ethPassword', PASSWORD, '-ticketEV', '1000000'],
        ...['--chainId', String(lc.chainId), '--aiServiceRegistry', lc.addresses.ServiceRegistry],
      ],
    });
    const gateway = lc.accounts[0]!;
    const info = await getOrchestrator(orch.url, { identity: accountIdentity(gateway), timeoutMs: 5000 });
    const tp = info.ticketParams!;
    expect(toHex(tp.recipient!).toLowerCase()).toBe(orchAccount.address.toLowerCase());
    expect(toHex(info.address!).toLowerCase()).toBe(orchAccount.address.toLowerCase());
    expect(hexToBigInt(toHex(tp.expirationBlock!))).toBe(7040n);
    expect(tp.expirationParams?.creationRound).toBe(12n);
    expect(toHex(tp.expirationParams!.creationRoundBlockHash!)).toBe(ROUND_HASH);
    expect(info.priceInfo).toMatchObject({ pricePerUnit: 1n });

    // The chain moves on: new params follow within the clock's period (5 s).
    await lc.send(gateway, 'RoundsManager', 'setBlockNum', [7100n]);
    const deadline = Date.now() + 8000;
    let expiration = 0n;
    while (Date.now() < deadline && expiration !== 7140n) {
      await new Promise((r) => setTimeout(r, 250));
      const again = await getOrchestrator(orch.url, { identity: accountIdentity(gateway), timeoutMs: 5000 });
      expiration = hexToBigInt(toHex(again.ticketParams!.expirationBlock!));
    }
    expect(expiration).toBe(7140n);
  }, 40_000);
});
