// Liveness that fits real orchestrators, end to end (gateway, local orchestrators, werift
// clients on 127.0.0.1): a warming-up model is waited for, the only orchestrator stalling keeps
// the stream (degraded) instead of ending it, a client's bad params never suspend an
// orchestrator, and an ended stream's WebRTC peers learn it at once.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { RTCPeerConnection } from 'werift';
import { PLAIN_RUNNER, type RunnerBehaviour } from '../../src/config/fault.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function orchestrator(fault = 'none', runner?: Partial<RunnerBehaviour>) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    fault,
    runner: runner && { ...PLAIN_RUNNER, ...runner },
    logger,
  });
  cleanups.push(() => orch.close());
  return orch;
}

async function gateway(orchestrators: string[], limits: Record<string, number> = {}) {
  const gw = await startTestGateway({
    orchestrators,
    logger,
    limits,
    // random() = 0 always draws the first candidate: orchestrators are tried in the order given.
    random: () => 0,
    defaultModel: 'passthrough',
  });
  cleanups.push(() => gw.close());
  return gw;
}

/** A gateway whose live streams read their event-loop delay from `delayMs()`. */
async function gatewayWith(orchestrators: string[], limits: Record<string, number>, delayMs: () => number) {
  const gw = await startTestGateway({
    orchestrators,
    logger,
    limits,
    random: () => 0,
    defaultModel: 'passthrough',
    loopDelay: { maxSince: () => delayMs() },
  });
  cleanups.push(() => gw.close());
  return gw;
}

async function publishWithViewer(
  gw: Awaited<ReturnType<typeof startTestGateway>>,
  stream: string,
  seconds: number,
) {
  const clip = await makeH264Clip({ seconds });
  const publisher = await WhipTestPublisher.connect(gw.url(stream, 'whip?model=passthrough'));
  cleanups.push(() => publisher.close());
  const viewer = await WhepTestViewer.connect(gw.url(stream, 'whep'));
  cleanups.push(() => viewer.close());
  const sending = publisher.send({ video: h264Frames(clip, 30) });
  return { publisher, viewer, sending };
}

/** When every DTLS transport of `pc` is closed: the remote said it is gone. */
function dtlsClosed(pc: RTCPeerConnection): boolean {
  return pc.dtlsTransports.length > 0 && pc.dtlsTransports.every((t) => t.state === 'closed');
}

