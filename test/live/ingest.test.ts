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
import { h264Frames } from '../helpers/webrtc-clients.ts';

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
    startSegment: () => {
      const s = new MemorySegment(segments.length);
      segments.push(s);
      return s;
    },
    requestKeyframe: () => counts.keyframeRequests++,
    onFrame: () => {},
    onError: (reason) => {
      throw new Error(reason);
    },
    logger: pino({ level: 'silent' }),
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
