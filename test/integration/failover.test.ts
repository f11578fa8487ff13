// Failover a viewer barely notices: the orchestrator running a stream goes away, the gateway
// moves the stream to another one, and the WHEP viewer's connection, SSRC and timelines stay.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { spawnLocalOrchestrator } from '../helpers/orchestrator-process.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function localOrchestrator(models = ['passthrough', 'invert'], pricePerUnit = 0n) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models,
    pricePerUnit,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
  });
  cleanups.push(() => orch.close());
  return orch;
}

async function gateway(
  orchestrators: string[],
  limits: Partial<{ noOutputTimeoutMs: number; noOrchestratorGraceMs: number }> = {},
  priceCeiling = PriceCeiling.none(),
) {
  const gw = await startTestGateway({
    orchestrators,
    logger,
    limits,
    priceCeiling,
    // random() = 0 always draws the first candidate: orchestrators are tried in the order given.
    random: () => 0,
    defaultModel: 'passthrough',
  });
  cleanups.push(() => gw.close());
  return gw;
}

describe('failover', () => {
  it('moves the stream to another orchestrator when the first one shuts down; the viewer stays', async () => {
    const first = await localOrchestrator();
    const second = await localOrchestrator();
    const gw = await gateway([first.url, second.url]);
    const clip = await makeH264Clip({ seconds: 8 });
    const publisher = await WhipTestPublisher.connect(gw.url('f1', 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(gw.url('f1', 'whep'));
    cleanups.push(() => viewer.close());
    const sending = publisher.send({ video: h264Frames(clip, 30) });

    await waitFor(() => viewer.frames.length > 60, 'frames through the first orchestrator');
    expect((await gw.status('f1')).orchestrator).toBe(first.url);
    const before = viewer.frames.length;
    await first.close();

    await waitFor(async () => (await gw.status('f1')).orchestrator === second.url, 'the swap');
    await waitFor(() => viewer.frames.length > before + 60, 'frames through the second orchestrator');
    await sending;

    const status = await gw.status('f1');
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0].from).toBe(first.url);
    expect(status.swaps[0].to).toBe(second.url);
    expect(status.swaps[0].reason.length).toBeGreaterThan(0);
    // Same viewer connection: one SSRC, sequence numbers and timestamps never go back.
    const packets = viewer.videoPackets;
    expect(new Set(packets.map((p) => p.ssrc)).size).toBe(1);
    for (let i = 1; i < packets.length; i++) {
      expect((packets[i].timestamp - packets[i - 1].timestamp) | 0).toBeGreaterThanOrEqual(0);
    }
    const seqJumps = packets.filter((p, i) => i > 0 && ((p.seq - packets[i - 1].seq) & 0xffff) !== 1).length;
    expect(seqJumps).toBeLessThanOrEqual(1);
    expect(publisher.stats().keyframeRequests).toBeGreaterThanOrEqual(2);
  }, 40_000);

  /** Streams through [faulty, healthy] and returns the stream's status once the healthy one serves it. */
  async function throughFaultyThenHealthy(fault: string, stream: string) {
    const faulty = await spawnLocalOrchestrator({ fault });
    cleanups.push(() => faulty.kill());
    const healthy = await spawnLocalOrchestrator({});
    cleanups.push(() => healthy.kill());
    const gw = await gateway([faulty.url, healthy.url], { noOutputTimeoutMs: 1500 });
    const clip = await makeH264Clip({ seconds: 8 });
    const publisher = await WhipTestPublisher.connect(gw.url(stream, 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(gw.url(stream, 'whep'));
    cleanups.push(() => viewer.close());
    const sending = publisher.send({ video: h264Frames(clip, 30) });
    await waitFor(
      async () => (await gw.status(stream)).orchestrator === healthy.url,
      'the healthy orchestrator',
      20_000,
    );
    const reached = viewer.frames.length;
    await waitFor(() => viewer.frames.length > reached + 30, 'frames from the healthy orchestrator');
    await sending;
    // The viewer never reconnected: one SSRC throughout, and it saw frames from both.
    expect(new Set(viewer.videoPackets.map((p) => p.ssrc)).size).toBe(1);
    return { status: await gw.status(stream), faulty, healthy, viewer };
  }

  it('survives an orchestrator process that exits mid-stream', async () => {
    const { status, faulty } = await throughFaultyThenHealthy('exit-after:2s', 'crash');
    expect(await faulty.exited).toBe(1);
    expect(status.state).toBe('live');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0].from).toBe(faulty.url);
  }, 40_000);

  it('survives an orchestrator that stops producing output but keeps its sockets', async () => {
    const { status, faulty } = await throughFaultyThenHealthy('stall-output-after:2s', 'stall');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0].from).toBe(faulty.url);
    expect(status.swaps[0].reason).toContain('no output');
  }, 40_000);

  it('skips an orchestrator that fails the job start, before answering the publisher', async () => {
    const { status, viewer } = await throughFaultyThenHealthy('fail-start', 'nostart');
    expect(status.swaps).toHaveLength(0); // it never ran the stream
    expect(viewer.frames.length).toBeGreaterThan(150);
  }, 40_000);

  it('an error event followed by silence: the silence moves the stream, not the event', async () => {
    // An error event alone decides nothing (ai-runner reports a bad params update the same way,
    // and go-livepeer only forwards them); the output stopping after it does.
    const { status, faulty } = await throughFaultyThenHealthy('events-error-after:2s', 'evterr');
    expect(status.swaps).toHaveLength(1);
    expect(status.swaps[0].from).toBe(faulty.url);
    expect(status.swaps[0]).toMatchObject({ code: 'stall', blame: 'orchestrator' });
    expect(status.swaps[0].reason).toContain('no output');
  }, 40_000);

  it('with six orchestrators, skips the expensive one and the one without the model, and rides out the rest', async () => {
    const expensive = await localOrchestrator(['passthrough'], 1000n);
    const noModel = await localOrchestrator(['invert']);
    const failsStart = await spawnLocalOrchestrator({ fault: 'fail-start' });
    cleanups.push(() => failsStart.kill());
    const dies = await spawnLocalOrchestrator({ fault: 'exit-after:2s' });
    cleanups.push(() => dies.kill());
    const stalls = await spawnLocalOrchestrator({ fault: 'stall-output-after:2s' });
    cleanups.push(() => stalls.kill());
    const healthy = await spawnLocalOrchestrator({});
    cleanups.push(() => healthy.kill());
    const ceiling = new PriceCeiling({ maxPricePerUnit: 10n, pixelsPerUnit: 1n });
    const gw = await gateway(
      [expensive.url, noModel.url, failsStart.url, dies.url, stalls.url, healthy.url],
      { noOutputTimeoutMs: 1500 },
      ceiling,
    );
    await gw.pool.refresh();
    const clip = await makeH264Clip({ seconds: 12 });
    const publisher = await WhipTestPublisher.connect(gw.url('six', 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(gw.url('six', 'whep'));
    cleanups.push(() => viewer.close());
    const used = new Set<string>();
    const sending = publisher.send({ video: h264Frames(clip, 30) });
    await waitFor(
      async () => {
        const s = await gw.status('six');
        if (s.orchestrator) used.add(s.orchestrator);
        return s.orchestrator === healthy.url;
      },
      'the healthy orchestrator',
      25_000,
    );
    const reached = viewer.frames.length;
    await waitFor(() => viewer.frames.length > reached + 30, 'frames from the healthy orchestrator');
    await sending;
    const status = await gw.status('six');
    for (const s of status.swaps) used.add(s.from);
    expect(used.has(expensive.url)).toBe(false);
    expect(used.has(noModel.url)).toBe(false);
    expect(used.has(failsStart.url)).toBe(false);
    expect(status.swaps.map((s: { from: string }) => s.from)).toEqual([dies.url, stalls.url]);
    expect(new Set(viewer.videoPackets.map((p) => p.ssrc)).size).toBe(1);
    const states = Object.fromEntries(gw.pool.list('passthrough').map((o) => [o.url, o.state]));
    expect(states[expensive.url]).toBe('too-expensive');
    expect(states[noModel.url]).toBe('no-model');
  }, 60_000);

  it('uses a suspended orchestrator when it is the only one left, rather than refusing the stream', async () => {
    const only = await localOrchestrator();
    const gw = await gateway([only.url]);
    await gw.pool.refresh();
    gw.pool.suspend(only.url, 'was slow a moment ago');
    const publisher = await WhipTestPublisher.connect(gw.url('susp', 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    expect((await gw.status('susp')).orchestrator).toBe(only.url);
  }, 20_000);

  it('with no orchestrator left, reports it, keeps the publisher for the grace period, then ends', async () => {
    const only = await localOrchestrator();
    const gw = await gateway([only.url], { noOrchestratorGraceMs: 2000 });
    const clip = await makeH264Clip({ seconds: 6 });
    const publisher = await WhipTestPublisher.connect(gw.url('f2', 'whip?model=passthrough'));
    cleanups.push(() => publisher.close());
    const sending = publisher.send({ video: h264Frames(clip, 30) });
    await waitFor(async () => (await gw.status('f2')).output.segments > 0, 'output');
    await only.close();
    await waitFor(async () => (await gw.status('f2')).state === 'degraded', 'degraded state', 5000);
    expect((await gw.status('f2')).lastError).toContain('no orchestrator');
    await waitFor(
      async () => (await gw.status('f2')).state === 'ended',
      'the end after the grace period',
      8000,
    );
    expect((await gw.status('f2')).endReason).toContain('no orchestrator available');
    await sending;
  }, 30_000);
});
