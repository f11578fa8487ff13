import { describe, expect, it } from 'vitest';
import {
  type DemuxedAudio,
  type DemuxedFrame,
  type DemuxedVideo,
  PTS_WRAP,
  splitAnnexB,
  TsDemuxer,
  TsMuxer,
} from '../../src/media/index.ts';

const SPS = Uint8Array.of(0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5);
const PPS = Uint8Array.of(0x68, 0xce, 0x3c, 0x80);

function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = 1 + ((x >>> 16) % 255);
  }
  return out;
}

function frameAnnexB(keyframe: boolean, size: number, seed: number): Uint8Array {
  const nalus = keyframe
    ? [SPS, PPS, Uint8Array.of(0x65, ...bytes(size, seed))]
    : [Uint8Array.of(0x41, ...bytes(size, seed))];
  return Uint8Array.from(nalus.flatMap((n) => [0, 0, 0, 1, ...n]));
}

/** An Opus packet: TOC 0xfc (CELT 20 ms, stereo, one frame) and `size - 1` bytes of data. */
function opusPacket(size: number, seed: number): Uint8Array {
  return Uint8Array.of(0xfc, ...bytes(size - 1, seed));
}

interface Input {
  video: { annexB: Uint8Array; pts90k: number; keyframe: boolean }[];
  audio: { data: Uint8Array; pts90k: number }[];
}

function makeInput(firstPts = 0): Input {
  const video = Array.from({ length: 12 }, (_, i) => ({
    annexB: frameAnnexB(i % 6 === 0, i % 6 === 0 ? 5000 : 60 + i * 37, i),
    pts90k: firstPts + i * 3000,
    keyframe: i % 6 === 0,
  }));
  // Sizes around the 255-byte au_size steps and a multi-packet one.
  const sizes = [1, 100, 254, 255, 256, 510, 600, 1275, 3, 40];
  const audio = Array.from({ length: 20 }, (_, i) => ({
    data: opusPacket(Math.max(1, sizes[i % sizes.length]), 100 + i),
    pts90k: firstPts + i * 1800,
  }));
  return { video, audio };
}

function mux(input: Input, muxer = new TsMuxer({ video: true, audio: { channels: 2 } })): Uint8Array[] {
  const writes = [
    ...input.video.map((v) => ({ pts: v.pts90k, run: () => muxer.writeVideo(v) })),
    ...input.audio.map((a) => ({ pts: a.pts90k, run: () => muxer.writeAudio(a) })),
  ].sort((a, b) => a.pts - b.pts);
  return writes.map((w) => w.run());
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(chunks));
}

function demuxAll(demuxer: TsDemuxer, chunks: Iterable<Uint8Array>): DemuxedFrame[] {
  const frames: DemuxedFrame[] = [];
  for (const c of chunks) frames.push(...demuxer.push(c));
  frames.push(...demuxer.flush());
  return frames;
}

function withoutAud(annexB: Uint8Array): Uint8Array[] {
  return splitAnnexB(annexB).filter((n) => (n[0] & 0x1f) !== 9);
}

function checkMatches(frames: DemuxedFrame[], input: Input): void {
  const video = frames.filter((f): f is DemuxedVideo => f.kind === 'video');
  const audio = frames.filter((f): f is DemuxedAudio => f.kind === 'audio');
  expect(video).toHaveLength(input.video.length);
  video.forEach((v, i) => {
    expect(withoutAud(v.annexB)).toEqual(splitAnnexB(input.video[i].annexB));
    expect(v.annexB.subarray(0, 6)).toEqual(Uint8Array.of(0, 0, 0, 1, 9, 0xf0));
    expect(v.pts90k).toBe(input.video[i].pts90k);
    expect(v.dts90k).toBe(input.video[i].pts90k);
    expect(v.keyframe).toBe(input.video[i].keyframe);
  });
  expect(audio.map((a) => a.data)).toEqual(input.audio.map((a) => a.data));
  expect(audio.map((a) => a.pts90k)).toEqual(input.audio.map((a) => a.pts90k));
  expect(audio.every((a) => a.codec === 'opus')).toBe(true);
}

