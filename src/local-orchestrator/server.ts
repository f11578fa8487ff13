// A protocol-true orchestrator for development and tests: gRPC GetOrchestrator and
// HTTPS (live-video-to-video, payment, trickle) on one TLS port, like go-livepeer's.
import { randomBytes } from 'node:crypto';
import http2, { type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { getAddress, keccak256, stringToBytes } from 'viem';
import { profilesHex, signedProfileNames } from '../batch/profiles.ts';
import {
  formatFault,
  formatRestarts,
  NO_FAULT,
  type OrchestratorFault,
  orchestratorFault,
  type RunnerBehaviour,
} from '../config/fault.ts';
import type { Config } from '../config/index.ts';
import { Invalid } from '../config/parse.ts';
import { flattenSegment } from '../payments/credentials.ts';
import { LiveBillingClock } from '../payments/live-clock.ts';
import { compare, mul, type Rational, rat } from '../payments/rational.ts';
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
  type Payment,
  type SegData,
} from '../wire/lp-rpc.ts';
import type { AiPipelineHandler, AiPipelineName } from './ai-pipelines.ts';
import { AiService } from './ai-routes.ts';
import { DEFAULT_AI_MODELS, STAND_IN_PIPELINES, type StandInPipeline, standIn } from './ai-standins.ts';
import {
  AUTH_TOKEN_VALID_MS,
  CredentialError,
  checkAuthToken,
  decodeSegmentHeader,
  makeAuthToken,
  readPaymentHeader,
} from './credentials.ts';
import { EFFECTS } from './effects.ts';
import { GrpcCode, GrpcStatusError, isGrpcRequest, serveUnary } from './grpc-unary.ts';
import { LiveJob } from './live-job.ts';
import {
  type LocalOrchestratorPayments,
  PaymentError,
  Recipient,
  ratPrice,
  toAddress,
  verifySig,
  weiString,
} from './recipient.ts';
import { segmentRoutes } from './segment.ts';
import { selfSignedCertificate } from './tls.ts';

export const TRICKLE_PATH = '/ai/trickle/';
/** Reported as Capabilities.version; go-livepeer gateways may require a minimum version. */
const ORCHESTRATOR_VERSION = '0.8.9';
/** Request header bytes taken, as Go's http.DefaultMaxHeaderBytes (go-livepeer sets no other). */
const MAX_HEADER_BYTES = 1 << 20;
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
  /**
   * FOR TESTS AND DEMOS: live jobs behave like ai-runner pipelines (warm-up with LOADING, output
   * size and rate, restarts, enveloped events; src/config/fault.ts). Default: PLAIN_RUNNER.
   */
  runner?: RunnerBehaviour;
  /**
   * Turns the PM recipient on (tickets, signatures, balances, live accounting). Absent: off-chain,
   * as go-livepeer with -network offchain: no ticket params, no checks.
   */
  payments?: LocalOrchestratorPayments;
  /**
   * Model ids served by the CPU stand-ins of the batch AI pipelines (see ai-standins.ts and
   * docs/local-orchestrator-ai.md). Default: DEFAULT_AI_MODELS; an empty list leaves a pipeline
   * out (not advertised; its requests get 503 "insufficient capacity").
   */
  aiModels?: Partial<Record<StandInPipeline, readonly string[]>>;
  /** Concurrent batch AI requests per (pipeline, model); default 4. */
  aiCapacity?: number;
  /**
   * FOR TESTS: add or replace batch AI pipelines (any of the nine, e.g. an `llm` whose `run`
   * returns `{ kind: 'stream', chunks }` to test SSE streaming with delays between chunks, or a
   * near-zero-work pipeline for benchmarks); `null` removes a stand-in. A handler lists its
   * `models` (advertised in GetOrchestrator) and may set its own `capacity`. Credentials,
   * capacity, payment, fees, faults and the reply format stay the orchestrator's.
   */
  aiPipelines?: Partial<Record<AiPipelineName, AiPipelineHandler | null>>;
}

export type { LocalOrchestratorPayments } from './recipient.ts';

