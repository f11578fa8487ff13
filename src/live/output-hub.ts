// The orchestrator's output → RTP for every WHEP viewer. The hub is the one owner of a stream's
// viewers: it adds them, starts each on a keyframe that really went out, keeps slow ones from piling
// up packets, and closes them. Per frame the work is done once (demux, packetize, sequence numbers,
// timestamps); per viewer only the sends and a queue check remain.
//
// Each viewer has a paced queue: live frames normally go straight through, but a burst (the cached
// GOP a joining viewer gets, the replay after an orchestrator change) leaves at a few times the
// stream's bitrate instead of all at once, which would overflow the viewer's receive buffer and
// lose packets beyond what NACKs can repair. The queue is bounded: past the bound, or when the
// viewer's socket backs up, the viewer skips to the next keyframe and the skipped frames are counted.
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  type DemuxedFrame,
  type DemuxedVideo,
  H264NalType,
  OPUS_CLOCK_RATE,
  packetizeH264,
  packetizeVp8,
  type RtpPayload,
  RtpTimeline,
  splitAnnexB,
  TsDemuxer,
} from '../media/index.ts';
import type { EgressPeer, EgressStats } from '../webrtc/index.ts';

/** What the hub needs of a viewer's peer (EgressPeer; tests pass fakes). */
export type OutputPeer = Pick<
  EgressPeer,
  | 'state'
  | 'canSend'
  | 'sendVideoFrame'
  | 'sendAudio'
  | 'sendQueueBytes'
  | 'onKeyframeRequest'
  | 'onStateChange'
  | 'stats'
  | 'close'
>;

export interface OutputHubLimits {
  /** The output GOP kept for joining viewers: at most this many bytes from the last keyframe. */
  maxGopBytes: number;
  /** … and at most this many frames; a longer GOP is not kept (joiners then wait for a keyframe). */
  maxGopFrames: number;
  /**
   * A viewer with more than this many bytes in its paced queue skips frames up to the next keyframe
   * (and resumes once below half of it): a slow viewer never delays nor bloats the others.
   */
  maxViewerQueueBytes: number;
  /**
   * The same when the viewer's UDP socket holds more than this many unsent bytes (the kernel's send
   * buffer is full: the uplink cannot carry what we send).
   */
  maxSocketQueueBytes: number;
  /** Queued frames leave at this many times the stream's bitrate… */
  paceFactor: number;
  /** …but never slower than this, bytes per second. */
  minPaceBytesPerSecond: number;
  /** Bytes a viewer may receive at once before pacing holds the rest (a larger keyframe still goes at once). */
  paceBurstBytes: number;
}

export const OUTPUT_HUB_DEFAULTS: OutputHubLimits = {
  maxGopBytes: 2 * 1024 * 1024,
  maxGopFrames: 300,
  maxViewerQueueBytes: 4 * 1024 * 1024,
  maxSocketQueueBytes: 256 * 1024,
  paceFactor: 4,
  minPaceBytesPerSecond: 1_000_000,
  paceBurstBytes: 64 * 1024,
};

export interface OutputHubOptions {
  /** Each output video frame, with its PTS, once it has been handed to the viewers. */
  onFrame: (bytes: number, pts90k: number, sentAtMs: number) => void;
  /** Ask upstream for a keyframe: a viewer needs one and no GOP is cached, or a viewer lost the picture. */
  requestKeyframe: () => void;
  /** A viewer is gone (removed, failed, or closed with the hub): its account slot is freed. */
  onViewerLeft?: (id: string) => void;
  limits?: Partial<OutputHubLimits>;
  /**
   * What this hub's viewers get: H.264 (default), or VP8 (frames' annexB then holds VP8 bytes, from
   * an encoder fed by another hub's onVideoFrame).
   */
  videoCodec?: 'h264' | 'vp8';
  /** Each video frame viewers get, after the switch logic (so a new source starts on a keyframe). */
  onVideoFrame?: (frame: DemuxedVideo) => void;
  /** Every output byte as it arrives, before demuxing (RTMP outputs take the MPEG-TS as is). */
  onBytes?: (chunk: Uint8Array) => void;
  logger: Logger;
  /** Clock for tests. */
  now?: () => number;
}

