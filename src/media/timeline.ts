// Continuous RTP timestamps and sequence numbers for one outgoing track, across segments and orchestrators.

export interface RtpTimelineOptions {
  /** RTP clock rate: 90000 for video, 48000 for Opus. */
  clockRate: number;
  /** How far the output advances at a discontinuity, in 90 kHz ticks. Default 3000 (one frame at 30 fps). */
  frameDuration90k?: number;
  /** A forward DTS step (PTS without B-frames) larger than this is a discontinuity. Default 90000 (1 s). */
  maxJump90k?: number;
  /** Default random, as RFC 3550 recommends. */
  initialSequenceNumber?: number;
  /** Default random. */
  initialTimestamp?: number;
}

const TIMESTAMP_WRAP = 2 ** 32;

/**
 * Maps the PTS of successive frames to RTP timestamps. Within a continuous run the RTP timestamp
 * follows the PTS (so with B-frames it steps back and forth, as RTP presentation timestamps do).
 * Continuity is judged on the DTS, which increases in decode order: when it goes backwards (new
 * orchestrator, encoder restart) or jumps by more than `maxJump90k`, the timeline rebases: the
 * frame's DTS is placed one nominal frame after the latest RTP timestamp sent so far, or later by
 * the wall-clock time since the previous frame if `nowMs` is given and that is longer. Since no
 * later frame presents before its DTS, the new run never overlaps the old one. Without a DTS
 * (or without B-frames) DTS = PTS.
 */
export class RtpTimeline {
  readonly clockRate: number;
  private readonly frameDuration90k: number;
  private readonly maxJump90k: number;
  private nextSeq: number;
  private hasStarted = false;
  private forceRebase = false;
  /** The PTS and (unwrapped) RTP timestamp where the current continuous run began. */
  private basePts = 0;
  private baseRtp: number;
  private lastPts = 0;
  private lastDts = 0;
  private lastRtp = 0;
  /** The latest presentation time sent (unwrapped); with B-frames it may be ahead of `lastRtp`. */
  private maxRtp = 0;
  private lastNowMs: number | undefined;
  rebases = 0;

  constructor(options: RtpTimelineOptions) {
    if (!(options.clockRate > 0)) throw new RangeError('clockRate must be positive');
    this.clockRate = options.clockRate;
    this.frameDuration90k = options.frameDuration90k ?? 3000;
    this.maxJump90k = options.maxJump90k ?? 90000;
    this.nextSeq = (options.initialSequenceNumber ?? Math.floor(Math.random() * 0x10000)) & 0xffff;
    this.baseRtp = (options.initialTimestamp ?? Math.floor(Math.random() * TIMESTAMP_WRAP)) >>> 0;
  }

  /**
   * The RTP timestamp for a frame with this PTS (and DTS, when it differs). Call once per frame,
   * in decode order.
   */
  timestampFor(pts90k: number, nowMs?: number, dts90k: number = pts90k): number {
    let rtp: number;
    if (!this.hasStarted) {
      this.hasStarted = true;
      this.basePts = pts90k;
      rtp = this.baseRtp;
      this.maxRtp = rtp;
    } else {
      const delta = dts90k - this.lastDts;
      if (this.forceRebase || delta < 0 || delta > this.maxJump90k) {
        let advance90k = this.frameDuration90k;
        if (nowMs !== undefined && this.lastNowMs !== undefined) {
          advance90k = Math.max(advance90k, (nowMs - this.lastNowMs) * 90);
        }
        rtp = this.maxRtp + this.toClock(advance90k + pts90k - dts90k);
        this.basePts = pts90k;
        this.baseRtp = rtp;
        this.forceRebase = false;
        this.rebases++;
      } else {
        // From the base, not the last frame, so rounding never accumulates.
        rtp = this.baseRtp + this.toClock(pts90k - this.basePts);
      }
      this.maxRtp = Math.max(this.maxRtp, rtp);
    }
    this.lastPts = pts90k;
    this.lastDts = dts90k;
    this.lastRtp = rtp;
    this.lastNowMs = nowMs;
    return ((rtp % TIMESTAMP_WRAP) + TIMESTAMP_WRAP) % TIMESTAMP_WRAP;
  }

  private toClock(ticks90k: number): number {
    return Math.round((ticks90k * this.clockRate) / 90000);
  }

  /** The next 16-bit sequence number (one per RTP packet). */
  nextSequenceNumber(): number {
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) & 0xffff;
    return seq;
  }

  /** Treat the next frame as a discontinuity even if its DTS looks continuous (e.g. a known orchestrator swap). */
  markDiscontinuity(): void {
    this.forceRebase = true;
  }

  /** Whether a frame has been timed yet. */
  get started(): boolean {
    return this.hasStarted;
  }

  /** The DTS of the last frame timed (90 kHz); meaningful once started. */
  get lastDts90k(): number {
    return this.lastDts;
  }

  /** The latest presentation time sent so far, as a 32-bit RTP timestamp (with B-frames, ahead of the last). */
  get latestTimestamp(): number {
    return ((this.maxRtp % TIMESTAMP_WRAP) + TIMESTAMP_WRAP) % TIMESTAMP_WRAP;
  }

  get state(): { nextSeq: number; lastRtpTs: number; lastPts: number; clockRate: number } {
    return {
      nextSeq: this.nextSeq,
      lastRtpTs: ((this.lastRtp % TIMESTAMP_WRAP) + TIMESTAMP_WRAP) % TIMESTAMP_WRAP,
      lastPts: this.lastPts,
      clockRate: this.clockRate,
    };
  }
}
