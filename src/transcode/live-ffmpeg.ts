// What both live transcodes need from their ffmpeg child: it starts on a keyframe (its decoder
// needs one), at most once a second, and after a crash the next keyframe is asked for so that it
// starts again on it.
import type { Logger } from 'pino';
import { type FfmpegExit, FfmpegProcess } from './ffmpeg-process.ts';

const MIN_RESTART_GAP_MS = 1000;

export interface LiveFfmpegOptions {
  /** Names the child in log lines: "VP8 encoder", "ingest transcoder". */
  name: string;
  requestKeyframe: () => void;
  logger: Logger;
  now?: () => number;
  binary?: string;
}

/** How to run one child: its arguments, what it writes, and what to do once it runs. */
export interface LiveFfmpegRun {
  args: string[];
  onStdout: (chunk: Buffer, proc: FfmpegProcess) => void;
  onStarted?: (proc: FfmpegProcess) => void;
}

export class LiveFfmpeg {
  private proc?: FfmpegProcess;
  private lastStartAt = 0;
  private restartTimer?: NodeJS.Timeout;
  private readonly now: () => number;
  closed = false;
  /** Children started (1 + restarts). */
  starts = 0;

  constructor(private readonly opts: LiveFfmpegOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The child's pid (for CPU accounting), while one runs. */
  get pid(): number | undefined {
    return this.proc?.alive ? this.proc.pid : undefined;
  }

  /**
   * The running child for a frame, started now when the frame is a keyframe and the last start
   * is a second old; undefined when the frame cannot be used (no child, not a keyframe, closed).
   */
  childFor(keyframe: boolean, run: () => LiveFfmpegRun): FfmpegProcess | undefined {
    if (this.closed) return undefined;
    if (this.proc?.alive) return this.proc;
    if (!keyframe || this.now() - this.lastStartAt < MIN_RESTART_GAP_MS) return undefined;
    this.lastStartAt = this.now();
    this.starts++;
    const { args, onStdout, onStarted } = run();
    const proc = new FfmpegProcess({
      binary: this.opts.binary,
      args,
      onStdout: (chunk) => {
        if (this.proc === proc) onStdout(chunk, proc);
      },
      onExit: (exit) => this.onExit(proc, exit),
    });
    this.proc = proc;
    onStarted?.(proc);
    return proc;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.proc?.close();
  }

  private onExit(proc: FfmpegProcess, exit: FfmpegExit): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    if (exit.expected || this.closed) return;
    this.opts.logger.warn(
      { code: exit.code, signal: exit.signal, stderr: exit.stderrTail },
      `${this.opts.name} (ffmpeg) died: restarting it on the next keyframe`,
    );
    this.restartTimer = setTimeout(() => this.opts.requestKeyframe(), MIN_RESTART_GAP_MS);
    this.restartTimer.unref();
  }
}
