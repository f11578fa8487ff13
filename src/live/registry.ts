// All live streams of this gateway, by name. Enforces the limits and turns requests for
// unknown streams into clear errors.
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { MemoryClusterStore } from '../cluster/memory.ts';
import { type ClusterStore, ClusterUnavailable, type StreamLookup } from '../cluster/store.ts';
import type { Secret } from '../config/index.ts';
import { liveKind } from '../orchestrators/capabilities.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { RtmpOutput } from '../rtmp/output.ts';
import type { IcePatchResult, PeerNetworkOptions } from '../webrtc/index.ts';
import { addTotals, type DataPlaneTotals, emptyTotals } from './data-status.ts';
import { LiveError } from './errors.ts';
import { LivePayments, type LivePaymentsOptions } from './live-payer.ts';
import { LoopDelayMonitor, type LoopDelaySource } from './loop-delay.ts';
import type { LivePaymentBackend } from './payment-backend.ts';
import { POLICY_DEFAULTS } from './policy.ts';
import type { FeedPublisher } from './publisher.ts';
import { LiveSession, type LiveSessionLimits, type LiveStatus, type SwapRecord } from './session.ts';
import { StreamEvents, StreamTracer } from './stream-events.ts';

/** Failover limits when not configured: the policy's defaults (docs/live-liveness.md). */
const { ingestTimeoutMs: _, ...FAILOVER_DEFAULTS } = POLICY_DEFAULTS;
type FailoverLimits = keyof typeof FAILOVER_DEFAULTS;

export interface LiveStreamsOptions {
  pool: OrchestratorPool;
  identity: GatewayIdentity;
  limits: Omit<LiveSessionLimits, FailoverLimits> &
    Partial<Pick<LiveSessionLimits, FailoverLimits>> & {
      maxStreams: number;
      /** Per account, across nodes (0 or absent: no limit). */
      accountMaxStreams?: number;
      accountMaxViewers?: number;
    };
  network: PeerNetworkOptions;
  logger: Logger;
  metrics?: LiveMetricsHooks;
  /**
   * A payment account: jobs on orchestrators with ticket params and a price above zero are paid
   * (start prepayment, then every intervalMs). Absent: everything stays off-chain.
   */
  /** The gateway's payment account (or its ticket senders, shared with the REST paths). */
  payments?: LivePaymentsOptions | LivePaymentBackend;
  /** The gateway's event-loop delay; default: a monitor of this process's loop. */
  loopDelay?: LoopDelaySource;
  /** Every stream's output is pushed here over RTMP unless the stream has its own (-liveRtmpOutput). */
  rtmpOutputUrl?: string;
  /** Starts an RTMP output (default: an ffmpeg push, src/rtmp/output.ts). */
  startRtmpOutput?: (url: string, logger: Logger) => RtmpOutputHandle;
  /** Where every stream's events go (the events webhook and /live/events subscribe); default: a new emitter. */
  events?: StreamEvents;
  /** What this node shares with the others (src/cluster/); default: in-process, one node. */
  cluster?: ClusterStore;
  /** This node's base URL, named in its streams' records (-clusterNodeUrl). */
  nodeUrl?: string;
}

/** Seconds a client is told to wait when Redis cannot be asked. */
const CLUSTER_RETRY_AFTER_S = 5;

/** What a publish carries besides the offer (the auth webhook's answer, the query, the credential). */
export interface PublishOptions {
  modelId: string;
  params: Record<string, unknown>;
  /** go-livepeer's stream id (the webhook's `stream_id`, else the `streamId` query parameter). */
  streamId?: string;
  pipelineId?: string;
  /** Where the output is to be pushed (the webhook's `rtmp_output_url`); kept, not pushed yet. */
  rtmpOutputUrl?: string;
  /** What later requests on this stream (/update, /status, WHIP DELETE and PATCH) must present. */
  credential?: Secret;
  /** The viewers' URL, for go-livepeer's status `gateway_status.whep_url`. */
  whepUrl?: string;
  /** When the request arrived (ms), for the trace's first event; default: now. */
  receivedAt?: number;
}

