// The orchestrators this gateway may use: discovered from its sources (-orchAddr, the webhook,
// later the chain), each one's GetOrchestrator answer cached for -orchInfoMaxAge and refreshed in
// the background with at most -discoveryConcurrency calls in flight, failing ones suspended for a
// decaying penalty, and a live job's orchestrator chosen among the ones that fit (model, price
// ceiling) by the score in select.ts.
import type { Logger } from 'pino';
import type { GatewayIdentity } from '../payments/identity.ts';
import { Capability, hasCapability, type OrchestratorInfo } from '../wire/lp-rpc.ts';
import {
  capabilityName,
  type JobKind,
  jobCapabilities,
  liveKind,
  liveModels,
  offeredModels,
} from './capabilities.ts';
import type { DiscoveredOrchestrator, DiscoverySource } from './discovery.ts';
import { OrchestratorError } from './errors.ts';
import { getOrchestrator } from './grpc-client.ts';
import { formatRatio, jobPrice, livePrice, type PriceCeiling, ratioToNumber } from './price.ts';
import { type Candidate, drawOrder, NoOrchestratorError, type SelectedOrchestrator } from './select.ts';
import { type SuspensionOptions, Suspensions } from './suspension.ts';

export { NoOrchestratorError, type SelectedOrchestrator } from './select.ts';

export type OrchestratorState =
  /** Fits (for the model asked about, or for at least one of its models). */
  | 'available'
  /** Skipped for a while after a failure (job start, stream, GetOrchestrator). */
  | 'suspended'
  /** Its last GetOrchestrator failed (not reachable, timed out, TLS, refused, bad answer). */
  | 'unreachable'
  /** Its price is above the ceiling (for the model, or for every model it offers). */
  | 'too-expensive'
  /** It does not offer the model (or no live model at all). */
  | 'no-model'
  /** It answered OrchestratorCapped: no free capacity. Not a failure: not suspended. */
  | 'busy'
  /** Not asked yet, or the first answer is on its way. */
  | 'pending';

export interface OrchestratorStatus {
  url: string;
  state: OrchestratorState;
  /** One line: why it is in that state. */
  why: string;
  /** The discovery sources that list it. */
  sources: string[];
  /** Its service URI from GetOrchestrator. */
  transcoder: string | null;
  /** Live models it offers. */
  models: string[];
  /** What it charges (for `model` when given, else its price_info); strings because bigint. */
  price: { pricePerUnit: string; pixelsPerUnit: string; weiPerPixel: string } | null;
  /** Smoothed GetOrchestrator round trip. */
  latencyMs: number | null;
  /** Wei, when a source knows it. */
  stake: string | null;
  /** ISO time; null when not suspended. */
  suspendedUntil: string | null;
  /** Recent failures (they decay). */
  failures: number;
  /** ISO time of the last GetOrchestrator answer or failure. */
  checkedAt: string | null;
}

export interface OrchestratorPoolOptions {
  sources: DiscoverySource[];
  identity: GatewayIdentity;
  /** Each GetOrchestrator call; also the longest selection waits for answers it lacks. */
  grpcTimeoutMs: number;
  /** A cached GetOrchestrator answer older than this is refreshed in the background. */
  infoMaxAgeMs: number;
  /** GetOrchestrator calls in flight at once for background refreshes. */
  concurrency: number;
  priceCeiling: PriceCeiling;
  /** In [0, 1); default Math.random. */
  random?: () => number;
  /** Epoch ms for ages and suspensions; default Date.now. */
  now?: () => number;
  logger: Logger;
  suspension?: SuspensionOptions;
  /**
   * Other gateway nodes (src/cluster/): told of each suspension and GetOrchestrator latency this
   * pool decides or measures, so they skip an orchestrator this node saw fail.
   */
  share?: {
    suspension(s: { url: string; reason: string; until: number; failures: number }): void;
    latency(l: { url: string; ms: number }): void;
  };
  /** Replaces the gRPC call (tests). */
  getOrchestrator?: typeof getOrchestrator;
}

