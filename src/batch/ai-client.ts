// Running one batch AI request as go-livepeer's gateway does (server/ai_process.go
// processAIRequest / submit* / prepareAIPayment): choose an orchestrator that offers the
// pipeline's capability and model within the price ceiling, send the job to
// {transcoder}/{pipeline} with Livepeer-Segment, Livepeer-Payment and the AI worker protocol
// version, pay the pipeline's units × price, and on a retryable failure go to another
// orchestrator, up to maxTries and while the retry budget lasts. docs/batch-ai.md has the rules.
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { LivePayments } from '../live/live-payer.ts';
import { type JobKind, jobCapabilities } from '../orchestrators/capabilities.ts';
import { type Blame, OrchestratorError } from '../orchestrators/errors.ts';
import { download, post, readBody } from '../orchestrators/http.ts';
import { AI_WORKER_PROTOCOL } from '../orchestrators/live-video.ts';
import { NoOrchestratorError, type SelectedOrchestrator } from '../orchestrators/pool.ts';
import { jobPrice } from '../orchestrators/price.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials, senderOnlyPayment } from '../payments/credentials.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { floatString, mul, type Rational, rat, ZERO } from '../payments/rational.ts';
import { Balances, type BalanceUpdate } from '../payments/sender.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import { type AiPipeline, BOUNDS, modelOf } from './ai-pipelines.ts';
import { extensionFor, newRequestId, type ResultStore } from './ai-results.ts';
import { AudioDurationError, audioDurationSeconds } from './audio-duration.ts';
import { BatchError } from './errors.ts';
import { type ImageSize, imageDamage, imageSize } from './image-size.ts';
import { buildMultipart, isUploadedFile, type UploadedFile } from './multipart.ts';
import { mediaDecodeError } from './segment-decode.ts';

/**
 * How long one GetOrchestrator answer (auth token, price, ticket params) serves further requests
 * of the same pipeline and model, as go-livepeer's gateway keeps AI sessions: a round trip less
 * per request. Short, so that new ticket params and prices are picked up soon.
 */
const SESSION_REUSE_MS = 5000;

/** go-livepeer's image-to-video fee counts the 25 frames stable-video-diffusion-img2vid-xt makes. */
export const IMAGE_TO_VIDEO_FRAMES = 25n;
const MAX_REPLY_BYTES = 256 * 1024 * 1024;
/** Default of `ai.replyTimeout`: a reply whose headers came may take this long to finish. */
export const DEFAULT_REPLY_TIMEOUT_MS = 5 * 60_000;
/** Default of `ai.maxInFlight`. */
export const DEFAULT_MAX_IN_FLIGHT = 64;
const MAX_ERROR_BYTES = 64 * 1024;

/** What the runner needs of the orchestrator pool. */
export interface AiPool {
  select(
    kind: JobKind,
    opts?: { exclude?: ReadonlySet<string>; reuseMs?: number },
  ): Promise<SelectedOrchestrator>;
  /** A fresh answer from `url` (new ticket params), also kept for later selections' reuse. */
  renewAnswer(url: string, kind: JobKind): Promise<OrchestratorInfo>;
  suspend(url: string, reason: string): void;
  reportSuccess(url: string): void;
  observeLatency(url: string, ms: number, capability?: number): void;
}

export interface AiJobRunnerOptions {
  pool: AiPool;
  /** Signs the segment credentials (off-chain: empty signatures). */
  identity: GatewayIdentity;
  /** On-chain: tickets for orchestrators that charge. Absent: off-chain headers only. */
  payments?: LivePayments;
  /** Orchestrators tried per request, at most. */
  maxTries: number;
  /** No new try starts once the request is this old (go-livepeer's -aiProcessingRetryTimeout). */
  retryTimeoutMs: number;
  /**
   * One orchestrator has this long to start answering (response headers; for a stream, also the
   * longest gap between events) before the next is tried. Kept well under retryTimeoutMs, so that
   * a hung orchestrator leaves time for another.
   */
  tryTimeoutMs: number;
  /** Once the headers are in: the whole reply body and each result download (default 5 min). */
  replyTimeoutMs?: number;
  /** Jobs admitted at once (sync, streaming and async); beyond it: 503 (default 64). */
  maxInFlight?: number;
  /** Why an upload does not decode, or undefined (default: ffmpeg decodes it). */
  inputCheck?: (data: Uint8Array, kind: 'video' | 'audio') => Promise<string | undefined>;
  results: ResultStore;
  logger: Logger;
}

