// Bearer tokens on requests: one place reads them and refuses without them.
import type { FastifyRequest } from 'fastify';
import type { Secret } from '../config/index.ts';
import { LiveError } from '../live/errors.ts';

/** The request's Bearer token, or undefined. */
export function bearerOf(req: FastifyRequest): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return match ? match[1].trim() : undefined;
}

/** Whether the request carries `token` (constant-time); false when no token is configured. */
export function carries(req: FastifyRequest, token: Secret | undefined): boolean {
  const given = bearerOf(req);
  return token !== undefined && given !== undefined && token.equals(given);
}

/** 401 (with WWW-Authenticate, see app.ts) unless the request carries `token`; nothing when unset. */
export function requireBearer(
  req: FastifyRequest,
  token: Secret | undefined,
  what = 'missing or wrong Bearer token',
): void {
  if (!token || carries(req, token)) return;
  throw new LiveError(401, 'UNAUTHORIZED', what);
}