interface Entry {
  url: string;
  sources: Map<string, DiscoveredOrchestrator>;
  /** Last good answer to a GetOrchestrator without capabilities: every model and its price. */
  info?: OrchestratorInfo;
  checkedAt?: number;
  latencyMs?: number;
  /** Why the last GetOrchestrator failed; cleared by the next answer. */
  error?: { busy: boolean; message: string };
  /**
   * Smoothed time of its own jobs per capability (batch requests: inference included), kept apart
   * from the GetOrchestrator round trip so a slow model does not make it look slow for live.
   */
  jobLatencyMs?: Map<number, number>;
  inflight?: Promise<void>;
}

interface SourceState {
  source: DiscoverySource;
  list?: DiscoveredOrchestrator[];
  error?: string;
  running?: Promise<void>;
}

interface Verdict {
  state: OrchestratorState;
  why: string;
}

const LATENCY_SMOOTHING = 0.3;

export class OrchestratorPool {
  private readonly entries = new Map<string, Entry>();
  /** Answers to GetOrchestrator with a job's capabilities, for `select`'s reuseMs. */
  private readonly answers = new Map<string, { info: OrchestratorInfo; at: number }>();
  private readonly sources: SourceState[];
  private readonly suspensions: Suspensions;
  private readonly limiter: Limiter;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly call: typeof getOrchestrator;
  private readonly log: Logger;
  private timers: NodeJS.Timeout[] = [];
  private running = false;

  constructor(private readonly opts: OrchestratorPoolOptions) {
    this.sources = opts.sources.map((source) => ({ source }));
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.call = opts.getOrchestrator ?? getOrchestrator;
    this.suspensions = new Suspensions(opts.suspension ?? {}, this.now);
    this.limiter = new Limiter(Math.max(1, opts.concurrency));
    this.log = opts.logger.child({ component: 'orchestrators' });
  }

  /** Starts discovery and the refresh timers. Idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const rediscover = (s: SourceState) =>
      void this.discover(s).then(() => {
        if (this.running) this.refreshStale();
      });
    for (const s of this.sources) {
      rediscover(s);
      if (s.source.refreshIntervalMs !== undefined) {
        this.timers.push(setInterval(() => rediscover(s), s.source.refreshIntervalMs));
      }
    }
    const tick = Math.max(1000, Math.min(15_000, Math.floor(this.opts.infoMaxAgeMs / 4)));
    this.timers.push(setInterval(() => this.refreshStale(), tick));
    for (const t of this.timers) t.unref();
  }

  /** Clears every timer. Calls in flight end on their own (bounded by the timeout). */
  stop(): void {
    this.running = false;
    for (const t of this.timers.splice(0)) clearInterval(t);
  }

  /** Asks every source and every orchestrator again, and waits for the answers. */
  async refresh(): Promise<void> {
    await Promise.all(this.sources.map((s) => this.discover(s)));
    await Promise.allSettled([...this.entries.values()].map((e) => this.refreshInfo(e, true)));
  }

  /** `select` for a live-video-to-video job with `modelId`. */
  selectLive(
    modelId: string,
    opts: { exclude?: ReadonlySet<string>; includeSuspended?: boolean } = {},
  ): Promise<SelectedOrchestrator> {
    return this.select(liveKind(modelId), opts);
  }

