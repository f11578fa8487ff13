// The gateway's graceful shutdown (SIGTERM, SIGINT): stop taking new streams and jobs, let the
// requests under way finish (then hand the rest back with 503 + Retry-After), end live streams
// cleanly, flush the stream events, close everything, and exit, all within a bounded time. A
// second signal exits at once.
import type { Logger } from 'pino';
import type { Drain, SseClients } from './http/operator-routes.ts';
import type { EventsWebhook } from './live/events-webhook.ts';
import type { Heartbeat } from './live/heartbeat.ts';
import type { LiveStreams } from './live/registry.ts';

/** The share of the timeout requests under way may use; the rest is for streams and events. */
const REQUESTS_SHARE = 0.6;
/** Kept for closing sockets and files after the events are flushed. */
const CLOSE_MARGIN_MS = 1000;

export interface ShutdownParts {
  drain: Drain;
  streams: LiveStreams;
  sse: SseClients;
  heartbeat?: Heartbeat;
  events?: EventsWebhook;
  /** Everything else, closed last in this order (the HTTP server, ports, stores, the chain). */
  close: (() => Promise<void> | void)[];
  timeoutMs: number;
  logger: Logger;
  exit?: (code: number) => void;
}

/** Runs the shutdown on the first SIGTERM/SIGINT; the second exits at once. */
export function installShutdown(parts: ShutdownParts): void {
  let running = false;
  const exit = parts.exit ?? ((code: number) => process.exit(code));
  const onSignal = (signal: NodeJS.Signals) => {
    if (running) {
      parts.logger.warn({ signal }, 'second signal: exiting now');
      exit(1);
      return;
    }
    running = true;
    void gracefulShutdown(parts, signal).then(
      () => exit(0),
      (err: unknown) => {
        parts.logger.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

export async function gracefulShutdown(parts: ShutdownParts, signal = 'SIGTERM'): Promise<void> {
  const { drain, streams, logger, timeoutMs } = parts;
  const started = Date.now();
  const deadline = started + timeoutMs;
  const exit = parts.exit ?? ((code: number) => process.exit(code));
  // Past the deadline the process goes, whatever is still under way.
  const force = setTimeout(() => {
    logger.warn({ timeoutMs }, 'shutdown took too long: exiting now');
    exit(1);
  }, timeoutMs);
  force.unref();

  drain.start();
  logger.info({ signal, timeoutMs, streams: streams.liveCount, requests: drain.inFlight }, 'shutting down');
  await parts.heartbeat?.stop();
  // Live streams do not end by themselves: end them now (jobs closed, peers closed, payments
  // under way finished) while the requests under way run on.
  const live = streams.closeAll('gateway shutting down');
  await drain.settle(started + timeoutMs * REQUESTS_SHARE);
  const handedBack = drain.handBack();
  if (handedBack) logger.warn({ requests: handedBack }, 'requests still under way handed back (503)');
  await within(live, deadline - CLOSE_MARGIN_MS);
  // The streams' last events (ingest closed) are queued by now.
  await parts.events?.flush(deadline - CLOSE_MARGIN_MS);
  parts.sse.closeAll();
  for (const close of parts.close) {
    await within(Promise.resolve().then(close), deadline).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'shutdown: a part did not close cleanly');
    });
  }
  clearTimeout(force);
  logger.info({ ms: Date.now() - started }, 'shut down');
}

/** `p`, or nothing once `deadline` (ms since the epoch) passes. */
async function within<T>(p: Promise<T>, deadline: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
