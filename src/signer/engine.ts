// What a remote signer does for each call, with go-livepeer's checks in go-livepeer's order
// (server/remote_signer.go GenerateLivePayment; docs/remote-signer.md §2.2) and answers in its
// JSON. Ours adds the ledger (ledger.ts): a payment state is good for one next call only.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { bytesToHex, getAddress, type Hex, keccak256, type LocalAccount } from 'viem';
import type { PriceCeiling } from '../orchestrators/price.ts';
import { flattenSegment } from '../payments/credentials.ts';
import type { GatewayIdentity } from '../payments/identity.ts';
import { LIVE_UNITS_PER_SECOND } from '../payments/live-clock.ts';
import { add, compare, floatString, mul, type Rational, rat, sign, sub, ZERO } from '../payments/rational.ts';
import {
  Balances,
  parseTicketParams,
  TicketParamsError,
  TicketSender,
  type ValidateOptions,
  validateParams,
} from '../payments/sender.ts';
import type { TicketSigner } from '../payments/signing-pool.ts';
import {
  type Capabilities,
  decodeMessage,
  encodeMessage,
  type OrchestratorInfo,
  type SegData,
} from '../wire/lp-rpc.ts';
import { GoJsonError } from './go-json.ts';
import type { StateLedger } from './ledger.ts';
import {
  AUTH_ID_HEADER,
  decimalRational,
  encodePaymentResponse,
  MAX_PRICE_UNITS,
  type MaxPrice,
  ORCHESTRATOR_URL_HEADER,
  type PaymentRequest,
  parsePaymentRequest,
  STATUS_NO_TICKETS,
  STATUS_PRICE_EXCEEDED,
  STATUS_REFRESH_SESSION,
} from './protocol.ts';
import { decodeState, encodeState, type PaymentState, ratString, signState, stateSignedBy } from './state.ts';
import { askWebhook, goHeaderMap, WebhookError, type WebhookOptions } from './webhook.ts';

/** go-livepeer's cap on tickets per call ("prevent both draining funds and perf issues"). */
export const MAX_TICKETS_PER_CALL = 100;
/** go-livepeer's authTokenValidPeriod; a token is refreshed in its last tenth. */
const AUTH_TOKEN_VALID_S = 30n * 60n;
/** The first lv2v call prepays 60 s; the first `live` call 10 s. */
const LV2V_FIRST_MS = 60_000;
const LIVE_FIRST_S = 10n;
/** keccak256 of no bytes: the SegData hash of an empty segment. */
const EMPTY_HASH = keccak256(new Uint8Array(0), 'bytes');
/** go-livepeer's NetSegData marker for orchestrators that only know FullProfiles. */
const PROFILES_MARKER = new TextEncoder().encode('invalid');

export interface SignerReply {
  status: number;
  /** JSON text. */
  body: string;
  headers?: Record<string, string>;
}

export interface RemoteSignerOptions {
  /** The keystore account: the address, and the state signatures (one per call, on this thread). */
  account: LocalAccount;
  /** Signs tickets and segment credentials in worker threads (the SigningPool). */
  identity: GatewayIdentity;
  ticketSigner: TicketSigner;
  /** The limits and chain reads for the ticket checks (LivePayments.validateOptions). */
  validateOptions: () => Promise<Omit<ValidateOptions, 'numTickets'>>;
  /** -maxPricePerUnit / -maxPricePerCapability. */
  ceiling: PriceCeiling;
  ledger: StateLedger;
  webhook?: WebhookOptions;
  logger: Logger;
  /** Wall clock, ms. */
  now?: () => number;
}

/** A refusal with go-livepeer's status and message; `code` is ours (the project's error shape). */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
}

/** go-livepeer's error body: `{"error":{"message"}}` (500 and 503 say only their generic text). */
export function errorReply(
  status: number,
  code: string,
  message: string,
  headers?: Record<string, string>,
): SignerReply {
  const text =
    status === 500 ? 'Internal Server Error' : status === 503 ? 'Service Unavailable Error' : message;
  return {
    status,
    body: `${JSON.stringify({ error: { message: text, code: status === 500 ? 'INTERNAL' : code } })}\n`,
    headers,
  };
}

export class RemoteSigner {
  readonly address: Hex;
  private infoSig?: Hex;
  private readonly now: () => number;

  constructor(private readonly opts: RemoteSignerOptions) {
    this.address = getAddress(opts.account.address);
    this.now = opts.now ?? Date.now;
  }

