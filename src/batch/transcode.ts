// Segment transcoding on the gateway, as go-livepeer's broadcaster does it (server/broadcast.go
// processSegment/transcodeSegment, server/segment_rpc.go SubmitSegment): sign the segment's
// credentials with the profiles, pay the estimated fee, POST it to {transcoder}/segment, read the
// TranscodeResult, download every rendition, and debit the output pixels from the local balance.
// A failure suspends that orchestrator and the next one is tried, up to maxAttempts. A payment the
// gateway itself cannot make (its own limits or deposit) suspends nobody.
import type { Logger } from 'pino';
import { LivePayments } from '../live/live-payer.ts';
import { capabilityName, type JobKind } from '../orchestrators/capabilities.ts';
import { type Blame, OrchestratorError } from '../orchestrators/errors.ts';
import { download, post, readBody } from '../orchestrators/http.ts';
import { NoOrchestratorError, type SelectedOrchestrator } from '../orchestrators/select.ts';
import { flattenSegment, OFFCHAIN_PAYMENT, senderOnlyPayment } from '../payments/credentials.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { add, mul, type Rational, rat, ZERO } from '../payments/rational.ts';
import { Balances, type BalanceUpdate, priceOf, TicketParamsError } from '../payments/sender.ts';
import {
  Capability,
  capabilityBitstring,
  decodeMessage,
  encodeMessage,
  type OrchestratorInfo,
  type PriceInfo,
  type SegData,
  type TranscodeResult,
} from '../wire/lp-rpc.ts';
import { BatchError } from './errors.ts';
import {
  estimatedPixels,
  outputSize,
  profilesHex,
  segDataProfiles,
  type TranscodeProfile,
  transcodeCapabilities,
} from './profiles.ts';
import { segmentDecodeError } from './segment-decode.ts';
import { keccak256Of } from './transcode-hash.ts';

/** What selection needs from the orchestrator pool (OrchestratorPool has it). */
export interface TranscodePool {
  select(kind: JobKind, opts: { exclude?: ReadonlySet<string> }): Promise<SelectedOrchestrator>;
  /** A fresh GetOrchestrator answer from `url` (new ticket params and auth token). */
  renewAnswer(url: string, kind: JobKind): Promise<OrchestratorInfo>;
  suspend(url: string, reason: string): void;
  reportSuccess(url: string): void;
  observeLatency(url: string, ms: number, capability?: number): void;
}

/** Transcoding needs the H.264 capability and no model. */
export const TRANSCODE_JOB: JobKind = { capability: Capability.H264, modelId: '' };

/** go-livepeer's pixelEstimateMultiplier (1.02): the estimate is padded so a segment is never underpaid. */
const PIXEL_ESTIMATE_MULTIPLIER = rat(51n, 50n);
/** go-livepeer's HTTPTimeout, SegHttpPushTimeoutMultiplier, SegUploadTimeoutMultiplier, MinSegmentUploadTimeout. */
const HTTP_TIMEOUT_MS = 8000;
const PUSH_TIMEOUT_MULTIPLIER = 4;
const UPLOAD_TIMEOUT_MULTIPLIER = 0.5;
const MIN_UPLOAD_TIMEOUT_MS = 2000;
const MAX_RESULT_BYTES = 1024 * 1024;
/**
 * lpms' NonRetryableErrs (go-livepeer isNonRetryableError, server/broadcast.go): its own errors,
 * ffmpeg's "not found"/"Invalid argument" errors, and the transcoder's input and profile errors.
 */
const NON_RETRYABLE = new Set([
  'Unsupported input pixel format',
  'Error initializing filtergraph',
  'Too many outputs',
  'No input configuration',
  'Unsupported input codec',
  'No keyframes in input',
  'Unrecoverable state, restart process',
  'Decoder not found',
  'Demuxer not found',
  'Encoder not found',
  'Muxer not found',
  'Option not found',
  'Invalid argument',
  'TranscoderInvalidResolution',
  'TranscoderInvalidVideo',
  'TranscoderUnrecognizedFormat',
  'TranscoderUnrecognizedProfile',
  'TranscoderInvalidGOP',
  'TranscoderIncompatibleDevices',
]);
/** A session's auth token is reused until this close to its expiry. */
const TOKEN_MARGIN_S = 60n;

