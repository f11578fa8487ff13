// Transcoding profiles as go-livepeer knows them: the named presets of -transcodingOptions
// (lpms ffmpeg/videoprofile.go), its JSON profile format, and how a profile travels in SegData
// (net.VideoProfile in fullProfiles/2/3, and the 4-byte name hashes the segment signature covers).
// Pure functions: no I/O. Both the gateway and the local orchestrator use them.
import { bytesToHex, keccak256, stringToBytes } from 'viem';
import { Capability, type VideoProfile as NetVideoProfile, type SegData } from '../wire/lp-rpc.ts';

/** Output container; `source` = the pushed segment's own (go-livepeer's FormatNone). */
export type ProfileFormat = 'source' | 'mpegts' | 'mp4';
export type EncoderProfile = 'none' | 'h264baseline' | 'h264main' | 'h264high' | 'h264constrainedhigh';
export type VideoEncoder = 'H264' | 'H265' | 'VP8' | 'VP9';

export interface TranscodeProfile {
  name: string;
  width: number;
  height: number;
  /** Bits per second. */
  bitrate: number;
  /** Frames per second (numerator); 0 keeps the source's frame rate. */
  fps: number;
  /** Frame rate denominator; 0 means 1. */
  fpsDen: number;
  format: ProfileFormat;
  profile: EncoderProfile;
  /** Keyframe interval in ms; 0 = encoder default; -1 = every frame a keyframe ("intra"). */
  gopMs: number;
  encoder: VideoEncoder;
  colorDepth: number;
  /** 0 = 4:2:0, 1 = 4:2:2, 2 = 4:4:4 (net.VideoProfile.ChromaSubsampling). */
  chromaFormat: number;
  quality: number;
}

export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileError';
  }
}

const preset = (
  name: string,
  bitrateK: number,
  fps: number,
  width: number,
  height: number,
): TranscodeProfile => ({
  name,
  width,
  height,
  bitrate: bitrateK * 1000,
  fps,
  fpsDen: 0,
  format: 'source',
  profile: 'none',
  gopMs: 0,
  encoder: 'H264',
  colorDepth: 0,
  chromaFormat: 0,
  quality: 0,
});

/** lpms' VideoProfileLookup: the names -transcodingOptions accepts. */
export const PRESETS: Readonly<Record<string, TranscodeProfile>> = Object.freeze(
  Object.fromEntries(
    [
      preset('P720p60fps16x9', 6000, 60, 1280, 720),
      preset('P720p30fps16x9', 4000, 30, 1280, 720),
      preset('P720p25fps16x9', 3500, 25, 1280, 720),
      preset('P720p30fps4x3', 3500, 30, 960, 720),
      preset('P576p30fps16x9', 1500, 30, 1024, 576),
      preset('P576p25fps16x9', 1500, 25, 1024, 576),
      preset('P360p30fps16x9', 1200, 30, 640, 360),
      preset('P360p25fps16x9', 1000, 25, 640, 360),
      preset('P360p30fps4x3', 1000, 30, 480, 360),
      preset('P240p30fps16x9', 600, 30, 426, 240),
      preset('P240p25fps16x9', 600, 25, 426, 240),
      preset('P240p30fps4x3', 600, 30, 320, 240),
      preset('P144p30fps16x9', 400, 30, 256, 144),
    ].map((p) => [p.name, p]),
  ),
);

/** go-livepeer's default -transcodingOptions. */
export const DEFAULT_TRANSCODING_OPTIONS = 'P240p30fps16x9,P360p30fps16x9';

/** `P240p30fps16x9,P360p30fps16x9`: every name must be a preset (go-livepeer drops unknown ones silently). */
export function parsePresetNames(text: string): TranscodeProfile[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new ProfileError('names no transcoding profile');
  const unknown = names.filter((n) => !Object.hasOwn(PRESETS, n));
  if (unknown.length) {
    throw new ProfileError(
      `has unknown profile name${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; known: ${Object.keys(PRESETS).join(', ')}, or the path of a JSON file of profiles`,
    );
  }
  return checkUnique(names.map((n) => ({ ...PRESETS[n]! })));
}

const ENCODER_PROFILES: Record<string, EncoderProfile> = {
  '': 'none',
  none: 'none',
  h264baseline: 'h264baseline',
  h264main: 'h264main',
  h264high: 'h264high',
  h264constrainedhigh: 'h264constrainedhigh',
};
/** lpms VideoCodecName: the JSON `encoder` values. */
const ENCODER_NAMES: Record<string, VideoEncoder> = {
  '': 'H264',
  'H.264': 'H264',
  HEVC: 'H265',
  VP8: 'VP8',
  VP9: 'VP9',
};

