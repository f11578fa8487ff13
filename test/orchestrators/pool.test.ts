// The orchestrator pool against real local orchestrators on 127.0.0.1: price ceilings (global
// and per capability), models, the score's preference and spread, suspension and its decay,
// unreachable ones, the webhook (and its bad answers), the fan-out bound, and the reasons given
// when nothing fits.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { buildGatewayApp } from '../../src/http/app.ts';
import { LiveStreams } from '../../src/live/registry.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { type DiscoverySource, StaticSource, WebhookSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import {
  NoOrchestratorError,
  OrchestratorPool,
  type OrchestratorPoolOptions,
} from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import { Capability } from '../../src/wire/lp-rpc.ts';
import { seeded } from './seeded.ts';

const silent = pino({ level: 'silent' });

/** A logger whose lines (JSON) are kept. */
function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'info' }, { write: (s: string) => void lines.push(s) }), lines };
}

let cheap: LocalOrchestrator; // invert, passthrough at 1 wei/pixel
let mid: LocalOrchestrator; // invert, passthrough at 2 wei/pixel
let pricey: LocalOrchestrator; // invert at 10 wei/pixel
let edgesOnly: LocalOrchestrator; // edges, free
let deadUrl: string; // nothing listens there

beforeAll(async () => {
  const start = (models: string[], pricePerUnit: bigint) =>
    LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models,
      pricePerUnit,
      pixelsPerUnit: 1n,
      capacity: 4,
      logger: silent,
    });
  [cheap, mid, pricey, edgesOnly] = await Promise.all([
    start(['invert', 'passthrough'], 1n),
    start(['invert', 'passthrough'], 2n),
    start(['invert'], 10n),
    start(['edges'], 0n),
  ]);
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  deadUrl = `https://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
});
afterAll(async () => {
  await Promise.all([cheap, mid, pricey, edgesOnly].map((o) => o?.close()));
});

const pools: OrchestratorPool[] = [];
const closers: (() => void)[] = [];
afterEach(() => {
  for (const p of pools.splice(0)) p.stop();
  for (const c of closers.splice(0)) c();
});

function makePool(
  urls: string[] | DiscoverySource[],
  opts: Partial<OrchestratorPoolOptions> = {},
): OrchestratorPool {
  const sources =
    urls.length > 0 && typeof urls[0] !== 'string'
      ? (urls as DiscoverySource[])
      : [new StaticSource(urls as string[])];
  const pool = new OrchestratorPool({
    sources,
    identity: offchainIdentity,
    grpcTimeoutMs: 1500,
    infoMaxAgeMs: 60_000,
    concurrency: 8,
    priceCeiling: PriceCeiling.none(),
    random: seeded(7),
    logger: silent,
    ...opts,
  });
  pools.push(pool);
  return pool;
}

async function pick(pool: OrchestratorPool, model: string, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const { url, info } = await pool.selectLive(model);
    expect(info.authToken?.token?.length).toBeGreaterThan(0);
    counts.set(url, (counts.get(url) ?? 0) + 1);
  }
  return counts;
}

function stateOf(pool: OrchestratorPool, url: string, model?: string) {
  const s = pool.list(model).find((o) => o.url === url);
  if (!s) throw new Error(`${url} not listed`);
  return s;
}

describe('selection', () => {
  it('never picks one above -maxPricePerUnit or without the model; prefers the cheaper one, spreads load', async () => {
    const pool = makePool([cheap.url, mid.url, pricey.url, edgesOnly.url], {
      priceCeiling: new PriceCeiling({ maxPricePerUnit: 5n, pixelsPerUnit: 1n }),
    });
    const counts = await pick(pool, 'invert', 60);
    expect(counts.get(pricey.url)).toBeUndefined();
    expect(counts.get(edgesOnly.url)).toBeUndefined();
    // P(cheap) ≈ 0.9 / (1 + e^(−2·1/1.5)) + 0.05 ≈ 0.76 (select.ts).
    expect(counts.get(cheap.url)).toBeGreaterThanOrEqual(36);
    expect(counts.get(mid.url)).toBeGreaterThanOrEqual(4);

    expect(stateOf(pool, pricey.url, 'invert')).toMatchObject({
      state: 'too-expensive',
      models: ['invert'],
      price: { pricePerUnit: '10', pixelsPerUnit: '1', weiPerPixel: '10' },
    });
    expect(stateOf(pool, pricey.url, 'invert').why).toContain(
      'above the ceiling 5 wei/pixel (-maxPricePerUnit 5',
    );
    expect(stateOf(pool, edgesOnly.url, 'invert')).toMatchObject({
      state: 'no-model',
      why: 'does not offer "invert" (offers edges)',
    });
    expect(stateOf(pool, cheap.url, 'invert')).toMatchObject({ state: 'available', failures: 0 });
    expect(stateOf(pool, cheap.url).latencyMs).toBeGreaterThan(0);
    // Without a model: what it offers; edges is free, so it is available.
    expect(stateOf(pool, edgesOnly.url)).toMatchObject({ state: 'available', why: 'offers edges' });
    expect(stateOf(pool, pricey.url).state).toBe('too-expensive');
  });

  it('applies a per-capability ceiling from a -maxPricePerCapability JSON file', async () => {
    const file = join(tmpdir(), `lp-max-price-${process.pid}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        capabilities_prices: [
          { pipeline: 'live-video-to-video', model_id: 'invert', price_per_unit: 3, pixels_per_unit: 2 },
        ],
      }),
    );
    const config = loadConfig({ argv: ['-maxPricePerCapability', file, '-orchAddr', 'o:1'], env: {} });
    const ceiling = new PriceCeiling({
      maxPricePerUnit: config.maxPricePerUnit,
      pixelsPerUnit: config.pixelsPerUnit,
      perCapability: config.maxPricePerCapability?.entries,
    });
    const pool = makePool([cheap.url, mid.url, pricey.url], { priceCeiling: ceiling });
    // invert: at most 1.5 wei/pixel, so only the cheap one.
    expect([...(await pick(pool, 'invert', 12)).keys()]).toEqual([cheap.url]);
    expect(stateOf(pool, mid.url, 'invert').why).toContain(
      'above the ceiling 1.5 wei/pixel (-maxPricePerCapability live-video-to-video/invert)',
    );
    const withoutCheap = { exclude: new Set([cheap.url]) };
    await expect(pool.selectLive('invert', withoutCheap)).rejects.toThrow(/too-expensive/);
    // passthrough has no entry and -maxPricePerUnit is 0: no limit.
    expect((await pool.selectLive('passthrough', withoutCheap)).url).toBe(mid.url);
    expect(stateOf(pool, mid.url, 'passthrough').state).toBe('available');
  });

  it('selects for other capabilities: transcoding by price_info and the ceiling, a missing AI pipeline named', async () => {
    const pool = makePool([cheap.url, mid.url, pricey.url], {
      priceCeiling: new PriceCeiling({ maxPricePerUnit: 5n, pixelsPerUnit: 1n }),
    });
    const transcode = { capability: Capability.H264, modelId: '' };
    for (let i = 0; i < 10; i++) {
      const { url, info } = await pool.select(transcode);
      expect(url).not.toBe(pricey.url);
      expect(info.authToken?.token?.length).toBeGreaterThan(0);
    }
    const err = await pool
      .select({ capability: Capability.AudioToText, modelId: 'openai/whisper-large-v3' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(NoOrchestratorError);
    expect(err.message).toMatch(/^no orchestrator can run AudioToText "openai\/whisper-large-v3": /);
    expect(err.reasons).toHaveLength(3);
    for (const r of err.reasons) expect(r).toMatch(/no-model: does not offer AudioToText/);
  });

  it('reuses a job answer within reuseMs (batch sessions) and drops it when the orchestrator is suspended', async () => {
    let calls = 0;
    const counting: typeof getOrchestrator = (url, o) => {
      if (o.capabilities) calls++;
      return getOrchestrator(url, o);
    };
    const pool = makePool([cheap.url], { getOrchestrator: counting });
    const kind = { capability: Capability.H264, modelId: '' };
    const first = await pool.select(kind, { reuseMs: 60_000 });
    const second = await pool.select(kind, { reuseMs: 60_000 });
    expect(calls).toBe(1);
    expect(second.info.authToken).toEqual(first.info.authToken);
    await pool.select(kind); // without reuseMs: asked afresh
    expect(calls).toBe(2);
    pool.suspend(cheap.url, 'test');
    await pool.select(kind, { reuseMs: 60_000, includeSuspended: true });
    expect(calls).toBe(3);
  });

  it('renewAnswer asks again and the fresh answer replaces the kept one; a failed ask throws its reason', async () => {
    let calls = 0;
    const counting: typeof getOrchestrator = (url, o) => {
      if (o.capabilities) calls++;
      return getOrchestrator(url, o);
    };
    const pool = makePool([cheap.url], { getOrchestrator: counting });
    const kind = { capability: Capability.H264, modelId: '' };
    const kept = await pool.select(kind, { reuseMs: 60_000 });
    const fresh = await pool.renewAnswer(cheap.url, kind);
    expect(calls).toBe(2);
    expect(fresh.authToken).not.toEqual(kept.info.authToken);
    const next = await pool.select(kind, { reuseMs: 60_000 });
    expect(calls).toBe(2);
    expect(next.info.authToken).toEqual(fresh.authToken);
    await expect(
      pool.renewAnswer(cheap.url, { capability: Capability.TextToImage, modelId: 'nope' }),
    ).rejects.toThrow(/^no-model: /);
  });

  it("a batch job's own time feeds the score for its capability only", async () => {
    const pool = makePool([cheap.url, mid.url]);
    await pool.refresh();
    // cheap is 10 s slower on text-to-image jobs: it is picked less for them, not for live.
    for (let i = 0; i < 5; i++) pool.observeLatency(cheap.url, 10_000, Capability.TextToImage);
    const live = await pick(pool, 'invert', 40);
    expect(live.get(cheap.url)).toBeGreaterThanOrEqual(24);
    const h264 = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const { url } = await pool.select({ capability: Capability.H264, modelId: '' });
      h264.set(url, (h264.get(url) ?? 0) + 1);
    }
    expect(h264.get(cheap.url)).toBeGreaterThanOrEqual(24);
    const t2i = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const { url } = await pool.select({
        capability: Capability.TextToImage,
        modelId: 'stabilityai/sdxl-turbo',
      });
      t2i.set(url, (t2i.get(url) ?? 0) + 1);
    }
    // Only the uniform tenth of the picks (select.ts) still reaches it: about 2 of 40.
    expect(t2i.get(cheap.url) ?? 0).toBeLessThanOrEqual(8);
  });

  it('honours exclude', async () => {
    const pool = makePool([cheap.url, mid.url]);
    for (let i = 0; i < 5; i++) {
      expect((await pool.selectLive('invert', { exclude: new Set([cheap.url]) })).url).toBe(mid.url);
    }
  });
});

