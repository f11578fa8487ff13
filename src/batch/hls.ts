// Transcoded renditions kept for playback as HLS, laid out as go-livepeer serves them:
// /stream/{manifestId}.m3u8 (master), /stream/{manifestId}/{rendition}.m3u8 (media playlist),
// /stream/{manifestId}/{rendition}/{seq}.ts. Each rendition keeps a sliding window of its newest
// segments; a stream nobody pushes to for idleTimeoutMs is dropped, and at most maxStreams are kept.
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
}

interface HlsRendition {
  profile: TranscodeProfile;
  segments: HlsSegment[];
  /** Segments dropped from the front so far: the playlist's EXT-X-MEDIA-SEQUENCE. */
  dropped: number;
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
    renditions: { profile: TranscodeProfile; data: Buffer }[],
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
        rendition = { profile: r.profile, segments: [], dropped: 0 };
        stream.renditions.set(r.profile.name, rendition);
        stream.order.push(r.profile.name);
      }
      insert(rendition, { seq, durationMs, data: r.data }, this.opts.windowSegments);
    }
  }

  has(manifestId: string): boolean {
    return this.streams.has(manifestId);
  }

  /** The master playlist: one variant per rendition, with its bandwidth and resolution. */
  master(manifestId: string): string | undefined {
    const stream = this.streams.get(manifestId);
    if (!stream || stream.order.length === 0) return undefined;
    const lines = ['#EXTM3U', '#EXT-X-VERSION:3'];
    for (const name of stream.order) {
      const p = stream.renditions.get(name)!.profile;
      const rate = p.fps > 0 ? `,FRAME-RATE=${(p.fps / (p.fpsDen || 1)).toFixed(3)}` : '';
      lines.push(
        `#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=${p.bitrate},RESOLUTION=${p.width}x${p.height}${rate}`,
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
    let previous: bigint | undefined;
    for (const s of r.segments) {
      // A gap in sequence numbers is a gap in time: tell the player not to expect continuity.
      if (previous !== undefined && s.seq !== previous + 1n) lines.push('#EXT-X-DISCONTINUITY');
      lines.push(
        `#EXTINF:${(s.durationMs / 1000).toFixed(3)},`,
        `${encodeURIComponent(rendition)}/${s.seq}.ts`,
      );
      previous = s.seq;
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

/** In seq order; a repeated seq replaces the old one; one older than the window is dropped. */
function insert(r: HlsRendition, seg: HlsSegment, window: number): void {
  const i = r.segments.findIndex((s) => s.seq >= seg.seq);
  if (i >= 0 && r.segments[i]!.seq === seg.seq) {
    r.segments[i] = seg;
    return;
  }
  if (i === 0 && r.segments.length >= window) return;
  if (i < 0) r.segments.push(seg);
  else r.segments.splice(i, 0, seg);
  while (r.segments.length > window) {
    r.segments.shift();
    r.dropped++;
  }
}