/** TS packets as {pid, pusi, adaptation flags} for structural checks. */
function packets(ts: Uint8Array) {
  const out = [];
  for (let i = 0; i < ts.length; i += 188) {
    const hasAdaptation = (ts[i + 3] & 0x20) !== 0 && ts[i + 4] > 0;
    out.push({
      sync: ts[i],
      pid: ((ts[i + 1] & 0x1f) << 8) | ts[i + 2],
      pusi: (ts[i + 1] & 0x40) !== 0,
      randomAccess: hasAdaptation && (ts[i + 5] & 0x40) !== 0,
      pcr: hasAdaptation && (ts[i + 5] & 0x10) !== 0,
    });
  }
  return out;
}

describe('TsMuxer', () => {
  it('writes whole packets; PAT+PMT first and before each keyframe; PCR and random access on keyframes', () => {
    const muxer = new TsMuxer({ video: true, audio: { channels: 2 } });
    const start = muxer.startSegment();
    const key = muxer.writeVideo({ annexB: frameAnnexB(true, 3000, 1), pts90k: 0, keyframe: true });
    const audio = muxer.writeAudio({ data: opusPacket(300, 1), pts90k: 0 });
    const delta = muxer.writeVideo({ annexB: frameAnnexB(false, 200, 2), pts90k: 3000, keyframe: false });
    const key2 = muxer.writeVideo({ annexB: frameAnnexB(true, 3000, 3), pts90k: 6000, keyframe: true });
    for (const chunk of [start, key, audio, delta, key2]) {
      expect(chunk.length % 188).toBe(0);
      expect(packets(chunk).every((p) => p.sync === 0x47)).toBe(true);
    }
    expect(packets(start).map((p) => p.pid)).toEqual([0, 0x1000]);
    // Right after startSegment() a keyframe does not repeat the tables.
    expect(packets(key)[0]).toMatchObject({ pid: 0x100, pusi: true, randomAccess: true, pcr: true });
    expect(packets(audio)[0]).toMatchObject({ pid: 0x101, pusi: true, pcr: false });
    expect(packets(delta)[0]).toMatchObject({ pid: 0x100, randomAccess: false, pcr: true });
    expect(
      packets(key2)
        .slice(0, 3)
        .map((p) => p.pid),
    ).toEqual([0, 0x1000, 0x100]);
    expect(packets(key2)[2]).toMatchObject({ randomAccess: true, pcr: true });
  });

  it('writes the Opus registration and DVB extension descriptors in the PMT', () => {
    const pmt = new TsMuxer({ video: false, audio: { channels: 1 } }).startSegment().subarray(188);
    const descriptor = [0x05, 4, ...Buffer.from('Opus'), 0x7f, 2, 0x80, 1];
    expect(Buffer.from(pmt).indexOf(Buffer.from(descriptor))).toBeGreaterThan(0);
  });

  it('rejects what it cannot write', () => {
    expect(() => new TsMuxer({ video: false })).toThrow(RangeError);
    expect(() => new TsMuxer({ video: true, audio: { channels: 9 } })).toThrow(RangeError);
    const videoOnly = new TsMuxer({ video: true });
    expect(() => videoOnly.writeAudio({ data: opusPacket(10, 1), pts90k: 0 })).toThrow();
    const audioOnly = new TsMuxer({ video: false, audio: { channels: 2 } });
    expect(() => audioOnly.writeAudio({ data: new Uint8Array(0), pts90k: 0 })).toThrow(RangeError);
    expect(() =>
      audioOnly.writeVideo({ annexB: frameAnnexB(true, 10, 1), pts90k: 0, keyframe: true }),
    ).toThrow();
  });

  it('writes a DTS only when it differs from the PTS', () => {
    const muxer = new TsMuxer({ video: true });
    const ts = muxer.writeVideo({
      annexB: frameAnnexB(true, 100, 1),
      pts90k: 6000,
      dts90k: 3000,
      keyframe: true,
    });
    const [frame] = demuxAll(new TsDemuxer(), [ts]) as DemuxedVideo[];
    expect([frame.pts90k, frame.dts90k]).toEqual([6000, 3000]);
  });
});

