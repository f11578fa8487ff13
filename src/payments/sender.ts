// The gateway's side of PM payments for one orchestrator (spec livepeer-pm.md §2–§3): keep the
// orchestrator's TicketParams and PriceInfo exactly as received, check them (§3.4), work out how
// many tickets a fee needs (§3.2) and build the Livepeer-Payment header.
import { bytesToHex, type Hex, hexToBytes, type LocalAccount, zeroHash } from 'viem';
import { encodeMessage, type Payment, type PriceInfo, type TicketParams } from '../wire/lp-rpc.ts';
import {
  add,
  ceilDiv,
  compare,
  floatString,
  max,
  mul,
  type Rational,
  rat,
  sign,
  sub,
  ZERO,
} from './rational.ts';
import { accountSigner, type TicketSigner } from './signing-pool.ts';
import {
  bytesToBigint,
  signatureProblem,
  type Ticket,
  ticketEV,
  ticketHasher,
  ticketTemplate,
} from './ticket.ts';

/** go-livepeer's maxSenderNonces: an orchestrator accepts at most this many nonces per recipientRand. */
export const MAX_SENDER_NONCES = 600;
/** go-livepeer's paramsExpiryBuffer: params count as expired this many L1 blocks before expirationBlock. */
export const PARAMS_EXPIRY_BUFFER = 1n;

export type TicketParamsErrorCode =
  | 'nil'
  | 'expiration-zero'
  | 'expired'
  | 'face-value-too-low'
  | 'ev-too-high'
  | 'unlock-soon'
  | 'no-reserve'
  | 'no-deposit'
  | 'total-ev-too-high'
  | 'face-value-too-high'
  | 'nonces-exhausted'
  | 'invalid-params'
  | 'invalid-price';

/** A reason not to pay with these parameters; `message` is go-livepeer's text where it has one. */
export class TicketParamsError extends Error {
  constructor(
    readonly code: TicketParamsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TicketParamsError';
  }
  /** Fresh OrchestratorInfo (GetOrchestrator, or the next PaymentResult) fixes it. */
  get needsRefresh(): boolean {
    return this.code === 'expired' || this.code === 'nonces-exhausted';
  }
}

/** The hash inputs of TicketParams, parsed; the raw bytes are what gets echoed. */
export interface ParsedTicketParams {
  recipient: Hex;
  faceValue: bigint;
  winProb: bigint;
  recipientRandHash: Hex;
  seed: bigint;
  expirationBlock: bigint;
  creationRound: bigint;
  creationRoundBlockHash: Hex;
}

export function parseTicketParams(p: TicketParams): ParsedTicketParams {
  if (p.recipient?.length !== 20)
    throw new TicketParamsError('invalid-params', 'ticketParams recipient must be 20 bytes');
  if (p.recipientRandHash?.length !== 32) {
    throw new TicketParamsError('invalid-params', 'ticketParams recipientRandHash must be 32 bytes');
  }
  const blockHash = p.expirationParams?.creationRoundBlockHash;
  if (blockHash && blockHash.length !== 0 && blockHash.length !== 32) {
    throw new TicketParamsError('invalid-params', 'ticketParams creationRoundBlockHash must be 32 bytes');
  }
  return {
    recipient: bytesToHex(p.recipient),
    faceValue: bytesToBigint(p.faceValue),
    winProb: bytesToBigint(p.winProb),
    recipientRandHash: bytesToHex(p.recipientRandHash),
    seed: bytesToBigint(p.seed),
    expirationBlock: bytesToBigint(p.expirationBlock),
    creationRound: p.expirationParams?.creationRound ?? 0n,
    creationRoundBlockHash: blockHash?.length ? bytesToHex(blockHash) : zeroHash,
  };
}

/** Price per pixel of a PriceInfo (go-livepeer common.RatPriceInfo). */
export function priceOf(info: PriceInfo | undefined): Rational {
  const perUnit = info?.pricePerUnit ?? 0n;
  const pixels = info?.pixelsPerUnit ?? 0n;
  if (pixels === 0n) throw new TicketParamsError('invalid-price', 'pixels per unit is 0');
  if (perUnit < 0n || pixels < 0n) throw new TicketParamsError('invalid-price', 'price is negative');
  return rat(perUnit, pixels);
}

export interface SenderInfo {
  deposit: bigint;
  withdrawRound: bigint;
  /** reserve.fundsRemaining */
  reserve: bigint;
}