export interface AiRequest {
  pipeline: AiPipeline;
  /** Validated body, defaults applied; the multipart file as an UploadedFile. */
  body: Record<string, unknown>;
  /** Names the request's result directory; a fresh one when absent. */
  requestId?: string;
  /** Absolute base of result URLs, e.g. `http://127.0.0.1:8935`. */
  resultBase: string;
}

export interface AiAttempts {
  orchestrator: string;
  tries: number;
  requestId: string;
  /** The fee paid to the orchestrator that answered, wei (decimal, rounded). */
  feeWei: string;
}

export type AiOutcome =
  | (AiAttempts & { kind: 'json'; body: unknown })
  /** LLM with stream: each item is one event's JSON text; ends after the last chunk. */
  | (AiAttempts & { kind: 'stream'; events: AsyncGenerator<string, void, void>; cancel: () => void });

/** The job as sent to every orchestrator tried: body built once, units known up front. */
interface PreparedJob {
  kind: JobKind;
  /** go-livepeer's "outPixels": the units the fee is price × this. */
  units: bigint;
  contentType: string;
  body: Buffer;
  stream: boolean;
}

type AttemptResult =
  | { ok: true; reply: IncomingMessage; ms: number; fee: Rational; settle: (ok: boolean) => void }
  | { ok: false; retry: boolean; suspend: boolean; status?: number; why: string };

/** One admitted job's slot: freed once every holder (the HTTP exchange, the job) let go. */
export interface AiJobSlot {
  /** Another holder (the job outliving the response: a stream or an async job). */
  hold(): void;
  /** One holder is done; the last frees the slot. Extra calls do nothing. */
  release(): void;
}

export class AiJobRunner {
  private readonly balances = new Balances();
  private readonly log: Logger;
  private readonly replyTimeoutMs: number;
  readonly maxInFlight: number;
  private readonly inputCheck: NonNullable<AiJobRunnerOptions['inputCheck']>;
  private admitted = 0;

  constructor(private readonly opts: AiJobRunnerOptions) {
    this.log = opts.logger.child({ component: 'batch-ai' });
    this.replyTimeoutMs = opts.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.inputCheck = opts.inputCheck ?? mediaDecodeError;
  }

  /** Jobs holding a slot now. */
  get inFlight(): number {
    return this.admitted;
  }

  /**
   * A slot for one more job, or undefined when maxInFlight are running: uploads, replies and
   * re-hosted results are held in memory, so their number is bounded.
   */
  admit(): AiJobSlot | undefined {
    if (this.admitted >= this.maxInFlight) return undefined;
    this.admitted++;
    let holders = 1;
    return {
      hold: () => {
        if (holders > 0) holders++;
      },
      release: () => {
        if (holders === 0) return;
        holders--;
        if (holders === 0) this.admitted--;
      },
    };
  }

