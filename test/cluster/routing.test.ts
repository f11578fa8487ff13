// What a node answers for streams it does not run, with a stand-in for Redis (the real one is in
// redis-store.test.ts and test/integration/scale-out.test.ts): requests sent on to the owner
// (headers and body kept, never twice), WHEP redirected, ended and lost streams said so, an
// unreachable owner, Redis down, and publishes refused by the shared registry.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClaimRefusal,
  type ClusterStore,
  ClusterUnavailable,
  type StreamLookup,
  type StreamRecord,
} from '../../src/cluster/store.ts';
import { StaticSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { closedPort } from '../helpers/hook-server.ts';

const logger = pino({ level: 'silent' });

/** A shared registry whose answers the test sets. */
class FakeStore implements ClusterStore {
  readonly shared = true;
  readonly nodeId = 'me';
  lookups = new Map<string, StreamLookup>();
  claim: ClaimRefusal | 'down' | undefined = undefined;
  down = false;
  released: [string, string][] = [];
  async claimStream(_r: StreamRecord): Promise<ClaimRefusal | undefined> {
    if (this.claim === 'down') throw new ClusterUnavailable('Redis: connection refused');
    return this.claim;
  }
  async releaseStream(name: string, reason: string): Promise<void> {
    this.released.push([name, reason]);
  }
  async claimViewer(): Promise<boolean> {
    return true;
  }
  async releaseViewer(): Promise<void> {}
  async lookup(key: string): Promise<StreamLookup> {
    if (this.down) throw new ClusterUnavailable('Redis: connection refused');
    return this.lookups.get(key) ?? { state: 'unknown' };
  }
  shareSuspension(): void {}
  shareLatency(): void {}
  onSuspension(): () => void {
    return () => {};
  }
  onLatency(): () => void {
    return () => {};
  }
  async close(): Promise<void> {}
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}
let owner: Server;
let ownerUrl: string;
const seen: Seen[] = [];
const store = new FakeStore();
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  owner = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.writeHead(req.url!.endsWith('/update') ? 401 : 200, {
        'Content-Type': 'application/json',
        ETag: '"owner-etag"',
      });
      res.end(JSON.stringify({ from: 'owner', method: req.method }));
    });
  });
  await new Promise<void>((r) => owner.listen(0, '127.0.0.1', r));
  ownerUrl = `http://127.0.0.1:${(owner.address() as AddressInfo).port}`;
  gw = await startTestGateway({
    orchestrators: [],
    logger,
    cluster: store,
    live: { clusterNodeUrl: 'http://me.example:8935' },
  });
  const record = (name: string, nodeUrl = ownerUrl): StreamLookup => ({
    state: 'live',
    record: { name, node: 'other', nodeUrl, account: 'open' },
  });
  store.lookups.set('remote', record('remote'));
  store.lookups.set('sid-9', record('remote'));
  store.lookups.set('gone', record('gone', `http://127.0.0.1:${await closedPort()}`));
  store.lookups.set('lost', { state: 'ended', reason: 'node lost', nodeLost: true });
  store.lookups.set('deleted', { state: 'ended', reason: 'publisher sent DELETE', nodeLost: false });
}, 20_000);

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => owner?.close(r));
});

const json = async (r: Response) => (await r.json()) as { error?: { code: string; message: string } };

