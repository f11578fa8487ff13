// DTS for frames that come with a PTS only (WebRTC): B-frame streams must get a DTS that increases and stays ≤ PTS.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type DemuxedVideo,
  DtsGenerator,
  parseH264Sps,
  RtpTimestampUnwrapper,
  splitAnnexB,
  TsDemuxer,
} from '../../src/media/index.ts';
import { makeBFrameTs, makeH264Clip } from '../helpers/media.ts';

const F = 3000;

/** Frame numbers in decode order, 12-frame closed GOPs: I0, then P3 B2 b1 (reorder depth 2), …, P11 B10. */
function reorderedGops(gops: number): number[] {
  const gop = [0, 3, 2, 1, 6, 5, 4, 9, 8, 7, 11, 10];
  return Array.from({ length: gops }, (_, g) => gop.map((n) => g * 12 + n)).flat();
}

function expectValid(pts: number[], dts: number[], from = 0): void {
  for (let i = 1; i < dts.length; i++) expect(dts[i]).toBeGreaterThan(dts[i - 1]);
  for (let i = from; i < dts.length; i++) expect(dts[i]).toBeLessThanOrEqual(pts[i]);
}

function spsOf(annexB: Uint8Array): Uint8Array {
  const sps = splitAnnexB(annexB).find((n) => (n[0] & 0x1f) === 7);
  if (!sps) throw new Error('no SPS');
  return sps;
}

let bframes: DemuxedVideo[];

beforeAll(async () => {
  const demuxer = new TsDemuxer();
  const ts = await makeBFrameTs({ seconds: 2 });
  bframes = [...demuxer.push(ts), ...demuxer.flush()].filter((f): f is DemuxedVideo => f.kind === 'video');
}, 20_000);

describe('parseH264Sps', () => {
  it("reads x264's max_num_reorder_frames: 2 with B-frames, 0 without", async () => {
    expect(parseH264Sps(spsOf(bframes[0].annexB))).toMatchObject({
      profileIdc: 77,
      maxNumReorderFrames: 2,
    });
    const baseline = await makeH264Clip({ seconds: 0.2 });
    expect(parseH264Sps(spsOf(baseline))).toMatchObject({ profileIdc: 66, maxNumReorderFrames: 0 });
  });

  it('reads past High profile scaling lists, HRD-free VUI timing and emulation prevention bytes', () => {
    const sps = highProfileSps();
    // num_units_in_tick = 1 puts 00 00 00 in the RBSP, so the NAL unit carries an emulation prevention byte.
    expect(Buffer.from(sps).includes(Buffer.from([0, 0, 3]))).toBe(true);
    expect(parseH264Sps(sps)).toEqual({
      profileIdc: 100,
      levelIdc: 30,
      maxNumReorderFrames: 3,
      maxDecFrameBuffering: 4,
    });
  });

  it('returns undefined for what is not an SPS or is cut short', () => {
    const sps = spsOf(bframes[0].annexB);
    expect(parseH264Sps(Uint8Array.of(0x68, 1, 2, 3))).toBeUndefined();
    expect(parseH264Sps(sps.subarray(0, 6))).toBeUndefined();
  });
});

describe('DtsGenerator', () => {
  it('gives DTS = PTS while frames come in presentation order, jitter and gaps included', () => {
    const g = new DtsGenerator();
    const pts = [90_000, 93_000, 96_100, 98_900, 108_000, 111_000];
    expect(pts.map((p) => g.next(p))).toEqual(pts);
    expect(g.stats).toMatchObject({ reorderDepth: 0, depthRaises: 0, clampedFrames: 0 });
  });

  it("reproduces x264's own DTS (up to a constant) from the SPS, from the first frame on", () => {
    expect(bframes.some((f, i) => i > 0 && f.pts90k < bframes[i - 1].pts90k)).toBe(true);
    const g = new DtsGenerator();
    const dts = bframes.map((f) => g.next(f.pts90k, splitAnnexB(f.annexB)));
    expect(g.stats).toMatchObject({ reorderDepth: 2, depthRaises: 0, clampedFrames: 0 });
    const offsets = new Set(dts.map((d, i) => d - bframes[i].dts90k));
    expect(offsets).toEqual(new Set([0]));
  });

  it('with the depth known up front, pyramid B-frames get exact DTS: N frames behind, then the sorted PTS', () => {
    const order = reorderedGops(3);
    const pts = order.map((n) => 90_000 + n * F);
    const g = new DtsGenerator({ reorderDepth: 2 });
    const dts = pts.map((p) => g.next(p));
    expect(dts.map((d) => (d - 90_000) / F)).toEqual(order.map((_, i) => i - 2));
    expectValid(pts, dts);
  });

  it('without a declared depth, learns it: DTS keeps increasing, and is exact again four frames later', () => {
    const order = reorderedGops(3);
    const pts = order.map((n) => 90_000 + n * F);
    const g = new DtsGenerator();
    const dts = pts.map((p) => g.next(p));
    expect(g.stats).toMatchObject({ reorderDepth: 2, depthRaises: 2 });
    // B2 and b1 of the first group came before the depth was known: DTS > PTS for them only.
    expect(g.stats.clampedFrames).toBe(2);
    expect(dts.slice(0, 4)).toEqual([90_000, 90_000 + 3 * F, 90_000 + 3 * F + 1, 90_000 + 3 * F + 2]);
    expectValid(pts, dts, 4);
    expect(dts.slice(6).map((d) => (d - 90_000) / F)).toEqual(order.slice(6).map((_, i) => i + 4));
  });

  it('starts over at a PTS that steps back by more than a second (a restarted sender)', () => {
    const g = new DtsGenerator({ reorderDepth: 1 });
    const first = [0, 2, 1, 4, 3].map((n) => 900_000 + n * F);
    const second = [0, 2, 1, 4, 3].map((n) => 90_000 + n * F);
    for (const p of first) g.next(p);
    const dts = second.map((p) => g.next(p));
    expect(g.stats).toMatchObject({ reorderDepth: 1, discontinuities: 1, depthRaises: 0, clampedFrames: 0 });
    expectValid(second, dts);
  });
});

