// One live stream: the publisher's WebRTC peer, the segmenter feeding the pinned
// orchestrator, the output reader, and the WHEP viewers. close() releases all of it.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { SelectedOrchestrator } from '../orchestrators/select.ts';
import { ChainError } from '../payments/chain.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { TicketParamsError } from '../payments/sender.ts';
import type { SegmentWriter } from '../trickle/index.ts';
import {
  checkOffer,
  EgressPeer,
  IcePatchError,
  type IcePatchResult,
  IcePortsFullError,
  IngestPeer,
  type PeerNetworkOptions,
} from '../webrtc/index.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import {
  type InputDataStatus,
  inputDataStatus,
  type OutputDataStatus,
  outputDataStatus,
} from './data-status.ts';
import { LiveError } from './errors.ts';
import { Ingest } from './ingest.ts';
import { FrameLatency } from './latency.ts';
import {
  type LivePayments,
  newTally,
  type PaymentStatus,
  type PaymentTally,
  paymentStatus,
} from './live-payer.ts';
import { OrchestratorSession } from './orchestrator-session.ts';
import { OutputHub } from './output-hub.ts';
import { RateMeter } from './rate-meter.ts';

export interface LiveSessionLimits {
  minSegmentDurationMs: number;
  pliIntervalMs: number;
  maxViewers: number;
  ingestTimeoutMs: number;
  /** An orchestrator that sends no output this long while input flows is swapped out. */
  noOutputTimeoutMs: number;
  /** At most this many swaps within swapWindowMs; one more ends the stream. */
  maxSwaps: number;
  swapWindowMs: number;
  /** With no orchestrator available, keep the publisher this long while retrying. */
  noOrchestratorGraceMs: number;
}

export interface LiveSessionOptions {
  stream: string;
  sessionId: string;
  modelId: string;
  params: Record<string, unknown>;
  /** Picks an orchestrator that can run the model, skipping `exclude`; rejects with the reasons when none can. */
  selectOrchestrator: (
    modelId: string,
    exclude: ReadonlySet<string>,
    opts?: { includeSuspended?: boolean },
  ) => Promise<SelectedOrchestrator>;
  /** Told when an orchestrator failed this stream, so selection can avoid it for a while. */
  onOrchestratorFailed: (url: string, reason: string) => void;
  /** A fresh GetOrchestrator for this stream's job from `url` (payments refresh stale params). */
  refreshOrchestrator?: (url: string, modelId: string) => Promise<OrchestratorInfo>;
  /** Why `info`'s price for the model is above the ceiling (checked again before each payment). */
  refusePrice?: (info: OrchestratorInfo, modelId: string) => string | undefined;
  identity: GatewayIdentity;
  /** The gateway's payment account: jobs on orchestrators that charge are paid. Absent: off-chain. */
  payments?: LivePayments;
  limits: LiveSessionLimits;
  /** Where WebRTC peers listen and which host candidates they announce. */
  network: PeerNetworkOptions;
  logger: Logger;
  onEnd: () => void;
  /** For metrics: the first processed frame went out (ms since the WHIP offer), and each swap. */
  onFirstOutput?: (delayMs: number) => void;
  onSwap?: (record: SwapRecord) => void;
}

/** `degraded`: the publisher is connected but no orchestrator is running the stream right now. */
export type LiveState = 'starting' | 'live' | 'degraded' | 'ended';

export interface SwapRecord {
  at: string;
  from: string;
  to: string | null;
  reason: string;
  /** Time from the failure being noticed to the new job running. */
  tookMs: number | null;
}

export interface LiveStatus {
  stream: string;
  state: LiveState;
  model: string;
  params: Record<string, unknown>;
  orchestrator: string | null;
  manifestId: string | null;
  startedAt: string;
  input: { fps: number; bitrateKbps: number } & InputDataStatus;
  output: { fps: number; bitrateKbps: number; segments: number } & OutputDataStatus;
  viewers: number;
  /** Ingest arrival → egress send per frame, over recent frames (includes the orchestrator's time). */
  latencyMs: { p50: number; p95: number; frames: number } | null;
  /** WHIP offer → first processed frame sent to viewers. */
  firstFrameDelayMs: number | null;
  lastError: string | null;
  orchestratorStatus: Record<string, unknown> | null;
  swaps: SwapRecord[];
  /** What was paid to whom: one entry per paid orchestrator this stream used. */
  payments: PaymentStatus[];
  endReason?: string;
}