describe('liveness', () => {
  it('waits for an orchestrator that reports LOADING longer than both timeouts, and does not swap it out', async () => {
    const slow = await orchestrator('none', { warmupMs: 5000 });
    const other = await orchestrator();
    // Timeouts far below the warm-up: only its LOADING reports keep it.
    const gw = await gateway([slow.url, other.url], { noOutputTimeoutMs: 1500, firstOutputTimeoutMs: 2500 });
    const { viewer, sending } = await publishWithViewer(gw, 'warm', 12);

    await waitFor(async () => (await gw.status('warm')).orchestratorStatus?.state === 'LOADING', 'LOADING');
    const loading = await gw.status('warm');
    expect(loading.state).toBe('loading');
    expect(loading.stateReason).toBe('the orchestrator reports LOADING');
    await waitFor(() => viewer.frames.length > 30, 'frames after the warm-up', 20_000);

    const status = await gw.status('warm');
    expect(status.orchestrator).toBe(slow.url);
    expect(status.state).toBe('live');
    expect(status.swaps).toEqual([]);
    expect(status.firstFrameDelayMs).toBeGreaterThan(5000);
    expect(other.jobs.size).toBe(0);
    expect(gw.pool.list().find((o) => o.url === slow.url)?.state).toBe('available');
    await sending;
  }, 40_000);

  it('the only orchestrator stalling keeps the stream on it, degraded with the reason, past the grace period', async () => {
    const only = await orchestrator('stall-output-after:3s');
    const gw = await gateway([only.url], { noOutputTimeoutMs: 1500, noOrchestratorGraceMs: 1000 });
    const { viewer, publisher, sending } = await publishWithViewer(gw, 'alone', 12);
    await waitFor(() => viewer.frames.length > 10, 'frames before the stall');

    // Degraded at once while it looks for another orchestrator, then with the verdict.
    await waitFor(
      async () => ((await gw.status('alone')).stateReason ?? '').includes('no other orchestrator'),
      'degraded, nowhere to go',
      15_000,
    );
    const degraded = await gw.status('alone');
    expect(degraded.state).toBe('degraded');
    expect(degraded.stateReason).toMatch(
      /^no output for \d+ ms while input flows; no other orchestrator to move to/,
    );
    expect(degraded.lastFailure).toMatchObject({
      blame: 'orchestrator',
      code: 'stall',
      orchestrator: only.url,
    });
    // Well past the grace period (1 s) and several stall timeouts: still there, same job.
    await new Promise((r) => setTimeout(r, 4000));
    const later = await gw.status('alone');
    expect(later.state).toBe('degraded');
    expect(later.orchestrator).toBe(only.url);
    expect(later.manifestId).toBe(degraded.manifestId);
    expect(later.swaps).toEqual([]);
    expect(later.swapBudget).toMatchObject({ used: 0, left: 2, max: 2, exhausted: false });
    expect(only.jobs.size).toBe(1);
    expect(publisher.pc.connectionState).toBe('connected');
    await sending;
  }, 40_000);

  it('no output while the gateway’s own event loop is starved: nobody is blamed until it is not', async () => {
    const stalls = await orchestrator('stall-output-after:3s');
    const healthy = await orchestrator();
    // The gateway reports its loop delayed 400 ms (over the 250 ms threshold) until told otherwise.
    let delayMs = 400;
    const gw = await gatewayWith([stalls.url, healthy.url], { noOutputTimeoutMs: 1500 }, () => delayMs);
    const { viewer, sending } = await publishWithViewer(gw, 'starved', 14);
    await waitFor(() => viewer.frames.length > 10, 'frames before the stall');

    await waitFor(
      async () => ((await gw.status('starved')).stateReason ?? '').includes('overloaded'),
      'the overload noted',
      15_000,
    );
    // Several stall timeouts later: not suspended, not swapped.
    await new Promise((r) => setTimeout(r, 3000));
    const starved = await gw.status('starved');
    expect(starved.state).toBe('degraded');
    expect(starved.stateReason).toContain('the gateway itself is overloaded (event loop delayed 400 ms)');
    expect(starved.orchestrator).toBe(stalls.url);
    expect(starved.swaps).toEqual([]);
    expect(gw.pool.list().find((o) => o.url === stalls.url)?.state).toBe('available');

    // The loop recovers: a stall window later the orchestrator is blamed and the stream moves.
    delayMs = 0;
    await waitFor(async () => (await gw.status('starved')).orchestrator === healthy.url, 'the swap', 15_000);
    const moved = await gw.status('starved');
    expect(moved.swaps).toEqual([
      expect.objectContaining({ from: stalls.url, to: healthy.url, code: 'stall' }),
    ]);
    expect(gw.pool.list().find((o) => o.url === stalls.url)?.state).toBe('suspended');
    await sending;
  }, 60_000);

  it('an unknown effect sent with /update is the client’s error: the orchestrator is not suspended', async () => {
    const first = await orchestrator();
    const second = await orchestrator();
    const gw = await gateway([first.url, second.url], { noOutputTimeoutMs: 2000 });
    const { viewer, sending } = await publishWithViewer(gw, 'badfx', 10);
    await waitFor(() => viewer.frames.length > 30, 'frames');

    const res = await fetch(gw.url('badfx', 'update'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ effect: 'no-such-effect' }),
    });
    expect(res.status).toBe(200);
    await waitFor(async () => (await gw.status('badfx')).orchestratorErrors.length > 0, 'the error event');
    const before = viewer.frames.length;
    await waitFor(() => viewer.frames.length > before + 60, 'frames after the bad update');

    const status = await gw.status('badfx');
    expect(status.orchestratorErrors[0].message).toContain('unknown effect "no-such-effect"');
    expect(status.lastFailure).toMatchObject({
      blame: 'client',
      code: 'params-rejected',
      orchestrator: first.url,
    });
    expect(status.state).toBe('live');
    expect(status.orchestrator).toBe(first.url);
    expect(status.swaps).toEqual([]);
    expect(gw.pool.list().find((o) => o.url === first.url)?.state).toBe('available');
    expect(second.jobs.size).toBe(0);
    await sending;
  }, 40_000);

  it('an ended stream closes its publisher and viewer peers at once: the clients see it within a second', async () => {
    const orch = await orchestrator();
    const gw = await gateway([orch.url]);
    const { publisher, viewer } = await publishWithViewer(gw, 'bye', 6);
    await waitFor(() => viewer.frames.length > 10, 'frames');
    expect(dtlsClosed(publisher.pc)).toBe(false);

    // The gateway ends the stream (a WHIP DELETE; the clients' own peers stay open).
    const res = await fetch(publisher.resourceUrl as string, { method: 'DELETE' });
    expect(res.status).toBe(200);
    publisher.resourceUrl = undefined;
    const ended = Date.now();
    await waitFor(() => dtlsClosed(publisher.pc) && dtlsClosed(viewer.pc), 'both peers closed', 1000);
    expect(Date.now() - ended).toBeLessThan(1000);
    expect((await gw.status('bye')).state).toBe('ended');
  }, 30_000);
});
