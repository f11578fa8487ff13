import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  IvfParseError,
  IvfReader,
  ivfFileHeader,
  ivfFrameHeader,
  packetizeVp8,
  parseVp8Descriptor,
  parseVp9Descriptor,
  VpxDepacketizer,
  type VpxFrame,
  vp9IsKeyframe,
} from '../../src/media/index.ts';

const run = promisify(execFile);

/** A VP8 clip from ffmpeg (libvpx), as IVF bytes: 320x240, keyframe every 10 frames. */
async function vpxClip(codec: 'libvpx' | 'libvpx-vp9', frames = 30): Promise<Buffer> {
  const { stdout } = await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
      ...['-frames:v', String(frames), '-c:v', codec, '-deadline', 'realtime', '-cpu-used', '8', '-g', '10'],
      ...['-f', 'ivf', 'pipe:1'],
    ],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

function readIvf(bytes: Buffer, chunk = 777) {
  const reader = new IvfReader();
  const frames = [];
  for (let i = 0; i < bytes.length; i += chunk) frames.push(...reader.push(bytes.subarray(i, i + chunk)));
  return { header: reader.header, frames };
}

describe('IVF', () => {
  it('reads ffmpeg output split at any byte, and reads back what ivfFileHeader/ivfFrameHeader write', async () => {
    const { header, frames } = readIvf(await vpxClip('libvpx'));
    expect(header).toMatchObject({ fourcc: 'VP80', width: 320, height: 240 });
    expect(frames).toHaveLength(30);
    const written = Buffer.concat([
      ivfFileHeader({ fourcc: 'VP80', width: 320, height: 240, timebaseDen: 90000, timebaseNum: 1 }),
      ...frames.flatMap((f, i) => [ivfFrameHeader(f.data.length, i * 3000), f.data]),
    ]);
    const again = readIvf(written, 5);
    expect(again.header).toMatchObject({ fourcc: 'VP80', timebaseDen: 90000 });
    expect(again.frames.map((f) => f.pts)).toEqual(frames.map((_, i) => i * 3000));
    expect(Buffer.compare(again.frames[7].data, frames[7].data)).toBe(0);
  });

  it('refuses bytes that are not IVF and frames over the limit', () => {
    expect(() => new IvfReader().push(Buffer.alloc(40))).toThrow(IvfParseError);
    const header = ivfFileHeader({ fourcc: 'VP80', width: 1, height: 1, timebaseDen: 1, timebaseNum: 1 });
    expect(() => new IvfReader(100).push(Buffer.concat([header, ivfFrameHeader(101, 0)]))).toThrow(
      /over the limit/,
    );
  });
});

