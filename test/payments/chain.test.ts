import { parseEther, zeroHash } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainError, contractId, LivepeerChain, redactUrl } from '../../src/payments/chain.ts';
import { balance, fundDepositAndReserve } from '../../src/payments/funding.ts';
import { type LocalChain, startLocalChain } from '../helpers/local-chain.ts';

let lc: LocalChain;
let chain: LivepeerChain;

const connect = (extra: Partial<Parameters<typeof LivepeerChain.connect>[0]> = {}) =>
  LivepeerChain.connect({
    ethUrl: lc.url,
    controller: lc.controller,
    expectedChainId: lc.chainId,
    aiServiceRegistry: lc.addresses.ServiceRegistry,
    ...extra,
  });

beforeAll(async () => {
  lc = await startLocalChain();
  chain = await connect({ senderInfoCacheMs: 0 });
});

afterAll(async () => {
  await lc?.close();
});

async function rejection(p: Promise<unknown>): Promise<ChainError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ChainError);
  return err as ChainError;
}

describe('LivepeerChain.connect', () => {
  it('resolves the contracts through the Controller', () => {
    expect(contractId('TicketBroker')).toBe(
      '0xbd1aa3e8d2464256d7fd3dcf645c16418d5d8c51d971f1ad7d57e7b1b5eee239',
    );
    expect(chain.chainId).toBe(lc.chainId);
    expect(chain.addresses).toEqual({
      controller: lc.controller,
      ticketBroker: lc.addresses.TicketBroker,
      bondingManager: lc.addresses.BondingManager,
      roundsManager: lc.addresses.RoundsManager,
      aiServiceRegistry: lc.addresses.ServiceRegistry,
    });
  });

  it('refuses the wrong chain id in one line', async () => {
    const err = await rejection(connect({ expectedChainId: undefined }));
    expect(err.code).toBe('wrong-chain');
    expect(err.message).toBe(
      `Ethereum RPC ${lc.url} serves chain id ${lc.chainId}, expected 42161 (Arbitrum One)`,
    );
  });

  it('names an unreachable RPC in one line', async () => {
    const err = await rejection(
      LivepeerChain.connect({ ethUrl: 'http://127.0.0.1:9/v2/secret-key', timeoutMs: 2000 }),
    );
    expect(err.code).toBe('unreachable');
    expect(err.message).toMatch(/^Ethereum RPC http:\/\/127\.0\.0\.1:9\/… is unreachable: \S+/);
    expect(err.message).not.toContain('secret-key');
    expect(err.message).not.toContain('\n');
  });

  it('refuses a Controller without code, and a name the Controller does not know', async () => {
    const noCode = await rejection(connect({ controller: lc.accounts[1]!.address }));
    expect(noCode.code).toBe('missing-contract');
    expect(noCode.message).toBe(
      `no Controller contract at ${lc.accounts[1]!.address} on chain ${lc.chainId}`,
    );
    // Unregister TicketBroker (getContract then returns 0x0), and restore it afterwards.
    await lc.send(lc.accounts[0]!, 'Controller', 'setContract', [
      contractId('TicketBroker'),
      '0x0000000000000000000000000000000000000000',
    ]);
    try {
      const missing = await rejection(connect());
      expect(missing.code).toBe('missing-contract');
      expect(missing.message).toBe(
        `Controller ${lc.controller} on chain ${lc.chainId} has no TicketBroker (getContract returned 0x0)`,
      );
    } finally {
      await lc.send(lc.accounts[0]!, 'Controller', 'setContract', [
        contractId('TicketBroker'),
        lc.addresses.TicketBroker,
      ]);
    }
  });

  it('reads over ws:// too', async () => {
    const ws = await connect({ ethUrl: lc.url.replace('http://', 'ws://') });
    try {
      expect(ws.addresses.ticketBroker).toBe(lc.addresses.TicketBroker);
      expect(typeof (await ws.currentRound())).toBe('bigint');
    } finally {
      await ws.close();
    }
  });

  it('redacts URL paths (API keys)', () => {
    expect(redactUrl('https://arb-mainnet.g.alchemy.com/v2/KEY')).toBe('https://arb-mainnet.g.alchemy.com/…');
    expect(redactUrl('wss://user:pw@node.example:8546')).toBe('wss://node.example:8546');
  });
});

describe('rounds and the L1 block', () => {
  it('reads currentRound, lastInitializedRound, blockHashForRound and blockNum', async () => {
    const hash = `0x${'ab'.repeat(32)}` as const;
    await lc.send(lc.accounts[0]!, 'RoundsManager', 'setRounds', [4012n, 4011n]);
    await lc.send(lc.accounts[0]!, 'RoundsManager', 'setBlockHashForRound', [4011n, hash]);
    expect(await chain.currentRound()).toBe(4012n);
    expect(await chain.lastInitializedRound()).toBe(4011n);
    expect(await chain.blockHashForRound(4011n)).toBe(hash);
    expect(await chain.blockHashForRound(1n)).toBe(zeroHash);

    // Unpinned, blockNum() is block.number of the call.
    const height = await lc.publicClient.getBlockNumber();
    const l1 = await chain.l1BlockNumber();
    expect(l1 >= height && l1 <= height + 1n).toBe(true);
    await lc.send(lc.accounts[0]!, 'RoundsManager', 'setBlockNum', [21_000_000n]);
    expect(await chain.l1BlockNumber()).toBe(21_000_000n);
  });
});

