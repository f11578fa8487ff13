// Client garbage on every route, seeded: valid requests mutated (bit flips, truncation, type swaps,
// huge numbers, deep nesting, huge strings, wrong content types, bad headers) and sent to a real
// gateway with a local orchestrator (live and transcoding) and a scriptable AI orchestrator on
// 127.0.0.1. None may answer 5xx, none may hang, the gateway keeps answering its health and status
// routes, no orchestrator ends up blamed (suspended), and memory does not run away. Then the
// measured abuse cases of issue P8 one by one.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AiJobRunner } from '../../src/batch/ai-client.ts';
import { ResultStore } from '../../src/batch/ai-results.ts';
import { parsePresetNames } from '../../src/batch/profiles.ts';
import { BodyBudget } from '../../src/http/input-guard.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { Capability, pngHeader, TestAiOrchestrator } from '../helpers/ai-orchestrator.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { mutate as mutateSdp, offerFixtures, prng } from '../helpers/sdp-mutations.ts';
import { WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const SEED = Number(process.env.MUTATION_SEED ?? 20261206);
const STREAM = 'mut-cam';

let orch: LocalOrchestrator;
let ai: TestAiOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let publisher: WhipTestPublisher | undefined;
let resultDir: string;
let results: ResultStore;
let segment: Buffer;

beforeAll(async () => {
  resultDir = await mkdtemp(join(tmpdir(), 'lpgw-mut-'));
  const file = join(resultDir, 'seg.ts');
  // A small real segment: mutations that still parse are transcoded for real, cheaply.
  await run('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=15'],
    ...[
      '-t',
      '1',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '15',
      '-pix_fmt',
      'yuv420p',
      '-f',
      'mpegts',
    ],
    file,
  ]);
  segment = await readFile(file);
  orch = await startFreeOrchestrator(logger, ['passthrough', 'invert'], { capacity: 8 });
  ai = await TestAiOrchestrator.start({
    offers: {
      [Capability.TextToImage]: ['stabilityai/sdxl-turbo'],
      [Capability.ImageToImage]: ['stabilityai/sdxl-turbo'],
      [Capability.Upscale]: ['stabilityai/stable-diffusion-x4-upscaler'],
      [Capability.LLM]: ['meta-llama/llama-3.1-8B-Instruct'],
      [Capability.TextToSpeech]: ['parler-tts/parler-tts-large-v1'],
    },
    answer: (req) =>
      req.path.includes('text-to-speech')
        ? { json: { audio: { url: 'data:audio/wav;base64,UklGRgAAAABXQVZF' } } }
        : req.path.includes('llm')
          ? { json: { choices: [{ message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] } }
          : { json: { images: [] } },
  });
  results = new ResultStore({ dir: resultDir, ttlMs: 60_000, logger });
  await results.start();
  gw = await startTestGateway({
    orchestrators: [orch.url, ai.url],
    logger,
    // The AI orchestrator advertises transcoding (as go-livepeer's do) but cannot transcode: it is
    // tried after the local orchestrator, so it is asked only if the local one failed a segment.
    random: () => 0,
    defaultModel: 'passthrough',
    limits: { ingestTimeoutMs: 120_000, maxStreams: 4 },
    bodyBudget: new BodyBudget(256 * 1024 * 1024),
    batch: (pool) => ({
      runner: new AiJobRunner({
        pool,
        identity: offchainIdentity,
        maxTries: 2,
        retryTimeoutMs: 10_000,
        tryTimeoutMs: 10_000,
        maxInFlight: 32,
        results,
        logger,
      }),
      results,
      bodyLimitBytes: 2 * 1024 * 1024,
    }),
    transcode: {
      identity: offchainIdentity,
      profiles: parsePresetNames('P144p30fps16x9'),
      maxSegmentBytes: 2 * 1024 * 1024,
      maxInFlight: 4,
      maxAttempts: 2,
      hlsWindowSegments: 3,
      streamIdleTimeoutMs: 60_000,
      maxStreams: 200,
    },
  });
  publisher = await WhipTestPublisher.connect(gw.url(STREAM, 'whip'), { connectTimeoutMs: 15_000 });
}, 90_000);

