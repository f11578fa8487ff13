// The publisher's RTP → access units → MPEG-TS segments, cut on keyframes no shorter than the
// minimum duration, each written into a trickle segment frame by frame as it arrives.
//
// Two bounded buffers live here. The current GOP (from the last keyframe) is kept so that a new
// orchestrator job gets it at once (attach) and starts on a keyframe without waiting for the
// publisher, which may ignore keyframe requests. And what is written into a segment but not yet
// sent (a slow orchestrator uplink) is bounded: past the bound, frames are dropped up to the next
// keyframe after the connection drains, and counted.
import type { Logger } from 'pino';
import {
  type AccessUnit,
  Av1Depacketizer,
  DtsGenerator,
  H264Depacketizer,
  OpusRtpDepacketizer,
  ReorderBuffer,
  type TranscodedVideoCodec,
  TsMuxer,
  VpxDepacketizer,
  type VpxFrame,
} from '../media/index.ts';
import { VpxToH264 } from '../transcode/index.ts';
import type { SegmentWriter } from '../trickle/index.ts';

/** PTS of the first frame: a little above zero so no decoder sees a negative DTS. */
const PTS_BASE_90K = 90_000;
/** Keyframe requests after losses are spaced at least this far apart. */
const MIN_PLI_GAP_MS = 300;
/** Video packets the reorder buffer holds behind a gap (NackGenerator forgets gaps wider than 512). */
const VIDEO_REORDER_PACKETS = 512;
/** Reorder wait for audio (no NACKs), and the floor for video. */
const BASE_REORDER_WAIT_MS = 100;

export interface IngestLimits {
  /** Bytes written into a segment after its connection backed up, beyond which frames are dropped. */
  maxBacklogBytes: number;
  /** The current input GOP is kept for a new job up to this many bytes… */
  maxGopBytes: number;
  /** …and this many frames (video and audio); a longer GOP is not replayed (a keyframe is asked for). */
  maxGopFrames: number;
}

export const INGEST_DEFAULTS: IngestLimits = {
  maxBacklogBytes: 1024 * 1024,
  maxGopBytes: 4 * 1024 * 1024,
  maxGopFrames: 600,
};

export interface IngestOptions {
  minSegmentDurationMs: number;
  requestKeyframe: () => void;
  /** Each live video frame written to a job, with the PTS it got and when its last packet arrived. */
  onFrame: (bytes: number, pts90k: number, arrivedAtMs: number) => void;
  onError: (reason: string) => void;
  /**
   * How long the video reorder buffer waits for a missing packet, read every 20 ms: as long as a
   * NACK can still be answered (IngestPeer.nackWindowMs). Default 100 ms; never less than that.
   */
  reorderWaitMs?: () => number;
  limits?: Partial<IngestLimits>;
  /** The publisher's audio: Opus over RTP (WHIP, the default) or AAC frames (RTMP), carried as is. */
  audioCodec?: 'opus' | 'aac';
  logger: Logger;
}

export interface IngestStats {
  segments: number;
  /** Frames lost: packet loss, or waiting for a keyframe after one. */
  framesDroppedLoss: number;
  /** Frames dropped because the orchestrator's connection could not take them (see maxBacklogBytes). */
  framesDroppedBackpressure: number;
  /** Times a new job got the cached GOP at once. */
  gopReplays: number;
  /** The current GOP as kept for replay, or null (none yet, or longer than the limits). */
  gop: { frames: number; bytes: number } | null;
  /** The video reorder buffer: how long it waits for a gap now, and what it gave up on. */
  reorder: { waitMs: number; lost: number; late: number };
}

interface OpenSegment {
  writer: SegmentWriter;
  startPts: number;
  /** write() returned false and no drain came yet. */
  backedUp: boolean;
  /** Bytes written since it backed up (Node buffers them). */
  backlog: number;
  /** Over the backlog bound: frames are dropped until a keyframe finds the connection drained. */
  dropping: boolean;
}

type CachedFrame =
  | { kind: 'video'; annexB: Uint8Array; pts: number; dts: number; keyframe: boolean }
  | { kind: 'audio'; data: Uint8Array; pts: number };

