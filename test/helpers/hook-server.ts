// A real HTTP server on 127.0.0.1 standing in for an operator's services (auth webhook, heartbeat,
// events webhook): every request is recorded, and the test decides each answer.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HookRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body as JSON, when it is. */
  json?: unknown;
  at: number;
}

/** What to answer: a status with a body (an object is sent as JSON), after `delayMs`; or no answer. */
export type HookAnswer =
  | { status: number; body?: unknown; delayMs?: number; headers?: Record<string, string> }
  | { hang: true };

export interface HookServer {
  url: string;
  requests: HookRequest[];
  /** Replaces how requests are answered. */
  answer: (fn: (req: HookRequest) => HookAnswer | Promise<HookAnswer>) => void;
  close(): Promise<void>;
}

export async function startHookServer(
  answer: (req: HookRequest) => HookAnswer | Promise<HookAnswer> = () => ({ status: 200, body: {} }),
): Promise<HookServer> {
  let decide = answer;
  const requests: HookRequest[] = [];
  const hung = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const record: HookRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        at: Date.now(),
      };
      try {
        record.json = JSON.parse(body);
      } catch {
        // not JSON
      }
      requests.push(record);
      const a = await decide(record);
      if ('hang' in a) {
        hung.add(res);
        return;
      }
      if (a.delayMs) await new Promise((r) => setTimeout(r, a.delayMs));
      if (res.destroyed) return;
      const text = a.body === undefined ? '' : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
      res.writeHead(a.status, {
        ...(typeof a.body === 'object' ? { 'content-type': 'application/json' } : {}),
        ...a.headers,
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    answer: (fn) => {
      decide = fn;
    },
    async close() {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