describe('sender info and funding', () => {
  it('reads deposit and reserve after fundDepositAndReserve', async () => {
    const sender = lc.accounts[0]!;
    expect(await chain.senderInfo(lc.accounts[2]!.address)).toEqual({
      deposit: 0n,
      withdrawRound: 0n,
      reserve: 0n,
      claimedInCurrentRound: 0n,
    });
    const before = await chain.ethBalance(sender.address);
    const res = await fundDepositAndReserve(chain, sender, parseEther('0.5'), parseEther('0.25'));
    expect(res.txHash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(res.balance).toEqual({
      address: sender.address,
      deposit: parseEther('0.5'),
      reserve: parseEther('0.25'),
      withdrawRound: 0n,
      eth: before - parseEther('0.75') - res.fee,
    });
    expect(await chain.senderInfo(sender.address)).toMatchObject({
      deposit: parseEther('0.5'),
      reserve: parseEther('0.25'),
    });
    // Funding adds up.
    await fundDepositAndReserve(chain, sender, 1n, 2n);
    expect(await balance(chain, sender.address)).toMatchObject({
      deposit: parseEther('0.5') + 1n,
      reserve: parseEther('0.25') + 2n,
    });
  });

  it('shows withdrawRound once an unlock is in progress', async () => {
    const who = lc.accounts[3]!;
    await fundDepositAndReserve(chain, who, 10n, 10n);
    await lc.send(lc.accounts[0]!, 'TicketBroker', 'setCurrentRound', [100n]);
    await lc.send(who, 'TicketBroker', 'unlock');
    expect(await chain.senderInfo(who.address)).toMatchObject({
      withdrawRound: 102n,
      deposit: 10n,
      reserve: 10n,
    });
  });

  it('surfaces the msg.value mismatch revert as one clear line', async () => {
    const err = await rejection(fundDepositAndReserve(chain, lc.accounts[1]!, 10n, 20n, { value: 29n }));
    expect(err.code).toBe('reverted');
    expect(err.message).toBe(
      'TicketBroker.fundDepositAndReserve reverted: msg.value does not equal sum of deposit amount and reserve amount',
    );
  });

  it('refuses to fund from an account without ETH', async () => {
    const broke = lc.accounts[5]!;
    const err = await rejection(fundDepositAndReserve(chain, broke, 1n, 1n));
    expect(err.code).toBe('insufficient-funds');
    expect(err.message).toBe(
      `insufficient funds: ${broke.address} has 0 ETH, funding needs 0.000000000000000002 ETH plus gas`,
    );
  });

  it('caches senderInfo for the configured time', async () => {
    const cached = await connect({ senderInfoCacheMs: 60_000 });
    const who = lc.accounts[4]!;
    expect((await cached.senderInfo(who.address)).deposit).toBe(0n);
    await lc.send(who, 'TicketBroker', 'fundDeposit', [], 7n);
    expect((await cached.senderInfo(who.address)).deposit).toBe(0n);
    cached.invalidateSenderInfo(who.address);
    expect((await cached.senderInfo(who.address)).deposit).toBe(7n);
  });
});

describe('transcoder pool', () => {
  it('walks the pool with stakes, active flags and AI service URIs', async () => {
    const [, a, b, c] = lc.accounts;
    await lc.send(lc.accounts[0]!, 'BondingManager', 'setTranscoder', [a!.address, 3000n, true]);
    await lc.send(lc.accounts[0]!, 'BondingManager', 'setTranscoder', [b!.address, 2000n, false]);
    await lc.send(lc.accounts[0]!, 'BondingManager', 'setTranscoder', [c!.address, 5000n, true]);
    await lc.send(a!, 'ServiceRegistry', 'setServiceURI', ['https://orch-a.example:8935']);
    await lc.send(b!, 'ServiceRegistry', 'setServiceURI', ['https://orch-b.example:8935']);
    await lc.send(c!, 'ServiceRegistry', 'setServiceURI', ['https://orch-c.example']);
    expect(await chain.transcoderPool()).toEqual([
      { address: a!.address, stake: 3000n, active: true, serviceUri: 'https://orch-a.example:8935' },
      { address: b!.address, stake: 2000n, active: false, serviceUri: 'https://orch-b.example:8935' },
      { address: c!.address, stake: 5000n, active: true, serviceUri: 'https://orch-c.example' },
    ]);
    const serial = await connect({ poolConcurrency: 1 });
    expect((await serial.transcoderPool()).map((t) => t.stake)).toEqual([3000n, 2000n, 5000n]);
  });
});