describe('a node answering for streams other nodes run', () => {
  it('sends status, update and DELETE on to the owner, with their headers and body, once', async () => {
    seen.length = 0;
    const st = await fetch(gw.url('remote', 'status'), { headers: { Authorization: 'Bearer tok' } });
    expect(st.status).toBe(200);
    expect(st.headers.get('etag')).toBe('"owner-etag"');
    expect(await st.json()).toEqual({ from: 'owner', method: 'GET' });
    // By go-livepeer's stream id too.
    expect((await fetch(gw.url('sid-9', 'status'))).status).toBe(200);

    // The owner's refusal is the answer.
    const up = await fetch(gw.url('remote', 'update'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer tok' },
      body: JSON.stringify({ prompt: 'x' }),
    });
    expect(up.status).toBe(401);
    const del = await fetch(`${gw.url('remote', 'whip')}/abc`, { method: 'DELETE' });
    expect(del.status).toBe(200);

    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      'GET /live/video-to-video/remote/status',
      'GET /live/video-to-video/sid-9/status',
      'POST /live/video-to-video/remote/update',
      'DELETE /live/video-to-video/remote/whip/abc',
    ]);
    expect(seen[0]!.headers.authorization).toBe('Bearer tok');
    expect(seen[0]!.headers['lp-cluster-hop']).toBe('1');
    expect(JSON.parse(seen[2]!.body)).toEqual({ prompt: 'x' });
    expect(seen[2]!.headers['content-type']).toBe('application/json');
  });

  it('never sends on a request that was already sent on (no loops)', async () => {
    seen.length = 0;
    const r = await fetch(gw.url('remote', 'status'), { headers: { 'lp-cluster-hop': '1' } });
    expect(r.status).toBe(404);
    expect(seen).toEqual([]);
  });

  it('redirects a WHEP offer to the owner with 307, query kept', async () => {
    const r = await fetch(`${gw.url('remote', 'whep')}?x=1`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
      redirect: 'manual',
    });
    expect(r.status).toBe(307);
    expect(r.headers.get('location')).toBe(`${ownerUrl}/live/video-to-video/remote/whep?x=1`);
  });

  it('says a stream ended, or that its node was lost, with 404 on every route', async () => {
    for (const [stream, message] of [
      ['lost', 'stream ended (node lost)'],
      ['deleted', 'stream ended: publisher sent DELETE'],
    ]) {
      for (const req of [
        fetch(gw.url(stream!, 'status')),
        fetch(gw.url(stream!, 'whep'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/sdp' },
          body: 'v=0\r\n',
        }),
        fetch(gw.url(stream!, 'update'), {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{}',
        }),
        fetch(`${gw.url(stream!, 'whip')}/abc`, { method: 'DELETE' }),
      ]) {
        const r = await req;
        expect(r.status).toBe(404);
        expect((await json(r)).error!.message).toBe(message);
      }
    }
    // Nobody has it: the usual 404.
    const none = await fetch(gw.url('nobody', 'status'));
    expect(none.status).toBe(404);
    expect((await json(none)).error!.message).toBe('no live stream "nobody"');
  });

  it('an owner that does not answer: 502 NODE_UNREACHABLE', async () => {
    const r = await fetch(gw.url('gone', 'status'));
    expect(r.status).toBe(502);
    expect((await json(r)).error!.code).toBe('NODE_UNREACHABLE');
  });

  it('Redis down: 503 with Retry-After for streams elsewhere; publishes refused the same way', async () => {
    store.down = true;
    try {
      const r = await fetch(gw.url('remote', 'status'));
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('5');
      expect((await json(r)).error!.code).toBe('CLUSTER_UNAVAILABLE');
    } finally {
      store.down = false;
    }
    store.claim = 'down';
    const w = await fetch(gw.url('new1', 'whip'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    expect(w.status).toBe(503);
    expect(w.headers.get('retry-after')).toBe('5');
    expect((await json(w)).error!.message).toMatch(/cannot reach its shared registry/);
  });

  it('publishes the shared registry refuses: 409 (another node has it), 429 (account at its limit)', async () => {
    const post = () =>
      fetch(gw.url('new2', 'whip'), {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: 'v=0\r\n',
      });
    store.claim = 'live';
    const taken = await post();
    expect(taken.status).toBe(409);
    expect((await json(taken)).error!.message).toBe(
      'stream "new2" already has a publisher (on another node)',
    );
    store.claim = 'limit';
    const limited = await post();
    expect(limited.status).toBe(429);
    expect((await json(limited)).error!.code).toBe('ACCOUNT_STREAMS');
    store.claim = undefined;
    // None of them started anything here, so nothing was released either.
    expect(store.released).toEqual([]);
  });
});

describe('orchestrator news shared between nodes', () => {
  it('a pool tells others of its suspensions and applies theirs, never shortening its own', () => {
    let now = 1_000_000;
    const shared: { url: string; until: number }[] = [];
    const pool = new OrchestratorPool({
      sources: [new StaticSource(['https://o1:8935', 'https://o2:8935'])],
      identity: offchainIdentity,
      grpcTimeoutMs: 1000,
      infoMaxAgeMs: 60_000,
      concurrency: 2,
      priceCeiling: PriceCeiling.none(),
      logger,
      now: () => now,
      share: { suspension: (s) => shared.push(s), latency: () => {} },
    });
    pool.suspend('https://o1:8935', 'job start failed');
    expect(shared).toEqual([
      expect.objectContaining({ url: 'https://o1:8935', until: now + 30_000, failures: 1 }),
    ]);

    pool.applySharedSuspension({
      url: 'https://o2:8935',
      reason: 'GetOrchestrator failed',
      until: now + 60_000,
      failures: 2,
    });
    // Applied, not passed on again.
    expect(shared).toHaveLength(1);
    const s = (
      pool as unknown as {
        suspensions: { state(u: string): { until?: number; reason?: string; failures: number } };
      }
    ).suspensions;
    expect(s.state('https://o2:8935')).toEqual({
      until: now + 60_000,
      reason: 'GetOrchestrator failed (seen by another node)',
      failures: 2,
    });
    // A shorter one from elsewhere does not shorten ours; an expired one is ignored.
    pool.applySharedSuspension({ url: 'https://o1:8935', reason: 'x', until: now + 5_000, failures: 1 });
    pool.applySharedSuspension({ url: 'https://o1:8935', reason: 'x', until: now - 1, failures: 1 });
    expect(s.state('https://o1:8935').until).toBe(now + 30_000);
    now += 61_000;
    expect(s.state('https://o2:8935').until).toBeUndefined();
    pool.stop();
  });
});
