// The shared store on Redis (-redisUrl), for several gateway nodes behind one address.
//
// Keys (one Redis, not Redis Cluster: the scripts build key names inside):
//   lp:s:<name>     the stream's record (JSON), with a lease (PX) this node renews
//   lp:i:<id>       go-livepeer stream id -> name, same lease
//   lp:e:<name>     {node, reason}: set at claim with reason null and kept 10 min; a stream whose
//                   lp:s lapsed while reason is still null was lost with its node
//   lp:a:s:<acct>   sorted set of the account's streams, scored by lease expiry (Redis's clock)
//   lp:a:v:<acct>   the same for its viewers
//   channels lp:suspend, lp:latency: what nodes learn about orchestrators
// A claim is one EVAL (atomic: name free, account under its limit, then every key set); the
// leases of all of a node's streams and viewers are renewed by one EVAL every third of the lease.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { createClient } from 'redis';
import {
  type ClaimRefusal,
  type ClusterStore,
  ClusterUnavailable,
  type SharedLatency,
  type SharedSuspension,
  type StreamLookup,
  type StreamRecord,
} from './store.ts';

/** How long an ended (or lost) stream's reason stays for other nodes' 404s. */
const ENDED_KEPT_MS = 10 * 60_000;
/** A Redis call slower than this counts as Redis being unavailable. */
const CALL_TIMEOUT_MS = 2000;
const SUSPEND_CHANNEL = 'lp:suspend';
const LATENCY_CHANNEL = 'lp:latency';

const NOW_MS = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// KEYS: lp:s:name, lp:e:name, lp:a:s:acct, [lp:i:id]. ARGV: record, leaseMs, limit, name, ended, endedKeptMs.
const CLAIM = `${NOW_MS}
if redis.call('EXISTS', KEYS[1]) == 1 then return 'live' end
local lease = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= limit then return 'limit' end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
redis.call('ZADD', KEYS[3], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[3], lease)
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[4], 'PX', lease) end
return 'ok'`;

// ARGV: node, leaseMs, JSON {s: [{n, a, i, r}], v: [{a, k}]}. Returns the names another node now holds.
const RENEW = `${NOW_MS}
local lease = tonumber(ARGV[2])
local d = cjson.decode(ARGV[3])
local lost = {}
for _, s in ipairs(d.s) do
  local k = 'lp:s:' .. s.n
  local v = redis.call('GET', k)
  if v and cjson.decode(v).node ~= ARGV[1] then
    table.insert(lost, s.n)
  else
    redis.call('SET', k, s.r, 'PX', lease)
    redis.call('ZADD', 'lp:a:s:' .. s.a, now + lease, s.n)
    redis.call('PEXPIRE', 'lp:a:s:' .. s.a, lease)
    if s.i then redis.call('SET', 'lp:i:' .. s.i, s.n, 'PX', lease) end
  end
end
for _, v in ipairs(d.v) do
  redis.call('ZADD', 'lp:a:v:' .. v.a, now + lease, v.k)
  redis.call('PEXPIRE', 'lp:a:v:' .. v.a, lease)
end
return lost`;

// KEYS: lp:s:name, lp:e:name, lp:a:s:acct, [lp:i:id]. ARGV: node, ended, endedKeptMs, name.
const RELEASE = `local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).node ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if KEYS[4] then redis.call('DEL', KEYS[4]) end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1`;

// KEYS: lp:a:v:acct. ARGV: limit, viewer, leaseMs.
const CLAIM_VIEWER = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

export interface RedisClusterStoreOptions {
  url: string;
  /** This node's base URL, kept in its streams' records. */
  nodeUrl: string;
  /** Lease of every claim; renewed every third of it. */
  leaseMs: number;
  logger: Logger;
  /** Default: random. */
  nodeId?: string;
}

interface Held {
  record: StreamRecord;
  json: string;
}

type Client = ReturnType<typeof createClient>;

/**
 * Closes a client politely (its pending commands finish), or drops it after CALL_TIMEOUT_MS: a
 * client still reconnecting to a Redis that went away would otherwise keep close() waiting.
 */
