// The local orchestrator behaving like a real ai-runner live pipeline (localOrchestrator.warmup,
// outputSize, outputFps, restarts, restartGap, eventForm), seen as a gateway sees it: over real
// sockets with the trickle clients, a job started as go-livepeer's gateway starts one.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PLAIN_RUNNER, type RunnerBehaviour } from '../../src/config/fault.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { startLiveVideoToVideo } from '../../src/orchestrators/live-video.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { TricklePublisher, TrickleSubscriber } from '../../src/trickle/index.ts';
import { makeSegments } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const tls = { rejectUnauthorized: false };
/** 320x240, 30 fps, a keyframe every 0.5 s: one trickle segment per half second. */
let halfSecond: Buffer[];
/** The same at one segment per second. */
let oneSecond: Buffer[];
let work: Workdir;

beforeAll(async () => {
  [halfSecond, oneSecond] = await Promise.all([
    makeSegments({ seconds: 8, gopSeconds: 0.5 }),
    makeSegments({ seconds: 2, gopSeconds: 1 }),
  ]);
  work = await makeWorkdir();
}, 30_000);
afterAll(async () => {
  await work?.remove();
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function orchestrator(runner: Partial<RunnerBehaviour>): Promise<LocalOrchestrator> {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 2,
    logger,
    // ai-runner reports every 10 s; state changes are reported at once anyway.
    statusIntervalMs: 10_000,
    runner: { ...PLAIN_RUNNER, ...runner },
  });
  cleanups.push(async () => orch.close());
  return orch;
}

interface Seen<T> {
  at: number;
  value: T;
}

