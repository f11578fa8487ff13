// The local orchestrator's transcoder: one ffmpeg run turns a pushed segment into every
// requested profile (H.264 at the profile's size, frame rate, bitrate, encoder profile and GOP),
// as go-livepeer's lpms does on a GPU. It reports the frames each output really has, because the
// fee is charged on output pixels (frames × width × height).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatExtension, type TranscodeProfile } from '../batch/profiles.ts';

export interface TranscodedRendition {
  profile: TranscodeProfile;
  data: Buffer;
  frames: number;
  /** The encoded size: the profile's along the input's longer side, the other side keeping the aspect ratio. */
  width: number;
  height: number;
  /** Output pixels: frames × width × height. */
  pixels: bigint;
}

/** A transcode that failed; the message goes back in TranscodeResult.error. */
export class TranscodeFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TranscodeFailure';
  }
}

const X264_PROFILES: Record<TranscodeProfile['profile'], string | undefined> = {
  none: undefined,
  h264baseline: 'baseline',
  h264main: 'main',
  h264high: 'high',
  h264constrainedhigh: 'high',
};

/** Renditions per segment; more is refused with lpms' error text for too many outputs. */
const MAX_OUTPUTS = 10;

export interface TranscodeOptions {
  /** Kill ffmpeg after this long. */
  timeoutMs: number;
  /** Kill ffmpeg (SIGKILL) when the gateway that asked is gone; the temporary files go too. */
  signal?: AbortSignal;
  /** x264 preset; a faster one trades size for CPU. */
  preset?: string;
}

