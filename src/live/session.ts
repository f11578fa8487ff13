// One live stream: the publisher's WebRTC peer, the segmenter feeding the orchestrator's job, the
// output reader, and the WHEP viewers. Which job runs the stream, when to move it and when to
// end is decided by the failover policy (policy.ts); this class feeds it events and carries out
// its commands. close() releases everything.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { H264ToVp8 } from '../transcode/index.ts';
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
import { type Failure, failureOf } from './cause.ts';
import { inputDataStatus, outputDataStatus } from './data-status.ts';
import { LiveError } from './errors.ts';
import { Ingest } from './ingest.ts';
import { type JobStartOptions, startJob } from './job-start.ts';
import { FrameLatency } from './latency.ts';
import { newTally, type PaymentTally, paymentStatus } from './live-payer.ts';
import type { LoopDelaySource } from './loop-delay.ts';
import { coalesceStatus, type OrchestratorEvent } from './orchestrator-events.ts';
import type { OrchestratorSession } from './orchestrator-session.ts';
import { OutputHub } from './output-hub.ts';
import {
  initialState,
  type PolicyCommand,
  type PolicyEvent,
  type PolicyLimits,
  type PolicyState,
  step,
  swapsInWindow,
} from './policy.ts';
import type { FeedPublisher } from './publisher.ts';
import { RateMeter } from './rate-meter.ts';
import { type LiveStatus, type SwapRecord, statusRecord } from './status.ts';
import { goLivepeerStatus } from './status-compat.ts';
import {
  NO_ORCHESTRATOR,
  type OrchestratorInfoField,
  orchestratorInfo,
  StreamEvents,
  StreamTracer,
} from './stream-events.ts';

/** The session's one timer: the policy's tick, the periodic keyframe request and the loop-delay sample. */
const TICK_MS = 100;
/** Input and output are told to the policy at most this often (it judges in seconds). */
const SEEN_EVERY_MS = 50;
/** Error events kept for the status. */
const ERRORS_KEPT = 5;

export interface LiveSessionLimits extends PolicyLimits {
  minSegmentDurationMs: number;
  pliIntervalMs: number;
  maxViewers: number;
}

export interface LiveSessionOptions extends Omit<JobStartOptions, 'tally'> {
  params: Record<string, unknown>;
  /** Told when an orchestrator failed this stream, so selection can avoid it for a while. */
  onOrchestratorFailed: (url: string, reason: string) => void;
  /** A WHEP viewer is gone, however it went (the registry frees its account slot). */
  onViewerLeft?: (viewerId: string) => void;
  limits: LiveSessionLimits;
  /** Where WebRTC peers listen and which host candidates they announce. */
  network: PeerNetworkOptions;
  logger: Logger;
  onEnd: () => void;
  /** The gateway's event-loop delay (one monitor for all streams); absent: never starved. */
  loopDelay?: LoopDelaySource;
  /** For metrics: the first processed frame went out (ms since the WHIP offer), and each swap. */
  onFirstOutput?: (delayMs: number) => void;
  onSwap?: (record: SwapRecord) => void;
  /** The stream's ids and where its events go (the registry's emitter); default: nowhere. */
  tracer?: StreamTracer;
  /** The viewers' URL, for go-livepeer's `gateway_status.whep_url`. */
  whepUrl?: string;
  /** Wall clock, ms; default Date.now (tests drive it). */
  now?: () => number;
  /** The orchestrator's output MPEG-TS as it arrives (for RTMP outputs). */
  onOutputBytes?: (chunk: Uint8Array) => void;
  /** A feed publisher's audio codec (RTMP: AAC); default Opus from WebRTC. */
  audioCodec?: 'opus' | 'aac';
}

export type { LiveState, LiveStatus, SwapRecord } from './status.ts';

/** What the session keeps per running job. */
interface Job {
  session: OrchestratorSession;
  status: Record<string, unknown> | null;
  errors: { at: string; message: string }[];
  /** For the stream trace: an input segment reached it whole; output segments it sent. */
  inputSent: boolean;
  outputSegments: number;
}