export interface TranscoderOptions {
  pool: TranscodePool;
  identity: GatewayIdentity;
  /** On-chain: tickets for orchestrators that charge. Absent: off-chain (empty Livepeer-Payment). */
  payments?: LivePayments;
  /** Orchestrators tried per segment (go-livepeer's MaxAttempts, 3). */
  maxAttempts: number;
  /** Largest rendition downloaded. */
  maxRenditionBytes: number;
  logger: Logger;
  /** The per-session credit ledger; tests pass one to look into it. */
  balances?: Balances;
  /** Why a segment does not decode, or undefined (default: ffmpeg decodes it). */
  inputCheck?: (data: Uint8Array) => Promise<string | undefined>;
}

/** The pusher closed the connection: nobody reads the answer (logged, never sent). */
function pusherGone(seg: PushedSegment, tries: number): BatchError {
  return new BatchError(
    499,
    'CLIENT_CLOSED',
    `the pusher of segment ${seg.seq} of ${seg.manifestId} went away; transcoding stopped`,
    undefined,
    { tries },
  );
}

export interface PushedSegment {
  manifestId: string;
  seq: bigint;
  data: Buffer;
  durationMs: number;
  /** With resolved formats (mpegts or mp4). */
  profiles: readonly TranscodeProfile[];
  /** The pushed video's size (Content-Resolution), when known. */
  resolution?: { width: number; height: number };
  /** Aborted when the pusher goes away: the work stops, and no orchestrator is blamed. */
  signal?: AbortSignal;
}

export interface Rendition {
  profile: TranscodeProfile;
  data: Buffer;
  /** Output pixels the orchestrator charged for. */
  pixels: bigint;
  /** The encoded size: the profile's, scaled to keep the input's aspect ratio when it is known. */
  width: number;
  height: number;
}

export interface TranscodeOutcome {
  renditions: Rendition[];
  /** Who transcoded it, and after how many tries. */
  orchestrator: string;
  tries: number;
  /** EV of the tickets sent for this segment (all tries), wei. */
  paid: Rational;
  /** What the orchestrator that served it charged: output pixels × its price, wei. */
  fee: Rational;
}

interface StreamSession {
  url: string;
  info: OrchestratorInfo;
}

/** Failed on this orchestrator, by its fault: it is suspended and another one tried. */
class AttemptFailure extends Error {
  constructor(
    message: string,
    /** The transcoder itself failed on the input: the input may be to blame, checked before blaming. */
    readonly onInput = false,
  ) {
    super(message);
    this.name = 'AttemptFailure';
  }
}

/**
 * The gateway could not pay this orchestrator (its own max-EV limits, deposit or reserve): not
 * the orchestrator's fault, so nobody is suspended. `everyone` when no orchestrator could be paid.
 */
class PaymentRefused extends Error {
  constructor(
    message: string,
    readonly everyone: boolean,
  ) {
    super(message);
    this.name = 'PaymentRefused';
  }
}

/** Refusals that come from the gateway's own deposit and reserve, the same for every orchestrator. */
const SENDER_WIDE = new Set(['no-deposit', 'no-reserve', 'unlock-soon']);

export class Transcoder {
  /** The last orchestrator that served each stream, reused while it works (go-livepeer's session). */
  private readonly sessions = new Map<string, StreamSession>();
  private readonly balances: Balances;
  private readonly log: Logger;

  private readonly inputCheck: (data: Uint8Array) => Promise<string | undefined>;

  constructor(private readonly opts: TranscoderOptions) {
    this.log = opts.logger.child({ component: 'transcode' });
    this.inputCheck = opts.inputCheck ?? segmentDecodeError;
    this.balances = opts.balances ?? new Balances();
  }

