// One long-running ffmpeg child fed on stdin and read on stdout, for the live transcodes (VP8/VP9/AV1
// ingest → H.264, H.264 → VP8 for viewers). Keeps the tail of stderr so a death can be explained.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

const STDERR_TAIL_LINES = 12;
/** After stdin ends, ffmpeg gets this long to flush and exit before it is killed. */
const KILL_AFTER_MS = 2000;

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines ffmpeg wrote to stderr. */
  stderrTail: string;
  /** close() was called: the exit was asked for. */
  expected: boolean;
}

export interface FfmpegProcessOptions {
  args: string[];
  onStdout: (chunk: Buffer) => void;
  onExit: (exit: FfmpegExit) => void;
  /** Default `ffmpeg` from PATH. */
  binary?: string;
}

export class FfmpegProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly tail: string[] = [];
  private partial = '';
  private closing = false;
  private exited = false;
  /** Bytes written while stdin was backed up; a stuck ffmpeg makes writes fail rather than pile up. */
  private backlog = 0;

  constructor(opts: FfmpegProcessOptions) {
    this.child = spawn(
      opts.binary ?? 'ffmpeg',
      ['-hide_banner', '-nostdin', '-loglevel', 'warning', ...opts.args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    this.child.stdout.on('data', (chunk: Buffer) => opts.onStdout(chunk));
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (text: string) => this.keepStderr(text));
    // EPIPE when ffmpeg died with input pending: the exit handler reports the death.
    this.child.stdin.on('error', () => {});
    this.child.stdin.on('drain', () => {
      this.backlog = 0;
    });
    this.child.on('error', (err) => this.keepStderr(`spawn failed: ${err.message}\n`));
    this.child.on('close', (code, signal) => {
      this.exited = true;
      if (this.partial) this.tail.push(this.partial);
      opts.onExit({ code, signal, stderrTail: this.tail.join('\n'), expected: this.closing });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.exited && !this.closing;
  }

  /**
   * Writes to ffmpeg's stdin. Returns false (and writes nothing) when ffmpeg is gone or has more
   * than maxBacklog bytes unread: a live transcode drops input rather than queueing it.
   */
  write(bytes: Uint8Array, maxBacklog = 8 * 1024 * 1024): boolean {
    if (!this.alive || this.backlog > maxBacklog) return false;
    if (!this.child.stdin.write(bytes)) this.backlog += bytes.length;
    return true;
  }

  /** Ends stdin, then kills ffmpeg if it has not exited soon after. Idempotent. */
  close(): void {
    if (this.closing || this.exited) return;
    this.closing = true;
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), KILL_AFTER_MS);
    timer.unref();
    this.child.once('close', () => clearTimeout(timer));
  }

  /** Kills at once (tests; a transcode that must stop now). */
  kill(): void {
    this.closing = true;
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private keepStderr(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      this.tail.push(line);
      if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
    }
  }
}