/** An RTMP push of a stream's output (src/rtmp/output.ts). */
export interface RtmpOutputHandle {
  write(chunk: Uint8Array): void;
  status(): NonNullable<LiveStatus['rtmpOutputs']>[number];
  close(): void;
}

/** A live stream and what the registry keeps beside it. */
interface Entry {
  outputs: RtmpOutputHandle[];
  session: LiveSession;
  /** go-livepeer's stream id, else the stream name: what the heartbeat and events call it. */
  id: string;
  credential?: Secret;
  rtmpOutputUrl?: string;
  /** What its slots count against (accountOf). */
  account: string;
  /** Viewer id -> its account slot. */
  viewerSlots: Map<string, string>;
}

/** A stream that ended recently. */
interface Ended {
  status: LiveStatus;
  at: number;
  id: string;
  reason: string;
  credential?: Secret;
}

/** What the registry reports for Prometheus (src/http/metrics.ts). */
export interface LiveMetricsHooks {
  attempt(outcome: 'started' | 'refused' | 'failed'): void;
  firstOutput(delayMs: number): void;
  swap(record: SwapRecord): void;
}

/** Ended streams stay visible in status for a while, so a client can see why one ended. */
const ENDED_KEPT = 64;
const ENDED_KEPT_MS = 10 * 60_000;

export class LiveStreams {
  private readonly sessions = new Map<string, Entry>();
  /** Names being claimed in the cluster (a second publish meanwhile gets 409). */
  private readonly claiming = new Set<string>();
  readonly cluster: ClusterStore;
  private readonly ended = new Map<string, Ended>();
  /** Every stream's events, for the operator's sinks (events webhook, /live/events). */
  readonly events: StreamEvents;
  /** Data-plane counters of every stream that ended, so totals never go down. */
  private readonly endedTotals = emptyTotals();
  private readonly payments?: LivePaymentBackend;
  /** One measure of the event loop for every stream (stopped by closeAll). */
  private readonly loopDelay: LoopDelaySource & { close?: () => void };

  constructor(private readonly opts: LiveStreamsOptions) {
    this.loopDelay = opts.loopDelay ?? new LoopDelayMonitor();
    this.events = opts.events ?? new StreamEvents();
    this.cluster = opts.cluster ?? new MemoryClusterStore();
    if (opts.payments) {
      this.payments = 'openJob' in opts.payments ? opts.payments : new LivePayments(opts.payments);
    }
  }