export interface ValidateOptions {
  /** The latest Ethereum L1 block seen (not the Arbitrum block). */
  lastSeenL1Block: bigint;
  maxTicketEV: Rational | bigint;
  maxTotalEV?: Rational | bigint;
  /** Tickets about to be sent with these params (default 1, as ValidateTicketParams). */
  numTickets?: number;
  /** The gateway's TicketBroker state; without it the sender checks (7–9 of §3.4 but maxTotalEV) are skipped. */
  senderInfo?: SenderInfo;
  lastInitializedRound?: bigint;
  depositMultiplier: number | bigint;
}

const toRat = (v: Rational | bigint): Rational => (typeof v === 'bigint' ? rat(v) : v);

/** go-livepeer's sender.validateTicketParams (pm/sender.go), in its order and with its messages. */
export function validateParams(
  params: TicketParams | ParsedTicketParams | undefined,
  opts: ValidateOptions,
): void {
  if (!params) throw new TicketParamsError('nil', 'ticketParams is nil');
  const p = 'seed' in params && typeof params.seed === 'bigint' ? (params as ParsedTicketParams) : null;
  const parsed = p ?? parseTicketParams(params as TicketParams);
  if (parsed.expirationBlock === 0n) {
    throw new TicketParamsError('expiration-zero', 'ticketParams expiration block is 0');
  }
  if (parsed.expirationBlock - opts.lastSeenL1Block <= PARAMS_EXPIRY_BUFFER) {
    throw new TicketParamsError('expired', 'TicketParams expired');
  }
  const ev = ticketEV(parsed.faceValue, parsed.winProb);
  if (sign(ev) <= 0) return;
  if (compare(ev, rat(parsed.faceValue)) >= 0) {
    throw new TicketParamsError(
      'face-value-too-low',
      `ticket faceValue too low faceValue=${parsed.faceValue}`,
    );
  }
  const maxEV = toRat(opts.maxTicketEV);
  if (compare(ev, maxEV) > 0) {
    throw new TicketParamsError(
      'ev-too-high',
      `ticket EV ${floatString(ev, 5)} > max ticket EV ${floatString(maxEV, 5)}`,
    );
  }
  const info = opts.senderInfo;
  if (info) {
    const maxWithdrawRound = (opts.lastInitializedRound ?? 0n) + 1n;
    if (info.withdrawRound !== 0n && info.withdrawRound <= maxWithdrawRound) {
      throw new TicketParamsError(
        'unlock-soon',
        'unable to validate sender: deposit and reserve is set to unlock soon',
      );
    }
    if (info.reserve === 0n) throw new TicketParamsError('no-reserve', 'no sender reserve');
    if (info.deposit === 0n) throw new TicketParamsError('no-deposit', 'no sender deposit');
  }
  const numTickets = opts.numTickets ?? 1;
  if (opts.maxTotalEV !== undefined) {
    const total = mul(ev, rat(BigInt(numTickets)));
    const maxTotal = toRat(opts.maxTotalEV);
    if (compare(total, maxTotal) > 0) {
      throw new TicketParamsError(
        'total-ev-too-high',
        `total ticket EV ${floatString(total, 5)} for ${numTickets} tickets > max total ticket EV ${floatString(maxTotal, 5)}`,
      );
    }
  }
  if (info) {
    const maxFaceValue = info.deposit / BigInt(opts.depositMultiplier);
    if (parsed.faceValue > maxFaceValue) {
      throw new TicketParamsError(
        'face-value-too-high',
        `ticket faceValue ${parsed.faceValue} > max faceValue ${maxFaceValue}`,
      );
    }
  }
}

export interface StagedTickets {
  numTickets: number;
  /** numTickets × EV: the credit the tickets add at the orchestrator. */
  newCredit: Rational;
  /** The local credit that was taken into account. */
  existingCredit: Rational;
}

/** go-livepeer's Balance.StageUpdate (core/accounting.go) given the existing credit. */
export function stageUpdate(
  minCredit: Rational,
  ev: Rational | undefined,
  existingCredit: Rational,
): StagedTickets {
  if (compare(existingCredit, minCredit) >= 0 || !ev || sign(ev) <= 0) {
    return { numTickets: 0, newCredit: ZERO, existingCredit };
  }
  const n = ceilDiv(sub(minCredit, existingCredit), ev);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('stageUpdate: ticket count out of range');
  return { numTickets: Number(n), newCredit: mul(rat(n), ev), existingCredit };
}

