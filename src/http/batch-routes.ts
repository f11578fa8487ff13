// Batch AI on go-livepeer's paths (server/ai_mediaserver.go): POST /text-to-image, /llm, ...
// validated by JSON schema (ai-runner's field names, types and defaults), run by the AI job runner
// (src/batch/ai-client.ts), with result files served from /results and the gateway's OpenAPI
// document at /openapi.json.
import { PassThrough } from 'node:stream';
import { Ajv } from 'ajv';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AiAttempts, AiJobRunner, AiJobSlot } from '../batch/ai-client.ts';
import { BATCH_HEADERS, openapiDocument } from '../batch/ai-openapi.ts';
import { type AiPipeline, PIPELINES, validationSchema } from '../batch/ai-pipelines.ts';
import { newRequestId, type ResultStore } from '../batch/ai-results.ts';
import { BatchError } from '../batch/errors.ts';
import { isUploadedFile, MultipartError, parseMultipart } from '../batch/multipart.ts';
import { InputError, sendInputError } from './input-guard.ts';

export interface BatchRoutesOptions {
  runner: AiJobRunner;
  results: ResultStore;
  /** Largest request body (uploads included); above it: 413. */
  bodyLimitBytes: number;
  /** Base of result URLs (`https://gw.example.com`); default: the request's own scheme and Host. */
  publicUrl?: string;
}

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const EXPOSED = Object.values(BATCH_HEADERS).join(', ');

/** fastify's own Ajv options without type coercion. */
const strictAjv = new Ajv({
  coerceTypes: false,
  useDefaults: true,
  removeAdditional: true,
  allErrors: false,
  strict: false,
});
const strictJson = ({ schema }: { schema: object }) => strictAjv.compile(schema);
/** Seconds a client told "busy" waits before trying again. */
const BUSY_RETRY_AFTER_S = 1;

/** The slot each admitted request holds (taken before its body is read). */
const slots = new WeakMap<FastifyRequest, AiJobSlot>();

