// The remote signer's HTTP surface, go-livepeer's routes (server/remote_signer.go
// StartRemoteSignerServer): POST /sign-orchestrator-info, POST /generate-live-payment, GET
// /discover-orchestrators (with -remoteDiscovery) and /healthz. Plain HTTP, as go-livepeer's.
// Ours adds a bearer token (-remoteSignerAuthToken) checked on every route but /healthz.
import Fastify, { type FastifyError } from 'fastify';
import type { Logger } from 'pino';
import type { Secret } from '../config/index.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import type { PriceCeiling } from '../orchestrators/price.ts';
import { discoveryAnswer } from './discovery.ts';
import { errorReply, type RemoteSigner, type SignerReply } from './engine.ts';
import { ROUTES } from './protocol.ts';

export interface SignerAppOptions {
  signer: RemoteSigner;
  /** Every call but /healthz must carry `Authorization: Bearer <token>`. */
  authToken?: Secret;
  /** -remoteDiscovery: the orchestrators the signer knows, and its price ceilings. */
  discovery?: { pool: OrchestratorPool; ceiling: PriceCeiling };
  /** Largest request body; go-livepeer has none. Default 1 MiB. */
  bodyLimitBytes?: number;
  logger: Logger;
}

export async function buildSignerApp(opts: SignerAppOptions) {
  const app = Fastify({
    loggerInstance: opts.logger.child({ component: 'signer-http' }),
    disableRequestLogging: true,
    bodyLimit: opts.bodyLimitBytes ?? 1024 * 1024,
  });
  // Bodies are read as Go reads them (signer/go-json.ts), whatever the content type says.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const send = (reply: import('fastify').FastifyReply, r: SignerReply) => {
    for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
    return reply.code(r.status).type('application/json').send(r.body);
  };

  app.addHook('onRequest', async (req, reply) => {
    const token = opts.authToken;
    if (!token || req.url === ROUTES.healthz || req.url.startsWith(`${ROUTES.healthz}?`)) return;
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (m && token.equals(m[1]!.trim())) return;
    reply.header('WWW-Authenticate', 'Bearer');
    return send(
      reply,
      errorReply(
        401,
        'UNAUTHORIZED',
        auth
          ? 'wrong bearer token'
          : 'this signer needs Authorization: Bearer <token> (-remoteSignerHeaders on the gateway)',
      ),
    );
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return send(
        reply,
        errorReply(
          413,
          'PAYLOAD_TOO_LARGE',
          `request body is larger than ${app.initialConfig.bodyLimit} bytes`,
        ),
      );
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'signer request failed');
    return send(reply, errorReply(status, 'BAD_REQUEST', 'bad request'));
  });
  app.setNotFoundHandler((req, reply) =>
    send(reply, errorReply(404, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)),
  );

  app.all(ROUTES.healthz, async (_req, reply) => reply.code(200).send());

  app.post(ROUTES.signOrchestratorInfo, async (_req, reply) => send(reply, opts.signer.orchestratorInfo()));

  app.post(ROUTES.generateLivePayment, async (req, reply) => {
    // The webhook call is given up when the caller goes away, as go-livepeer's request context.
    const gone = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) gone.abort();
    });
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    return send(reply, await opts.signer.generateLivePayment(body, req.raw.rawHeaders, gone.signal));
  });

  const discovery = opts.discovery;
  if (discovery) {
    app.get(ROUTES.discoverOrchestrators, async (req, reply) => {
      const q = (req.query as Record<string, string | string[] | undefined>).caps;
      const caps = q === undefined ? [] : Array.isArray(q) ? q : [q];
      if (discovery.pool.answered().length === 0) {
        return send(reply, errorReply(503, 'NO_ORCHESTRATORS', 'cache empty'));
      }
      const answer = discoveryAnswer(discovery.pool, discovery.ceiling, caps);
      return reply
        .code(200)
        .type('application/json')
        .send(`${JSON.stringify(answer)}\n`);
    });
  }
  return app;
}