export type ViewerState = 'waiting' | 'live' | 'dropping';

export interface ViewerSummary {
  id: string;
  /** waiting: nothing sent yet (no keyframe out yet); live; dropping: too slow, skipping to a keyframe. */
  state: ViewerState;
  /** Join → its first keyframe actually sent, ms. */
  startMs: number | null;
  /** The first keyframe came from the cached GOP (instant start) rather than the live stream. */
  startedFromCache: boolean;
  framesSent: number;
  /** Frames skipped because this viewer could not keep up. */
  framesDropped: number;
  /** Bytes waiting for it right now: in its paced queue, and in its socket. */
  queueBytes: number;
  /** PLI + FIR from this viewer. */
  keyframeRequests: number;
  nacksReceived: number;
  retransmittedPackets: number;
  /** From its receiver reports. */
  packetsLost: number | null;
  fractionLost: number | null;
  rttMs: number | null;
}

export interface OutputHubStats {
  viewers: number;
  /** Video frames produced for viewers (packetized once, whatever the number of viewers). */
  frames: number;
  /** Frames skipped for slow viewers, summed over every viewer this stream had. */
  framesDropped: number;
  /** Keyframe requests (PLI/FIR) from viewers, summed over every viewer. */
  keyframeRequests: number;
  nacksReceived: number;
  retransmittedPackets: number;
  /** Packets viewers reported lost (receiver reports), summed. */
  packetsLost: number;
  /** Keyframe requests the hub sent upstream (viewer start without a cached GOP, viewer PLI). */
  upstreamKeyframeRequests: number;
  /** After an orchestrator change: frames skipped waiting for the new output's first keyframe. */
  framesSkippedAtSwitch: number;
  /** After an orchestrator change: frames viewers had already seen, sent fast-forwarded. */
  framesCaughtUp: number;
  /** The cached GOP (from the last keyframe), or null when there is none (none yet, or too long). */
  gop: { frames: number; bytes: number } | null;
  /** Viewers that started from the cached GOP / from a live keyframe. */
  starts: { fromCache: number; live: number };
}

/** One output video frame, packetized once; the sequence numbers are firstSeq, firstSeq+1, ... */
interface OutFrame {
  packets: RtpPayload[];
  firstSeq: number;
  timestamp: number;
  pts90k: number;
  keyframe: boolean;
  bytes: number;
}

type Queued =
  | { kind: 'video'; frame: OutFrame; timestamp: number; start?: 'cache' | 'live' }
  | { kind: 'audio'; data: Uint8Array; seq: number; timestamp: number };

interface Viewer<P extends OutputPeer = OutputPeer> {
  readonly id: string;
  readonly peer: P;
  readonly joinedAt: number;
  state: ViewerState;
  /** Frames (and audio) waiting for the pacer, oldest first. */
  readonly queue: Queued[];
  queueBytes: number;
  /** Token bucket: bytes it may be sent now (may go below zero after a frame larger than the rest). */
  tokens: number;
  refilledAt: number;
  startedAt?: number;
  startedFromCache: boolean;
  /** Added to the shared sequence numbers so a viewer's own stays continuous across skipped frames. */
  videoSeqShift: number;
  audioSeqShift: number;
  framesSent: number;
  framesDropped: number;
  keyframeRequests: number;
  readonly unsubscribe: (() => void)[];
}

/** Catch-up frames are squeezed 100×: a 1 s GOP takes 10 ms of RTP time, inside one frame interval. */
const CATCH_UP_SQUEEZE = 100;
/** Catch-up never reaches the next frame's slot (one frame at 30 fps in 90 kHz ticks, minus one). */
const CATCH_UP_MAX_TICKS = 2999;
/** After a change, frames up to this far behind what viewers saw are taken as a replay of it. */
const CATCH_UP_WINDOW_90K = 10 * 90_000;
/** Keyframe requests upstream are spaced at least this far apart. */
const MIN_UPSTREAM_KEYFRAME_GAP_MS = 500;
/** The pacer runs this often while some viewer has queued frames. */
const PACE_TICK_MS = 5;
/** The stream's bitrate is measured over windows of this length. */
const RATE_WINDOW_MS = 1000;

