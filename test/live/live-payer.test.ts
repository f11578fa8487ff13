// The live payer against a paid local orchestrator, with its clocks in the test's hands: billing on
// input segments only, refreshing stale params and an ageing auth token before paying, and what a
// payment that does not get through leads to.
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blameOf, type Failure } from '../../src/live/cause.ts';
import {
  LIVE_START_PIXELS,
  LivePayer,
  LivePayments,
  newTally,
  type PaymentTally,
  retryStartPixels,
} from '../../src/live/live-payer.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { selfSignedCertificate } from '../../src/local-orchestrator/tls.ts';
import { liveJobCapabilities } from '../../src/orchestrators/capabilities.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { ChainError } from '../../src/payments/chain.ts';
import { LiveBillingClock } from '../../src/payments/live-clock.ts';
import { cachedSenderState } from '../../src/payments/onchain-setup.ts';
import {
  Capability,
  decodeMessage,
  encodeMessage,
  hasCapability,
  type OrchestratorInfo,
} from '../../src/wire/lp-rpc.ts';

const logger = pino({ level: 'silent' });
/** Warnings the payers logged (JSON lines). */
const warnings: string[] = [];
const payerLogger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
const account = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const ROUND = { number: 10n, blockHash: `0x${'41'.repeat(32)}` as Hex };
// At 1 wei per pixel one ticket pays one second of 720p30.
const EV = 27_648_000n;