  /** Signs our own address once, as go-livepeer's StartRemoteSignerServer does. */
  async start(): Promise<void> {
    this.infoSig = bytesToHex(await this.opts.identity.signOrchestratorRequest());
  }

  /** POST /sign-orchestrator-info: `{"address","signature"}` (the OrchestratorRequest's). */
  orchestratorInfo(): SignerReply {
    if (!this.infoSig) return errorReply(500, 'INTERNAL', 'the signer has not started');
    return { status: 200, body: `${JSON.stringify({ address: this.address, signature: this.infoSig })}\n` };
  }

  /** POST /generate-live-payment. `rawHeaders` go to the webhook; `signal` ends with the caller's request. */
  async generateLivePayment(
    body: Uint8Array,
    rawHeaders: readonly string[],
    signal?: AbortSignal,
  ): Promise<SignerReply> {
    try {
      return await this.pay(body, rawHeaders, signal);
    } catch (err) {
      if (err instanceof Refusal) {
        if (err.status >= 500)
          this.opts.logger.warn({ status: err.status }, `payment refused: ${err.message}`);
        return errorReply(err.status, err.code, err.message, err.headers);
      }
      this.opts.logger.error({ err }, 'payment failed');
      return errorReply(500, 'INTERNAL', 'internal error');
    }
  }

  private async pay(
    body: Uint8Array,
    rawHeaders: readonly string[],
    signal?: AbortSignal,
  ): Promise<SignerReply> {
    const req = parseRequest(body);
    if (req.orchestrator.length === 0) throw new Refusal(400, 'BAD_REQUEST', 'missing orchestrator');
    let info: OrchestratorInfo;
    try {
      info = decodeMessage('OrchestratorInfo', req.orchestrator);
    } catch {
      throw new Refusal(400, 'BAD_REQUEST', 'orchestrator is not an OrchestratorInfo protobuf');
    }
    const priceInfo = info.priceInfo;
    if (!priceInfo?.pricePerUnit || !priceInfo.pixelsPerUnit) {
      throw new Refusal(400, 'BAD_REQUEST', 'missing or zero priceInfo');
    }
    if (!info.ticketParams) throw new Refusal(400, 'BAD_REQUEST', 'missing ticketParams in OrchestratorInfo');
    const orchAddress = addressOf(info.address);
    const now = this.now();

    // The state: verified, read, checked against the request; then claimed in the ledger.
    let state: PaymentState;
    const presented = req.state;
    if (presented) {
      if (!(await stateSignedBy(this.address, presented.state, presented.sig))) {
        throw new Refusal(400, 'INVALID_STATE', 'invalid sig');
      }
      try {
        state = decodeState(presented.state);
      } catch {
        throw new Refusal(400, 'INVALID_STATE', 'invalid state');
      }
      if (state.orchestratorAddress !== orchAddress) {
        throw new Refusal(400, 'INVALID_STATE', 'orchestratorAddress mismatch');
      }
      if (state.app !== req.app) throw new Refusal(400, 'INVALID_STATE', 'app mismatch');
      if (state.type !== '' && state.type !== req.type)
        throw new Refusal(400, 'INVALID_STATE', 'job type mismatch');
      state.type = req.type;
      state.sequenceNumber++;
    } else {
      state = {
        stateId: randomBytes(16).toString('hex'),
        pmSessionId: '',
        lastUpdateMs: undefined,
        orchestratorAddress: orchAddress,
        app: req.app,
        authExpiry: 0n,
        senderNonce: 0,
        balance: '',
        initialPricePerUnit: priceInfo.pricePerUnit,
        initialPixelsPerUnit: priceInfo.pixelsPerUnit,
        type: req.type,
        sequenceNumber: 0n,
        authId: '',
      };
    }
    const claim = await this.opts.ledger.claim(
      state.stateId,
      presented ? bytesToHex(presented.sig) : null,
      state.lastUpdateMs,
    );
    switch (claim.kind) {
      case 'repeat':
        this.opts.logger.info({ stateId: state.stateId }, 'payment state presented again: the same answer');
        return { status: 200, body: claim.answer };
      case 'replayed':
        throw new Refusal(
          409,
          'STATE_REPLAYED',
          'payment state already used: send the latest state this signer returned',
        );
      case 'expired':
        throw new Refusal(
          409,
          'STATE_EXPIRED',
          'payment state is unknown to this signer and too old: start a new session (no state)',
        );
      case 'busy':
        throw new Refusal(
          409,
          'STATE_IN_USE',
          'a payment with this state is under way: one call at a time per state',
        );
    }
    try {
      const reply = await this.payWith(req, info, state, presented !== undefined, now, rawHeaders, signal);
      claim.commit({ sig: reply.sigHex, answer: reply.body });
      return { status: 200, body: reply.body };
    } finally {
      claim.release();
    }
  }

