import { describe, expect, it } from 'vitest';
import {
  type AccessUnit,
  codecStringFromSps,
  H264Depacketizer,
  type H264DepacketizerOptions,
  type H264DropReason,
  isH264Keyframe,
  packetizeH264,
  parseSpropParameterSets,
  splitAnnexB,
} from '../../src/media/index.ts';

const SPS = Uint8Array.of(0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5);
const PPS = Uint8Array.of(0x68, 0xce, 0x3c, 0x80);
const AUD = Uint8Array.of(0x09, 0xf0);
const SEI = Uint8Array.of(0x06, 0x05, 0x01, 0xaa, 0x80);

/** A slice NAL of `size` bytes; first_mb_in_slice = 0 and no zero bytes (so no accidental start codes). */
function slice(type: 1 | 5, size: number, seed = 1): Uint8Array {
  const nal = new Uint8Array(size);
  nal[0] = type === 5 ? 0x65 : 0x41;
  nal[1] = 0x88;
  let x = seed;
  for (let i = 2; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    nal[i] = 1 + ((x >>> 16) % 255);
  }
  return nal;
}

function annexB(nalus: Uint8Array[], startCode = [0, 0, 0, 1]): Uint8Array {
  const parts: number[] = [];
  for (const n of nalus) parts.push(...startCode, ...n);
  return Uint8Array.from(parts);
}

interface Rtp {
  payload: Uint8Array;
  seq: number;
  ts: number;
  marker: boolean;
}

/** Packetizes frames into RTP with consecutive sequence numbers from `firstSeq`. */
function toRtp(frames: { nalus: Uint8Array[]; ts: number }[], firstSeq = 0, mtu = 1200): Rtp[] {
  const out: Rtp[] = [];
  let seq = firstSeq;
  for (const f of frames) {
    for (const p of packetizeH264(f.nalus, { mtu })) {
      out.push({ payload: p.payload, seq, ts: f.ts, marker: p.marker });
      seq = (seq + 1) & 0xffff;
    }
  }
  return out;
}

function depacketize(packets: Rtp[], options: Partial<H264DepacketizerOptions> = {}) {
  const units: AccessUnit[] = [];
  const drops: H264DropReason[] = [];
  const d = new H264Depacketizer({
    onAccessUnit: (au) => units.push(au),
    onFrameDropped: (reason) => drops.push(reason),
    ...options,
  });
  for (const p of packets) d.push(p.payload, p.seq, p.ts, p.marker);
  d.flush();
  return { units, drops, stats: d.stats, depacketizer: d };
}

describe('Annex-B helpers', () => {
  it('splits on 3- and 4-byte start codes and drops trailing zeros', () => {
    const buf = Uint8Array.of(0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4);
    expect(splitAnnexB(buf).map((n) => Array.from(n))).toEqual([
      [0x67, 1, 2],
      [0x68, 3],
      [0x65, 4],
    ]);
    expect(isH264Keyframe(buf)).toBe(true);
    expect(isH264Keyframe(annexB([slice(1, 50)], [0, 0, 1]))).toBe(false);
  });

  it('reads the codec string from an SPS and decodes sprop-parameter-sets', () => {
    expect(codecStringFromSps(SPS)).toBe('avc1.42c01e');
    const [sps, pps] = parseSpropParameterSets(
      `${Buffer.from(SPS).toString('base64')},${Buffer.from(PPS).toString('base64')}`,
    );
    expect(sps).toEqual(SPS);
    expect(pps).toEqual(PPS);
  });
});

