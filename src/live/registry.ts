// All live streams of this gateway, by name. Enforces the limits and turns requests for
// unknown streams into clear errors.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { liveKind } from '../orchestrators/capabilities.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import type { IcePatchResult, PeerNetworkOptions } from '../webrtc/index.ts';
import { addTotals, type DataPlaneTotals, emptyTotals } from './data-status.ts';
import { LiveError } from './errors.ts';
import { LivePayments, type LivePaymentsOptions } from './live-payer.ts';
import { LoopDelayMonitor, type LoopDelaySource } from './loop-delay.ts';
import { POLICY_DEFAULTS } from './policy.ts';
import { LiveSession, type LiveSessionLimits, type LiveStatus, type SwapRecord } from './session.ts';

/** Failover limits when not configured: the policy's defaults (docs/live-liveness.md). */
const { ingestTimeoutMs: _, ...FAILOVER_DEFAULTS } = POLICY_DEFAULTS;
type FailoverLimits = keyof typeof FAILOVER_DEFAULTS;

export interface LiveStreamsOptions {
  pool: OrchestratorPool;
  identity: GatewayIdentity;
  limits: Omit<LiveSessionLimits, FailoverLimits> &
    Partial<Pick<LiveSessionLimits, FailoverLimits>> & { maxStreams: number };
  network: PeerNetworkOptions;
  logger: Logger;
  metrics?: LiveMetricsHooks;
  /**
   * A payment account: jobs on orchestrators with ticket params and a price above zero are paid
   * (start prepayment, then every intervalMs). Absent: everything stays off-chain.
   */
  /** The gateway's payment account (or its ticket senders, shared with the REST paths). */
  payments?: LivePaymentsOptions | LivePayments;
  /** The gateway's event-loop delay; default: a monitor of this process's loop. */
  loopDelay?: LoopDelaySource;
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
  private readonly sessions = new Map<string, LiveSession>();
  private readonly ended = new Map<string, { status: LiveStatus; at: number }>();
  /** Data-plane counters of every stream that ended, so totals never go down. */
  private readonly endedTotals = emptyTotals();
  private readonly payments?: LivePayments;
  /** One measure of the event loop for every stream (stopped by closeAll). */
  private readonly loopDelay: LoopDelaySource & { close?: () => void };

  constructor(private readonly opts: LiveStreamsOptions) {
    this.loopDelay = opts.loopDelay ?? new LoopDelayMonitor();
    if (opts.payments) {
      this.payments = opts.payments instanceof LivePayments ? opts.payments : new LivePayments(opts.payments);
    }
  }

  async publish(
    stream: string,
    offerSdp: string,
    job: { modelId: string; params: Record<string, unknown> },
  ): Promise<{ sessionId: string; answerSdp: string; etag: string }> {
    if (this.sessions.has(stream)) {
      throw new LiveError(409, 'STREAM_LIVE', `stream "${stream}" already has a publisher`);
    }
    if (this.sessions.size >= this.opts.limits.maxStreams) {
      throw new LiveError(
        503,
        'TOO_MANY_STREAMS',
        `this gateway runs at most ${this.opts.limits.maxStreams} streams`,
      );
    }
    const sessionId = randomBytes(12).toString('hex');
    const session = new LiveSession({
      stream,
      sessionId,
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
      onEnd: () => {
        if (this.sessions.get(stream) !== session) return;
        this.sessions.delete(stream);
        const final = session.status();
        addTotals(this.endedTotals, final);
        this.remember(stream, final);
      },
    });
    // Claim the name before any await so a second publisher gets 409.
    this.sessions.set(stream, session);
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

  async unpublish(stream: string, sessionId: string): Promise<void> {
    const session = this.get(stream);
    if (session.sessionId !== sessionId)
      throw new LiveError(404, 'NO_SUCH_SESSION', `no WHIP session ${sessionId}`);
    await session.stop('publisher sent DELETE');
  }

  view(stream: string, offerSdp: string): Promise<{ viewerId: string; answerSdp: string; etag: string }> {
    return this.get(stream).addViewer(offerSdp);
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

  /** A live stream's status, or the last status of one that ended recently. */
  status(stream: string): LiveStatus {
    const live = this.sessions.get(stream);
    if (live) return live.status();
    const ended = this.ended.get(stream);
    if (ended && Date.now() - ended.at < ENDED_KEPT_MS) return ended.status;
    throw new LiveError(404, 'NO_SUCH_STREAM', `no live stream "${stream}"`);
  }

  list(): LiveStatus[] {
    return [...this.sessions.values()].map((s) => s.status());
  }

  /** Drops, losses, NACKs and keyframe requests over every stream this gateway ran (for /metrics). */
  dataTotals(statuses: LiveStatus[] = this.list()): DataPlaneTotals {
    const totals = { ...this.endedTotals };
    for (const status of statuses) addTotals(totals, status);
    return totals;
  }

  /** Ends every stream: the gateway is shutting down. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.stop('gateway shutting down')));
    if (!this.opts.loopDelay) this.loopDelay.close?.();
  }

  private remember(stream: string, status: LiveStatus): void {
    this.ended.delete(stream);
    this.ended.set(stream, { status, at: Date.now() });
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.keys().next().value as string);
  }

  private get(stream: string): LiveSession {
    const session = this.sessions.get(stream);
    if (!session) throw new LiveError(404, 'NO_SUCH_STREAM', `no live stream "${stream}"`);
    return session;
  }
}