export class OutputHub<P extends OutputPeer = OutputPeer> {
  private readonly viewers = new Map<string, Viewer<P>>();
  private readonly videoTimeline = new RtpTimeline({ clockRate: 90_000 });
  private readonly audioTimeline = new RtpTimeline({ clockRate: OPUS_CLOCK_RATE, frameDuration90k: 1800 });
  private readonly limits: OutputHubLimits;
  private readonly now: () => number;
  /** From the last keyframe on; undefined when there is none or it grew past the limits. */
  private gop?: OutFrame[];
  private gopBytes = 0;
  /** The latest SPS and PPS seen, put in front of any keyframe that comes without them. */
  private sps?: Uint8Array;
  private pps?: Uint8Array;
  private source?: string;
  /** Set when the source changed: frames wait for the new source's first keyframe. */
  private switching = false;
  /** While the new source replays frames viewers already saw: their DTS bound and squeeze base. */
  private catchUp?: { untilDts: number; basePts: number; baseRtp: number };
  private lastUpstreamRequest = Number.NEGATIVE_INFINITY;
  /** VP8 picture id (15 bits), one per frame. */
  private pictureId = 0;
  private closed = false;
  private paceTimer?: NodeJS.Timeout;
  /** The output's bitrate (bytes/s, video), measured per window; sets the pace. */
  private rateBytesPerSecond = 0;
  private rateWindow = { start: 0, bytes: 0 };
  /** Totals of viewers that left, so the stream's counters never go down. */
  private readonly gone = { framesDropped: 0, keyframeRequests: 0, nacks: 0, retransmitted: 0, lost: 0 };
  private readonly counts = {
    frames: 0,
    upstreamKeyframeRequests: 0,
    framesSkippedAtSwitch: 0,
    framesCaughtUp: 0,
    startsFromCache: 0,
    startsLive: 0,
  };