export class Ingest {
  private readonly muxer: TsMuxer;
  private readonly video: H264Depacketizer;
  /** A VP8/VP9/AV1 publisher: its frames are transcoded to H.264 (useVpx) before they reach onAccessUnit. */
  private vpx?: { depacketizer: VpxDepacketizer | Av1Depacketizer; transcoder: VpxToH264 };
  /** DTS for B-frame streams (decode order ≠ presentation order); equals the PTS without B-frames. */
  private readonly dts = new DtsGenerator();
  private readonly audio = new OpusRtpDepacketizer();
  private readonly videoOrder: ReorderBuffer<{ payload: Uint8Array; ts: number; marker: boolean }>;
  private readonly audioOrder: ReorderBuffer<{ payload: Uint8Array; ts: number }>;
  private readonly poller: NodeJS.Timeout;
  private readonly limits: IngestLimits;
  /** Where segments go: the current job's input channel; undefined between jobs. */
  private source?: () => SegmentWriter | undefined;
  private segment?: OpenSegment;
  /** From the last keyframe on, in arrival order; undefined when there is none or it is too long. */
  private gop?: CachedFrame[];
  private gopBytes = 0;
  private epochMs?: number;
  private videoOffset90k?: number;
  private audioOffset90k?: number;
  private lastPli = 0;
  private lastPacket?: number;
  private segments = 0;
  private framesDroppedLoss = 0;
  private framesDroppedBackpressure = 0;
  private gopReplays = 0;
  private closed = false;

  constructor(private readonly opts: IngestOptions) {
    this.limits = { ...INGEST_DEFAULTS, ...opts.limits };
    this.muxer = new TsMuxer({ video: true, audio: { channels: 2, codec: opts.audioCodec ?? 'opus' } });
    this.video = new H264Depacketizer({
      onAccessUnit: (au) => this.onAccessUnit(au),
      onFrameDropped: () => {
        // Before the first segment, frames waiting for a keyframe are expected, not losses.
        if (this.segment) this.framesDroppedLoss++;
        this.requestKeyframeSoon();
      },
    });
    this.videoOrder = new ReorderBuffer({
      onPacket: (p, seq) => (this.vpx?.depacketizer ?? this.video).push(p.payload, seq, p.ts, p.marker),
      onLoss: () => this.requestKeyframeSoon(),
      maxPackets: VIDEO_REORDER_PACKETS,
      maxDelayMs: BASE_REORDER_WAIT_MS,
    });
    this.audioOrder = new ReorderBuffer({
      onPacket: (p) => this.onAudio(p.payload, p.ts),
      maxDelayMs: BASE_REORDER_WAIT_MS,
    });
    // Lets a held-back packet go once its gap has waited long enough, even if no new packet comes.
    this.poller = setInterval(() => {
      const now = Date.now();
      const wait = this.opts.reorderWaitMs?.();
      if (wait !== undefined) this.videoOrder.setMaxDelay(Math.max(BASE_REORDER_WAIT_MS, wait));
      this.videoOrder.poll(now);
      this.audioOrder.poll(now);
    }, 20);
  }

  /**
   * The publisher sends VP8, VP9 or AV1: from now on its video RTP goes through one ffmpeg that makes
   * H.264 with a keyframe per publisher keyframe and at most one GOP per segment. Call before media.
   */
  useVpx(codec: TranscodedVideoCodec): void {
    if (this.vpx || this.closed) return;
    const lost = () => {
      if (this.segment) this.framesDroppedLoss++;
      this.requestKeyframeSoon();
    };
    const transcoder = new VpxToH264({
      gopMs: this.opts.minSegmentDurationMs,
      onAccessUnit: (au) => {
        if (!this.closed) this.onAccessUnit(au);
      },
      requestKeyframe: () => this.requestKeyframeNow(),
      logger: this.opts.logger,
    });
    const onFrame = (f: VpxFrame) => transcoder.push(f);
    const depacketizer =
      codec === 'av1'
        ? new Av1Depacketizer({ onFrame, onFrameDropped: lost })
        : new VpxDepacketizer({ codec, onFrame, onFrameDropped: lost });
    this.vpx = { depacketizer, transcoder };
  }

  pushVideo(payload: Uint8Array, seq: number, ts: number, marker: boolean): void {
    if (this.closed) return;
    const now = this.touch();
    this.videoOffset90k ??= this.offsetFrom(now);
    this.videoOrder.push(seq, { payload, ts, marker }, now);
  }