export type BalanceUpdateStatus = 'staged' | 'credit-spent' | 'received-change';

export interface BalanceUpdate extends StagedTickets {
  /** What the orchestrator charged (pixels × price, or the live fee itself); used with 'received-change'. */
  debit: Rational;
  status: BalanceUpdateStatus;
}

/** Local credit per (orchestrator, manifest), as go-livepeer's core.Balances. */
export class Balances {
  private readonly credits = new Map<string, Rational>();
  private key(orchestrator: string, manifestId: string): string {
    return `${orchestrator.toLowerCase()}\u0000${manifestId}`;
  }
  get(orchestrator: string, manifestId: string): Rational | undefined {
    return this.credits.get(this.key(orchestrator, manifestId));
  }
  credit(orchestrator: string, manifestId: string, amount: Rational): void {
    const k = this.key(orchestrator, manifestId);
    this.credits.set(k, add(this.credits.get(k) ?? ZERO, amount));
  }
  debit(orchestrator: string, manifestId: string, amount: Rational): void {
    this.credit(orchestrator, manifestId, rat(-amount.num, amount.den));
  }
  /** Takes the whole credit (zero if none), leaving zero behind. */
  reserve(orchestrator: string, manifestId: string): Rational {
    const k = this.key(orchestrator, manifestId);
    const v = this.credits.get(k) ?? ZERO;
    if (this.credits.has(k)) this.credits.set(k, ZERO);
    return v;
  }
  clear(orchestrator: string, manifestId: string): void {
    this.credits.delete(this.key(orchestrator, manifestId));
  }
  /** The view for one orchestrator and manifest. */
  for(orchestrator: string, manifestId: string): Balance {
    return new Balance(this, orchestrator, manifestId);
  }
}

/** One orchestrator+manifest's credit, as go-livepeer's core.Balance. */
export class Balance {
  constructor(
    readonly balances: Balances,
    readonly orchestrator: string,
    readonly manifestId: string,
  ) {}
  get credit(): Rational {
    return this.balances.get(this.orchestrator, this.manifestId) ?? ZERO;
  }
  add(amount: Rational): void {
    this.balances.credit(this.orchestrator, this.manifestId, amount);
  }
  debit(amount: Rational): void {
    this.balances.debit(this.orchestrator, this.manifestId, amount);
  }
  /** Reserve the credit and work out the tickets needed for minCredit (StageUpdate). */
  stageUpdate(minCredit: Rational, ev: Rational | undefined): StagedTickets {
    return stageUpdate(minCredit, ev, this.balances.reserve(this.orchestrator, this.manifestId));
  }
  /** go-livepeer's completeBalanceUpdate (server/segment_rpc.go). */
  complete(update: BalanceUpdate): void {
    if (update.status === 'received-change') {
      this.add(sub(add(update.existingCredit, update.newCredit), update.debit));
    } else if (update.status === 'staged') {
      this.add(update.existingCredit);
    }
  }
}

export interface PaymentResult {
  /** base64 (standard, padded) of the Payment protobuf: the Livepeer-Payment header value. */
  header: string;
  numTickets: number;
  /** numTickets × ticket EV: the credit this payment adds at the orchestrator. */
  ev: Rational;
  /** The nonces used, in order. */
  nonces: number[];
  /** Present when a Balance was given: complete it (status, debit) once the request is answered. */
  update?: BalanceUpdate;
}

export interface TicketSenderOptions {
  account: LocalAccount;
  /**
   * Signs the tickets: the gateway passes its SigningPool (worker threads). Default: the account,
   * on this thread.
   */
  signer?: TicketSigner;
  /** OrchestratorInfo.ticket_params, as decoded (its bytes are echoed). */
  ticketParams: TicketParams;
  /** OrchestratorInfo.price_info, echoed as expected_price. */
  priceInfo: PriceInfo;
  /**
   * Used when the orchestrator sent no, or zero, expiration params: the gateway's last initialised
   * round and its block hash, as go-livepeer's sender does for backwards compatibility.
   */
  fallbackExpiration?: { creationRound: bigint; creationRoundBlockHash: Hex };
  /**
   * The last nonce already used with these params (go-livepeer's StartSessionWithNonce): a remote
   * signer resumes the session its payment state names. Default 0: the first ticket is nonce 1.
   */
  startNonce?: number;
}

