// A live stream as an operator follows it: go-livepeer's stream events at a real events webhook and
// on /live/events (SSE), the heartbeat posting its id, and the heartbeat's answer ending it.
import { type IncomingMessage, request } from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/index.ts';
import { Drain, SseClients } from '../../src/http/operator-routes.ts';
import { EventsWebhook } from '../../src/live/events-webhook.ts';
import { Heartbeat } from '../../src/live/heartbeat.ts';
import { type StreamEvent, StreamEvents } from '../../src/live/stream-events.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { type HookServer, startHookServer } from '../helpers/hook-server.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown> | unknown)[] = [];
let clip: Buffer;

beforeAll(async () => {
  clip = await makeH264Clip({ seconds: 20 });
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function orchestrator(fault = 'none') {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    fault,
    statusIntervalMs: 500,
    logger,
  });
  cleanups.push(() => orch.close());
  return orch;
}

interface SseEvent {
  id: string;
  event: string;
  data: StreamEvent;
}

/** Reads /live/events as an EventSource would. */
async function sse(url: string, token?: string) {
  const ac = new AbortController();
  const res = await fetch(url, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: ac.signal,
  });
  const events: SseEvent[] = [];
  if (res.status === 200 && res.body) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    void (async () => {
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const fields = Object.fromEntries(
            block
              .split('\n')
              .filter((l) => !l.startsWith(':') && l.includes(': '))
              .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
          );
          if (fields.data) events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
        }
      }
    })();
  }
  const close = () => ac.abort();
  cleanups.push(close);
  return { status: res.status, events, close };
}

