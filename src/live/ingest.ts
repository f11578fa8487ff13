// The publisher's RTP → access units → MPEG-TS segments, cut on keyframes no shorter than the
// minimum duration, each written into a trickle segment frame by frame as it arrives.
import type { Logger } from 'pino';
import {
  type AccessUnit,
  DtsGenerator,
  H264Depacketizer,
  OpusRtpDepacketizer,
  ReorderBuffer,
  TsMuxer,
} from '../media/index.ts';
import type { SegmentWriter } from '../trickle/index.ts';

/** PTS of the first frame: a little above zero so no decoder sees a negative DTS. */
const PTS_BASE_90K = 90_000;
/** Keyframe requests after losses are spaced at least this far apart. */
const MIN_PLI_GAP_MS = 300;

export interface IngestOptions {
  minSegmentDurationMs: number;
  /** A new trickle segment to write into; undefined while no orchestrator is ready. */
  startSegment: () => SegmentWriter | undefined;
  requestKeyframe: () => void;
  /** Each video frame written, with the PTS it got and when its last packet arrived. */
  onFrame: (bytes: number, pts90k: number, arrivedAtMs: number) => void;
  onError: (reason: string) => void;
  logger: Logger;
}

interface OpenSegment {
  writer: SegmentWriter;
  startPts: number;
}

export class Ingest {
  private readonly muxer = new TsMuxer({ video: true, audio: { channels: 2 } });
  private readonly video: H264Depacketizer;
  /** DTS for B-frame streams (decode order ≠ presentation order); equals the PTS without B-frames. */
  private readonly dts = new DtsGenerator();
  private readonly audio = new OpusRtpDepacketizer();
  private readonly videoOrder: ReorderBuffer<{ payload: Uint8Array; ts: number; marker: boolean }>;
  private readonly audioOrder: ReorderBuffer<{ payload: Uint8Array; ts: number }>;
  private readonly poller: NodeJS.Timeout;
  private segment?: OpenSegment;
  private epochMs?: number;
  private videoOffset90k?: number;
  private audioOffset90k?: number;
  private lastPli = 0;
  private lastPacket?: number;
  private segments = 0;
  private framesDropped = 0;
  private closed = false;

  constructor(private readonly opts: IngestOptions) {
    this.video = new H264Depacketizer({
      onAccessUnit: (au) => this.onAccessUnit(au),
      onFrameDropped: () => {
        // Before the first segment, frames waiting for a keyframe are expected, not losses.
        if (this.segment) this.framesDropped++;
        this.requestKeyframeSoon();
      },
    });
    this.videoOrder = new ReorderBuffer({
      onPacket: (p, seq) => this.video.push(p.payload, seq, p.ts, p.marker),
      onLoss: () => this.requestKeyframeSoon(),
    });
    this.audioOrder = new ReorderBuffer({ onPacket: (p) => this.onAudio(p.payload, p.ts) });
    // Lets a held-back packet go once its gap has waited long enough, even if no new packet comes.
    this.poller = setInterval(() => {
      const now = Date.now();
      this.videoOrder.poll(now);
      this.audioOrder.poll(now);
    }, 20);
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

  requestKeyframeNow(): void {
    this.lastPli = Date.now();
    this.opts.requestKeyframe();
  }

  stats(): { segments: number; framesDropped: number } {
    return { segments: this.segments, framesDropped: this.framesDropped };
  }

  lastPacketAt(): number | undefined {
    return this.lastPacket;
  }

  /** Ends the open segment; the next keyframe starts a new one (used when the orchestrator changes). */
  cut(): void {
    const open = this.segment;
    this.segment = undefined;
    if (open) this.finish(open);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poller);
    this.cut();
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
    const open = this.segment;
    const due = open && pts - open.startPts >= this.opts.minSegmentDurationMs * 90;
    if (au.keyframe && (!open || due)) {
      if (open) this.finish(open);
      this.segment = this.open(pts);
    } else if (!open) {
      this.requestKeyframeSoon();
      return;
    }
    const segment = this.segment;
    if (!segment) return;
    const dts90k = this.dts.next(pts, au.nalus);
    const bytes = this.muxer.writeVideo({ annexB: au.annexB, pts90k: pts, dts90k, keyframe: au.keyframe });
    segment.writer.write(bytes);
    this.opts.onFrame(au.annexB.length, pts, this.lastPacket ?? Date.now());
  }

  private onAudio(payload: Uint8Array, ts: number): void {
    const frame = this.audio.push(payload, ts);
    if (!frame || !this.segment) return;
    const pts = frame.pts90k + (this.audioOffset90k ?? PTS_BASE_90K);
    this.segment.writer.write(this.muxer.writeAudio({ data: frame.data, pts90k: pts }));
  }

  private open(pts: number): OpenSegment | undefined {
    const writer = this.opts.startSegment();
    if (!writer) return undefined;
    this.segments++;
    writer.write(this.muxer.startSegment());
    return { writer, startPts: pts };
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
