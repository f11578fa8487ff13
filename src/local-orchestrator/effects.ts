// CPU video effects for the local orchestrator: one MPEG-TS segment in, one out.
// `passthrough` copies bytes with no decode at all; the others run ffmpeg, which is
// started one segment ahead so its start-up does not add to each segment's latency.
// An output size or frame rate (the ai-runner-like behaviour) puts every effect through ffmpeg.
import { PassThrough, type Readable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import type { FrameSize } from '../config/fault.ts';

/** Effect name → ffmpeg video filter (null: no ffmpeg). */
const FILTERS: Record<string, string | null> = {
  passthrough: null,
  invert: 'negate',
  edges: 'edgedetect=low=0.1:high=0.3',
  grayscale: 'hue=s=0',
};

export const EFFECTS = Object.keys(FILTERS);

export function isEffect(name: unknown): name is string {
  return typeof name === 'string' && Object.hasOwn(FILTERS, name);
}

export interface SegmentSink {
  write(chunk: Uint8Array): boolean;
  end(): Promise<void>;
  abort(): void;
}

/** A prepared transform for one segment. */
export interface EffectRun {
  readonly effect: string;
  /** Streams `input` through the effect into `output`; resolves once output has ended. */
  run(input: Readable, output: SegmentSink): Promise<void>;
  cancel(): void;
}

/** The output picture, when it is not the input's. */
export interface OutputShape {
  size?: FrameSize;
  fps?: number;
}

export function prepareEffect(effect: string, output: OutputShape = {}): EffectRun {
  const filter = FILTERS[effect];
  if (filter === undefined) throw new Error(`unknown effect ${effect}`);
  const reshape = [
    // Cover the frame, then centre-crop, as ai-runner's decoder does for its 512x512.
    ...(output.size
      ? [
          `scale=${output.size.width}:${output.size.height}:force_original_aspect_ratio=increase`,
          `crop=${output.size.width}:${output.size.height}`,
        ]
      : []),
    ...(output.fps ? [`fps=${output.fps}`] : []),
  ];
  if (filter === null && reshape.length === 0) return passthrough();
  return ffmpegEffect(effect, [...(filter === null ? [] : [filter]), ...reshape].join(','));
}

function passthrough(): EffectRun {
  let cancelled = false;
  return {
    effect: 'passthrough',
    async run(input, output) {
      for await (const chunk of input) {
        if (cancelled) break;
        output.write(chunk as Buffer);
      }
      await output.end();
    },
    cancel() {
      cancelled = true;
    },
  };
}

function ffmpegEffect(effect: string, filter: string): EffectRun {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const command = ffmpeg(stdin)
    .inputFormat('mpegts')
    // Small probe so the first frame goes out as soon as it is decoded.
    .inputOptions(['-probesize', '65536', '-analyzeduration', '200000'])
    .outputOptions([
      '-map 0:v:0',
      '-map 0:a?',
      '-fps_mode passthrough',
      '-copyts', // keep the input timestamps so output segments line up with input ones
      '-muxdelay 0',
      '-muxpreload 0',
      `-vf ${filter}`,
      '-c:v libx264',
      '-preset ultrafast',
      '-tune zerolatency',
      '-bf 0',
      '-g 600',
      '-pix_fmt yuv420p',
      '-c:a copy',
      '-flush_packets 1',
    ])
    .format('mpegts');
  const done = new Promise<void>((resolve, reject) => {
    command.on('end', () => resolve());
    command.on('error', (err: Error) => reject(err));
  });
  command.pipe(stdout, { end: true });
  // Surface spawn errors only when the run is used; a cancelled warm process may fail quietly.
  done.catch(() => {});
  return {
    effect,
    async run(input, output) {
      input.pipe(stdin);
      const forward = (async () => {
        for await (const chunk of stdout) output.write(chunk as Buffer);
      })();
      try {
        await Promise.all([done, forward]);
      } catch (err) {
        output.abort();
        throw new Error(`effect ${effect} failed: ${(err as Error).message.split('\n')[0]}`);
      }
      await output.end();
    },
    cancel() {
      stdin.destroy();
      command.kill('SIGKILL');
    },
  };
}