  /**
   * Chooses an orchestrator for a job of `kind` and returns its fresh GetOrchestrator answer
   * (asked with the job's capabilities: it carries the auth token and ticket params the job
   * needs). Waits at most the gRPC timeout for orchestrators not asked yet, then tries the
   * candidates in score order (select.ts) until one answers well.
   * @throws NoOrchestratorError with one reason per orchestrator.
   */
  async select(
    kind: JobKind,
    opts: {
      exclude?: ReadonlySet<string>;
      includeSuspended?: boolean;
      /**
       * Reuse the chosen orchestrator's answer for this kind when younger than this (batch
       * requests, as go-livepeer keeps AI sessions): saves a GetOrchestrator round trip per
       * request. Dropped when the orchestrator is suspended.
       */
      reuseMs?: number;
    } = {},
  ): Promise<SelectedOrchestrator> {
    await this.prepare();
    const reasons = new Map<string, string>();
    const candidates: Candidate[] = [];
    for (const e of this.entries.values()) {
      if (opts.exclude?.has(e.url)) {
        reasons.set(e.url, 'excluded (already tried for this job)');
        continue;
      }
      const v = this.verdict(e, kind, opts.includeSuspended);
      if (v.state !== 'available') {
        reasons.set(e.url, `${v.state}: ${v.why}`);
        continue;
      }
      candidates.push({
        url: e.url,
        pricePerPixel: ratioToNumber(jobPrice(e.info, kind.capability, kind.modelId).perPixel),
        latencyMs: e.jobLatencyMs?.get(kind.capability) ?? e.latencyMs,
        stake: stakeOf(e),
      });
    }
    for (const c of drawOrder(candidates, this.random)) {
      const key = answerKey(c.url, kind);
      const kept = this.answers.get(key);
      if (kept && opts.reuseMs !== undefined && this.now() - kept.at < opts.reuseMs) {
        return { url: c.url, info: kept.info };
      }
      const outcome = await this.ask(c.url, kind);
      if ('info' in outcome) {
        if (opts.reuseMs !== undefined) this.answers.set(key, { info: outcome.info, at: this.now() });
        return { url: c.url, info: outcome.info };
      }
      reasons.set(c.url, outcome.why);
    }
    const lines = [...reasons].map(([url, why]) => `${url}: ${why}`);
    if (lines.length === 0) {
      for (const s of this.sources) if (s.error) lines.push(`${s.source.name}: ${s.error}`);
    }
    throw new NoOrchestratorError(
      kind.modelId,
      lines,
      kind.capability === Capability.LiveVideoToVideo ? undefined : jobName(kind),
    );
  }

  /** Skips `url` for a penalty that doubles with each recent failure (suspension.ts). */
  suspend(url: string, reason: string): void {
    for (const key of this.answers.keys()) if (key.startsWith(`${url}\n`)) this.answers.delete(key);
    const ms = this.suspensions.fail(url, reason);
    this.log.warn({ orchestrator: url, reason, suspendedMs: ms }, 'orchestrator suspended');
    const s = this.suspensions.state(url);
    this.opts.share?.suspension({ url, reason, until: this.now() + ms, failures: s.failures });
  }

  /** A suspension another node decided: applied here too (never shortened), not passed on. */
  applySharedSuspension(s: { url: string; reason: string; until: number; failures: number }): void {
    for (const key of this.answers.keys()) if (key.startsWith(`${s.url}\n`)) this.answers.delete(key);
    if (this.suspensions.impose(s.url, `${s.reason} (seen by another node)`, s.until, s.failures)) {
      this.log.info(
        { orchestrator: s.url, reason: s.reason, until: new Date(s.until).toISOString() },
        'orchestrator suspended by another node',
      );
    }
  }

  /** A GetOrchestrator round trip another node measured: smoothed into this pool's latency. */
  applySharedLatency(l: { url: string; ms: number }): void {
    const e = this.entries.get(l.url);
    if (e && Number.isFinite(l.ms) && l.ms >= 0) this.smooth(e, l.ms);
  }

  /**
   * A fresh GetOrchestrator from `url` for a running job of `kind` (new ticket params, a new
   * auth token), asked as go-livepeer refreshes a session: ignoring capacity, since the job
   * already holds a slot.
   */
  async fetchInfo(url: string, kind: JobKind): Promise<OrchestratorInfo> {
    return this.call(url, {
      identity: this.opts.identity,
      timeoutMs: this.opts.grpcTimeoutMs,
      capabilities: jobCapabilities(kind),
      ignoreCapacityCheck: true,
    });
  }

  /**
   * A fresh GetOrchestrator from `url` for `kind` that also replaces the answer kept for
   * `select`'s reuseMs: for a batch job whose kept answer can no longer pay (ticket params
   * expired or their nonces used up). Checked as `select` checks an answer (model, price, capacity).
   * @throws Error with the reason when the orchestrator does not answer well.
   */
  async renewAnswer(url: string, kind: JobKind): Promise<OrchestratorInfo> {
    const outcome = await this.ask(url, kind);
    if (!('info' in outcome)) throw new Error(outcome.why);
    this.answers.set(answerKey(url, kind), { info: outcome.info, at: this.now() });
    return outcome.info;
  }

  /** Why `info`'s price for `kind` is above the ceiling, or undefined when it is acceptable. */
  priceRefusal(info: OrchestratorInfo, kind: JobKind): string | undefined {
    return this.opts.priceCeiling.refuse(
      jobPrice(info, kind.capability, kind.modelId),
      kind.modelId,
      kind.capability,
    );
  }

