// go-livepeer's live AI heartbeat (-liveAIHeartbeatURL, server/ai_mediaserver.go startHearbeats):
// every interval the gateway posts the ids of its live streams, and ends at once those the answer
// names in `terminatedStreamIds` (credit used up, say). Unlike go-livepeer, each call has a
// timeout, so a hung endpoint cannot stop the heartbeats that follow.
import type { Logger } from 'pino';
import { fetchFailure, readCapped, sanitizeReason } from './operator-http.ts';

/** An answer larger than this is not read. */
const MAX_ANSWER_BYTES = 1024 * 1024;
/** Why the streams end: what later requests on them are told ("stream ended: ..."). */
export const TERMINATED_REASON = 'terminated by the operator';

export interface HeartbeatOptions {
  url: string;
  /** Sent with every heartbeat (they may override Content-Type, as in go-livepeer). */
  headers: Record<string, string>;
  intervalMs: number;
  /** Per call; default: the interval (so calls never pile up). */
  timeoutMs?: number;
  /** The ids of the live streams now. */
  ids: () => string[];
  /** Ends these streams; resolves with the names ended. */
  terminate: (ids: string[], reason: string) => Promise<string[]>;
  logger: Logger;
}

export interface HeartbeatStats {
  sent: number;
  failed: number;
  terminated: number;
  lastError: string | null;
}

export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private readonly stats_: HeartbeatStats = { sent: 0, failed: 0, terminated: 0, lastError: null };

  constructor(private readonly opts: HeartbeatOptions) {}

  /** The first heartbeat goes one interval from now, as go-livepeer's ticker sends it. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // One call at a time: a slow answer skips a beat rather than stacking calls.
      if (!this.running) this.running = this.beat().finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer; resolves once a call under way has finished. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  stats(): HeartbeatStats {
    return { ...this.stats_ };
  }

  /** One heartbeat: post the ids, end the streams the answer names. Never rejects. */
  async beat(): Promise<void> {
    const { url, logger } = this.opts;
    const timeoutMs = this.opts.timeoutMs ?? this.opts.intervalMs;
    const ids = this.opts.ids();
    let answer: Buffer | undefined;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.opts.headers },
        body: JSON.stringify({ ids }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      answer = await readCapped(res, MAX_ANSWER_BYTES);
      if (res.status < 200 || res.status >= 300) {
        const detail = answer ? sanitizeReason(answer.toString('utf8'), 120) : '';
        return this.failed(`HTTP ${res.status}${detail ? `: ${detail}` : ''}`);
      }
    } catch (err) {
      return this.failed(fetchFailure(err, timeoutMs));
    }
    this.stats_.sent++;
    this.stats_.lastError = null;
    if (!answer) return this.failed(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
    if (answer.length === 0) return;
    let terminated: unknown;
    try {
      terminated = (JSON.parse(answer.toString('utf8')) as { terminatedStreamIds?: unknown })
        ?.terminatedStreamIds;
    } catch {
      return this.failed('answer is not JSON');
    }
    if (terminated === undefined || terminated === null) return;
    if (!Array.isArray(terminated) || terminated.some((id) => typeof id !== 'string')) {
      return this.failed('terminatedStreamIds is not an array of strings');
    }
    if (terminated.length === 0) return;
    const ended = await this.opts.terminate(terminated as string[], TERMINATED_REASON);
    this.stats_.terminated += ended.length;
    if (ended.length) logger.info({ streams: ended }, 'live streams terminated by the heartbeat service');
  }

  private failed(why: string): void {
    // Heartbeat failures never end streams: the service decides only when it answers.
    this.stats_.failed++;
    this.stats_.lastError = why;
    this.opts.logger.warn({ url: this.opts.url, why }, 'heartbeat failed');
  }
}