describe('RtpTimestampUnwrapper with B-frames', () => {
  it('takes small steps back as steps back, also across the 32-bit wrap', () => {
    const u = new RtpTimestampUnwrapper();
    const first = 2 ** 32 - 4000;
    // Decode order I0 P3 B1 B2 P6 B4 B5 at 3000 ticks per frame; the wrap falls between frames 1 and 2,
    // so the timestamps go back and forth across it.
    const ticks = [0, 3, 1, 2, 6, 4, 5].map((n) => u.unwrap((first + n * F) >>> 0));
    expect(ticks).toEqual([0, 3, 1, 2, 6, 4, 5].map((n) => n * F));
  });
});

/**
 * A High profile SPS written bit by bit: 4:2:0, 8-bit, a custom 4x4 scaling list (with a
 * delta that ends the list early), 320x240, VUI with timing info and bitstream restriction
 * (max_num_reorder_frames 3, max_dec_frame_buffering 4).
 */
function highProfileSps(): Uint8Array {
  const bits: number[] = [];
  const u = (n: number, v: number) => {
    for (let i = n - 1; i >= 0; i--) bits.push(Math.floor(v / 2 ** i) % 2);
  };
  const ue = (v: number) => {
    const len = Math.floor(Math.log2(v + 1));
    u(len, 0);
    u(len + 1, v + 1);
  };
  const se = (v: number) => ue(v > 0 ? 2 * v - 1 : -2 * v);
  u(8, 100); // profile_idc
  u(8, 0);
  u(8, 30); // level_idc
  ue(0); // seq_parameter_set_id
  ue(1); // chroma_format_idc
  ue(0);
  ue(0);
  u(1, 0);
  u(1, 1); // seq_scaling_matrix_present_flag
  u(1, 1); // list 0 present: deltas, then one to 0 that repeats the last scale for the rest
  for (const delta of [8, -2, 3, -17]) se(delta);
  for (let i = 1; i < 8; i++) u(1, 0);
  ue(0); // log2_max_frame_num_minus4
  ue(0); // pic_order_cnt_type
  ue(2);
  ue(4); // max_num_ref_frames
  u(1, 0);
  ue(19); // 320 / 16 − 1
  ue(14); // 240 / 16 − 1
  u(1, 1); // frame_mbs_only_flag
  u(1, 1);
  u(1, 0); // no cropping
  u(1, 1); // vui_parameters_present_flag
  u(4, 0); // no aspect ratio, overscan, video signal, chroma location
  u(1, 1); // timing_info_present_flag
  u(32, 1);
  u(32, 60);
  u(1, 1);
  u(3, 0); // no NAL/VCL HRD, no pic_struct
  u(1, 1); // bitstream_restriction_flag
  u(1, 1);
  for (const v of [2, 1, 16, 16]) ue(v);
  ue(3); // max_num_reorder_frames
  ue(4); // max_dec_frame_buffering
  u(1, 1); // rbsp_stop_one_bit
  while (bits.length % 8) bits.push(0);
  const rbsp: number[] = [];
  for (let i = 0; i < bits.length; i += 8) rbsp.push(Number.parseInt(bits.slice(i, i + 8).join(''), 2));
  const nal = [0x67];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      nal.push(3);
      zeros = 0;
    }
    nal.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(nal);
}