describe('suspension and failures', () => {
  it('skips a suspended orchestrator until its penalty ends, doubling on repeated failures', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const pool = makePool([cheap.url, mid.url], { now: () => now });
    await pool.refresh();
    pool.suspend(cheap.url, 'job start failed: 500 runner crashed');
    expect(stateOf(pool, cheap.url)).toMatchObject({
      state: 'suspended',
      failures: 1,
      suspendedUntil: '2030-01-01T00:00:30.000Z',
    });
    expect(stateOf(pool, cheap.url).why).toContain('job start failed: 500 runner crashed');
    expect([...(await pick(pool, 'invert', 10)).keys()]).toEqual([mid.url]);

    now += 31_000;
    expect(stateOf(pool, cheap.url, 'invert').state).toBe('available');
    expect((await pick(pool, 'invert', 15)).get(cheap.url)).toBeGreaterThan(5);

    // A second failure soon after: 60 s.
    pool.suspend(cheap.url, 'stream failed');
    expect(stateOf(pool, cheap.url)).toMatchObject({
      failures: 2,
      suspendedUntil: new Date(now + 60_000).toISOString(),
    });
    now += 45_000;
    expect(stateOf(pool, cheap.url).state).toBe('suspended');
    pool.reportSuccess(cheap.url);
    expect(stateOf(pool, cheap.url)).toMatchObject({ state: 'available', failures: 0, suspendedUntil: null });
  });

  it('reports an unreachable orchestrator with the reason, suspends it and skips it', async () => {
    const pool = makePool([deadUrl, cheap.url]);
    await pool.refresh();
    const dead = stateOf(pool, deadUrl);
    expect(dead.state).toBe('unreachable');
    expect(dead.why).toMatch(/GetOrchestrator failed: unreachable/);
    expect(dead.failures).toBe(1);
    expect(dead.suspendedUntil).not.toBeNull();
    expect([...(await pick(pool, 'invert', 5)).keys()]).toEqual([cheap.url]);
  });

  it('counts a failed fresh GetOrchestrator; OrchestratorCapped is busy, not a failure', async () => {
    let capped = true;
    const pool = makePool([cheap.url], {
      getOrchestrator: async (url, opts) => {
        if (opts.capabilities && capped) {
          throw new OrchestratorError('refused', url, 'Invalid orchestrator request: OrchestratorCapped');
        }
        return getOrchestrator(url, opts);
      },
    });
    const err = await pool.selectLive('invert').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoOrchestratorError);
    expect((err as NoOrchestratorError).reasons).toEqual([
      `${cheap.url}: busy: answered OrchestratorCapped for "invert" (no free capacity)`,
    ]);
    expect(stateOf(pool, cheap.url)).toMatchObject({ failures: 0, suspendedUntil: null });
    capped = false;
    expect((await pool.selectLive('invert')).url).toBe(cheap.url);
  });

  it('NoOrchestratorError gives one reason per orchestrator', async () => {
    const pool = makePool([pricey.url, edgesOnly.url, deadUrl, cheap.url], {
      priceCeiling: new PriceCeiling({ maxPricePerUnit: 5n, pixelsPerUnit: 1n }),
    });
    await pool.refresh();
    pool.suspend(cheap.url, 'stream failed: no output for 2000 ms');
    const err = (await pool.selectLive('invert').catch((e: unknown) => e)) as NoOrchestratorError;
    expect(err).toBeInstanceOf(NoOrchestratorError);
    expect(err.modelId).toBe('invert');
    expect(err.reasons).toHaveLength(4);
    expect(err.reasons[0]).toMatch(new RegExp(`^${pricey.url}: too-expensive: price 10 wei/pixel`));
    expect(err.reasons[1]).toBe(`${edgesOnly.url}: no-model: does not offer "invert" (offers edges)`);
    expect(err.reasons[2]).toMatch(
      new RegExp(`^${deadUrl}: unreachable: GetOrchestrator failed: unreachable`),
    );
    expect(err.reasons[3]).toMatch(new RegExp(`^${cheap.url}: suspended: stream failed: no output`));
    expect(err.message).toContain('no orchestrator can run model "invert"');
    const none = await makePool([])
      .selectLive('invert')
      .catch((e: unknown) => e);
    expect((none as Error).message).toBe('no orchestrator is configured for model "invert"');
  });
});