  /** Runs the request; throws BatchError for anything the caller gets as an HTTP error. */
  async run(req: AiRequest): Promise<AiOutcome> {
    const started = performance.now();
    const requestId = req.requestId ?? newRequestId();
    const prepared = await prepare(req.pipeline, req.body);
    const label = `${req.pipeline.name} "${prepared.kind.modelId}"`;
    const tried = new Set<string>();
    const failures: string[] = [];
    let tries = 0;
    let last: string | undefined;
    /** The decode check's answer, asked once per request: '' decodes, text says why not. */
    let undecodable: string | undefined;
    while (tries < this.opts.maxTries) {
      if (tries > 0 && performance.now() - started >= this.opts.retryTimeoutMs) {
        failures.push(`retry budget of ${this.opts.retryTimeoutMs} ms used up`);
        break;
      }
      let selected: SelectedOrchestrator;
      try {
        selected = await this.opts.pool.select(prepared.kind, { exclude: tried, reuseMs: SESSION_REUSE_MS });
      } catch (err) {
        if (!(err instanceof NoOrchestratorError)) throw err;
        if (tries === 0) {
          throw new BatchError(
            503,
            'NO_ORCHESTRATOR',
            `no orchestrator offers ${label}: ${err.reasons.length ? err.reasons.join('; ') : 'none is configured'}`,
            { pipeline: req.pipeline.name, model_id: prepared.kind.modelId, reasons: err.reasons },
            { tries: 0 },
          );
        }
        failures.push('no other orchestrator offers it');
        break;
      }
      tries++;
      tried.add(selected.url);
      last = selected.url;
      const attempt = await this.attempt(selected, req.pipeline, prepared);
      if (attempt.ok) {
        const attempts = {
          orchestrator: selected.url,
          tries,
          requestId,
          feeWei: floatString(attempt.fee, 0),
        };
        try {
          const outcome = await this.finish(req, prepared, attempt.reply, attempts, selected);
          attempt.settle(true);
          this.opts.pool.reportSuccess(selected.url);
          this.opts.pool.observeLatency(selected.url, attempt.ms, prepared.kind.capability);
          return outcome;
        } catch (err) {
          if (!(err instanceof OrchestratorError)) {
            attempt.settle(true);
            if (err instanceof BatchError) throw withAttempts(err, selected.url, tries);
            throw err;
          }
          // A broken or unreadable reply: the orchestrator's fault, try another.
          attempt.settle(false);
          const why = oneLine(err.message);
          this.opts.pool.suspend(selected.url, `${req.pipeline.name} failed: ${why}`);
          failures.push(`${selected.url}: ${why}`);
          continue;
        }
      }
      this.log.info(
        { orchestrator: selected.url, pipeline: req.pipeline.name, model: prepared.kind.modelId, try: tries },
        `batch try failed: ${attempt.why}`,
      );
      if (!attempt.retry) {
        throw new BatchError(
          attempt.status === 422 ? 400 : (attempt.status ?? 400),
          'REJECTED_BY_ORCHESTRATOR',
          `the orchestrator refused the request: ${attempt.why}`,
          undefined,
          { orchestrator: selected.url, tries },
        );
      }
      if (attempt.suspend && req.pipeline.file) {
        // Blame (src/live/cause.ts): an upload the gateway cannot decode either is the client's.
        undecodable ??= await this.inputCheck(
          (req.body[req.pipeline.file] as UploadedFile).data,
          req.pipeline.file === 'audio' ? 'audio' : 'video',
        );
        if (undecodable) {
          throw new BatchError(
            422,
            req.pipeline.file === 'audio' ? 'UNREADABLE_AUDIO' : 'UNREADABLE_IMAGE',
            `"${req.pipeline.file}" does not decode: ${undecodable}`,
            { blame: 'client' satisfies Blame },
            { orchestrator: selected.url, tries },
          );
        }
        undecodable = '';
      }
      if (attempt.suspend)
        this.opts.pool.suspend(selected.url, `${req.pipeline.name} failed: ${attempt.why}`);
      failures.push(`${selected.url}: ${attempt.why}`);
    }
    throw new BatchError(
      503,
      'ORCHESTRATORS_FAILED',
      `${label} failed on ${tries} orchestrator${tries === 1 ? '' : 's'}: ${failures.join('; ')}`,
      { pipeline: req.pipeline.name, model_id: prepared.kind.modelId, failures },
      { orchestrator: last, tries },
    );
  }