/** Every profile must have a resolved format (mpegts or mp4). */
export async function transcodeSegment(
  input: Uint8Array,
  profiles: readonly TranscodeProfile[],
  opts: TranscodeOptions,
): Promise<TranscodedRendition[]> {
  if (profiles.length === 0) return [];
  if (profiles.length > MAX_OUTPUTS) throw new TranscodeFailure('Too many outputs');
  for (const p of profiles) {
    if (p.encoder !== 'H264') {
      throw new TranscodeFailure(
        `unsupported encoder ${p.encoder} for profile ${p.name}: this orchestrator encodes H.264 only`,
      );
    }
    if (p.width % 2 || p.height % 2) {
      throw new TranscodeFailure(
        `profile ${p.name}: H.264 4:2:0 needs an even width and height (got ${p.width}x${p.height})`,
      );
    }
    if (p.chromaFormat !== 0 || (p.colorDepth !== 0 && p.colorDepth !== 8)) {
      throw new TranscodeFailure(`profile ${p.name}: only 8-bit 4:2:0 output is supported`);
    }
  }
  if (opts.signal?.aborted) throw new TranscodeFailure('transcoding cancelled: the gateway went away');
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-segment-'));
  try {
    const inFile = join(dir, 'in');
    await writeFile(inFile, input);
    const outFiles = profiles.map((p, i) =>
      join(dir, `out${i}${formatExtension(p.format === 'mp4' ? 'mp4' : 'mpegts')}`),
    );
    // -copyts keeps the pushed segment's timestamps, so consecutive renditions play as one stream.
    const args = ['-hide_banner', '-nostdin', '-v', 'verbose', '-copyts', '-i', inFile];
    profiles.forEach((p, i) => {
      args.push(...outputArgs(p, opts.preset ?? 'veryfast'), outFiles[i]!);
    });
    const log = await runFfmpeg(args, opts.timeoutMs, opts.signal);
    const outputs = encodedOutputs(log, profiles.length);
    return await Promise.all(
      profiles.map(async (profile, i) => {
        const out = outputs[i];
        if (!out?.frames) throw new TranscodeFailure(`no video frames in the output for ${profile.name}`);
        return {
          profile,
          data: await readFile(outFiles[i]!),
          frames: out.frames,
          width: out.width,
          height: out.height,
          pixels: BigInt(out.frames) * BigInt(out.width) * BigInt(out.height),
        };
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function outputArgs(p: TranscodeProfile, preset: string): string[] {
  // As lpms: the profile's size along the input's longer side, the other side keeping the aspect
  // ratio (rounded to even), so a 16:9 profile of a 4:3 input is not stretched.
  const filters = [`scale=w='if(gte(iw,ih),${p.width},-2)':h='if(lt(iw,ih),${p.height},-2)'`];
  if (p.fps > 0) filters.push(`fps=${p.fps}/${p.fpsDen || 1}`);
  const args = ['-map', '0:v:0', '-map', '0:a?', '-vf', filters.join(',')];
  args.push('-c:v', 'libx264', '-preset', preset, '-pix_fmt', 'yuv420p', '-forced-idr', '1');
  // lpms: no B-frames for baseline and constrained high, 3 otherwise.
  args.push('-bf', p.profile === 'h264baseline' || p.profile === 'h264constrainedhigh' ? '0' : '3');
  args.push('-b:v', String(p.bitrate), '-maxrate', String(p.bitrate), '-bufsize', String(p.bitrate * 2));
  const x264Profile = X264_PROFILES[p.profile];
  if (x264Profile) args.push('-profile:v', x264Profile);
  if (p.gopMs === -1) args.push('-g', '1');
  else if (p.gopMs > 0) args.push('-force_key_frames', `expr:gte(t,n_forced*${p.gopMs / 1000})`);
  args.push('-c:a', 'copy');
  if (p.format === 'mp4')
    args.push('-avoid_negative_ts', 'make_zero', '-movflags', '+faststart', '-f', 'mp4');
  else args.push('-muxdelay', '0', '-muxpreload', '0', '-f', 'mpegts');
  return args;
}

/**
 * Per output file, from ffmpeg -v verbose: the video size in its `Output #i` header
 * (`Stream #i:0: Video: h264, ..., 426x240 ...`) and, at the end, `Output stream #i:0 (video): N
 * frames encoded`.
 */
function encodedOutputs(log: string, outputs: number): { frames: number; width: number; height: number }[] {
  const result = Array.from({ length: outputs }, () => ({ frames: 0, width: 0, height: 0 }));
  let section: number | undefined;
  for (const line of log.split(/\r?\n/)) {
    const header = /^(Output|Input) #(\d+)/.exec(line);
    if (header) {
      section = header[1] === 'Output' ? Number(header[2]) : undefined;
      continue;
    }
    const size = /^\s*Stream #(\d+):\d+: Video: .*?, (\d+)x(\d+)[ ,]/.exec(line);
    const out = size && section === Number(size[1]) ? result[section] : undefined;
    if (out && size && out.width === 0) {
      out.width = Number(size[2]);
      out.height = Number(size[3]);
    }
    const encoded = /Output stream #(\d+):\d+ \(video\): (\d+) frames encoded/.exec(line);
    const target = encoded ? result[Number(encoded[1])] : undefined;
    if (target && encoded) target.frames += Number(encoded[2]);
  }
  return result;
}

const LOG_TAIL = 64 * 1024;

/** ffmpeg processes of this process's transcodes that have not exited yet. */
let running = 0;
export function runningFfmpeg(): number {
  return running;
}

function runFfmpeg(args: string[], timeoutMs: number, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TranscodeFailure('transcoding cancelled: the gateway went away'));
    const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    running++;
    let exited = false;
    let cancelled = false;
    const cancel = () => {
      cancelled = true;
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', cancel, { once: true });
    const done = () => {
      if (exited) return;
      exited = true;
      running--;
      clearTimeout(timer);
      signal?.removeEventListener('abort', cancel);
    };
    let log = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => {
      log += s;
      if (log.length > 2 * LOG_TAIL) log = log.slice(-LOG_TAIL);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      done();
      reject(new TranscodeFailure(`cannot run ffmpeg: ${err.message}`));
    });
    child.on('close', (code, killedBy) => {
      done();
      if (code === 0) return resolve(log);
      if (cancelled) return reject(new TranscodeFailure('transcoding cancelled: the gateway went away'));
      if (killedBy === 'SIGKILL')
        return reject(new TranscodeFailure(`transcoding took longer than ${timeoutMs} ms`));
      // lpms' error for a segment without video, which go-livepeer gateways do not retry elsewhere.
      if (noVideo(log)) return reject(new TranscodeFailure('TranscoderInvalidVideo'));
      reject(new TranscodeFailure(`ffmpeg failed: ${lastError(log)}`));
    });
  });
}

/** The input has no video stream, or one without a single decodable frame (pixel format "none"). */
function noVideo(log: string): boolean {
  if (/Stream map '0:v:0' matches no streams/.test(log)) return true;
  return /^\s*Stream #0:\d+\S*: Video: [^\n]*?, none[,\s]/m.test(log);
}

/** The most telling line of a failed run: the last one that is not progress or stream info. */
function lastError(log: string): string {
  const lines = log
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(
      (l) =>
        l &&
        !/^(frame=|size=|Stream #|Output |Input #|Metadata|Duration|\[.*\] (Opening|Setting|Before|After))/.test(
          l,
        ),
    );
  return (lines.at(-1) ?? 'unknown error').slice(0, 300);
}
