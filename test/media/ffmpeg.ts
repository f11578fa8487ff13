// ffmpeg/ffprobe as an independent oracle for the media tests.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Workdir {
  path(name: string): string;
  write(name: string, data: Uint8Array | Uint8Array[]): Promise<string>;
  remove(): Promise<void>;
}

export async function makeWorkdir(): Promise<Workdir> {
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-media-'));
  return {
    path: (name) => join(dir, name),
    async write(name, data) {
      const file = join(dir, name);
      await writeFile(file, Array.isArray(data) ? Buffer.concat(data) : data);
      return file;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A test clip as a single MPEG-TS file: H.264 baseline (no B-frames, 320x240, 30 fps, GOP 30) and
 * stereo Opus at a constant 128 kb/s, so its packets (320 bytes) need multi-byte au_size in TS.
 */
export async function makeClip(dir: Workdir, seconds = 2): Promise<Buffer> {
  const file = dir.path('clip.ts');
  await run('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    ...['-t', String(seconds)],
    ...['-c:v', 'libx264', '-preset', 'ultrafast', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p'],
    ...['-g', '30', '-keyint_min', '30', '-sc_threshold', '0', '-bf', '0'],
    ...['-c:a', 'libopus', '-b:a', '128k', '-vbr', 'off', '-ac', '2'],
    ...['-f', 'mpegts', file],
  ]);
  return readFile(file);
}

export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  profile?: string;
  channels?: number;
  width?: number;
  height?: number;
  nb_read_frames?: string;
}

/** Streams of a file as ffprobe sees them, with decoded frame counts. */
export async function probe(file: string): Promise<ProbedStream[]> {
  const { stdout } = await run('ffprobe', [
    ...['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file],
  ]);
  return (JSON.parse(stdout) as { streams: ProbedStream[] }).streams;
}

/** What ffmpeg prints at level "error" while decoding the whole file (empty when it decodes cleanly). */
export async function decodeErrors(file: string): Promise<string> {
  const { stderr } = await run('ffmpeg', ['-hide_banner', '-v', 'error', '-i', file, '-f', 'null', '-']);
  return stderr.trim();
}
