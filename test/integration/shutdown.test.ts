// Graceful shutdown of the real gateway process (src/main.ts as `npm start` runs it): SIGTERM during
// a live stream and a slow batch request, a request handed back at the deadline, a second SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '../../src/live/stream-events.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { type AiBehavior, Capability, pngHeader, TestAiOrchestrator } from '../helpers/ai-orchestrator.ts';
import { type HookServer, startHookServer } from '../helpers/hook-server.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WeriftPublisher, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const MAIN = resolve(ROOT, 'src', 'main.ts');
const logger = pino({ level: 'silent' });
const MODEL = 'test/t2i';
const PNG = pngHeader(64, 32);
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let live: LocalOrchestrator;
let clip: Buffer;

beforeAll(async () => {
  live = await startFreeOrchestrator(logger, ['passthrough']);
  clip = await makeH264Clip({ seconds: 10 });
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await live?.close();
});

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

async function aiOrchestrator(answer: () => AiBehavior | Promise<AiBehavior>) {
  const o = await TestAiOrchestrator.start({ offers: { [Capability.TextToImage]: [MODEL] }, answer });
  cleanups.push(() => o.close());
  return o;
}

interface Gateway {
  base: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; at: number }>;
  output: () => string;
}

/** Starts the gateway as its own process and waits until it is ready to take streams. */
async function startGateway(args: string[]): Promise<Gateway> {
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LP_')));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, '-httpAddr', `127.0.0.1:${port}`, '-v', '3', ...args],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d) => {
    out = (out + d).slice(-200_000);
  });
  child.stderr?.on('data', (d) => {
    out = (out + d).slice(-200_000);
  });
  const exited = new Promise<{ code: number | null; at: number }>((done) =>
    child.once('exit', (code) => done({ code, at: Date.now() })),
  );
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    () => out.includes('lp-gateway is running') || child.exitCode !== null,
    'the gateway to start',
    30_000,
  );
  expect(child.exitCode, out).toBeNull();
  await waitFor(
    async () => (await fetch(`${base}/readyz`)).status === 200,
    'the gateway to be ready',
    10_000,
  );
  return { base, child, exited, output: () => out };
}