describe('packetizeH264', () => {
  it('aggregates SPS+PPS (and small NALs) into a STAP-A, drops AUD, marks the last packet', () => {
    const idr = slice(5, 3000);
    const payloads = packetizeH264(annexB([AUD, SPS, PPS, SEI, idr]), { mtu: 1200 });
    expect(payloads[0].payload[0] & 0x1f).toBe(24);
    expect(payloads.slice(1).every((p) => (p.payload[0] & 0x1f) === 28)).toBe(true);
    expect(payloads.map((p) => p.marker)).toEqual([false, false, false, true]);
    expect(payloads.every((p) => p.payload.length <= 1200)).toBe(true);
    // Balanced fragments: none much smaller than the others.
    const sizes = payloads.slice(1).map((p) => p.payload.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('sends a NAL that fits as a single-NAL packet (a view, no copy)', () => {
    const p = slice(1, 800);
    const [only] = packetizeH264([p], { stapA: false });
    expect(only.payload).toBe(p);
    expect(only.marker).toBe(true);
  });

  it('sets FU-A start/end bits and keeps NRI and type', () => {
    const payloads = packetizeH264([slice(5, 2500)], { mtu: 1000 });
    expect(payloads.map((p) => p.payload[0])).toEqual([0x7c, 0x7c, 0x7c]); // NRI 3, type 28
    expect(payloads.map((p) => p.payload[1])).toEqual([0x85, 0x05, 0x45]);
  });
});

describe('H264Depacketizer', () => {
  it('reassembles NALs larger than the MTU byte for byte', () => {
    const idr = slice(5, 50_000, 7);
    const p = slice(1, 4321, 9);
    const packets = toRtp([
      { nalus: [SPS, PPS, idr], ts: 1000 },
      { nalus: [p], ts: 4000 },
    ]);
    expect(packets.length).toBeGreaterThan(40);
    const { units, drops } = depacketize(packets);
    expect(drops).toEqual([]);
    expect(units).toHaveLength(2);
    expect(units[0].nalus).toEqual([SPS, PPS, idr]);
    expect(units[0].annexB).toEqual(annexB([SPS, PPS, idr]));
    expect(units[0].keyframe).toBe(true);
    expect(units[1].nalus).toEqual([p]);
    expect(units[1].keyframe).toBe(false);
    expect(units.map((u) => u.pts90k)).toEqual([0, 3000]);
  });

  it('parses STAP-A and keeps AUD and SEI', () => {
    const stap = Uint8Array.from([
      0x78,
      ...[0, AUD.length, ...AUD],
      ...[0, SEI.length, ...SEI],
      ...[0, SPS.length, ...SPS],
      ...[0, PPS.length, ...PPS],
    ]);
    const idr = slice(5, 300);
    const { units } = depacketize([
      { payload: stap, seq: 1, ts: 0, marker: false },
      { payload: idr, seq: 2, ts: 0, marker: true },
    ]);
    expect(units[0].nalus).toEqual([AUD, SEI, SPS, PPS, idr]);
  });

  it('ends a frame when the timestamp changes even without a marker', () => {
    const { units } = depacketize([
      { payload: SPS, seq: 1, ts: 0, marker: false },
      { payload: PPS, seq: 2, ts: 0, marker: false },
      { payload: slice(5, 100), seq: 3, ts: 0, marker: false },
      { payload: slice(1, 100), seq: 4, ts: 3000, marker: false },
    ]);
    expect(units.map((u) => u.keyframe)).toEqual([true, false]);
  });

  it('prepends the cached SPS/PPS to a keyframe that lacks them (after an AUD)', () => {
    const idr1 = slice(5, 2000, 1);
    const idr2 = slice(5, 2000, 2);
    const { units, stats } = depacketize(
      toRtp([
        { nalus: [SPS, PPS, idr1], ts: 0 },
        { nalus: [slice(1, 500)], ts: 3000 },
        { nalus: [AUD, idr2], ts: 6000 },
      ]),
    );
    // The packetizer strips AUDs, so feed one in by hand to check where the parameter sets go.
    expect(units[2].nalus).toEqual([SPS, PPS, idr2]);
    expect(units[2].annexB).toEqual(annexB([SPS, PPS, idr2]));
    expect(stats.parameterSetsInserted).toBe(1);

    const withAud = depacketize(
      [
        {
          payload: Uint8Array.from([0x78, 0, 2, ...AUD, 0, 100, ...idr2.subarray(0, 100)]),
          seq: 0,
          ts: 0,
          marker: true,
        },
      ],
      { parameterSets: [SPS, PPS] },
    );
    expect(withAud.units[0].nalus).toEqual([AUD, SPS, PPS, idr2.subarray(0, 100)]);
  });

  it('accepts SPS/PPS sent on their own timestamp and puts them before the next IDR', () => {
    const idr = slice(5, 700);
    const { units, drops, stats } = depacketize([
      {
        payload: Uint8Array.from([0x78, 0, SPS.length, ...SPS, 0, PPS.length, ...PPS]),
        seq: 1,
        ts: 0,
        marker: true,
      },
      { payload: idr, seq: 2, ts: 3000, marker: true },
    ]);
    expect(drops).toEqual([]);
    expect(units.map((u) => u.nalus)).toEqual([[SPS, PPS, idr]]);
    expect(stats.unitsWithoutSlices).toBe(1);
  });

  it('treats a large sequence jump as a restart, not as thousands of lost packets', () => {
    const packets = toRtp([{ nalus: [SPS, PPS, slice(5, 3000)], ts: 0 }], 100);
    const restarted = toRtp([{ nalus: [SPS, PPS, slice(5, 3000, 2)], ts: 3000 }], 40_000);
    const { units, stats } = depacketize([...packets, ...restarted]);
    expect(units).toHaveLength(2);
    expect(stats).toMatchObject({ lostPackets: 0, sequenceJumps: 1, latePackets: 0 });
  });

  it('uses parameter sets given out of band (sprop-parameter-sets)', () => {
    const idr = slice(5, 700);
    const { units } = depacketize([{ payload: idr, seq: 5, ts: 0, marker: true }], {
      parameterSets: [SPS, PPS],
    });
    expect(units[0].nalus).toEqual([SPS, PPS, idr]);
    const none = depacketize([{ payload: idr, seq: 5, ts: 0, marker: true }]);
    expect(none.units).toEqual([]);
    expect(none.drops).toEqual(['missing-parameter-sets']);
  });

  it('turns wrapping sequence numbers and RTP timestamps into increasing pts', () => {
    const frames = Array.from({ length: 4 }, (_, i) => ({
      nalus: i === 0 ? [SPS, PPS, slice(5, 3000)] : [slice(1, 1500, i)],
      ts: (0xffff_f000 + i * 3000) >>> 0,
    }));
    const packets = toRtp(frames, 65_530);
    expect(packets.some((p) => p.seq === 0)).toBe(true);
    const { units, drops } = depacketize(packets);
    expect(drops).toEqual([]);
    expect(units.map((u) => u.pts90k)).toEqual([0, 3000, 6000, 9000]);
    expect(units.map((u) => u.rtpTimestamp)).toEqual(frames.map((f) => f.ts));
  });

  it('drops a frame with a missing FU-A fragment, then waits for a keyframe', () => {
    const packets = toRtp([
      { nalus: [SPS, PPS, slice(5, 3000)], ts: 0 },
      { nalus: [slice(1, 3000, 2)], ts: 3000 },
      { nalus: [slice(1, 500, 3)], ts: 6000 },
      { nalus: [SPS, PPS, slice(5, 3000, 4)], ts: 9000 },
    ]);
    const lost = packets.findIndex((p) => p.ts === 3000) + 1; // middle fragment of frame 2
    const { units, drops, stats } = depacketize(packets.filter((_, i) => i !== lost));
    expect(drops).toEqual(['packet-loss', 'waiting-for-keyframe']);
    expect(units.map((u) => u.pts90k)).toEqual([0, 9000]);
    expect(stats).toMatchObject({ lostPackets: 1, droppedFrames: 1, skippedFrames: 1 });
  });

  it('keeps passing frames after a loss when waitForKeyframe is off', () => {
    const packets = toRtp([
      { nalus: [SPS, PPS, slice(5, 3000)], ts: 0 },
      { nalus: [slice(1, 3000, 2)], ts: 3000 },
      { nalus: [slice(1, 500, 3)], ts: 6000 },
    ]);
    const lost = packets.findIndex((p) => p.ts === 3000) + 1;
    const { units, drops } = depacketize(
      packets.filter((_, i) => i !== lost),
      { waitForKeyframe: false },
    );
    expect(drops).toEqual(['packet-loss']);
    expect(units.map((u) => u.pts90k)).toEqual([0, 6000]);
  });

  it('counts an FU-A without its start and drops the frame', () => {
    const packets = toRtp([{ nalus: [slice(5, 3000)], ts: 0 }], 0).slice(1);
    const { units, drops, stats } = depacketize(packets, { parameterSets: [SPS, PPS] });
    expect(units).toEqual([]);
    expect(drops).toEqual(['fu-a-incomplete']);
    expect(stats.fuAErrors).toBe(1);
  });

  it('counts STAP-B/MTAP/FU-B, malformed STAP-A and empty payloads, and drops those frames', () => {
    const good = slice(5, 100);
    const cases: [Uint8Array, H264DropReason][] = [
      [Uint8Array.of(0x19, 0, 0, 0, 2, 0x09, 0xf0), 'unsupported-packet'], // STAP-B
      [Uint8Array.of(0x1a, 0, 0, 0), 'unsupported-packet'], // MTAP16
      [Uint8Array.of(0x1d, 0x85, 1, 2), 'unsupported-packet'], // FU-B
      [Uint8Array.of(0x78, 0, 50, 0x67), 'malformed'], // STAP-A size overruns
      [new Uint8Array(0), 'malformed'],
      [Uint8Array.of(0xe5, 0x88), 'malformed'], // forbidden bit
    ];
    for (const [bad, reason] of cases) {
      const { units, drops, stats } = depacketize(
        [
          { payload: bad, seq: 1, ts: 0, marker: false },
          { payload: good, seq: 2, ts: 0, marker: true },
        ],
        { parameterSets: [SPS, PPS] },
      );
      expect(units).toEqual([]);
      expect(drops).toEqual([reason]);
      expect(stats.unsupportedPackets + stats.malformedPackets).toBe(1);
    }
  });
});
