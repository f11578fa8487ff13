// The orchestrator side of batch AI (go-livepeer server/ai_http.go handleAIRequest): one POST
// route per pipeline, the same checks in the same order, capacity per (pipeline, model), payment
// and fees, and the reply as go-livepeer sends it (data URLs, or stored files to download).
import { randomBytes } from 'node:crypto';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { OrchestratorFault } from '../config/fault.ts';
import { AI_WORKER_PROTOCOL } from '../orchestrators/live-video.ts';
import { mul, type Rational, rat } from '../payments/rational.ts';
import type { ModelConstraint, Payment, PriceInfo, SegData } from '../wire/lp-rpc.ts';
import {
  AI_PIPELINES,
  AiBadRequest,
  type AiPipelineHandler,
  type AiPipelineName,
  type AiRequest,
  type AiResult,
  jsonBodySchema,
  outputUnits,
  PIPELINE_SPECS,
  RunnerError,
  readFormFiles,
  typeFormFields,
} from './ai-pipelines.ts';
import { AiResultStore } from './ai-results.ts';
import { CredentialError } from './credentials.ts';
import { type Recipient, toAddress } from './recipient.ts';

/** Default concurrent requests per (pipeline, model). */
export const DEFAULT_AI_CAPACITY = 4;
/** Default largest request body (uploads) the AI routes read. */
export const DEFAULT_AI_BODY_LIMIT = 64 * 1024 * 1024;

/** What the AI routes need from the orchestrator they are part of. */
export interface AiHost {
  logger: Logger;
  fault(): OrchestratorFault;
  recipient?: Recipient;
  /** `https://host:port`, for the URLs of stored results. */
  baseUrl(): string;
  checkCredentials(
    headers: Record<string, unknown>,
  ): Promise<{ payment: Payment; segment: SegData } | CredentialError>;
  /** ProcessPayment: the refusal text (HTTP 400), or undefined when accepted. */
  processPayment(payment: Payment, manifestId: string): Promise<string | undefined>;
  /** A request passed every check and its work begins (the exit-after fault counts from here). */
  onWorkStarted(): void;
}

export interface AiServiceOptions {
  /** Handlers by pipeline; a pipeline without one is not advertised and answers 503. */
  pipelines: Partial<Record<AiPipelineName, AiPipelineHandler>>;
  capacity?: number;
  bodyLimit?: number;
  resultTtlMs?: number;
}

