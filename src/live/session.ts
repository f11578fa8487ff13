// One live stream: the publisher's WebRTC peer, the segmenter feeding the pinned
// orchestrator, the output reader, and the WHEP viewers. close() releases all of it.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { OrchestratorDirectory } from '../orchestrators/directory.ts';
import { NoOrchestratorError, selectLiveOrchestrator } from '../orchestrators/select.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { checkOffer, EgressPeer, IngestPeer, type PeerNetworkOptions } from '../webrtc/index.ts';
import { Egress } from './egress.ts';
import { LiveError } from './errors.ts';
import { Ingest } from './ingest.ts';
import { FrameLatency } from './latency.ts';
import { OrchestratorSession } from './orchestrator-session.ts';
import { RateMeter } from './rate-meter.ts';

export interface LiveSessionLimits {
  minSegmentDurationMs: number;
  pliIntervalMs: number;
  maxViewers: number;
  ingestTimeoutMs: number;
}

export interface LiveSessionOptions {
  stream: string;
  sessionId: string;
  modelId: string;
  params: Record<string, unknown>;
  directory: OrchestratorDirectory;
  identity: GatewayIdentity;
  limits: LiveSessionLimits;
  grpcTimeoutMs: number;
  /** Where WebRTC peers listen and which host candidates they announce. */
  network: PeerNetworkOptions;
  logger: Logger;
  onEnd: () => void;
}

export type LiveState = 'starting' | 'live' | 'ended';

export interface LiveStatus {
  stream: string;
  state: LiveState;
  model: string;
  params: Record<string, unknown>;
  orchestrator: string | null;
  manifestId: string | null;
  startedAt: string;
  input: { fps: number; bitrateKbps: number; segments: number; framesDropped: number };
  output: { fps: number; bitrateKbps: number; segments: number };
  viewers: number;
  /** Ingest arrival → egress send per frame, over recent frames (includes the orchestrator's time). */
  latencyMs: { p50: number; p95: number; frames: number } | null;
  lastError: string | null;
  orchestratorStatus: Record<string, unknown> | null;
  endReason?: string;
}

export class LiveSession {
  readonly sessionId: string;
  private state: LiveState = 'starting';
  private ingestPeer?: IngestPeer;
  private orchestrator?: OrchestratorSession;
  private readonly ingest: Ingest;
  private readonly egress: Egress;
  private readonly viewers = new Map<string, EgressPeer>();
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