const textToImage = (base: string) =>
  fetch(`${base}/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'a lighthouse', model_id: MODEL, width: 64, height: 32 }),
  });

async function whipOffer(url: string): Promise<Response> {
  const peer = new WeriftPublisher();
  try {
    return await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: await peer.createOffer(),
    });
  } finally {
    await peer.close();
  }
}

const dtlsClosed = (pc: WeriftPublisher['pc']) =>
  pc.dtlsTransports.length > 0 && pc.dtlsTransports.every((t) => t.state === 'closed');

describe('graceful shutdown', () => {
  let hooks: HookServer;
  beforeAll(async () => {
    hooks = await startHookServer(() => ({ status: 204 }));
    cleanups.push(() => hooks.close());
  });

  it('SIGTERM: no new work (503 + Retry-After), the slow batch request finishes, the stream ends cleanly, events flushed, exit 0', async () => {
    const ai = await aiOrchestrator(async () => {
      await new Promise((r) => setTimeout(r, 2500));
      return {
        json: { images: [{ url: `data:image/png;base64,${PNG.toString('base64')}`, seed: 1, nsfw: false }] },
      };
    });
    const gw = await startGateway([
      ...['-orchAddr', `${live.url},${ai.url}`],
      ...['-shutdownTimeout', '15s'],
      ...['-liveAIEventsWebhookUrl', `${hooks.url}/events`],
    ]);
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200);
    const url = (stream: string, what: string) => `${gw.base}/live/video-to-video/${stream}/${what}`;
    const publisher = await WhipTestPublisher.connect(url('sd-cam', 'whip?model=passthrough'), {
      connectTimeoutMs: 15_000,
    });
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(url('sd-cam', 'whep'), { connectTimeoutMs: 15_000 });
    cleanups.push(() => viewer.close());
    const abort = new AbortController();
    const sending = publisher.send({ video: h264Frames(clip, 30), signal: abort.signal });
    cleanups.push(() => abort.abort());
    await waitFor(() => viewer.frames.length > 10, 'output at the viewer', 15_000);
    expect(live.jobs.size).toBe(1);

    const batch = textToImage(gw.base);
    await waitFor(() => ai.requests.length === 1, 'the batch request at its orchestrator', 5000);
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');

    await waitFor(async () => (await fetch(`${gw.base}/readyz`)).status === 503, 'not ready', 3000);
    const ready = await (await fetch(`${gw.base}/readyz`)).json();
    expect(ready).toMatchObject({ ready: false, reason: 'shutting down' });
    expect((await fetch(`${gw.base}/healthz`)).status).toBe(200); // alive all the same
    const refused = [
      await whipOffer(url('sd-new', 'whip')),
      await whipOffer(url('sd-cam', 'whep')),
      await textToImage(gw.base),
      await fetch(`${gw.base}/live/sd-push/0.ts`, { method: 'PUT', body: Buffer.alloc(188) }),
    ];
    for (const res of refused) {
      expect(res.status, `${res.url} ${gw.output().slice(-3000)}`).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await res.json()).error.code).toBe('SHUTTING_DOWN');
    }
    expect(ai.requests).toHaveLength(1);

    // The live stream ended cleanly: publisher and viewer told, the orchestrator's job closed.
    await waitFor(() => dtlsClosed(publisher.pc) && dtlsClosed(viewer.pc), 'publisher and viewer told', 5000);
    await waitFor(() => live.jobs.size === 0, 'the orchestrator job to be closed', 5000);
    abort.abort();
    await sending;

    // The batch request under way finished with its answer.
    const done = await batch;
    expect(done.status).toBe(200);
    expect((await done.json()).images).toHaveLength(1);

    const { code, at } = await gw.exited;
    expect(code, gw.output()).toBe(0);
    expect(at - signalledAt).toBeLessThan(12_000);
    // The stream's last events were flushed before the exit.
    const events = hooks.requests.flatMap((r) => r.json as StreamEvent[]);
    const closed = events.find(
      (e) => e.data.type === 'gateway_ingest_stream_closed' && e.data.stream === 'sd-cam',
    );
    expect(closed?.data.message).toBe('gateway shutting down');
  }, 90_000);

  it('a request still under way at the deadline is handed back (503 + Retry-After); the exit stays bounded', async () => {
    const ai = await aiOrchestrator(() => ({ hang: true }));
    const gw = await startGateway([...['-orchAddr', `${live.url},${ai.url}`], ...['-shutdownTimeout', '3s']]);
    const batch = textToImage(gw.base);
    await waitFor(() => ai.requests.length === 1, 'the batch request at its orchestrator', 5000);
    const signalledAt = Date.now();
    gw.child.kill('SIGTERM');
    const res = await batch;
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await res.json()).error.code).toBe('SHUTTING_DOWN');
    // Handed back at 60 % of the timeout, not before.
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(1500);
    const { code, at } = await gw.exited;
    expect(code, gw.output()).toBe(0);
    expect(at - signalledAt).toBeLessThan(3500);
  }, 60_000);

  it('a second SIGTERM exits at once', async () => {
    const ai = await aiOrchestrator(() => ({ hang: true }));
    const gw = await startGateway([
      ...['-orchAddr', `${live.url},${ai.url}`],
      ...['-shutdownTimeout', '30s'],
    ]);
    void textToImage(gw.base).catch(() => {});
    await waitFor(() => ai.requests.length === 1, 'the batch request at its orchestrator', 5000);
    gw.child.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${gw.base}/readyz`)).status === 503, 'draining', 3000);
    const secondAt = Date.now();
    gw.child.kill('SIGTERM');
    const { code, at } = await gw.exited;
    expect(code).toBe(1);
    expect(at - secondAt).toBeLessThan(1000);
  }, 60_000);
});
