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
import { LiveFfmpeg, type LiveFfmpegRun } from './live-ffmpeg.ts';

/** A crashed ffmpeg is restarted on the next keyframe, but not more often than this. */
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
  private readonly ffmpeg: LiveFfmpeg;
  private demuxer = new TsDemuxer();
  private readonly unwrap = new RtpTimestampUnwrapper();
  framesIn = 0;
  framesOut = 0;
  framesDropped = 0;

  constructor(private readonly opts: VpxToH264Options) {
    this.ffmpeg = new LiveFfmpeg({ ...opts, name: 'ingest transcoder' });
  }

  /** The child's pid (for CPU accounting), while one runs. */
  get pid(): number | undefined {
    return this.ffmpeg.pid;
  }

  /** ffmpeg processes started (1 + restarts). */
  get starts(): number {
    return this.ffmpeg.starts;
  }

  push(frame: VpxFrame): void {
    if (this.ffmpeg.closed) return;
    const pts = this.unwrap.unwrap(frame.rtpTimestamp);
    // ffmpeg must start on a keyframe (and again on one after a crash).
    const proc = this.ffmpeg.childFor(frame.keyframe, () => this.run(frame));
    if (!proc) {
      this.framesDropped++;
      return;
    }
    const ok = proc.write(Buffer.concat([ivfFrameHeader(frame.data.length, pts), frame.data]));
    if (ok) this.framesIn++;
    else this.framesDropped++;
  }

  close(): void {
    this.ffmpeg.close();
  }

  private run(first: VpxFrame): LiveFfmpegRun {
    this.demuxer = new TsDemuxer();
    const gopFrames = Math.max(15, Math.round((ASSUMED_FPS * this.opts.gopMs) / 1000));
    const fourcc = first.codec === 'vp8' ? 'VP80' : first.codec === 'vp9' ? 'VP90' : 'AV01';
    return {
      args: vpxToH264Args(gopFrames),
      onStdout: (chunk) => this.onTs(this.demuxer.push(chunk)),
      onStarted: (proc) => {
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
      },
    };
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
}