/** Errors about the gateway's own payment account, not the orchestrator. */
function gatewaySidePaymentError(err: unknown): boolean {
  if (err instanceof TicketParamsError) return GATEWAY_SIDE_CODES.has(err.code);
  return (
    err instanceof ChainError || (err instanceof Error && err.message.startsWith('the TicketBroker deposit'))
  );
}
const GATEWAY_SIDE_CODES = new Set<string>(['no-deposit', 'no-reserve', 'unlock-soon']);

export class LiveSession {
  readonly sessionId: string;
  private state: LiveState = 'starting';
  private ingestPeer?: IngestPeer;
  private orchestrator?: OrchestratorSession;
  private readonly ingest: Ingest;
  /** The one owner of the viewers and their peers. */
  private readonly output: OutputHub<EgressPeer>;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly startedAt = Date.now();
  private params: Record<string, unknown>;
  private lastError: string | null = null;
  private orchestratorStatus: Record<string, unknown> | null = null;
  private endReason?: string;
  private readonly inputRate = new RateMeter();
  private readonly outputRate = new RateMeter();
  private readonly latency = new FrameLatency();
  private segmentsOut = 0;
  private readonly swaps: SwapRecord[] = [];
  private readonly payments = new Map<string, PaymentTally>();
  /** Set while a replacement orchestrator is being found; failures reported meanwhile are ignored. */
  private swapping = false;
  /** When the current orchestrator got its first input frame, and when output last came back. */
  private firstInputAt?: number;
  private lastOutputAt?: number;
  /** When the stream's first processed frame went out. */
  private firstOutputAt?: number;

  constructor(private readonly opts: LiveSessionOptions) {
    this.sessionId = opts.sessionId;
    this.params = { ...opts.params };
    this.ingest = new Ingest({
      minSegmentDurationMs: opts.limits.minSegmentDurationMs,
      requestKeyframe: () => this.ingestPeer?.requestKeyframe(),
      reorderWaitMs: () => this.ingestPeer?.nackWindowMs ?? 0,
      onFrame: (bytes, pts, at) => {
        this.inputRate.add(bytes);
        this.latency.frameIn(pts, at);
        if (this.orchestrator) this.firstInputAt ??= at;
      },
      onError: (reason) => this.fail(reason),
      logger: opts.logger,
    });
    this.output = new OutputHub({
      requestKeyframe: () => this.ingest.requestKeyframeNow(),
      onFrame: (bytes, pts, at) => {
        this.outputRate.add(bytes);
        this.latency.frameOut(pts, at);
        if (this.firstOutputAt === undefined) {
          this.firstOutputAt = at;
          this.opts.onFirstOutput?.(at - this.startedAt);
        }
        this.lastOutputAt = at;
      },
      logger: opts.logger,
    });
  }

  /** Answers the WHIP offer once both the peer and the orchestrator job are ready. */
  async start(offerSdp: string): Promise<string> {
    const checked = checkOffer(offerSdp, 'publish');
    if (!checked.ok)
      throw new LiveError(checked.status, checked.status === 406 ? 'NO_CODEC' : 'BAD_SDP', checked.reason);
    const log = this.opts.logger;
    // ICE gathering and the orchestrator job start run side by side: time to first frame matters.
    const [peer, orchestrator] = await Promise.allSettled([
      IngestPeer.create(offerSdp, { ...this.opts.network, logger: log }),
      this.startOrchestrator(new Set()),
    ]);
    // Keep whichever half started, so stop() releases it if the other half failed.
    if (peer.status === 'fulfilled') this.ingestPeer = peer.value;
    if (orchestrator.status === 'fulfilled') this.orchestrator = orchestrator.value;
    if (orchestrator.status === 'rejected') {
      throw new LiveError(503, 'NO_ORCHESTRATOR', (orchestrator.reason as Error).message);
    }
    if (peer.status === 'rejected') throw peerError(peer.reason);
    // stop() may have run while we were waiting.
    if (this.ended) {
      await this.release();
      throw new LiveError(409, 'STREAM_ENDED', 'stream ended while starting');
    }
    const ingestPeer = peer.value;
    this.ingest.attach(() => this.startInputSegment());
    ingestPeer.onVideoRtp((payload, seq, ts, marker) => this.ingest.pushVideo(payload, seq, ts, marker));
    ingestPeer.onAudioRtp((payload, seq, ts) => this.ingest.pushAudio(payload, seq, ts));
    ingestPeer.onStateChange((state) => {
      if (state === 'connected' && this.state === 'starting') {
        this.state = 'live';
        log.info('publisher connected');
        this.ingest.requestKeyframeNow();
      } else if (state === 'failed' || state === 'closed') {
        void this.stop(`publisher connection ${state}`);
      }
    });
    this.timers.push(setInterval(() => this.ingest.requestKeyframeNow(), this.opts.limits.pliIntervalMs));
    this.timers.push(setInterval(() => this.watchdog(), 100));
    return ingestPeer.answerSdp;
  }