/**
 * go-livepeer's JSON profile file (-transcodingOptions=path): an array of
 * `{name, width, height, bitrate, fps, fpsDen, profile, gop, encoder, colorDepth, chromaFormat, quality}`.
 * Keys match case-insensitively, as Go's encoding/json does. `gop` is seconds as a string, or "intra".
 */
export function parseJsonProfiles(text: string): TranscodeProfile[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ProfileError(`is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(doc)) throw new ProfileError('must be a JSON array of profiles');
  if (doc.length === 0) throw new ProfileError('has no profiles');
  return checkUnique(doc.map((item, i) => jsonProfile(item, i)));
}

function jsonProfile(item: unknown, i: number): TranscodeProfile {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new ProfileError(`profile ${i} is not an object`);
  }
  const fields = new Map(Object.entries(item).map(([k, v]) => [k.toLowerCase(), v]));
  const given = fields.get('name');
  let at = typeof given === 'string' && given !== '' ? `profile "${given}"` : `profile ${i}`;
  const int = (key: string, min: number, max = 2 ** 31 - 1): number => {
    const v = fields.get(key.toLowerCase()) ?? 0;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ProfileError(
        `${at}: ${key} must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`,
      );
    }
    return v;
  };
  const str = (key: string): string => {
    const v = fields.get(key.toLowerCase()) ?? '';
    if (typeof v !== 'string')
      throw new ProfileError(`${at}: ${key} must be a string (got ${JSON.stringify(v)})`);
    return v;
  };
  const width = int('width', 1, 8192);
  const height = int('height', 1, 8192);
  const bitrate = int('bitrate', 1);
  const name = str('name') || `custom_${width}x${height}_${bitrate}`;
  at = `profile "${name}"`;
  const gopText = str('gop');
  let gopMs = 0;
  if (gopText === 'intra') gopMs = -1;
  else if (gopText !== '') {
    const seconds = Number(gopText);
    if (!Number.isFinite(seconds) || gopText.trim() === '') {
      throw new ProfileError(`${at}: gop must be seconds (e.g. "2") or "intra" (got "${gopText}")`);
    }
    if (seconds <= 0) throw new ProfileError(`${at}: gop must be positive (got "${gopText}")`);
    gopMs = Math.floor(seconds * 1000); // Go's Duration.Milliseconds() truncates
  }
  const profileName = str('profile');
  const profile = ENCODER_PROFILES[profileName.toLowerCase()];
  if (!profile) {
    throw new ProfileError(
      `${at}: profile must be one of ${Object.keys(ENCODER_PROFILES).filter(Boolean).join(', ')} (got "${profileName}")`,
    );
  }
  const encoderName = str('encoder');
  const encoder = ENCODER_NAMES[encoderName];
  if (!encoder) {
    throw new ProfileError(`${at}: encoder must be one of H.264, HEVC, VP8, VP9 (got "${encoderName}")`);
  }
  return {
    name,
    width,
    height,
    bitrate,
    fps: int('fps', 0, 1_000_000),
    fpsDen: int('fpsDen', 0, 1_000_000),
    format: 'source',
    profile,
    gopMs,
    encoder,
    colorDepth: int('colorDepth', 0, 16) || 8,
    chromaFormat: int('chromaFormat', 0, 2),
    quality: int('quality', 0, 63),
  };
}

function checkUnique(profiles: TranscodeProfile[]): TranscodeProfile[] {
  const seen = new Set<string>();
  for (const p of profiles) {
    if (seen.has(p.name))
      throw new ProfileError(`names profile "${p.name}" twice; rendition names must differ`);
    if (!/^[A-Za-z0-9._-]+$/.test(p.name)) {
      throw new ProfileError(
        `has profile name "${p.name}": only letters, digits, ".", "_" and "-" (it names files and playlists)`,
      );
    }
    seen.add(p.name);
  }
  return profiles;
}

/** Frame rate as a rational; 0/1 when the source's is kept. */
export function frameRate(p: TranscodeProfile): { num: number; den: number } {
  return { num: p.fps, den: p.fpsDen || 1 };
}

/** The file extension of a rendition in `format` (source resolved). */
export const formatExtension = (format: 'mpegts' | 'mp4'): string => (format === 'mp4' ? '.mp4' : '.ts');
export const formatMimeType = (format: 'mpegts' | 'mp4'): string =>
  format === 'mp4' ? 'video/mp4' : 'video/mp2t';

/** Profiles with `source` replaced by the pushed segment's format, as go-livepeer does at a stream's first push. */
export function resolveFormats(
  profiles: readonly TranscodeProfile[],
  input: 'mpegts' | 'mp4',
): TranscodeProfile[] {
  return profiles.map((p) => (p.format === 'source' ? { ...p, format: input } : p));
}

// --- net.VideoProfile ---

const NET_FORMAT = { source: 0, mpegts: 0, mp4: 1 } as const;
const NET_PROFILE: Record<EncoderProfile, number> = {
  none: 0,
  h264baseline: 1,
  h264main: 2,
  h264high: 3,
  h264constrainedhigh: 4,
};
const NET_ENCODER: Record<VideoEncoder, number> = { H264: 0, H265: 1, VP8: 2, VP9: 3 };

export function toNetProfile(p: TranscodeProfile): NetVideoProfile {
  return {
    name: p.name,
    width: p.width,
    height: p.height,
    bitrate: p.bitrate,
    fps: p.fps,
    format: NET_FORMAT[p.format],
    fpsDen: p.fpsDen,
    profile: NET_PROFILE[p.profile],
    gop: p.gopMs,
    encoder: NET_ENCODER[p.encoder],
    colorDepth: p.colorDepth,
    chromaFormat: p.chromaFormat,
    quality: p.quality,
  };
}

const invert = <K extends string>(m: Record<K, number>): Map<number, K> =>
  new Map(Object.entries(m).map(([k, v]) => [v as number, k as K]));
const FROM_NET_PROFILE = invert(NET_PROFILE);
const FROM_NET_ENCODER = invert(NET_ENCODER);

/** The orchestrator's side (go-livepeer makeFfmpegVideoProfiles): errors name the bad field. */
export function fromNetProfile(p: NetVideoProfile): TranscodeProfile {
  const width = p.width ?? 0;
  const height = p.height ?? 0;
  const bitrate = p.bitrate ?? 0;
  const format = p.format ?? 0;
  if (format !== 0 && format !== 1) throw new ProfileError('unrecognized profile output format');
  const profile = FROM_NET_PROFILE.get(p.profile ?? 0);
  if (!profile) throw new ProfileError('unrecognized encoder profile');
  const encoder = FROM_NET_ENCODER.get(p.encoder ?? 0);
  if (!encoder) throw new ProfileError('unrecognized video codec');
  return {
    name: p.name || `net_${width}x${height}_${bitrate}`,
    width,
    height,
    bitrate,
    fps: p.fps ?? 0,
    fpsDen: p.fpsDen ?? 0,
    format: format === 1 ? 'mp4' : 'mpegts',
    profile,
    gopMs: p.gop ?? 0,
    encoder,
    colorDepth: p.colorDepth ?? 0,
    chromaFormat: p.chromaFormat ?? 0,
    quality: p.quality ?? 0,
  };
}

/**
 * The SegData fields that carry `profiles`, as go-livepeer's NetSegData picks them: fullProfiles
 * when every output is MPEG-TS with integer fps, default encoder profile and default GOP;
 * fullProfiles2 for the same with another format; else fullProfiles3. `profiles` holds the
 * literal "invalid" so that orchestrators too old for full profiles fail loudly.
 */
export function segDataProfiles(
  profiles: readonly TranscodeProfile[],
): Pick<SegData, 'profiles' | 'fullProfiles' | 'fullProfiles2' | 'fullProfiles3'> {
  const net = profiles.map(toNetProfile);
  const invalid = new TextEncoder().encode('invalid');
  const simple = profiles.every((p) => p.fpsDen === 0 && p.profile === 'none' && p.gopMs === 0);
  if (!simple) return { profiles: invalid, fullProfiles3: net };
  const allTs = profiles.every((p) => p.format !== 'mp4');
  return allTs ? { profiles: invalid, fullProfiles: net } : { profiles: invalid, fullProfiles2: net };
}

/** The profiles a SegData carries: fullProfiles3, else 2, else 1 (go-livepeer coreSegMetadata). */
export function profilesOf(seg: SegData): TranscodeProfile[] {
  const net = seg.fullProfiles3?.length
    ? seg.fullProfiles3
    : seg.fullProfiles2?.length
      ? seg.fullProfiles2
      : (seg.fullProfiles ?? []);
  return net.map(fromNetProfile);
}

/**
 * go-livepeer's ProfilesToHex: hex of the first 4 bytes of keccak256(name) for each profile.
 * It is the last part of the data the segment signature covers (SegTranscodingMetadata.Flatten).
 */
export function profilesHex(names: readonly string[]): string {
  return names.map((n) => bytesToHex(keccak256(stringToBytes(n), 'bytes').slice(0, 4)).slice(2)).join('');
}

/**
 * The capabilities a transcoding job needs (go-livepeer core.JobCapabilities for an H.264 input
 * pushed over HTTP): auth token, segment slicing, H.264 decode, and per output its container,
 * encoder, encoder profile, GOP and fractional frame rates.
 */
export function transcodeCapabilities(profiles: readonly TranscodeProfile[]): number[] {
  const caps = new Set<number>([Capability.AuthToken, SEGMENT_SLICING, Capability.H264]);
  for (const p of profiles) {
    caps.add(p.format === 'mp4' ? Capability.MP4 : Capability.MPEGTS);
    caps.add(ENCODE_CAPABILITY[p.encoder]);
    if (p.fpsDen > 0) caps.add(FRACTIONAL_FRAMERATES);
    if (p.profile !== 'none') caps.add(PROFILE_CAPABILITY[p.profile]);
    if (p.gopMs !== 0) caps.add(GOP);
  }
  return [...caps].sort((a, b) => a - b);
}

// go-livepeer core/capabilities.go ids not in lp-rpc.ts's Capability table.
const FRACTIONAL_FRAMERATES = 3;
const GOP = 11;
const SEGMENT_SLICING = 26;
const ENCODE_CAPABILITY: Record<VideoEncoder, number> = { H264: 0, H265: 16, VP8: 19, VP9: 20 };
const PROFILE_CAPABILITY: Record<Exclude<EncoderProfile, 'none'>, number> = {
  h264baseline: 7,
  h264main: 8,
  h264high: 9,
  h264constrainedhigh: 10,
};

/**
 * go-livepeer's estimateFee pixel count for one segment: Σ width × height × ⌈fps⌉ × ⌈duration s⌉,
 * a kept source frame rate counted as 60. The fee is this × 1.02 × price.
 */
export function estimatedPixels(profiles: readonly TranscodeProfile[], durationMs: number): bigint {
  const seconds = BigInt(Math.ceil(durationMs / 1000));
  let total = 0n;
  for (const p of profiles) {
    const fps = p.fps === 0 ? 60n : BigInt(Math.ceil(p.fps / (p.fpsDen || 1)));
    total += BigInt(p.width) * BigInt(p.height) * fps * seconds;
  }
  return total;
}

/**
 * The profile names a SegData's signature covers, read without validating the rest of each
 * profile (an unnamed one is `net_WxH_bitrate`, as go-livepeer's orchestrator names it).
 */
export function signedProfileNames(seg: SegData): string[] {
  const net = seg.fullProfiles3?.length
    ? seg.fullProfiles3
    : seg.fullProfiles2?.length
      ? seg.fullProfiles2
      : (seg.fullProfiles ?? []);
  return net.map((p) => p.name || `net_${p.width ?? 0}x${p.height ?? 0}_${p.bitrate ?? 0}`);
}

/**
 * The size a profile is encoded at for an input of this size, as the local orchestrator's ffmpeg
 * scales (lpms' rule): the profile's width for a landscape input (its height for a portrait
 * one), the other side keeping the input's aspect ratio, rounded to the nearest even number as
 * ffmpeg's `-2` does. A 16:9 profile of a 4:3 input is 426x320, not 426x240.
 */
export function outputSize(
  profile: Pick<TranscodeProfile, 'width' | 'height'>,
  input: { width: number; height: number },
): { width: number; height: number } {
  if (input.width <= 0 || input.height <= 0) return { width: profile.width, height: profile.height };
  // ffmpeg's av_rescale rounds half away from zero; every value here is positive.
  const even = (n: bigint, d: bigint) => ((2n * n + d) / (2n * d)) * 2n;
  const [iw, ih] = [BigInt(input.width), BigInt(input.height)];
  if (input.width >= input.height) {
    return { width: profile.width, height: Number(even(BigInt(profile.width) * ih, iw * 2n)) };
  }
  return { width: Number(even(BigInt(profile.height) * iw, ih * 2n)), height: profile.height };
}
