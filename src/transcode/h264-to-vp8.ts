// The stream's processed H.264 → VP8, for WHEP viewers that offer no H.264. One ffmpeg per stream,
// shared by all such viewers, started with the first and stopped with the last (the caller's job).
// Raw Annex-B in (each access unit followed by an AUD, so ffmpeg's parser ends the frame at once
// instead of waiting for the next one), IVF out.
import type { Logger } from 'pino';
import { type DemuxedVideo, IvfReader, splitAnnexB } from '../media/index.ts';
import type { FfmpegProcess } from './ffmpeg-process.ts';
import { LiveFfmpeg } from './live-ffmpeg.ts';

const AUD = Buffer.from([0, 0, 0, 1, 0x09, 0xf0]);
const START_CODE = Buffer.from([0, 0, 0, 1]);
/** Keyframe at least every this many frames, besides one per H.264 keyframe (-force_key_frames source). */
const GOP_FRAMES = 60;

export interface H264ToVp8Options {
  /** Each VP8 frame, shaped like a demuxed frame (annexB holds the VP8 bytes), timed by the wall clock. */
  onFrame: (frame: DemuxedVideo) => void;
  /** An H.264 keyframe is needed from upstream ((re)start, or a viewer asked for one). */
  requestKeyframe: () => void;
  logger: Logger;
  now?: () => number;
  binary?: string;
}

export function h264ToVp8Args(): string[] {
  return [
    // One decoder thread: frame threading holds a frame per thread. No -fflags nobuffer (it drops the probed keyframe).
    // -cpu-used 16 and 2 threads: at 8 a loaded 2-core machine fell behind real time at 640x480.
    ...['-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0', '-threads', '1'],
    ...['-f', 'h264', '-i', 'pipe:0', '-an'],
    ...['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '16', '-lag-in-frames', '0', '-threads', '2'],
    ...['-error-resilient', '1', '-b:v', '1500k', '-g', String(GOP_FRAMES), '-force_key_frames', 'source'],
    ...['-fps_mode', 'passthrough', '-flush_packets', '1', '-f', 'ivf', 'pipe:1'],
  ];
}

export class H264ToVp8 {
  private readonly ffmpeg: LiveFfmpeg;
  private reader = new IvfReader();
  private readonly now: () => number;
  private readonly startedAt: number;
  framesIn = 0;
  framesOut = 0;

  constructor(private readonly opts: H264ToVp8Options) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.ffmpeg = new LiveFfmpeg({ ...opts, name: 'VP8 encoder' });
  }

  get pid(): number | undefined {
    return this.ffmpeg.pid;
  }

  /** ffmpeg processes started (1 + restarts). */
  get starts(): number {
    return this.ffmpeg.starts;
  }

  push(frame: DemuxedVideo): void {
    const proc = this.ffmpeg.childFor(frame.keyframe, () => {
      this.reader = new IvfReader();
      return {
        args: h264ToVp8Args(),
        onStdout: (chunk, p) => this.onIvf(p, chunk),
        onStarted: (p) =>
          this.opts.logger.info({ pid: p.pid }, 'encoding VP8 for viewers without H.264 (ffmpeg)'),
      };
    });
    if (!proc) return;
    // The frame's own AUD (MPEG-TS muxers add one) goes: ours, after it, is the one that ends it.
    const nalus = splitAnnexB(frame.annexB).filter((n) => n.length > 0 && (n[0] & 0x1f) !== 9);
    const parts = nalus.flatMap((n) => [START_CODE, n]);
    if (proc.write(Buffer.concat([...parts, AUD]))) this.framesIn++;
  }

  close(): void {
    this.ffmpeg.close();
  }

  private onIvf(proc: FfmpegProcess, chunk: Buffer): void {
    let frames: ReturnType<IvfReader['push']>;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.opts.logger.warn({ err }, 'VP8 encoder wrote bad IVF: restarting it');
      proc.kill();
      return;
    }
    for (const f of frames) {
      this.framesOut++;
      const pts90k = 90_000 + Math.round((this.now() - this.startedAt) * 90);
      this.opts.onFrame({
        kind: 'video',
        codec: 'h264',
        pid: 0,
        annexB: f.data,
        pts90k,
        dts90k: pts90k,
        keyframe: f.data.length > 0 && (f.data[0] & 0x01) === 0,
      });
    }
  }
}