/** Starts a job and reads its output (arrival time and bytes of each segment) and its events. */
async function startJob(
  orch: LocalOrchestrator,
  modelId = 'passthrough',
  params: Record<string, unknown> = {},
) {
  const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 5000 });
  const requestId = `req-${Math.random().toString(16).slice(2)}`;
  const startedAt = Date.now();
  const urls = await startLiveVideoToVideo(info.transcoder!, {
    modelId,
    params,
    streamId: 'runner-test',
    requestId,
    payment: OFFCHAIN_PAYMENT,
    segment: await segmentCredentials(info, offchainIdentity, { manifestId: requestId }),
  });
  const pub = new TricklePublisher(urls.publishUrl, { ...tls, mimeType: 'video/MP2T' });
  const control = new TricklePublisher(urls.controlUrl, { ...tls, mimeType: 'application/json' });
  // From the first segment: the job reports its first state as it starts.
  const out = new TrickleSubscriber(urls.subscribeUrl, { ...tls, start: 0 });
  const events = new TrickleSubscriber(urls.eventsUrl, { ...tls, start: 0 });
  const outputs: Seen<Buffer>[] = [];
  const seen: Seen<Record<string, unknown>>[] = [];
  let closed = false;
  const reading = [
    (async () => {
      while (!closed) {
        const seg = await out.next().catch(() => null);
        if (!seg) return;
        const body = await readAll(seg.body).catch(() => Buffer.alloc(0));
        if (body.length > 0) outputs.push({ at: Date.now(), value: body });
      }
    })(),
    (async () => {
      while (!closed) {
        const seg = await events.next().catch(() => null);
        if (!seg) return;
        const text = (await readAll(seg.body).catch(() => Buffer.alloc(0))).toString();
        if (text) seen.push({ at: Date.now(), value: JSON.parse(text) });
      }
    })(),
  ];
  let sending: Promise<void> | undefined;
  const job = {
    startedAt,
    outputs,
    seen,
    control,
    /** Publishes `segments` one after another in real time, looping, until stopped. */
    send(segments: Buffer[], segmentMs: number) {
      sending = (async () => {
        for (let i = 0; !closed; i++) {
          const t = Date.now();
          const w = pub.startSegment();
          w.write(segments[i % segments.length]!);
          await w.end();
          await sleep(segmentMs - (Date.now() - t));
        }
      })();
    },
    async close() {
      closed = true;
      await sending?.catch(() => {});
      out.close();
      events.close();
      await control.close();
      await pub.close({ deleteChannel: true });
      await Promise.all(reading);
    },
  };
  cleanups.push(async () => job.close());
  return job;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function readAll(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

type Status = { type: string; state?: string; inference_status?: { restart_count?: number } };
const statuses = (seen: Seen<Record<string, unknown>>[]) =>
  seen.filter((e) => e.value.type === 'status') as unknown as Seen<Status>[];

async function probe(ts: Buffer): Promise<{ width: number; height: number; frames: number; rate: string }> {
  const file = await work.write(`probe-${Math.random().toString(16).slice(2)}.ts`, ts);
  const { stdout } = await run('ffprobe', [
    ...['-v', 'error', '-select_streams', 'v:0', '-count_frames'],
    ...['-show_entries', 'stream=width,height,nb_read_frames,avg_frame_rate', '-of', 'json', file],
  ]);
  const s = JSON.parse(stdout).streams[0];
  return { width: s.width, height: s.height, frames: Number(s.nb_read_frames), rate: s.avg_frame_rate };
}

describe('an ai-runner-like local orchestrator', () => {
  it('warm-up: LOADING and no output for the warm-up after the start, then ONLINE and output', async () => {
    const orch = await orchestrator({ warmupMs: 2500 });
    const job = await startJob(orch);
    job.send(halfSecond, 500);
    await waitFor(() => job.outputs.length >= 2, 'output after the warm-up', 15_000);
    const states = statuses(job.seen);
    expect(states[0]!.value.state).toBe('LOADING');
    const online = states.find((e) => e.value.state === 'ONLINE');
    expect(online, JSON.stringify(job.seen.map((e) => e.value))).toBeDefined();
    expect(online!.at - job.startedAt).toBeGreaterThanOrEqual(2400);
    // Nothing came out while it loaded, though input flowed from the start.
    expect(job.outputs[0]!.at - job.startedAt).toBeGreaterThanOrEqual(2400);
    expect(job.outputs[0]!.at).toBeGreaterThanOrEqual(online!.at - 50);
    expect(states.filter((e) => e.value.state === 'LOADING').every((e) => e.at <= online!.at)).toBe(true);
    expect(orch.jobs.values().next().value?.status()).toMatchObject({ state: 'ONLINE', restartCount: 0 });
  }, 30_000);

  it('output at 512x512 and 15 fps from 320x240 at 30 fps, through ffmpeg even for passthrough', async () => {
    const orch = await orchestrator({ outputSize: { width: 512, height: 512 }, outputFps: 15 });
    const job = await startJob(orch);
    job.send(oneSecond, 1000);
    await waitFor(() => job.outputs.length >= 2, 'two output segments', 20_000);
    const input = await probe(oneSecond[0]!);
    expect([input.width, input.height, input.frames]).toEqual([320, 240, 30]);
    for (const out of job.outputs.slice(0, 2)) {
      const p = await probe(out.value);
      expect([p.width, p.height]).toEqual([512, 512]);
      expect(p.rate).toBe('15/1');
      expect(p.frames).toBeGreaterThanOrEqual(14);
      expect(p.frames).toBeLessThanOrEqual(16);
    }
  }, 40_000);

  it('restarts: output stops for the gap, LOADING with restart_count + 1, then ONLINE and output again', async () => {
    const orch = await orchestrator({ restarts: { kind: 'every', ms: 3000 }, restartGapMs: 1500 });
    const job = await startJob(orch);
    job.send(halfSecond, 500);
    await waitFor(
      () =>
        statuses(job.seen).some(
          (e) => e.value.state === 'ONLINE' && e.value.inference_status?.restart_count === 2,
        ),
      'back online after the second restart',
      20_000,
    );
    await waitFor(() => job.outputs.at(-1)!.at > statuses(job.seen).at(-1)!.at, 'output after it', 5000);
    const restarts = job.seen.filter((e) => e.value.type === 'restart');
    expect(restarts.map((e) => e.value.restart_count)).toEqual([1, 2]);
    const states = statuses(job.seen).map(
      (e) => `${e.value.state}:${e.value.inference_status?.restart_count}`,
    );
    expect(states).toEqual(['ONLINE:0', 'LOADING:1', 'ONLINE:1', 'LOADING:2', 'ONLINE:2']);
    // Each restart is a gap of about restartGap in the output; between them it flows every ~0.5 s.
    for (const r of restarts) {
      const before = job.outputs.filter((o) => o.at <= r.at).at(-1)!;
      const after = job.outputs.find((o) => o.at > r.at)!;
      expect(after.at - before.at).toBeGreaterThanOrEqual(1400);
      expect(after.at - r.at).toBeGreaterThanOrEqual(1400);
    }
    const firstRestart = restarts[0]!.at;
    const early = job.outputs.filter((o) => o.at < firstRestart);
    expect(early.length).toBeGreaterThanOrEqual(3);
    expect(orch.jobs.values().next().value?.status().restartCount).toBe(2);
  }, 40_000);

  it("events in ai-runner's envelope: status, errors and first-segment traces, each with its queue", async () => {
    const orch = await orchestrator({ eventForm: 'envelope' });
    const job = await startJob(orch, 'invert');
    job.send(halfSecond, 500);
    await waitFor(() => job.outputs.length >= 1, 'an output segment', 15_000);
    await job.control.writeSegment(JSON.stringify({ effect: 'no-such-effect' }));
    await waitFor(
      () => job.seen.some((e) => (e.value.event as { type?: string })?.type === 'error'),
      'the error event',
    );
    await waitFor(
      () =>
        job.seen.some(
          (e) => (e.value.event as { type?: string })?.type === 'runner_send_first_processed_segment',
        ),
      'the output trace event',
    );
    for (const e of job.seen) {
      expect(Object.keys(e.value).sort()).toEqual(['event', 'queue_event_type']);
    }
    const byType = (t: string) => job.seen.filter((e) => (e.value.event as { type?: string }).type === t);
    expect(byType('status')[0]!.value).toMatchObject({
      queue_event_type: 'ai_stream_events',
      event: { type: 'status', pipeline: 'live-video-to-video', state: 'ONLINE' },
    });
    expect(byType('error')[0]!.value).toMatchObject({
      queue_event_type: 'ai_stream_events',
      event: { type: 'error', message: 'unknown effect "no-such-effect"' },
    });
    for (const t of ['runner_receive_first_ingest_segment', 'runner_send_first_processed_segment']) {
      expect(byType(t)).toHaveLength(1);
      expect(byType(t)[0]!.value.queue_event_type).toBe('stream_trace');
    }
  }, 30_000);

  it('plain by default: events carry their type at the top level and there are no trace events', async () => {
    const orch = await orchestrator({});
    const job = await startJob(orch);
    job.send(halfSecond, 500);
    await waitFor(() => job.outputs.length >= 2, 'output', 15_000);
    expect(statuses(job.seen)[0]!.value.state).toBe('ONLINE');
    expect(job.seen.every((e) => typeof e.value.type === 'string' && !('event' in e.value))).toBe(true);
    // Passthrough without an output size stays a byte copy.
    expect(halfSecond.some((s) => s.equals(job.outputs[0]!.value))).toBe(true);
  }, 30_000);
});