afterAll(async () => {
  await publisher?.close().catch(() => {});
  await gw?.close();
  await orch?.close();
  await ai?.close();
  results?.stop();
  await rm(resultDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Mutations

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string | FormData;
}

const pick = <T>(r: () => number, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

const HUGE_NUMBERS = ['1e400', '-1e400', '18446744073709551617', '1e308', '-0', '9007199254740993', '1.5'];
const SWAPS: Json[] = [null, true, false, 0, -1, '', 'x', [], {}, [1, 2], { a: 1 }, 'NaN', '1e400'];

/** One JSON value changed somewhere: a type swap, a huge number, a huge string, deep nesting. */
function mutateJsonText(value: Record<string, Json>, r: () => number): string {
  const copy = structuredClone(value) as Record<string, Json>;
  const keys = Object.keys(copy);
  const key = keys.length && r() < 0.85 ? pick(r, keys) : `extra_${Math.floor(r() * 100)}`;
  switch (Math.floor(r() * 6)) {
    case 0:
      copy[key] = pick(r, SWAPS);
      return JSON.stringify(copy);
    case 1: {
      // A number JSON.stringify cannot write: spliced in as text.
      const text = JSON.stringify({ ...copy, [key]: '__N__' });
      return text.replace('"__N__"', pick(r, HUGE_NUMBERS));
    }
    case 2:
      copy[key] = 'z'.repeat(pick(r, [300, 5000, 300_000]));
      return JSON.stringify(copy);
    case 3: {
      const depth = pick(r, [20, 33, 40, 1000, 20_000]);
      const text = JSON.stringify({ ...copy, [key]: '__D__' });
      return text.replace('"__D__"', `${'{"p":'.repeat(depth)}1${'}'.repeat(depth)}`);
    }
    case 4:
      return JSON.stringify(pick(r, [[copy], 'string', 42, null, []] as Json[]));
    default:
      delete copy[key];
      return JSON.stringify(copy);
  }
}

/** Bytes changed: flips, truncation, insertion, duplication. */
function mutateBytes(b: Buffer, r: () => number): Buffer {
  const out = Buffer.from(b);
  switch (Math.floor(r() * 4)) {
    case 0: {
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) out[Math.floor(r() * out.length)]! ^= 1 << Math.floor(r() * 8);
      return out;
    }
    case 1:
      return out.subarray(0, Math.floor(r() * out.length));
    case 2: {
      const at = Math.floor(r() * out.length);
      return Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(r() * 256)]), out.subarray(at)]);
    }
    default: {
      const at = Math.floor(r() * out.length);
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.max(0, at - 64))]);
    }
  }
}

const WRONG_TYPES = [
  'text/plain',
  'application/xml',
  'multipart/form-data',
  '',
  'application/json; charset=latin1',
];

function jsonRequest(path: string, base: Record<string, Json>, r: () => number): Req {
  const roll = r();
  let body: string | Buffer =
    roll < 0.7 ? mutateJsonText(base, r) : mutateBytes(Buffer.from(JSON.stringify(base)), r);
  if (roll > 0.95) body = Buffer.from(mutateJsonText(base, r)).subarray(0, 7);
  const type = r() < 0.12 ? pick(r, WRONG_TYPES) : 'application/json';
  return { method: 'POST', path, headers: type ? { 'content-type': type } : {}, body };
}

