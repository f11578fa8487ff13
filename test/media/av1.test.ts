import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Av1Depacketizer,
  IvfReader,
  ivfFileHeader,
  ivfFrameHeader,
  readLeb128,
  splitAv1Payload,
  type VpxFrame,
  withObuSize,
  writeLeb128,
} from '../../src/media/index.ts';
import { packetizeAv1, splitSizedObus } from '../helpers/av1-rtp.ts';

const run = promisify(execFile);

/** An AV1 clip from ffmpeg (libaom, realtime), as IVF frames: 320x240, keyframe every 10 frames. */
async function av1Clip(frames = 30) {
  const { stdout } = await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
      ...['-frames:v', String(frames), '-c:v', 'libaom-av1', '-cpu-used', '8', '-usage', 'realtime'],
      ...['-g', '10', '-f', 'ivf', 'pipe:1'],
    ],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  const reader = new IvfReader();
  const out = reader.push(stdout);
  expect(reader.header?.fourcc).toBe('AV01');
  return out.map((f) => f.data);
}

function collect(opts: { maxFrameBytes?: number } = {}) {
  const frames: VpxFrame[] = [];
  let dropped = 0;
  const d = new Av1Depacketizer({ onFrame: (f) => frames.push(f), onFrameDropped: () => dropped++, ...opts });
  let seq = 65530; // wraps
  return {
    frames,
    dropped: () => dropped,
    d,
    push(payload: Uint8Array, ts: number, marker: boolean, skip = false) {
      const s = seq;
      seq = (seq + 1) & 0xffff;
      if (!skip) d.push(payload, s, ts, marker);
    },
  };
}

/** An OBU as RTP carries it: header byte without size field, then payload. */
const obu = (type: number, payload: number[]) => Uint8Array.of(type << 3, ...payload);
const sized = (type: number, payload: number[]) => Uint8Array.of((type << 3) | 2, payload.length, ...payload);
const TD = [0x12, 0x00];

describe('LEB128 and OBU sizes', () => {
  it('round-trips lengths and refuses truncated or over-long ones', () => {
    for (const v of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31]) {
      const b = writeLeb128(v);
      expect(readLeb128(b, 0)).toEqual({ value: v, bytes: b.length });
    }
    expect(readLeb128(Uint8Array.of(0x80), 0)).toBeUndefined();
    expect(readLeb128(new Uint8Array(9).fill(0x80), 0)).toBeUndefined();
  });

  it('adds obu_has_size_field, keeps an extension byte, re-sizes an already sized OBU, refuses broken headers', () => {
    expect(Buffer.from(withObuSize(obu(6, [1, 2, 3]))?.data ?? [])).toEqual(Buffer.from([0x32, 3, 1, 2, 3]));
    expect(Buffer.from(withObuSize(Uint8Array.of(0x34, 0x28, 9))?.data ?? [])).toEqual(
      Buffer.from([0x36, 0x28, 1, 9]),
    );
    // Sized, with trailing bytes past its size: only the sized bytes are kept.
    expect(Buffer.from(withObuSize(Uint8Array.of(0x32, 1, 7, 8))?.data ?? [])).toEqual(
      Buffer.from([0x32, 1, 7]),
    );
    expect(withObuSize(Uint8Array.of(0x32, 5, 7))).toBeUndefined();
    expect(withObuSize(Uint8Array.of(0xb0, 1))).toBeUndefined(); // forbidden bit
    expect(withObuSize(Uint8Array.of(0x34))).toBeUndefined(); // extension byte missing
    expect(withObuSize(new Uint8Array(0))).toBeUndefined();
  });

  it('splits payloads with W=0 and W≠0 and refuses lengths past the end', () => {
    const w0 = splitAv1Payload(Uint8Array.of(0x00, 2, 0x30, 1, 1, 0x30));
    expect(w0?.elements.map((e) => [...e])).toEqual([[0x30, 1], [0x30]]);
    const w2 = splitAv1Payload(Uint8Array.of(0x20, 2, 0x30, 1, 0x30, 5, 6));
    expect(w2?.elements.map((e) => [...e])).toEqual([
      [0x30, 1],
      [0x30, 5, 6],
    ]);
    expect(splitAv1Payload(Uint8Array.of(0x00, 5, 0x30))).toBeUndefined();
    expect(splitAv1Payload(Uint8Array.of(0x30, 1, 0x30))).toBeUndefined(); // W=3 but 2 elements
    expect(splitAv1Payload(new Uint8Array(0))).toBeUndefined();
  });
});