  constructor(private readonly opts: LiveSessionOptions) {
    this.sessionId = opts.sessionId;
    this.params = { ...opts.params };
    this.ingest = new Ingest({
      minSegmentDurationMs: opts.limits.minSegmentDurationMs,
      startSegment: () => this.orchestrator?.startInputSegment(),
      requestKeyframe: () => this.ingestPeer?.requestKeyframe(),
      onFrame: (bytes, pts, at) => {
        this.inputRate.add(bytes);
        this.latency.frameIn(pts, at);
      },
      onError: (reason) => this.fail(reason),
      logger: opts.logger,
    });
    this.egress = new Egress({
      onFrame: (bytes, pts, at) => {
        this.outputRate.add(bytes);
        this.latency.frameOut(pts, at);
      },
      onError: (reason) => this.fail(reason),
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
    const [peer, orchestrator] = await Promise.all([
      IngestPeer.create(offerSdp, { ...this.opts.network, logger: log }),
      this.startOrchestrator(),
    ]).catch(async (err) => {
      throw err instanceof NoOrchestratorError ? new LiveError(503, 'NO_ORCHESTRATOR', err.message) : err;
    });
    this.ingestPeer = peer;
    this.orchestrator = orchestrator;
    // stop() may have run while we were waiting.
    if (this.ended) {
      await this.release();
      throw new LiveError(409, 'STREAM_ENDED', 'stream ended while starting');
    }
    peer.onVideoRtp((payload, seq, ts, marker) => this.ingest.pushVideo(payload, seq, ts, marker));
    peer.onAudioRtp((payload, seq, ts) => this.ingest.pushAudio(payload, seq, ts));
    peer.onStateChange((state) => {
      if (state === 'connected' && this.state === 'starting') {
        this.state = 'live';
        log.info('publisher connected');
        this.ingest.requestKeyframeNow();
      } else if (state === 'failed' || state === 'closed') {
        void this.stop(`publisher connection ${state}`);
      }
    });
    this.timers.push(setInterval(() => this.ingest.requestKeyframeNow(), this.opts.limits.pliIntervalMs));
    this.timers.push(setInterval(() => this.checkIngestTimeout(), 1000));
    return peer.answerSdp;
  }

  async addViewer(offerSdp: string): Promise<{ viewerId: string; answerSdp: string }> {
    if (this.ended) throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
    if (this.viewers.size >= this.opts.limits.maxViewers) {
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
    const peer = await EgressPeer.create(offerSdp, { ...this.opts.network, logger: this.opts.logger });
    if (this.ended) {
      await peer.close();
      throw new LiveError(404, 'NO_SUCH_STREAM', `stream "${this.opts.stream}" has ended`);
    }
    this.viewers.set(viewerId, peer);
    this.egress.addViewer(viewerId, peer);
    peer.onStateChange((state) => {
      if (state === 'failed' || state === 'closed') void this.removeViewer(viewerId).catch(() => {});
    });
    this.opts.logger.info({ viewerId, viewers: this.viewers.size }, 'viewer joined');
    return { viewerId, answerSdp: peer.answerSdp };
  }

  async removeViewer(viewerId: string): Promise<void> {
    const peer = this.viewers.get(viewerId);
    if (!peer) throw new LiveError(404, 'NO_SUCH_VIEWER', `no WHEP session ${viewerId}`);
    this.viewers.delete(viewerId);
    this.egress.removeViewer(viewerId);
    await peer.close();
    this.opts.logger.info({ viewerId, viewers: this.viewers.size }, 'viewer left');
  }

  async update(params: Record<string, unknown>): Promise<void> {
    if (!this.orchestrator) throw new LiveError(409, 'NOT_READY', 'stream has no orchestrator yet');
    this.params = { ...params };
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
    const ingest = this.ingest.stats();
    return {
      stream: this.opts.stream,
      state: this.state,
      model: this.opts.modelId,
      params: this.params,
      orchestrator: this.orchestrator?.orchestratorUrl ?? null,
      manifestId: this.orchestrator?.urls.manifestId ?? null,
      startedAt: new Date(this.startedAt).toISOString(),
      input: { ...this.inputRate.read(), segments: ingest.segments, framesDropped: ingest.framesDropped },
      output: { ...this.outputRate.read(), segments: this.segmentsOut },
      viewers: this.viewers.size,
      latencyMs: this.latency.read(),
      lastError: this.lastError,
      orchestratorStatus: this.orchestratorStatus,
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
    const viewers = [...this.viewers.values()];
    this.viewers.clear();
    await Promise.allSettled([
      this.ingestPeer?.close(),
      this.orchestrator?.close(),
      ...viewers.map((v) => v.close()),
    ]);
  }

  private async startOrchestrator(): Promise<OrchestratorSession> {
    const selected = await selectLiveOrchestrator(this.opts.directory, this.opts.modelId, {
      identity: this.opts.identity,
      timeoutMs: this.opts.grpcTimeoutMs,
    });
    return OrchestratorSession.start({
      orchestrator: selected,
      identity: this.opts.identity,
      modelId: this.opts.modelId,
      params: this.params,
      streamName: this.opts.stream,
      requestId: `${this.opts.stream}-${this.sessionId.slice(0, 8)}`,
      logger: this.opts.logger,
      onOutputSegment: async (segment) => {
        this.segmentsOut++;
        await this.egress.pushSegment(segment.body);
      },
      onEvent: (event) => {
        if (event.type === 'status') this.orchestratorStatus = event;
        else if (event.type === 'error') this.lastError = `orchestrator: ${String(event.message)}`;
      },
      onError: (reason) => this.fail(reason),
    });
  }

  private checkIngestTimeout(): void {
    const last = this.ingest.lastPacketAt() ?? this.startedAt;
    if (Date.now() - last > this.opts.limits.ingestTimeoutMs) {
      void this.stop(`no media from the publisher for ${this.opts.limits.ingestTimeoutMs} ms`);
    }
  }

  private fail(reason: string): void {
    this.lastError = reason;
    this.opts.logger.warn({ reason }, 'live stream problem');
  }
}
