// The gateway's HTTP surface: pages from public/, health, and what it knows of orchestrators.
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LiveError } from '../live/errors.ts';
import type { LiveStreams } from '../live/registry.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import { OfferRejectedError } from '../webrtc/index.ts';
import { type BatchRoutesOptions, batchRoutes } from './batch-routes.ts';
import { type BodyBudget, installInputGuard } from './input-guard.ts';
import { type LiveRoutesOptions, liveRoutes } from './live-routes.ts';
import { Drain, type OperatorRoutesOptions, operatorRoutes, SseClients } from './operator-routes.ts';
import { type TranscodeRoutesOptions, transcodeRoutes } from './transcode-routes.ts';

const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

export interface GatewayAppOptions {
  pool: OrchestratorPool;
  streams: LiveStreams;
  live: Omit<LiveRoutesOptions, 'streams'>;
  bodyLimitBytes: number;
  /** Request bodies being read at once, in bytes, across all routes (-httpBodyBudgetBytes). */
  bodyBudget?: BodyBudget;
  logger: Logger;
  /** Served at GET /metrics in Prometheus' text format. */
  metrics?: Registry;
  /** Batch AI routes (POST /text-to-image, /llm, ...), /results and /openapi.json. */
  batch?: BatchRoutesOptions;
  /** Segment transcoding: PUT/POST /live/{manifestId}/{seq}.ts and HLS under /stream/. */
  transcode?: Omit<TranscodeRoutesOptions, 'pool' | 'logger'>;
  /** Draining for shutdown, /readyz and the /live/events stream (src/http/operator-routes.ts). */
  operator?: Omit<OperatorRoutesOptions, 'streams' | 'pool' | 'operatorToken'>;
  /**
   * Batch AI and transcoding jobs are not taken (a gateway paying through a remote signer): their
   * POST and PUT requests get 503 REMOTE_SIGNER with this reason.
   */
  refused?: { reason: string };
}

export async function buildGatewayApp(opts: GatewayAppOptions) {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes,
  });
  installInputGuard(app, { bodyLimitBytes: opts.bodyLimitBytes, bodyBudget: opts.bodyBudget });
  app.setErrorHandler((err: FastifyError | LiveError, req, reply) => {
    if (err instanceof LiveError) {
      if (err.status >= 500) req.log.warn({ code: err.code }, err.message);
      if (err.status === 401) reply.header('WWW-Authenticate', 'Bearer');
      if (err.retryAfterS !== undefined) reply.header('Retry-After', String(err.retryAfterS));
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    if (err instanceof OfferRejectedError) {
      return reply
        .code(err.status)
        .send({ error: { code: err.status === 406 ? 'NO_CODEC' : 'BAD_SDP', message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) {
      // A library's exception text (werift's, say) is for the log, never for the client.
      req.log.error({ err }, 'request failed');
      return reply
        .code(status)
        .send({ error: { code: 'INTERNAL', message: 'internal error; see the gateway log' } });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const message = `request body is larger than the limit of ${req.routeOptions.bodyLimit} bytes`;
      return reply.code(413).send({ error: { code: 'PAYLOAD_TOO_LARGE', message } });
    }
    reply.code(status).send({ error: { code: err.code ?? 'BAD_REQUEST', message: err.message } });
  });
  // Node answers "Expect: 100-continue" by itself, before any route runs, so a client is invited to
  // upload a body we then refuse mid-way (it sees a reset, not our 413). We answer it here instead:
  // a route with `config.refuseBeforeContinue` refuses a declared length over its bodyLimit first.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  app.addHook('preParsing', async (req, reply, payload) => {
    if (String(req.headers.expect).toLowerCase() !== '100-continue') return payload;
    const limit = req.routeOptions.bodyLimit;
    const refuse = (req.routeOptions.config as { refuseBeforeContinue?: boolean }).refuseBeforeContinue;
    if (refuse && limit !== undefined && Number(req.headers['content-length']) > limit) {
      throw new LiveError(
        413,
        'PAYLOAD_TOO_LARGE',
        `request body is larger than the limit of ${limit} bytes`,
      );
    }
    reply.raw.writeContinue();
    return payload;
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${req.url}` } });
  });
  await app.register(operatorRoutes, {
    drain: opts.operator?.drain ?? new Drain(),
    sse: opts.operator?.sse ?? new SseClients(),
    streams: opts.streams,
    pool: opts.pool,
    operatorToken: opts.live.operatorToken,
  });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/' });

  await app.register(liveRoutes, { ...opts.live, streams: opts.streams });
  const refused = opts.refused;
  await app.register(async (jobs) => {
    if (refused) {
      // Answered here: the batch and transcode routes' own error handlers know nothing of it.
      jobs.addHook('onRequest', async (req, reply) => {
        if (req.method !== 'POST' && req.method !== 'PUT') return;
        return reply.code(503).send({ error: { code: 'REMOTE_SIGNER', message: refused.reason } });
      });
    }
    if (opts.batch) await jobs.register(batchRoutes, opts.batch);
    if (opts.transcode) {
      await jobs.register(transcodeRoutes, { ...opts.transcode, pool: opts.pool, logger: opts.logger });
    }
  });

  app.get('/healthz', async () => ({ ok: true }));

  const metrics = opts.metrics;
  if (metrics) {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
  }

  // Every known orchestrator with its state and why; `?model=ID` gives the states for that model.
  app.get<{ Querystring: { model?: string } }>('/orchestrators', async (req) => {
    const model = typeof req.query.model === 'string' && req.query.model !== '' ? req.query.model : undefined;
    return { model: model ?? null, orchestrators: opts.pool.list(model) };
  });
  return app;
}
