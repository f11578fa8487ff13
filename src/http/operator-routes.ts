// What an operator runs the gateway with: readiness (/readyz, apart from /healthz), draining for
// a graceful shutdown (new streams and jobs get 503 + Retry-After, requests under way are
// waited for, then handed back), and the stream events as Server-Sent Events at /live/events.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Secret } from '../config/index.ts';
import { LiveError } from '../live/errors.ts';
import type { LiveStreams } from '../live/registry.ts';
import type { StreamEvent } from '../live/stream-events.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import { carries } from './auth.ts';

/** What a refused client is told to wait before trying again (another instance, a restart). */
export const DRAIN_RETRY_AFTER_S = 5;
const EVENTS_PATH = '/live/events';

/**
 * The gateway's shutdown state, seen by the HTTP layer: once `start()`ed, new work is refused
 * and the requests under way can be waited for (`settle`) and then handed back (`handBack`).
 */
export class Drain {
  private started = false;
  private readonly inflight = new Set<{ req: FastifyRequest; reply: FastifyReply }>();
  private readonly idle = new Set<() => void>();

  get draining(): boolean {
    return this.started;
  }

  start(): void {
    this.started = true;
  }

  /** Requests under way (the events stream not counted). */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Resolves once no request is under way, or at `deadline` (ms since the epoch). */
  async settle(deadline: number): Promise<void> {
    if (this.inflight.size === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.idle.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      this.idle.add(done);
    });
  }

  /**
   * Answers the requests still under way with 503 + Retry-After (their work is given up: a client
   * retries it elsewhere); one whose answer has begun is cut off. Returns how many.
   */
  handBack(): number {
    let n = 0;
    for (const { reply } of this.inflight) {
      n++;
      const res = reply.raw;
      if (res.headersSent) {
        res.destroy();
        continue;
      }
      reply.hijack();
      const body = JSON.stringify({
        error: { code: 'SHUTTING_DOWN', message: 'the gateway is shutting down; try again' },
      });
      res.writeHead(503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'retry-after': String(DRAIN_RETRY_AFTER_S),
        connection: 'close',
      });
      res.end(body);
    }
    this.inflight.clear();
    for (const done of [...this.idle]) done();
    return n;
  }

  /** @internal the hooks below */
  track(req: FastifyRequest, reply: FastifyReply): void {
    const entry = { req, reply };
    this.inflight.add(entry);
    const release = () => {
      if (!this.inflight.delete(entry)) return;
      if (this.inflight.size === 0) for (const done of [...this.idle]) done();
    };
    reply.raw.once('finish', release);
    reply.raw.once('close', release);
  }
}

/** New work: anything that starts a stream, a viewer, a batch job or a transcode (POST/PUT), not /update. */
function isNewWork(method: string, url: string): boolean {
  if (method !== 'POST' && method !== 'PUT') return false;
  const path = url.split('?')[0];
  return !path.endsWith('/update');
}

export interface OperatorRoutesOptions {
  streams: LiveStreams;
  pool: OrchestratorPool;
  drain: Drain;
  /** The clients of /live/events (their count, drops; shutdown ends them). */
  sse: SseClients;
  /** Bearer token for /live/events (and for protected streams' status and /live/streams). */
  operatorToken?: Secret;
}

export interface SseStats {
  clients: number;
  /** Clients dropped because they could not keep up (their buffer passed the bound). */
  dropped: number;
  /** Events written to clients. */
  sent: number;
}

/** The /live/events clients: bounded in number and, each, in what waits to be sent to it. */
export class SseClients {
  readonly clients = new Set<FastifyReply['raw']>();
  dropped = 0;
  sent = 0;

  constructor(
    readonly opts: {
      /** A client is dropped once this much is waiting to be sent to it. */
      maxBufferedBytes?: number;
      /** A comment line this often keeps proxies from closing an idle stream. */
      keepaliveMs?: number;
      maxClients?: number;
    } = {},
  ) {}