  /** The publisher's ICE session entity-tag (ETag of the WHIP session URL). */
  get publisherEtag(): string | undefined {
    return this.ingestPeer?.etag;
  }

  async addViewer(offerSdp: string): Promise<{ viewerId: string; answerSdp: string; etag: string }> {
    if (this.ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
    if (this.output.viewerCount >= this.opts.limits.maxViewers) {
      throw new LiveError(
        429,
        'TOO_MANY_VIEWERS',
        `stream "${this.opts.stream}" has its ${this.opts.limits.maxViewers} viewers`,
      );
    }
    const checked = checkOffer(offerSdp, 'view');
    if (!checked.ok)
      throw new LiveError(checked.status, checked.status === 406 ? 'NO_CODEC' : 'BAD_SDP', checked.reason);
    const viewerId = randomBytes(12).toString('hex');
    const peer = await EgressPeer.create(offerSdp, { ...this.opts.network, logger: this.opts.logger }).catch(
      (err: unknown) => {
        throw peerError(err);
      },
    );
    if (this.ended || this.output.viewerCount >= this.opts.limits.maxViewers) {
      await peer.close();
      if (this.ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
      throw new LiveError(
        429,
        'TOO_MANY_VIEWERS',
        `stream "${this.opts.stream}" has its ${this.opts.limits.maxViewers} viewers`,
      );
    }
    this.output.addViewer(viewerId, peer);
    this.opts.logger.info({ viewerId, viewers: this.output.viewerCount }, 'viewer joined');
    return { viewerId, answerSdp: peer.answerSdp, etag: peer.etag };
  }

  /**
   * RFC 9725 PATCH on the WHIP session (`whip`, this stream's session id) or a WHEP session
   * (`whep`, a viewer id): trickled candidates or an ICE restart. A restart keeps the stream and
   * every other peer as they are; only this peer's media pauses until its new ICE session is up.
   */
  async patchIce(
    resource: { kind: 'whip' | 'whep'; id: string },
    ifMatch: string | undefined,
    body: string,
  ): Promise<IcePatchResult> {
    const peer =
      resource.kind === 'whip'
        ? resource.id === this.sessionId && !this.ended
          ? this.ingestPeer
          : undefined
        : this.output.peerOf(resource.id);
    if (!peer) {
      throw new LiveError(404, 'NO_SUCH_SESSION', `no ${resource.kind.toUpperCase()} session ${resource.id}`);
    }
    try {
      return await peer.patchIce(ifMatch, body);
    } catch (err) {
      if (err instanceof IcePatchError) throw new LiveError(err.status, err.code, err.message);
      throw err;
    }
  }

  async removeViewer(viewerId: string): Promise<void> {
    if (!(await this.output.removeViewer(viewerId))) {
      throw new LiveError(404, 'NO_SUCH_VIEWER', `no WHEP session ${viewerId}`);
    }
  }

  async update(params: Record<string, unknown>): Promise<void> {
    this.params = { ...params };
    // Without an orchestrator right now, the params go to the next one when it starts.
    if (!this.orchestrator) return;
    try {
      await this.orchestrator.sendControl(params);
    } catch (err) {
      throw new LiveError(
        502,
        'CONTROL_FAILED',
        `could not send params to the orchestrator: ${(err as Error).message}`,
      );
    }
  }

  status(): LiveStatus {
    return {
      stream: this.opts.stream,
      state: this.state,
      model: this.opts.modelId,
      params: this.params,
      orchestrator: this.orchestrator?.orchestratorUrl ?? null,
      manifestId: this.orchestrator?.urls.manifestId ?? null,
      startedAt: new Date(this.startedAt).toISOString(),
      input: { ...this.inputRate.read(), ...inputDataStatus(this.ingest, this.ingestPeer) },
      output: { ...this.outputRate.read(), segments: this.segmentsOut, ...outputDataStatus(this.output) },
      viewers: this.output.viewerCount,
      latencyMs: this.latency.read(),
      firstFrameDelayMs: this.firstOutputAt === undefined ? null : this.firstOutputAt - this.startedAt,
      lastError: this.lastError,
      orchestratorStatus: this.orchestratorStatus,
      swaps: [...this.swaps],
      payments: [...this.payments].map(([url, t]) => paymentStatus(url, t)),
      endReason: this.endReason,
    };
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  private get ended(): boolean {
    return this.state === 'ended';
  }

  async stop(reason: string): Promise<void> {
    if (this.ended) return;
    this.state = 'ended';
    this.endReason = reason;
    this.opts.logger.info({ reason }, 'live stream ended');
    await this.release();
    this.opts.onEnd();
  }

  private async release(): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.ingest.close();
    await Promise.allSettled([this.ingestPeer?.close(), this.orchestrator?.close(), this.output.close()]);
  }

  /**
   * Starts a job on the best orchestrator that is not excluded, trying the next one when a job
   * start fails. Rejects with every reason when none is left.
   */
  private async startOrchestrator(exclude: Set<string>): Promise<OrchestratorSession> {
    const reasons: string[] = [];
    const { refreshOrchestrator: refresh, refusePrice } = this.opts;
    for (;;) {
      let selected: SelectedOrchestrator;
      try {
        selected = await this.opts.selectOrchestrator(this.opts.modelId, exclude).catch(() =>
          // A suspension is a preference: with nothing else left, a suspended orchestrator (one
          // that was only slow, say) is better than none.
          this.opts.selectOrchestrator(this.opts.modelId, exclude, { includeSuspended: true }),
        );
      } catch (err) {
        throw new Error([...reasons, (err as Error).message].join('; '));
      }
      try {
        const session: OrchestratorSession = await OrchestratorSession.start({
          orchestrator: selected,
          identity: this.opts.identity,
          payments: this.opts.payments,
          tally: (url) => {
            const t = this.payments.get(url) ?? newTally();
            this.payments.set(url, t);
            return t;
          },
          refreshInfo: refresh && ((url) => refresh(url, this.opts.modelId)),
          refusePrice: refusePrice && ((info) => refusePrice(info, this.opts.modelId)),
          modelId: this.opts.modelId,
          params: this.params,
          streamName: this.opts.stream,
          requestId: `${this.opts.stream}-${this.sessionId.slice(0, 8)}-${this.swaps.length}`,
          logger: this.opts.logger,
          onOutputSegment: async (segment) => {
            if (session !== this.orchestrator) return;
            this.segmentsOut++;
            await this.output.pushSegment(segment.body, session.urls.manifestId);
          },
          onEvent: (event) => {
            if (session !== this.orchestrator) return;
            if (event.type === 'status') this.orchestratorStatus = event;
            else if (event.type === 'error') this.failover(`orchestrator reported: ${String(event.message)}`);
          },
          onError: (reason) => {
            if (session === this.orchestrator) this.failover(reason);
          },
        });
        return session;
      } catch (err) {
        const reason = (err as Error).message;
        reasons.push(reason);
        exclude.add(selected.url);
        // Shown in status even when the next one starts: a refused payment check lands here.
        this.lastError = `${selected.url}: job start failed: ${reason}`;
        // Our own account's trouble (no deposit, unlocking, chain unreadable) is no reason to
        // keep other streams off this orchestrator once it is fixed.
        if (!gatewaySidePaymentError(err)) {
          this.opts.onOrchestratorFailed(selected.url, `job start failed: ${reason}`);
        }
        this.opts.logger.warn({ orchestrator: selected.url, reason }, 'job start failed; trying another');
      }
    }
  }

  private startInputSegment(): SegmentWriter | undefined {
    if (!this.orchestrator || this.swapping) return undefined;
    try {
      return this.orchestrator.startInputSegment();
    } catch (err) {
      this.failover(`input channel: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * Replaces the orchestrator: the publisher and the viewers stay connected. Ingest gives the new
   * job the current GOP at once, and the output hub splices its output into the same RTP timelines.
   */
  private failover(reason: string): void {
    if (this.ended || this.swapping || !this.orchestrator) return;
    const failed = this.orchestrator;
    const noticed = Date.now();
    this.swapping = true;
    this.lastError = reason;
    this.opts.logger.warn({ orchestrator: failed.orchestratorUrl, reason }, 'orchestrator failed; swapping');
    this.opts.onOrchestratorFailed(failed.orchestratorUrl, reason);
    this.orchestrator = undefined;
    this.orchestratorStatus = null;
    this.ingest.detach();
    void failed.close();
    const record: SwapRecord = {
      at: new Date(noticed).toISOString(),
      from: failed.orchestratorUrl,
      to: null,
      reason,
      tookMs: null,
    };
    this.swaps.push(record);
    this.opts.onSwap?.(record);
    const recent = this.swaps.filter(
      (s) => noticed - Date.parse(s.at) < this.opts.limits.swapWindowMs,
    ).length;
    if (recent > this.opts.limits.maxSwaps) {
      void this.stop(
        `too many orchestrator failures (${recent} within ${this.opts.limits.swapWindowMs} ms); last: ${reason}`,
      );
      return;
    }
    void this.replaceOrchestrator(record, noticed, new Set([failed.orchestratorUrl]));
  }

  private async replaceOrchestrator(
    record: SwapRecord,
    noticed: number,
    exclude: Set<string>,
  ): Promise<void> {
    const graceEnds = noticed + this.opts.limits.noOrchestratorGraceMs;
    while (!this.ended) {
      try {
        const next = await this.startOrchestrator(exclude);
        if (this.ended) {
          await next.close();
          return;
        }
        this.orchestrator = next;
        this.firstInputAt = undefined;
        this.lastOutputAt = undefined;
        this.swapping = false;
        if (this.state === 'degraded') this.state = 'live';
        record.to = next.orchestratorUrl;
        record.tookMs = Date.now() - noticed;
        this.opts.logger.info(
          { from: record.from, to: record.to, tookMs: record.tookMs },
          'orchestrator swapped',
        );
        // The new job starts at once on the cached input GOP (a keyframe is asked for when there is none).
        this.ingest.attach(() => this.startInputSegment());
        return;
      } catch (err) {
        this.state = 'degraded';
        this.lastError = `no orchestrator available: ${(err as Error).message}`;
        if (Date.now() >= graceEnds) {
          await this.stop(
            `no orchestrator available for ${this.opts.limits.noOrchestratorGraceMs} ms: ${(err as Error).message}`,
          );
          return;
        }
        // Orchestrators that failed this swap may be back after a pause; try them again too.
        exclude.clear();
        await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, graceEnds - Date.now()))));
      }
    }
  }

  /** Ends silent publishers, and swaps out an orchestrator that stopped sending output. */
  private watchdog(): void {
    const now = Date.now();
    // An ICE restart pauses the media while the new path comes up: the silence counts from it.
    const lastIn = Math.max(
      this.ingest.lastPacketAt() ?? this.startedAt,
      this.ingestPeer?.lastIceRestartAt ?? 0,
    );
    if (now - lastIn > this.opts.limits.ingestTimeoutMs) {
      void this.stop(`no media from the publisher for ${this.opts.limits.ingestTimeoutMs} ms`);
      return;
    }
    if (!this.orchestrator || this.swapping || this.firstInputAt === undefined) return;
    const inputFlowing = now - lastIn < 1000;
    const since = Math.max(this.lastOutputAt ?? 0, this.firstInputAt);
    if (inputFlowing && now - since > this.opts.limits.noOutputTimeoutMs) {
      this.failover(`no output for ${now - since} ms while input flows`);
    }
  }

  private fail(reason: string): void {
    this.lastError = reason;
    this.opts.logger.warn({ reason }, 'live stream problem');
  }
}

/** Peer creation failures a client should see as such, not as a 500. */
function peerError(err: unknown): unknown {
  if (err instanceof IcePortsFullError) return new LiveError(503, 'TOO_MANY_PEERS', err.message);
  return err;
}
