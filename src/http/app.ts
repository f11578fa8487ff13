// The gateway's HTTP surface: pages from public/, health, and what it knows of orchestrators.
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { LiveError } from '../live/errors.ts';
import type { LiveStreams } from '../live/registry.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import { type BatchRoutesOptions, batchRoutes } from './batch-routes.ts';
import { type LiveRoutesOptions, liveRoutes } from './live-routes.ts';
import { type TranscodeRoutesOptions, transcodeRoutes } from './transcode-routes.ts';

const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

export interface GatewayAppOptions {
  pool: OrchestratorPool;
  streams: LiveStreams;
  live: Omit<LiveRoutesOptions, 'streams'>;
  bodyLimitBytes: number;
  logger: Logger;
  /** Served at GET /metrics in Prometheus' text format. */
  metrics?: Registry;
  /** Batch AI routes (POST /text-to-image, /llm, ...), /results and /openapi.json. */
  batch?: BatchRoutesOptions;
  /** Segment transcoding: PUT/POST /live/{manifestId}/{seq}.ts and HLS under /stream/. */
  transcode?: Omit<TranscodeRoutesOptions, 'pool' | 'logger'>;
}

export async function buildGatewayApp(opts: GatewayAppOptions) {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimitBytes,
  });
  app.setErrorHandler((err: FastifyError | LiveError, req, reply) => {
    if (err instanceof LiveError) {
      if (err.status >= 500) req.log.warn({ code: err.code }, err.message);
      if (err.status === 401) reply.header('WWW-Authenticate', 'Bearer');
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    reply.code(status).send({ error: { code: err.code ?? 'INTERNAL', message: err.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${req.url}` } });
  });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/' });

  await app.register(liveRoutes, { ...opts.live, streams: opts.streams });
  if (opts.batch) await app.register(batchRoutes, opts.batch);
  if (opts.transcode) {
    await app.register(transcodeRoutes, { ...opts.transcode, pool: opts.pool, logger: opts.logger });
  }

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