let orch: LocalOrchestrator;
let orchL1 = 1000n;
let deadUrl: string;
beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    payments: { recipient: RECIPIENT, ticketEV: EV, faceValue: EV * 4n, l1Block: () => orchL1, round: ROUND },
  });
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  deadUrl = `https://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
});
afterAll(async () => {
  await orch?.close();
});

interface Harness {
  payer: LivePayer;
  tally: PaymentTally;
  errors: Failure[];
  refreshes: () => number;
  info: OrchestratorInfo;
  /** Advance the monotonic clock and send an input segment; resolves when its payment is done. */
  segmentAfter(ms: number): Promise<boolean>;
  setWall(ms: number): void;
  setGatewayL1(block: bigint): void;
}

let mids = 0;
async function harness(opts: { transcoder?: string; prepaidPixels?: bigint } = {}): Promise<Harness> {
  let gatewayL1 = 1000n;
  const payments = new LivePayments({
    account,
    maxTicketEV: 10n ** 15n,
    maxTotalEV: 10n ** 16n,
    intervalMs: 1000,
    lastSeenL1Block: () => gatewayL1,
  });
  const capabilities = liveJobCapabilities('passthrough');
  const ask = () => getOrchestrator(orch.url, { identity: payments.identity, timeoutMs: 3000, capabilities });
  const info = await ask();
  const tally = newTally();
  const errors: Failure[] = [];
  let refreshes = 0;
  let mono = 0;
  let wall = Date.now();
  const payer = new LivePayer({
    job: payments.openJob(orch.url, info, { capabilities }),
    intervalMs: payments.intervalMs,
    transcoder: opts.transcoder ?? orch.url,
    manifestId: `payer-test-${++mids}`,
    tally,
    logger: payerLogger,
    prepaidPixels: opts.prepaidPixels,
    onError: (failure) => errors.push(failure),
    refresh: async () => {
      refreshes++;
      return ask();
    },
    now: () => wall,
    monotonic: () => mono,
  });
  return {
    payer,
    tally,
    errors,
    info,
    refreshes: () => refreshes,
    async segmentAfter(ms) {
      mono += ms;
      const paying = payer.onInputSegment();
      if (!paying) return false;
      await paying;
      return true;
    },
    setWall: (ms) => {
      wall = ms;
    },
    setGatewayL1: (block) => {
      gatewayL1 = block;
    },
  };
}

describe('LivePayer', () => {
  it('pays only when an input segment arrives after the interval, for the whole gap', async () => {
    const h = await harness();
    expect(await h.segmentAfter(500)).toBe(false); // within the interval: nothing
    expect(h.tally.tickets).toBe(0);
    // No segments for 4.5 s, then one: it bills the 5 s since the start, as go-livepeer does.
    expect(await h.segmentAfter(4500)).toBe(true);
    expect(h.tally.tickets).toBe(5);
    expect(BigInt(h.tally.paid.num / h.tally.paid.den)).toBe(EV * 5n);
    expect(await h.segmentAfter(400)).toBe(false);
    // 1.5 s: two tickets, the half second over stays as credit for the next payment.
    expect(await h.segmentAfter(1100)).toBe(true);
    expect(h.tally.tickets).toBe(7);
    expect(await h.segmentAfter(1500)).toBe(true);
    expect(h.tally.tickets).toBe(8);
    expect(h.errors).toEqual([]);
    expect(h.refreshes()).toBe(0);
  });

  it('refreshes ticket params that its own L1 block says expired, once, before paying', async () => {
    const h = await harness();
    await h.segmentAfter(2000);
    expect(h.refreshes()).toBe(0);
    // The chain moves on 100 blocks: the params the last reply carried (expiring at 1040) are
    // stale to the gateway before any orchestrator says so.
    orchL1 = 1100n;
    h.setGatewayL1(1100n);
    const warned = warnings.length;
    try {
      await h.segmentAfter(2000);
      expect(h.refreshes()).toBe(1);
      // Refreshed before paying: no payment was refused on the way.
      expect(warnings.slice(warned).filter((w) => w.includes('live payment failed'))).toEqual([]);
      expect(h.tally.lastError).toBeNull();
      expect(h.tally.tickets).toBe(4);
      expect(h.errors).toEqual([]);
      // Fresh params (expiring at 1140) need no refresh.
      await h.segmentAfter(2000);
      expect(h.refreshes()).toBe(1);
    } finally {
      orchL1 = 1000n;
    }
  });

  it('refreshes an auth token in the last tenth of its 30 minutes', async () => {
    const h = await harness();
    const expiration = Number(h.info.authToken?.expiration ?? 0n);
    expect(expiration).toBeGreaterThan(0);
    h.setWall((expiration - 170) * 1000); // 170 s left of 1800: inside the last 180 s
    await h.segmentAfter(2000);
    expect(h.refreshes()).toBe(1);
    expect(h.tally.tickets).toBe(2);
    h.setWall((expiration - 1000) * 1000); // the fresh token is valid for 30 min again anyway
  });

  it('a payment that does not get through stays due and fails over only after 30 s unpaid', async () => {
    const h = await harness({ transcoder: deadUrl });
    await h.segmentAfter(2000);
    expect(h.errors).toEqual([]);
    expect(h.tally.lastError).toMatch(/ECONNREFUSED|unreachable/);
    await h.segmentAfter(20_000);
    expect(h.errors).toEqual([]);
    await h.segmentAfter(9_000); // 31 s since the start payment
    expect(h.errors).toHaveLength(1);
    expect(h.errors[0].message).toMatch(/^payment failed: .*\(nothing paid for 31 s\)$/);
    // Nobody answers: the path or the orchestrator, never the gateway's account.
    expect(h.errors[0]).toMatchObject({ blame: 'network', code: 'payment' });
    // Stopped: no more attempts.
    expect(await h.segmentAfter(5000)).toBe(false);
  });

  it('a retry job, prepaid only enough to reach the next payments, counts as unpaid after half of that', async () => {
    // Interval 1 s: 2 × 1 s + the 15 s payment timeout = 17 s prepaid, so 8.5 s may go unpaid.
    expect(retryStartPixels(1000)).toBe(27_648_000n * 17n);
    expect(retryStartPixels(5000)).toBe(27_648_000n * 25n);
    expect(retryStartPixels(60_000)).toBe(LIVE_START_PIXELS);
    const h = await harness({ transcoder: deadUrl, prepaidPixels: retryStartPixels(1000) });
    await h.segmentAfter(2000);
    await h.segmentAfter(6000);
    expect(h.errors).toEqual([]);
    await h.segmentAfter(1000); // 9 s
    expect(h.errors[0].message).toMatch(/\(nothing paid for 9 s\)$/);
  });

  it('sends the job capabilities in every payment, so the orchestrator prices its reply for the model', async () => {
    const tls = await selfSignedCertificate('127.0.0.1');
    const seen: string[] = [];
    const recorder = https.createServer(tls, (req, res) => {
      seen.push(String(req.headers['livepeer-segment'] ?? ''));
      req.resume();
      res.end(Buffer.from(encodeMessage('PaymentResult', {})));
    });
    await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
    try {
      const h = await harness({
        transcoder: `https://127.0.0.1:${(recorder.address() as AddressInfo).port}`,
      });
      await h.segmentAfter(1000);
      expect(h.tally.tickets).toBe(1);
      expect(seen).toHaveLength(1);
      const seg = decodeMessage('SegData', Buffer.from(seen[0]!, 'base64'));
      expect(hasCapability(seg.capabilities?.bitstring, Capability.LiveVideoToVideo)).toBe(true);
      const models =
        seg.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)]?.models;
      expect(Object.keys(models ?? {})).toEqual(['passthrough']);
    } finally {
      recorder.close();
    }
  });
});

