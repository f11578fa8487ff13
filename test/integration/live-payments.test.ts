// Live payments end to end: a gateway with a payment account streams through a paid local
// orchestrator (real tickets, real /payment calls, the orchestrator's live accounting), and swaps
// to another orchestrator when payments start being refused.
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterEach, describe, expect, it } from 'vitest';
import type { LivePaymentsOptions } from '../../src/live/live-payer.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { compare, rat } from '../../src/payments/rational.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
// The spec's public test key (Hardhat account #0).
const account = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const ROUND = {
  number: 10n,
  blockHash: '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d' as Hex,
};
// One ticket pays one second at 1 wei per pixel: the start prepays 60 tickets, then one a second.
const EV = 27_648_000n;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function paidOrchestrator(l1: () => bigint) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: EV * 4n, // winProb 1/4: some tickets win
      l1Block: l1,
      round: ROUND,
      accountingIntervalMs: 300,
    },
  });
  cleanups.push(() => orch.close());
  return orch;
}

async function freeOrchestrator() {
  const orch = await startFreeOrchestrator(logger, ['passthrough']);
  cleanups.push(() => orch.close());
  return orch;
}

async function gateway(orchestrators: string[], payments: Partial<LivePaymentsOptions> = {}) {
  const gw = await startTestGateway({
    orchestrators,
    logger,
    random: () => 0, // orchestrators tried in the order given
    defaultModel: 'passthrough',
    limits: { noOutputTimeoutMs: 3000 },
    payments: {
      account,
      maxTicketEV: 3_000_000_000_000n,
      maxTotalEV: 20_000_000_000_000n,
      intervalMs: 250,
      ...payments,
    },
  });
  cleanups.push(() => gw.close());
  return gw;
}