/** Sessions of earlier params kept so that a re-sent recipientRandHash never reuses a nonce. */
const REMEMBERED_SESSIONS = 64;
/** Tickets hashed between two yields to the event loop (about 0.5 ms of keccak on our 2-core box). */
const HASH_CHUNK = 16;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tickets for one orchestrator: the current params, their nonce session, and payments. */
export class TicketSender {
  readonly account: LocalAccount;
  private readonly signer: TicketSigner;
  private readonly senderBytes: Uint8Array;
  private raw!: TicketParams;
  private rawPrice!: PriceInfo;
  private parsed!: ParsedTicketParams;
  private pricePerPixel!: Rational;
  private ticketEv!: Rational;
  private expiration!: { creationRound: bigint; creationRoundBlockHash: Hex };
  private expirationIsFallback = false;
  /** recipientRandHash → last nonce used. */
  private readonly sessions = new Map<Hex, number>();
  private fallbackExpiration?: { creationRound: bigint; creationRoundBlockHash: Hex };

  constructor(opts: TicketSenderOptions) {
    this.account = opts.account;
    this.signer = opts.signer ?? accountSigner(opts.account);
    this.senderBytes = hexToBytes(opts.account.address);
    this.fallbackExpiration = opts.fallbackExpiration;
    this.update(opts.ticketParams, opts.priceInfo, opts.fallbackExpiration);
    if (opts.startNonce !== undefined) {
      if (!Number.isInteger(opts.startNonce) || opts.startNonce < 0)
        throw new RangeError('startNonce: bad nonce');
      this.sessions.set(this.parsed.recipientRandHash, opts.startNonce);
    }
  }

  /** New OrchestratorInfo (GetOrchestrator or a PaymentResult): new params restart nonces at 1. */
  update(
    ticketParams: TicketParams,
    priceInfo: PriceInfo,
    fallbackExpiration?: { creationRound: bigint; creationRoundBlockHash: Hex },
  ): void {
    const parsed = parseTicketParams(ticketParams);
    const price = priceOf(priceInfo);
    if (fallbackExpiration) this.fallbackExpiration = fallbackExpiration;
    this.raw = ticketParams;
    this.rawPrice = priceInfo;
    this.parsed = parsed;
    this.pricePerPixel = price;
    this.ticketEv = ticketEV(parsed.faceValue, parsed.winProb);
    const missing =
      parsed.creationRound === 0n ||
      BigInt(parsed.creationRoundBlockHash) === 0n ||
      !ticketParams.expirationParams;
    this.expirationIsFallback = missing && this.fallbackExpiration !== undefined;
    this.expiration =
      missing && this.fallbackExpiration
        ? this.fallbackExpiration
        : { creationRound: parsed.creationRound, creationRoundBlockHash: parsed.creationRoundBlockHash };
    if (!this.sessions.has(parsed.recipientRandHash)) {
      this.sessions.set(parsed.recipientRandHash, 0);
      while (this.sessions.size > REMEMBERED_SESSIONS) {
        this.sessions.delete(this.sessions.keys().next().value as Hex);
      }
    }
  }

  get params(): ParsedTicketParams {
    return this.parsed;
  }
  get ticketParams(): TicketParams {
    return this.raw;
  }
  get priceInfo(): PriceInfo {
    return this.rawPrice;
  }
  /** Price per pixel in wei. */
  get price(): Rational {
    return this.pricePerPixel;
  }
  /** EV of one ticket with the current params. */
  get ev(): Rational {
    return this.ticketEv;
  }
  get noncesUsed(): number {
    return this.sessions.get(this.parsed.recipientRandHash) ?? 0;
  }
  get noncesLeft(): number {
    return MAX_SENDER_NONCES - this.noncesUsed;
  }

  /** §3.4 on the current params. */
  validate(opts: ValidateOptions): void {
    validateParams(this.parsed, opts);
  }

  /** StageUpdate for a fee: tickets so that credit + tickets ≥ max(fee, EV). */
  ticketsFor(fee: Rational, credit: Rational = ZERO): StagedTickets {
    return stageUpdate(max(fee, this.ticketEv), this.ticketEv, credit);
  }

  /** Takes n nonces from the current session, synchronously; all or none. */
  allocateNonces(n: number): number[] {
    if (!Number.isInteger(n) || n < 0) throw new RangeError('allocateNonces: bad count');
    const key = this.parsed.recipientRandHash;
    const used = this.sessions.get(key) ?? 0;
    if (used + n > MAX_SENDER_NONCES) {
      throw new TicketParamsError(
        'nonces-exhausted',
        `ticket params already used for ${used} of ${MAX_SENDER_NONCES} tickets, ${n} more needed: refresh OrchestratorInfo`,
      );
    }
    this.sessions.set(key, used + n);
    return Array.from({ length: n }, (_, i) => used + i + 1);
  }