export const batchRoutes: FastifyPluginAsync<BatchRoutesOptions> = async (app, opts) => {
  app.addContentTypeParser(
    'multipart/form-data',
    { parseAs: 'buffer', bodyLimit: opts.bodyLimitBytes },
    async (req: FastifyRequest, body: Buffer) => {
      try {
        return await parseMultipart(body, String(req.headers['content-type'] ?? ''));
      } catch (err) {
        if (err instanceof MultipartError) throw new BatchError(400, 'BAD_REQUEST', err.message);
        throw err;
      }
    },
  );

  app.setErrorHandler((err: FastifyError | BatchError, req, reply) => {
    if (err instanceof InputError) return sendInputError(err, reply);
    if (err instanceof BatchError) {
      if (err.attempts) setAttemptHeaders(reply, err.attempts);
      if (err.status >= 500) req.log.warn({ code: err.code }, err.message);
      return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...err.details } });
    }
    if (err.validation) return reply.code(400).send({ error: { code: 'BAD_REQUEST', message: err.message } });
    if (err.statusCode === 413) {
      return reply.code(413).send({
        error: {
          code: 'PAYLOAD_TOO_LARGE',
          message: `request body is larger than the limit of ${opts.bodyLimitBytes} bytes (-aiBodyLimitBytes)`,
        },
      });
    }
    if (err.statusCode === 415) {
      return reply.code(415).send({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'batch request failed');
    return reply.code(status).send({
      error: { code: status === 400 ? 'BAD_REQUEST' : (err.code ?? 'INTERNAL'), message: err.message },
    });
  });

  // Front ends on other origins call these routes directly.
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('Access-Control-Allow-Origin', '*');
    reply.header('Access-Control-Expose-Headers', EXPOSED);
  });

  for (const p of Object.values(PIPELINES)) {
    app.options(`/${p.name}`, async (_req, reply) =>
      reply
        .code(204)
        .header('Access-Control-Allow-Methods', 'POST, OPTIONS')
        .header('Access-Control-Allow-Headers', 'Content-Type, Authorization, Prefer')
        .send(),
    );
    app.post(
      `/${p.name}`,
      {
        bodyLimit: opts.bodyLimitBytes,
        schema: { body: validationSchema(p) },
        // JSON bodies are checked as written ("512" is not an integer), as ai-runner's and
        // go-livepeer's validators do; multipart fields are text and are converted by fastify's.
        ...(p.body === 'json' ? { validatorCompiler: strictJson } : {}),
        schemaErrorFormatter: (errors) => validationError(p, errors as AjvError[]),
        onRequest: async (req, reply) => {
          requireContentType(p, req);
          // Before the body is read: a refused request costs no memory.
          const slot = opts.runner.admit();
          if (!slot) {
            reply.header('Retry-After', String(BUSY_RETRY_AFTER_S));
            throw new BatchError(
              503,
              'BUSY',
              `the gateway is running its limit of ${opts.runner.maxInFlight} AI jobs (ai.maxInFlight); try again shortly`,
            );
          }
          slots.set(req, slot);
          reply.raw.once('close', () => slot.release());
        },
      },
      async (req, reply) => {
        const body = req.body as Record<string, unknown>;
        const resultBase = opts.publicUrl ?? `${req.protocol}://${req.host}`;
        const slot = slots.get(req);
        if (p.name === 'image-to-video' && /respond-async/i.test(String(req.headers.prefer ?? ''))) {
          return startAsync(opts, p, body, resultBase, req, reply, slot);
        }
        // The job keeps its slot until it is done, even when the client left before.
        slot?.hold();
        let outcome: Awaited<ReturnType<AiJobRunner['run']>>;
        try {
          outcome = await opts.runner.run({ pipeline: p, body, resultBase });
        } catch (err) {
          slot?.release();
          throw err;
        }
        setAttemptHeaders(reply, outcome);
        if (outcome.kind === 'json') {
          slot?.release();
          return reply.type('application/json').send(outcome.body);
        }
        return reply
          .type('text/event-stream')
          .header('Cache-Control', 'no-cache')
          .send(relayEvents(outcome.events, outcome.cancel, reply, req, () => slot?.release()));
      },
    );
  }

  app.post(
    '/image-to-video/result',
    {
      schema: {
        body: { type: 'object', required: ['request_id'], properties: { request_id: { type: 'string' } } },
      },
      schemaErrorFormatter: (errors) => validationError(undefined, errors as AjvError[]),
    },
    async (req, reply) => {
      const id = (req.body as { request_id: string }).request_id;
      if (!(await opts.results.exists(id, 'request.json').catch(() => false))) {
        throw new BatchError(400, 'BAD_REQUEST', 'invalid request ID');
      }
      const result = await opts.results.readJson(id, 'result.json');
      if (result === undefined) return reply.code(202).send({ status: 'processing' });
      return reply.send({ status: 'complete', result });
    },
  );

  app.get<{ Params: { requestId: string; name: string } }>(
    '/results/:requestId/:name',
    async (req, reply) => {
      const file = await opts.results.open(req.params.requestId, req.params.name);
      if (!file) {
        return reply.code(404).send({
          error: { code: 'NOT_FOUND', message: 'no such result (unknown, or expired and removed)' },
        });
      }
      return reply.type(file.contentType).header('Content-Length', file.size).send(file.stream);
    },
  );

  const doc = openapiDocument();
  app.get('/openapi.json', async () => doc);
};

function requireContentType(p: AiPipeline, req: FastifyRequest): void {
  const wanted = p.body === 'json' ? 'application/json' : 'multipart/form-data';
  const got = String(req.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  if (got !== wanted) {
    throw new BatchError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `${p.name} takes ${wanted}, not ${got === '' ? 'a body without Content-Type' : got}`,
    );
  }
}

