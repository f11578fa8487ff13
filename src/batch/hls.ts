// Transcoded renditions kept for playback as HLS, laid out as go-livepeer serves them:
// /stream/{manifestId}.m3u8 (master), /stream/{manifestId}/{rendition}.m3u8 (media playlist),
// /stream/{manifestId}/{rendition}/{seq}.ts. Each rendition keeps a sliding window of its newest
// segments; a stream nobody pushes to for idleTimeoutMs is dropped, and at most maxStreams are kept.
//
// A live playlist may only grow at its end and lose segments from its front (RFC 8216 6.2.1):
// a URL listed at media sequence number N keeps N on every reload. So a segment is listed only
// when its seq is above every seq listed so far; one pushed late (after a higher seq) is still
// transcoded and answered, but not added to the playlist. A repeated seq replaces the listed
// segment's data at the same place. EXT-X-MEDIA-SEQUENCE counts the segments that left the
// window, and EXT-X-DISCONTINUITY-SEQUENCE the discontinuities (seq gaps) that left with them.
import type { TranscodeProfile } from './profiles.ts';

export interface HlsOptions {
  /** Segments listed (and kept) per rendition. */
  windowSegments: number;
  /** A stream with no push for this long is removed. */
  idleTimeoutMs: number;
  /** Streams kept at once; the one pushed to least recently goes first. */
  maxStreams: number;
  now?: () => number;
  /** Told when a stream is dropped (idle or evicted). */
  onExpire?: (manifestId: string) => void;
}

interface HlsSegment {
  seq: bigint;
  durationMs: number;
  data: Buffer;
  /** Its seq is not the previous listed one's + 1: fixed when it is listed. */
  discontinuity?: boolean;
}

interface HlsRendition {
  profile: TranscodeProfile;
  /** The encoded size, from the newest segment. */
  width: number;
  height: number;
  segments: HlsSegment[];
  /** Segments dropped from the front so far: the playlist's EXT-X-MEDIA-SEQUENCE. */
  dropped: number;
  /** Discontinuities dropped from the front so far: EXT-X-DISCONTINUITY-SEQUENCE. */
  droppedDiscontinuities: number;
  /** The highest seq ever listed; a lower new one is too late for the playlist. */
  lastSeq?: bigint;
}

interface HlsStream {
  renditions: Map<string, HlsRendition>;
  /** Rendition names in profile order, for the master playlist. */
  order: string[];
  pushedAt: number;
}