  /**
   * A job's own time on `url` (a batch request, a transcoded segment): the latency term of the
   * score for later jobs of that capability.
   */
  observeLatency(url: string, ms: number, capability?: number): void {
    const e = this.entries.get(url);
    if (!e) return;
    if (capability === undefined) {
      this.measured(e, ms);
      return;
    }
    e.jobLatencyMs ??= new Map();
    const prev = e.jobLatencyMs.get(capability);
    e.jobLatencyMs.set(
      capability,
      Math.round(prev === undefined ? ms : prev * (1 - LATENCY_SMOOTHING) + ms * LATENCY_SMOOTHING),
    );
  }

  /** A job on `url` went well: forget its failures and lift any suspension. */
  reportSuccess(url: string): void {
    this.suspensions.succeed(url);
  }

  /** Every known orchestrator; with `modelId`, its state is for that model. */
  list(modelId?: string): OrchestratorStatus[] {
    return [...this.entries.values()].map((e) => {
      const v = this.verdict(e, modelId === undefined ? undefined : liveKind(modelId));
      const s = this.suspensions.state(e.url);
      const price = e.info ? priceOf(e.info, modelId) : null;
      const stake = stakeOf(e);
      return {
        url: e.url,
        state: v.state,
        why: v.why,
        sources: [...e.sources.keys()],
        transcoder: e.info?.transcoder ?? null,
        models: liveModels(e.info),
        price,
        latencyMs: e.latencyMs ?? null,
        stake: stake === undefined ? null : stake.toString(),
        suspendedUntil: s.until === undefined ? null : new Date(s.until).toISOString(),
        failures: s.failures,
        checkedAt: e.checkedAt === undefined ? null : new Date(e.checkedAt).toISOString(),
      };
    });
  }

  /**
   * Orchestrators whose last GetOrchestrator answered and that are not suspended, with that
   * answer (every model and its price): what a remote signer's discovery lists.
   */
  answered(): { url: string; info: OrchestratorInfo }[] {
    const out: { url: string; info: OrchestratorInfo }[] = [];
    for (const e of this.entries.values()) {
      if (!e.info || e.error || this.suspensions.state(e.url).until !== undefined) continue;
      out.push({ url: e.url, info: e.info });
    }
    return out;
  }

  // --- discovery ---

  private discover(s: SourceState): Promise<void> {
    s.running ??= (async () => {
      try {
        const list = await s.source.discover();
        s.list = list;
        if (s.error) this.log.info({ source: s.source.name }, 'orchestrator discovery answers again');
        s.error = undefined;
        this.merge();
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        s.error = reason;
        this.log.warn(
          { source: s.source.name, kept: s.list?.length ?? 0 },
          `orchestrator discovery failed, keeping the previous list: ${reason}`,
        );
      } finally {
        s.running = undefined;
      }
    })();
    return s.running;
  }

  /** Entries = the union of every source's last good list. */
  private merge(): void {
    const listed = new Map<string, Map<string, DiscoveredOrchestrator>>();
    for (const s of this.sources) {
      for (const o of s.list ?? []) {
        const by = listed.get(o.url) ?? new Map<string, DiscoveredOrchestrator>();
        listed.set(o.url, by);
        by.set(s.source.name, o);
      }
    }
    for (const [url, by] of listed) {
      const e = this.entries.get(url);
      if (e) e.sources = by;
      else {
        this.entries.set(url, { url, sources: by });
        this.log.info({ orchestrator: url, sources: [...by.keys()] }, 'orchestrator discovered');
      }
    }
    for (const url of [...this.entries.keys()]) {
      if (listed.has(url)) continue;
      this.entries.delete(url);
      this.suspensions.forget(url);
      this.log.info({ orchestrator: url }, 'orchestrator no longer listed');
    }
  }

  // --- GetOrchestrator cache ---