  private async payWith(
    req: PaymentRequest,
    info: OrchestratorInfo,
    state: PaymentState,
    hasState: boolean,
    now: number,
    rawHeaders: readonly string[],
    signal?: AbortSignal,
  ): Promise<{ body: string; sigHex: string }> {
    const priceInfo = info.priceInfo!;
    let manifestId = req.manifestId;
    if (manifestId === '') {
      // A stateful call must stay tied to the job's manifest (go-livepeer's rule).
      if (hasState) throw new Refusal(400, 'BAD_REQUEST', 'missing manifestID');
      manifestId = randomBytes(4).toString('hex');
    }
    let capabilities: Capabilities | undefined;
    if (req.capabilities.length > 0) {
      try {
        capabilities = decodeMessage('Capabilities', req.capabilities);
      } catch {
        throw new Refusal(400, 'BAD_REQUEST', 'capabilities is not a Capabilities protobuf');
      }
    }
    let params: ReturnType<typeof parseTicketParams>;
    try {
      params = parseTicketParams(info.ticketParams!);
    } catch (err) {
      throw new Refusal(
        400,
        'BAD_REQUEST',
        `failed to derive ticket params from OrchestratorInfo: ${(err as Error).message}`,
      );
    }
    const oldBalance = parseBalance(state.balance);
    const sessionId = params.recipientRandHash.toLowerCase();
    const nonce = state.pmSessionId === sessionId ? state.senderNonce : 0;
    const initialPrice = { perUnit: state.initialPricePerUnit, pixels: state.initialPixelsPerUnit };

    // Refresh the session? (go-livepeer's shouldRefreshSession)
    const authToken = info.authToken;
    if (!authToken) {
      throw new Refusal(
        400,
        'BAD_REQUEST',
        'remote signer could not check whether to refresh session: missing auth token',
      );
    }
    const refresh = () =>
      new Refusal(STATUS_REFRESH_SESSION, 'REFRESH_SESSION', 'refresh session for remote signer', {
        [ORCHESTRATOR_URL_HEADER]: info.transcoder ?? '',
      });
    if (BigInt(Math.floor(now / 1000)) > (authToken.expiration ?? 0n) - AUTH_TOKEN_VALID_S / 10n)
      throw refresh();
    const validate = await this.opts.validateOptions();
    try {
      validateParams(params, { ...validate, numTickets: 1 });
    } catch (err) {
      if (err instanceof TicketParamsError && err.code === 'expired') throw refresh();
      if (err instanceof TicketParamsError) {
        throw new Refusal(
          400,
          'TICKET_PARAMS',
          `remote signer could not check whether to refresh session: ${err.message}`,
        );
      }
      throw err;
    }

    // What is owed since the last call.
    const elapsedMs = state.lastUpdateMs === undefined ? 0 : now - state.lastUpdateMs;
    let units: bigint;
    switch (req.type) {
      case 'lv2v':
        units = (LIVE_UNITS_PER_SECOND * BigInt(elapsedMs > 0 ? elapsedMs : LV2V_FIRST_MS)) / 1000n;
        break;
      case 'live':
        units = elapsedMs > 0 ? (BigInt(elapsedMs) + 999n) / 1000n : LIVE_FIRST_S;
        break;
      case 'fixed':
        units = 1n;
        break;
      case '':
        units = req.inPixels;
        break;
      default:
        throw new Refusal(400, 'BAD_REQUEST', 'invalid job type');
    }
    if (units <= 0n) throw new Refusal(400, 'BAD_REQUEST', 'missing billable unit or job type');

    // Ceilings: configured, the request's, and the session's first price; the lowest applies.
    const orchPrice = rat(priceInfo.pricePerUnit!, priceInfo.pixelsPerUnit!);
    let requestMax: Rational | undefined;
    try {
      requestMax = maxPriceOf(req.maxPrice, req.type);
    } catch (err) {
      throw new Refusal(400, 'BAD_REQUEST', (err as Error).message);
    }
    let initialMax: Rational | undefined;
    if (hasState) {
      if (initialPrice.perUnit <= 0n || initialPrice.pixels <= 0n) {
        throw new Refusal(400, 'INVALID_STATE', 'invalid initial price in state');
      }
      initialMax = rat(initialPrice.perUnit, initialPrice.pixels);
    }
    checkCeilings(orchPrice, [
      ['configured maximum price', this.configuredCeiling(capabilities)],
      ['request maxPrice', requestMax],
      ['initial session price', initialMax],
    ]);

    // Tickets for the fee at the session's price, beyond the credit the state carries.
    const fee = mul(rat(units), rat(initialPrice.perUnit, initialPrice.pixels));
    const sender = new TicketSender({
      account: this.opts.account,
      signer: this.opts.ticketSigner,
      ticketParams: info.ticketParams!,
      priceInfo,
      startNonce: nonce,
    });
    const staged = sender.ticketsFor(fee, oldBalance);
    if (staged.numTickets <= 0) throw new Refusal(STATUS_NO_TICKETS, 'NO_TICKETS', 'no tickets');
    if (staged.numTickets > MAX_TICKETS_PER_CALL) {
      throw new Refusal(
        400,
        'TOO_MANY_TICKETS',
        `numTickets ${staged.numTickets} exceeds maximum of ${MAX_TICKETS_PER_CALL}`,
      );
    }
    let payment: Awaited<ReturnType<TicketSender['createPayment']>>;
    try {
      // The state's credit, counted as go-livepeer's Balance.StageUpdate counts it.
      const credit = new Balances().for(state.orchestratorAddress, state.stateId);
      credit.add(oldBalance);
      payment = await sender.createPayment(fee, { balance: credit, validate });
    } catch (err) {
      // Used-up or expired params: fresh OrchestratorInfo fixes both (go-livepeer would sign
      // tickets the orchestrator refuses).
      if (err instanceof TicketParamsError && err.needsRefresh) throw refresh();
      if (err instanceof TicketParamsError) throw new Refusal(400, 'TICKET_PARAMS', err.message);
      throw err;
    }
    const segment: SegData = {
      manifestId: new TextEncoder().encode(manifestId),
      seq: 0n,
      hash: EMPTY_HASH,
      profiles: PROFILES_MARKER,
      sig: await this.opts.identity.signHashOf(flattenSegment(manifestId, 0n, EMPTY_HASH)),
      capabilities,
      authToken,
    };
    const segCreds = Buffer.from(encodeMessage('SegData', segment)).toString('base64');
    const balance = sub(add(oldBalance, payment.ev), fee);
    state.balance = ratString(balance);
    state.lastUpdateMs = now;
    state.pmSessionId = sessionId;
    state.senderNonce = payment.nonces.at(-1) ?? nonce;

    // The operator's word on this payment (unless an earlier answer still holds).
    let authId = '';
    if (
      this.opts.webhook &&
      !(state.authExpiry !== 0n && BigInt(Math.floor(now / 1000)) <= state.authExpiry)
    ) {
      let answer: Awaited<ReturnType<typeof askWebhook>>;
      try {
        answer = await askWebhook(this.opts.webhook, goHeaderMap(rawHeaders), state, signal);
      } catch (err) {
        if (err instanceof WebhookError) throw new Refusal(500, 'INTERNAL', err.message);
        throw err;
      }
      if (!answer.allowed) throw new Refusal(answer.status, 'PAYMENT_REFUSED', answer.reason);
      state.authExpiry = answer.expiry;
      if (answer.maxPrice) {
        let webhookMax: Rational | undefined;
        try {
          webhookMax = maxPriceOf(answer.maxPrice, req.type);
        } catch (err) {
          throw new Refusal(
            502,
            'BAD_WEBHOOK_ANSWER',
            `signer auth invalid maxPrice: ${(err as Error).message}`,
          );
        }
        checkCeilings(orchPrice, [['auth webhook maxPrice', webhookMax]]);
      }
      authId = answer.authId;
    }
    if (!authId) authId = headerValue(rawHeaders, AUTH_ID_HEADER);
    if (authId && state.authId !== authId) {
      if (state.authId) throw new Refusal(500, 'INTERNAL', 'remote signer auth ID changed');
      state.authId = authId;
    }

    const stateBytes = encodeState(state);
    const sig = await signState(this.opts.account, stateBytes);
    this.opts.logger.info(
      {
        stateId: state.stateId,
        seq: String(state.sequenceNumber),
        orchestrator: info.transcoder,
        manifestId,
        type: req.type,
        tickets: payment.numTickets,
        nonce: state.senderNonce,
        fee: floatString(fee, 0),
        oldBalance: floatString(oldBalance, 0),
        newBalance: floatString(balance, 0),
        authId: state.authId || undefined,
      },
      'signed',
    );
    const body = encodePaymentResponse({
      payment: payment.header,
      segCreds,
      state: { state: stateBytes, sig },
    });
    return { body, sigHex: bytesToHex(sig) };
  }