  pushAudio(payload: Uint8Array, seq: number, ts: number): void {
    if (this.closed) return;
    const now = this.touch();
    this.audioOffset90k ??= this.offsetFrom(now);
    this.audioOrder.push(seq, { payload, ts }, now);
  }

  /**
   * A whole access unit from a publisher that times its own frames (RTMP: DTS from the message,
   * PTS = DTS + composition time): no depacketizing, no reordering, no DTS to derive. Timestamps
   * are 90 kHz from the publisher's zero; audio (pushAudioFrame) shares that clock.
   */
  pushAccessUnit(annexB: Uint8Array, pts90k: number, dts90k: number, keyframe: boolean): void {
    if (this.closed) return;
    this.touch();
    this.onVideoFrame(annexB, pts90k + PTS_BASE_90K, dts90k + PTS_BASE_90K, keyframe);
  }

  /** One audio frame in the muxer's codec (an ADTS frame for AAC), on pushAccessUnit's clock. */
  pushAudioFrame(data: Uint8Array, pts90k: number): void {
    if (this.closed) return;
    this.touch();
    this.onAudioFrame(data, pts90k + PTS_BASE_90K);
  }

  /**
   * Sends segments to a (new) job from now on: its first segment starts at once with the cached
   * GOP, so it begins on a keyframe without waiting for the publisher; then live frames follow.
   * Without a GOP to replay, a keyframe is asked for and the first segment starts on it.
   * Returns whether the GOP was replayed.
   */
  attach(startSegment: () => SegmentWriter | undefined): boolean {
    if (this.closed) return false;
    this.cut();
    this.source = startSegment;
    const gop = this.gop;
    const first = gop?.[0];
    const open = first ? this.open(first.pts) : undefined;
    if (!gop || !open) {
      this.requestKeyframeNow();
      return false;
    }
    this.segment = open;
    for (const frame of gop) {
      if (frame.kind === 'video') this.writeVideo(open, frame.annexB, frame.pts, frame.dts, frame.keyframe);
      else this.write(open, this.muxer.writeAudio({ data: frame.data, pts90k: frame.pts }));
    }
    // The replay is one bounded burst (maxGopBytes); the backlog bound is for what follows it.
    open.backlog = 0;
    open.dropping = false;
    this.gopReplays++;
    this.opts.logger.debug({ frames: gop.length, bytes: this.gopBytes }, 'input GOP replayed to the new job');
    return true;
  }

  /** Ends the open segment and sends nothing more until the next attach (the GOP is still kept). */
  detach(): void {
    this.source = undefined;
    this.cut();
  }

  requestKeyframeNow(): void {
    this.lastPli = Date.now();
    this.opts.requestKeyframe();
  }

  stats(): IngestStats {
    const reorder = this.videoOrder.stats;
    return {
      segments: this.segments,
      framesDroppedLoss: this.framesDroppedLoss,
      framesDroppedBackpressure: this.framesDroppedBackpressure,
      gopReplays: this.gopReplays,
      gop: this.gop ? { frames: this.gop.length, bytes: this.gopBytes } : null,
      reorder: { waitMs: this.videoOrder.maxDelay, lost: reorder.lost, late: reorder.late },
    };
  }

  lastPacketAt(): number | undefined {
    return this.lastPacket;
  }