describe('Av1Depacketizer', () => {
  it('aggregated OBUs (W=0, then W=1) make one temporal unit with a delimiter and sized OBUs; TD and tile lists dropped', () => {
    const c = collect();
    const seqHdr = obu(1, [0xaa]);
    const frame = obu(6, [1, 2, 3]);
    // W=0, N=1: a temporal delimiter, a sequence header, a tile list and a frame, all length-prefixed.
    c.push(Uint8Array.of(0x08, 2, ...obu(2, [0]), 2, ...seqHdr, 2, ...obu(8, [0]), 4, ...frame), 1000, true);
    expect(c.frames).toHaveLength(1);
    expect([...c.frames[0].data]).toEqual([...TD, ...sized(1, [0xaa]), ...sized(6, [1, 2, 3])]);
    expect(c.frames[0]).toMatchObject({ codec: 'av1', keyframe: true, rtpTimestamp: 1000 });
    // An inter frame with W=1 (no length at all).
    c.push(Uint8Array.of(0x10, ...obu(6, [4])), 4000, true);
    expect(c.frames).toHaveLength(2);
    expect([...c.frames[1].data]).toEqual([...TD, ...sized(6, [4])]);
    expect(c.frames[1].keyframe).toBe(false);
  });

  it('reassembles an OBU fragmented over three packets (Z/Y), W≠0 and W=0 mixed', () => {
    const c = collect();
    const body = Array.from({ length: 20 }, (_, i) => i);
    const whole = obu(6, body);
    // packet 1: seq header (length-prefixed) + start of the frame OBU (last, no length), Y=1, W=2.
    c.push(Uint8Array.of(0x60, 2, ...obu(1, [0xaa]), ...whole.subarray(0, 8)), 9000, false);
    // packet 2: middle, Z=1 Y=1, W=0 (length-prefixed).
    c.push(Uint8Array.of(0xc0, 6, ...whole.subarray(8, 14)), 9000, false);
    // packet 3: end, Z=1, W=1.
    c.push(Uint8Array.of(0x90, ...whole.subarray(14)), 9000, true);
    expect(c.frames).toHaveLength(1);
    expect([...c.frames[0].data]).toEqual([...TD, ...sized(1, [0xaa]), ...sized(6, body)]);
    expect(c.frames[0].keyframe).toBe(true); // sequence header without the N bit
    expect(c.dropped()).toBe(0);
  });

  it('drops inter frames before the first keyframe without counting a loss', () => {
    const c = collect();
    c.push(Uint8Array.of(0x10, ...obu(6, [1])), 0, true);
    expect(c.frames).toHaveLength(0);
    expect(c.dropped()).toBe(0);
    expect(c.d.framesDropped).toBe(1);
  });

  it('a lost packet drops its unit and every unit to the next keyframe, and asks for one', () => {
    const c = collect();
    const key = (ts: number) => c.push(Uint8Array.of(0x18, ...obu(1, [0xaa])), ts, true);
    key(0);
    c.push(Uint8Array.of(0x50, ...obu(6, [1, 2])), 3000, false);
    c.push(Uint8Array.of(0xd0, 3), 3000, false, true); // lost
    c.push(Uint8Array.of(0x90, 4), 3000, true);
    c.push(Uint8Array.of(0x10, ...obu(6, [5])), 6000, true); // whole, but depends on the lost one
    expect(c.frames.map((f) => f.rtpTimestamp)).toEqual([0]);
    expect(c.dropped()).toBe(1);
    key(9000);
    c.push(Uint8Array.of(0x10, ...obu(6, [6])), 12000, true);
    expect(c.frames.map((f) => f.rtpTimestamp)).toEqual([0, 9000, 12000]);
  });

  it('a lost marker packet: the next timestamp still starts a unit, the broken one is dropped', () => {
    const c = collect();
    c.push(Uint8Array.of(0x58, ...obu(1, [0xaa])), 0, false);
    c.push(Uint8Array.of(0x90, 1), 0, true, true); // lost: ends the fragment
    c.push(Uint8Array.of(0x18, ...obu(1, [0xbb])), 3000, true);
    expect(c.frames.map((f) => f.rtpTimestamp)).toEqual([3000]);
    expect(c.dropped()).toBe(1);
  });

  it('broken payloads lose the unit: a continuation with no start, an unfinished fragment, a bad length, a bad OBU', () => {
    for (const bad of [
      [Uint8Array.of(0x90, 1)], // Z=1 with nothing before
      [Uint8Array.of(0x40 | 0x10, ...obu(1, [1]))], // Y=1 on the marker packet
      [Uint8Array.of(0x00, 9, 0x08)], // length past the end
      [Uint8Array.of(0x10, 0x80)], // forbidden bit
      [Uint8Array.of(0x50, ...obu(1, [1])), Uint8Array.of(0x10, ...obu(6, [1]))], // fragment never continued
    ]) {
      const c = collect();
      bad.forEach((p, i) => {
        c.push(p, 0, i === bad.length - 1);
      });
      expect(c.frames).toHaveLength(0);
      expect(c.dropped()).toBe(1);
      // The next keyframe is taken.
      c.push(Uint8Array.of(0x18, ...obu(1, [0xaa])), 3000, true);
      expect(c.frames).toHaveLength(1);
    }
  });

  it('drops a unit over maxFrameBytes', () => {
    const c = collect({ maxFrameBytes: 10 });
    c.push(Uint8Array.of(0x18, ...obu(1, new Array(20).fill(1))), 0, true);
    expect(c.frames).toHaveLength(0);
    expect(c.dropped()).toBe(1);
  });

  describe('with a real libaom clip', () => {
    let tus: Uint8Array[] = [];
    beforeAll(async () => {
      tus = await av1Clip();
    }, 60_000);

    for (const [label, max, counted] of [
      ['W≠0, fragments', 300, true],
      ['W=0, fragments', 200, false],
      ['W≠0, one packet per unit', 60_000, true],
    ] as const) {
      it(`round trip (${label}): every unit back as written, keyframes every 10, ffmpeg decodes all`, async () => {
        const c = collect();
        let fragmented = 0;
        tus.forEach((tu, i) => {
          const packets = packetizeAv1(tu, max, counted);
          fragmented += packets.filter((p) => p.payload[0] & 0x40).length;
          for (const p of packets) c.push(p.payload, i * 3000, p.marker);
        });
        if (max < 1000) expect(fragmented).toBeGreaterThan(0);
        expect(c.dropped()).toBe(0);
        expect(c.frames).toHaveLength(tus.length);
        expect(c.frames.filter((f) => f.keyframe).map((f) => f.rtpTimestamp / 3000)).toEqual([0, 10, 20]);
        // Same OBUs as the encoder wrote (types and bytes), the delimiter in front.
        c.frames.forEach((f, i) => {
          expect(splitSizedObus(f.data)).toEqual(splitSizedObus(tus[i]).filter((o) => o.type !== 15));
        });
        const ivf = Buffer.concat([
          ivfFileHeader({ fourcc: 'AV01', width: 320, height: 240, timebaseDen: 90000, timebaseNum: 1 }),
          ...c.frames.flatMap((f) => [ivfFrameHeader(f.data.length, f.rtpTimestamp), f.data]),
        ]);
        const decoded = await new Promise<string>((resolve, reject) => {
          const child = execFile(
            'ffmpeg',
            ['-hide_banner', '-loglevel', 'error', '-f', 'ivf', '-i', 'pipe:0', '-f', 'framemd5', '-'],
            (err, stdout) => (err ? reject(err) : resolve(stdout)),
          );
          child.stdin?.end(ivf);
        });
        expect(decoded.split('\n').filter((l) => /^0,/.test(l))).toHaveLength(tus.length);
      }, 60_000);
    }
  });
});
