// What a client sees when it sends an offer, over real HTTP to the real gateway and the local
// orchestrator: the playback URL header, 400s that name the line, readable 413s (also with
// Expect: 100-continue), no library text in any error, and seeded fuzzing of whole requests.
import http from 'node:http';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGatewayApp } from '../../src/http/app.ts';
import type { LiveStreams } from '../../src/live/registry.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { StaticSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { SDP_LIMITS } from '../../src/webrtc/index.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { INVALID_MUTATIONS, mutate, offerFixtures, prng, withInvalidUtf8 } from '../helpers/sdp-mutations.ts';
import { WhepTestViewer } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const fixtures = offerFixtures();
const chromeWhip = fixtures.get('chrome-whip-offer.sdp') as string;
const chromeWhep = fixtures.get('chrome-whep-offer.sdp') as string;
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough'], { capacity: 16 });
  // Streams published from captured offers never send media: keep them while the test runs.
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    defaultModel: 'passthrough',
    limits: { ingestTimeoutMs: 120_000, maxViewers: 1000, maxStreams: 64 },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

interface Reply {
  status: number;
  headers: Headers;
  body: string;
}

async function post(url: string, body: string | Buffer): Promise<Reply> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: typeof body === 'string' ? body : new Blob([new Uint8Array(body)]),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

async function remove(res: Reply, base: string) {
  const location = res.headers.get('location');
  if (res.status === 201 && location) {
    const del = await fetch(new URL(location, base), { method: 'DELETE' });
    expect(del.status).toBe(200);
  }
}

/** A 4xx with `{ error: { code, message } }` and nothing of a library's exception text. */
function expectCleanRefusal(res: Reply) {
  expect(res.status, res.body).toBeGreaterThanOrEqual(400);
  expect(res.status, res.body).toBeLessThan(500);
  const { error } = JSON.parse(res.body);
  expect(typeof error.code).toBe('string');
  expect(typeof error.message).toBe('string');
  expect(error.message).not.toMatch(/TypeError|Cannot read|undefined|exception|werift/i);
}

/** A POST through node's http client, so a reset shows as an error instead of a response. */
function rawPost(
  url: string,
  size: number,
  mode: 'length' | 'expect' | 'chunked',
): Promise<{ status: number; body: string; continued: boolean }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/sdp' };
    if (mode !== 'chunked') headers['content-length'] = size;
    if (mode === 'expect') headers.expect = '100-continue';
    const req = http.request(url, { method: 'POST', headers });
    let continued = false;
    const body = Buffer.alloc(size, 'a');
    req.on('response', (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, continued }));
    });
    // EPIPE after the response arrived is the server closing as it said it would; before, it is a reset.
    req.on('error', reject);
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    if (mode !== 'expect') req.end(body);
  });
}

describe('Livepeer-Playback-URL', () => {
  it('WHIP 201 names the stream’s WHEP URL (absolute, from the Host), exposed to browsers; it plays', async () => {
    const res = await post(gw.url('pb1', 'whip'), chromeWhip);
    expect(res.status).toBe(201);
    expect(res.headers.get('livepeer-playback-url')).toBe(`${gw.base}/live/video-to-video/pb1/whep`);
    expect(res.headers.get('access-control-expose-headers')).toContain('Livepeer-Playback-URL');
    const viewer = await WhepTestViewer.connect(res.headers.get('livepeer-playback-url') as string);
    await viewer.close();
    await remove(res, gw.base);
  }, 20_000);

  it('uses the configured public URL when there is one (TLS in front, another host name)', async () => {
    const behindProxy = await startTestGateway({
      orchestrators: [orch.url],
      logger,
      defaultModel: 'passthrough',
      publicUrl: 'https://gw.example.test/',
    });
    try {
      const res = await post(behindProxy.url('pb2', 'whip'), chromeWhip);
      expect(res.status).toBe(201);
      expect(res.headers.get('livepeer-playback-url')).toBe(
        'https://gw.example.test/live/video-to-video/pb2/whep',
      );
      await remove(res, behindProxy.base);
    } finally {
      await behindProxy.close();
    }
  }, 20_000);
});