async function closeClient(client: Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const polite = client.close().then(
    () => true,
    () => false,
  );
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), CALL_TIMEOUT_MS);
  });
  const closed = await Promise.race([polite, timedOut]);
  clearTimeout(timer);
  if (!closed) client.destroy();
}

export class RedisClusterStore implements ClusterStore {
  readonly shared = true;
  readonly nodeId: string;
  /** Round trips to Redis this node made (for bench/cluster.ts and the docs' numbers). */
  roundTrips = 0;
  private readonly client: Client;
  private readonly sub: Client;
  private readonly held = new Map<string, Held>();
  private readonly viewers = new Map<string, string>();
  private readonly suspensionFns = new Set<(s: SharedSuspension) => void>();
  private readonly latencyFns = new Set<(l: SharedLatency) => void>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private up = false;

  private constructor(private readonly opts: RedisClusterStoreOptions) {
    this.nodeId = opts.nodeId ?? randomBytes(6).toString('hex');
    this.log = opts.logger.child({ component: 'cluster', node: this.nodeId });
    // Fail fast while Redis is away (no offline queue): new streams get 503 at once, not a hang.
    this.client = createClient({
      url: opts.url,
      disableOfflineQueue: true,
      socket: { connectTimeout: CALL_TIMEOUT_MS, reconnectStrategy: (n) => Math.min(100 * 2 ** n, 2000) },
    });
    this.sub = this.client.duplicate();
    let reported = false;
    for (const c of [this.client, this.sub]) {
      c.on('error', (err: Error) => {
        // Reconnects on its own; say it once per outage.
        if (!reported)
          this.log.warn(
            { err: err.message },
            'Redis unreachable; new streams are refused (503) until it is back',
          );
        reported = true;
        this.up = false;
      });
      c.on('ready', () => {
        if (reported) this.log.info('Redis reachable again');
        reported = false;
        this.up = true;
      });
    }
  }

  /** Connects (waiting at most `waitMs` for Redis; later it keeps trying in the background). */
  static async connect(opts: RedisClusterStoreOptions, waitMs = 5000): Promise<RedisClusterStore> {
    const store = new RedisClusterStore(opts);
    const connecting = Promise.all([
      store.client.connect(),
      store.sub.connect().then(() => store.subscribe()),
    ]).catch((err: Error) => store.log.warn({ err: err.message }, 'Redis connect failed'));
    await Promise.race([connecting, new Promise((r) => setTimeout(r, waitMs).unref())]);
    store.timer = setInterval(() => void store.renew(), Math.max(250, Math.floor(opts.leaseMs / 3)));
    store.timer.unref();
    return store;
  }

  get connected(): boolean {
    return this.up;
  }

  async claimStream(record: StreamRecord, accountLimit: number): Promise<ClaimRefusal | undefined> {
    const json = JSON.stringify(record);
    const keys = [`lp:s:${record.name}`, `lp:e:${record.name}`, `lp:a:s:${record.account}`];
    if (record.streamId) keys.push(`lp:i:${record.streamId}`);
    const answer = await this.call(() =>
      this.client.eval(CLAIM, {
        keys,
        arguments: [
          json,
          String(this.opts.leaseMs),
          String(accountLimit),
          record.name,
          JSON.stringify({ node: this.nodeId, reason: null }),
          String(ENDED_KEPT_MS),
        ],
      }),
    );
    if (answer === 'live' || answer === 'limit') return answer;
    this.held.set(record.name, { record, json });
    return undefined;
  }

  releaseStream(name: string, reason: string): Promise<void> {
    const held = this.held.get(name);
    if (!held) return Promise.resolve();
    this.held.delete(name);
    const { record } = held;
    const keys = [`lp:s:${name}`, `lp:e:${name}`, `lp:a:s:${record.account}`];
    if (record.streamId) keys.push(`lp:i:${record.streamId}`);
    return this.track(
      this.call(() =>
        this.client.eval(RELEASE, {
          keys,
          arguments: [
            this.nodeId,
            JSON.stringify({ node: this.nodeId, reason }),
            String(ENDED_KEPT_MS),
            name,
          ],
        }),
      ).then(
        () => undefined,
        (err: Error) =>
          this.log.warn(
            { stream: name, err: err.message },
            'could not release a stream; its lease will lapse',
          ),
      ),
    );
  }