async function publish(gw: Awaited<ReturnType<typeof gateway>>, stream: string, seconds: number) {
  const clip = await makeH264Clip({ seconds });
  const publisher = await WhipTestPublisher.connect(gw.url(stream, 'whip?model=passthrough'));
  cleanups.push(() => publisher.close());
  const viewer = await WhepTestViewer.connect(gw.url(stream, 'whep'));
  cleanups.push(() => viewer.close());
  const stop = new AbortController();
  // Payments need input segments: a test that has seen enough stops the clip (see `done`).
  const sending = publisher.send({ video: h264Frames(clip, 30), signal: stop.signal });
  return { viewer, sending: sending.then(() => undefined), stop: () => stop.abort() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('live payments', () => {
  it('prepays the job and keeps paying: the orchestrator never runs out of balance', async () => {
    const orch = await paidOrchestrator(() => 1000n);
    const gw = await gateway([orch.url]);
    const { viewer, sending, stop } = await publish(gw, 'paid', 20);

    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator');
    const started = await gw.status('paid');
    expect(started.orchestrator).toBe(orch.url);
    const mid = started.manifestId as string;
    expect(orch.jobs.has(mid)).toBe(true);
    const framesBefore = viewer.frames.length;
    await sleep(4000);

    const status = await gw.status('paid');
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(0);
    expect(status.output.segments).toBeGreaterThan(started.output.segments);
    expect(viewer.frames.length).toBeGreaterThan(framesBefore + 60);
    // Still running on the orchestrator, its balance topped up by the /payment calls: without
    // them, four seconds of accounting would have left at most 56 tickets' worth.
    expect(orch.jobs.has(mid)).toBe(true);
    const balance = orch.recipient?.balance(account.address, mid);
    expect(balance).toBeDefined();
    expect(compare(balance ?? rat(0n), rat(EV * 57n))).toBeGreaterThan(0);
    const won = orch.recipient?.winningTickets.filter((w) => w.manifestId === mid) ?? [];
    expect(won.length).toBeGreaterThan(0);
    for (const w of won) expect(w.ticket.sender.toLowerCase()).toBe(account.address.toLowerCase());

    expect(status.payments).toHaveLength(1);
    const paid = status.payments[0];
    expect(paid.orchestrator).toBe(orch.url);
    expect(paid.tickets).toBeGreaterThan(61); // 60 for the start, then one a second
    expect(BigInt(paid.paidEV)).toBe(EV * BigInt(paid.tickets));
    expect(paid.lastError).toBeNull();
    stop();
    await sending;
  }, 40_000);

  it('a job that dies on the only orchestrator is retried there with a short prepayment, not another 60 s', async () => {
    const orch = await paidOrchestrator(() => 1000n);
    const gw = await gateway([orch.url]);
    const { viewer, sending, stop } = await publish(gw, 'retry', 20);
    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator');
    const first = await gw.status('retry');
    const mid = first.manifestId as string;
    const before = first.payments[0].tickets;
    expect(before).toBeGreaterThanOrEqual(60);

    // The runner dies: the orchestrator closes the job's channels; the 60 s prepaid stays with
    // that job's manifest there.
    orch.jobs.get(mid)?.stop('test: runner died');
    await waitFor(async () => {
      const s = await gw.status('retry');
      return s.manifestId !== null && s.manifestId !== mid;
    }, 'a new job on the same orchestrator');
    const retried = await gw.status('retry');
    expect(retried.orchestrator).toBe(orch.url);
    // Whichever channel noticed first (input or output), the orchestrator closed it.
    expect(retried.swaps).toEqual([
      expect.objectContaining({ from: orch.url, to: orch.url, blame: 'orchestrator' }),
    ]);
    // 2 × 250 ms + 15 s = 15.5 s prepaid: 16 tickets, plus the odd payment since.
    const added = retried.payments[0].tickets - before;
    expect(added).toBeGreaterThanOrEqual(16);
    expect(added).toBeLessThan(30);
    const newMid = retried.manifestId as string;
    const balance = orch.recipient?.balance(account.address, newMid);
    expect(compare(balance ?? rat(0n), rat(EV * 10n))).toBeGreaterThan(0);

    // That buffer carries the job: payments flow, and it runs on without another swap.
    const frames = viewer.frames.length;
    await sleep(3000);
    const later = await gw.status('retry');
    expect(later.manifestId).toBe(newMid);
    expect(later.swaps).toHaveLength(1);
    expect(later.state).toBe('live');
    expect(viewer.frames.length).toBeGreaterThan(frames + 45);
    expect(later.payments[0].tickets).toBeGreaterThan(retried.payments[0].tickets);
    stop();
    await sending;
  }, 40_000);

  it('refreshes expired ticket params with GetOrchestrator and keeps paying the same orchestrator', async () => {
    let l1 = 1000n;
    const orch = await paidOrchestrator(() => l1);
    const free = await freeOrchestrator();
    const gw = await gateway([orch.url, free.url]);
    const { viewer, sending, stop } = await publish(gw, 'refreshed', 20);

    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator');
    const paidBefore = async () => (await gw.status('refreshed')).payments[0]?.tickets ?? 0;
    await waitFor(async () => (await paidBefore()) > 60, 'a payment after the start');
    // The orchestrator's chain moves on: every ticket params it handed out has expired, and it
    // refuses them; the gateway asks GetOrchestrator again and pays with the new ones.
    l1 += 100n;
    const ticketsThen = await paidBefore();
    await waitFor(
      async () => (await paidBefore()) > ticketsThen + 2,
      'payments with refreshed params',
      10_000,
    );
    const status = await gw.status('refreshed');
    expect(status.state).toBe('live');
    expect(status.orchestrator).toBe(orch.url);
    expect(status.swaps).toHaveLength(0);
    expect(status.payments[0].lastError).toBeNull();
    stop();
    await sending;
  }, 40_000);

  it('swaps to another orchestrator when its price more than doubles mid-stream', async () => {
    const paidOrch = await paidOrchestrator(() => 1000n);
    const free = await freeOrchestrator();
    const gw = await gateway([paidOrch.url, free.url]);
    const { viewer, sending, stop } = await publish(gw, 'pricey', 20);

    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator');
    await waitFor(
      async () => ((await gw.status('pricey')).payments[0]?.tickets ?? 0) > 60,
      'a payment after the start',
    );
    expect((await gw.status('pricey')).orchestrator).toBe(paidOrch.url);
    // 1 → 3 wei per pixel: the next /payment reply carries it, and the payment after that is refused.
    paidOrch.setPrice(3n);

    await waitFor(async () => (await gw.status('pricey')).orchestrator === free.url, 'the swap', 10_000);
    const reached = viewer.frames.length;
    await waitFor(() => viewer.frames.length > reached + 30, 'frames from the free orchestrator');
    const status = await gw.status('pricey');
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0]).toMatchObject({ from: paidOrch.url, to: free.url });
    expect(status.swaps[0].reason).toMatch(
      /payment failed: orchestrator price has more than doubled: 3\.000/,
    );
    expect(status.payments).toHaveLength(1);
    expect(status.payments[0].lastError).toContain('more than doubled');
    stop();
    await sending;
  }, 40_000);

  it('checks before paying: a face value the deposit cannot cover or an EV above the limit is refused, and another orchestrator used', async () => {
    const paidOrch = await paidOrchestrator(() => 1000n);
    const free = await freeOrchestrator();
    // Face value is 4 × EV; a deposit of 3 × EV cannot cover one ticket.
    const gw = await gateway([paidOrch.url, free.url], {
      senderState: async () => ({
        senderInfo: { deposit: EV * 3n, reserve: 10n ** 18n, withdrawRound: 0n },
        lastInitializedRound: 10n,
      }),
    });
    const { viewer, sending } = await publish(gw, 'poor', 3);
    await waitFor(() => viewer.frames.length > 10, 'frames through the free orchestrator');
    const status = await gw.status('poor');
    expect(status.orchestrator).toBe(free.url);
    expect(status.lastError).toBe(
      `${paidOrch.url}: job start failed: ticket faceValue ${EV * 4n} > max faceValue ${EV * 3n}`,
    );
    expect(paidOrch.jobs.size).toBe(0);

    const strict = await gateway([paidOrch.url, free.url], { maxTicketEV: EV - 1n });
    const second = await publish(strict, 'strict', 3);
    await waitFor(() => second.viewer.frames.length > 10, 'frames through the free orchestrator');
    const s2 = await strict.status('strict');
    expect(s2.orchestrator).toBe(free.url);
    expect(s2.lastError).toMatch(/job start failed: ticket EV 27648000(\.0+)? > max ticket EV 27647999/);
    await Promise.all([sending, second.sending]);
  }, 40_000);

  it('a free orchestrator that checks signatures (on chain, price 0) takes the job: the payment names the sender', async () => {
    const orch = await LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models: ['passthrough'],
      pricePerUnit: 0n,
      pixelsPerUnit: 1n,
      capacity: 4,
      logger,
      payments: { recipient: RECIPIENT, ticketEV: EV, l1Block: () => 1000n, round: ROUND },
    });
    cleanups.push(() => orch.close());
    const gw = await gateway([orch.url]);
    const { viewer, sending, stop } = await publish(gw, 'free-onchain', 10);
    await waitFor(() => viewer.frames.length > 10, 'frames through the free orchestrator');
    const status = await gw.status('free-onchain');
    expect(status.orchestrator).toBe(orch.url);
    expect(status.lastError).toBeNull();
    expect(status.payments).toEqual([]);
    stop();
    await sending;
  }, 40_000);
});