export class LiveSession {
  readonly sessionId: string;
  private policy: PolicyState;
  private readonly now: () => number;
  private ingestPeer?: IngestPeer;
  /** The publisher when it is not a WebRTC peer (RTMP). */
  private feed?: FeedPublisher;
  private readonly jobs = new Map<number, Job>();
  private readonly ingest: Ingest;
  /** The one owner of the viewers and their peers. */
  private readonly output: OutputHub<EgressPeer>;
  /**
   * Viewers that offered no H.264: one VP8 encoder fed by the H.264 hub and one hub of their own,
   * made with the first such viewer and closed once none is left.
   */
  private vp8?: { hub: OutputHub<EgressPeer>; encoder: H264ToVp8 };
  private timer?: NodeJS.Timeout;
  private readonly startedAt: number;
  private params: Record<string, unknown>;
  private readonly inputRate = new RateMeter();
  private readonly outputRate = new RateMeter();
  private readonly latency = new FrameLatency();
  private segmentsOut = 0;
  private readonly payments = new Map<string, PaymentTally>();
  /** When the stream's first processed frame went out. */
  private firstOutputAt?: number;
  /** The job the open input segment goes to: cut when that job closes. */
  private inputJobId?: number;
  /** The job whose output segment egress is sending now (output is credited to it). */
  private outputJobId?: number;
  private lastInputSeen = 0;
  private lastOutputSeen = 0;
  private lastTickAt: number;
  private lastPliAt = 0;
  private readonly queue: PolicyEvent[] = [];
  private dispatching = false;
  /** start() waits for the first job, or the end. */
  private firstJob?: { resolve: () => void; reject: (err: Error) => void };
  private ending?: Promise<void>;
  readonly tracer: StreamTracer;
  /** orchestrator_info by orchestrator URL, for events about jobs that are gone. */
  private readonly orchestratorInfos = new Map<string, OrchestratorInfoField>();
  /** When the params last changed (the start counts); whether /update changed them. */
  private paramsAt: number;
  private paramsUpdated = false;
  /** The stream's first failure (go-livepeer's gateway_status.error). */
  private firstError?: { message: string; at: number };
  /** Payments still under way on jobs that were closed (shutdown waits for them). */
  private readonly paymentsUnderWay = new Set<Promise<void>>();