  /** One try: credentials, payment, POST; the answer's status decides whether to retry. */
  private async attempt(
    sel: SelectedOrchestrator,
    pipeline: AiPipeline,
    job: PreparedJob,
  ): Promise<AttemptResult> {
    let info = sel.info;
    const feeAt = (i: OrchestratorInfo) => {
      const price = jobPrice(i, job.kind.capability, job.kind.modelId);
      return price.perPixel.den === 0n
        ? ZERO
        : mul(rat(job.units), rat(price.perPixel.num, price.perPixel.den));
    };
    let fee = feeAt(info);
    // go-livepeer's dummy manifest for AI sessions: one "stream" per capability and model.
    const manifestId = `${job.kind.capability}_${job.kind.modelId}`;
    let payment = OFFCHAIN_PAYMENT;
    let update: BalanceUpdate | undefined;
    const payments = this.opts.payments;
    const balance = this.balances.for(sel.url, manifestId);
    let segment: string;
    try {
      if (payments && LivePayments.pays(info)) {
        // Kept params that can pay no more (their nonces used by earlier requests, or expired)
        // are refreshed from this same orchestrator: it is not at fault, and may be the only one.
        const paid = await payments.payFresh(sel.url, info, {
          fee: feeAt,
          balance: () => balance,
          refresh: () => this.opts.pool.renewAnswer(sel.url, job.kind),
        });
        if (paid.refreshed) {
          this.log.info(
            { orchestrator: sel.url, pipeline: pipeline.name },
            'ticket params used up or expired: paid with a fresh GetOrchestrator answer',
          );
        }
        info = paid.info;
        fee = paid.fee;
        payment = paid.payment.header;
        update = paid.payment.update;
        // As go-livepeer: once sent, the credit counts as spent unless the orchestrator answers.
        if (update) update.status = 'credit-spent';
      } else if (payments) {
        // Free, but on-chain all the same (go-livepeer genPayment): the orchestrator checks the
        // segment signature against the payment's sender, so name it; no tickets.
        payment = senderOnlyPayment(payments.identity.address, info.priceInfo);
      }
      segment = await segmentCredentials(info, payments?.identity ?? this.opts.identity, {
        manifestId,
        capabilities: jobCapabilities(job.kind),
      });
    } catch (err) {
      if (update) balance.complete(update);
      const why = `payment could not be made: ${(err as Error).message}`;
      return { ok: false, retry: true, suspend: false, why };
    }
    const transcoder = info.transcoder || sel.url;
    const settle = (ok: boolean) => {
      if (!update) return;
      if (ok) {
        update.status = 'received-change';
        update.debit = fee;
      }
      balance.complete(update);
      update = undefined;
    };
    const url = new URL(pipeline.name, transcoder.endsWith('/') ? transcoder : `${transcoder}/`);
    const started = performance.now();
    let reply: IncomingMessage;
    try {
      reply = await post(url, {
        headers: {
          'Content-Type': job.contentType,
          'Livepeer-Payment': payment,
          'Livepeer-Segment': segment,
          Authorization: AI_WORKER_PROTOCOL,
          ...(job.stream ? { Accept: 'text/event-stream' } : {}),
        },
        body: job.body,
        timeoutMs: this.opts.tryTimeoutMs,
      });
    } catch (err) {
      settle(false);
      const e = err as OrchestratorError;
      return { ok: false, retry: true, suspend: true, why: `${e.kind}: ${oneLine(e.message)}` };
    }
    const ms = performance.now() - started;
    const status = reply.statusCode ?? 0;
    if (status === 200) return { ok: true, reply, ms, fee, settle };
    let text = '';
    try {
      text = oneLine(
        (await readBody(reply, MAX_ERROR_BYTES, this.opts.tryTimeoutMs, url.origin)).toString('utf8'),
      );
    } catch {
      // the status says enough
    }
    settle(false);
    return classify(status, text);
  }