  /**
   * The Livepeer-Payment for a fee. With a balance, its credit is reserved and counted, and the
   * returned `update` must be completed; without one, the credit is taken as zero. With
   * `validate`, §3.4 runs first for the number of tickets needed.
   */
  async createPayment(
    fee: Rational,
    opts: { balance?: Balance; validate?: Omit<ValidateOptions, 'numTickets'> } = {},
  ): Promise<PaymentResult> {
    // Everything up to the nonce allocation is synchronous: concurrent calls never share a nonce.
    const staged = opts.balance
      ? opts.balance.stageUpdate(max(fee, this.ticketEv), this.ticketEv)
      : this.ticketsFor(fee, ZERO);
    let nonces: number[];
    try {
      if (opts.validate && staged.numTickets > 0) {
        validateParams(this.parsed, { ...opts.validate, numTickets: staged.numTickets });
      }
      nonces = this.allocateNonces(staged.numTickets);
    } catch (err) {
      opts.balance?.add(staged.existingCredit);
      throw err;
    }
    const update: BalanceUpdate | undefined = opts.balance
      ? { ...staged, debit: ZERO, status: 'staged' }
      : undefined;
    try {
      const header = await this.encode(nonces);
      return { header, numTickets: staged.numTickets, ev: staged.newCredit, nonces, update };
    } catch (err) {
      if (update) opts.balance?.complete(update);
      throw err;
    }
  }

  /**
   * A payment with exactly these nonces (already allocated) from the current params. Everything
   * it reads of the params is taken before the first await: update() may run while tickets are
   * signed, and the payment must carry the params its tickets were signed over.
   */
  private async encode(nonces: number[]): Promise<string> {
    const payment: Payment = { sender: this.senderBytes, expectedPrice: this.rawPrice };
    if (nonces.length === 0) return Buffer.from(encodeMessage('Payment', payment)).toString('base64');
    const p = this.parsed;
    const exp = this.expiration;
    const r = this.raw;
    payment.ticketParams = {
      recipient: r.recipient,
      faceValue: r.faceValue,
      winProb: r.winProb,
      recipientRandHash: r.recipientRandHash,
      seed: r.seed,
      expirationBlock: r.expirationBlock,
    };
    payment.expirationParams = this.expirationIsFallback
      ? { creationRound: exp.creationRound, creationRoundBlockHash: hexToBytes(exp.creationRoundBlockHash) }
      : { ...(r.expirationParams ?? {}) };
    const base: Omit<Ticket, 'senderNonce'> = {
      recipient: p.recipient,
      sender: this.account.address,
      faceValue: p.faceValue,
      winProb: p.winProb,
      recipientRandHash: p.recipientRandHash,
      creationRound: exp.creationRound,
      creationRoundBlockHash: exp.creationRoundBlockHash,
    };
    // A signer that hashes (the worker pool) gets the packed ticket and the nonces: no keccak
    // here. Otherwise hashed here in short runs (the event loop gets a turn between them), each
    // run handed to the signer as soon as it is ready.
    const signing: Promise<Hex[]>[] = [];
    if (this.signer.signTickets) {
      signing.push(this.signer.signTickets(ticketTemplate(base), nonces));
    } else {
      const hash = ticketHasher(base);
      for (let i = 0; i < nonces.length; i += HASH_CHUNK) {
        if (i > 0) await yieldToLoop();
        const signed = this.signer.signHashes(nonces.slice(i, i + HASH_CHUNK).map(hash));
        // Awaited below; a failure must not surface as an unhandled rejection meanwhile.
        signed.catch(() => {});
        signing.push(signed);
      }
    }
    const sigs = (await Promise.all(signing)).flat();
    if (sigs.length !== nonces.length) throw new Error('signTicket: wrong number of signatures');
    payment.ticketSenderParams = nonces.map((senderNonce, i) => {
      const problem = signatureProblem(sigs[i]!);
      if (problem) throw new Error(`signTicket: ${problem}`);
      return { senderNonce, sig: hexToBytes(sigs[i]!) };
    });
    return Buffer.from(encodeMessage('Payment', payment)).toString('base64');
  }
}
