// Media fixtures for tests: H.264 + Opus MPEG-TS made by ffmpeg, and decoding to pixels.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ClipOptions {
  seconds: number;
  width?: number;
  height?: number;
  fps?: number;
  /** Seconds per GOP = per segment. */
  gopSeconds?: number;
  /** B-frames between references (libx264 main profile, pyramid as x264 sets it); default 0, baseline-like. */
  bFrames?: number;
}

/** The x264 options for a clip with or without B-frames. */
function x264Args(bFrames: number): string[] {
  return bFrames > 0 ? ['-profile:v', 'main', '-bf', String(bFrames)] : ['-bf', '0'];
}

/** An H.264 elementary stream (Annex-B, baseline, no B-frames), darkened so an inverted copy is obvious. */
export async function makeH264Clip(opts: ClipOptions & { dark?: boolean; kbps?: number }): Promise<Buffer> {
  const { seconds, width = 320, height = 240, fps = 30, gopSeconds = 1 } = opts;
  // Capped like a WebRTC encoder's target (ultrafast alone makes ~7.6 Mbit/s at 720p).
  const rate = opts.kbps
    ? ['-b:v', `${opts.kbps}k`, '-maxrate', `${opts.kbps}k`, '-bufsize', `${opts.kbps}k`]
    : [];
  const gop = Math.round(fps * gopSeconds);
  const filter = `testsrc2=size=${width}x${height}:rate=${fps}${opts.dark === false ? '' : ',lutyuv=y=val*0.4'}`;
  const { stdout } = await runBuffer('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', filter, '-t', String(seconds)],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-profile:v', 'baseline', '-g', String(gop), ...rate],
    ...[
      '-keyint_min',
      String(gop),
      '-sc_threshold',
      '0',
      '-bf',
      '0',
      '-pix_fmt',
      'yuv420p',
      '-f',
      'h264',
      '-',
    ],
  ]);
  return stdout;
}

/** One H.264 MPEG-TS segment, video only, as a transcoding push sends it (default 2 s 720p30, GOP 2 s). */
export async function makeTsSegment(opts: ClipOptions): Promise<Buffer> {
  const { seconds, width = 1280, height = 720, fps = 30, gopSeconds = 2 } = opts;
  const { stdout } = await runBuffer('ffmpeg', [
    ...[
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${width}x${height}:rate=${fps}`,
    ],
    ...[
      '-t',
      String(seconds),
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      String(Math.round(fps * gopSeconds)),
    ],
    ...['-f', 'mpegts', '-'],
  ]);
  return stdout;
}

function runBuffer(cmd: string, args: string[]): Promise<{ stdout: Buffer }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 }, (err, stdout) =>
      err ? reject(err) : resolve({ stdout }),
    );
  });
}

/**
 * A testsrc2 clip cut into one MPEG-TS segment per GOP (H.264, without B-frames unless asked for;
 * Opus audio), as go-livepeer sends.
 */
export async function makeSegments(opts: ClipOptions): Promise<Buffer[]> {
  const { seconds, width = 320, height = 240, fps = 30, gopSeconds = 1 } = opts;
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-clip-'));
  try {
    const gop = Math.round(fps * gopSeconds);
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`],
      ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
      ...['-t', String(seconds)],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', String(gop), '-keyint_min', String(gop)],
      ...['-sc_threshold', '0', ...x264Args(opts.bFrames ?? 0), '-pix_fmt', 'yuv420p'],
      ...['-c:a', 'libopus', '-b:a', '48k'],
      ...['-f', 'segment', '-segment_time', String(gopSeconds), '-segment_format', 'mpegts'],
      join(dir, 'seg%03d.ts'),
    ]);
    const names = (await readdir(dir)).filter((n) => n.endsWith('.ts')).sort();
    return Promise.all(names.map((n) => readFile(join(dir, n))));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * One MPEG-TS file of H.264 main profile with B-frames (libx264 `-bf`, closed GOPs cut at a fixed
 * interval), video only: what OBS with x264 sends. Its PES carry DTS ≠ PTS.
 */
export async function makeBFrameTs(opts: ClipOptions): Promise<Buffer> {
  const { seconds, width = 320, height = 240, fps = 30, gopSeconds = 1, bFrames = 2 } = opts;
  const gop = String(Math.round(fps * gopSeconds));
  const { stdout } = await runBuffer('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error'],
    ...['-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`, '-t', String(seconds)],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', gop, '-keyint_min', gop, '-sc_threshold', '0'],
    ...[...x264Args(bFrames), '-pix_fmt', 'yuv420p', '-f', 'mpegts', '-'],
  ]);
  return stdout;
}