  stats(): SseStats {
    return { clients: this.clients.size, dropped: this.dropped, sent: this.sent };
  }

  /** Ends every events stream (after the last events went out: shutdown). */
  closeAll(): void {
    for (const res of this.clients) res.end();
  }
}

/** Registered with skip-override (as fastify-plugin does), so its hooks see every route. */
export const operatorRoutes: FastifyPluginAsync<OperatorRoutesOptions> = async (app, opts) => {
  const { drain, streams, sse } = opts;
  const maxBuffered = sse.opts.maxBufferedBytes ?? 1024 * 1024;
  const keepaliveMs = sse.opts.keepaliveMs ?? 15_000;
  const maxClients = sse.opts.maxClients ?? 64;

  app.addHook('onRequest', async (req, reply) => {
    if (drain.draining && isNewWork(req.method, req.url)) {
      // Answered here, not thrown: the batch and transcoding routes have error handlers of their own.
      return reply
        .code(503)
        .header('Retry-After', String(DRAIN_RETRY_AFTER_S))
        .header('Connection', 'close')
        .send({
          error: {
            code: 'SHUTTING_DOWN',
            message: 'the gateway is shutting down and takes no new streams or jobs',
          },
        });
    }
    if (req.url.split('?')[0] !== EVENTS_PATH) drain.track(req, reply);
  });

  app.get('/readyz', async (_req, reply) => {
    const reason = drain.draining ? 'shutting down' : noOrchestrator(opts.pool);
    return reply
      .code(reason ? 503 : 200)
      .send({ ready: !reason, reason: reason ?? null, streams: streams.liveCount });
  });

  app.get<{ Querystring: { stream?: string } }>(EVENTS_PATH, async (req, reply) => {
    if (!opts.operatorToken) {
      throw new LiveError(404, 'NOT_ENABLED', 'stream events are served only when -liveOperatorToken is set');
    }
    if (!carries(req, opts.operatorToken))
      throw new LiveError(401, 'UNAUTHORIZED', 'missing or wrong Bearer token');
    if (sse.clients.size >= maxClients) {
      reply.header('Retry-After', '10');
      throw new LiveError(
        503,
        'TOO_MANY_CLIENTS',
        `at most ${maxClients} clients read stream events at once`,
      );
    }
    const only = typeof req.query.stream === 'string' && req.query.stream ? req.query.stream : undefined;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
      'access-control-allow-origin': '*',
    });
    res.write(': lp-gateway stream events\n\n');
    sse.clients.add(res);
    const send = (text: string): void => {
      if (res.writableLength + text.length > maxBuffered) {
        // Bounded: a client that cannot keep up is dropped, not buffered without end.
        sse.dropped++;
        req.log.warn({ buffered: res.writableLength }, 'events client too slow: dropped');
        close();
        res.destroy();
        return;
      }
      res.write(text);
    };
    const unsubscribe = streams.events.subscribe((event: StreamEvent, json: string) => {
      if (only && event.data.stream !== only && event.data.stream_id !== only) return;
      sse.sent++;
      send(`id: ${event.id}\nevent: ${eventName(event.data.type)}\ndata: ${json}\n\n`);
    });
    const keepalive = setInterval(() => send(': keepalive\n\n'), keepaliveMs);
    const close = () => {
      if (!sse.clients.delete(res)) return;
      clearInterval(keepalive);
      unsubscribe();
    };
    res.once('close', close);
  });
};
(operatorRoutes as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

/** An SSE `event:` name: the event's type, only letters, digits, "_", "." and "-". */
function eventName(type: string): string {
  return type.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'message';
}

/** Why no stream can be taken for want of an orchestrator, or undefined when one is known. */
function noOrchestrator(pool: OrchestratorPool): string | undefined {
  const usable = pool
    .list()
    .some((o) => o.state === 'available' || o.state === 'busy' || o.state === 'suspended');
  return usable ? undefined : 'no orchestrator known';
}
