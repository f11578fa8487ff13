// Pushes a stream's processed output to an RTMP server: an ffmpeg child fed the orchestrator's
// MPEG-TS output on stdin, `-c:v copy` (the runner's H.264 has no B-frames) and Opus → AAC (FLV
// carries no Opus), as go-livepeer does. When ffmpeg exits while the stream lives (server down,
// connection dropped), it is started again from the live edge after a backoff that doubles up to
// a cap. Nothing here touches the WHEP viewers: bytes that ffmpeg cannot take are dropped.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from 'pino';

export type RtmpOutputState = 'connecting' | 'live' | 'retrying' | 'stopped';

export interface RtmpOutputStatus {
  /** The URL with its stream key hidden. */
  url: string;
  state: RtmpOutputState;
  since: string;
  /** ffmpeg runs started after the first (reconnects). */
  restarts: number;
  lastError: string | null;
  bytesIn: number;
  bytesDropped: number;
}

export interface RtmpOutputOptions {
  url: string;
  logger: Logger;
  /** First retry delay, doubled per failure up to maxBackoffMs; reset after a run stayed live 10 s. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** ffmpeg's stdin may hold this much before bytes are dropped. */
  maxQueuedBytes?: number;
}

const STABLE_MS = 10_000;

/** rtmp://host/app/KEY → rtmp://host/app/*** (the key is a credential). */
export function redactRtmpUrl(url: string): string {
  try {
    const u = new URL(url);
    const parts = u.pathname.split('/');
    if (parts.length > 2) parts[parts.length - 1] = '***';
    return `${u.protocol}//${u.host}${parts.join('/')}${u.search ? '?***' : ''}`;
  } catch {
    return 'rtmp://(unparseable)';
  }
}

export class RtmpOutput {
  private child?: ChildProcess;
  private state: RtmpOutputState = 'connecting';
  private since = Date.now();
  private restarts = 0;
  private lastError: string | null = null;
  private backoffMs: number;
  private retryTimer?: NodeJS.Timeout;
  private startedAt = 0;
  private bytesIn = 0;
  private bytesDropped = 0;
  private stopped = false;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxQueuedBytes: number;

  constructor(private readonly opts: RtmpOutputOptions) {
    this.initialBackoffMs = opts.initialBackoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 4 * 1024 * 1024;
    this.backoffMs = this.initialBackoffMs;
    this.run();
  }

  /** Output MPEG-TS bytes as they come from the orchestrator. */
  write(chunk: Uint8Array): void {
    const stdin = this.child?.stdin;
    if (!stdin || stdin.destroyed || !stdin.writable) return;
    if (stdin.writableLength > this.maxQueuedBytes) {
      this.bytesDropped += chunk.length;
      return;
    }
    this.bytesIn += chunk.length;
    stdin.write(chunk);
  }

  status(): RtmpOutputStatus {
    return {
      url: redactRtmpUrl(this.opts.url),
      state: this.state,
      since: new Date(this.since).toISOString(),
      restarts: this.restarts,
      lastError: this.lastError,
      bytesIn: this.bytesIn,
      bytesDropped: this.bytesDropped,
    };
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.setState('stopped');
    const child = this.child;
    if (child) {
      child.stdin?.end();
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }
  }

  private setState(state: RtmpOutputState): void {
    if (this.state === state) return;
    this.state = state;
    this.since = Date.now();
    this.opts.logger.info({ url: redactRtmpUrl(this.opts.url), state }, 'RTMP output');
  }

  private run(): void {
    if (this.stopped) return;
    this.setState(this.restarts === 0 && !this.lastError ? 'connecting' : 'retrying');
    this.startedAt = Date.now();
    const child = spawn(
      'ffmpeg',
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-nostdin',
        '-f',
        'mpegts',
        '-analyzeduration',
        '2500000',
        '-i',
        'pipe:0',
        '-map',
        '0:v:0',
        '-map',
        '0:a:0?',
        '-c:v',
        'copy',
        '-c:a',
        'aac',
        '-progress',
        'pipe:1',
        '-stats_period',
        '0.5',
        '-f',
        'flv',
        this.opts.url,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.stdout?.on('data', (d: Buffer) => {
      // -progress: "frame=N" once frames reach the server.
      const m = /frame=(\d+)/.exec(d.toString());
      if (m && Number(m[1]) > 0 && this.child === child && !this.stopped) this.setState('live');
    });
    child.stdin?.on('error', () => {}); // EPIPE when ffmpeg exits: its exit handler reports it
    child.on('error', (err) => {
      this.lastError = `ffmpeg could not run: ${err.message}`;
    });
    child.on('close', (code) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      const lastLine = stderr.trim().split('\n').at(-1);
      this.lastError = `ffmpeg exited (${code}): ${lastLine || 'no message'}`;
      if (Date.now() - this.startedAt >= STABLE_MS && this.state === 'live')
        this.backoffMs = this.initialBackoffMs;
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
      this.setState('retrying');
      this.opts.logger.warn(
        { url: redactRtmpUrl(this.opts.url), error: this.lastError, retryInMs: delay },
        'RTMP output dropped',
      );
      this.retryTimer = setTimeout(() => {
        this.restarts++;
        this.run();
      }, delay);
    });
  }
}
