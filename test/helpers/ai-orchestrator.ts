// A scriptable orchestrator for batch AI tests: gRPC GetOrchestrator (offers, price, auth token)

// and POST /{pipeline} answered however the test says (JSON, an error, SSE chunks with delays, a
// hang), on one TLS port like a go-livepeer orchestrator. Every AI request is recorded.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import type { Logger } from 'pino';
import { AiJobRunner } from '../../src/batch/ai-client.ts';
import { ResultStore } from '../../src/batch/ai-results.ts';
import type { LivePayments } from '../../src/live/live-payer.ts';
import { isGrpcRequest, serveUnary } from '../../src/local-orchestrator/grpc-unary.ts';
import { selfSignedCertificate } from '../../src/local-orchestrator/tls.ts';
import type { PriceCeiling } from '../../src/orchestrators/price.ts';
import { type GatewayIdentity, offchainIdentity } from '../../src/payments/identity.ts';
import {
  type AuthToken,
  Capability,
  capabilityBitstring,
  DEFAULT_CAPABILITIES,
  decodeMessage,
  encodeMessage,
  GET_ORCHESTRATOR_PATH,
  type SegData,
} from '../../src/wire/lp-rpc.ts';
import { startTestGateway } from './gateway.ts';

export interface RecordedAiRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  contentType: string;
  body: Buffer;
  /** The Livepeer-Segment header, decoded. */
  segment?: SegData;
  /** SSE: events written before the gateway closed the stream (all of them when it did not). */
  eventsWritten?: number;
  /** SSE: the gateway closed the stream before the last event. */
  closedEarly?: boolean;
  /** SSE: when (Date.now()) the gateway closed the stream before its end. */
  closedAt?: number;
}

export type AiBehavior =
  | { json: unknown }
  /** An error answer, `afterMs` after the request came in. */
  | { status: number; text: string; afterMs?: number }
  /** Server-Sent Events: each chunk written as `data: <chunk>\n\n` after `delayMs`. */
  | { sse: string[]; delayMs: number }
  /** Accepts the request and never answers. */
  | { hang: true }
  /** Sends 200 and the start of a JSON body, then nothing more. */
  | { stallAfterHeaders: true };

export interface TestAiOrchestratorOptions {
  /** Capability id → model ids offered. */
  offers: Record<number, string[]>;
  pricePerUnit?: bigint;
  pixelsPerUnit?: bigint;
  answer: (req: RecordedAiRequest) => AiBehavior | Promise<AiBehavior>;
  /** Files served on GET (path → bytes), for replies that point at a URL. */
  files?: Map<string, { type: string; data: Buffer }>;
  /** Listen address (default 127.0.0.1); any 127.x.y.z is this machine. */
  host?: string;
}

export class TestAiOrchestrator {
  readonly requests: RecordedAiRequest[] = [];
  /** Paths asked for with GET (result downloads). */
  readonly downloads: string[] = [];
  readonly authToken: AuthToken;
  url = '';
  private server?: http2.Http2SecureServer;
  private readonly hung = new Set<Http2ServerResponse>();

  private constructor(private readonly opts: TestAiOrchestratorOptions) {
    this.authToken = {
      token: randomBytes(32),
      sessionId: randomBytes(8).toString('hex'),
      expiration: BigInt(Math.floor(Date.now() / 1000) + 3600),
    };
  }

