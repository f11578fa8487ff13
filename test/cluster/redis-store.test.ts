// The Redis store against a real redis-server: claims are exclusive and leased, account limits
// hold across nodes, a lost node's streams say so, releases carry their reason, orchestrator news
// reaches the other nodes, and Redis down is a ClusterUnavailable, not a hang.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryClusterStore } from '../../src/cluster/memory.ts';
import { RedisClusterStore } from '../../src/cluster/redis.ts';
import { ClusterUnavailable, type SharedSuspension, type StreamRecord } from '../../src/cluster/store.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = pino({ level: 'silent' });
let redis: TestRedis;
const stores: RedisClusterStore[] = [];

const node = async (leaseMs = 10_000, nodeId?: string) => {
  const s = await RedisClusterStore.connect({
    url: redis.url,
    nodeUrl: `http://${nodeId ?? 'n'}`,
    leaseMs,
    logger,
    nodeId,
  });
  stores.push(s);
  return s;
};
const record = (s: RedisClusterStore, name: string, account = 'acct', streamId?: string): StreamRecord => ({
  name,
  streamId,
  node: s.nodeId,
  nodeUrl: `http://${s.nodeId}`,
  account,
});

beforeAll(async () => {
  redis = await startRedis();
}, 20_000);

afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.kill();
});

