// The few H.264 sequence parameter set fields the gateway needs (ITU-T H.264 §7.3.2.1.1, Annex E.1.1).
import { H264NalType } from './annex-b.ts';

export interface H264SpsInfo {
  profileIdc: number;
  levelIdc: number;
  /**
   * VUI bitstream_restriction max_num_reorder_frames: at most this many frames precede any frame in
   * decoding order and follow it in output order (0: no B-frame reordering). Undefined when the SPS
   * does not say (no VUI or no bitstream_restriction), which libx264 always writes and some hardware
   * encoders omit.
   */
  maxNumReorderFrames?: number;
  /** VUI bitstream_restriction max_dec_frame_buffering, when present. */
  maxDecFrameBuffering?: number;
}

/** Profiles whose SPS carries chroma format, bit depths and scaling matrices. */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** Exp-Golomb bit reader over an RBSP (emulation prevention bytes already removed). */
class BitReader {
  private bit = 0;
  constructor(private readonly buf: Uint8Array) {}

  u(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) {
      const byte = this.bit >> 3;
      if (byte >= this.buf.length) throw new RangeError('SPS ends early');
      v = v * 2 + ((this.buf[byte] >> (7 - (this.bit & 7))) & 1);
      this.bit++;
    }
    return v;
  }

  ue(): number {
    let zeros = 0;
    while (this.u(1) === 0) {
      if (++zeros > 31) throw new RangeError('SPS exp-Golomb code too long');
    }
    return 2 ** zeros - 1 + this.u(zeros);
  }

  se(): number {
    const k = this.ue();
    return k & 1 ? (k + 1) / 2 : -k / 2;
  }
}

/** The NAL payload without emulation prevention bytes (00 00 03 → 00 00). */
function toRbsp(nalu: Uint8Array): Uint8Array {
  const out = new Uint8Array(nalu.length);
  let n = 0;
  let zeros = 0;
  for (let i = 1; i < nalu.length; i++) {
    const b = nalu[i];
    if (zeros >= 2 && b === 3) {
      zeros = 0;
      continue;
    }
    zeros = b === 0 ? zeros + 1 : 0;
    out[n++] = b;
  }
  return out.subarray(0, n);
}

function skipScalingList(r: BitReader, size: number): void {
  let last = 8;
  let next = 8;
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256;
    last = next === 0 ? last : next;
  }
}

function skipHrd(r: BitReader): void {
  const cpbCount = r.ue() + 1;
  r.u(8); // bit_rate_scale, cpb_size_scale
  for (let i = 0; i < cpbCount; i++) {
    r.ue();
    r.ue();
    r.u(1);
  }
  r.u(20); // four 5-bit length fields
}

/**
 * Parses an SPS NAL unit (header byte included) as far as the VUI's bitstream restriction.
 * Returns undefined when it is not an SPS or is malformed.
 */
export function parseH264Sps(nalu: Uint8Array): H264SpsInfo | undefined {
  if (nalu.length < 4 || (nalu[0] & 0x1f) !== H264NalType.sps) return undefined;
  const r = new BitReader(toRbsp(nalu));
  try {
    const profileIdc = r.u(8);
    r.u(8); // constraint flags
    const levelIdc = r.u(8);
    const info: H264SpsInfo = { profileIdc, levelIdc };
    r.ue(); // seq_parameter_set_id
    if (HIGH_PROFILES.has(profileIdc)) {
      const chromaFormatIdc = r.ue();
      if (chromaFormatIdc === 3) r.u(1);
      r.ue(); // bit_depth_luma_minus8
      r.ue(); // bit_depth_chroma_minus8
      r.u(1); // qpprime_y_zero_transform_bypass_flag
      if (r.u(1)) {
        for (let i = 0; i < (chromaFormatIdc === 3 ? 12 : 8); i++) {
          if (r.u(1)) skipScalingList(r, i < 6 ? 16 : 64);
        }
      }
    }
    r.ue(); // log2_max_frame_num_minus4
    const pocType = r.ue();
    if (pocType === 0) {
      r.ue();
    } else if (pocType === 1) {
      r.u(1);
      r.se();
      r.se();
      const cycle = r.ue();
      for (let i = 0; i < cycle; i++) r.se();
    }
    r.ue(); // max_num_ref_frames
    r.u(1); // gaps_in_frame_num_value_allowed_flag
    r.ue(); // pic_width_in_mbs_minus1
    r.ue(); // pic_height_in_map_units_minus1
    if (!r.u(1)) r.u(1); // frame_mbs_only_flag, else mb_adaptive_frame_field_flag
    r.u(1); // direct_8x8_inference_flag
    if (r.u(1)) for (let i = 0; i < 4; i++) r.ue(); // frame cropping
    if (!r.u(1)) return info; // no VUI
    if (r.u(1) && r.u(8) === 255) r.u(32); // aspect ratio, extended SAR
    if (r.u(1)) r.u(1); // overscan
    if (r.u(1)) {
      r.u(4); // video_format, video_full_range_flag
      if (r.u(1)) r.u(24); // colour description
    }
    if (r.u(1)) {
      r.ue();
      r.ue();
    }
    if (r.u(1)) r.u(65); // num_units_in_tick, time_scale, fixed_frame_rate_flag
    const nalHrd = r.u(1);
    if (nalHrd) skipHrd(r);
    const vclHrd = r.u(1);
    if (vclHrd) skipHrd(r);
    if (nalHrd || vclHrd) r.u(1); // low_delay_hrd_flag
    r.u(1); // pic_struct_present_flag
    if (!r.u(1)) return info; // no bitstream_restriction
    r.u(1); // motion_vectors_over_pic_boundaries_flag
    for (let i = 0; i < 4; i++) r.ue(); // max bytes/bits, log2 max mv lengths
    info.maxNumReorderFrames = r.ue();
    info.maxDecFrameBuffering = r.ue();
    return info;
  } catch {
    return undefined;
  }
}