export class LocalOrchestrator {
  readonly jobs = new Map<string, LiveJob>();
  /** The PM recipient when `payments` is on: balances and winning tickets live here. */
  readonly recipient?: Recipient;
  /** `https://host:port`, known once listening. */
  url = '';
  private readonly secret: Uint8Array;
  private readonly fault: OrchestratorFault;
  /** Open client connections (raw and TLS) and HTTP/2 sessions, so an injected crash can drop them. */
  private readonly connections = new Set<{ destroy(): void }>();
  private exitTimer?: NodeJS.Timeout;
  private crashed = false;
  private readonly trickle: TrickleServer;
  /** Batch AI routes (text-to-image, ...) and what GetOrchestrator advertises for them. */
  private readonly ai: AiService;
  private readonly app: FastifyInstance<Http2SecureServer, Http2ServerRequest, Http2ServerResponse, Logger>;

  private constructor(
    private readonly opts: LocalOrchestratorOptions,
    tls: { key: string; cert: string },
  ) {
    this.secret = opts.secret ?? randomBytes(32);
    this.fault = parseFaultOption(opts.fault);
    if (opts.payments) {
      if (opts.pixelsPerUnit <= 0n || opts.pricePerUnit < 0n) {
        throw new Error('local orchestrator: payments need pixelsPerUnit > 0 and pricePerUnit >= 0');
      }
      this.recipient = new Recipient(opts.payments, rat(opts.pricePerUnit, opts.pixelsPerUnit));
    }
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
        const server = http2.createSecureServer(
          { ...tls, allowHTTP1: true, noDelay: true, settings: { maxHeaderListSize: MAX_HEADER_BYTES } },
          (req, res) => {
            if (isGrpcRequest(req)) void serveUnary(req, res, grpcMethods);
            else if (!this.trickle.handle(req, res)) handler(req, res);
          },
        );
        // Preconnected trickle requests wait for a whole segment or longer.
        (server as unknown as { requestTimeout: number }).requestTimeout = 0;
        // Go's http.Server takes 1 MiB of headers (DefaultMaxHeaderBytes); Node's 16 KiB refused a
        // live start that prepays ~250 tickets (a 24 KB Livepeer-Payment) with 431. Read by
        // node's HTTP/1 parser for the allowHTTP1 fallback.
        (server as unknown as { maxHeaderSize: number }).maxHeaderSize = MAX_HEADER_BYTES;
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
    this.ai = new AiService(
      {
        logger: opts.logger.child({ component: 'local-orchestrator-ai' }),
        fault: () => this.fault,
        recipient: this.recipient,
        baseUrl: () => this.url,
        checkCredentials: (headers) => this.checkCredentials(headers),
        processPayment: (payment, manifestId) => this.processPayment(payment, manifestId),
        onWorkStarted: () => this.armExitFault(),
      },
      { pipelines: aiPipelinesOf(opts), capacity: opts.aiCapacity },
    );
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
    const runner = describeRunner(opts.runner);
    if (runner)
      opts.logger.info({ runner }, 'live jobs behave like ai-runner pipelines (for tests and demos)');
    return orch;
  }

  async close(): Promise<void> {
    clearTimeout(this.exitTimer);
    if (this.crashed) return; // an injected crash already tore everything down
    for (const job of this.jobs.values()) job.stop('orchestrator shutting down');
    this.ai.close();
    this.trickle.close();
    await this.app.close();
  }

  /** The `exit-after` fault counts from the first job (live or batch AI) that started. */
  private armExitFault(): void {
    if (this.fault.kind === 'exit-after' && !this.exitTimer) {
      this.exitTimer = setTimeout(() => this.crash(), this.fault.afterMs);
    }
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
    this.ai.close();
    this.trickle.close();
  }