  async publish(
    stream: string,
    offerSdp: string,
    job: PublishOptions,
  ): Promise<{ sessionId: string; answerSdp: string; etag: string }> {
    const { session, sessionId } = await this.open(stream, job);
    try {
      const answerSdp = await session.start(offerSdp);
      this.opts.metrics?.attempt('started');
      return { sessionId, answerSdp, etag: session.publisherEtag ?? `"${sessionId}"` };
    } catch (err) {
      this.opts.metrics?.attempt(err instanceof LiveError && err.status < 500 ? 'refused' : 'failed');
      await session.stop(`start failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /**
   * A stream from a feed publisher (RTMP): its name claimed (in the cluster too), the feed
   * attached; the promise settles when the first orchestrator job runs (or the start fails,
   * and the stream has then ended).
   */
  async publishFeed(
    stream: string,
    feed: FeedPublisher,
    job: PublishOptions,
  ): Promise<{ sessionId: string }> {
    const { session, sessionId } = await this.open(stream, job, feed.audioCodec);
    try {
      await session.startFeed(feed);
      this.opts.metrics?.attempt('started');
      return { sessionId };
    } catch (err) {
      this.opts.metrics?.attempt(err instanceof LiveError && err.status < 500 ? 'refused' : 'failed');
      await session.stop(`start failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Claims the stream's name in the cluster, then creates its session. */
  private async open(
    stream: string,
    job: PublishOptions,
    audioCodec?: 'opus' | 'aac',
  ): Promise<{ session: LiveSession; sessionId: string }> {
    this.checkRoom(stream);
    const account = accountOf(job.credential);
    this.claiming.add(stream);
    try {
      await this.claim(stream, job.streamId, account);
    } finally {
      this.claiming.delete(stream);
    }
    const sessionId = randomBytes(12).toString('hex');
    const tracer = new StreamTracer(this.events, {
      stream,
      streamId: job.streamId ?? '',
      pipelineId: job.pipelineId ?? '',
      requestId: sessionId.slice(0, 8),
      pipeline: job.modelId,
    });
    const session = new LiveSession({
      stream,
      streamId: job.streamId,
      sessionId,
      tracer,
      audioCodec,
      whepUrl: job.whepUrl,
      modelId: job.modelId,
      params: job.params,
      selectOrchestrator: (modelId, exclude, opts) =>
        this.opts.pool.selectLive(modelId, { exclude, ...opts }),
      onOrchestratorFailed: (url, reason) => this.opts.pool.suspend(url, reason),
      refreshOrchestrator: (url, modelId) => this.opts.pool.fetchInfo(url, liveKind(modelId)),
      refusePrice: (info, modelId) => this.opts.pool.priceRefusal(info, liveKind(modelId)),
      identity: this.opts.identity,
      payments: this.payments,
      limits: { ...FAILOVER_DEFAULTS, ...this.opts.limits },
      network: this.opts.network,
      logger: this.opts.logger.child({ stream }),
      loopDelay: this.loopDelay,
      onFirstOutput: (ms) => this.opts.metrics?.firstOutput(ms),
      onSwap: (record) => this.opts.metrics?.swap(record),
      onOutputBytes: (chunk) => {
        for (const o of entry.outputs) o.write(chunk);
      },
      onViewerLeft: (viewerId) => {
        const slot = entry.viewerSlots.get(viewerId);
        if (slot === undefined) return;
        entry.viewerSlots.delete(viewerId);
        void this.cluster.releaseViewer(entry.account, slot);
      },
      onEnd: () => {
        for (const o of entry.outputs) o.close();
        if (this.sessions.get(stream)?.session !== session) return;
        this.sessions.delete(stream);
        const final = this.statusOf(entry);
        // Other nodes now answer 404 "stream ended: <reason>" for it.
        void this.cluster.releaseStream(stream, final.endReason ?? 'ended');
        addTotals(this.endedTotals, final);
        this.remember(stream, {
          status: final,
          at: Date.now(),
          id: entry.id,
          reason: final.endReason ?? 'ended',
          credential: entry.credential,
        });
      },
    });
    const outputUrl = job.rtmpOutputUrl ?? this.opts.rtmpOutputUrl;
    const startOutput =
      this.opts.startRtmpOutput ?? ((url: string, logger: Logger) => new RtmpOutput({ url, logger }));
    const entry: Entry = {
      outputs: outputUrl ? [startOutput(outputUrl, this.opts.logger.child({ stream }))] : [],
      session,
      id: job.streamId || stream,
      credential: job.credential,
      rtmpOutputUrl: job.rtmpOutputUrl,
      account,
      viewerSlots: new Map(),
    };
    // Claim the name before any await so a second publisher gets 409.
    this.sessions.set(stream, entry);
    // After auth, before selection (go-livepeer's gateway_receive_stream_request).
    tracer.trace('gateway_receive_stream_request', undefined, {
      timestamp: job.receivedAt ?? Date.now(),
      pipeline: job.modelId,
    });
    return { session, sessionId };
  }

  /** Throws the 409 or 503 a publish of `stream` would get now (before asking anyone else). */
  checkRoom(stream: string): void {
    if (this.sessions.has(stream) || this.claiming.has(stream)) {
      throw new LiveError(409, 'STREAM_LIVE', `stream "${stream}" already has a publisher`);
    }
    if (this.sessions.size >= this.opts.limits.maxStreams) {
      throw new LiveError(
        503,
        'TOO_MANY_STREAMS',
        `this gateway runs at most ${this.opts.limits.maxStreams} streams`,
      );
    }
  }

  async unpublish(stream: string, sessionId: string): Promise<void> {
    const session = this.get(stream);
    if (session.sessionId !== sessionId)
      throw new LiveError(404, 'NO_SUCH_SESSION', `no WHIP session ${sessionId}`);
    await session.stop('publisher sent DELETE');
  }

  async view(
    stream: string,
    offerSdp: string,
  ): Promise<{ viewerId: string; answerSdp: string; etag: string }> {
    const session = this.get(stream);
    const limit = this.opts.limits.accountMaxViewers ?? 0;
    if (limit <= 0) return session.addViewer(offerSdp);
    // The account's viewers are counted across nodes: a slot first, freed when the viewer goes.
    const entry = this.sessions.get(stream)!;
    const slot = randomBytes(12).toString('hex');
    const ok = await this.cluster.claimViewer(entry.account, slot, limit).catch((err: unknown) => {
      throw clusterError(err);
    });
    if (!ok) {
      throw new LiveError(429, 'ACCOUNT_VIEWERS', `this account has its ${limit} viewers (on all nodes)`);
    }
    try {
      const viewer = await session.addViewer(offerSdp);
      entry.viewerSlots.set(viewer.viewerId, slot);
      return viewer;
    } catch (err) {
      await this.cluster.releaseViewer(entry.account, slot);
      throw err;
    }
  }

  /** True when this node runs the stream (by name, or by stream id with `byId`) or remembers it ended. */
  isLocal(key: string, opts: { byId?: boolean } = {}): boolean {
    if (this.sessions.has(key) || this.claiming.has(key) || this.endedLookup(key, false)) return true;
    return !!opts.byId && (this.lookup(key) !== undefined || this.endedLookup(key) !== undefined);
  }

  /** Where a stream this node does not run lives (another node), or why it is gone. */
  async locate(key: string): Promise<StreamLookup> {
    if (!this.cluster.shared) return { state: 'unknown' };
    return this.cluster.lookup(key).catch((err: unknown) => {
      throw clusterError(err);
    });
  }

  async unview(stream: string, viewerId: string): Promise<void> {
    await this.get(stream).removeViewer(viewerId);
  }

  /** RFC 9725 PATCH on a WHIP or WHEP session URL of a live stream (see LiveSession.patchIce). */
  patchIce(
    stream: string,
    resource: { kind: 'whip' | 'whep'; id: string },
    ifMatch: string | undefined,
    body: string,
  ): Promise<IcePatchResult> {
    return this.get(stream).patchIce(resource, ifMatch, body);
  }

  update(stream: string, params: Record<string, unknown>): Promise<void> {
    return this.get(stream).update(params);
  }

  /**
   * A live stream's status, or the last status of one that ended recently; by stream name, or by
   * go-livepeer's stream id (its clients ask /live/video-to-video/{streamId}/status).
   */
  status(key: string): LiveStatus {
    const live = this.lookup(key);
    if (live) return this.statusOf(live);
    const ended = this.endedLookup(key);
    if (ended) return ended.status;
    throw new LiveError(404, 'NO_SUCH_STREAM', `no live stream "${key}"`);
  }

  /**
   * What requests on this stream must present (the publish credential); undefined when the
   * stream is open, or unknown (the request then gets its 404 from the registry).
   */
  credentialOf(key: string, opts: { byId?: boolean } = {}): Secret | undefined {
    if (!opts.byId) return (this.sessions.get(key) ?? this.endedLookup(key, false))?.credential;
    return (this.lookup(key) ?? this.endedLookup(key))?.credential;
  }

  /** The output URL the auth webhook gave this stream (rtmp_output_url), if any. */
  rtmpOutputOf(stream: string): string | undefined {
    return this.sessions.get(stream)?.rtmpOutputUrl;
  }

  /** Statuses of the live streams; `open` only: those without a credential. */
  list(opts: { open?: boolean } = {}): LiveStatus[] {
    return [...this.sessions.values()]
      .filter((e) => !opts.open || !e.credential)
      .map((e) => this.statusOf(e));
  }

  /** Each live stream's id as the heartbeat posts it: go-livepeer's stream id, else its name. */
  liveIds(): string[] {
    return [...this.sessions.values()].map((e) => e.id);
  }

  /**
   * Ends at once the live streams with these ids (the heartbeat's terminatedStreamIds). Later
   * requests on them get 404 "stream ended: <reason>". Resolves with the names ended.
   */
  async terminate(ids: Iterable<string>, reason: string): Promise<string[]> {
    const wanted = new Set(ids);
    const targets = [...this.sessions].filter(([, e]) => wanted.has(e.id));
    await Promise.all(targets.map(([, e]) => e.session.terminate(reason)));
    return targets.map(([name]) => name);
  }

  /** Drops, losses, NACKs and keyframe requests over every stream this gateway ran (for /metrics). */
  dataTotals(statuses: LiveStatus[] = this.list()): DataPlaneTotals {
    const totals = { ...this.endedTotals };
    for (const status of statuses) addTotals(totals, status);
    return totals;
  }

  /**
   * Ends every stream (the gateway is shutting down): orchestrator jobs closed, peers closed
   * (DTLS close_notify), then the payments still under way are waited for.
   */
  async closeAll(reason = 'gateway shutting down'): Promise<void> {
    const sessions = [...this.sessions.values()].map((e) => e.session);
    await Promise.all(sessions.map((s) => s.stop(reason)));
    await Promise.all(sessions.map((s) => s.paymentsSettled()));
    if (!this.opts.loopDelay) this.loopDelay.close?.();
  }

  get liveCount(): number {
    return this.sessions.size;
  }

  /** The session's status with what the registry adds: the feed publisher, the RTMP outputs. */
  private statusOf(entry: Entry): LiveStatus {
    const status = entry.session.status();
    const publisher = entry.session.feedStatus();
    if (publisher) status.publisher = publisher;
    if (entry.outputs.length) status.rtmpOutputs = entry.outputs.map((o) => o.status());
    return status;
  }

  /** The stream's name (and stream id) in the cluster, and its account's stream slot. */
  private async claim(stream: string, streamId: string | undefined, account: string): Promise<void> {
    const refusal = await this.cluster
      .claimStream(
        {
          name: stream,
          streamId: streamId && streamId !== stream ? streamId : undefined,
          node: this.cluster.nodeId,
          nodeUrl: this.opts.nodeUrl ?? '',
          account,
        },
        this.opts.limits.accountMaxStreams ?? 0,
      )
      .catch((err: unknown) => {
        throw clusterError(err);
      });
    if (refusal === 'live') {
      throw new LiveError(409, 'STREAM_LIVE', `stream "${stream}" already has a publisher (on another node)`);
    }
    if (refusal === 'limit') {
      throw new LiveError(
        429,
        'ACCOUNT_STREAMS',
        `this account runs its ${this.opts.limits.accountMaxStreams} streams (on all nodes)`,
      );
    }
  }

  private remember(stream: string, ended: Ended): void {
    this.ended.delete(stream);
    this.ended.set(stream, ended);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value as string);
  }

  private lookup(key: string): Entry | undefined {
    const byName = this.sessions.get(key);
    if (byName) return byName;
    for (const e of this.sessions.values()) if (e.id === key) return e;
    return undefined;
  }

  private endedLookup(key: string, byId = true): Ended | undefined {
    const now = Date.now();
    const byName = this.ended.get(key);
    if (byName && now - byName.at < ENDED_KEPT_MS) return byName;
    if (!byId) return undefined;
    for (const e of this.ended.values()) if (e.id === key && now - e.at < ENDED_KEPT_MS) return e;
    return undefined;
  }

  private get(stream: string): LiveSession {
    const entry = this.sessions.get(stream);
    if (entry) return entry.session;
    // A stream that ended says so, and why (the operator's termination, say).
    const ended = this.endedLookup(stream, false);
    if (ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream ended: ${ended.reason}`);
    throw new LiveError(404, 'NO_SUCH_STREAM', `no live stream "${stream}"`);
  }
}

/** The account of a stream: its publish credential (hashed; never stored in Redis as is), else 'open'. */
export function accountOf(credential: Secret | undefined): string {
  if (!credential) return 'open';
  return createHash('sha256').update(credential.reveal()).digest('hex').slice(0, 32);
}

/** Redis could not be asked: the client may try again shortly. */
function clusterError(err: unknown): unknown {
  if (!(err instanceof ClusterUnavailable)) return err;
  return new LiveError(
    503,
    'CLUSTER_UNAVAILABLE',
    `the gateway cannot reach its shared registry (${err.message}); try again shortly`,
    CLUSTER_RETRY_AFTER_S,
  );
}