describe('stream events, heartbeat and termination', () => {
  let hooks: HookServer;
  let beats: HookServer;
  const received: StreamEvent[] = [];
  let terminate: string[] = [];

  beforeAll(async () => {
    hooks = await startHookServer((req) => {
      // The first delivery fails: the batch must come again (retry with backoff), not be lost.
      if (hooks.requests.length === 1) return { status: 503, body: 'busy' };
      received.push(...(req.json as StreamEvent[]));
      return { status: 204 };
    });
    beats = await startHookServer(() => ({ status: 200, body: { terminatedStreamIds: terminate } }));
    cleanups.push(
      () => hooks.close(),
      () => beats.close(),
    );
  });

  it('delivers the trace of a stream to the webhook and SSE, and ends it when the heartbeat says so', async () => {
    const failing = await orchestrator('stall-output-after:3s');
    const healthy = await orchestrator();
    const events = new StreamEvents({ gateway: 'gw.example.test' });
    const webhook = new EventsWebhook({
      url: `${hooks.url}/events`,
      headers: { 'X-Events-Key': 'ek' },
      flushIntervalMs: 100,
      backoffMs: 100,
      logger,
    });
    webhook.attach(events);
    const gw = await startTestGateway({
      orchestrators: [failing.url, healthy.url],
      random: () => 0,
      logger,
      events,
      limits: { ingestTimeoutMs: 4000, noOutputTimeoutMs: 1500, firstOutputTimeoutMs: 5000 },
      live: { operatorToken: new Secret('op') },
    });
    cleanups.push(() => gw.close());
    const heartbeat = new Heartbeat({
      url: `${beats.url}/beat`,
      headers: { Authorization: 'Bearer hb' },
      intervalMs: 200,
      ids: () => gw.streams.liveIds(),
      terminate: (ids, reason) => gw.streams.terminate(ids, reason),
      logger,
    });
    heartbeat.start();
    cleanups.push(() => heartbeat.stop());

    // SSE needs the operator's token.
    expect((await sse(`${gw.base}/live/events`)).status).toBe(401);
    expect((await sse(`${gw.base}/live/events`, 'wrong')).status).toBe(401);
    const reader = await sse(`${gw.base}/live/events`, 'op');
    expect(reader.status).toBe(200);
    const only = await sse(`${gw.base}/live/events?stream=other`, 'op');

    // With no stream, the heartbeat says so, with its headers.
    await waitFor(() => beats.requests.length > 0, 'a heartbeat', 3000);
    expect(beats.requests[0].json).toEqual({ ids: [] });
    expect(beats.requests[0].headers.authorization).toBe('Bearer hb');
    expect(beats.requests[0].headers['content-type']).toBe('application/json');

    const publisher = await WhipTestPublisher.connect(
      gw.url('ev-cam', 'whip?model=passthrough&streamId=str_ev'),
      { connectTimeoutMs: 15_000 },
    );
    cleanups.push(() => publisher.close());
    const viewer = await WhepTestViewer.connect(gw.url('ev-cam', 'whep'), { connectTimeoutMs: 15_000 });
    cleanups.push(() => viewer.close());
    const abort = new AbortController();
    const sending = publisher.send({ video: h264Frames(clip, 30), signal: abort.signal });
    cleanups.push(() => abort.abort());

    const types = () => received.map((e) => e.data.type);
    await waitFor(() => types().includes('gateway_receive_first_processed_segment'), 'first output', 15_000);
    const update = await fetch(gw.url('ev-cam', 'update'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt":"a cat"}',
    });
    expect(update.status).toBe(200);
    // The first orchestrator stalls: the stream moves to the second.
    await waitFor(() => types().includes('orchestrator_swap'), 'a swap', 15_000);
    await waitFor(
      () =>
        received.some(
          (e) =>
            e.data.type === 'gateway_receive_first_processed_segment' &&
            (e.data.orchestrator_info as { url: string }).url === healthy.url,
        ),
      'output from the second orchestrator',
      15_000,
    );
    await waitFor(
      () => beats.requests.some((r) => JSON.stringify(r.json) === '{"ids":["str_ev"]}'),
      'the stream id in a heartbeat',
    );

    // The heartbeat service ends it (ids it does not know are ignored).
    terminate = ['str_ev', 'no-such-stream'];
    await waitFor(() => gw.streams.liveCount === 0, 'the heartbeat to end the stream', 3000);
    terminate = [];
    abort.abort();
    await sending;
    // Publisher and viewer are told at once (DTLS close_notify).
    const closed = (pc: typeof publisher.pc) =>
      pc.dtlsTransports.length > 0 && pc.dtlsTransports.every((t) => t.state === 'closed');
    await waitFor(() => closed(publisher.pc) && closed(viewer.pc), 'publisher and viewer told', 3000);
    // Their sessions are gone, as after a DELETE, and say why.
    for (const res of [
      await fetch(publisher.resourceUrl as string, { method: 'DELETE' }),
      await fetch(viewer.resourceUrl as string, { method: 'DELETE' }),
      await fetch(gw.url('ev-cam', 'update'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      }),
    ]) {
      expect(res.status).toBe(404);
      expect((await res.json()).error.message).toBe('stream ended: terminated by the operator');
    }
    publisher.resourceUrl = undefined;
    viewer.resourceUrl = undefined;
    const status = await gw.status('ev-cam');
    expect(status.endReason).toBe('terminated by the operator');
    // go-livepeer keeps the stream's first gateway error: here the stall.
    expect(status.gateway_status.error.error_message).toContain('no output');

    await waitFor(() => types().includes('gateway_ingest_stream_closed'), 'the last event delivered', 5000);
    // The envelope and the order of a stream's life, as go-livepeer's Kafka topic carries them.
    const ours = received.filter((e) => e.data.stream === 'ev-cam');
    for (const e of ours) {
      expect(e.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(e.timestamp).toMatch(/^\d{13}$/);
      expect(e.gateway).toBe('gw.example.test');
      expect(e.data.stream_id).toBe('str_ev');
      expect(e.data.request_id).toMatch(/^[0-9a-f]{8}$/);
    }
    const trace = ours
      .filter((e) => e.type !== 'ai_stream_status' && !(e.data.type === 'error' && e.data.code === 'stall'))
      .map((e) => `${e.type}/${e.data.type}`);
    // Input and output stream chunk by chunk, so the first output can come before the first
    // input segment is finished: those two are checked for presence, the rest for order.
    const first = (step: string, from = 0) => trace.indexOf(step, from);
    const swapAt = first('stream_trace/orchestrator_swap');
    expect(first('stream_trace/gateway_receive_stream_request')).toBe(0);
    for (const step of [
      'stream_trace/gateway_send_first_ingest_segment',
      'stream_trace/gateway_receive_first_processed_segment',
      'ai_stream_events/params_update',
    ]) {
      expect(first(step), `${step} before the swap in ${trace.join(', ')}`).toBeGreaterThan(0);
      expect(first(step)).toBeLessThan(swapAt);
    }
    // After the swap: the params replayed to the new orchestrator and its first output; the end.
    expect(first('ai_stream_events/params_update', swapAt)).toBeGreaterThan(swapAt);
    expect(first('stream_trace/gateway_receive_first_processed_segment', swapAt)).toBeGreaterThan(swapAt);
    expect(trace.slice(-2)).toEqual(['ai_stream_events/error', 'stream_trace/gateway_ingest_stream_closed']);
    const swap = ours.find((e) => e.data.type === 'orchestrator_swap')!.data;
    expect(swap).toMatchObject({
      orchestrator_info: { url: failing.url },
      to: healthy.url,
      blame: 'orchestrator',
      code: 'stall',
      pipeline: 'passthrough',
    });
    expect(swap.message).toContain('no output');
    expect(ours.find((e) => e.data.type === 'params_update')!.data.params).toEqual({ prompt: 'a cat' });
    const error = ours.filter((e) => e.data.type === 'error').at(-1)!.data;
    expect(error.message).toBe('stream terminated: terminated by the operator');
    expect(ours.some((e) => e.type === 'ai_stream_status' && e.data.type === 'status')).toBe(true);
    // The events webhook and SSE saw the same events (the first delivery was retried).
    expect(hooks.requests[0].headers['x-events-key']).toBe('ek');
    expect(webhook.stats()).toMatchObject({ droppedQueueFull: 0, droppedFailed: 0 });
    await waitFor(() => reader.events.length >= received.length, 'SSE to catch up', 3000);
    expect(reader.events.map((e) => e.id)).toEqual(received.map((e) => e.id));
    expect(reader.events.find((e) => e.data.data.type === 'orchestrator_swap')?.event).toBe(
      'orchestrator_swap',
    );
    // ?stream= keeps only that stream's events.
    expect(only.events).toEqual([]);
    await webhook.flush(Date.now() + 1000);
  }, 60_000);

  it('a publish no orchestrator can serve leaves its trace', async () => {
    const orch = await orchestrator();
    const gw = await startTestGateway({ orchestrators: [orch.url], logger });
    cleanups.push(() => gw.close());
    const seen: StreamEvent[] = [];
    const off = gw.streams.events.subscribe((e) => seen.push(e));
    cleanups.push(off);
    await expect(WhipTestPublisher.connect(gw.url('none-cam', 'whip?model=sdxl-turbo'))).rejects.toThrow(
      /503/,
    );
    expect(seen.map((e) => e.data.type)).toEqual([
      'gateway_receive_stream_request',
      'gateway_no_orchestrators_available',
      'error',
      'gateway_ingest_stream_closed',
    ]);
    expect(seen[2].data).toMatchObject({ code: 'no-orchestrator', stream_id: '', pipeline: 'sdxl-turbo' });
  }, 20_000);
});

describe('SSE clients that cannot keep up', () => {
  it('are dropped once their buffer passes the bound, and counted; the others go on', async () => {
    const orch = await orchestrator();
    const sseClients = new SseClients({ maxBufferedBytes: 64 * 1024 });
    const gw = await startTestGateway({
      orchestrators: [orch.url],
      logger,
      live: { operatorToken: new Secret('op') },
      operator: { drain: new Drain(), sse: sseClients },
    });
    cleanups.push(() => gw.close());
    // A client that reads nothing: its socket fills, then the server-side buffer.
    const stalled = request(`${gw.base}/live/events`, { headers: { authorization: 'Bearer op' } });
    const stalledRes = await new Promise<IncomingMessage>((resolve) => {
      stalled.on('response', resolve);
      stalled.end();
    });
    stalledRes.pause();
    let ended = false;
    stalledRes.on('close', () => {
      ended = true;
    });
    stalledRes.on('error', () => {});
    const reading = await sse(`${gw.base}/live/events`, 'op');
    await waitFor(() => sseClients.stats().clients === 2, 'two clients', 2000);
    const big = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 2000 && sseClients.stats().dropped === 0; i++) {
      gw.streams.events.emit('stream_trace', { type: 'test_event', stream: 's', n: i, pad: big });
      // A client that reads keeps up with this pace; the stalled one cannot.
      if (i % 2 === 1) await new Promise((r) => setTimeout(r, 2));
    }
    expect(sseClients.stats().dropped).toBe(1);
    // Once it reads what its socket holds, it finds the stream closed by the gateway.
    stalledRes.resume();
    await waitFor(() => ended, 'the slow client to be cut off', 5000);
    expect(sseClients.stats().clients).toBe(1);
    gw.streams.events.emit('stream_trace', { type: 'after', stream: 's' });
    await waitFor(
      () => reading.events.some((e) => e.data.data.type === 'after'),
      'the reading client to go on',
      3000,
    );
    stalled.destroy();
  }, 30_000);
});

