// A protocol-true orchestrator for development and tests: gRPC GetOrchestrator and
// HTTPS (live-video-to-video, payment, trickle) on one TLS port, like go-livepeer's.
import { randomBytes } from 'node:crypto';
import http2, { type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { formatFault, NO_FAULT, type OrchestratorFault, orchestratorFault } from '../config/fault.ts';
import { Invalid } from '../config/parse.ts';
import { TrickleServer } from '../trickle/index.ts';
import {
  Capability,
  capabilityBitstring,
  DEFAULT_CAPABILITIES,
  decodeMessage,
  encodeMessage,
  GET_ORCHESTRATOR_PATH,
  type OrchestratorInfo,
  type OrchestratorRequest,
} from '../wire/lp-rpc.ts';
import {
  AUTH_TOKEN_VALID_MS,
  CredentialError,
  makeAuthToken,
  readPaymentHeader,
  readSegmentHeader,
} from './credentials.ts';
import { EFFECTS } from './effects.ts';
import { GrpcCode, GrpcStatusError, isGrpcRequest, serveUnary } from './grpc-unary.ts';
import { LiveJob } from './live-job.ts';
import { selfSignedCertificate } from './tls.ts';

export const TRICKLE_PATH = '/ai/trickle/';
/** Reported as Capabilities.version; go-livepeer gateways may require a minimum version. */
const ORCHESTRATOR_VERSION = '0.8.9';
const PIPELINE = 'live-video-to-video';

export interface LocalOrchestratorOptions {
  /** `host:port`; port 0 picks a free one. */
  serviceAddr: string;
  /** Model ids offered for live-video-to-video; each names an effect. */
  models: string[];
  pricePerUnit: bigint;
  pixelsPerUnit: bigint;
  /** Concurrent live jobs. */
  capacity: number;
  secret?: Uint8Array;
  logger: Logger;
  statusIntervalMs?: number;
  inputTimeoutMs?: number;
  /**
   * FOR TESTS AND DEMOS ONLY: fail like a real orchestrator can (see src/config/fault.ts), given
   * parsed or as written in config (`stall-output-after:3s`). Default: none.
   */
  fault?: OrchestratorFault | string;
  /**
   * With `exit-after`: exit the process (status 1), as main.ts, which runs it on its own, asks.
   * Otherwise (embedded, in-process tests) it stops listening and destroys every connection.
   */
  faultExitsProcess?: boolean;
}

export class LocalOrchestrator {
  readonly jobs = new Map<string, LiveJob>();
  /** `https://host:port`, known once listening. */
  url = '';
  private readonly secret: Uint8Array;
  private readonly fault: OrchestratorFault;
  /** Open client connections (raw and TLS) and HTTP/2 sessions, so an injected crash can drop them. */
  private readonly connections = new Set<{ destroy(): void }>();
  private exitTimer?: NodeJS.Timeout;
  private crashed = false;
  private readonly trickle: TrickleServer;
  private readonly app: FastifyInstance<Http2SecureServer, Http2ServerRequest, Http2ServerResponse, Logger>;

  private constructor(
    private readonly opts: LocalOrchestratorOptions,
    tls: { key: string; cert: string },
  ) {
    this.secret = opts.secret ?? randomBytes(32);
    this.fault = parseFaultOption(opts.fault);
    this.trickle = new TrickleServer({ basePath: TRICKLE_PATH, logger: opts.logger });
    const grpcMethods = { [GET_ORCHESTRATOR_PATH]: (m: Uint8Array) => this.getOrchestrator(m) };
    this.app = Fastify({
      http2: true,
      https: { allowHTTP1: true },
      loggerInstance: opts.logger.child({ component: 'local-orchestrator' }),
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: 1024 * 1024,
      serverFactory: (handler) => {
        // noDelay: trickle writes are small and latency-bound; Nagle held some back ~40 ms.
        const server = http2.createSecureServer({ ...tls, allowHTTP1: true, noDelay: true }, (req, res) => {
          if (isGrpcRequest(req)) void serveUnary(req, res, grpcMethods);
          else if (!this.trickle.handle(req, res)) handler(req, res);
        });
        // Preconnected trickle requests wait for a whole segment or longer.
        (server as unknown as { requestTimeout: number }).requestTimeout = 0;
        const track = (c: Socket | http2.Http2Session) => {
          this.connections.add(c);
          c.once('close', () => this.connections.delete(c));
        };
        server.on('connection', track);
        server.on('secureConnection', track);
        server.on('session', track);
        return server;
      },
    });
    this.registerRoutes();
  }

  static async start(opts: LocalOrchestratorOptions): Promise<LocalOrchestrator> {
    const unknown = opts.models.filter((m) => !EFFECTS.includes(m));
    if (unknown.length) {
      throw new Error(
        `local orchestrator: unknown model(s) ${unknown.join(', ')}; known: ${EFFECTS.join(', ')}`,
      );
    }
    const [host, port] = splitHostPort(opts.serviceAddr);
    const orch = new LocalOrchestrator(opts, await selfSignedCertificate(host));
    await orch.app.listen({ host, port: Number(port) });
    const address = orch.app.server.address() as AddressInfo;
    orch.url = `https://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
    opts.logger.info({ url: orch.url, models: opts.models }, 'local orchestrator listening');
    if (orch.fault.kind !== 'none') {
      opts.logger.warn({ fault: formatFault(orch.fault) }, 'fault injection enabled (for tests and demos)');
    }
    return orch;
  }

  async close(): Promise<void> {
    clearTimeout(this.exitTimer);
    if (this.crashed) return; // an injected crash already tore everything down
    for (const job of this.jobs.values()) job.stop('orchestrator shutting down');
    this.trickle.close();
    await this.app.close();
  }

  /** The `exit-after` fault: die as a crashed orchestrator does, without a goodbye to anyone. */
  private crash(): void {
    if (this.crashed) return;
    this.crashed = true;
    const what = formatFault(this.fault);
    if (this.opts.faultExitsProcess) {
      process.stderr.write(`local orchestrator: injected fault ${what}: exiting\n`);
      process.exit(1);
    }
    this.opts.logger.warn({ fault: what }, 'injected fault: dropping every connection');
    this.app.server.close();
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    // Nobody is left to hear the jobs end or their channels close.
    for (const job of this.jobs.values()) job.stop('orchestrator crashed (injected fault)');
    this.trickle.close();
  }

  /**
   * What GetOrchestrator answers; also the `info` of a PaymentResult. As go-livepeer does,
   * hardware and per-model prices are listed only for a request that named no capabilities.
   */
  orchestratorInfo(authToken = this.newAuthToken(), requestHadCapabilities = false): OrchestratorInfo {
    const free = Math.max(0, this.opts.capacity - this.jobs.size);
    const models = Object.fromEntries(
      this.opts.models.map((m) => [m, { warm: true, capacity: free, capacityInUse: this.jobs.size }]),
    );
    const price = { pricePerUnit: this.opts.pricePerUnit, pixelsPerUnit: this.opts.pixelsPerUnit };
    // go-livepeer gateways drop an orchestrator lacking any of the default capabilities.
    const caps = [...DEFAULT_CAPABILITIES, Capability.LiveVideoToVideo];
    return {
      transcoder: this.url,
      priceInfo: price,
      address: new Uint8Array(20),
      capabilities: {
        bitstring: capabilityBitstring(caps),
        capacities: Object.fromEntries(
          caps.map((c) => [c, c === Capability.LiveVideoToVideo ? this.opts.capacity : 1]),
        ),
        version: ORCHESTRATOR_VERSION,
        constraints: { PerCapability: { [Capability.LiveVideoToVideo]: { models } } },
      },
      authToken,
      ...(requestHadCapabilities
        ? {}
        : {
            hardware: this.opts.models.map((modelId) => ({ pipeline: PIPELINE, modelId, gpuInfo: {} })),
            capabilitiesPrices: this.opts.models.map((constraint) => ({
              ...price,
              capability: Capability.LiveVideoToVideo,
              constraint,
            })),
          }),
    };
  }

  private newAuthToken() {
    const expiration = BigInt(Math.floor((Date.now() + AUTH_TOKEN_VALID_MS) / 1000));
    return makeAuthToken(this.secret, randomBytes(8).toString('hex'), expiration);
  }

  private async getOrchestrator(message: Uint8Array): Promise<Uint8Array> {
    let request: OrchestratorRequest;
    try {
      request = decodeMessage('OrchestratorRequest', message);
    } catch (err) {
      throw new GrpcStatusError(
        GrpcCode.INVALID_ARGUMENT,
        `bad OrchestratorRequest: ${(err as Error).message}`,
      );
    }
    // Off-chain, like go-livepeer, the request's address and signature are not checked.
    const wanted =
      request.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)]?.models;
    if (wanted && !request.ignoreCapacityCheck) {
      const servable = Object.keys(wanted).some((m) => this.opts.models.includes(m));
      if (!servable || this.jobs.size >= this.opts.capacity) {
        throw new GrpcStatusError(GrpcCode.UNKNOWN, 'Invalid orchestrator request: OrchestratorCapped');
      }
    }
    return encodeMessage(
      'OrchestratorInfo',
      this.orchestratorInfo(undefined, request.capabilities !== undefined),
    );
  }

  private registerRoutes(): void {
    const app = this.app;
    // go-livepeer answers errors as plain text; gateways read the body as the reason.
    app.setErrorHandler((err: FastifyError, _req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
      reply.code(status).type('text/plain; charset=utf-8').send(err.message);
    });
    app.setNotFoundHandler((req, reply) => {
      reply.code(404).type('text/plain; charset=utf-8').send(`404 page not found: ${req.method} ${req.url}`);
    });

    app.post(
      '/live-video-to-video',
      {
        schema: {
          body: {
            type: 'object',
            required: ['model_id'],
            properties: {
              model_id: { type: 'string', minLength: 1 },
              params: { type: 'object' },
              gateway_request_id: { type: 'string' },
              stream_id: { type: 'string' },
            },
          },
        },
      },
      async (req, reply) => {
        const body = req.body as { model_id: string; params?: Record<string, unknown>; stream_id?: string };
        if (!this.opts.models.includes(body.model_id)) {
          return reply
            .code(400)
            .type('text/plain; charset=utf-8')
            .send(
              `unknown model_id "${body.model_id}"; this orchestrator serves: ${this.opts.models.join(', ')}`,
            );
        }
        if (this.jobs.size >= this.opts.capacity) {
          return reply.code(503).type('text/plain; charset=utf-8').send('insufficient capacity');
        }
        const denied = this.checkCredentials(req.headers);
        if (denied) return reply.code(denied.status).type('text/plain; charset=utf-8').send(denied.message);
        if (this.fault.kind === 'fail-start') {
          return reply
            .code(500)
            .type('text/plain; charset=utf-8')
            .send(
              `failed to start live-video-to-video runner for ${body.model_id}: injected fault fail-start`,
            );
        }

        const mid = randomBytes(8).toString('hex');
        const base = `${this.url}${TRICKLE_PATH}${mid}`;
        this.trickle.createChannel(mid, 'video/MP2T');
        this.trickle.createChannel(`${mid}-out`, 'video/MP2T');
        this.trickle.createChannel(`${mid}-control`, 'application/json');
        this.trickle.createChannel(`${mid}-events`, 'application/json');
        const job = new LiveJob({
          manifestId: mid,
          trickleBase: `${this.url}${TRICKLE_PATH}`,
          modelId: body.model_id,
          params: body.params ?? {},
          statusIntervalMs: this.opts.statusIntervalMs ?? 1000,
          inputTimeoutMs: this.opts.inputTimeoutMs ?? 30_000,
          logger: this.opts.logger,
          fault: this.fault,
          onEnd: () => {
            this.jobs.delete(mid);
            for (const suffix of ['', '-out', '-control', '-events'])
              this.trickle.closeChannel(`${mid}${suffix}`);
          },
        });
        this.jobs.set(mid, job);
        job.start();
        if (this.fault.kind === 'exit-after' && !this.exitTimer) {
          this.exitTimer = setTimeout(() => this.crash(), this.fault.afterMs);
        }
        this.opts.logger.info(
          { manifestId: mid, model: body.model_id, stream: body.stream_id },
          'live job started',
        );
        return reply.type('application/json').send({
          publish_url: base,
          subscribe_url: `${base}-out`,
          control_url: `${base}-control`,
          events_url: `${base}-events`,
          manifest_id: mid,
        });
      },
    );

    app.post('/payment', async (req, reply) => {
      let segment: ReturnType<typeof readSegmentHeader>;
      try {
        readPaymentHeader(header(req.headers, 'livepeer-payment'));
        segment = readSegmentHeader(header(req.headers, 'livepeer-segment'), this.secret);
      } catch (err) {
        if (!(err instanceof CredentialError)) throw err;
        return reply.code(err.status).type('text/plain; charset=utf-8').send(err.message);
      }
      // Off-chain: nothing to credit. The reply carries fresh info with the same auth token.
      const result = encodeMessage('PaymentResult', { info: this.orchestratorInfo(segment.authToken) });
      return reply.type('application/octet-stream').send(Buffer.from(result));
    });
  }

  private checkCredentials(headers: Record<string, unknown>): CredentialError | undefined {
    try {
      readPaymentHeader(header(headers, 'livepeer-payment'));
      readSegmentHeader(header(headers, 'livepeer-segment'), this.secret);
      return undefined;
    } catch (err) {
      if (err instanceof CredentialError) return err;
      throw err;
    }
  }
}

function parseFaultOption(fault: OrchestratorFault | string | undefined): OrchestratorFault {
  if (fault === undefined) return NO_FAULT;
  if (typeof fault !== 'string') return fault;
  try {
    return orchestratorFault(fault);
  } catch (err) {
    if (err instanceof Invalid) throw new Error(`local orchestrator: fault ${err.message} (got ${fault})`);
    throw err;
  }
}

function header(headers: Record<string, unknown>, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

export function splitHostPort(addr: string): [string, string] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', addr.slice(i + 1)];
}