  static async start(opts: TestAiOrchestratorOptions): Promise<TestAiOrchestrator> {
    const o = new TestAiOrchestrator(opts);
    const host = opts.host ?? '127.0.0.1';
    const tls = await selfSignedCertificate(host);
    const server = http2.createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => {
      if (isGrpcRequest(req)) {
        void serveUnary(req, res, { [GET_ORCHESTRATOR_PATH]: async () => o.info() });
      } else void o.handle(req, res);
    });
    o.server = server;
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    o.url = `https://${host}:${(server.address() as AddressInfo).port}`;
    return o;
  }

  async close(): Promise<void> {
    for (const res of this.hung) res.stream?.close();
    for (const res of this.hung) (res as unknown as { socket?: { destroy(): void } }).socket?.destroy();
    await new Promise<void>((resolve) => {
      this.server?.close(() => resolve());
      setTimeout(resolve, 500);
    });
  }

  private info(): Uint8Array {
    const caps = [...DEFAULT_CAPABILITIES, ...Object.keys(this.opts.offers).map(Number)];
    const perCapability = Object.fromEntries(
      Object.entries(this.opts.offers).map(([cap, models]) => [
        cap,
        { models: Object.fromEntries(models.map((m) => [m, { warm: true, capacity: 1 }])) },
      ]),
    );
    return encodeMessage('OrchestratorInfo', {
      transcoder: this.url,
      priceInfo: { pricePerUnit: this.opts.pricePerUnit ?? 0n, pixelsPerUnit: this.opts.pixelsPerUnit ?? 1n },
      capabilities: {
        bitstring: capabilityBitstring(caps),
        capacities: Object.fromEntries(caps.map((c) => [c, 1])),
        version: '0.8.9',
        constraints: { PerCapability: perCapability },
      },
      authToken: this.authToken,
    });
  }

  private async handle(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    if (req.method === 'GET') {
      this.downloads.push(req.url);
      const file = this.opts.files?.get(req.url);
      res.writeHead(file ? 200 : 404, { 'content-type': file?.type ?? 'text/plain' });
      res.end(file?.data ?? 'not found');
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const segmentHeader = req.headers['livepeer-segment'];
    let segment: SegData | undefined;
    if (typeof segmentHeader === 'string' && segmentHeader !== '') {
      try {
        segment = decodeMessage('SegData', Buffer.from(segmentHeader, 'base64'));
      } catch {
        segment = undefined;
      }
    }
    const recorded: RecordedAiRequest = {
      path: req.url,
      headers: { ...req.headers },
      contentType: String(req.headers['content-type'] ?? ''),
      body: Buffer.concat(chunks),
      segment,
    };
    this.requests.push(recorded);
    const behavior = await this.opts.answer(recorded);
    if ('hang' in behavior) {
      this.hung.add(res);
      return;
    }
    if ('stallAfterHeaders' in behavior) {
      this.hung.add(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"images": [');
      return;
    }
    if ('json' in behavior) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(behavior.json));
      return;
    }
    if ('status' in behavior) {
      if (behavior.afterMs) await new Promise((resolve) => setTimeout(resolve, behavior.afterMs));
      res.writeHead(behavior.status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(behavior.text);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // As a streaming runner: the headers go out before the first event.
    (res as unknown as { flushHeaders(): void }).flushHeaders();
    let closed = false;
    res.once('close', () => {
      closed = true;
      if (!res.writableEnded) recorded.closedAt = Date.now();
    });
    recorded.eventsWritten = 0;
    for (const chunk of behavior.sse) {
      await new Promise((resolve) => setTimeout(resolve, behavior.delayMs));
      if (closed || res.writableEnded) {
        recorded.closedEarly = true;
        return;
      }
      res.write(`data: ${chunk}\n\n`);
      recorded.eventsWritten++;
    }
    res.end();
  }
}

/** A 1×1 … W×H PNG header is all the gateway reads; a real encoded image for the e2e tests. */
export function pngHeader(width: number, height: number): Buffer {
  const b = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'ascii');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b[24] = 8;
  b[25] = 2;
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  // A whole file that decodes (the gateway checks chunks and CRCs, and decodes an upload an
  // orchestrator failed on): black pixels, then IEND. Sizes past the gateway's bounds get an
  // empty IDAT (they are refused by their header before anything reads further).
  const chunk = (type: string, data = Buffer.alloc(0)) => {
    const c = Buffer.alloc(12 + data.length);
    c.writeUInt32BE(data.length, 0);
    c.write(type, 4, 'ascii');
    data.copy(c, 8);
    c.writeUInt32BE(crc32(c.subarray(4, 8 + data.length)), 8 + data.length);
    return c;
  };
  const pixels =
    width * height <= 4096 * 4096 ? deflateSync(Buffer.alloc(height * (1 + width * 3))) : Buffer.alloc(0);
  return Buffer.concat([b, chunk('IDAT', pixels), chunk('IEND')]);
}

export { Capability };

export interface AiGatewayOptions {
  orchestrators: string[];
  logger: Logger;
  priceCeiling?: PriceCeiling;
  /** () => 0 tries orchestrators in the order given (with equal scores). */
  random?: () => number;
  maxTries?: number;
  retryTimeoutMs?: number;
  tryTimeoutMs?: number;
  replyTimeoutMs?: number;
  maxInFlight?: number;
  bodyLimitBytes?: number;
  resultTtlMs?: number;
  payments?: LivePayments;
  identity?: GatewayIdentity;
}

/** A gateway with the batch AI routes on 127.0.0.1 and a fresh result directory. */
export async function startAiGateway(opts: AiGatewayOptions) {
  const { logger } = opts;
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-results-'));
  const results = new ResultStore({ dir, ttlMs: opts.resultTtlMs ?? 60_000, logger });
  await results.start();
  let runner: AiJobRunner | undefined;
  const gw = await startTestGateway({
    orchestrators: opts.orchestrators,
    logger,
    priceCeiling: opts.priceCeiling,
    random: opts.random,
    payments: opts.payments,
    identity: opts.identity,
    batch: (pool) => {
      runner = new AiJobRunner({
        pool,
        identity: opts.identity ?? opts.payments?.identity ?? offchainIdentity,
        payments: opts.payments,
        maxTries: opts.maxTries ?? 3,
        retryTimeoutMs: opts.retryTimeoutMs ?? 30_000,
        tryTimeoutMs: opts.tryTimeoutMs ?? 30_000,
        replyTimeoutMs: opts.replyTimeoutMs,
        maxInFlight: opts.maxInFlight,
        results,
        logger,
      });
      return { runner, results, bodyLimitBytes: opts.bodyLimitBytes ?? 8 * 1024 * 1024 };
    },
  });
  return {
    pool: gw.pool,
    runner: runner as AiJobRunner,
    base: gw.base,
    results,
    resultDir: dir,
    async close() {
      await gw.close();
      results.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