  /**
   * What GetOrchestrator answers; also the `info` of a PaymentResult. As go-livepeer does,
   * hardware and per-model prices are listed only for a request that named no capabilities.
   */
  orchestratorInfo(
    authToken = this.newAuthToken(),
    requestHadCapabilities = false,
    sender?: Uint8Array,
  ): OrchestratorInfo {
    const free = Math.max(0, this.opts.capacity - this.jobs.size);
    const models = Object.fromEntries(
      this.opts.models.map((m) => [m, { warm: true, capacity: free, capacityInUse: this.jobs.size }]),
    );
    const price = { pricePerUnit: this.opts.pricePerUnit, pixelsPerUnit: this.opts.pixelsPerUnit };
    // go-livepeer gateways drop an orchestrator lacking any of the default capabilities.
    const caps = [...DEFAULT_CAPABILITIES, Capability.LiveVideoToVideo, ...this.ai.capabilities()];
    const recipient = this.recipient;
    return {
      transcoder: this.url,
      ...(recipient ? { ticketParams: recipient.ticketParams(toAddress(sender)) } : {}),
      priceInfo: price,
      address: recipient ? Buffer.from(recipient.address.slice(2), 'hex') : new Uint8Array(20),
      capabilities: {
        bitstring: capabilityBitstring(caps),
        capacities: {
          ...Object.fromEntries(
            caps.map((c) => [c, c === Capability.LiveVideoToVideo ? this.opts.capacity : 1]),
          ),
          ...this.ai.capacities(),
        },
        version: ORCHESTRATOR_VERSION,
        constraints: {
          PerCapability: { [Capability.LiveVideoToVideo]: { models }, ...this.ai.constraints() },
        },
      },
      authToken,
      ...(requestHadCapabilities
        ? {}
        : {
            hardware: [
              ...this.opts.models.map((modelId) => ({ pipeline: PIPELINE, modelId, gpuInfo: {} })),
              ...this.ai.hardware(),
            ],
            capabilitiesPrices: [
              ...this.opts.models.map((constraint) => ({
                ...price,
                capability: Capability.LiveVideoToVideo,
                constraint,
              })),
              ...this.ai.prices(price),
            ],
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
    // Off-chain, like go-livepeer, the request's address and signature are not checked. On-chain
    // the sig is EIP-191 over keccak256 of the EIP-55 address string (server/rpc.go verifyOrchestratorReq).
    if (this.recipient?.verifySenderSignatures && !(await this.orchestratorRequestSigOk(request))) {
      throw new GrpcStatusError(
        GrpcCode.UNKNOWN,
        'Invalid orchestrator request: orchestrator req sig check failed',
      );
    }
    const wanted =
      request.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)]?.models;
    if (wanted && !request.ignoreCapacityCheck) {
      const servable = Object.keys(wanted).some((m) => this.opts.models.includes(m));
      if (!servable || this.jobs.size >= this.opts.capacity) {
        throw new GrpcStatusError(GrpcCode.UNKNOWN, 'Invalid orchestrator request: OrchestratorCapped');
      }
    }
    // Unlike go-livepeer (which checks live only), a batch AI model asked for whose every slot is
    // busy is capped too, so a gateway learns at selection time.
    if (!request.ignoreCapacityCheck) {
      const perCapability = request.capabilities?.constraints?.PerCapability ?? {};
      for (const [cap, constraint] of Object.entries(perCapability)) {
        const models = Object.keys(constraint?.models ?? {});
        if (models.length > 0 && this.ai.canServe(Number(cap), models) === false) {
          throw new GrpcStatusError(GrpcCode.UNKNOWN, 'Invalid orchestrator request: OrchestratorCapped');
        }
      }
    }
    return encodeMessage(
      'OrchestratorInfo',
      this.orchestratorInfo(undefined, request.capabilities !== undefined, request.address),
    );
  }

  private async orchestratorRequestSigOk(request: OrchestratorRequest): Promise<boolean> {
    if (request.address?.length !== 20) return false;
    const address = getAddress(toAddress(request.address));
    return verifySig(address, keccak256(stringToBytes(address)), request.sig);
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
        const creds = await this.checkCredentials(req.headers);
        if (creds instanceof CredentialError) {
          return reply.code(creds.status).type('text/plain; charset=utf-8').send(creds.message);
        }
        const mid = randomBytes(8).toString('hex');
        // On-chain: the start payment is credited under the new mid, which must then hold one ticket's EV.
        const recipient = this.recipient;
        const sender = toAddress(creds.payment.sender);
        if (recipient) {
          const refused = await this.processPayment(creds.payment, mid);
          if (refused) return reply.code(400).type('text/plain; charset=utf-8').send(refused);
          if (recipient.price.num > 0n && !recipient.sufficientBalance(sender, mid)) {
            recipient.clearBalance(sender, mid);
            return reply.code(400).type('text/plain; charset=utf-8').send('Insufficient balance');
          }
        }
        if (this.fault.kind === 'fail-start') {
          recipient?.clearBalance(sender, mid);
          return reply
            .code(500)
            .type('text/plain; charset=utf-8')
            .send(
              `failed to start live-video-to-video runner for ${body.model_id}: injected fault fail-start`,
            );
        }

        const base = `${this.url}${TRICKLE_PATH}${mid}`;
        this.trickle.createChannel(mid, 'video/MP2T');
        this.trickle.createChannel(`${mid}-out`, 'video/MP2T');
        this.trickle.createChannel(`${mid}-control`, 'application/json');
        this.trickle.createChannel(`${mid}-events`, 'application/json');
        let accounting: (() => void) | undefined;
        const job = new LiveJob({
          manifestId: mid,
          trickleBase: `${this.url}${TRICKLE_PATH}`,
          modelId: body.model_id,
          params: body.params ?? {},
          statusIntervalMs: this.opts.statusIntervalMs ?? 1000,
          inputTimeoutMs: this.opts.inputTimeoutMs ?? 30_000,
          logger: this.opts.logger,
          fault: this.fault,
          runner: this.opts.runner,
          onInputSegment: () => accounting?.(),
          onEnd: () => {
            accounting = undefined;
            recipient?.clearBalance(sender, mid);
            this.jobs.delete(mid);
            for (const suffix of ['', '-out', '-control', '-events'])
              this.trickle.closeChannel(`${mid}${suffix}`);
          },
        });
        this.jobs.set(mid, job);
        job.start();
        // As go-livepeer (ai_http.go): billed at the start payment's expected price, if any.
        const jobPrice = creds.payment.expectedPrice && ratPrice(creds.payment.expectedPrice);
        if (recipient && jobPrice && jobPrice.num > 0n && this.jobs.get(mid) === job) {
          accounting = this.startAccounting(job, recipient, sender, mid, jobPrice);
        }
        this.armExitFault();
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

    // Batch AI (go-livepeer handleAIRequest) and the result files it stores.
    app.register(this.ai.routes);

    // Segment transcoding (go-livepeer ServeSegment) and the renditions it stores.
    app.register(segmentRoutes, {
      baseUrl: () => this.url,
      checkCredentials: (headers) => this.checkCredentials(headers),
      processPayment: (payment, key) => this.processPayment(payment, key),
      recipient: this.recipient,
      info: (authToken, sender) => this.orchestratorInfo(authToken, true, sender),
      capabilities: () => this.orchestratorInfo(undefined, true).capabilities?.bitstring ?? [],
      fault: () => this.fault,
      logger: this.opts.logger,
      concurrency: 2,
    });

    app.post('/payment', async (req, reply) => {
      const creds = await this.checkCredentials(req.headers);
      if (creds instanceof CredentialError) {
        return reply.code(creds.status).type('text/plain; charset=utf-8').send(creds.message);
      }
      // Fresh info (new ticket params for the payment's sender) with the auth token the request carried.
      const info = this.orchestratorInfo(creds.segment.authToken, true, creds.payment.sender);
      if (this.recipient) {
        // go-livepeer credits SegData.manifestId: the gateway puts the start reply's manifest_id there.
        const manifestId = new TextDecoder().decode(creds.segment.manifestId ?? new Uint8Array(0));
        const refused = await this.processPayment(creds.payment, manifestId);
        if (refused) return reply.code(400).type('text/plain; charset=utf-8').send(refused);
      }
      const result = encodeMessage('PaymentResult', { info });
      return reply.type('application/octet-stream').send(Buffer.from(result));
    });
  }

  /**
   * go-livepeer's getPayment (402) then verifySegCreds (403): decode, the segment signature by the
   * payment's sender (on-chain only: "ErrSegSig"), then the auth token.
   */
  private async checkCredentials(
    headers: Record<string, unknown>,
  ): Promise<{ payment: Payment; segment: SegData } | CredentialError> {
    try {
      const payment = readPaymentHeader(header(headers, 'livepeer-payment'));
      const segment = decodeSegmentHeader(header(headers, 'livepeer-segment'));
      if (this.recipient?.verifySenderSignatures) {
        // Flatten(): manifestId ‖ seq ‖ hash ‖ hex of the profiles' name hashes (none for AI jobs).
        const flat = Buffer.concat([
          flattenSegment(
            new TextDecoder().decode(segment.manifestId ?? new Uint8Array(0)),
            segment.seq ?? 0n,
            segment.hash ?? new Uint8Array(0),
          ),
          Buffer.from(profilesHex(signedProfileNames(segment)), 'utf8'),
        ]);
        if (!(await verifySig(toAddress(payment.sender), keccak256(flat), segment.sig))) {
          throw new CredentialError(403, 'ErrSegSig');
        }
      }
      checkAuthToken(segment, this.secret);
      return { payment, segment };
    } catch (err) {
      if (err instanceof CredentialError) return err;
      throw err;
    }
  }

  /** ProcessPayment; the error text for a 400, or undefined when accepted. */
  private async processPayment(payment: Payment, manifestId: string): Promise<string | undefined> {
    const recipient = this.recipient;
    if (!recipient) return undefined;
    try {
      const r = await recipient.processPayment(payment, manifestId);
      if (r.credited > 0) {
        this.opts.logger.debug(
          { manifestId, tickets: r.credited, ev: weiString(r.ev), won: r.won },
          'payment received',
        );
      }
      return undefined;
    } catch (err) {
      if (!(err instanceof PaymentError)) throw err;
      this.opts.logger.warn({ manifestId, fatal: err.fatal }, `payment refused: ${err.message}`);
      return err.message;
    }
  }

  /**
   * Live accounting (go-livepeer AccountPayment driven by its LivePaymentProcessor): on input
   * segments, at most once per interval, debit 27,648,000 units a second since the last debit ×
   * the price the job started at (payments/live-clock.ts). When the balance is below the fee, the
   * job is closed.
   */
  private startAccounting(
    job: LiveJob,
    recipient: Recipient,
    sender: `0x${string}`,
    mid: string,
    price: Rational,
  ): () => void {
    const clock = new LiveBillingClock(recipient.accountingIntervalMs, undefined, recipient.now);
    let stopped = false;
    return () => {
      const due = clock.due();
      if (stopped || !due) return;
      const fee = mul(rat(due.units), price);
      const balance = recipient.balance(sender, mid);
      if (!balance || compare(balance, fee) < 0) {
        const message = `insufficient balance, mid=${mid}, fee=${weiString(fee)}, balance=${weiString(balance)}`;
        this.opts.logger.warn({ manifestId: mid, sender }, message);
        stopped = true;
        job.stop(message);
        return;
      }
      recipient.debit(sender, mid, fee);
      clock.commit(due);
    };
  }

  /**
   * FOR TESTS AND DEMOS: change the price, as an operator does on a running go-livepeer node.
   * Running jobs keep the price they started at; new ticket params and replies carry the new one.
   */
  setPrice(pricePerUnit: bigint, pixelsPerUnit: bigint = this.opts.pixelsPerUnit): void {
    this.opts.pricePerUnit = pricePerUnit;
    this.opts.pixelsPerUnit = pixelsPerUnit;
    this.recipient?.setPrice(rat(pricePerUnit, pixelsPerUnit));
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

/** One line for the ai-runner-like behaviour, or undefined when live jobs behave plainly. */
export function describeRunner(r: RunnerBehaviour | undefined): string | undefined {
  if (!r) return undefined;
  const parts = [
    r.warmupMs > 0 ? `warm-up ${r.warmupMs} ms` : '',
    r.outputSize ? `output ${r.outputSize.width}x${r.outputSize.height}` : '',
    r.outputFps ? `${r.outputFps} fps` : '',
    r.restarts.kind !== 'none' ? `restarts ${formatRestarts(r.restarts)} (gap ${r.restartGapMs} ms)` : '',
    r.eventForm === 'envelope' ? 'events in the ai-runner envelope' : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : undefined;
}

/** The options `npm start` and `npm run orchestrator` start it with, from the config. */
export function optionsFromConfig(lo: Config['localOrchestrator'], logger: Logger): LocalOrchestratorOptions {
  return {
    serviceAddr: lo.serviceAddr.addr,
    models: [...lo.models],
    pricePerUnit: lo.pricePerUnit,
    pixelsPerUnit: lo.pixelsPerUnit,
    capacity: lo.capacity,
    secret: Buffer.from(lo.secret.reveal(), 'utf8'),
    fault: lo.fault,
    runner: lo.runner,
    aiModels: lo.aiModels,
    aiCapacity: lo.aiCapacity,
    logger,
  };
}

/** The batch AI pipelines to serve: the stand-ins for their models, then the test overrides. */
function aiPipelinesOf(opts: LocalOrchestratorOptions): Partial<Record<AiPipelineName, AiPipelineHandler>> {
  const pipelines: Partial<Record<AiPipelineName, AiPipelineHandler>> = {};
  for (const p of STAND_IN_PIPELINES) {
    const models = opts.aiModels?.[p] ?? DEFAULT_AI_MODELS[p];
    if (models.length > 0) pipelines[p] = standIn(p, models);
  }
  const overrides = Object.entries(opts.aiPipelines ?? {}) as [AiPipelineName, AiPipelineHandler | null][];
  for (const [p, handler] of overrides) {
    if (handler) pipelines[p] = handler;
    else delete pipelines[p];
  }
  return pipelines;
}

export function splitHostPort(addr: string): [string, string] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', addr.slice(i + 1)];
}