function multipartRequest(path: string, fields: Record<string, string>, r: () => number): Req {
  const form = new FormData();
  const image = pngHeader(64 + Math.floor(r() * 64), 64);
  const img =
    r() < 0.5 ? mutateBytes(image, r) : r() < 0.5 ? pngHeader(pick(r, [60000, 5000, 1]), 60000) : image;
  for (const [k, v] of Object.entries(fields)) {
    form.append(k, r() < 0.3 ? String(pick(r, [...HUGE_NUMBERS, 'x', '', 'z'.repeat(30_000)])) : v);
  }
  if (r() < 0.9) form.append('image', new Blob([new Uint8Array(img)]), 'x.png');
  else form.append('image', 'not a file');
  if (r() < 0.1) {
    // The form serialized and then damaged as bytes.
    return {
      method: 'POST',
      path,
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body: mutateBytes(
        Buffer.from('--x\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi\r\n--x--\r\n'),
        r,
      ),
    };
  }
  return { method: 'POST', path, headers: {}, body: form };
}

function segmentRequest(r: () => number, n: number): Req {
  const headers: Record<string, string> = {
    'content-type': r() < 0.1 ? pick(r, WRONG_TYPES) || 'video/mp2t' : 'video/mp2t',
  };
  if (r() < 0.15) headers['content-duration'] = pick(r, ['0', '-5', 'NaN', '1e400', '99999999999', '2000']);
  if (r() < 0.15) headers['content-resolution'] = pick(r, ['0x0', '99999x99999', 'axb', '160x90']);
  const seq = r() < 0.05 ? pick(r, ['x.ts', '99999999999999999999.ts', '1.avi', '1']) : `${n}.ts`;
  return { method: 'PUT', path: `/live/mut${n % 7}/${seq}`, headers, body: mutateBytes(segment, r) };
}

const offers = [...offerFixtures().values()];

function requestFor(i: number, r: () => number): Req {
  const kind = i % 20;
  if (kind < 5)
    return jsonRequest(
      '/text-to-image',
      { prompt: 'a cat', width: 512, height: 512, seed: 3, num_inference_steps: 4 },
      r,
    );
  if (kind < 7)
    return jsonRequest(
      '/llm',
      { messages: [{ role: 'user', content: 'hi' }], max_tokens: 16, temperature: 0.5 },
      r,
    );
  if (kind < 8) return jsonRequest('/text-to-speech', { text: 'hello', description: 'calm' }, r);
  if (kind < 10)
    return multipartRequest(
      pick(r, ['/image-to-image', '/upscale']),
      { prompt: 'restyle', strength: '0.5', seed: '4' },
      r,
    );
  if (kind < 14) {
    return jsonRequest(
      `/live/video-to-video/${STREAM}/update`,
      { prompt: 'x', strength: 0.5, params: { a: [1, 2] } },
      r,
    );
  }
  if (kind < 15) return jsonRequest('/image-to-video/result', { request_id: 'abc' }, r);
  if (kind < 16) {
    const sdp = mutateSdp(pick(r, offers), r);
    return {
      method: 'POST',
      path: `/live/video-to-video/mut-${i}/whip`,
      headers: { 'content-type': r() < 0.9 ? 'application/sdp' : 'application/json' },
      body: sdp,
    };
  }
  if (kind < 17 && i % 40 === 16) return segmentRequest(r, i);
  const gets = [
    `/live/video-to-video/${STREAM}/status`,
    '/live/streams',
    `/orchestrators?model=${'m'.repeat(Math.floor(r() * 5000))}`,
    `/results/${'a'.repeat(Math.floor(r() * 300))}/x.png`,
    `/stream/${encodeURIComponent('../..%00')}.m3u8`,
    `/live/video-to-video/${encodeURIComponent('\u0000'.repeat(5))}/status`,
  ];
  return {
    method: r() < 0.8 ? 'GET' : pick(r, ['DELETE', 'PATCH', 'PUT']),
    path: pick(r, gets),
    headers: {},
  };
}

interface Sent {
  req: Req;
  status: number;
  code?: string;
  body: string;
}