  /** Discovery done once, and answers from orchestrators never asked: waited for, up to the timeout. */
  private async prepare(): Promise<void> {
    const work = (async () => {
      await Promise.all(this.sources.filter((s) => s.list === undefined).map((s) => this.discover(s)));
      const waits: Promise<void>[] = [];
      for (const e of this.entries.values()) {
        const p = this.needsRefresh(e) ? this.refreshInfo(e) : e.inflight;
        if (p && !e.info) waits.push(p);
      }
      await Promise.allSettled(waits);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      work,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.opts.grpcTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private refreshStale(): void {
    for (const e of this.entries.values()) if (this.needsRefresh(e)) void this.refreshInfo(e);
  }

  private needsRefresh(e: Entry): boolean {
    if (e.inflight) return false;
    if (e.checkedAt === undefined) return true;
    // A failed one is asked again as soon as its suspension ends.
    if (e.error && !e.error.busy) return !this.suspensions.isSuspended(e.url);
    return this.now() - e.checkedAt >= this.opts.infoMaxAgeMs;
  }

  private refreshInfo(e: Entry, force = false): Promise<void> {
    if (e.inflight) return e.inflight;
    if (!force && !this.needsRefresh(e)) return Promise.resolve();
    e.inflight = this.limiter
      .run(async () => {
        const started = performance.now();
        try {
          const info = await this.call(e.url, {
            identity: this.opts.identity,
            timeoutMs: this.opts.grpcTimeoutMs,
          });
          this.measured(e, performance.now() - started);
          if (e.error) this.log.info({ orchestrator: e.url }, 'orchestrator answers again');
          e.info = info;
          e.error = undefined;
        } catch (err) {
          const busy = isCapped(err);
          const message = describe(err);
          if (e.error?.message !== message) {
            this.log.warn({ orchestrator: e.url, err: message }, 'GetOrchestrator failed');
          }
          e.error = { busy, message };
          if (!busy) this.suspend(e.url, `GetOrchestrator failed: ${message}`);
        } finally {
          e.checkedAt = this.now();
        }
      })
      .finally(() => {
        e.inflight = undefined;
      });
    return e.inflight;
  }

  private measured(e: Entry, ms: number): void {
    this.smooth(e, ms);
    this.opts.share?.latency({ url: e.url, ms: Math.round(ms) });
  }

  private smooth(e: Entry, ms: number): void {
    e.latencyMs =
      e.latencyMs === undefined
        ? Math.round(ms)
        : Math.round(e.latencyMs * (1 - LATENCY_SMOOTHING) + ms * LATENCY_SMOOTHING);
  }

  // --- selection ---

  /** A fresh GetOrchestrator with the job's capabilities; failures count (busy does not). */
  private async ask(url: string, kind: JobKind): Promise<{ info: OrchestratorInfo } | { why: string }> {
    const entry = this.entries.get(url);
    const started = performance.now();
    let info: OrchestratorInfo;
    try {
      info = await this.call(url, {
        identity: this.opts.identity,
        timeoutMs: this.opts.grpcTimeoutMs,
        capabilities: jobCapabilities(kind),
      });
    } catch (err) {
      const message = describe(err);
      if (isCapped(err)) {
        return { why: `busy: answered OrchestratorCapped for ${jobName(kind)} (no free capacity)` };
      }
      if (entry) {
        entry.error = { busy: false, message };
        entry.checkedAt = this.now();
      }
      this.suspend(url, `GetOrchestrator failed: ${message}`);
      return { why: `unreachable: GetOrchestrator failed (${message}); suspended` };
    }
    if (entry) this.measured(entry, performance.now() - started);
    const missing = this.missing(info, kind);
    if (missing) return { why: `no-model: ${missing}` };
    const refused = this.opts.priceCeiling.refuse(
      jobPrice(info, kind.capability, kind.modelId),
      kind.modelId,
      kind.capability,
    );
    if (refused) return { why: `too-expensive: ${refused}` };
    return { info };
  }

  /** Why `info` cannot run `kind`, or undefined when it can. */
  private missing(info: OrchestratorInfo | undefined, kind: JobKind): string | undefined {
    if (kind.capability === Capability.LiveVideoToVideo) {
      const models = liveModels(info);
      return models.includes(kind.modelId) ? undefined : noModel(kind.modelId, models);
    }
    if (!hasCapability(info?.capabilities?.bitstring, kind.capability)) {
      return `does not offer ${capabilityName(kind.capability)}`;
    }
    if (kind.modelId === '') return undefined;
    const models = offeredModels(info, kind.capability);
    return models.includes(kind.modelId)
      ? undefined
      : `does not offer "${kind.modelId}" for ${capabilityName(kind.capability)}${models.length ? ` (offers ${models.join(', ')})` : ''}`;
  }

  private verdict(e: Entry, kind: JobKind | undefined, ignoreSuspension = false): Verdict {
    const s = this.suspensions.state(e.url);
    if (s.until !== undefined && !ignoreSuspension) {
      const until = new Date(s.until).toISOString();
      return {
        state: e.error && !e.error.busy ? 'unreachable' : 'suspended',
        why: `${s.reason ?? 'suspended'} (skipped until ${until}, ${s.failures} recent failure${s.failures === 1 ? '' : 's'})`,
      };
    }
    if (!e.info) {
      if (e.error) return { state: e.error.busy ? 'busy' : 'unreachable', why: e.error.message };
      return { state: 'pending', why: e.inflight ? 'GetOrchestrator in progress' : 'not asked yet' };
    }
    const ceiling = this.opts.priceCeiling;
    if (kind !== undefined) {
      const missing = this.missing(e.info, kind);
      if (missing) return { state: 'no-model', why: missing };
      const price = jobPrice(e.info, kind.capability, kind.modelId);
      const refused = ceiling.refuse(price, kind.modelId, kind.capability);
      if (refused) return { state: 'too-expensive', why: refused };
      return {
        state: 'available',
        why: `offers ${jobName(kind)} at ${formatRatio(price.perPixel)} wei/pixel`,
      };
    }
    const models = liveModels(e.info);
    if (models.length === 0) return { state: 'no-model', why: 'offers no live-video-to-video model' };
    const refusals = models.map((m) => ceiling.refuse(livePrice(e.info, m), m));
    if (refusals.every((r) => r !== undefined)) {
      return {
        state: 'too-expensive',
        why: models.length === 1 ? refusals[0] : `for every model: ${refusals[0]}`,
      };
    }
    const affordable = models.filter((_, i) => refusals[i] === undefined);
    return {
      state: 'available',
      why:
        affordable.length === models.length
          ? `offers ${models.join(', ')}`
          : `offers ${affordable.join(', ')} within the price ceiling (${models.length - affordable.length} more above it)`,
    };
  }
}

const answerKey = (url: string, kind: JobKind) => `${url}\n${kind.capability}\n${kind.modelId}`;

/** `"model"` for live (as before), `pipeline "model"` otherwise, `transcoding` without a model. */
function jobName(kind: JobKind): string {
  if (kind.capability === Capability.LiveVideoToVideo) return `"${kind.modelId}"`;
  if (kind.modelId === '') return capabilityName(kind.capability);
  return `${capabilityName(kind.capability)} "${kind.modelId}"`;
}

function noModel(modelId: string, models: string[]): string {
  return models.length
    ? `does not offer "${modelId}" (offers ${models.join(', ')})`
    : 'offers no live-video-to-video model';
}

function priceOf(info: OrchestratorInfo, modelId: string | undefined): OrchestratorStatus['price'] {
  const p = modelId !== undefined ? livePrice(info, modelId) : livePrice({ priceInfo: info.priceInfo }, '');
  return {
    pricePerUnit: p.pricePerUnit.toString(),
    pixelsPerUnit: p.pixelsPerUnit.toString(),
    weiPerPixel: p.perPixel.den === 0n ? 'invalid' : formatRatio(p.perPixel),
  };
}

function stakeOf(e: Entry): bigint | undefined {
  let stake: bigint | undefined;
  for (const o of e.sources.values())
    if (o.stake !== undefined && (stake === undefined || o.stake > stake)) stake = o.stake;
  return stake;
}

function isCapped(err: unknown): boolean {
  return err instanceof OrchestratorError && err.kind === 'refused' && /OrchestratorCapped/.test(err.message);
}

/** One line, led by the kind of failure when the message does not already say it. */
function describe(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line =
    err instanceof OrchestratorError && !msg.toLowerCase().startsWith(err.kind) ? `${err.kind}: ${msg}` : msg;
  return line.replace(/\s+/g, ' ');
}

/** At most `max` tasks at once; the rest wait in order. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    while (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}