  /** Forget a stream's orchestrator session (the stream ended). */
  endStream(manifestId: string): void {
    this.dropSession(manifestId);
  }

  /**
   * A stream leaves its session (failure, new price, expiring token, stream end): the credit kept
   * for that session goes with it, as go-livepeer's balance goes with its BroadcastSession, so a
   * long stream that changes orchestrators does not pile up entries.
   */
  private dropSession(manifestId: string): void {
    const s = this.sessions.get(manifestId);
    if (s) this.balances.clear(s.url, s.info.authToken?.sessionId ?? '');
    this.sessions.delete(manifestId);
  }

  /**
   * @throws BatchError as go-livepeer's HandlePush answers: 500 when every orchestrator tried
   * failed, 422 for a segment that cannot be transcoded, 503 when none could be used at all (none
   * offers transcoding, or the gateway cannot pay any of them).
   */
  async transcode(seg: PushedSegment): Promise<TranscodeOutcome> {
    const exclude = new Set<string>();
    const failures: string[] = [];
    const unpaid: string[] = [];
    let paid = ZERO;
    const hash = await keccak256Of(seg.data);
    let tries = 0;
    /** The decode check's answer, asked once per segment: '' decodes, text says why not. */
    let undecodable: string | undefined;
    while (tries < this.opts.maxAttempts) {
      if (seg.signal?.aborted) throw pusherGone(seg, tries);
      let session = this.sessions.get(seg.manifestId);
      if (session && (exclude.has(session.url) || tokenExpiring(session.info))) {
        this.dropSession(seg.manifestId);
        session = undefined;
      }
      if (!session) {
        try {
          session = await this.opts.pool.select(TRANSCODE_JOB, { exclude });
        } catch (err) {
          if (!(err instanceof NoOrchestratorError)) throw err;
          // The ones tried are in `failures` with what went wrong; the pool only says "excluded".
          const others = err.reasons.filter((r) => !/: excluded \(/.test(r));
          throw this.noneLeft(seg, failures, unpaid, others, tries);
        }
      }
      exclude.add(session.url);
      const attempt = { paid: ZERO };
      try {
        const { renditions, fee } = await this.submit(session, seg, hash, attempt);
        paid = add(paid, attempt.paid);
        this.opts.pool.reportSuccess(session.url);
        return { renditions, orchestrator: session.url, tries: tries + 1, paid, fee };
      } catch (err) {
        paid = add(paid, attempt.paid);
        if (err instanceof PaymentRefused) {
          // Nothing was sent: not a try, and not the orchestrator's fault.
          unpaid.push(`${session.url}: ${err.message}`);
          this.dropSession(seg.manifestId);
          this.log.warn({ orchestrator: session.url, manifestId: seg.manifestId }, err.message);
          if (err.everyone) throw this.noneLeft(seg, failures, unpaid, [], tries);
          continue;
        }
        tries++;
        if (seg.signal?.aborted) throw pusherGone(seg, tries);
        if (err instanceof BatchError)
          throw new BatchError(err.status, err.code, err.message, err.details, {
            orchestrator: session.url,
            tries,
          });
        const reason = err instanceof Error ? err.message : String(err);
        if (err instanceof AttemptFailure && err.onInput) {
          // Blame (src/live/cause.ts): a segment the gateway cannot decode either is the client's.
          undecodable ??= await this.inputCheck(seg.data);
          if (undecodable) {
            this.log.info(
              { orchestrator: session.url, manifestId: seg.manifestId, seq: String(seg.seq) },
              `segment does not decode (${undecodable}); the orchestrator is not blamed`,
            );
            throw new BatchError(
              422,
              'UNDECODABLE_SEGMENT',
              `the segment does not decode: ${undecodable}`,
              { blame: 'client' satisfies Blame },
              { orchestrator: session.url, tries },
            );
          }
          undecodable = '';
        }
        failures.push(`${session.url}: ${reason}`);
        this.dropSession(seg.manifestId);
        this.opts.pool.suspend(session.url, `segment transcoding failed: ${reason}`);
        this.log.warn(
          { orchestrator: session.url, manifestId: seg.manifestId, seq: String(seg.seq), tries },
          reason,
        );
      }
    }
    throw new BatchError(
      500,
      'TRANSCODE_FAILED',
      `segment ${seg.seq} of ${seg.manifestId} failed on ${failures.length} orchestrator${failures.length === 1 ? '' : 's'}: ${[...failures, ...unpaid].join('; ')}`,
      { reasons: [...failures, ...unpaid] },
      { tries },
    );
  }

  /** The error when no orchestrator is left to try. */
  private noneLeft(
    seg: PushedSegment,
    failures: string[],
    unpaid: string[],
    others: string[],
    tries: number,
  ): BatchError {
    const reasons = [...failures, ...unpaid, ...others];
    const where = { tries };
    if (failures.length) {
      return new BatchError(
        500,
        'TRANSCODE_FAILED',
        `segment ${seg.seq} of ${seg.manifestId} failed on every orchestrator tried: ${reasons.join('; ')}`,
        { reasons },
        where,
      );
    }
    if (unpaid.length) {
      return new BatchError(
        503,
        'CANNOT_PAY',
        `this gateway cannot pay any orchestrator for segment ${seg.seq} of ${seg.manifestId}: ${reasons.join('; ')}`,
        { reasons },
        where,
      );
    }
    return new BatchError(
      503,
      'NO_ORCHESTRATOR',
      `no orchestrator can transcode (${capabilityName(TRANSCODE_JOB.capability)}): ${reasons.join('; ') || 'none is configured'}`,
      { reasons },
      where,
    );
  }

  /** One try on one orchestrator: SubmitSegment then the downloads. */
  private async submit(
    session: StreamSession,
    seg: PushedSegment,
    hash: Uint8Array,
    attempt: { paid: Rational },
  ): Promise<{ renditions: Rendition[]; fee: Rational }> {
    const { url } = session;
    // Paid first: used-up ticket params are refreshed there, and the credentials below must
    // carry the auth token of the info the tickets were made for.
    const payment = await this.payment(session, seg);
    const info = payment.info;
    if (info !== session.info) {
      // A refreshed session: a new auth token and balance; the old one's credit goes with it.
      this.balances.clear(url, session.info.authToken?.sessionId ?? '');
      session = { url, info };
      this.sessions.set(seg.manifestId, session);
    }
    const transcoder = info.transcoder || url;
    const names = seg.profiles.map((p) => p.name);
    const signed = Buffer.concat([
      flattenSegment(seg.manifestId, seg.seq, hash),
      Buffer.from(profilesHex(names), 'utf8'),
    ]);
    let segmentHeader: string;
    try {
      const segData: SegData = {
        manifestId: new TextEncoder().encode(seg.manifestId),
        seq: seg.seq,
        hash,
        sig: await this.opts.identity.signHashOf(signed),
        duration: seg.durationMs,
        capabilities: { bitstring: capabilityBitstring(transcodeCapabilities(seg.profiles)) },
        authToken: info.authToken,
        ...segDataProfiles(seg.profiles),
      };
      segmentHeader = Buffer.from(encodeMessage('SegData', segData)).toString('base64');
    } catch (err) {
      // Nothing sent: the reserved credit goes back.
      if (payment.update) this.balances.for(url, info.authToken?.sessionId ?? '').complete(payment.update);
      throw err;
    }

    const durationMs = seg.durationMs;
    const totalMs = Math.max(HTTP_TIMEOUT_MS, PUSH_TIMEOUT_MULTIPLIER * durationMs);
    const uploadMs = Math.max(MIN_UPLOAD_TIMEOUT_MS, UPLOAD_TIMEOUT_MULTIPLIER * durationMs);
    const started = performance.now();
    let result: TranscodeResult;
    try {
      const res = await post(new URL('segment', transcoder.endsWith('/') ? transcoder : `${transcoder}/`), {
        headers: {
          'Livepeer-Segment': segmentHeader,
          'Livepeer-Payment': payment.header,
          'Content-Type': 'video/MP2T',
        },
        body: seg.data,
        timeoutMs: uploadMs,
        signal: seg.signal,
      });
      // Once the orchestrator answered, the tickets count as received (go-livepeer CreditSpent).
      if (payment.update) payment.update.status = 'credit-spent';
      attempt.paid = payment.ev;
      const body = await readBody(res, MAX_RESULT_BYTES, totalMs, new URL(transcoder).origin);
      if (res.statusCode !== 200) {
        throw new AttemptFailure(
          `/segment answered ${res.statusCode}: ${oneLine(body.toString('utf8')) || 'no reason given'}`,
        );
      }
      try {
        result = decodeMessage('TranscodeResult', body);
      } catch (err) {
        throw new AttemptFailure(`/segment answered with a bad TranscodeResult: ${(err as Error).message}`);
      }
      if (result.error !== undefined) {
        // go-livepeer does not try another orchestrator for errors that come from the input itself.
        if (NON_RETRYABLE.has(result.error)) {
          throw new BatchError(
            422,
            'UNTRANSCODABLE_SEGMENT',
            `the segment cannot be transcoded: ${oneLine(result.error)} (from ${url})`,
          );
        }
        throw new AttemptFailure(`transcoding failed: ${oneLine(result.error)}`, true);
      }
      const segments = result.data?.segments ?? [];
      if (segments.length !== seg.profiles.length) {
        throw new AttemptFailure(
          `TranscodeResult has ${segments.length} renditions for ${seg.profiles.length} profiles`,
        );
      }
      // The 200 comes before the transcoding (go-livepeer's ServeSegment), so the score is taken
      // once the result is in: upload, queue and transcoding, for good results only.
      this.opts.pool.observeLatency(url, performance.now() - started, TRANSCODE_JOB.capability);
      const pixels = segments.reduce((sum, s) => sum + (s.pixels ?? 0n), 0n);
      const fee = mul(rat(pixels), payment.price);
      if (payment.update) {
        // The change: credit minus what the orchestrator charged (output pixels × price).
        this.balances
          .for(url, info.authToken?.sessionId ?? '')
          .complete({ ...payment.update, debit: fee, status: 'received-change' });
        payment.update = undefined;
      }
      // Only the orchestrator's own hosts: a TranscodeResult must not make the gateway fetch
      // from anywhere else (its LAN, cloud metadata).
      const ownHosts = new Set([hostOf(transcoder), hostOf(url)]);
      for (const [i, s] of segments.entries()) {
        if (!s.url) throw new AttemptFailure(`rendition ${i} has no URL`);
        const host = hostOf(s.url);
        if (!host || !ownHosts.has(host)) {
          throw new AttemptFailure(
            `rendition ${seg.profiles[i]!.name} is at ${oneLine(s.url).slice(0, 120)}, not on the orchestrator's host ${hostOf(transcoder)}: refused`,
          );
        }
      }
      this.refreshSession(session, seg.manifestId, result.info);
      const renditions = await Promise.all(
        segments.map(async (s, i) => {
          const profile = seg.profiles[i]!;
          try {
            const { data } = await download(
              s.url!,
              this.opts.maxRenditionBytes,
              HTTP_TIMEOUT_MS / 2,
              seg.signal,
            );
            if (data.length === 0) throw new Error('empty');
            const size = seg.resolution ? outputSize(profile, seg.resolution) : profile;
            return { profile, data, pixels: s.pixels ?? 0n, width: size.width, height: size.height };
          } catch (err) {
            throw new AttemptFailure(
              `rendition ${seg.profiles[i]!.name} could not be downloaded: ${(err as Error).message}`,
            );
          }
        }),
      );
      return { renditions, fee };
    } catch (err) {
      if (err instanceof AttemptFailure) throw err;
      if (err instanceof OrchestratorError) throw new AttemptFailure(err.message);
      throw err;
    } finally {
      // Staged (never sent): the reserved credit goes back; spent: nothing comes back.
      if (payment.update) this.balances.for(url, info.authToken?.sessionId ?? '').complete(payment.update);
    }
  }

  /**
   * Livepeer-Payment for the estimated fee (go-livepeer estimateFee × 1.02 × price), and the info
   * it was made for: a fresh GetOrchestrator answer when the session's params were used up.
   */
  private async payment(
    session: StreamSession,
    seg: PushedSegment,
  ): Promise<{
    header: string;
    ev: Rational;
    price: Rational;
    update?: BalanceUpdate;
    info: OrchestratorInfo;
  }> {
    const payments = this.opts.payments;
    const { info, url } = session;
    if (!payments) return { header: OFFCHAIN_PAYMENT, ev: ZERO, price: ZERO, info };
    if (!LivePayments.pays(info)) {
      // A free orchestrator still learns who is asking (the segment signature is checked against it).
      return {
        header: senderOnlyPayment(payments.identity.address, info.priceInfo),
        ev: ZERO,
        price: ZERO,
        info,
      };
    }
    const pixels = mul(rat(estimatedPixels(seg.profiles, seg.durationMs)), PIXEL_ESTIMATE_MULTIPLIER);
    try {
      const paid = await payments.payFresh(url, info, {
        fee: (i) => mul(pixels, priceOf(i.priceInfo)),
        balance: (i) => this.balances.for(url, i.authToken?.sessionId ?? ''),
        refresh: () =>
          this.opts.pool.renewAnswer(url, TRANSCODE_JOB).catch((err: Error) => {
            throw new AttemptFailure(`ticket params used up, and GetOrchestrator failed: ${err.message}`);
          }),
      });
      const p = paid.payment;
      return {
        header: p.header,
        ev: p.ev,
        price: priceOf(paid.info.priceInfo),
        update: p.update,
        info: paid.info,
      };
    } catch (err) {
      if (err instanceof AttemptFailure) throw err;
      const message = `cannot pay: ${(err as Error).message}`;
      // Params still unusable after a refresh are the orchestrator's; the rest are this gateway's limits.
      if (err instanceof TicketParamsError && err.needsRefresh) throw new AttemptFailure(message);
      throw new PaymentRefused(message, err instanceof TicketParamsError && SENDER_WIDE.has(err.code));
    }
  }

  /** TranscodeResult.info: new ticket params and price; the auth token stays (go-livepeer updateSession). */
  private refreshSession(
    session: StreamSession,
    manifestId: string,
    fresh: OrchestratorInfo | undefined,
  ): void {
    if (fresh && !samePrice(fresh.priceInfo, session.info.priceInfo)) {
      // A new price goes through selection again, where the price ceiling is applied.
      this.sessions.set(manifestId, session);
      this.dropSession(manifestId);
      return;
    }
    const info = fresh ? { ...fresh, authToken: session.info.authToken } : session.info;
    if (fresh?.ticketParams && fresh.priceInfo && this.opts.payments && LivePayments.pays(fresh)) {
      this.opts.payments.senderFor(session.url, fresh);
    }
    this.sessions.set(manifestId, { url: session.url, info });
  }
}

/** Equal prices per pixel; none is 0. */
function samePrice(a: PriceInfo | undefined, b: PriceInfo | undefined): boolean {
  const [an, ad] = [a?.pricePerUnit ?? 0n, a?.pixelsPerUnit || 1n];
  const [bn, bd] = [b?.pricePerUnit ?? 0n, b?.pixelsPerUnit || 1n];
  return an * bd === bn * ad;
}

function tokenExpiring(info: OrchestratorInfo): boolean {
  const exp = info.authToken?.expiration;
  return exp === undefined || exp - TOKEN_MARGIN_S <= BigInt(Math.floor(Date.now() / 1000));
}

/** Lower-case hostname of a URL, or '' when it is not one. */
function hostOf(url: string): string {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return '';
  }
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}