  /** A 200 answer: relay the stream, or read the JSON and re-host its files. */
  private async finish(
    req: AiRequest,
    job: PreparedJob,
    reply: IncomingMessage,
    attempts: AiAttempts,
    selected: SelectedOrchestrator,
  ): Promise<AiOutcome> {
    const orchestrator = selected.url;
    const type = String(reply.headers['content-type'] ?? '');
    if (job.stream && type.startsWith('text/event-stream')) {
      return {
        ...attempts,
        kind: 'stream',
        events: sseEvents(reply, this.opts.tryTimeoutMs, orchestrator),
        // Closes the orchestrator's stream at once, even while it is quiet.
        cancel: () => reply.destroy(),
      };
    }
    const raw = await readBody(reply, MAX_REPLY_BYTES, this.replyTimeoutMs, orchestrator);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new OrchestratorError('invalid-reply', orchestrator, `${req.pipeline.name} reply is not JSON`);
    }
    if (typeof body !== 'object' || body === null) {
      throw new OrchestratorError(
        'invalid-reply',
        orchestrator,
        `${req.pipeline.name} reply is not a JSON object`,
      );
    }
    await this.rehost(req, body as Record<string, unknown>, attempts.requestId, selected);
    return { ...attempts, kind: 'json', body };
  }

  /** Every file the reply points at (data URL or URL) is stored here and its URL replaced. */
  private async rehost(
    req: AiRequest,
    body: Record<string, unknown>,
    requestId: string,
    selected: SelectedOrchestrator,
  ): Promise<void> {
    const orchestrator = selected.url;
    // go-livepeer orchestrators serve results from their own host; nothing else is fetched.
    const ownHost = new URL(selected.info.transcoder || selected.url).hostname;
    const media: { url: unknown }[] = [];
    if (req.pipeline.results === 'images') {
      const images = body.images;
      if (!Array.isArray(images)) {
        throw new OrchestratorError(
          'invalid-reply',
          orchestrator,
          `${req.pipeline.name} reply has no images list`,
        );
      }
      media.push(...(images as { url: unknown }[]));
    } else if (req.pipeline.results === 'audio') {
      const audio = body.audio as { url: unknown } | undefined;
      if (!audio || typeof audio !== 'object') {
        throw new OrchestratorError('invalid-reply', orchestrator, `${req.pipeline.name} reply has no audio`);
      }
      media.push(audio);
    }
    const base = req.resultBase.replace(/\/+$/, '');
    await Promise.all(
      media.map(async (m, i) => {
        if (!m || typeof m !== 'object' || typeof m.url !== 'string' || m.url === '') {
          throw new OrchestratorError(
            'invalid-reply',
            orchestrator,
            `${req.pipeline.name} reply has an item without a url`,
          );
        }
        const file = await this.fetchResult(m.url, req.pipeline, i, orchestrator, ownHost);
        const name = await this.opts.results.save(requestId, file.name, file.data);
        m.url = `${base}/results/${requestId}/${name}`;
      }),
    );
  }

  private async fetchResult(
    url: string,
    pipeline: AiPipeline,
    index: number,
    orchestrator: string,
    ownHost: string,
  ): Promise<{ name: string; data: Buffer }> {
    const dataUrl = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(url);
    if (dataUrl) {
      const type = dataUrl[1] || (pipeline.results === 'audio' ? 'audio/wav' : 'image/png');
      const data = dataUrl[2]
        ? Buffer.from(dataUrl[3]!, 'base64')
        : Buffer.from(decodeURIComponent(dataUrl[3]!));
      return { name: `${newRequestId()}-${index}${extensionFor(type)}`, data };
    }
    let host: string;
    try {
      host = new URL(url).hostname;
    } catch {
      throw new OrchestratorError('invalid-reply', orchestrator, `result URL ${oneLine(url)} is not a URL`);
    }
    if (host !== ownHost) {
      // Fetching any URL an orchestrator names would let it aim the gateway at other hosts.
      throw new OrchestratorError(
        'invalid-reply',
        orchestrator,
        `result URL ${oneLine(url)} is not on the orchestrator's own host ${ownHost}`,
      );
    }
    let got: { data: Buffer; contentType: string };
    try {
      got = await download(url, MAX_REPLY_BYTES, this.replyTimeoutMs);
    } catch (err) {
      throw new BatchError(
        502,
        'RESULT_UNAVAILABLE',
        `the orchestrator's result could not be fetched: ${(err as Error).message}`,
      );
    }
    const last = new URL(url).pathname.split('/').pop() ?? '';
    const name = /\.[A-Za-z0-9]{1,5}$/.test(last)
      ? last
      : `${last || newRequestId()}${extensionFor(got.contentType)}`;
    return { name: `${index}-${name}`, data: got.data };
  }
}