  async claimViewer(account: string, viewer: string, limit: number): Promise<boolean> {
    const ok = await this.call(() =>
      this.client.eval(CLAIM_VIEWER, {
        keys: [`lp:a:v:${account}`],
        arguments: [String(limit), viewer, String(this.opts.leaseMs)],
      }),
    );
    if (ok === 1) this.viewers.set(viewer, account);
    return ok === 1;
  }

  releaseViewer(account: string, viewer: string): Promise<void> {
    if (!this.viewers.delete(viewer)) return Promise.resolve();
    return this.track(
      this.call(() => this.client.zRem(`lp:a:v:${account}`, viewer)).then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  async lookup(key: string): Promise<StreamLookup> {
    const [live, ended, byId] = await this.call(() =>
      this.client.mGet([`lp:s:${key}`, `lp:e:${key}`, `lp:i:${key}`]),
    );
    if (live) return { state: 'live', record: JSON.parse(live) as StreamRecord };
    if (byId) {
      const [l2, e2] = await this.call(() => this.client.mGet([`lp:s:${byId}`, `lp:e:${byId}`]));
      if (l2) return { state: 'live', record: JSON.parse(l2) as StreamRecord };
      if (e2) return endedOf(e2);
    }
    if (ended) return endedOf(ended);
    return { state: 'unknown' };
  }

  shareSuspension(s: SharedSuspension): void {
    this.publish(SUSPEND_CHANNEL, s);
  }

  shareLatency(l: SharedLatency): void {
    this.publish(LATENCY_CHANNEL, l);
  }

  onSuspension(fn: (s: SharedSuspension) => void): () => void {
    this.suspensionFns.add(fn);
    return () => this.suspensionFns.delete(fn);
  }

  onLatency(fn: (l: SharedLatency) => void): () => void {
    this.latencyFns.add(fn);
    return () => this.latencyFns.delete(fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.pending]);
    await Promise.allSettled([closeClient(this.client), closeClient(this.sub)]);
  }

  /** Renews every lease this node holds in one round trip; says which streams were lost. */
  private async renew(): Promise<void> {
    if (this.closed || (this.held.size === 0 && this.viewers.size === 0)) return;
    const data = {
      s: [...this.held.values()].map(({ record, json }) => ({
        n: record.name,
        a: record.account,
        i: record.streamId,
        r: json,
      })),
      v: [...this.viewers].map(([k, a]) => ({ a, k })),
    };
    try {
      const lost = (await this.call(() =>
        this.client.eval(RENEW, {
          arguments: [this.nodeId, String(this.opts.leaseMs), JSON.stringify(data)],
        }),
      )) as string[];
      for (const name of lost) {
        // Our lease lapsed (Redis was away longer than it) and another node took the name.
        this.log.warn({ stream: name }, 'another node now holds this stream; its registry entry is theirs');
        this.held.delete(name);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not renew leases; streams keep running');
    }
  }

  private publish(channel: string, message: SharedSuspension | SharedLatency): void {
    if (this.closed) return;
    const body = JSON.stringify({ ...message, node: this.nodeId });
    void this.call(() => this.client.publish(channel, body)).catch(() => undefined);
  }

  private async subscribe(): Promise<void> {
    const listen =
      <T>(fns: Set<(m: T) => void>) =>
      (raw: string) => {
        let m: T & { node?: string };
        try {
          m = JSON.parse(raw) as T & { node?: string };
        } catch {
          return;
        }
        if (m.node === this.nodeId) return;
        for (const fn of fns) fn(m);
      };
    await this.sub.subscribe(SUSPEND_CHANNEL, listen(this.suspensionFns));
    await this.sub.subscribe(LATENCY_CHANNEL, listen(this.latencyFns));
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    this.roundTrips++;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ClusterUnavailable('Redis did not answer in time')),
        CALL_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([fn(), late]);
    } catch (err) {
      if (err instanceof ClusterUnavailable) throw err;
      throw new ClusterUnavailable(`Redis: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }
}

function endedOf(raw: string): StreamLookup {
  const e = JSON.parse(raw) as { reason: string | null };
  return e.reason === null
    ? { state: 'ended', reason: 'node lost', nodeLost: true }
    : { state: 'ended', reason: e.reason, nodeLost: false };
}