async function send(base: string, req: Req): Promise<Sent> {
  const res = await fetch(`${base}${req.path}`, {
    method: req.method,
    headers: req.headers,
    body: req.body as BodyInit | undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const body = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
  } catch {
    // not JSON: a page, a playlist, an SDP answer
  }
  if (res.status === 201) {
    const location = res.headers.get('location');
    if (location) await fetch(new URL(location, base), { method: 'DELETE' }).then((r) => r.body?.cancel());
  }
  return { req, status: res.status, code, body };
}

const POINTER = /0x[0-9a-f]{8,}|\/tmp\/|\bat \S+ \(|node:internal/i;

describe('a seeded mutation run over every route', () => {
  it(`thousands of mutated requests (seed ${SEED}): no 5xx, no hang, no blame, no runaway memory`, async () => {
    const r = prng(SEED);
    const TOTAL = 2400;
    const PARALLEL = 8;
    const rssBefore = process.memoryUsage().rss;
    const failures: string[] = [];
    const counts = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        const i = next++;
        const req = requestFor(i, r);
        let sent: Sent;
        try {
          sent = await send(gw.base, req);
        } catch (err) {
          failures.push(`#${i} ${req.method} ${req.path.slice(0, 80)}: ${(err as Error).message}`);
          continue;
        }
        counts.set(sent.status, (counts.get(sent.status) ?? 0) + 1);
        // 503 NO_ORCHESTRATOR is the truth for a model nobody offers (a mutated model id).
        const allowed = sent.status < 500 || (sent.status === 503 && sent.code === 'NO_ORCHESTRATOR');
        if (!allowed)
          failures.push(
            `#${i} ${req.method} ${req.path.slice(0, 80)} → ${sent.status} ${sent.body.slice(0, 300)}`,
          );
        if (sent.status >= 400 && POINTER.test(sent.body))
          failures.push(`#${i} leaks internals: ${sent.body.slice(0, 300)}`);
        if (sent.status >= 400 && sent.body.length > 4096)
          failures.push(`#${i} error body of ${sent.body.length} bytes`);
        if (i % 200 === 0) {
          // Still answering everyone.
          for (const path of ['/healthz', '/live/streams', `/live/video-to-video/${STREAM}/status`]) {
            const res = await fetch(`${gw.base}${path}`, { signal: AbortSignal.timeout(10_000) });
            await res.body?.cancel();
            if (res.status !== 200) failures.push(`after #${i}: GET ${path} → ${res.status}`);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const suspended = gw.pool.list().filter((o) => o.state === 'suspended');
    const grown = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
    console.log(
      `mutation run: ${TOTAL} requests, statuses ${JSON.stringify(Object.fromEntries([...counts].sort()))}, RSS +${grown.toFixed(0)} MB`,
    );
    expect(failures.slice(0, 20)).toEqual([]);
    expect(suspended.map((o) => `${o.url}: ${o.why}`)).toEqual([]);
    // Bodies are bounded (2 MiB AI, 2 MiB segments, 1 MiB JSON) and released: a leak of every
    // request's body would be gigabytes.
    expect(grown).toBeLessThan(600);
    const health = await fetch(`${gw.base}/healthz`);
    expect(health.status).toBe(200);
  }, 240_000);
});

describe('the measured abuse cases (issue P8)', () => {
  it('/update nested 20,000 deep is a 400, and /status and /live/streams keep answering everyone', async () => {
    const deep = `{"params":${'{"p":'.repeat(20_000)}1${'}'.repeat(20_000)}}`;
    const res = await fetch(gw.url(STREAM, 'update'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: deep,
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toEqual({
      code: 'TOO_DEEP',
      message: 'the JSON body is nested deeper than 32 levels',
    });
    expect((await fetch(gw.url(STREAM, 'status'))).status).toBe(200);
    expect((await fetch(`${gw.base}/live/streams`)).status).toBe(200);
  });

  it('a bit-flipped segment is never a 5xx and its error carries no ffmpeg pointers or paths', async () => {
    const r = prng(7);
    const flipped = Buffer.from(segment);
    for (let i = 188 * 4; i < flipped.length; i++) {
      if (i % 188 > 3 && r() < 0.01) flipped[i]! ^= 1 << Math.floor(r() * 8);
    }
    const res = await fetch(`${gw.base}/live/flip/0.ts`, { method: 'PUT', body: new Uint8Array(flipped) });
    const body = await res.text();
    expect([200, 422]).toContain(res.status);
    expect(body).not.toMatch(POINTER);
    expect(gw.pool.list().filter((o) => o.state === 'suspended')).toEqual([]);
  });
});

describe('-transcodeMaxInFlight', () => {
  let cap: Awaited<ReturnType<typeof startTestGateway>>;
  beforeAll(async () => {
    cap = await startTestGateway({
      orchestrators: [orch.url],
      logger,
      transcode: {
        identity: offchainIdentity,
        profiles: parsePresetNames('P144p30fps16x9'),
        maxSegmentBytes: 2 * 1024 * 1024,
        maxInFlight: 4,
        maxAttempts: 1,
        hlsWindowSegments: 3,
        streamIdleTimeoutMs: 60_000,
        maxStreams: 20,
      },
    });
  });
  afterAll(async () => cap?.close());

  it('segment pushes past -transcodeMaxInFlight get 503 with Retry-After before their body is read', async () => {
    // Four pushes whose bodies never finish hold the four slots.
    const held: (() => void)[] = [];
    const pending = Array.from({ length: 4 }, (_, i) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array(segment.subarray(0, 188)));
          held.push(() => controller.error(new Error('test done')));
        },
      });
      return fetch(`${cap.base}/live/held${i}/0.ts`, {
        method: 'PUT',
        body,
        duplex: 'half',
      } as RequestInit).catch(() => undefined);
    });
    const deadline = Date.now() + 20_000;
    let res: Response | undefined;
    // The held requests arrive at the gateway in their own time on a loaded machine.
    while (Date.now() < deadline) {
      res = await fetch(`${cap.base}/live/fifth/0.ts`, { method: 'PUT', body: new Uint8Array(segment) });
      if (res.status === 503) break;
      await res.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(res?.status).toBe(503);
    expect(res?.headers.get('retry-after')).toBe('1');
    expect(((await (res as Response).json()) as { error: { code: string } }).error.code).toBe('BUSY');
    for (const release of held) release();
    await Promise.all(pending);
    // Slots come back once those requests are gone.
    const deadline2 = Date.now() + 20_000;
    let after = 503;
    while (Date.now() < deadline2 && after === 503) {
      const again = await fetch(`${cap.base}/live/sixth/0.ts`, {
        method: 'PUT',
        body: new Uint8Array(segment),
      });
      after = again.status;
      await again.body?.cancel();
    }
    expect(after).toBe(200);
  }, 60_000);
});

describe('-httpBodyBudgetBytes', () => {
  let small: Awaited<ReturnType<typeof startTestGateway>>;
  beforeAll(async () => {
    small = await startTestGateway({ orchestrators: [], logger, bodyBudget: new BodyBudget(64 * 1024) });
  });
  afterAll(async () => small?.close());

  it('a declared body past the budget is refused with 503 + Retry-After before it is read', async () => {
    const res = await fetch(small.url('nobody', 'update'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'x'.repeat(100 * 1024) }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await res.json()).error.code).toBe('BUSY');
  });

  it('a chunked body is counted as it arrives; within the budget it is served, and the budget comes back', async () => {
    const chunked = (size: number) =>
      fetch(small.url('nobody', 'update'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode(JSON.stringify({ prompt: 'x'.repeat(size) })));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
    const over = await chunked(100 * 1024);
    expect(over.status).toBe(503);
    expect(over.headers.get('retry-after')).toBe('1');
    for (let i = 0; i < 5; i++) {
      // Within the budget: parsed, then 404 for the stream that does not exist.
      const res = await chunked(30 * 1024);
      expect(res.status).toBe(404);
      await res.body?.cancel();
    }
  });
});
