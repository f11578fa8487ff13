// The one place where every client input is checked before it costs anything (docs/input-checks.md):
// JSON bodies bounded in depth (scanned in linear time before parsing) and made of finite numbers
// only, request bodies in flight bounded in total bytes (503 + Retry-After past the budget), and
// error bodies cleaned of what a client must not see (heap pointers, file paths, stack frames, its
// own huge strings echoed back).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawServerDefault,
} from 'fastify';
import { cleanMessage, echo } from '../live/cause.ts';
import { LiveError } from '../live/errors.ts';

export { cleanMessage, echo };

/** Deepest nesting of arrays and objects in a client's JSON; real params are a few levels. */
export const MAX_JSON_DEPTH = 32;
/** Seconds a client told "over the body budget" waits before trying again. */
export const BUSY_RETRY_AFTER_S = 1;

/** A client input refused before any work: its status, a stable code, a one-line reason. */
export class InputError extends LiveError {
  /** Who is to blame: always the client (src/live/cause.ts reads it). */
  readonly blame = 'client' as const;

  /** As fastify's own errors carry it, for error handlers that read that. */
  get statusCode(): number {
    return this.status;
  }
}

/** Answers an InputError as every route group does: `{ error: { code, message } }`. */
export function sendInputError(err: InputError, reply: FastifyReply): FastifyReply {
  return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
}

/**
 * Depth of the deepest array or object in JSON text, scanning each character once (strings
 * skipped, escapes honoured). Stops as soon as `max` is passed, so a 20,000-deep body costs 33
 * characters' work, not a recursion per level.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** JSON.parse with the depth bound first and non-finite numbers (`1e400`) refused. */
export function parseClientJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (jsonDepthExceeds(text, maxDepth)) {
    throw new InputError(400, 'TOO_DEEP', `the JSON body is nested deeper than ${maxDepth} levels`);
  }
  let bad: string | undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value) => {
      if (typeof value === 'number' && !Number.isFinite(value) && bad === undefined) bad = key;
      return value;
    });
  } catch (err) {
    throw new InputError(400, 'BAD_REQUEST', `the body is not JSON: ${echo((err as Error).message)}`);
  }
  if (bad !== undefined) {
    throw new InputError(
      400,
      'NOT_FINITE',
      `${bad === '' ? 'the body' : `field "${echo(bad, 60)}"`} is a number too large to represent`,
    );
  }
  return parsed;
}

/**
 * The first number in `value` (a parsed body: plain objects, arrays, and uploads whose Buffers are
 * skipped) that is not finite, as a path; undefined when all are. Multipart fields converted by the
 * schema ("1e400" → Infinity) are caught here.
 */
export function nonFinitePath(value: unknown, path = '', depth = 0): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : path || '(body)';
  if (typeof value !== 'object' || value === null || Buffer.isBuffer(value) || depth > MAX_JSON_DEPTH) {
    return undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = nonFinitePath(value[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    const p = nonFinitePath(v, path ? `${path}.${k}` : k, depth + 1);
    if (p) return p;
  }
  return undefined;
}

/** Every string in an error body cleaned; other values kept. */
function cleanBody(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return cleanMessage(value);
  if (depth > 8 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => cleanBody(v, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cleanBody(v, depth + 1)]));
}

/** Bytes of request bodies being read at once, across all requests. */
export class BodyBudget {
  private used = 0;
  constructor(readonly limitBytes: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `n` bytes if they fit. */
  take(n: number): boolean {
    if (this.used + n > this.limitBytes) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

export interface InputGuardOptions {
  /** Largest JSON body on routes that do not set their own bodyLimit. */
  bodyLimitBytes: number;
  /** Request bodies in flight at once, in bytes; absent: no budget. */
  bodyBudget?: BodyBudget;
}

const overBudget = (budget: BodyBudget) =>
  new InputError(
    503,
    'BUSY',
    `the gateway is reading its limit of ${budget.limitBytes} bytes of request bodies (-httpBodyBudgetBytes); try again shortly`,
  );

/**
 * Registers the guard on the root app: its hooks and JSON parser reach every route (plugins that
 * replace the JSON parser, such as segment pushes taking any body as bytes, keep the rest).
 */
export function installInputGuard<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, L>,
  opts: InputGuardOptions,
): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: opts.bodyLimitBytes },
    (_req, body, done) => {
      try {
        done(null, parseClientJson(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );

  const budget = opts.bodyBudget;
  if (budget) {
    app.addHook('preParsing', async (req: FastifyRequest, reply: FastifyReply, payload) => {
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > 0) {
        // A declared length is taken whole, before a byte is read.
        if (!budget.take(declared)) {
          reply.header('Retry-After', String(BUSY_RETRY_AFTER_S));
          reply.header('Connection', 'close');
          throw overBudget(budget);
        }
        let held = declared;
        const release = () => {
          budget.give(held);
          held = 0;
        };
        // Held until the answer is out: the body lives in memory while the request is served.
        reply.raw.once('close', release);
        return payload;
      }
      if (req.headers['transfer-encoding'] === undefined) return payload;
      // A chunked body is counted as it arrives.
      let held = 0;
      reply.raw.once('close', () => {
        budget.give(held);
        held = 0;
      });
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb: TransformCallback) {
          if (!budget.take(chunk.length)) {
            reply.header('Retry-After', String(BUSY_RETRY_AFTER_S));
            reply.header('Connection', 'close');
            return cb(overBudget(budget));
          }
          held += chunk.length;
          cb(null, chunk);
        },
      });
      payload.on('error', (err) => counter.destroy(err));
      return payload.pipe(counter);
    });
  }

  // Numbers a content parser other than ours made (multipart fields converted by the schema).
  app.addHook('preHandler', async (req) => {
    const bad = nonFinitePath(req.body);
    if (bad) {
      throw new InputError(400, 'NOT_FINITE', `field "${echo(bad, 60)}" is a number too large to represent`);
    }
  });

  // One last look at every error body, whichever plugin's handler wrote it.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
    if (!String(reply.getHeader('content-type') ?? '').includes('json')) return payload;
    try {
      return JSON.stringify(cleanBody(JSON.parse(payload)));
    } catch {
      return payload;
    }
  });
}

/**
 * Default of -httpBodyBudgetBytes: an eighth of the machine's memory, between 64 MiB and 2 GiB;
 * bodies are held whole while their request is served.
 */
export function defaultBodyBudgetBytes(totalMemBytes: number): number {
  const MiB = 1024 * 1024;
  return Math.round(Math.min(2048 * MiB, Math.max(64 * MiB, totalMemBytes / 8)));
}

/**
 * Default of -transcodeMaxInFlight: a push holds its segment, its renditions (up to four times as
 * large) and ffmpeg's decode check of it, about six segments' worth; a quarter of the machine's
 * memory shared out that way, at least 2 and at most 64.
 */
export function defaultTranscodeMaxInFlight(totalMemBytes: number, maxSegmentBytes: number): number {
  return Math.min(64, Math.max(2, Math.floor(totalMemBytes / 4 / (6 * maxSegmentBytes))));
}