/** One line naming the field: `missing required field "prompt"`, `field "width" must be integer`. */
function validationError(p: AiPipeline | undefined, errors: AjvError[]): Error {
  const e = errors[0];
  let message = 'invalid request body';
  if (e) {
    const path = e.instancePath
      .split('/')
      .filter(Boolean)
      .map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`))
      .join('');
    if (e.keyword === 'required') {
      const missing = String(e.params.missingProperty);
      message =
        path === '' ? `missing required field "${missing}"` : `missing required field "${path}.${missing}"`;
      if (p?.file === missing) message += ` (a ${missing} file upload)`;
    } else if (path === '') {
      message = `the request body ${e.message ?? 'is invalid'}`;
    } else if (p?.file && path.startsWith(p.file)) {
      message = `field "${p.file}" must be a file upload`;
    } else {
      message = `field "${path}" ${e.message ?? 'is invalid'}`;
    }
  }
  const err = new Error(message) as Error & { statusCode: number };
  err.statusCode = 400;
  return err;
}

function setAttemptHeaders(reply: FastifyReply, a: Partial<AiAttempts> & { tries: number }): void {
  if (a.orchestrator) reply.header(BATCH_HEADERS.orchestrator, a.orchestrator);
  reply.header(BATCH_HEADERS.tries, String(a.tries));
  if (a.requestId) reply.header(BATCH_HEADERS.requestId, a.requestId);
  if (a.feeWei !== undefined) reply.header(BATCH_HEADERS.fee, a.feeWei);
}

/** SSE events written as they come; an orchestrator failing mid-stream ends it with an error event. */
function relayEvents(
  events: AsyncGenerator<string, void, void>,
  cancel: () => void,
  reply: FastifyReply,
  req: FastifyRequest,
  finished: () => void,
) {
  const out = new PassThrough();
  let done = false;
  let gone = false;
  // Resolves the pending wait for 'drain', which never comes once the client is gone.
  let wake: (() => void) | undefined;
  const clientGone = () => {
    if (gone) return;
    gone = true;
    wake?.();
    // Stop the orchestrator's stream too, even while it is quiet.
    if (!done) cancel();
  };
  reply.raw.once('close', clientGone);
  out.once('close', clientGone);
  out.once('error', clientGone);
  void (async () => {
    try {
      for await (const data of events) {
        if (gone) break;
        if (!out.write(`data: ${data}\n\n`)) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            out.once('drain', resolve);
          });
          wake = undefined;
        }
        if (gone) break; // leaving the loop runs the generator's finally: the request is closed
      }
    } catch (err) {
      if (gone || out.destroyed || reply.raw.destroyed) return;
      req.log.warn({ err: (err as Error).message }, 'LLM stream broke off');
      const error = { error: { code: 'STREAM_FAILED', message: (err as Error).message } };
      out.write(`data: ${JSON.stringify(error)}\n\n`);
    } finally {
      done = true;
      if (!out.destroyed) out.end();
      finished();
    }
  })();
  return out;
}

/** go-livepeer's `Prefer: respond-async`: 202 {request_id} now, the result at /image-to-video/result. */
async function startAsync(
  opts: BatchRoutesOptions,
  p: AiPipeline,
  body: Record<string, unknown>,
  resultBase: string,
  req: FastifyRequest,
  reply: FastifyReply,
  slot: AiJobSlot | undefined,
) {
  const requestId = newRequestId();
  const fields = Object.fromEntries(Object.entries(body).filter(([, v]) => !isUploadedFile(v)));
  await opts.results.save(requestId, 'request.json', Buffer.from(JSON.stringify(fields)));
  // The job keeps its slot after the 202 went out, until its result is stored.
  slot?.hold();
  void opts.runner
    .run({ pipeline: p, body, requestId, resultBase })
    .then((outcome) =>
      outcome.kind === 'json' ? outcome.body : { error: { code: 'INTERNAL', message: 'no result' } },
    )
    .catch((err: unknown) => {
      req.log.warn({ requestId, err: (err as Error).message }, 'async image-to-video failed');
      return {
        error: {
          code: err instanceof BatchError ? err.code : 'INTERNAL',
          message: err instanceof BatchError ? err.message : 'Internal Server Error',
        },
      };
    })
    .then((result) => opts.results.save(requestId, 'result.json', Buffer.from(JSON.stringify(result))))
    .catch((err: unknown) => req.log.error({ requestId, err }, 'could not store the image-to-video result'))
    .finally(() => slot?.release());
  reply.header(BATCH_HEADERS.requestId, requestId);
  return reply.code(202).send({ request_id: requestId });
}