  /** Ends the open segment; the next keyframe starts a new one. */
  cut(): void {
    const open = this.segment;
    this.segment = undefined;
    if (open) this.finish(open);
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.poller);
    // What the reorder buffers still hold goes out before the last segment ends.
    this.videoOrder.flush();
    this.audioOrder.flush();
    this.video.flush();
    this.closed = true;
    this.vpx?.transcoder.close();
    this.detach();
    this.gop = undefined;
  }

  private touch(): number {
    const now = Date.now();
    this.lastPacket = now;
    this.epochMs ??= now;
    return now;
  }

  // Audio and video RTP clocks start at random values: line them up by arrival time.
  private offsetFrom(now: number): number {
    return PTS_BASE_90K + Math.round((now - (this.epochMs ?? now)) * 90);
  }

  private onAccessUnit(au: AccessUnit): void {
    const pts = au.pts90k + (this.videoOffset90k ?? PTS_BASE_90K);
    // Every frame gets its DTS in order, whether it is sent now or only kept for a replay.
    const dts = this.dts.next(pts, au.nalus);
    this.onVideoFrame(au.annexB, pts, dts, au.keyframe);
  }

  private onVideoFrame(annexB: Uint8Array, pts: number, dts: number, keyframe: boolean): void {
    this.keep({ kind: 'video', annexB, pts, dts, keyframe }, keyframe);
    const open = this.segment;
    const due = open && pts - open.startPts >= this.opts.minSegmentDurationMs * 90;
    if (keyframe && (!open || due)) {
      if (open) this.finish(open);
      this.segment = this.open(pts);
    } else if (!open) {
      // A job is waiting for its first keyframe.
      if (this.source) this.requestKeyframeSoon();
      return;
    }
    const segment = this.segment;
    if (!segment) return;
    if (segment.dropping) {
      // Resume on a keyframe once the connection has drained; until then the frames are lost.
      if (!keyframe || segment.backedUp) {
        this.framesDroppedBackpressure++;
        return;
      }
      segment.dropping = false;
    }
    this.writeVideo(segment, annexB, pts, dts, keyframe);
    this.opts.onFrame(annexB.length, pts, this.lastPacket ?? Date.now());
  }

  private onAudio(payload: Uint8Array, ts: number): void {
    const frame = this.audio.push(payload, ts);
    if (!frame) return;
    this.onAudioFrame(frame.data, frame.pts90k + (this.audioOffset90k ?? PTS_BASE_90K));
  }

  private onAudioFrame(data: Uint8Array, pts: number): void {
    this.keep({ kind: 'audio', data, pts }, false);
    const segment = this.segment;
    if (!segment || segment.dropping) return;
    this.write(segment, this.muxer.writeAudio({ data, pts90k: pts }));
  }

  /** Adds a frame to the cached GOP (a keyframe starts a new one); forgets a GOP past the limits. */
  private keep(frame: CachedFrame, keyframe: boolean): void {
    const bytes = frame.kind === 'video' ? frame.annexB.length : frame.data.length;
    if (keyframe) {
      this.gop = [frame];
      this.gopBytes = bytes;
      return;
    }
    if (!this.gop) return;
    this.gop.push(frame);
    this.gopBytes += bytes;
    if (this.gop.length > this.limits.maxGopFrames || this.gopBytes > this.limits.maxGopBytes) {
      this.gop = undefined;
      this.gopBytes = 0;
    }
  }

  private writeVideo(segment: OpenSegment, annexB: Uint8Array, pts: number, dts: number, keyframe: boolean) {
    this.write(segment, this.muxer.writeVideo({ annexB, pts90k: pts, dts90k: dts, keyframe }));
  }

  /**
   * Writes into the segment and keeps its backlog bounded: once write() says the connection is
   * backed up, what is written until it drains is counted, and past maxBacklogBytes the segment
   * drops frames (onAccessUnit/onAudio) until a keyframe comes after the drain.
   */
  private write(segment: OpenSegment, bytes: Uint8Array): void {
    if (segment.backedUp) segment.backlog += bytes.length;
    const ok = segment.writer.write(bytes);
    if (!ok && !segment.backedUp) {
      segment.backedUp = true;
      segment.backlog = 0;
      void segment.writer.waitForDrain().then(() => {
        segment.backedUp = false;
        segment.backlog = 0;
        // The frames dropped meanwhile broke the picture: a keyframe restores it soonest.
        if (segment.dropping && this.segment === segment) this.requestKeyframeSoon();
      });
    }
    if (segment.backedUp && !segment.dropping && segment.backlog > this.limits.maxBacklogBytes) {
      segment.dropping = true;
      this.opts.logger.warn(
        { seq: segment.writer.seq, backlogBytes: segment.backlog },
        'orchestrator input backed up: dropping frames up to the next keyframe',
      );
    }
  }

  private open(pts: number): OpenSegment | undefined {
    const writer = this.source?.();
    if (!writer) return undefined;
    this.segments++;
    const segment: OpenSegment = { writer, startPts: pts, backedUp: false, backlog: 0, dropping: false };
    this.write(segment, this.muxer.startSegment());
    return segment;
  }

  private finish(open: OpenSegment): void {
    open.writer
      .end()
      .catch((err: Error) => this.opts.onError(`input segment ${open.writer.seq}: ${err.message}`));
  }

  private requestKeyframeSoon(): void {
    if (Date.now() - this.lastPli < MIN_PLI_GAP_MS) return;
    this.requestKeyframeNow();
  }
}