describe('LiveBillingClock', () => {
  it('bills whole units for the time since the last billed instant and carries the rest', () => {
    let now = 0;
    const clock = new LiveBillingClock(1000, 3n, () => now);
    now = 999;
    expect(clock.due()).toBeUndefined();
    now = 1500; // 1.5 s × 3 units/s = 4.5 → 4 units, standing for 1333 ms
    const due = clock.due()!;
    expect(due).toEqual({ units: 4n, until: 1333 });
    clock.commit(due);
    now = 2333; // exactly 1000 ms after the billed instant
    expect(clock.due()).toEqual({ units: 3n, until: 2333 });
    // Not committed (the payment failed): still due, and growing.
    now = 3333;
    expect(clock.due()).toEqual({ units: 6n, until: 3333 });
  });

  it('uses go-livepeer’s live rate by default: 27,648 units per millisecond', () => {
    let now = 0;
    const clock = new LiveBillingClock(5000, undefined, () => now);
    now = 5001;
    expect(clock.due()).toEqual({ units: 27_648n * 5001n, until: 5001 });
  });
});

describe('cachedSenderState', () => {
  const info = { deposit: 5n, reserve: 7n, withdrawRound: 0n };
  it('reads the deposit and round at most every maxAge, keeps the last answer when a read fails', async () => {
    let reads = 0;
    let failing = false;
    const chain = {
      senderInfo: async () => {
        reads++;
        if (failing) throw new Error('rpc down');
        return { ...info, claimedInCurrentRound: 0n };
      },
      lastInitializedRound: async () => 9n,
    };
    const state = cachedSenderState(chain as never, account.address, 50, logger);
    expect(await state()).toEqual({
      senderInfo: { ...info, claimedInCurrentRound: 0n },
      lastInitializedRound: 9n,
    });
    await state();
    expect(reads).toBe(1);
    await new Promise((r) => setTimeout(r, 60));
    failing = true;
    expect((await state()).lastInitializedRound).toBe(9n);
    expect(reads).toBe(2);
  });

  it('fails when the chain never answered', async () => {
    const chain = {
      senderInfo: async () => {
        throw new Error('rpc down');
      },
      lastInitializedRound: async () => 9n,
    };
    const state = cachedSenderState(chain as never, account.address, 50, logger);
    await expect(state()).rejects.toThrow('rpc down');
    // Typed as the gateway's own trouble, so no orchestrator is blamed for it.
    const err = await state().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChainError);
    expect(blameOf(err, 'orchestrator')).toBe('gateway');
  });
});
