// Fault injection (localOrchestrator.fault), seen through the gateway's own clients: each fault
// must look to a gateway like the real failure it stands for.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { startLiveVideoToVideo } from '../../src/orchestrators/live-video.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { TrickleError, TricklePublisher, TrickleSubscriber } from '../../src/trickle/index.ts';
import { makeSegments } from '../helpers/media.ts';
import { type LocalOrchestratorProcess, spawnLocalOrchestrator } from '../helpers/orchestrator-process.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const tls = { rejectUnauthorized: false };
/** Input is published a segment every this long (faster than real time, to keep the tests short). */
const PUBLISH_EVERY_MS = 250;

let segments: Buffer[];
let failStart: Promise<LocalOrchestratorProcess>;
let exitAfter: Promise<LocalOrchestratorProcess>;
const inProcess: LocalOrchestrator[] = [];

beforeAll(async () => {
  // Both children start (tsx compiling the sources) while the clip is made. exit-after counts
  // from the first job's start, so starting it early is fine.
  failStart = spawnLocalOrchestrator({ fault: 'fail-start' });
  exitAfter = spawnLocalOrchestrator({ fault: 'exit-after:1s', models: ['passthrough'] });
  failStart.catch(() => {});
  exitAfter.catch(() => {});
  segments = await makeSegments({ seconds: 3 });
}, 60_000);

afterAll(async () => {
  const children = await Promise.allSettled([failStart, exitAfter]);
  await Promise.all(children.map((c) => (c.status === 'fulfilled' ? c.value.kill() : undefined)));
  await Promise.all(inProcess.map((o) => o.close()));
});

async function startInProcess(fault: string): Promise<LocalOrchestrator> {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 2,
    logger,
    statusIntervalMs: 100,
    fault,
  });
  inProcess.push(orch);
  return orch;
}