export class HlsStreams {
  private readonly streams = new Map<string, HlsStream>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly opts: HlsOptions) {
    if (opts.windowSegments < 1) throw new RangeError('windowSegments must be at least 1');
    this.now = opts.now ?? Date.now;
    this.timer = setInterval(() => this.sweep(), Math.max(1000, Math.min(10_000, opts.idleTimeoutMs / 4)));
    this.timer.unref();
  }

  /** Adds one pushed segment's MPEG-TS renditions (others, such as MP4, are not HLS-playable here). */
  add(
    manifestId: string,
    seq: bigint,
    durationMs: number,
    renditions: { profile: TranscodeProfile; data: Buffer; width?: number; height?: number }[],
  ): void {
    let stream = this.streams.get(manifestId);
    if (!stream) {
      stream = { renditions: new Map(), order: [], pushedAt: this.now() };
      this.streams.set(manifestId, stream);
      this.evict();
    }
    // Map order = recency: re-insert on every push.
    this.streams.delete(manifestId);
    this.streams.set(manifestId, stream);
    stream.pushedAt = this.now();
    for (const r of renditions) {
      if (r.profile.format !== 'mpegts') continue;
      let rendition = stream.renditions.get(r.profile.name);
      if (!rendition) {
        rendition = {
          profile: r.profile,
          width: r.profile.width,
          height: r.profile.height,
          segments: [],
          dropped: 0,
          droppedDiscontinuities: 0,
        };
        stream.renditions.set(r.profile.name, rendition);
        stream.order.push(r.profile.name);
      }
      if (
        insert(rendition, { seq, durationMs, data: r.data }, this.opts.windowSegments) &&
        r.width &&
        r.height
      ) {
        rendition.width = r.width;
        rendition.height = r.height;
      }
    }
  }

  has(manifestId: string): boolean {
    return this.streams.has(manifestId);
  }

  /** The master playlist: one variant per rendition, with its bandwidth and encoded resolution. */
  master(manifestId: string): string | undefined {
    const stream = this.streams.get(manifestId);
    if (!stream || stream.order.length === 0) return undefined;
    const lines = ['#EXTM3U', '#EXT-X-VERSION:3'];
    for (const name of stream.order) {
      const r = stream.renditions.get(name)!;
      const p = r.profile;
      const rate = p.fps > 0 ? `,FRAME-RATE=${(p.fps / (p.fpsDen || 1)).toFixed(3)}` : '';
      lines.push(
        `#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=${p.bitrate},RESOLUTION=${r.width}x${r.height}${rate}`,
      );
      lines.push(`${encodeURIComponent(manifestId)}/${encodeURIComponent(name)}.m3u8`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** A rendition's live media playlist (no ENDLIST: more segments may come). */
  media(manifestId: string, rendition: string): string | undefined {
    const r = this.streams.get(manifestId)?.renditions.get(rendition);
    if (!r) return undefined;
    const target = Math.max(1, ...r.segments.map((s) => Math.ceil(s.durationMs / 1000)));
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${target}`,
      `#EXT-X-MEDIA-SEQUENCE:${r.dropped}`,
    ];
    if (r.droppedDiscontinuities) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${r.droppedDiscontinuities}`);
    for (const [i, s] of r.segments.entries()) {
      // A gap in sequence numbers is a gap in time: tell the player not to expect continuity.
      if (i > 0 && s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
      lines.push(
        `#EXTINF:${(s.durationMs / 1000).toFixed(3)},`,
        `${encodeURIComponent(rendition)}/${s.seq}.ts`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  segment(manifestId: string, rendition: string, seq: bigint): Buffer | undefined {
    return this.streams
      .get(manifestId)
      ?.renditions.get(rendition)
      ?.segments.find((s) => s.seq === seq)?.data;
  }

  remove(manifestId: string): void {
    if (this.streams.delete(manifestId)) this.opts.onExpire?.(manifestId);
  }

  get size(): number {
    return this.streams.size;
  }

  close(): void {
    clearInterval(this.timer);
    this.streams.clear();
  }

  /** Drops streams idle for idleTimeoutMs. */
  sweep(): void {
    const cutoff = this.now() - this.opts.idleTimeoutMs;
    for (const [id, s] of this.streams) if (s.pushedAt <= cutoff) this.remove(id);
  }

  private evict(): void {
    while (this.streams.size > this.opts.maxStreams) this.remove(this.streams.keys().next().value as string);
  }
}

/**
 * Appends a segment whose seq is above every one listed so far, or replaces a listed one with
 * the same seq; a late one (below the newest, not listed) is left out. True when it is listed.
 */
function insert(r: HlsRendition, seg: HlsSegment, window: number): boolean {
  const same = r.segments.findIndex((s) => s.seq === seg.seq);
  if (same >= 0) {
    r.segments[same] = { ...seg, discontinuity: r.segments[same]!.discontinuity };
    return true;
  }
  if (r.lastSeq !== undefined && seg.seq <= r.lastSeq) return false;
  const discontinuity = r.lastSeq !== undefined && seg.seq !== r.lastSeq + 1n;
  r.segments.push({ ...seg, discontinuity });
  r.lastSeq = seg.seq;
  while (r.segments.length > window) {
    r.segments.shift();
    r.dropped++;
    // The new front's discontinuity is no longer written; the count carries it.
    if (r.segments[0]?.discontinuity) {
      r.segments[0].discontinuity = false;
      r.droppedDiscontinuities++;
    }
  }
  return true;
}