  /** go-livepeer's GetCapabilitiesMaxPrice: the sum of the request's per-model ceilings, else the global one. */
  private configuredCeiling(caps: Capabilities | undefined): Rational | undefined {
    const ceiling = this.opts.ceiling;
    const global = ceiling.globalCeiling?.perPixel;
    const perCap = caps?.constraints?.PerCapability;
    if (!perCap) return global && rat(global.num, global.den);
    let sum = ZERO;
    for (const [cap, c] of Object.entries(perCap)) {
      for (const model of Object.keys(c.models ?? {})) {
        const e = ceiling.capabilityCeiling(model, Number(cap));
        if (e) sum = add(sum, rat(e.perPixel.num, e.perPixel.den));
      }
    }
    if (sign(sum) === 0) return global && rat(global.num, global.den);
    return sum;
  }
}

function parseRequest(body: Uint8Array): PaymentRequest {
  try {
    return parsePaymentRequest(body);
  } catch (err) {
    if (err instanceof GoJsonError) throw new Refusal(400, 'BAD_REQUEST', err.message);
    throw err;
  }
}

/** ethcommon.BytesToAddress: the last 20 bytes, left-padded; lowercase hex. */
function addressOf(bytes: Uint8Array | undefined): Hex {
  const b = bytes ?? new Uint8Array(0);
  const out = new Uint8Array(20);
  out.set(b.length > 20 ? b.subarray(b.length - 20) : b, 20 - Math.min(b.length, 20));
  return bytesToHex(out);
}