async function startJob(url: string, modelId = 'passthrough') {
  const info = await getOrchestrator(url, { identity: offchainIdentity, timeoutMs: 5000 });
  const requestId = `req-${Math.random().toString(16).slice(2)}`;
  return startLiveVideoToVideo(info.transcoder ?? url, {
    modelId,
    streamId: 'fault-test',
    requestId,
    payment: OFFCHAIN_PAYMENT,
    segment: await segmentCredentials(info, offchainIdentity, { manifestId: requestId }),
    timeoutMs: 10_000,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One segment in a few chunks, like a segmenter writing frames as they come. */
async function publishSegment(pub: TricklePublisher, data: Buffer): Promise<void> {
  const writer = pub.startSegment();
  const step = Math.ceil(data.length / 4);
  for (let i = 0; i < data.length; i += step) {
    writer.write(data.subarray(i, i + step));
    await sleep(5);
  }
  await writer.end();
}

/**
 * A job's four channels as a gateway uses them: input published in a loop, output and events
 * read in the background. Output segments are counted when they start (the subscriber's next()
 * resolving); their bodies are drained but never awaited, since a hung model may leave one open.
 */
function drive(urls: { publishUrl: string; subscribeUrl: string; eventsUrl: string }) {
  const pub = new TricklePublisher(urls.publishUrl, { ...tls, mimeType: 'video/MP2T' });
  const sub = new TrickleSubscriber(urls.subscribeUrl, tls);
  const events = new TrickleSubscriber(urls.eventsUrl, tls);
  const state = {
    published: 0,
    publishErrors: [] as Error[],
    outputs: 0,
    outputError: undefined as Error | undefined,
    events: [] as Record<string, unknown>[],
    statusEvents: () => state.events.filter((e) => e.type === 'status').length,
  };
  let stopped = false;
  const publishing = (async () => {
    for (let i = 0; !stopped; i++) {
      const started = Date.now();
      try {
        await publishSegment(pub, segments[i % segments.length]);
        state.published++;
      } catch (err) {
        state.publishErrors.push(err as Error);
        return;
      }
      await sleep(Math.max(0, PUBLISH_EVERY_MS - (Date.now() - started)));
    }
  })();
  const reading = (async () => {
    try {
      for (;;) {
        const seg = await sub.next();
        if (!seg) return;
        state.outputs++;
        seg.body.resume();
        seg.body.on('error', () => {});
      }
    } catch (err) {
      state.outputError = err as Error;
    }
  })();
  const readingEvents = (async () => {
    for (;;) {
      const seg = await events.next().catch(() => null);
      if (!seg) return;
      const chunks: Buffer[] = [];
      try {
        for await (const c of seg.body) chunks.push(c as Buffer);
        state.events.push(JSON.parse(Buffer.concat(chunks).toString()));
      } catch {
        return;
      }
    }
  })();
  const stop = async () => {
    stopped = true;
    sub.close();
    events.close();
    await pub.close({ deleteChannel: true });
    await Promise.all([publishing, reading, readingEvents]);
  };
  return { pub, sub, state, stop, publishing, reading };
}

describe('local orchestrator fault injection', () => {
  it('fail-start: the job start answers 500 with a plain-text reason; GetOrchestrator still works', async () => {
    const orch = await failStart;
    const err = await startJob(orch.url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrchestratorError);
    const e = err as OrchestratorError;
    expect(e.kind).toBe('refused');
    expect(e.status).toBe(500);
    expect(e.message).toContain('failed to start live-video-to-video runner');
    expect(e.message).toContain('injected fault fail-start');
    // Still a healthy-looking orchestrator otherwise.
    const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 5000 });
    expect(info.transcoder).toBe(orch.url);
  });

  it('stall-output-after: output stops after the time while input is still taken', async () => {
    const orch = await startInProcess('stall-output-after:1500ms');
    const urls = await startJob(orch.url);
    const jobStartedBefore = Date.now();
    const job = drive(urls);
    try {
      await waitFor(() => job.state.outputs >= 1, 'output before the stall');
      // The stall hits 1.5 s after the job started, before jobStartedBefore + 1.5 s; an output
      // segment that started just before it may still be reported a little later.
      await sleep(jobStartedBefore + 1500 + 1000 - Date.now());
      const outputs = job.state.outputs;
      const status = job.state.statusEvents();
      const published = job.state.published;
      const segmentsIn = [...orch.jobs.values()][0]?.status().segmentsIn ?? 0;
      expect(status).toBeGreaterThan(0);

      await sleep(2000);
      expect(job.state.outputs, 'no output segment after the stall').toBe(outputs);
      expect(job.state.statusEvents(), 'no status event after the stall').toBe(status);
      expect(job.state.outputError).toBeUndefined();
      // Input is still accepted and read; the job is alive.
      expect(job.state.publishErrors).toEqual([]);
      expect(job.state.published).toBeGreaterThanOrEqual(published + 3);
      expect(orch.jobs.size).toBe(1);
      expect([...orch.jobs.values()][0].status().segmentsIn).toBeGreaterThanOrEqual(segmentsIn + 3);
    } finally {
      await job.stop();
    }
  }, 20_000);

  it('events-error-after: an error event arrives on the events channel, then output stops', async () => {
    const orch = await startInProcess('events-error-after:1s');
    const urls = await startJob(orch.url);
    const job = drive(urls);
    try {
      await waitFor(() => job.state.events.some((e) => e.type === 'error'), 'an error event');
      const error = job.state.events.find((e) => e.type === 'error');
      expect(error?.message).toContain('injected fault events-error-after:1000ms');
      expect(job.state.outputs).toBeGreaterThanOrEqual(1);
      await sleep(500);
      const outputs = job.state.outputs;
      const events = job.state.events.length;
      await sleep(1500);
      expect(job.state.outputs).toBe(outputs);
      expect(job.state.events.length).toBe(events);
      expect(job.state.publishErrors).toEqual([]);
    } finally {
      await job.stop();
    }
  }, 20_000);

  it('warmup: LOADING and no output for the time, input still read; then ONLINE and output', async () => {
    const orch = await startInProcess('warmup:1500ms');
    const urls = await startJob(orch.url);
    const startedAt = Date.now();
    const job = drive(urls);
    try {
      await waitFor(() => job.state.statusEvents() >= 3, 'status events while loading');
      expect(Date.now() - startedAt).toBeLessThan(1400);
      expect(job.state.outputs).toBe(0);
      expect(job.state.events.filter((e) => e.type === 'status').every((e) => e.state === 'LOADING')).toBe(
        true,
      );
      expect(job.state.published).toBeGreaterThanOrEqual(1);
      await waitFor(() => job.state.outputs >= 1, 'output after the warm-up', 10_000);
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(1500);
      await waitFor(
        () => job.state.events.some((e) => e.type === 'status' && e.state === 'ONLINE'),
        'ONLINE once warm',
      );
      expect(job.state.publishErrors).toEqual([]);
    } finally {
      await job.stop();
    }
  }, 20_000);

  it('exit-after (own process): the process exits and the trickle clients see network errors', async () => {
    const orch = await exitAfter;
    const urls = await startJob(orch.url);
    const job = drive(urls);
    try {
      const code = await Promise.race([
        orch.exited,
        sleep(10_000).then(() => {
          throw new Error(`process did not exit; stderr: ${orch.stderr()}`);
        }),
      ]);
      expect(code).toBe(1);
      expect(orch.stderr()).toContain('injected fault exit-after:1000ms: exiting');
      expect(job.state.outputs).toBeGreaterThanOrEqual(1);
      await job.reading;
      expect(job.state.outputError).toBeInstanceOf(TrickleError);
      expect((job.state.outputError as TrickleError).kind).toBe('network');
      await job.publishing;
      expect(job.state.publishErrors[0]).toBeInstanceOf(TrickleError);
      expect((job.state.publishErrors[0] as TrickleError).kind).toBe('network');
      const err = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OrchestratorError);
      expect((err as OrchestratorError).kind).toBe('unreachable');
    } finally {
      await job.stop();
    }
  }, 20_000);

  it('exit-after (embedded): every connection is dropped and the port closed', async () => {
    const orch = await startInProcess('exit-after:500ms');
    const urls = await startJob(orch.url);
    const job = drive(urls);
    try {
      await job.reading;
      expect(job.state.outputError).toBeInstanceOf(TrickleError);
      expect((job.state.outputError as TrickleError).kind).toBe('network');
      await job.publishing;
      expect((job.state.publishErrors[0] as TrickleError | undefined)?.kind).toBe('network');
      expect(orch.jobs.size).toBe(0);
    } finally {
      await job.stop();
    }
  }, 20_000);

  it('a bad fault is refused at start-up', async () => {
    await expect(
      LocalOrchestrator.start({
        serviceAddr: '127.0.0.1:0',
        models: ['passthrough'],
        pricePerUnit: 0n,
        pixelsPerUnit: 1n,
        capacity: 1,
        logger,
        fault: 'stall-output-after',
      }),
    ).rejects.toThrow(/fault needs a duration/);
  });
});