describe('VP8 RTP', () => {
  it('packetizes and depacketizes every frame of a real clip unchanged, keyframes and size known', async () => {
    const { frames } = readIvf(await vpxClip('libvpx'));
    const out: VpxFrame[] = [];
    const depacketizer = new VpxDepacketizer({ codec: 'vp8', onFrame: (f) => out.push(f) });
    let seq = 65530; // crosses the 16-bit wrap
    frames.forEach((f, i) => {
      for (const p of packetizeVp8(f.data, i, 300)) {
        expect(p.payload.length).toBeLessThanOrEqual(300);
        depacketizer.push(p.payload, seq++ & 0xffff, i * 3000, p.marker);
      }
    });
    expect(out).toHaveLength(frames.length);
    expect(out.map((f) => Buffer.from(f.data).toString('hex'))).toEqual(
      frames.map((f) => Buffer.from(f.data).toString('hex')),
    );
    expect(out.filter((f) => f.keyframe).length).toBe(3);
    expect(out[0]).toMatchObject({ keyframe: true, width: 320, height: 240 });
  });

  it('drops the frame a sequence gap falls in and waits for the next keyframe', async () => {
    const { frames } = readIvf(await vpxClip('libvpx'));
    const out: VpxFrame[] = [];
    let dropped = 0;
    const depacketizer = new VpxDepacketizer({
      codec: 'vp8',
      onFrame: (f) => out.push(f),
      onFrameDropped: () => dropped++,
    });
    const packets = frames.map((f, i) => packetizeVp8(f.data, i, 300));
    // VP8's frame tag: bit 0 clear on a keyframe (RFC 6386 §9.1).
    const isKey = (i: number) => (frames[i]!.data[0]! & 1) === 0;
    // The first inter frame from 3 on that spans two packets or more (frame sizes vary with the
    // encoder's speed on a loaded machine): its second packet is lost.
    const lost = packets.findIndex((ps, i) => i >= 3 && ps.length >= 2 && !isKey(i));
    expect(lost).toBeGreaterThan(0);
    const nextKey = frames.findIndex((_, i) => i > lost && isKey(i));
    expect(nextKey).toBeGreaterThan(lost);
    let seq = 0;
    packets.forEach((ps, i) => {
      ps.forEach((p, j) => {
        const s = seq++;
        if (i === lost && j === 1) return;
        depacketizer.push(p.payload, s, i * 3000, p.marker);
      });
    });
    expect(dropped).toBeGreaterThan(0);
    // The frames before the loss, then nothing until the next keyframe.
    expect(out.map((f) => f.rtpTimestamp / 3000)).toEqual([
      ...Array.from({ length: lost }, (_, i) => i),
      ...Array.from({ length: frames.length - nextKey }, (_, i) => nextKey + i),
    ]);
  });

  it('parses descriptors with 7- and 15-bit picture ids, TL0PICIDX and KEYIDX; rejects truncated ones', () => {
    expect(parseVp8Descriptor(Uint8Array.of(0x10, 0xaa))).toMatchObject({ size: 1, begin: true });
    expect(parseVp8Descriptor(Uint8Array.of(0x90, 0x80, 0x05, 0xaa))).toMatchObject({ size: 3 });
    expect(parseVp8Descriptor(Uint8Array.of(0x90, 0xf0, 0x81, 0x02, 0x07, 0x40, 0xaa))).toMatchObject({
      size: 6,
    });
    expect(parseVp8Descriptor(Uint8Array.of(0x80))).toBeUndefined(); // X set, no extension byte
    expect(parseVp8Descriptor(Uint8Array.of(0x90, 0x80))).toBeUndefined();
    expect(parseVp8Descriptor(new Uint8Array())).toBeUndefined();
  });

  it('a broken descriptor in the middle of a stream is a loss, not an exception', () => {
    let dropped = 0;
    const depacketizer = new VpxDepacketizer({
      codec: 'vp8',
      onFrame: () => {},
      onFrameDropped: () => dropped++,
    });
    depacketizer.push(Uint8Array.of(0x90, 0x80), 1, 0, true);
    expect(dropped).toBe(1);
  });
});

describe('VP9 RTP', () => {
  it('reassembles a real VP9 clip sent with flexible-mode descriptors (B/E bits, picture id)', async () => {
    const { header, frames } = readIvf(await vpxClip('libvpx-vp9', 20));
    expect(header?.fourcc).toBe('VP90');
    const out: VpxFrame[] = [];
    const depacketizer = new VpxDepacketizer({ codec: 'vp9', onFrame: (f) => out.push(f) });
    let seq = 100;
    frames.forEach((f, i) => {
      const key = vp9IsKeyframe(f.data);
      for (let at = 0; at < f.data.length; at += 500) {
        const begin = at === 0;
        const end = at + 500 >= f.data.length;
        // I=1, P=!key, F=1, B, E; 15-bit picture id; one P_DIFF when predicted.
        const b0 = 0x80 | (key ? 0 : 0x40) | 0x10 | (begin ? 0x08 : 0) | (end ? 0x04 : 0);
        const descriptor = key ? [b0, 0x80, i] : [b0, 0x80, i, 0x02];
        depacketizer.push(
          Buffer.concat([Buffer.from(descriptor), f.data.subarray(at, at + 500)]),
          seq++,
          i * 3000,
          end,
        );
      }
    });
    expect(out).toHaveLength(frames.length);
    expect(out.map((f) => Buffer.from(f.data).toString('hex'))).toEqual(
      frames.map((f) => Buffer.from(f.data).toString('hex')),
    );
    expect(out.filter((f) => f.keyframe).length).toBe(2);
  });

  it('parses a non-flexible descriptor with layer indices and a scalability structure', () => {
    // I, L, B, E, V; picture id 7 bits; TID/SID byte + TL0PICIDX; SS: N_S=0, Y=1, G=1 with 1 group of 1 ref.
    const d = parseVp9Descriptor(
      Uint8Array.of(0xae, 0x05, 0x00, 0x01, 0x18, 0x01, 0x40, 0x00, 0xf0, 0x01, 0x04, 0x01, 0xaa),
    );
    expect(d).toMatchObject({ size: 12, begin: true, end: true, spatialId: 0 });
    expect(parseVp9Descriptor(Uint8Array.of(0xae, 0x05))).toBeUndefined();
  });
});
