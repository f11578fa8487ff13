// Decode timestamps for H.264 frames that arrive (over RTP) with presentation timestamps only.
import { H264NalType } from './annex-b.ts';
import { parseH264Sps } from './h264-sps.ts';

export interface DtsGeneratorOptions {
  /** Reorder depth known up front, in frames. Default 0; raised by SPS and by what the stream does. */
  reorderDepth?: number;
  /** Frame duration assumed for the first frames until a shorter PTS gap is seen. Default 3000 (30 fps). */
  frameDuration90k?: number;
  /** A PTS further than this behind the newest one is a restart, not reordering. Default 90000 (1 s). */
  maxReorder90k?: number;
}

export interface DtsGeneratorStats {
  /** Frames in decode order that may follow a frame in presentation order (SPS max_num_reorder_frames). */
  reorderDepth: number;
  /** Times a frame came further out of order than the depth allowed, and the depth was raised. */
  depthRaises: number;
  /** Frames whose DTS had to exceed their PTS to keep DTS increasing (only right after a depth raise). */
  clampedFrames: number;
  /** PTS steps back by more than `maxReorder90k`: the DTS sequence started over. */
  discontinuities: number;
}

/** The DPB holds at most 16 frames, so no H.264 stream reorders deeper. */
const MAX_REORDER_DEPTH = 16;

/**
 * Gives each frame, in decode order, a DTS that increases strictly and never exceeds its PTS,
 * without waiting for later frames.
 *
 * With a reorder depth N (at most N frames precede a frame in decode order and follow it in
 * presentation order), the DTS of a frame is the (N+1)-th largest PTS seen so far; this is what
 * ffmpeg guesses for streams without DTS. It is ≤ the frame's PTS because at most N earlier
 * frames have a larger one, and it increases strictly because each new PTS is above it. The first
 * N frames, with fewer PTS to go on, count back from the smallest by one frame duration each.
 *
 * N is taken from the SPS (VUI `max_num_reorder_frames`, which libx264 and most encoders write),
 * so a B-frame stream gets exact DTS from its first keyframe; a stream without B-frames keeps
 * N = 0 and DTS = PTS. When a frame comes further out of order than N allows (an SPS that does
 * not say), N is raised to fit; the frames until the DTS catches up get DTS = previous + 1, which
 * may exceed their PTS (counted in `clampedFrames`), and from then on the DTS is exact again.
 */
export class DtsGenerator {
  private depth: number;
  private frameDuration90k: number;
  private readonly maxReorder90k: number;
  /** The largest PTS since the start (or last discontinuity), ascending, at most MAX_REORDER_DEPTH + 1. */
  private readonly recent: number[] = [];
  private lastDts: number | undefined;
  private readonly counters = { depthRaises: 0, clampedFrames: 0, discontinuities: 0 };

  constructor(options: DtsGeneratorOptions = {}) {
    this.depth = Math.min(MAX_REORDER_DEPTH, Math.max(0, options.reorderDepth ?? 0));
    this.frameDuration90k = options.frameDuration90k ?? 3000;
    this.maxReorder90k = options.maxReorder90k ?? 90_000;
  }

  get stats(): DtsGeneratorStats {
    return { reorderDepth: this.depth, ...this.counters };
  }

  /** Raises the reorder depth to what this SPS NAL unit (header byte included) declares. */
  observeSps(sps: Uint8Array): void {
    const declared = parseH264Sps(sps)?.maxNumReorderFrames;
    if (declared !== undefined) this.depth = Math.max(this.depth, Math.min(MAX_REORDER_DEPTH, declared));
  }

  /**
   * The DTS for the next frame in decode order. Pass the access unit's NAL units so an SPS among
   * them (every keyframe has one after depacketizing) sets the reorder depth before it is used.
   */
  next(pts90k: number, nalus?: readonly Uint8Array[]): number {
    if (nalus) {
      for (const nalu of nalus) if ((nalu[0] & 0x1f) === H264NalType.sps) this.observeSps(nalu);
    }
    const recent = this.recent;
    if (recent.length > 0 && pts90k < recent[recent.length - 1] - this.maxReorder90k) this.restart();
    // How many of the recent frames present after this one.
    let later = 0;
    while (later < recent.length && recent[recent.length - 1 - later] > pts90k) later++;
    if (later > MAX_REORDER_DEPTH) {
      this.restart();
      later = 0;
    } else if (later > this.depth) {
      this.depth = later;
      this.counters.depthRaises++;
    }
    const at = recent.length - later;
    for (const neighbour of [recent[at - 1], recent[at]]) {
      const gap = neighbour === undefined ? 0 : Math.abs(pts90k - neighbour);
      if (gap > 0 && gap < this.frameDuration90k) this.frameDuration90k = gap;
    }
    recent.splice(at, 0, pts90k);
    if (recent.length > MAX_REORDER_DEPTH + 1) recent.shift();

    const n = this.depth;
    let dts =
      recent.length > n
        ? recent[recent.length - 1 - n]
        : recent[0] - (n + 1 - recent.length) * this.frameDuration90k;
    if (this.lastDts !== undefined && dts <= this.lastDts) dts = this.lastDts + 1;
    if (dts > pts90k) this.counters.clampedFrames++;
    this.lastDts = dts;
    return dts;
  }

  /** Forgets the timing (a new source); keeps the reorder depth. */
  reset(): void {
    this.recent.length = 0;
    this.lastDts = undefined;
  }

  private restart(): void {
    this.reset();
    this.counters.discontinuities++;
  }
}