/**
 * What a non-200 answer means (go-livepeer's isRetryableError / isInvalidTicketSenderNonce /
 * isNoCapacityError, and a 400 from the runner going back to the caller).
 */
export function classify(status: number, text: string): AttemptResult & { ok: false } {
  const why = `${status}${text ? ` ${text}` : ''}`;
  const lower = text.toLowerCase();
  // The runner refused the input and the orchestrator relayed it (go-livepeer parseBadRequestError).
  const relayed = /returned 400:?\s*(.*)$/s.exec(text);
  if (relayed)
    return { ok: false, retry: false, suspend: false, status: 400, why: relayed[1] || 'bad request' };
  if (lower.includes('insufficient capacity')) return { ok: false, retry: true, suspend: false, status, why };
  if (lower.includes('ticketparams expired') || lower.includes('invalid ticket sendernonce')) {
    return { ok: false, retry: true, suspend: false, status, why };
  }
  if (status === 400 || status === 422) {
    // Payment and credential refusals are the gateway's business, not the caller's.
    if (/insufficient balance|ticket|payment|price|auth ?token|segment|sender/.test(lower)) {
      return { ok: false, retry: true, suspend: true, status, why };
    }
    return { ok: false, retry: false, suspend: false, status, why };
  }
  return { ok: false, retry: true, suspend: status !== 429 && status !== 413, status, why };
}

/** Builds the orchestrator's request body once and works out the fee's units. */
async function prepare(p: AiPipeline, body: Record<string, unknown>): Promise<PreparedJob> {
  const modelId = modelOf(p, body);
  const kind = { capability: p.capability, modelId };
  const fields: Record<string, unknown> = {};
  for (const name of Object.keys(p.properties)) {
    if (name !== p.file && body[name] !== undefined) fields[name] = body[name];
  }
  fields[p.modelField] = modelId;
  const units = await feeUnits(p, fields, p.file ? (body[p.file] as UploadedFile) : undefined);
  if (p.name === 'audio-to-text') {
    // go-livepeer passes the billed duration on to the runner.
    fields.metadata = JSON.stringify({ duration: String(units / 1000n) });
  }
  const stream = p.name === 'llm' && fields.stream === true;
  if (p.body === 'json') {
    return {
      kind,
      units,
      stream,
      contentType: 'application/json',
      body: Buffer.from(JSON.stringify(fields)),
    };
  }
  const upload = body[p.file!];
  if (!isUploadedFile(upload)) throw new BatchError(400, 'BAD_REQUEST', `"${p.file}" must be a file upload`);
  const multipart = buildMultipart(
    { name: p.file!, upload },
    Object.entries(fields).map(([k, v]) => [k, String(v)]),
  );
  return { kind, units, stream, contentType: multipart.contentType, body: multipart.body };
}

/**
 * go-livepeer's units per pipeline (server/ai_process.go submit*, server/ai_http.go
 * handleAIRequest): what price per unit is multiplied by.
 */