describe('events webhook queue', () => {
  it('keeps at most maxQueued events, dropping the oldest, and counts them', async () => {
    const slow = await startHookServer(() => ({ status: 200, delayMs: 300 }));
    cleanups.push(() => slow.close());
    const webhook = new EventsWebhook({
      url: slow.url,
      maxQueued: 10,
      batchSize: 5,
      flushIntervalMs: 10,
      logger,
    });
    const events = new StreamEvents();
    webhook.attach(events);
    for (let i = 0; i < 40; i++) events.emit('stream_trace', { type: 'e', n: i });
    // One batch of 5 went out at once; of the 35 after it, the 10 newest wait.
    expect(webhook.stats()).toMatchObject({ queued: 10, droppedQueueFull: 25 });
    await webhook.flush(Date.now() + 5000);
    const delivered = slow.requests.flatMap((r) => (r.json as StreamEvent[]).map((e) => e.data.n));
    expect(delivered).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 10 }, (_, i) => 30 + i)]);
    expect(webhook.stats()).toMatchObject({ delivered: 15, droppedQueueFull: 25, droppedFailed: 0 });
  }, 20_000);

  it('retries a failed batch with backoff, gives up after maxAttempts, and does not retry a 4xx', async () => {
    const down = await startHookServer(() => ({ status: 500 }));
    cleanups.push(() => down.close());
    const webhook = new EventsWebhook({
      url: down.url,
      maxAttempts: 3,
      backoffMs: 100,
      flushIntervalMs: 10,
      logger,
    });
    const events = new StreamEvents();
    webhook.attach(events);
    events.emit('stream_trace', { type: 'e' });
    await waitFor(() => webhook.stats().droppedFailed === 1, 'the batch to be given up', 5000);
    expect(down.requests).toHaveLength(3);
    const gaps = down.requests.slice(1).map((r, i) => r.at - down.requests[i].at);
    expect(gaps[0]).toBeGreaterThanOrEqual(90);
    expect(gaps[1]).toBeGreaterThanOrEqual(190); // doubled
    down.answer(() => ({ status: 400 }));
    events.emit('stream_trace', { type: 'e' });
    await waitFor(() => webhook.stats().droppedFailed === 2, 'the refused batch', 3000);
    expect(down.requests).toHaveLength(4);
    await webhook.flush(Date.now() + 1000);
  }, 20_000);
});
