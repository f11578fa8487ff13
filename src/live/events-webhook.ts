// Delivers the stream events (stream-events.ts) to the operator's webhook, where go-livepeer
// writes them to Kafka: the same envelopes, POSTed as a JSON array per batch. The queue is
// bounded (the oldest events go first, counted); a batch that fails is retried with backoff;
// shutdown flushes what is queued within its deadline.
import type { Logger } from 'pino';
import { fetchFailure, sanitizeReason } from './operator-http.ts';
import type { StreamEvent, StreamEvents } from './stream-events.ts';

export interface EventsWebhookOptions {
  url: string;
  headers?: Record<string, string>;
  /** Events kept waiting at most (go-livepeer's Kafka queue: 100); the oldest are dropped first. */
  maxQueued?: number;
  /** Bytes of events kept waiting at most. */
  maxQueuedBytes?: number;
  /** At most this many events per POST (go-livepeer: 100). */
  batchSize?: number;
  /** A batch goes at most this long after its first event (go-livepeer: 1 s). */
  flushIntervalMs?: number;
  /** Per POST. */
  timeoutMs?: number;
  /** Tries per batch before it is dropped (counted). */
  maxAttempts?: number;
  /** Wait before the first retry; doubled each time, at most maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  logger: Logger;
}

export interface EventsWebhookStats {
  delivered: number;
  /** Dropped because the queue was full (oldest first). */
  droppedQueueFull: number;
  /** Dropped after every attempt failed, or refused by the webhook (a 4xx). */
  droppedFailed: number;
  queued: number;
  lastError: string | null;
}

const DEFAULTS = {
  maxQueued: 1000,
  maxQueuedBytes: 8 * 1024 * 1024,
  batchSize: 100,
  flushIntervalMs: 1000,
  timeoutMs: 10_000,
  maxAttempts: 5,
  backoffMs: 500,
  maxBackoffMs: 30_000,
};

export class EventsWebhook {
  private readonly o: typeof DEFAULTS & EventsWebhookOptions;
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private unsubscribe?: () => void;
  private closed = false;
  /** Set while flushing for shutdown: retries stop waiting past it. */
  private deadline?: number;
  private readonly s: EventsWebhookStats = {
    delivered: 0,
    droppedQueueFull: 0,
    droppedFailed: 0,
    queued: 0,
    lastError: null,
  };

  constructor(opts: EventsWebhookOptions) {
    this.o = { ...DEFAULTS, ...opts };
  }

  /** Takes every event the emitter sends from now on. */
  attach(events: StreamEvents): void {
    this.unsubscribe = events.subscribe((event, json) => this.push(event, json));
  }

  stats(): EventsWebhookStats {
    return { ...this.s, queued: this.queue.length };
  }

  push(_event: StreamEvent, json: string): void {
    if (this.closed) return;
    this.queue.push(json);
    this.queuedBytes += json.length;
    while (
      this.queue.length > this.o.maxQueued ||
      (this.queuedBytes > this.o.maxQueuedBytes && this.queue.length > 1)
    ) {
      this.queuedBytes -= (this.queue.shift() as string).length;
      this.s.droppedQueueFull++;
    }
    if (this.sending) return;
    if (this.queue.length >= this.o.batchSize) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.o.flushIntervalMs);
  }

  /**
   * Stops taking events and delivers what is queued, until `deadline` (ms since the epoch);
   * what is left then is dropped (counted). Resolves when done.
   */
  async flush(deadline: number): Promise<void> {
    this.unsubscribe?.();
    this.closed = true;
    this.deadline = deadline;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (Date.now() < deadline) {
      if (this.sending) await this.sending;
      else if (this.queue.length > 0) this.kick();
      else break;
    }
    if (this.sending) await this.sending;
    this.s.droppedFailed += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.o.batchSize);
    for (const json of batch) this.queuedBytes -= json.length;
    this.sending = this.deliver(batch).finally(() => {
      this.sending = undefined;
      // More came while we were busy: the next batch goes now if it is full, else on the timer.
      if (this.closed || this.queue.length === 0) return;
      if (this.queue.length >= this.o.batchSize) this.kick();
      else this.timer ??= setTimeout(() => this.kick(), this.o.flushIntervalMs);
    });
  }

  private async deliver(batch: string[]): Promise<void> {
    const body = `[${batch.join(',')}]`;
    let wait = this.o.backoffMs;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.post(body);
      if (outcome === 'ok') {
        this.s.delivered += batch.length;
        this.s.lastError = null;
        return;
      }
      const last = attempt >= this.o.maxAttempts || outcome === 'refused';
      const late = this.deadline !== undefined && Date.now() + wait >= this.deadline;
      if (last || late) {
        this.s.droppedFailed += batch.length;
        this.o.logger.warn({ events: batch.length, why: this.s.lastError }, 'events webhook: batch dropped');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, wait).unref());
      wait = Math.min(wait * 2, this.o.maxBackoffMs);
    }
  }

  /** One POST: `refused` is a 4xx other than 408/429 (trying again would not help). */
  private async post(body: string): Promise<'ok' | 'retry' | 'refused'> {
    const timeoutMs = this.deadline
      ? Math.max(1, Math.min(this.o.timeoutMs, this.deadline - Date.now()))
      : this.o.timeoutMs;
    try {
      const res = await fetch(this.o.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.o.headers },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) return 'ok';
      this.s.lastError = sanitizeReason(`HTTP ${res.status}`);
      return res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429
        ? 'refused'
        : 'retry';
    } catch (err) {
      this.s.lastError = fetchFailure(err, timeoutMs);
      return 'retry';
    }
  }
}
