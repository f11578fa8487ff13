// HTTPS to orchestrators (live job starts, live payments, batch jobs, segments): one keep-alive
// agent (orchestrators use self-signed certificates, as go-livepeer's httpClient skips
// verification), a POST that resolves on the response headers, bounded body reads, and downloads
// of result files.
import type { IncomingMessage } from 'node:http';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { OrchestratorError } from './errors.ts';

const httpsAgent = new HttpsAgent({ keepAlive: true, rejectUnauthorized: false, maxSockets: 256 });
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });

export interface PostOptions {
  headers: Record<string, string | number>;
  body: Buffer;
  /** Until the response headers arrive. */
  timeoutMs: number;
  /** Aborting destroys the request (and so its response): the caller's own client went away. */
  signal?: AbortSignal;
}

/** POSTs and resolves with the response once its headers are in; rejects with an OrchestratorError. */
export function post(url: URL, opts: PostOptions): Promise<IncomingMessage> {
  const origin = url.origin;
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const req = send(url, {
      method: 'POST',
      agent: url.protocol === 'http:' ? httpAgent : httpsAgent,
      headers: { ...opts.headers, 'Content-Length': opts.body.length },
    });
    const timer = setTimeout(
      () => req.destroy(new OrchestratorError('timeout', origin, `no answer within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    req.on('response', (res) => {
      clearTimeout(timer);
      resolve(res);
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(asOrchestratorError(err, origin));
    });
    abortWith(opts.signal, req);
    req.end(opts.body);
  });
}

export function asOrchestratorError(err: unknown, origin: string): OrchestratorError {
  if (err instanceof OrchestratorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/certificate|SSL|TLS/i.test(message)) return new OrchestratorError('tls', origin, message);
  return new OrchestratorError('unreachable', origin, message);
}

/**
 * The whole body, at most `maxBytes`, within `timeoutMs`; rejects with an OrchestratorError
 * ('invalid-reply' when too large, 'timeout', 'unreachable' when the connection breaks).
 */
export function readBody(
  res: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
  origin: string,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: OrchestratorError) => {
      clearTimeout(timer);
      res.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new OrchestratorError('timeout', origin, `reply not complete within ${timeoutMs} ms`)),
      timeoutMs,
    );
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes)
        fail(new OrchestratorError('invalid-reply', origin, `reply larger than ${maxBytes} bytes`));
      else chunks.push(c);
    });
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    res.on('error', (err) => fail(asOrchestratorError(err, origin)));
    res.on('aborted', () =>
      fail(new OrchestratorError('unreachable', origin, 'connection closed mid-reply')),
    );
  });
}

/** GETs a result file an orchestrator points at (http or https). */
export function download(
  url: string,
  maxBytes: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ data: Buffer; contentType: string }> {
  const u = new URL(url);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    return Promise.reject(new Error(`result URL ${url} is not http(s)`));
  }
  return new Promise((resolve, reject) => {
    const get = u.protocol === 'http:' ? httpRequest : httpsRequest;
    const req = get(u, { method: 'GET', agent: u.protocol === 'http:' ? httpAgent : httpsAgent });
    const timer = setTimeout(
      () => req.destroy(new Error(`result ${url} not downloaded within ${timeoutMs} ms`)),
      timeoutMs,
    );
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        clearTimeout(timer);
        res.resume();
        reject(new Error(`result ${url} answered ${res.statusCode}`));
        return;
      }
      readBody(res, maxBytes, timeoutMs, u.origin).then(
        (data) => {
          clearTimeout(timer);
          resolve({ data, contentType: String(res.headers['content-type'] ?? 'application/octet-stream') });
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    abortWith(signal, req);
    req.end();
  });
}

/** Destroys `req` once `signal` aborts (at once if it already has). */
function abortWith(
  signal: AbortSignal | undefined,
  req: { destroy(err: Error): void; once(e: 'close', f: () => void): void },
): void {
  if (!signal) return;
  const abort = () => req.destroy(new Error('cancelled: the client went away'));
  if (signal.aborted) {
    abort();
    return;
  }
  signal.addEventListener('abort', abort, { once: true });
  req.once('close', () => signal.removeEventListener('abort', abort));
}