/** The state's Balance as big.Rat.SetString reads it; unreadable is zero, as go-livepeer ignores it. */
function parseBalance(text: string): Rational {
  if (text === '') return ZERO;
  const m = /^(-?\d+)(?:\/(\d+))?$/.exec(text.trim());
  if (m)
    return m[2] === undefined
      ? rat(BigInt(m[1]!))
      : BigInt(m[2]) === 0n
        ? ZERO
        : rat(BigInt(m[1]!), BigInt(m[2]));
  try {
    return decimalRational(text);
  } catch {
    return ZERO;
  }
}

/** parseRemotePaymentMaxPrice: positive, in wei, in the unit of the payment type. */
function maxPriceOf(p: MaxPrice | undefined, type: string): Rational | undefined {
  if (!p) return undefined;
  let price: Rational | undefined;
  try {
    price = decimalRational(p.price);
  } catch {
    price = undefined;
  }
  if (!price || sign(price) <= 0) throw new Error('maxPrice.price must be a positive decimal');
  if (p.currency.trim().toLowerCase() !== 'wei') throw new Error('maxPrice.currency must be wei');
  const unit = MAX_PRICE_UNITS[type];
  if (!unit) throw new Error('maxPrice requires payment type live, lv2v, or fixed');
  if (p.unit.trim().toLowerCase() !== unit)
    throw new Error(`maxPrice.unit must be ${unit} for payment type ${type}`);
  return price;
}

function checkCeilings(orchPrice: Rational, ceilings: [string, Rational | undefined][]): void {
  let lowest: [string, Rational] | undefined;
  for (const [source, price] of ceilings) {
    if (price && (!lowest || compare(price, lowest[1]) < 0)) lowest = [source, price];
  }
  if (lowest && compare(orchPrice, lowest[1]) > 0) {
    throw new Refusal(
      STATUS_PRICE_EXCEEDED,
      'PRICE_EXCEEDED',
      `orchestrator price ${floatString(orchPrice, 3)} exceeds ${lowest[0]} ceiling ${floatString(lowest[1], 3)}`,
    );
  }
}

/** The first value of a header, by name in any case. */
function headerValue(rawHeaders: readonly string[], name: string): string {
  const lower = name.toLowerCase();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === lower) return rawHeaders[i + 1]!;
  }
  return '';
}
