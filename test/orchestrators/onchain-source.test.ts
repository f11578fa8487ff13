import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OnChainSource, selectActive } from '../../src/orchestrators/onchain-source.ts';
import { ChainError, LivepeerChain } from '../../src/payments/chain.ts';
import { type LocalChain, startLocalChain } from '../helpers/local-chain.ts';

let lc: LocalChain;
let chain: LivepeerChain;

function capture() {
  const lines: string[] = [];
  return { lines, logger: pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) }) };
}

const connect = (l: LocalChain) =>
  LivepeerChain.connect({
    ethUrl: l.url,
    controller: l.controller,
    expectedChainId: l.chainId,
    aiServiceRegistry: l.addresses.ServiceRegistry,
    timeoutMs: 2000,
  });

beforeAll(async () => {
  lc = await startLocalChain();
  chain = await connect(lc);
  const [admin, a, b, c, d] = lc.accounts;
  await lc.send(admin!, 'BondingManager', 'setTranscoder', [a!.address, 3000n, true]);
  await lc.send(admin!, 'BondingManager', 'setTranscoder', [b!.address, 9000n, false]);
  await lc.send(admin!, 'BondingManager', 'setTranscoder', [c!.address, 5000n, true]);
  await lc.send(admin!, 'BondingManager', 'setTranscoder', [d!.address, 100n, true]);
  await lc.send(a!, 'ServiceRegistry', 'setServiceURI', ['https://orch-a.example:8935']);
  await lc.send(b!, 'ServiceRegistry', 'setServiceURI', ['https://orch-b.example:8935']);
  await lc.send(c!, 'ServiceRegistry', 'setServiceURI', ['orch-c.example:443']);
  // d is active but publishes no AI service URI.
});

afterAll(async () => {
  await lc?.close();
});

describe('OnChainSource', () => {
  it('lists the active orchestrators with a service URI and their stake, most stake first', async () => {
    const { logger, lines } = capture();
    const source = new OnChainSource({ chain, logger, refreshIntervalMs: 60_000 });
    expect(source.name).toBe('onchain');
    expect(source.refreshIntervalMs).toBe(60_000);
    expect(await source.discover()).toEqual([
      { url: 'https://orch-c.example:443', stake: 5000n },
      { url: 'https://orch-a.example:8935', stake: 3000n },
    ]);
    expect(lines).toEqual([]);
  });

  it('sees changes on the next discover()', async () => {
    const [admin, , b] = lc.accounts;
    await lc.send(admin!, 'BondingManager', 'setTranscoder', [b!.address, 9000n, true]);
    try {
      const source = new OnChainSource({ chain, logger: capture().logger });
      expect(source.refreshIntervalMs).toBe(600_000);
      expect((await source.discover()).map((o) => o.url)).toEqual([
        'https://orch-b.example:8935',
        'https://orch-c.example:443',
        'https://orch-a.example:8935',
      ]);
    } finally {
      await lc.send(admin!, 'BondingManager', 'setTranscoder', [b!.address, 9000n, false]);
    }
  });

  it('rejects with one line when the chain cannot be read', async () => {
    const other = await startLocalChain();
    const dead = await connect(other);
    await other.close();
    const source = new OnChainSource({ chain: dead, logger: capture().logger });
    const err = (await source.discover().catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(
      new RegExp(
        `^reading the transcoder pool failed: Ethereum RPC ${other.url} is unreachable \\(BondingManager`,
      ),
    );
    expect(err.message).not.toContain('\n');
    expect((err.cause ?? err) instanceof Error).toBe(true);
    await expect(dead.transcoderPool()).rejects.toBeInstanceOf(ChainError);
  });
});

describe('selectActive', () => {
  const addr = (n: number) => `0x${n.toString(16).padStart(40, '0')}` as const;

  it('names unusable URIs, keeps the larger stake for a shared URL', () => {
    const { orchestrators, skipped } = selectActive([
      { address: addr(1), stake: 10n, active: true, serviceUri: 'http://plain.example:8935' },
      { address: addr(2), stake: 20n, active: true, serviceUri: 'https://same.example:8935' },
      { address: addr(3), stake: 30n, active: true, serviceUri: 'https://same.example:8935/' },
      { address: addr(4), stake: 40n, active: false, serviceUri: 'not a url' },
      { address: addr(5), stake: 50n, active: true, serviceUri: '  ' },
    ]);
    expect(orchestrators).toEqual([{ url: 'https://same.example:8935', stake: 30n }]);
    expect(skipped).toEqual([
      `${addr(1)} service URI "http://plain.example:8935" must use https:// (orchestrators always serve TLS); skipped`,
    ]);
  });

  it('refuses an active pool where no URI is usable, and logs the skipped ones', async () => {
    const { logger, lines } = capture();
    const source = new OnChainSource({
      logger,
      chain: {
        transcoderPool: async () => [
          { address: addr(1), stake: 1n, active: true, serviceUri: 'ftp://x.example:1' },
        ],
      },
    });
    await expect(source.discover()).rejects.toThrow(
      'no active orchestrator in the transcoder pool publishes a usable service URI',
    );
    expect(lines.join('')).toContain('on-chain orchestrator:');
  });
});
