// The gateway against orchestrators that behave like real ai-runner live pipelines
// (docs/local-orchestrator.md): an 8 s model load reported as LOADING, 512x512 output at another
// frame rate, events in ai-runner's envelope, pipeline restarts that stop the output for 3 s.
// None of these is a failure: the stream must stay on its orchestrator (no swap), although a
// healthy plain one is there to swap to, and the viewer must get the pictures.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PLAIN_RUNNER, type RunnerBehaviour } from '../../src/config/fault.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, toAnnexB, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function orchestrator(runner: Partial<RunnerBehaviour> = {}) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    // ai-runner's own status interval: its events are this sparse.
    statusIntervalMs: 10_000,
    runner: { ...PLAIN_RUNNER, ...runner },
  });
  cleanups.push(() => orch.close());
  return orch;
}

/** A gateway with its default liveness settings, the ai-runner-like orchestrator first in line. */
async function gatewayWith(aiRunnerLike: LocalOrchestrator) {
  const healthy = await orchestrator();
  const gw = await startTestGateway({
    orchestrators: [aiRunnerLike.url, healthy.url],
    logger,
    // random() = 0 always draws the first candidate: orchestrators are tried in the order given.
    random: () => 0,
    defaultModel: 'invert',
  });
  cleanups.push(() => gw.close());
  return gw;
}

async function stream(gw: Awaited<ReturnType<typeof startTestGateway>>, name: string, seconds: number) {
  const clip = await makeH264Clip({ seconds });
  const publisher = await WhipTestPublisher.connect(gw.url(name, 'whip?model=invert'));
  cleanups.push(() => publisher.close());
  const viewer = await WhepTestViewer.connect(gw.url(name, 'whep'));
  cleanups.push(() => viewer.close());
  const startedAt = Date.now();
  const frameTimes: number[] = [];
  viewer.onFrame(() => frameTimes.push(Date.now()));
  const sending = publisher.send({ video: h264Frames(clip, 30) });
  return { publisher, viewer, sending, startedAt, frameTimes };
}

async function probeSize(annexB: Buffer): Promise<{ width: number; height: number }> {
  const file = join(tmpdir(), `ai-runner-like-${process.pid}-${Date.now()}.h264`);
  await writeFile(file, annexB);
  const { stdout } = await run('ffprobe', [
    ...['-v', 'error', '-f', 'h264', '-select_streams', 'v:0'],
    ...['-show_entries', 'stream=width,height', '-of', 'json', file],
  ]);
  const s = JSON.parse(stdout).streams[0];
  return { width: s.width, height: s.height };
}

describe('an ai-runner-like orchestrator is not a failing one', () => {
  it('8 s warm-up (LOADING), 512x512 at 20 fps, enveloped events: pictures after the load, no swap', async () => {
    const orch = await orchestrator({
      warmupMs: 8000,
      outputSize: { width: 512, height: 512 },
      outputFps: 20,
      eventForm: 'envelope',
    });
    const gw = await gatewayWith(orch);
    const s = await stream(gw, 'warm', 20);
    await waitFor(() => s.viewer.frames.length > 40, 'pictures after the warm-up', 30_000);
    expect(s.frameTimes[0]! - s.startedAt).toBeGreaterThanOrEqual(7000);
    const status = await gw.status('warm');
    expect(status.state).toBe('live');
    expect(status.orchestrator).toBe(orch.url);
    expect(status.swaps).toHaveLength(0);
    const first = s.viewer.frames.findIndex((f) => f.keyframe);
    expect(await probeSize(toAnnexB(s.viewer.frames.slice(first)))).toEqual({ width: 512, height: 512 });
    await s.sending;
    expect((await gw.status('warm')).swaps).toHaveLength(0);
  }, 60_000);

  it('pipeline restarts every 6 s with a 3 s gap (LOADING, restart_count + 1): the output resumes, no swap', async () => {
    const orch = await orchestrator({
      restarts: { kind: 'every', ms: 6000 },
      restartGapMs: 3000,
      eventForm: 'envelope',
    });
    const gw = await gatewayWith(orch);
    const s = await stream(gw, 'restarts', 20);
    await waitFor(
      () => (orch.jobs.values().next().value?.status().restartCount ?? 0) >= 2,
      'two pipeline restarts',
      30_000,
    );
    const afterSecond = s.frameTimes.length;
    await waitFor(() => s.frameTimes.length > afterSecond + 30, 'pictures after the second restart', 15_000);
    // The viewer saw the gaps (the output really stopped) and the pictures after them.
    const gaps = s.frameTimes.slice(1).map((t, i) => t - s.frameTimes[i]!);
    expect(gaps.filter((g) => g >= 2000).length).toBeGreaterThanOrEqual(2);
    const status = await gw.status('restarts');
    expect(status.state).toBe('live');
    expect(status.orchestrator).toBe(orch.url);
    expect(status.swaps).toHaveLength(0);
    await s.sending;
  }, 60_000);
});