describe('discovery and the info cache', () => {
  it('webhook: uses its list; a bad answer is logged and the previous list kept', async () => {
    let reply: { status: number; body: string } = {
      status: 200,
      body: JSON.stringify([{ address: cheap.url, score: 1 }, { address: mid.url }]),
    };
    const server = http.createServer((_req, res) => res.writeHead(reply.status).end(reply.body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const { logger, lines } = capture();
    const webhook = new WebhookSource({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/orchs`,
      refreshIntervalMs: 60_000,
      timeoutMs: 1000,
      logger,
    });
    const pool = makePool([webhook], { logger });
    const urls = () => pool.list().map((o) => o.url);
    await pool.refresh();
    expect(urls()).toEqual([cheap.url, mid.url]);
    expect(stateOf(pool, mid.url)).toMatchObject({ sources: ['webhook'], state: 'available' });

    const bad: [number, string, string][] = [
      [500, 'oops', 'webhook answered HTTP 500: oops'],
      [200, '{"not": "json', 'webhook answer is not JSON'],
      [200, JSON.stringify({ address: cheap.url }), 'webhook answer must be a JSON array'],
      [200, JSON.stringify([{ address: 'ftp://x:1' }]), 'webhook answer has no usable orchestrator address'],
    ];
    for (const [status, body, logged] of bad) {
      reply = { status, body };
      lines.length = 0;
      await pool.refresh();
      expect(urls()).toEqual([cheap.url, mid.url]);
      expect(lines.join('\n')).toContain(
        `orchestrator discovery failed, keeping the previous list: ${logged}`,
      );
    }
    reply = { status: 200, body: JSON.stringify([{ address: mid.url }]) };
    await pool.refresh();
    expect(urls()).toEqual([mid.url]);
    expect((await pool.selectLive('invert')).url).toBe(mid.url);
  });

  it('start() refreshes the webhook on its interval; stop() ends it', async () => {
    let body = JSON.stringify([{ address: cheap.url }]);
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests++;
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const webhook = new WebhookSource({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
      refreshIntervalMs: 50,
      timeoutMs: 1000,
      logger: silent,
    });
    const pool = makePool([webhook]);
    pool.start();
    pool.start();
    await waitFor(() => pool.list().length === 1 && pool.list()[0].state === 'available');
    body = JSON.stringify([{ address: cheap.url }, { address: mid.url }]);
    await waitFor(() => pool.list().length === 2);
    pool.stop();
    const after = requests;
    await new Promise((r) => setTimeout(r, 200));
    expect(requests).toBe(after);
  });

  it('bounds GetOrchestrator calls in flight and never waits longer than the timeout to select', async () => {
    // Orchestrators that accept TCP and then say nothing: each call lasts the whole timeout.
    const stalled: string[] = [];
    for (let i = 0; i < 9; i++) {
      const server = net.createServer(() => {});
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      closers.push(() => server.close());
      stalled.push(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
    }
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    // Background refreshes (no capabilities) go through the bound; a selection's own call does not.
    const counting: typeof getOrchestrator = async (url, opts) => {
      if (opts.capabilities) return getOrchestrator(url, opts);
      calls++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      try {
        return await getOrchestrator(url, opts);
      } finally {
        inFlight--;
      }
    };
    const pool = makePool([cheap.url, ...stalled], {
      concurrency: 3,
      grpcTimeoutMs: 300,
      getOrchestrator: counting,
    });
    const started = performance.now();
    // The cheap one answers at once; selection waits for the others at most 300 ms.
    expect((await pool.selectLive('invert')).url).toBe(cheap.url);
    expect(performance.now() - started).toBeLessThan(300 + 250);
    await pool.refresh();
    expect(maxInFlight).toBe(3);
    // Each of the 10 asked once (refresh() joins the calls already under way); 9 stalled calls of
    // 300 ms, 3 at a time, take at least 3 rounds.
    expect(calls).toBeGreaterThanOrEqual(10);
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 300 - 20);
    for (const url of stalled) {
      const s = stateOf(pool, url);
      expect(s.state).toBe('unreachable');
      expect(s.why).toMatch(/timed out/);
    }
  });

  it('GET /orchestrators serves the list with state and why', async () => {
    const pool = makePool([cheap.url, edgesOnly.url]);
    await pool.refresh();
    const streams = new LiveStreams({
      pool,
      identity: offchainIdentity,
      limits: {
        minSegmentDurationMs: 1000,
        pliIntervalMs: 2000,
        maxViewers: 1,
        ingestTimeoutMs: 5000,
        maxStreams: 1,
      },
      network: LOOPBACK_NETWORK,
      logger: silent,
    });
    const app = await buildGatewayApp({
      pool,
      streams,
      live: { iceServers: [], defaultModel: 'invert' },
      bodyLimitBytes: 1024,
      logger: silent,
    });
    closers.push(() => void app.close());
    const all = (await app.inject({ url: '/orchestrators' })).json();
    expect(all.model).toBeNull();
    expect(all.orchestrators.map((o: { state: string }) => o.state)).toEqual(['available', 'available']);
    const forInvert = (await app.inject({ url: '/orchestrators?model=invert' })).json();
    expect(forInvert.orchestrators[1]).toMatchObject({
      url: edgesOnly.url,
      state: 'no-model',
      why: 'does not offer "invert" (offers edges)',
      models: ['edges'],
    });
  });
});

async function waitFor(done: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