/** The MD5 of each decoded picture, in presentation order (ffmpeg `-f framemd5`, no frame dropped or doubled). */
export async function frameMd5s(ts: Uint8Array): Promise<string[]> {
  const { stdout } = await ffmpegWithInput(ts, ['-an', '-fps_mode', 'passthrough', '-f', 'framemd5', '-']);
  return stdout
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(',').pop()!.trim());
}

/**
 * What ffmpeg warns about (level "warning", which is where "DTS … out of order", "Invalid DTS" and
 * "non monotonically increasing dts" are printed) while decoding `ts` and while remuxing it with
 * its timestamps copied. Empty when both are clean.
 */
export async function ffmpegTimestampWarnings(ts: Uint8Array): Promise<string> {
  const decode = await ffmpegWithInput(ts, ['-f', 'null', '-'], 'warning');
  const remux = await ffmpegWithInput(ts, ['-c', 'copy', '-copyts', '-f', 'mpegts', '-'], 'warning');
  return `${decode.stderr}${remux.stderr}`.trim();
}

function ffmpegWithInput(
  ts: Uint8Array,
  output: string[],
  level = 'error',
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ffmpeg',
      ['-hide_banner', '-v', level, '-f', 'mpegts', '-i', 'pipe:0', ...output],
      { encoding: 'latin1', maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    );
    child.stdin?.end(ts);
  });
}

/** Decodes video (MPEG-TS, or a raw H.264 elementary stream with format 'h264') to grayscale frames. */
export async function decodeGray(
  ts: Buffer,
  width = 64,
  height = 48,
  format: 'mpegts' | 'h264' | 'ivf' = 'mpegts',
): Promise<Uint8Array[]> {
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-decode-'));
  try {
    const input = join(dir, 'in.ts');
    const output = join(dir, 'out.gray');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(input, ts);
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-f', format, '-i', input, '-an'],
      ...['-vf', `scale=${width}:${height}`, '-pix_fmt', 'gray', '-f', 'rawvideo', output],
    ]);
    const raw = await readFile(output);
    const size = width * height;
    const frames: Uint8Array[] = [];
    for (let i = 0; i + size <= raw.length; i += size) frames.push(raw.subarray(i, i + size));
    return frames;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function mean(frame: Uint8Array): number {
  let sum = 0;
  for (const v of frame) sum += v;
  return sum / frame.length;
}

/** Mean absolute difference between two frames, after mapping `a` through `f`. */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array, f: (v: number) => number = (v) => v): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(f(a[i]) - b[i]);
  return sum / a.length;
}

/**
 * Decodes a raw H.264 elementary stream as a player would: how many pictures came out, and what
 * the decoder complained about (e.g. "non-existing PPS 0 referenced" when it did not start on
 * SPS/PPS + IDR). Empty `errors` means it decoded cleanly.
 */
export async function h264DecodeReport(annexB: Uint8Array): Promise<{ frames: number; errors: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'ffmpeg',
      [
        '-hide_banner',
        '-v',
        'error',
        '-f',
        'h264',
        '-i',
        'pipe:0',
        '-an',
        '-fps_mode',
        'passthrough',
        '-f',
        'framemd5',
        '-',
      ],
      { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && !stderr) return reject(err);
        const frames = stdout.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
        resolve({ frames, errors: stderr.trim() });
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(annexB);
  });
}

/**
 * testsrc2 at 320×240 30 fps for `seconds`, encoded with `encoderArgs` (codec, speed, GOP, rate)
 * into IVF: the VP8/VP9/AV1 publishers' clips.
 */
export async function makeIvfClip(seconds: number, encoderArgs: string[]): Promise<Buffer> {
  const { stdout } = await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
      ...['-t', String(seconds), ...encoderArgs, '-f', 'ivf', 'pipe:1'],
    ],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

/** ffmpeg children of this process (a gateway running in it) whose command line has `pattern`. */
export async function ffmpegChildren(pattern: string): Promise<number> {
  const { stdout } = await run('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)]).catch(() => ({
    stdout: '',
  }));
  return stdout.split('\n').filter((l) => l.includes('ffmpeg') && l.includes(pattern)).length;
}