describe('RedisClusterStore', () => {
  it('one owner per stream name; others find it by name and by stream id', async () => {
    const [a, b] = [await node(10_000, 'a1'), await node(10_000, 'b1')];
    expect(await a.claimStream(record(a, 's1', 'x', 'sid-1'), 0)).toBeUndefined();
    expect(await b.claimStream(record(b, 's1', 'x'), 0)).toBe('live');
    expect(await b.lookup('s1')).toEqual({ state: 'live', record: record(a, 's1', 'x', 'sid-1') });
    expect(await b.lookup('sid-1')).toMatchObject({ state: 'live', record: { name: 's1', node: 'a1' } });
    expect(await b.lookup('nothing')).toEqual({ state: 'unknown' });
    await a.releaseStream('s1', 'publisher sent DELETE');
    expect(await b.lookup('s1')).toEqual({
      state: 'ended',
      reason: 'publisher sent DELETE',
      nodeLost: false,
    });
    // The name is free again.
    expect(await b.claimStream(record(b, 's1', 'x'), 0)).toBeUndefined();
  });

  it("a node that stops renewing loses its streams: 'node lost'; a live node's leases are renewed", async () => {
    const dying = await node(1000, 'dying');
    const alive = await node(1000, 'alive');
    expect(await dying.claimStream(record(dying, 'd1'), 0)).toBeUndefined();
    expect(await alive.claimStream(record(alive, 'a1'), 0)).toBeUndefined();
    // Dead: no renewals, no release (its connection just goes).
    (dying as unknown as { closed: boolean }).closed = true;
    await waitFor(
      async () => (await alive.lookup('d1')).state === 'ended',
      "the dead node's lease to lapse",
      10_000,
    );
    expect(await alive.lookup('d1')).toEqual({ state: 'ended', reason: 'node lost', nodeLost: true });
    // Three leases later the living node's stream is still there.
    await new Promise((r) => setTimeout(r, 3000));
    expect((await dying.lookup('a1')).state).toBe('live');
  }, 20_000);

  it('account limits hold across nodes, for streams and viewers, and free up on release', async () => {
    const [a, b] = [await node(10_000, 'a3'), await node(10_000, 'b3')];
    expect(await a.claimStream(record(a, 'lim1', 'acct3'), 2)).toBeUndefined();
    expect(await b.claimStream(record(b, 'lim2', 'acct3'), 2)).toBeUndefined();
    expect(await a.claimStream(record(a, 'lim3', 'acct3'), 2)).toBe('limit');
    // Another account is not counted.
    expect(await a.claimStream(record(a, 'lim4', 'other'), 2)).toBeUndefined();
    await b.releaseStream('lim2', 'ended');
    expect(await a.claimStream(record(a, 'lim3', 'acct3'), 2)).toBeUndefined();

    expect(await a.claimViewer('acct3', 'v1', 2)).toBe(true);
    expect(await b.claimViewer('acct3', 'v2', 2)).toBe(true);
    expect(await b.claimViewer('acct3', 'v3', 2)).toBe(false);
    await a.releaseViewer('acct3', 'v1');
    expect(await b.claimViewer('acct3', 'v3', 2)).toBe(true);
  });

  it("one node's suspensions and latencies reach the others, not itself", async () => {
    const [a, b] = [await node(10_000, 'a4'), await node(10_000, 'b4')];
    const seenB: SharedSuspension[] = [];
    const seenA: SharedSuspension[] = [];
    const latencies: number[] = [];
    b.onSuspension((s) => seenB.push(s));
    a.onSuspension((s) => seenA.push(s));
    b.onLatency((l) => latencies.push(l.ms));
    const s = {
      url: 'https://o1:8935',
      reason: 'GetOrchestrator failed',
      until: Date.now() + 30_000,
      failures: 1,
    };
    a.shareSuspension(s);
    a.shareLatency({ url: 'https://o1:8935', ms: 42 });
    await waitFor(() => seenB.length > 0 && latencies.length > 0, 'the shared news', 5000);
    expect(seenB[0]).toMatchObject(s);
    expect(latencies).toEqual([42]);
    expect(seenA).toEqual([]);
  });

  it('Redis down: claims and lookups fail fast with ClusterUnavailable; back up: they work again', async () => {
    const a = await node(10_000, 'a5');
    await redis.kill();
    const started = Date.now();
    await expect(a.claimStream(record(a, 'down1'), 0)).rejects.toBeInstanceOf(ClusterUnavailable);
    await expect(a.lookup('down1')).rejects.toBeInstanceOf(ClusterUnavailable);
    // Fails within the call timeout, not after a hang.
    expect(Date.now() - started).toBeLessThan(10_000);
    // Releases never throw.
    await expect(a.releaseStream('never-held', 'x')).resolves.toBeUndefined();
    await redis.restart();
    await waitFor(
      async () => (await a.claimStream(record(a, 'down1'), 0).catch(() => 'err')) === undefined,
      'claims after Redis is back',
      15_000,
    );
  }, 30_000);

  it('close() returns while Redis is gone: a client still reconnecting is dropped, not waited for', async () => {
    const own = await startRedis();
    try {
      const s = await RedisClusterStore.connect({
        url: own.url,
        nodeUrl: 'http://c1',
        leaseMs: 10_000,
        logger,
      });
      await own.kill();
      await new Promise((r) => setTimeout(r, 300)); // the clients notice and start reconnecting
      const started = Date.now();
      await s.close();
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      await own.kill();
    }
  }, 20_000);
});

describe('MemoryClusterStore (no -redisUrl)', () => {
  it('counts account slots in the process and shares nothing', async () => {
    const m = new MemoryClusterStore();
    const r = (name: string, account: string): StreamRecord => ({
      name,
      node: 'local',
      nodeUrl: '',
      account,
    });
    expect(await m.claimStream(r('m1', 'x'), 1)).toBeUndefined();
    expect(await m.claimStream(r('m1', 'y'), 0)).toBe('live');
    expect(await m.claimStream(r('m2', 'x'), 1)).toBe('limit');
    await m.releaseStream('m1');
    expect(await m.claimStream(r('m2', 'x'), 1)).toBeUndefined();
    expect(await m.claimViewer('x', 'v1', 1)).toBe(true);
    expect(await m.claimViewer('x', 'v2', 1)).toBe(false);
    await m.releaseViewer('x', 'v1');
    expect(await m.claimViewer('x', 'v2', 1)).toBe(true);
    expect(await m.lookup()).toEqual({ state: 'unknown' });
    expect(m.shared).toBe(false);
  });
});
