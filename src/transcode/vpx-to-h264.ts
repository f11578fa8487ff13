// A VP8/VP9/AV1 publisher's frames → H.264 access units, once per stream, by one ffmpeg child: IVF in
// on stdin, MPEG-TS out on stdout (timestamps carried through with -copyts). The access units go into
// the same Ingest path an H.264 publisher's do, so segments, GOP replay and failover are unchanged.
import type { Logger } from 'pino';
import type { VpxFrame } from '../media/index.ts';
import {
  type AccessUnit,
  ivfFileHeader,
  ivfFrameHeader,
  RtpTimestampUnwrapper,
  splitAnnexB,
  TsDemuxer,
} from '../media/index.ts';
import { type FfmpegExit, FfmpegProcess } from './ffmpeg-process.ts';

/** A crashed ffmpeg is restarted on the next keyframe, but not more often than this. */
const MIN_RESTART_GAP_MS = 1000;
/** Frame rate assumed to size the GOP (keyframes also follow the publisher's: -force_key_frames source). */
const ASSUMED_FPS = 30;

export interface VpxToH264Options {
  /** Segment length the ingest cuts at: the H.264 GOP is at most this long (at 30 fps). */
  gopMs: number;
  onAccessUnit: (au: AccessUnit) => void;
  /** A keyframe from the publisher is needed (ffmpeg (re)started). */
  requestKeyframe: () => void;
  logger: Logger;
  binary?: string;
}

/** ffmpeg arguments: low latency (no lookahead, no B-frames), one IDR per publisher keyframe and per GOP. */
export function vpxToH264Args(gopFrames: number): string[] {
  return [
    // No -fflags nobuffer: it throws away the packets read while probing, the first keyframe among them.
    ...['-probesize', '32', '-analyzeduration', '0', '-threads', '1'],
    ...['-f', 'ivf', '-i', 'pipe:0', '-an'],
    ...['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'baseline'],
    ...['-pix_fmt', 'yuv420p', '-bf', '0', '-g', String(gopFrames), '-keyint_min', '1'],
    ...['-force_key_frames', 'source', '-forced-idr', '1', '-fps_mode', 'passthrough', '-copyts'],
    ...['-muxdelay', '0', '-muxpreload', '0', '-flush_packets', '1', '-f', 'mpegts', 'pipe:1'],
  ];
}

export class VpxToH264 {
  private proc?: FfmpegProcess;
  private demuxer = new TsDemuxer();
  private readonly unwrap = new RtpTimestampUnwrapper();
  private lastStartAt = 0;
  private closed = false;
  private restartTimer?: NodeJS.Timeout;
  /** ffmpeg processes started (1 + restarts). */
  starts = 0;
  framesIn = 0;
  framesOut = 0;
  framesDropped = 0;

  constructor(private readonly opts: VpxToH264Options) {}

  /** The child's pid (for CPU accounting), while one runs. */
  get pid(): number | undefined {
    return this.proc?.alive ? this.proc.pid : undefined;
  }

  push(frame: VpxFrame): void {
    if (this.closed) return;
    const pts = this.unwrap.unwrap(frame.rtpTimestamp);
    if (!this.proc?.alive) {
      // ffmpeg must start on a keyframe (and again on one after a crash).
      if (!frame.keyframe || Date.now() - this.lastStartAt < MIN_RESTART_GAP_MS) {
        this.framesDropped++;
        return;
      }
      this.start(frame);
    }
    const proc = this.proc;
    if (!proc) return;
    const ok = proc.write(Buffer.concat([ivfFrameHeader(frame.data.length, pts), frame.data]));
    if (ok) this.framesIn++;
    else this.framesDropped++;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.proc?.close();
  }

  private start(first: VpxFrame): void {
    this.lastStartAt = Date.now();
    this.starts++;
    this.demuxer = new TsDemuxer();
    const gopFrames = Math.max(15, Math.round((ASSUMED_FPS * this.opts.gopMs) / 1000));
    const proc = new FfmpegProcess({
      binary: this.opts.binary,
      args: vpxToH264Args(gopFrames),
      onStdout: (chunk) => {
        if (this.proc === proc) this.onTs(this.demuxer.push(chunk));
      },
      onExit: (exit) => this.onExit(proc, exit),
    });
    this.proc = proc;
    const fourcc = first.codec === 'vp8' ? 'VP80' : first.codec === 'vp9' ? 'VP90' : 'AV01';
    proc.write(
      ivfFileHeader({
        fourcc,
        width: first.width || 640,
        height: first.height || 480,
        timebaseDen: 90000,
        timebaseNum: 1,
      }),
    );
    this.opts.logger.info(
      { codec: first.codec, pid: proc.pid },
      `transcoding ${first.codec} ingest to H.264 (ffmpeg)`,
    );
  }

  private onTs(frames: ReturnType<TsDemuxer['push']>): void {
    for (const f of frames) {
      if (f.kind !== 'video') continue;
      this.framesOut++;
      this.opts.onAccessUnit({
        annexB: f.annexB,
        nalus: splitAnnexB(f.annexB),
        rtpTimestamp: f.pts90k,
        pts90k: f.pts90k,
        keyframe: f.keyframe,
      });
    }
  }

  private onExit(proc: FfmpegProcess, exit: FfmpegExit): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    if (exit.expected || this.closed) return;
    this.opts.logger.warn(
      { code: exit.code, signal: exit.signal, stderr: exit.stderrTail },
      'ingest transcoder (ffmpeg) died: restarting it on the next keyframe from the publisher',
    );
    this.restartTimer = setTimeout(() => this.opts.requestKeyframe(), MIN_RESTART_GAP_MS);
    this.restartTimer.unref();
  }
}