describe('TsDemuxer', () => {
  it('reads back what the muxer wrote', () => {
    const input = makeInput();
    checkMatches(demuxAll(new TsDemuxer(), mux(input)), input);
  });

  it('gives the same result whatever the chunking', () => {
    const input = makeInput();
    const ts = concat(mux(input));
    const byteByByte = demuxAll(
      new TsDemuxer(),
      Array.from({ length: ts.length }, (_, i) => ts.subarray(i, i + 1)),
    );
    checkMatches(byteByByte, input);
    const odd = [];
    for (let i = 0; i < ts.length; i += 777) odd.push(ts.subarray(i, i + 777));
    checkMatches(demuxAll(new TsDemuxer(), odd), input);
  });

  it('unwraps PTS across 2^33', () => {
    const input = makeInput(PTS_WRAP - 10_000);
    const frames = demuxAll(new TsDemuxer(), mux(input));
    checkMatches(frames, input);
    expect(Math.max(...frames.map((f) => f.pts90k))).toBeGreaterThan(PTS_WRAP);
  });

  it('resynchronises after garbage and counts it', () => {
    const input = makeInput();
    const chunks = mux(input);
    const garbage = Uint8Array.from(bytes(500, 42), (b) => (b === 0x47 ? 0x48 : b));
    const withGarbage = [garbage, ...chunks.slice(0, 5), garbage.subarray(0, 77), ...chunks.slice(5)];
    const demuxer = new TsDemuxer();
    checkMatches(demuxAll(demuxer, withGarbage), input);
    expect(demuxer.stats.syncLosses).toBe(2);
    expect(demuxer.stats.skippedBytes).toBe(577);
  });

  it('drops a PES that lost a packet (continuity counter) and keeps the rest', () => {
    const input = makeInput();
    const ts = concat(mux(input));
    // Remove the second packet of the first keyframe's PES (after PAT and PMT).
    const damaged = concat([ts.subarray(0, 3 * 188), ts.subarray(4 * 188)]);
    const demuxer = new TsDemuxer();
    const video = demuxAll(demuxer, [damaged]).filter((f) => f.kind === 'video');
    expect(video).toHaveLength(input.video.length - 1);
    expect(demuxer.stats).toMatchObject({ continuityErrors: 1, droppedPes: 1 });
  });

  it('survives pure garbage and a PMT with a bad CRC', () => {
    const demuxer = new TsDemuxer();
    expect(demuxAll(demuxer, [bytes(10_000, 3)])).toEqual([]);
    const start = new TsMuxer({ video: true }).startSegment();
    start[188 + 20] ^= 0xff; // inside the PMT section
    const frames = demuxAll(demuxer, [
      start,
      new TsMuxer({ video: true }).writeVideo({
        annexB: frameAnnexB(true, 100, 1),
        pts90k: 0,
        keyframe: true,
      }),
    ]);
    expect(demuxer.stats.psiErrors).toBeGreaterThanOrEqual(1);
    // The second muxer's own tables made the stream readable again.
    expect(frames.filter((f) => f.kind === 'video')).toHaveLength(1);
  });

  it('reads PIDs from the PMT instead of assuming them', () => {
    const input = makeInput();
    const muxer = new TsMuxer({
      video: true,
      audio: { channels: 2 },
      pmtPid: 0x20,
      videoPid: 0x31,
      audioPid: 0x44,
    });
    const frames = demuxAll(new TsDemuxer(), mux(input, muxer));
    checkMatches(frames, input);
    expect(new Set(frames.map((f) => f.pid))).toEqual(new Set([0x31, 0x44]));
  });
});