export async function feeUnits(
  p: AiPipeline,
  fields: Record<string, unknown>,
  upload?: UploadedFile,
): Promise<bigint> {
  const n = (name: string) => BigInt(Math.max(1, Math.trunc(Number(fields[name] ?? 1))));
  const image = () => {
    const size = checkedImage(p, upload);
    return BigInt(size.width) * BigInt(size.height);
  };
  switch (p.name) {
    case 'text-to-image':
      return n('height') * n('width') * n('num_images_per_prompt');
    case 'image-to-image':
      return image() * n('num_images_per_prompt');
    case 'upscale':
    case 'segment-anything-2':
    case 'image-to-text':
      return image();
    case 'image-to-video':
      return n('height') * n('width') * IMAGE_TO_VIDEO_FRAMES;
    case 'audio-to-text':
      try {
        const seconds = await audioDurationSeconds(upload!.data);
        if (seconds > BOUNDS.audioSeconds) {
          throw new BatchError(
            400,
            'AUDIO_TOO_LONG',
            `audio: ${seconds} s is longer than the ${BOUNDS.audioSeconds} s this gateway takes`,
          );
        }
        return BigInt(seconds) * 1000n;
      } catch (err) {
        // Undecodable media is the client's, answered here (422) before an orchestrator sees it.
        if (err instanceof AudioDurationError) throw new BatchError(422, 'UNREADABLE_AUDIO', err.message);
        throw err;
      }
    case 'llm':
      return n('max_tokens');
    case 'text-to-speech':
      // The orchestrator debits 1000 × characters (runes); pay what it debits.
      return 1000n * BigInt([...String(fields.text ?? '')].length);
  }
}

/**
 * The upload's size from its header, once its structure is whole and its size within what the
 * pipeline takes: a header claiming 60000×60000 never reaches an orchestrator (it would run out of
 * memory there, and be blamed for it).
 */
export function checkedImage(p: AiPipeline, upload: UploadedFile | undefined): ImageSize {
  const size = upload ? imageSize(upload.data) : undefined;
  if (!size || !upload) {
    throw new BatchError(422, 'UNREADABLE_IMAGE', `"${p.file}" is not a PNG, JPEG, GIF or WebP image`);
  }
  const damage = imageDamage(upload.data, size.format);
  if (damage) throw new BatchError(422, 'UNREADABLE_IMAGE', `"${p.file}": ${damage}`);
  const pixels = size.width * size.height;
  const maxPixels = p.name === 'upscale' ? BOUNDS.upscaleInputPixels : BOUNDS.inputPixels;
  if (size.width > BOUNDS.inputSide || size.height > BOUNDS.inputSide || pixels > maxPixels) {
    throw new BatchError(
      400,
      'IMAGE_TOO_LARGE',
      `"${p.file}" is ${size.width}×${size.height}; ${p.name} takes images of at most ${BOUNDS.inputSide} pixels a side and ${maxPixels} pixels`,
    );
  }
  return size;
}

/** The `data:` events of an LLM stream, as go-livepeer relays them: JSON chunks up to the last. */
async function* sseEvents(
  res: IncomingMessage,
  idleMs: number,
  origin: string,
): AsyncGenerator<string, void, void> {
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(idle);
    idle = setTimeout(
      () => res.destroy(new OrchestratorError('timeout', origin, `stream idle for ${idleMs} ms`)),
      idleMs,
    );
  };
  arm();
  let pending = '';
  try {
    for await (const chunk of res) {
      arm();
      pending += (chunk as Buffer).toString('utf8');
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        nl = pending.indexOf('\n');
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        let parsed: { choices?: { finish_reason?: string | null }[]; error?: unknown };
        try {
          parsed = JSON.parse(data);
        } catch {
          continue; // e.g. ai-runner's closing [DONE], which go-livepeer drops too
        }
        yield data;
        if (parsed.error !== undefined || parsed.choices?.[0]?.finish_reason) return;
      }
    }
  } finally {
    clearTimeout(idle);
    res.destroy();
  }
}

function withAttempts(err: BatchError, orchestrator: string, tries: number): BatchError {
  return err.attempts
    ? err
    : new BatchError(err.status, err.code, err.message, err.details, { orchestrator, tries });
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 500);
