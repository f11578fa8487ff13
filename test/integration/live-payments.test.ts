// Live payments end to end: a gateway with a payment account streams through a paid local
// orchestrator (real tickets, real /payment calls, the orchestrator's live accounting), and swaps
// to another orchestrator when payments start being refused.
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { compare, rat } from '../../src/payments/rational.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
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
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
  });
  cleanups.push(() => orch.close());
  return orch;
}

async function gateway(orchestrators: string[]) {
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
  const sending = publisher.send({ video: h264Frames(clip, 30) });
  return { viewer, sending };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('live payments', () => {
  it('prepays the job and keeps paying: the orchestrator never runs out of balance', async () => {
    const orch = await paidOrchestrator(() => 1000n);
    const gw = await gateway([orch.url]);
    const { viewer, sending } = await publish(gw, 'paid', 6);

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
    await sending;
  }, 40_000);

  it('swaps to another orchestrator when its payments are refused', async () => {
    let l1 = 1000n;
    const paidOrch = await paidOrchestrator(() => l1);
    const free = await freeOrchestrator();
    const gw = await gateway([paidOrch.url, free.url]);
    const { viewer, sending } = await publish(gw, 'refused', 8);

    await waitFor(() => viewer.frames.length > 30, 'frames through the paid orchestrator');
    await waitFor(
      async () => ((await gw.status('refused')).payments[0]?.tickets ?? 0) > 60,
      'a payment after the start',
    );
    expect((await gw.status('refused')).orchestrator).toBe(paidOrch.url);
    // The orchestrator's chain moves on: every ticket params it handed out has expired.
    l1 += 100n;

    await waitFor(async () => (await gw.status('refused')).orchestrator === free.url, 'the swap', 10_000);
    const reached = viewer.frames.length;
    await waitFor(() => viewer.frames.length > reached + 30, 'frames from the free orchestrator');
    const status = await gw.status('refused');
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0].from).toBe(paidOrch.url);
    expect(status.swaps[0].to).toBe(free.url);
    expect(status.swaps[0].reason).toContain('payment failed');
    expect(status.swaps[0].reason).toContain('TicketParams expired');
    // The free orchestrator is not paid; the refused one keeps its record.
    expect(status.payments).toHaveLength(1);
    expect(status.payments[0].orchestrator).toBe(paidOrch.url);
    expect(status.payments[0].lastError).toContain('TicketParams expired');
    await sending;
  }, 40_000);
});