  constructor(private readonly opts: LiveSessionOptions) {
    this.sessionId = opts.sessionId;
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.paramsAt = this.startedAt;
    this.tracer =
      opts.tracer ??
      new StreamTracer(new StreamEvents(), {
        stream: opts.stream,
        streamId: opts.streamId ?? '',
        pipelineId: '',
        requestId: opts.sessionId.slice(0, 8),
        pipeline: opts.modelId,
      });
    this.lastTickAt = this.startedAt;
    this.policy = initialState(opts.limits, this.startedAt);
    this.params = { ...opts.params };
    this.ingest = new Ingest({
      minSegmentDurationMs: opts.limits.minSegmentDurationMs,
      requestKeyframe: () => this.ingestPeer?.requestKeyframe(),
      reorderWaitMs: () => this.ingestPeer?.nackWindowMs ?? 0,
      onFrame: (bytes, pts, at) => {
        this.inputRate.add(bytes);
        this.latency.frameIn(pts, at);
        if (at - this.lastInputSeen >= SEEN_EVERY_MS) {
          this.lastInputSeen = at;
          this.dispatch({ type: 'inputSeen' });
        }
      },
      onError: (reason) => this.opts.logger.warn({ reason }, 'live stream problem'),
      audioCodec: opts.audioCodec,
      logger: opts.logger,
    });
    this.output = new OutputHub({
      requestKeyframe: () => this.ingest.requestKeyframeNow(),
      onVideoFrame: (frame) => this.vp8?.encoder.push(frame),
      onBytes: opts.onOutputBytes,
      onViewerLeft: (id) => this.opts.onViewerLeft?.(id),
      onFrame: (bytes, pts, at) => {
        this.outputRate.add(bytes);
        this.latency.frameOut(pts, at);
        if (this.firstOutputAt === undefined) {
          this.firstOutputAt = at;
          this.opts.onFirstOutput?.(at - this.startedAt);
        }
        const jobId = this.outputJobId;
        if (jobId !== undefined && at - this.lastOutputSeen >= SEEN_EVERY_MS) {
          this.lastOutputSeen = at;
          this.dispatch({ type: 'outputSeen', jobId });
        }
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
    const firstJob = new Promise<void>((resolve, reject) => {
      this.firstJob = { resolve, reject };
    });
    this.dispatch({ type: 'start' });
    // ICE gathering and the orchestrator job start run side by side: time to first frame matters.
    const [peer, job] = await Promise.allSettled([
      IngestPeer.create(offerSdp, { ...this.opts.network, logger: log }),
      firstJob,
    ]);
    // Keep the peer if it was made, so that stop() releases it if the other half failed.
    if (peer.status === 'fulfilled') {
      this.ingestPeer = peer.value;
      if (this.ended) await peer.value.close();
    }
    if (job.status === 'rejected') throw job.reason;
    if (peer.status === 'rejected') throw peerError(peer.reason);
    // stop() may have run while we were waiting.
    if (this.ended) throw new LiveError(409, 'STREAM_ENDED', 'stream ended while starting');
    const ingestPeer = peer.value;
    if (ingestPeer.videoCodecName !== 'h264') this.ingest.useVpx(ingestPeer.videoCodecName);
    ingestPeer.onVideoRtp((payload, seq, ts, marker) => this.ingest.pushVideo(payload, seq, ts, marker));
    ingestPeer.onAudioRtp((payload, seq, ts) => this.ingest.pushAudio(payload, seq, ts));
    ingestPeer.onStateChange((state) => {
      if (state === 'connected') {
        log.info('publisher connected');
        this.dispatch({ type: 'publisherConnected' });
      } else if (state === 'failed' || state === 'closed') {
        void this.stop(`publisher connection ${state}`);
      }
    });
    this.timer = setInterval(() => this.onTimer(), TICK_MS);
    return ingestPeer.answerSdp;
  }

  /**
   * Starts the stream from a feed publisher (RTMP): its frames go into the segmenter at once (the
   * GOP is kept for the first job), and this resolves when the first orchestrator job runs.
   */
  async startFeed(feed: FeedPublisher): Promise<void> {
    const firstJob = new Promise<void>((resolve, reject) => {
      this.firstJob = { resolve, reject };
    });
    this.feed = feed;
    feed.attach({
      video: (annexB, pts, dts, keyframe) => this.ingest.pushAccessUnit(annexB, pts, dts, keyframe),
      audio: (data, pts) => this.ingest.pushAudioFrame(data, pts),
      gone: (reason) => void this.stop(reason),
    });
    this.dispatch({ type: 'start' });
    this.dispatch({ type: 'publisherConnected' });
    this.timer = setInterval(() => this.onTimer(), TICK_MS);
    await firstJob;
    if (this.ended) throw new LiveError(409, 'STREAM_ENDED', 'stream ended while starting');
  }

  /** The feed publisher's state for /status; undefined for a WHIP publisher. */
  feedStatus(): Record<string, unknown> | undefined {
    return this.feed && { kind: this.feed.kind, ...this.feed.stats() };
  }

  /** The publisher's ICE session entity-tag (ETag of the WHIP session URL). */
  get publisherEtag(): string | undefined {
    return this.ingestPeer?.etag;
  }

  async addViewer(offerSdp: string): Promise<{ viewerId: string; answerSdp: string; etag: string }> {
    if (this.ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
    if (this.viewerCount >= this.opts.limits.maxViewers) {
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
    if (this.ended || this.viewerCount >= this.opts.limits.maxViewers) {
      await peer.close();
      if (this.ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
      throw new LiveError(
        429,
        'TOO_MANY_VIEWERS',
        `stream "${this.opts.stream}" has its ${this.opts.limits.maxViewers} viewers`,
      );
    }
    if (peer.videoCodecName === 'vp8') this.vp8Hub().addViewer(viewerId, peer);
    else this.output.addViewer(viewerId, peer);
    this.opts.logger.info(
      { viewerId, viewers: this.viewerCount, codec: peer.videoCodecName },
      'viewer joined',
    );
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
        : (this.output.peerOf(resource.id) ?? this.vp8?.hub.peerOf(resource.id));
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
    const removed =
      (await this.output.removeViewer(viewerId)) || (await this.vp8?.hub.removeViewer(viewerId)) === true;
    this.stopVp8IfUnwatched();
    if (!removed) throw new LiveError(404, 'NO_SUCH_VIEWER', `no WHEP session ${viewerId}`);
  }

  /** Viewers of either codec. */
  private get viewerCount(): number {
    return this.output.viewerCount + (this.vp8?.hub.viewerCount ?? 0);
  }

  /** The VP8 viewers' hub, made (with its encoder) for the first of them. */
  private vp8Hub(): OutputHub<EgressPeer> {
    if (this.vp8) return this.vp8.hub;
    const logger = this.opts.logger.child({ output: 'vp8' });
    const encoder = new H264ToVp8({
      onFrame: (frame) => hub.push([frame]),
      requestKeyframe: () => this.ingest.requestKeyframeNow(),
      logger,
    });
    const hub: OutputHub<EgressPeer> = new OutputHub({
      videoCodec: 'vp8',
      requestKeyframe: () => this.ingest.requestKeyframeNow(),
      onFrame: () => {},
      logger,
    });
    this.vp8 = { hub, encoder };
    // The encoder starts on the next H.264 keyframe: ask for one now rather than wait a GOP.
    this.ingest.requestKeyframeNow();
    return hub;
  }

  /** The last VP8 viewer left: stop the encoder (a later one starts a new one). */
  private stopVp8IfUnwatched(): void {
    const vp8 = this.vp8;
    if (!vp8 || vp8.hub.viewerCount > 0) return;
    this.vp8 = undefined;
    vp8.encoder.close();
    void vp8.hub.close();
    const { framesIn, framesOut, starts } = vp8.encoder;
    this.opts.logger.info({ framesIn, framesOut, starts }, 'no VP8 viewer left: VP8 encoder stopped');
  }

  async update(params: Record<string, unknown>): Promise<void> {
    this.params = { ...params };
    this.paramsAt = this.now();
    this.paramsUpdated = true;
    this.dispatch({ type: 'paramsUpdated' });
    // Without an orchestrator right now, the params go to the next one when it starts.
    const current = this.current;
    if (!current) {
      this.tracer.streamEvent('params_update', { params });
      return;
    }
    try {
      await current.session.sendControl(params);
      this.tracer.streamEvent('params_update', { params }, this.infoOf(current.session.orchestratorUrl));
    } catch (err) {
      throw new LiveError(
        502,
        'CONTROL_FAILED',
        `could not send params to the orchestrator: ${(err as Error).message}`,
      );
    }
  }

  status(): LiveStatus {
    const p = this.policy;
    const current = this.current;
    const now = this.now();
    const used = swapsInWindow(p, now);
    const failure = p.lastFailure;
    return {
      stream: this.opts.stream,
      state: p.state,
      stateReason: p.reason,
      model: this.opts.modelId,
      params: this.params,
      orchestrator: p.job?.url ?? null,
      manifestId: current?.session.urls.manifestId ?? null,
      startedAt: new Date(this.startedAt).toISOString(),
      input: { ...this.inputRate.read(), ...inputDataStatus(this.ingest, this.ingestPeer) },
      output: {
        ...this.outputRate.read(),
        segments: this.segmentsOut,
        ...outputDataStatus(this.output, this.vp8?.hub),
      },
      viewers: this.viewerCount,
      codecs: {
        publisher: this.ingestPeer?.videoCodecName ?? null,
        vp8Viewers: this.vp8?.hub.viewerCount ?? 0,
        vp8Encoder: this.vp8
          ? {
              framesIn: this.vp8.encoder.framesIn,
              framesOut: this.vp8.encoder.framesOut,
              starts: this.vp8.encoder.starts,
            }
          : null,
      },
      latencyMs: this.latency.read(),
      firstFrameDelayMs: this.firstOutputAt === undefined ? null : this.firstOutputAt - this.startedAt,
      lastError: failure
        ? failure.orchestrator
          ? `${failure.orchestrator}: ${failure.message}`
          : failure.message
        : null,
      lastFailure: failure ? { ...failure, at: new Date(failure.at).toISOString() } : null,
      orchestratorStatus: current?.status ?? null,
      orchestratorErrors: [...(current?.errors ?? [])],
      swaps: p.swaps.map(statusRecord),
      swapBudget: {
        used,
        left: Math.max(0, p.limits.maxSwaps - used),
        max: p.limits.maxSwaps,
        windowMs: p.limits.swapWindowMs,
        exhausted: used >= p.limits.maxSwaps,
      },
      payments: [...this.payments].map(([url, t]) => paymentStatus(url, t)),
      endReason: p.endReason,
      ...goLivepeerStatus({
        ids: this.tracer.ids,
        sessionId: this.sessionId,
        whepUrl: this.opts.whepUrl ?? '',
        startedAt: this.startedAt,
        orchestrator: p.job ? this.infoOf(p.job.url) : null,
        runner: current?.status ?? null,
        params: this.params,
        paramsAt: this.paramsAt,
        inputFps: this.inputRate.read().fps,
        outputFps: this.outputRate.read().fps,
        lastInputAt: this.lastInputSeen || null,
        lastOutputAt: this.lastOutputSeen || null,
        lastRunnerError: lastError(current?.errors),
        ingest: this.ingestPeer?.stats(),
        latencyMs: this.latency.read()?.p50 ?? null,
        firstError: this.firstError ?? null,
      }),
    };
  }

  /** Payments still under way on this stream's jobs (it has ended: nothing new starts). */
  async paymentsSettled(): Promise<void> {
    await Promise.allSettled([...this.paymentsUnderWay]);
  }

  /** A getter, so checks after an await are not narrowed away by the compiler. */
  private get ended(): boolean {
    return this.ending !== undefined;
  }

  /** The job carrying the stream, as the policy sees it. */
  private get current(): Job | undefined {
    const id = this.policy.job?.id;
    return id === undefined ? undefined : this.jobs.get(id);
  }

  async stop(reason: string): Promise<void> {
    this.dispatch({ type: 'stop', reason });
    await this.ending;
  }

  /**
   * Ends the stream on the operator's word (the heartbeat's terminatedStreamIds): an error event
   * first, as go-livepeer sends one ("stream terminated: ..."), then the normal end.
   */
  async terminate(reason: string): Promise<void> {
    if (!this.ended) {
      const message = `stream terminated: ${reason}`;
      this.firstError ??= { message, at: this.now() };
      this.tracer.streamEvent('error', { capability: '', message, blame: 'operator', code: 'terminated' });
    }
    await this.stop(reason);
  }

  // ---- the policy's executor

  private dispatch(event: PolicyEvent): void {
    this.queue.push(event);
    if (this.dispatching) return; // a command's own events join the queue
    this.dispatching = true;
    try {
      for (let e = this.queue.shift(); e; e = this.queue.shift()) {
        const noted = this.policy.lastFailure;
        const { state, commands } = step(this.policy, e, this.now());
        this.policy = state;
        // Every failure the policy notes is an error event, once (go-livepeer's ai_stream_events
        // error), except an orchestrator's own error event: that one is forwarded as it came.
        const failure = state.lastFailure;
        if (failure && failure !== noted && failure.code !== 'reported-error') this.reportError(failure);
        for (const command of commands) this.run(command);
        if (this.policy.job && this.firstJob) {
          this.firstJob.resolve();
          this.firstJob = undefined;
        }
      }
    } finally {
      this.dispatching = false;
    }
  }

  private run(c: PolicyCommand): void {
    const log = this.opts.logger;
    switch (c.type) {
      case 'startJob':
        void this.startJob(c);
        return;
      case 'closeJob': {
        const job = this.jobs.get(c.jobId);
        this.jobs.delete(c.jobId);
        if (this.inputJobId === c.jobId) {
          // The open segment went to that job; input waits for the next attachInput.
          this.inputJobId = undefined;
          this.ingest.detach();
        }
        if (job) {
          log.info({ orchestrator: job.session.orchestratorUrl, reason: c.reason }, 'closing live job');
          void job.session.close();
          this.keepPayment(job.session);
        }
        return;
      }
      case 'requestKeyframe':
        this.lastPliAt = this.now();
        this.ingest.requestKeyframeNow();
        return;
      case 'attachInput':
        // The new job starts at once on the cached input GOP (a keyframe is asked for when there is none).
        this.lastPliAt = this.now();
        this.ingest.attach(() => this.startInputSegment());
        return;
      case 'suspend':
        log.warn({ orchestrator: c.url, blame: c.failure.blame, code: c.failure.code }, c.failure.message);
        this.opts.onOrchestratorFailed(c.url, c.failure.message);
        return;
      case 'setState':
        log.info({ state: c.state, reason: c.reason }, 'live stream state');
        return;
      case 'swap': {
        const record = statusRecord(c.record);
        log.warn(
          { from: record.from, to: record.to, blame: record.blame, reason: record.reason },
          'orchestrator swap',
        );
        // The record again once its new job runs: the same swap, not another one.
        if (c.update) return;
        this.opts.onSwap?.(record);
        // go-livepeer's orchestrator_swap: the failed orchestrator's info and the cause; `to`,
        // `blame`, `code` and `took_ms` are ours.
        this.tracer.trace('orchestrator_swap', this.infoOf(record.from), {
          pipeline: this.opts.modelId,
          message: record.reason,
          to: record.to,
          blame: record.blame,
          code: record.code,
          took_ms: record.tookMs,
        });
        return;
      }
      case 'endStream':
        this.end(c.reason, c.failure);
        return;
    }
  }

  private onTimer(): void {
    const now = this.now();
    this.stopVp8IfUnwatched();
    if (now - this.lastPliAt >= this.opts.limits.pliIntervalMs) {
      this.lastPliAt = now;
      this.ingest.requestKeyframeNow();
    }
    const delay = this.opts.loopDelay?.maxSince(this.lastTickAt);
    this.lastTickAt = now;
    if (delay !== undefined) this.dispatch({ type: 'loopDelay', ms: delay });
    // An ICE restart pauses the media while the new path comes up: the silence counts from it.
    const lastPacketAt = Math.max(this.ingest.lastPacketAt() ?? 0, this.ingestPeer?.lastIceRestartAt ?? 0);
    this.dispatch({ type: 'tick', lastPacketAt: lastPacketAt || undefined });
  }

  /** Starts the job the policy asked for, and tells it how that went. */
  private async startJob(c: Extract<PolicyCommand, { type: 'startJob' }>): Promise<void> {
    const { jobId } = c;
    const outcome = await startJob(
      c,
      this.params,
      {
        ...this.opts,
        tally: (url) => {
          const t = this.payments.get(url) ?? newTally();
          this.payments.set(url, t);
          return t;
        },
      },
      {
        onOutputSegment: async (segment) => {
          if (this.policy.job?.id !== jobId) {
            segment.body.resume();
            return;
          }
          this.segmentsOut++;
          this.outputJobId = jobId;
          const job = this.jobs.get(jobId);
          if (job) {
            job.outputSegments++;
            // go-livepeer: the first output segment, and the third ("playback can start").
            const trace =
              job.outputSegments === 1
                ? 'gateway_receive_first_processed_segment'
                : job.outputSegments === 3
                  ? 'gateway_receive_few_processed_segments'
                  : undefined;
            if (trace) this.traceJob(trace, job);
          }
          await this.output.pushSegment(segment.body, String(jobId));
        },
        onEvent: (event) => this.onOrchestratorEvent(jobId, event),
        onFailure: (failure) => this.dispatch({ type: 'jobFailed', jobId, failure }),
        onPaymentFailure: (failure) => this.dispatch({ type: 'paymentFailed', jobId, failure }),
        onInputSegmentSent: () => {
          const job = this.jobs.get(jobId);
          if (!job || job.inputSent) return;
          job.inputSent = true;
          this.traceJob('gateway_send_first_ingest_segment', job);
        },
      },
      () => !this.ended,
    );
    if (!outcome) return;
    const session = outcome.session;
    if (session) {
      this.orchestratorInfos.set(
        session.orchestratorUrl,
        orchestratorInfo(session.orchestratorUrl, session.orchestratorAddress),
      );
      this.jobs.set(jobId, { session, status: null, errors: [], inputSent: false, outputSegments: 0 });
    }
    if (outcome.event.type === 'noOrchestrator') this.tracer.trace('gateway_no_orchestrators_available');
    this.dispatch(outcome.event);
    // go-livepeer replays the params a client sent to each new orchestrator, and says so.
    if (session && this.paramsUpdated && this.policy.job?.id === jobId) {
      this.tracer.streamEvent('params_update', { params: this.params }, this.infoOf(session.orchestratorUrl));
    }
  }

  private traceJob(type: string, job: Job): void {
    this.tracer.trace(type, this.infoOf(job.session.orchestratorUrl), {
      since_start_ms: this.now() - this.startedAt,
    });
  }

  private infoOf(url: string): OrchestratorInfoField {
    return this.orchestratorInfos.get(url) ?? orchestratorInfo(url);
  }

  private reportError(failure: Failure): void {
    const at = this.now();
    const message = failure.orchestrator ? `${failure.orchestrator}: ${failure.message}` : failure.message;
    this.firstError ??= { message, at };
    this.tracer.streamEvent('error', {
      capability: '',
      message,
      blame: failure.blame,
      code: failure.code,
      ...(failure.orchestrator ? { orchestrator_info: this.infoOf(failure.orchestrator) } : {}),
    });
  }

  private keepPayment(session: OrchestratorSession): void {
    const settled = session.paymentSettled();
    this.paymentsUnderWay.add(settled);
    void settled.finally(() => this.paymentsUnderWay.delete(settled));
  }

  private onOrchestratorEvent(jobId: number, event: OrchestratorEvent): void {
    const job = this.jobs.get(jobId);
    if (!job || this.policy.job?.id !== jobId) return;
    this.tracer.forward(event.event, this.infoOf(job.session.orchestratorUrl));
    switch (event.type) {
      case 'status':
        job.status = coalesceStatus(job.status, event.event);
        this.dispatch({ type: 'orchestratorStatus', jobId, state: event.state, restarts: event.restarts });
        return;
      case 'restart':
        // ai-runner reports LOADING until the restarted pipeline is up.
        this.dispatch({ type: 'orchestratorStatus', jobId, state: 'LOADING', restarts: event.restarts });
        return;
      case 'error':
        job.errors.push({ at: new Date(this.now()).toISOString(), message: event.message });
        if (job.errors.length > ERRORS_KEPT) job.errors.shift();
        this.dispatch({ type: 'orchestratorError', jobId, message: event.message });
        return;
      case 'other':
        this.opts.logger.debug(
          { orchestrator: job.session.orchestratorUrl, type: event.eventType },
          'orchestrator event',
        );
        return;
    }
  }

  private startInputSegment(): SegmentWriter | undefined {
    const jobId = this.policy.job?.id;
    const job = this.current;
    if (jobId === undefined || !job) return undefined;
    try {
      const writer = job.session.startInputSegment();
      this.inputJobId = jobId;
      return writer;
    } catch (err) {
      this.dispatch({
        type: 'jobFailed',
        jobId,
        failure: failureOf(err, 'input', {
          orchestrator: job.session.orchestratorUrl,
          fallback: 'network',
          prefix: 'input channel',
        }),
      });
      return undefined;
    }
  }

  private end(reason: string, failure?: Failure): void {
    if (this.ending) return;
    if (this.timer) clearInterval(this.timer);
    this.opts.logger.info({ reason, blame: failure?.blame }, 'live stream ended');
    // A failure that ends the stream without the policy noting it first (the publisher gone).
    if (
      failure &&
      failure !== this.policy.lastFailure &&
      failure.message !== this.policy.lastFailure?.message
    )
      this.reportError(failure);
    this.tracer.trace('gateway_ingest_stream_closed', NO_ORCHESTRATOR, { message: reason });
    this.firstJob?.reject(
      failure?.code === 'no-orchestrator'
        ? new LiveError(503, 'NO_ORCHESTRATOR', failure.message)
        : new LiveError(409, 'STREAM_ENDED', `stream ended while starting: ${reason}`),
    );
    this.firstJob = undefined;
    this.ending = this.release().then(() => this.opts.onEnd());
  }

  private async release(): Promise<void> {
    this.ingest.close();
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    for (const job of jobs) this.keepPayment(job.session);
    this.feed?.close(this.policy.endReason ?? 'stream ended');
    await Promise.allSettled([
      this.ingestPeer?.close(),
      ...jobs.map((j) => j.session.close()),
      this.output.close(),
      this.vp8?.hub.close(),
    ]);
    this.vp8?.encoder.close();
  }
}

function lastError(errors: Job['errors'] | undefined): { at: number; message: string } | null {
  const last = errors?.at(-1);
  return last ? { at: Date.parse(last.at), message: last.message } : null;
}

/** Peer creation failures a client should see as such, not as a 500. */
function peerError(err: unknown): unknown {
  if (err instanceof IcePortsFullError) return new LiveError(503, 'TOO_MANY_PEERS', err.message);
  return err;
}