/** A request that is not answered with a reply body: the reply is already sent, or never will be. */
const HANDLED = Symbol('handled');

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AiService {
  private readonly pipelines = new Map<AiPipelineName, AiPipelineHandler>();
  private readonly inUse = new Map<string, number>();
  private readonly running = new Set<AbortController>();
  private readonly results: AiResultStore;
  private readonly capacity: number;
  private readonly bodyLimit: number;

  constructor(
    private readonly host: AiHost,
    opts: AiServiceOptions,
  ) {
    this.capacity = opts.capacity ?? DEFAULT_AI_CAPACITY;
    this.bodyLimit = opts.bodyLimit ?? DEFAULT_AI_BODY_LIMIT;
    this.results = new AiResultStore(opts.resultTtlMs);
    for (const pipeline of AI_PIPELINES) {
      const handler = opts.pipelines[pipeline];
      if (handler && handler.models.length > 0) this.pipelines.set(pipeline, handler);
    }
  }

  /** Pipelines served, with their models, in AI_PIPELINES order. */
  served(): [AiPipelineName, AiPipelineHandler][] {
    return [...this.pipelines];
  }

  /** Capability ids to advertise. */
  capabilities(): number[] {
    return this.served().map(([p]) => PIPELINE_SPECS[p].capability);
  }

  /** Capacity per capability (Capabilities.capacities): the sum over its models. */
  capacities(): Record<string, number> {
    return Object.fromEntries(
      this.served().map(([p, h]) => [
        PIPELINE_SPECS[p].capability,
        h.models.length * (h.capacity ?? this.capacity),
      ]),
    );
  }

  /** Capabilities.constraints.PerCapability entries: every model, warm, with idle and busy slots. */
  constraints(): Record<string, { models: Record<string, ModelConstraint> }> {
    return Object.fromEntries(
      this.served().map(([p, h]) => [
        PIPELINE_SPECS[p].capability,
        {
          models: Object.fromEntries(
            h.models.map((m) => {
              const busy = this.inUse.get(slotKey(p, m)) ?? 0;
              const total = h.capacity ?? this.capacity;
              return [m, { warm: true, capacity: Math.max(0, total - busy), capacityInUse: busy }];
            }),
          ),
        },
      ]),
    );
  }

  /** OrchestratorInfo.hardware entries (no GPU: the stand-ins run on the CPU). */
  hardware(): { pipeline: string; modelId: string; gpuInfo: Record<string, never> }[] {
    return this.served().flatMap(([p, h]) =>
      h.models.map((modelId) => ({ pipeline: p, modelId, gpuInfo: {} })),
    );
  }

  /** OrchestratorInfo.capabilities_prices entries: one per (capability, model). */
  prices(price: { pricePerUnit: bigint; pixelsPerUnit: bigint }): PriceInfo[] {
    return this.served().flatMap(([p, h]) =>
      h.models.map((constraint) => ({ ...price, capability: PIPELINE_SPECS[p].capability, constraint })),
    );
  }

  /**
   * For GetOrchestrator: false when this orchestrator serves some of `models` for `capability`
   * but every slot of each is busy (OrchestratorCapped). Otherwise undefined: a model or pipeline
   * it does not serve is for the gateway to see in the reply, as go-livepeer answers.
   */
  canServe(capability: number, models: string[]): false | undefined {
    const pipeline = AI_PIPELINES.find((p) => PIPELINE_SPECS[p].capability === capability);
    const handler = pipeline && this.pipelines.get(pipeline);
    if (!pipeline || !handler) return undefined;
    const served = models.filter((m) => handler.models.includes(m));
    if (served.length === 0) return undefined;
    const total = handler.capacity ?? this.capacity;
    return served.some((m) => (this.inUse.get(slotKey(pipeline, m)) ?? 0) < total) ? undefined : false;
  }

  /** Stops hung and running requests and drops stored results. */
  close(): void {
    for (const ac of this.running) ac.abort();
    this.running.clear();
    this.results.close();
  }

  /** The routes, as a fastify plugin (its multipart parser and error handler stay inside it). */
  readonly routes: FastifyPluginAsync = async (app) => {
    app.addContentTypeParser(
      'multipart/form-data',
      { parseAs: 'buffer', bodyLimit: this.bodyLimit },
      async (req: FastifyRequest, body: Buffer) => {
        try {
          return await new Response(body as unknown as BodyInit, {
            headers: { 'content-type': String(req.headers['content-type']) },
          }).formData();
        } catch {
          throw new AiBadRequest('malformed multipart/form-data body');
        }
      },
    );
    // go-livepeer answers every decoding problem with 400 and the decoder's text.
    app.setErrorHandler((err: FastifyError, _req, reply) => {
      let status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
      if (status === 415) status = 400;
      return text(reply, status, err.message);
    });
    for (const pipeline of AI_PIPELINES) {
      const spec = PIPELINE_SPECS[pipeline];
      app.post(
        `/${pipeline}`,
        {
          bodyLimit: this.bodyLimit,
          ...(spec.body === 'json' ? { schema: { body: jsonBodySchema(spec) } } : {}),
        },
        async (req, reply) => {
          try {
            const out = await this.handle(pipeline, req, reply);
            if (out !== HANDLED) return out;
            // Streamed, or nobody is left to answer: make sure the exchange is over.
            if (!reply.sent) reply.hijack();
            if (!reply.raw.writableEnded) abortExchange(reply);
            return reply;
          } catch (err) {
            if (err instanceof HttpError) return text(reply, err.status, err.message);
            if (err instanceof AiBadRequest) return text(reply, 400, err.message);
            throw err;
          }
        },
      );
    }
    app.get<{ Params: { requestId: string; name: string } }>(
      '/stream/:requestId/:name',
      async (req, reply) => {
        const found = this.results.get(`${req.params.requestId}/${req.params.name}`);
        if (!found) return text(reply, 404, `404 page not found: ${req.url}`);
        return reply.type(found.contentType).send(found.data);
      },
    );
  };

  /** handleAIRequest, in go-livepeer's order: decode, 402/403, units, capacity, payment, work, fees, reply. */
  private async handle(
    pipeline: AiPipelineName,
    req: FastifyRequest,
    reply: FastifyReply,
  ): Promise<unknown | typeof HANDLED> {
    const spec = PIPELINE_SPECS[pipeline];
    let params: Record<string, unknown>;
    let files: AiRequest['files'] = {};
    if (spec.body === 'multipart') {
      if (!(req.body instanceof FormData)) {
        throw new HttpError(400, "request Content-Type isn't multipart/form-data");
      }
      params = typeFormFields(spec, req.body);
      files = await readFormFiles(spec, req.body);
    } else {
      params = req.body as Record<string, unknown>;
    }
    const modelId = String(params[spec.modelField] ?? '');

    const creds = await this.host.checkCredentials(req.headers);
    if (creds instanceof CredentialError) throw new HttpError(creds.status, creds.message);
    const { payment } = creds;
    const units = await outputUnits({ pipeline, params, files });

    const handler = this.pipelines.get(pipeline);
    const release = handler && this.reserve(pipeline, handler, modelId);
    if (!release) {
      this.host.logger.warn({ pipeline, model: modelId }, 'insufficient capacity for AI request');
      throw new HttpError(503, 'insufficient capacity');
    }
    const ac = new AbortController();
    this.running.add(ac);
    // A client that goes away stops the work (and a hung request) and frees the slot.
    const onClose = () => {
      if (!reply.raw.writableEnded) ac.abort();
    };
    reply.raw.once('close', onClose);
    try {
      // go-livepeer keeps one balance per sender for all requests of a capability and model.
      const manifestId = `${spec.capability}_${modelId}`;
      const sender = toAddress(payment.sender);
      const recipient = this.host.recipient;
      if (recipient) {
        const refused = await this.host.processPayment(payment, manifestId);
        if (refused) throw new HttpError(400, refused);
        // go-livepeer checks only when the payment names a price; also checking when this
        // orchestrator charges keeps a payment without tickets from getting work for free.
        const charged = (payment.expectedPrice?.pricePerUnit ?? 0n) > 0n || recipient.price.num > 0n;
        if (charged && !recipient.sufficientBalance(sender, manifestId)) {
          throw new HttpError(400, 'Insufficient balance');
        }
      }
      const fault = this.host.fault();
      if (fault.kind === 'fail-start') {
        throw new HttpError(500, `${pipeline} container returned 500: injected fault fail-start`);
      }
      if (fault.kind === 'hang') {
        this.host.logger.warn({ pipeline, model: modelId }, 'injected fault hang: never answering');
        await new Promise<void>((resolve) =>
          ac.signal.addEventListener('abort', () => resolve(), { once: true }),
        );
        return HANDLED;
      }
      this.host.onWorkStarted();

      const requestId = randomBytes(8).toString('hex');
      const started = performance.now();
      let result: AiResult;
      try {
        result = await handler.run({ pipeline, modelId, params, files, requestId, signal: ac.signal });
      } catch (err) {
        if (ac.signal.aborted) return HANDLED;
        const message =
          err instanceof RunnerError
            ? `${pipeline} container returned ${err.status}: ${err.message}`
            : (err as Error).message;
        this.host.logger.warn({ pipeline, model: modelId }, `AI request failed: ${message}`);
        throw new HttpError(500, message);
      }
      this.host.logger.info(
        { pipeline, model: modelId, requestId, ms: Math.round(performance.now() - started) },
        'processed AI request',
      );
      if (recipient)
        recipient.debit(sender, manifestId, mul(rat(units), this.debitPrice(payment, recipient)));
      return await this.send(result, req, reply, requestId, ac.signal);
    } finally {
      reply.raw.off('close', onClose);
      this.running.delete(ac);
      release();
    }
  }

  /** DebitFees uses the price the payment expected; without one, this orchestrator's. */
  private debitPrice(payment: Payment, recipient: Recipient): Rational {
    const e = payment.expectedPrice;
    return e?.pixelsPerUnit ? rat(e.pricePerUnit ?? 0n, e.pixelsPerUnit) : recipient.price;
  }

  private async send(
    result: AiResult,
    req: FastifyRequest,
    reply: FastifyReply,
    requestId: string,
    signal: AbortSignal,
  ): Promise<unknown | typeof HANDLED> {
    if (result.kind === 'json') return reply.type('application/json').send(result.body);
    if (result.kind === 'images') {
      // go-livepeer's gateway sends its AI worker protocol version; older ones expect data URLs.
      const stored = req.headers.authorization === AI_WORKER_PROTOCOL;
      const images = result.images.map((img) => ({
        url: stored
          ? `${this.host.baseUrl()}${this.results.put(requestId, `${randomBytes(8).toString('hex')}.png`, img.png, 'image/png')}`
          : `data:image/png;base64,${img.png.toString('base64')}`,
        seed: img.seed,
        nsfw: img.nsfw,
      }));
      return reply.type('application/json').send({ images });
    }
    // Server-Sent Events, flushed chunk by chunk, as go-livepeer streams an LLM reply.
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    try {
      for await (const chunk of result.chunks) {
        if (signal.aborted) break;
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        if (finished(chunk)) break;
      }
    } catch (err) {
      this.host.logger.warn({ requestId }, `AI stream failed: ${(err as Error).message}`);
    }
    res.end();
    return HANDLED;
  }

  /** CheckAICapacity: take a slot of (pipeline, model); the release function, or undefined when none is free. */
  private reserve(
    pipeline: AiPipelineName,
    handler: AiPipelineHandler,
    model: string,
  ): (() => void) | undefined {
    if (!handler.models.includes(model)) return undefined;
    const key = slotKey(pipeline, model);
    const busy = this.inUse.get(key) ?? 0;
    if (busy >= (handler.capacity ?? this.capacity)) return undefined;
    this.inUse.set(key, busy + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.inUse.get(key) ?? 1) - 1;
      if (n > 0) this.inUse.set(key, n);
      else this.inUse.delete(key);
    };
  }
}

const slotKey = (pipeline: string, model: string) => `${pipeline}\u0000${model}`;

function finished(chunk: unknown): boolean {
  const choices = (chunk as { choices?: { finish_reason?: unknown }[] } | null)?.choices;
  const reason = Array.isArray(choices) ? choices[0]?.finish_reason : undefined;
  return typeof reason === 'string' && reason !== '';
}

/** Ends an unanswered exchange abruptly (HTTP/2: RST_STREAM; HTTP/1.1: the socket). */
function abortExchange(reply: FastifyReply): void {
  const raw = reply.raw as unknown as { stream?: { close(code?: number): void }; destroy?: () => void };
  if (raw.stream)
    raw.stream.close(0x8); // NGHTTP2_CANCEL
  else raw.destroy?.();
}

function text(reply: FastifyReply, status: number, message: string) {
  return reply.code(status).type('text/plain; charset=utf-8').send(message);
}