  constructor(private readonly opts: OutputHubOptions) {
    this.limits = { ...OUTPUT_HUB_DEFAULTS, ...opts.limits };
    this.now = opts.now ?? Date.now;
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /** A viewer's peer (for signalling on its session, such as an ICE PATCH); undefined if unknown. */
  peerOf(id: string): P | undefined {
    return this.viewers.get(id)?.peer;
  }

  has(id: string): boolean {
    return this.viewers.has(id);
  }

  /**
   * Takes ownership of a viewer's peer: it is started on a keyframe as soon as it can receive
   * (the cached GOP at once, or else the next keyframe, asked for upstream), and closed by
   * removeViewer(), close(), or when it fails.
   */
  addViewer(id: string, peer: P): void {
    if (this.closed) throw new Error('output hub is closed');
    if (this.viewers.has(id)) throw new Error(`viewer ${id} already added`);
    const now = this.now();
    const viewer: Viewer<P> = {
      id,
      peer,
      joinedAt: now,
      state: 'waiting',
      queue: [],
      queueBytes: 0,
      tokens: this.limits.paceBurstBytes,
      refilledAt: now,
      startedFromCache: false,
      videoSeqShift: 0,
      audioSeqShift: 0,
      framesSent: 0,
      framesDropped: 0,
      keyframeRequests: 0,
      unsubscribe: [],
    };
    this.viewers.set(id, viewer);
    viewer.unsubscribe.push(
      peer.onStateChange((state) => {
        if (state === 'connected') this.startFromCache(viewer);
        else if (state === 'failed' || state === 'closed') void this.removeViewer(id);
      }),
      peer.onKeyframeRequest(() => {
        viewer.keyframeRequests++;
        // A started viewer that lost the picture: the next keyframe upstream is its remedy.
        if (viewer.state === 'live') this.requestUpstreamKeyframe();
      }),
    );
    if (peer.canSend) this.startFromCache(viewer);
  }

  /** Closes and forgets a viewer; false if there is no such viewer. */
  async removeViewer(id: string): Promise<boolean> {
    const viewer = this.viewers.get(id);
    if (!viewer) return false;
    this.viewers.delete(id);
    for (const off of viewer.unsubscribe) off();
    this.addToGone(viewer);
    this.opts.onViewerLeft?.(id);
    await viewer.peer.close();
    this.opts.logger.info({ viewerId: id, viewers: this.viewers.size }, 'viewer left');
    return true;
  }

  /** Closes every viewer; frames pushed afterwards are ignored. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.paceTimer);
    const viewers = [...this.viewers.values()];
    this.viewers.clear();
    for (const viewer of viewers) {
      for (const off of viewer.unsubscribe) off();
      this.addToGone(viewer);
      this.opts.onViewerLeft?.(viewer.id);
    }
    this.gop = undefined;
    await Promise.allSettled(viewers.map((v) => v.peer.close()));
  }

  /**
   * Streams one output segment to the viewers as its bytes arrive; rejects if it is cut off.
   * `source` names the job it came from: a change means a new orchestrator, whose output is only
   * taken from its first keyframe on, and whose replay of what viewers already saw is fast-forwarded.
   */
  async pushSegment(body: Readable, source?: string): Promise<void> {
    const demuxer = new TsDemuxer();
    for await (const chunk of body) {
      this.opts.onBytes?.(chunk as Uint8Array);
      this.push(demuxer.push(chunk as Uint8Array), source);
    }
    this.push(demuxer.flush(), source);
  }

  /** Sends demuxed frames (pushSegment's work, without the demuxing). */
  push(frames: DemuxedFrame[], source?: string): void {
    if (this.closed) return;
    for (const frame of frames) {
      if (frame.kind === 'video') this.pushVideo(frame, source);
      else if (frame.codec === 'opus') this.pushAudio(frame.data, frame.pts90k);
    }
  }

  stats(): OutputHubStats {
    const totals = { ...this.gone };
    for (const viewer of this.viewers.values()) {
      const s = viewer.peer.stats();
      totals.framesDropped += viewer.framesDropped;
      totals.keyframeRequests += viewer.keyframeRequests;
      totals.nacks += s.video.nacksReceived + (s.audio?.nacksReceived ?? 0);
      totals.retransmitted += s.video.retransmittedPackets + (s.audio?.retransmittedPackets ?? 0);
      totals.lost += Math.max(0, s.video.remotePacketsLost ?? 0);
    }
    return {
      viewers: this.viewers.size,
      frames: this.counts.frames,
      framesDropped: totals.framesDropped,
      keyframeRequests: totals.keyframeRequests,
      nacksReceived: totals.nacks,
      retransmittedPackets: totals.retransmitted,
      packetsLost: totals.lost,
      upstreamKeyframeRequests: this.counts.upstreamKeyframeRequests,
      framesSkippedAtSwitch: this.counts.framesSkippedAtSwitch,
      framesCaughtUp: this.counts.framesCaughtUp,
      gop: this.gop ? { frames: this.gop.length, bytes: this.gopBytes } : null,
      starts: { fromCache: this.counts.startsFromCache, live: this.counts.startsLive },
    };
  }

  /** One line per viewer, for the status page (reads each peer's stats: not for the media path). */
  viewerSummaries(): ViewerSummary[] {
    return [...this.viewers.values()].map((v) => {
      const s: EgressStats = v.peer.stats();
      const rtt = s.video.roundTripTimeSeconds;
      return {
        id: v.id,
        state: v.state,
        startMs: v.startedAt === undefined ? null : v.startedAt - v.joinedAt,
        startedFromCache: v.startedFromCache,
        framesSent: v.framesSent,
        framesDropped: v.framesDropped,
        queueBytes: v.queueBytes + v.peer.sendQueueBytes(),
        keyframeRequests: v.keyframeRequests,
        nacksReceived: s.video.nacksReceived + (s.audio?.nacksReceived ?? 0),
        retransmittedPackets: s.video.retransmittedPackets + (s.audio?.retransmittedPackets ?? 0),
        packetsLost: s.video.remotePacketsLost ?? null,
        fractionLost: s.video.remoteFractionLost ?? null,
        rttMs: rtt === undefined ? null : Math.round(rtt * 1000),
      };
    });
  }

  private pushVideo(frame: DemuxedVideo, source: string | undefined): void {
    if (source !== this.source) {
      if (this.source !== undefined) this.switching = true;
      this.source = source;
    }
    if (this.switching) {
      // Frames of a new encoder before its first keyframe reference pictures viewers never got.
      if (!frame.keyframe) {
        this.counts.framesSkippedAtSwitch++;
        return;
      }
      this.switching = false;
      this.beginCatchUp(frame);
    }
    const now = this.now();
    const timestamp = this.timestampFor(frame, now);
    this.opts.onVideoFrame?.(frame);
    const packets =
      this.opts.videoCodec === 'vp8'
        ? packetizeVp8(frame.annexB, this.pictureId++)
        : packetizeH264(this.withParameterSets(frame));
    const firstSeq = this.videoTimeline.nextSequenceNumber();
    for (let i = 1; i < packets.length; i++) this.videoTimeline.nextSequenceNumber();
    const out: OutFrame = {
      packets,
      firstSeq,
      timestamp,
      pts90k: frame.pts90k,
      keyframe: frame.keyframe,
      bytes: frame.annexB.length,
    };
    this.counts.frames++;
    this.measureRate(now, out.bytes);
    this.cache(out);
    for (const viewer of this.viewers.values()) this.offer(viewer, out);
    this.opts.onFrame(frame.annexB.length, frame.pts90k, this.now());
  }

  /**
   * The RTP timestamp: the shared timeline's, except for frames a new orchestrator replays that
   * viewers already saw (its input started at the cached input GOP), which are squeezed right
   * after the latest timestamp sent so the viewers' picture catches up without adding delay.
   */
  private timestampFor(frame: DemuxedVideo, now: number): number {
    const c = this.catchUp;
    if (c && frame.dts90k <= c.untilDts) {
      const ticks = 1 + Math.floor(Math.max(0, frame.pts90k - c.basePts) / CATCH_UP_SQUEEZE);
      if (ticks <= CATCH_UP_MAX_TICKS) {
        this.counts.framesCaughtUp++;
        return (c.baseRtp + ticks) >>> 0;
      }
      // A replay longer than the squeeze allows: start a fresh run after what was sent.
      this.videoTimeline.markDiscontinuity();
    }
    this.catchUp = undefined;
    return this.videoTimeline.timestampFor(frame.pts90k, now, frame.dts90k);
  }

  private beginCatchUp(keyframe: DemuxedVideo): void {
    const t = this.videoTimeline;
    if (!t.started) return;
    const behind = t.lastDts90k - keyframe.dts90k;
    if (behind >= 0 && behind <= CATCH_UP_WINDOW_90K) {
      this.catchUp = { untilDts: t.lastDts90k, basePts: keyframe.pts90k, baseRtp: t.latestTimestamp };
    }
  }

  /** The frame's NAL units, with the last SPS/PPS in front of a keyframe that lacks them. */
  private withParameterSets(frame: DemuxedVideo): Uint8Array[] {
    const nalus = splitAnnexB(frame.annexB);
    if (!frame.keyframe) return nalus;
    let hasSps = false;
    let hasPps = false;
    for (const nalu of nalus) {
      const type = nalu[0] & 0x1f;
      if (type === H264NalType.sps) {
        hasSps = true;
        this.sps = nalu;
      } else if (type === H264NalType.pps) {
        hasPps = true;
        this.pps = nalu;
      }
    }
    const missing: Uint8Array[] = [];
    if (!hasSps && this.sps) missing.push(this.sps);
    if (!hasPps && this.pps) missing.push(this.pps);
    return missing.length ? [...missing, ...nalus] : nalus;
  }

  private cache(frame: OutFrame): void {
    if (frame.keyframe) {
      this.gop = [frame];
      this.gopBytes = frame.bytes;
      return;
    }
    if (!this.gop) return;
    this.gop.push(frame);
    this.gopBytes += frame.bytes;
    if (this.gop.length > this.limits.maxGopFrames || this.gopBytes > this.limits.maxGopBytes) {
      this.gop = undefined;
      this.gopBytes = 0;
    }
  }

  /** One live frame for one viewer, according to its state. */
  private offer(viewer: Viewer, frame: OutFrame): void {
    if (viewer.state === 'waiting') {
      // Started only by a keyframe that really goes out (not one dropped before DTLS was up).
      if (frame.keyframe && viewer.peer.canSend) {
        this.enqueue(viewer, { kind: 'video', frame, timestamp: frame.timestamp, start: 'live' });
      }
      return;
    }
    const socket = viewer.peer.sendQueueBytes();
    const pending = viewer.queueBytes + socket;
    if (viewer.state === 'dropping') {
      if (
        !frame.keyframe ||
        pending > this.limits.maxViewerQueueBytes / 2 ||
        socket > this.limits.maxSocketQueueBytes / 2
      ) {
        this.skip(viewer, frame);
        return;
      }
      viewer.state = 'live';
      this.opts.logger.info({ viewerId: viewer.id, dropped: viewer.framesDropped }, 'viewer caught up');
    } else if (pending > this.limits.maxViewerQueueBytes || socket > this.limits.maxSocketQueueBytes) {
      viewer.state = 'dropping';
      this.opts.logger.warn(
        { viewerId: viewer.id, queuedBytes: viewer.queueBytes, socketBytes: socket },
        'viewer too slow: skipping to the next keyframe',
      );
      this.dropQueue(viewer);
      this.skip(viewer, frame);
      return;
    }
    this.enqueue(viewer, { kind: 'video', frame, timestamp: frame.timestamp });
  }

  private skip(viewer: Viewer, frame: OutFrame): void {
    viewer.framesDropped++;
    // Its own sequence numbers stay continuous: it should not NACK what it was never meant to get.
    viewer.videoSeqShift -= frame.packets.length;
  }

  /** Everything still queued for a viewer that cannot keep up is dropped, in order, and counted. */
  private dropQueue(viewer: Viewer): void {
    for (const item of viewer.queue.splice(0)) {
      if (item.kind === 'video') this.skip(viewer, item.frame);
      else viewer.audioSeqShift--;
    }
    viewer.queueBytes = 0;
  }

  /** Sends at once when the viewer's pace allows and nothing waits before it; else queues. */
  private enqueue(viewer: Viewer, item: Queued): void {
    viewer.queue.push(item);
    viewer.queueBytes += itemBytes(item);
    this.pump(viewer, this.now());
    if (viewer.queue.length && !this.paceTimer) {
      this.paceTimer = setTimeout(() => this.drainQueues(), PACE_TICK_MS);
    }
  }

  /** Runs the pacer: sends what each viewer's pace allows now. Called by its own timer. */
  drainQueues(): void {
    this.paceTimer = undefined;
    if (this.closed) return;
    const now = this.now();
    let waiting = false;
    for (const viewer of this.viewers.values()) {
      if (viewer.queue.length) this.pump(viewer, now);
      if (viewer.queue.length) waiting = true;
    }
    if (waiting) this.paceTimer = setTimeout(() => this.drainQueues(), PACE_TICK_MS);
  }

  private pump(viewer: Viewer, now: number): void {
    const rate = Math.max(
      this.limits.minPaceBytesPerSecond,
      this.limits.paceFactor * this.rateBytesPerSecond,
    );
    viewer.tokens = Math.min(
      this.limits.paceBurstBytes,
      viewer.tokens + ((now - viewer.refilledAt) * rate) / 1000,
    );
    viewer.refilledAt = now;
    while (viewer.queue.length && viewer.tokens >= 0) {
      const item = viewer.queue.shift() as Queued;
      const bytes = itemBytes(item);
      viewer.queueBytes -= bytes;
      viewer.tokens -= bytes;
      if (item.kind === 'audio') {
        viewer.peer.sendAudio(item.data, (item.seq + viewer.audioSeqShift) & 0xffff, item.timestamp, true);
        continue;
      }
      if (!this.sendFrame(viewer, item.frame, item.timestamp)) {
        // The peer cannot send (any more): start over on a keyframe once it can.
        this.dropQueue(viewer);
        viewer.state = 'waiting';
        return;
      }
      viewer.framesSent++;
      if (item.start) this.started(viewer, item.start === 'cache');
    }
  }

  private sendFrame(viewer: Viewer, frame: OutFrame, timestamp: number): boolean {
    return viewer.peer.sendVideoFrame(
      frame.packets,
      (frame.firstSeq + viewer.videoSeqShift) & 0xffff,
      timestamp,
    );
  }

  /**
   * Starts a viewer that can now receive: the cached GOP, its keyframe at once and the rest paced,
   * squeezed in time so its last frame lands on the live timeline; or else (no GOP, or one larger
   * than the viewer's queue may hold) a keyframe asked for upstream.
   */
  private startFromCache(viewer: Viewer): void {
    if (viewer.state !== 'waiting' || viewer.queue.length || !viewer.peer.canSend) return;
    const gop = this.gop;
    if (!gop || this.gopBytes > this.limits.maxViewerQueueBytes / 2) {
      this.requestUpstreamKeyframe();
      return;
    }
    const last = gop[gop.length - 1];
    for (const [i, frame] of gop.entries()) {
      const timestamp = (last.timestamp - Math.floor((last.pts90k - frame.pts90k) / CATCH_UP_SQUEEZE)) >>> 0;
      this.enqueue(viewer, { kind: 'video', frame, timestamp, start: i === 0 ? 'cache' : undefined });
    }
  }

  private started(viewer: Viewer, fromCache: boolean): void {
    viewer.state = 'live';
    viewer.startedAt = this.now();
    viewer.startedFromCache = fromCache;
    if (fromCache) this.counts.startsFromCache++;
    else this.counts.startsLive++;
    this.opts.logger.info(
      { viewerId: viewer.id, startMs: viewer.startedAt - viewer.joinedAt, fromCache },
      'viewer started',
    );
  }

  private pushAudio(data: Uint8Array, pts90k: number): void {
    const timestamp = this.audioTimeline.timestampFor(pts90k, this.now());
    const seq = this.audioTimeline.nextSequenceNumber();
    for (const viewer of this.viewers.values()) {
      // Audio starts with the picture, and stops with it for a viewer that cannot keep up.
      if (viewer.state === 'waiting') continue;
      if (viewer.state === 'dropping') {
        viewer.audioSeqShift--;
        continue;
      }
      this.enqueue(viewer, { kind: 'audio', data, seq, timestamp });
    }
  }

  private measureRate(now: number, bytes: number): void {
    const w = this.rateWindow;
    if (w.start === 0) w.start = now;
    w.bytes += bytes;
    const elapsed = now - w.start;
    if (elapsed >= RATE_WINDOW_MS) {
      this.rateBytesPerSecond = (w.bytes * 1000) / elapsed;
      this.rateWindow = { start: now, bytes: 0 };
    }
  }

  private requestUpstreamKeyframe(): void {
    const now = this.now();
    if (now - this.lastUpstreamRequest < MIN_UPSTREAM_KEYFRAME_GAP_MS) return;
    this.lastUpstreamRequest = now;
    this.counts.upstreamKeyframeRequests++;
    this.opts.requestKeyframe();
  }

  private addToGone(viewer: Viewer): void {
    const s = viewer.peer.stats();
    this.gone.framesDropped += viewer.framesDropped;
    this.gone.keyframeRequests += viewer.keyframeRequests;
    this.gone.nacks += s.video.nacksReceived + (s.audio?.nacksReceived ?? 0);
    this.gone.retransmitted += s.video.retransmittedPackets + (s.audio?.retransmittedPackets ?? 0);
    this.gone.lost += Math.max(0, s.video.remotePacketsLost ?? 0);
  }
}

function itemBytes(item: Queued): number {
  return item.kind === 'video' ? item.frame.bytes : item.data.length;
}