describe('malformed offers over HTTP', () => {
  it.each(INVALID_MUTATIONS.map((m) => [m.name, m.apply] as const))(
    'WHIP and WHEP: 400 naming the line: %s',
    async (_, apply) => {
      const whip = await post(gw.url('bad', 'whip'), apply(chromeWhip));
      expectCleanRefusal(whip);
      expect(whip.status).toBe(400);
      expect(JSON.parse(whip.body).error).toMatchObject({
        code: 'BAD_SDP',
        message: expect.stringMatching(/^line \d+: .*"$/),
      });
      // WHEP to a live stream (one published from a captured offer).
      const live = await post(gw.url('bad-view', 'whip'), chromeWhip);
      const whep = await post(gw.url('bad-view', 'whep'), apply(chromeWhep));
      await remove(live, gw.base);
      expectCleanRefusal(whep);
      expect(JSON.parse(whep.body).error.message).toMatch(/^line \d+: .*"$/);
    },
  );

  it('non-UTF-8 bytes: 400 naming the line', async () => {
    const res = await post(gw.url('utf', 'whip'), withInvalidUtf8(chromeWhip));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toEqual({
      code: 'BAD_SDP',
      message: 'line 3: not valid UTF-8: "s=??-"',
    });
  });

  it.each(['whip', 'whep'])(
    '%s: a body over the limit gets a readable 413, also after Expect: 100-continue',
    async (what) => {
      const url = gw.url('big', what);
      for (const mode of ['length', 'expect', 'chunked'] as const) {
        for (const size of [SDP_LIMITS.maxBytes + 1, 20 * 1024 * 1024]) {
          const res = await rawPost(url, size, mode);
          expect(res.status, `${mode} ${size}`).toBe(413);
          expect(JSON.parse(res.body).error).toEqual({
            code: 'PAYLOAD_TOO_LARGE',
            message: `request body is larger than the limit of ${SDP_LIMITS.maxBytes} bytes`,
          });
          // With Expect, the body is refused before it is invited.
          if (mode === 'expect') expect(res.continued).toBe(false);
        }
      }
    },
  );

  it('an offer at the limit is still read and judged (Expect: 100-continue gets its 100)', async () => {
    const res = await rawPost(gw.url('edge', 'whip'), SDP_LIMITS.maxBytes, 'expect');
    expect(res.continued).toBe(true);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.message).toBe('line 1: SDP must start with "v=0"');
  });
});

describe('failures inside the gateway', () => {
  it('500 with a generic message; the exception text stays in the log', async () => {
    const lines: string[] = [];
    const capture = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
    const werift = new TypeError("Cannot read properties of undefined (reading 'parameters')");
    const streams = {
      publish: async () => {
        throw werift;
      },
      view: async () => {
        throw werift;
      },
    } as unknown as LiveStreams;
    const pool = new OrchestratorPool({
      sources: [new StaticSource([])],
      identity: offchainIdentity,
      grpcTimeoutMs: 500,
      infoMaxAgeMs: 1000,
      concurrency: 1,
      priceCeiling: PriceCeiling.none(),
      logger: capture,
    });
    const app = await buildGatewayApp({
      pool,
      streams,
      bodyLimitBytes: 1024 * 1024,
      logger: capture,
      live: { iceServers: [], defaultModel: 'invert' },
    });
    try {
      for (const what of ['whip', 'whep']) {
        const res = await app.inject({
          method: 'POST',
          url: `/live/video-to-video/x/${what}`,
          headers: { 'content-type': 'application/sdp' },
          payload: chromeWhip,
        });
        expect(res.statusCode).toBe(500);
        expect(res.json()).toEqual({
          error: { code: 'INTERNAL', message: 'internal error; see the gateway log' },
        });
      }
      expect(lines.join('\n')).toContain('Cannot read properties of undefined');
    } finally {
      await app.close();
      pool.stop();
    }
  });
});

describe('request fuzzing (seeded, over HTTP)', () => {
  it('mutated WHEP and WHIP offers: 201 or a clean 4xx, never a 5xx or a hang; invalid ones never 201', async () => {
    const live = await post(gw.url('fuzz', 'whip'), chromeWhip);
    expect(live.status).toBe(201);
    const random = prng(0xf022);
    const offers = [...fixtures.values()];
    const counts = { whep: new Map<number, number>(), whip: new Map<number, number>() };
    for (let i = 0; i < 420; i++) {
      const what = i % 4 === 3 ? 'whip' : 'whep';
      let sdp = offers[Math.floor(random() * offers.length)];
      for (let k = 1 + Math.floor(random() * 2); k > 0; k--) sdp = mutate(sdp, random);
      const res = await post(gw.url(what === 'whip' ? `f${i}` : 'fuzz', what), sdp);
      counts[what].set(res.status, (counts[what].get(res.status) ?? 0) + 1);
      if (res.status !== 201) expectCleanRefusal(res);
      await remove(res, gw.base);
    }
    // Both outcomes must occur for this to mean anything.
    // (Firefox ESR's offers have no H.264: mutations of them are 406, so the floor is low.)
    expect(counts.whep.get(201) ?? 0).toBeGreaterThan(10);
    expect(counts.whep.get(400) ?? 0).toBeGreaterThan(50);
    expect(counts.whip.get(201) ?? 0).toBeGreaterThan(5);
    let invalidAccepted = 0;
    for (const mutation of INVALID_MUTATIONS) {
      for (const offer of offers) {
        const res = await post(gw.url('fuzz', 'whep'), mutation.apply(offer));
        if (res.status === 201) invalidAccepted++;
        await remove(res, gw.base);
      }
    }
    expect(invalidAccepted).toBe(0);
    await remove(live, gw.base);
  }, 120_000);
});
