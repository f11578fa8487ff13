// The segmenter: RTP in, MPEG-TS segments out, cut only at keyframes no sooner than the minimum.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Ingest } from '../../src/live/ingest.ts';
import { type DemuxedVideo, packetizeH264, TsDemuxer } from '../../src/media/index.ts';
import type { SegmentWriter } from '../../src/trickle/index.ts';
import {
  decodeGray,
  ffmpegTimestampWarnings,
  frameMd5s,
  makeBFrameTs,
  makeH264Clip,
} from '../helpers/media.ts';
import { h264Frames, type RtpFrame } from '../helpers/webrtc-clients.ts';

class MemorySegment implements SegmentWriter {
  readonly chunks: Uint8Array[] = [];
  ended = false;
  constructor(readonly seq: number) {}
  write(chunk: Uint8Array): boolean {
    this.chunks.push(chunk);
    return true;
  }
  waitForDrain(): Promise<void> {
    return Promise.resolve();
  }
  async end(): Promise<void> {
    this.ended = true;
  }
  abort(): void {}
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** An Ingest writing into memory segments; `keyframeRequests` counts its PLIs. */
function memoryIngest(minSegmentDurationMs = 1000) {
  const segments: MemorySegment[] = [];
  const counts = { keyframeRequests: 0 };
  const ingest = new Ingest({
    minSegmentDurationMs,
    requestKeyframe: () => counts.keyframeRequests++,
    onFrame: () => {},
    onError: (reason) => {
      throw new Error(reason);
    },
    logger: pino({ level: 'silent' }),
  });
  ingest.attach(() => {
    const s = new MemorySegment(segments.length);
    segments.push(s);
    return s;
  });
  return { ingest, segments, counts };
}

function feed(opts: { gopSeconds: number; minSegmentDurationMs: number; clip: Buffer }) {
  const { ingest, segments, counts } = memoryIngest(opts.minSegmentDurationMs);
  let seq = 1000;
  for (const frame of h264Frames(opts.clip, 30, 1200, 12345)) {
    for (const p of frame.payloads) ingest.pushVideo(p.payload, seq++ & 0xffff, frame.timestamp, p.marker);
  }
  ingest.close();
  return { segments, keyframeRequests: counts.keyframeRequests };
}

describe('ingest segmenter', () => {
  it('cuts on keyframes, never sooner than the minimum duration, and each segment decodes alone', async () => {
    // Keyframes every 0.5 s, minimum 1 s: every other keyframe starts a segment.
    const clip = await makeH264Clip({ seconds: 4, gopSeconds: 0.5 });
    const { segments } = feed({ clip, gopSeconds: 0.5, minSegmentDurationMs: 1000 });
    expect(segments.length).toBe(4);
    expect(segments.every((s) => s.ended)).toBe(true);
    for (const segment of segments) {
      const frames = await decodeGray(segment.bytes());
      expect(frames.length).toBe(30);
    }
  }, 30_000);

  it('streams a segment frame by frame: bytes are written before the segment ends', async () => {
    const clip = await makeH264Clip({ seconds: 1 });
    const { ingest, segments } = memoryIngest();
    const frames = h264Frames(clip, 30);
    let seq = 0;
    for (const p of frames[0].payloads) ingest.pushVideo(p.payload, seq++, frames[0].timestamp, p.marker);
    // The reorder buffer holds the very first packets briefly (≤ 100 ms) in case earlier ones overtook.
    await new Promise((r) => setTimeout(r, 150));
    expect(segments.length).toBe(1);
    expect(segments[0].chunks.length).toBeGreaterThan(0); // the keyframe is out already
    expect(segments[0].ended).toBe(false);
    ingest.close();
  });

  it('drops frames before the first keyframe and asks for one', async () => {
    const clip = await makeH264Clip({ seconds: 2 });
    const frames = h264Frames(clip, 30).slice(5); // starts mid-GOP
    const { ingest, segments, counts } = memoryIngest();
    let seq = 0;
    for (const f of frames)
      for (const p of f.payloads) ingest.pushVideo(p.payload, seq++, f.timestamp, p.marker);
    ingest.close();
    expect(counts.keyframeRequests).toBeGreaterThan(0);
    expect(segments.length).toBe(1); // only from the keyframe at 1 s on
    expect((await decodeGray(segments[0].bytes())).length).toBe(30);
  }, 30_000);

  it('B-frames: each segment has increasing DTS ≤ PTS, decodes cleanly, and in presentation order', async () => {
    // x264 main profile with 2 B-frames, a keyframe every second: decode order ≠ presentation order.
    const clip = await makeBFrameTs({ seconds: 3, gopSeconds: 1 });
    const source = videoFrames(clip);
    const sourceMd5s = await frameMd5s(clip);
    expect(sourceMd5s).toHaveLength(90);
    expect(source.some((f, i) => i > 0 && f.pts90k < source[i - 1].pts90k)).toBe(true);

    const { ingest, segments } = memoryIngest();
    // The RTP timestamp is the PTS (what a WebRTC sender puts there); it wraps 2^32 in the first GOP,
    // with B-frames stepping back across the wrap.
    const firstTs = 2 ** 32 - 12_000;
    let seq = 65_000;
    for (const frame of source) {
      const timestamp = (firstTs + frame.pts90k - source[0].pts90k) >>> 0;
      for (const p of packetizeH264(frame.annexB))
        ingest.pushVideo(p.payload, seq++ & 0xffff, timestamp, p.marker);
    }
    ingest.close();

    expect(segments).toHaveLength(3);
    const written: DemuxedVideo[] = [];
    for (const [i, segment] of segments.entries()) {
      const frames = videoFrames(segment.bytes());
      expect(frames).toHaveLength(30);
      expect(frames[0].keyframe).toBe(true);
      written.push(...frames);
      expect(await ffmpegTimestampWarnings(segment.bytes())).toBe('');
      expect(await frameMd5s(segment.bytes())).toEqual(sourceMd5s.slice(30 * i, 30 * (i + 1)));
    }
    // Same PTS as the source (shifted), DTS strictly increasing across segments and never after the PTS.
    const shift = written[0].pts90k - source[0].pts90k;
    expect(written.map((f) => f.pts90k - shift)).toEqual(source.map((f) => f.pts90k));
    for (const [i, f] of written.entries()) {
      expect(f.dts90k).toBeLessThanOrEqual(f.pts90k);
      if (i > 0) expect(f.dts90k).toBeGreaterThan(written[i - 1].dts90k);
    }
    expect(await frameMd5s(Buffer.concat(segments.map((s) => s.bytes())))).toEqual(sourceMd5s);
  }, 30_000);
});

function videoFrames(ts: Uint8Array): DemuxedVideo[] {
  const demuxer = new TsDemuxer();
  return [...demuxer.push(ts), ...demuxer.flush()].filter((f): f is DemuxedVideo => f.kind === 'video');
}

/** A segment whose connection backs up after `capacity` bytes until drain() is called. */
class SlowSegment extends MemorySegment {
  #buffered = 0;
  #waiters: (() => void)[] = [];
  constructor(
    seq: number,
    /** Bytes the connection takes before it backs up; a test may change it. */
    public capacity: number,
  ) {
    super(seq);
  }
  override write(chunk: Uint8Array): boolean {
    super.write(chunk);
    this.#buffered += chunk.length;
    return this.#buffered < this.capacity;
  }
  override waitForDrain(): Promise<void> {
    return this.#buffered < this.capacity ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }
  drain(): void {
    this.#buffered = 0;
    for (const w of this.#waiters.splice(0)) w();
  }
}

function pushFrames(ingest: Ingest, frames: RtpFrame[], seq: { n: number }): void {
  for (const f of frames)
    for (const p of f.payloads) ingest.pushVideo(p.payload, seq.n++ & 0xffff, f.timestamp, p.marker);
}

/** Waits out the reorder buffer's hold on the very first packets, then flushes pending promises. */
const settle = () => new Promise((r) => setTimeout(r, 150));

describe('ingest: bounded backlog and GOP replay', () => {
  it('drops frames to the next keyframe once a backed-up segment holds more than the bound, and counts them', async () => {
    const clip = await makeH264Clip({ seconds: 4, gopSeconds: 1 });
    const frames = h264Frames(clip, 30, 1200, 777);
    const segments: SlowSegment[] = [];
    let keyframeRequests = 0;
    const ingest = new Ingest({
      minSegmentDurationMs: 10_000, // one segment for the whole clip
      requestKeyframe: () => keyframeRequests++,
      onFrame: () => {},
      onError: (reason) => {
        throw new Error(reason);
      },
      limits: { maxBacklogBytes: 20_000 },
      logger: pino({ level: 'silent' }),
    });
    ingest.attach(() => {
      const s = new SlowSegment(segments.length, 10_000);
      segments.push(s);
      return s;
    });
    const seq = { n: 100 };
    pushFrames(ingest, frames.slice(0, 15), seq);
    await settle();
    expect(segments).toHaveLength(1);
    const dropped = ingest.stats().framesDroppedBackpressure;
    expect(dropped).toBeGreaterThan(0); // the uplink never drained: frames went over the bound
    await new Promise((r) => setTimeout(r, 300)); // keyframe requests are spaced ≥ 300 ms
    const before = keyframeRequests;
    segments[0].capacity = Number.POSITIVE_INFINITY; // the uplink recovers
    segments[0].drain();
    await settle();
    expect(keyframeRequests).toBe(before + 1); // drained: ask for a keyframe rather than wait a GOP
    pushFrames(ingest, frames.slice(15, 45), seq);
    ingest.close();
    const stats = ingest.stats();
    // Frames 15..29 were still dropped (no keyframe yet); the keyframe at 30 resumed the segment.
    expect(stats.framesDroppedBackpressure).toBe(dropped + 15);
    const written = videoFrames(segments[0].bytes());
    expect(written).toHaveLength(15 - dropped + 15);
    expect(written[0].keyframe).toBe(true);
    expect(written[15 - dropped].keyframe).toBe(true); // resumed exactly on a keyframe
    expect(written.filter((f) => f.keyframe)).toHaveLength(2);
  }, 30_000);

  it('gives a new job the current GOP at once, starting on its keyframe, then live frames', async () => {
    const clip = await makeH264Clip({ seconds: 2, gopSeconds: 1 });
    const frames = h264Frames(clip, 30, 1200, 5);
    const { ingest, segments, counts } = memoryIngest(1000);
    const seq = { n: 0 };
    pushFrames(ingest, frames.slice(0, 40), seq); // 30 is the current GOP's keyframe
    await settle();
    ingest.detach(); // the job failed
    expect(segments.map((s) => s.ended)).toEqual([true, true]);
    pushFrames(ingest, frames.slice(40, 45), seq); // frames while no job runs: kept, not sent
    await settle();
    expect(segments).toHaveLength(2);

    const next: MemorySegment[] = [];
    const requestsBefore = counts.keyframeRequests;
    expect(
      ingest.attach(() => {
        const s = new MemorySegment(100 + next.length);
        next.push(s);
        return s;
      }),
    ).toBe(true);
    expect(counts.keyframeRequests).toBe(requestsBefore); // nothing to wait for
    expect(next).toHaveLength(1);
    const replayed = videoFrames(next[0].bytes());
    expect(replayed).toHaveLength(15); // frames 30..44
    expect(replayed[0].keyframe).toBe(true);
    pushFrames(ingest, frames.slice(45, 50), seq);
    ingest.close();
    const all = videoFrames(next[0].bytes());
    expect(all).toHaveLength(20);
    // Same PTS as those frames had the first time, in order.
    const firstTime = videoFrames(segments[1].bytes());
    expect(all.slice(0, 10).map((f) => f.pts90k)).toEqual(firstTime.map((f) => f.pts90k));
    expect((await decodeGray(next[0].bytes())).length).toBe(20);
    expect(ingest.stats().gopReplays).toBe(1); // the first attach had nothing to replay
  }, 30_000);

  it('asks for a keyframe when a job attaches and there is no GOP to replay (none yet, or longer than the bounds)', async () => {
    const clip = await makeH264Clip({ seconds: 2, gopSeconds: 1 });
    const frames = h264Frames(clip, 30, 1200, 5);
    let requests = 0;
    const ingest = new Ingest({
      minSegmentDurationMs: 1000,
      requestKeyframe: () => requests++,
      onFrame: () => {},
      onError: () => {},
      limits: { maxGopFrames: 20 },
      logger: pino({ level: 'silent' }),
    });
    const segments: MemorySegment[] = [];
    const source = () => {
      const s = new MemorySegment(segments.length);
      segments.push(s);
      return s;
    };
    expect(ingest.attach(source)).toBe(false); // nothing received yet
    expect(requests).toBe(1);
    const seq = { n: 0 };
    pushFrames(ingest, frames.slice(0, 25), seq); // a 25-frame GOP: past maxGopFrames
    await settle();
    expect(ingest.stats().gop).toBeNull();
    expect(ingest.attach(source)).toBe(false);
    expect(requests).toBe(2);
    pushFrames(ingest, frames.slice(25, 35), seq);
    ingest.close();
    // The job's first segment starts on the next keyframe (30).
    expect(videoFrames(segments.at(-1)!.bytes())[0].keyframe).toBe(true);
    expect(ingest.stats().gopReplays).toBe(0);
  }, 30_000);
});
