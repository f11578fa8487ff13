// The orchestrator's side of PM tickets (spec livepeer-pm.md §1.4–§2.2, §3.3, §3.5), as
// go-livepeer's pm.recipient and core.orchestrator.ProcessPayment do it, without a chain: the
// L1 block and the round come from the caller, winning tickets are only kept in a list.
import { randomBytes } from 'node:crypto';
import { bytesToHex, getAddress, type Hex, hexToBytes, zeroAddress } from 'viem';
import { add, compare, floatString, type Rational, rat, sub, ZERO } from '../payments/rational.ts';
import {
  auxData,
  bigintToBytes,
  bytesToBigint,
  isWinningTicket,
  recipientRand,
  recipientRandHash,
  signatureProblem,
  type Ticket,
  ticketEV,
  ticketHash,
  winProbFor,
} from '../payments/ticket.ts';
import type { Payment, PriceInfo, TicketParams } from '../wire/lp-rpc.ts';
import { SignerCheck } from './signer-check.ts';

/** go-livepeer's paramsExpirationBlock: params live this many L1 blocks. */
export const PARAMS_EXPIRATION_BLOCKS = 40n;
/** go-livepeer's maxSenderNonces, per recipientRand. */
export const MAX_SENDER_NONCES = 600;
/** Winning tickets kept for redemption; older ones are dropped (the local orchestrator redeems none). */
const MAX_KEPT_WINNING_TICKETS = 10_000;
/** Tickets verified between two turns of the event loop. */
const TICKETS_PER_TURN = 4;
/** redeemGasL2 (Arbitrum) and txCostMultiplier / evMultiplier of go-livepeer's starter. */
export const REDEEM_GAS = 1_200_000n;
export const TX_COST_MULTIPLIER = 100n;
export const EV_MULTIPLIER = 100n;
/** Gas price used to derive faceValue when none is configured: go-livepeer's avgGasPrice, 3 gwei. */
export const DEFAULT_GAS_PRICE = 3_000_000_000n;

export interface RoundInfo {
  number: bigint;
  blockHash: Hex;
}

/** The `payments` option of LocalOrchestrator.start: turns the recipient on. */
export interface LocalOrchestratorPayments {
  /** Ticket recipient (ticket_params.recipient); also OrchestratorInfo.address unless `address` is set. */
  recipient: Hex;
  /** OrchestratorInfo.address; default: recipient. */
  address?: Hex;
  /** go-livepeer's -ticketEV, in wei. */
  ticketEV: bigint;
  /** Face value in wei; default as §3.5 from `gasPrice`: max(1,200,000 × gasPrice × 100, EV × 100). */
  faceValue?: bigint;
  /** Wei per gas for the faceValue derivation; default 3 gwei. */
  gasPrice?: bigint;
  /** The latest L1 block seen: params expire at l1Block + 40. */
  l1Block: () => bigint;
  /** The last initialised round and its block hash (ticket expiration params / auxData). */
  round: RoundInfo | (() => RoundInfo);
  /** Check the GetOrchestrator and segment signatures (default true). Ticket signatures are always checked. */
  verifySenderSignatures?: boolean;
  /** HMAC secret for recipientRand; default 32 random bytes. */
  secret?: Uint8Array;
  /** How often live jobs are billed (go-livepeer -livePaymentInterval); default 5000. */
  accountingIntervalMs?: number;
  /** Clock for live accounting, ms (tests); default Date.now. */
  now?: () => number;
}

/** A ProcessPayment failure: HTTP 400 with `message`. */
export class PaymentError extends Error {
  constructor(
    message: string,
    readonly fatal: boolean,
  ) {
    super(message);
    this.name = 'PaymentError';
  }
}

export interface WinningTicket {
  ticket: Ticket;
  sig: Hex;
  recipientRand: bigint;
  manifestId: string;
  /** The params' expiration block and price (not hashed, but needed to re-derive recipientRand). */
  expirationBlock: bigint;
  seed: bigint;
  price: Rational;
}

export interface ProcessResult {
  /** Tickets credited. */
  credited: number;
  ev: Rational;
  won: number;
}

/** Price per pixel of a PriceInfo; undefined when pixelsPerUnit is 0 (RatPriceInfo's error). */
export function ratPrice(info: PriceInfo): Rational | undefined {
  const pixels = info.pixelsPerUnit ?? 0n;
  if (pixels === 0n) return undefined;
  return rat(info.pricePerUnit ?? 0n, pixels);
}

/** Known senders' public keys, for the fast path of verifySig (public data: shared by every instance). */
const signers = new SignerCheck();

/** go-livepeer's crypto.VerifySig: 65 bytes, low s, v 27/28, EIP-191 recovery over the 32-byte hash. */
export async function verifySig(
  address: Hex,
  hash: Hex,
  sig: Uint8Array | Hex | undefined,
): Promise<boolean> {
  if (!sig) return false;
  const hex = typeof sig === 'string' ? sig : bytesToHex(sig);
  if (signatureProblem(hex)) return false;
  try {
    const signer = await signers.signer(address, hash, hex);
    return signer.toLowerCase() === address.toLowerCase() && address.toLowerCase() !== zeroAddress;
  } catch {
    return false;
  }
}

const balanceKey = (sender: Hex, manifestId: string) => `${sender.toLowerCase()}\u0000${manifestId}`;

export class Recipient {
  readonly recipient: Hex;
  readonly ev: bigint;
  readonly verifySenderSignatures: boolean;
  readonly accountingIntervalMs: number;
  readonly now: () => number;
  /** Winning tickets, in arrival order, for a later redemption task (the newest 10,000). */
  readonly winningTickets: WinningTicket[] = [];
  private readonly secret: Uint8Array;
  private readonly balances = new Map<string, Rational>();
  /** recipientRand (decimal) → nonces seen and the params' expiration block. */
  private readonly senderNonces = new Map<string, { seen: Set<number>; expirationBlock: bigint }>();

  constructor(
    private readonly opts: LocalOrchestratorPayments,
    /** The orchestrator's price per pixel (bound into recipientRand); see setPrice. */
    private pricePerPixel: Rational,
  ) {
    this.recipient = getAddress(opts.recipient);
    this.ev = opts.ticketEV;
    if (this.ev <= 0n) throw new Error('local orchestrator: payments.ticketEV must be > 0');
    this.secret = opts.secret ?? randomBytes(32);
    this.verifySenderSignatures = opts.verifySenderSignatures ?? true;
    this.accountingIntervalMs = opts.accountingIntervalMs ?? 5000;
    this.now = opts.now ?? Date.now;
  }

  get price(): Rational {
    return this.pricePerPixel;
  }

  /** New ticket params carry the new price; payments made at the old one still verify. */
  setPrice(price: Rational): void {
    this.pricePerPixel = price;
  }

  get address(): Hex {
    return getAddress(this.opts.address ?? this.opts.recipient);
  }

  l1Block(): bigint {
    return this.opts.l1Block();
  }

  round(): RoundInfo {
    const r = this.opts.round;
    return typeof r === 'function' ? r() : r;
  }

  /** go-livepeer's recipient.faceValue without the sender's max float (no chain here). Zero when free. */
  faceValue(): bigint {
    if (this.price.num <= 0n) return 0n;
    if (this.opts.faceValue !== undefined) return this.opts.faceValue;
    const txCost = REDEEM_GAS * (this.opts.gasPrice ?? DEFAULT_GAS_PRICE);
    const fv = txCost * TX_COST_MULTIPLIER;
    return fv < this.ev ? this.ev * EV_MULTIPLIER : fv;
  }

  /** Fresh TicketParams for a sender (recipient.TicketParams): new seed, expiry l1Block + 40. */
  ticketParams(sender: Hex): TicketParams {
    const seed = bytesToBigint(randomBytes(32));
    const faceValue = this.faceValue();
    const winProb = faceValue === 0n ? 0n : winProbFor(this.ev, faceValue);
    const expirationBlock = this.l1Block() + PARAMS_EXPIRATION_BLOCKS;
    const round = this.round();
    const rand = recipientRand(this.secret, {
      seed,
      sender,
      faceValue,
      winProb,
      expirationBlock,
      price: this.price,
      auxData: auxData(round.number, round.blockHash),
    });
    return {
      recipient: hexToBytes(this.recipient),
      faceValue: bigintToBytes(faceValue),
      winProb: bigintToBytes(winProb),
      recipientRandHash: hexToBytes(recipientRandHash(rand)),
      seed: bigintToBytes(seed),
      expirationBlock: bigintToBytes(expirationBlock),
      expirationParams: { creationRound: round.number, creationRoundBlockHash: hexToBytes(round.blockHash) },
    };
  }

  balance(sender: Hex, manifestId: string): Rational | undefined {
    return this.balances.get(balanceKey(sender, manifestId));
  }

  credit(sender: Hex, manifestId: string, amount: Rational): void {
    const k = balanceKey(sender, manifestId);
    this.balances.set(k, add(this.balances.get(k) ?? ZERO, amount));
  }

  debit(sender: Hex, manifestId: string, amount: Rational): void {
    const k = balanceKey(sender, manifestId);
    this.balances.set(k, sub(this.balances.get(k) ?? ZERO, amount));
  }

  clearBalance(sender: Hex, manifestId: string): void {
    this.balances.delete(balanceKey(sender, manifestId));
  }

  /** SufficientBalance: balance ≥ the configured ticket EV. */
  sufficientBalance(sender: Hex, manifestId: string): boolean {
    const b = this.balance(sender, manifestId);
    return b !== undefined && compare(b, rat(this.ev)) >= 0;
  }

  /**
   * go-livepeer's orchestrator.ProcessPayment + recipient.ReceiveTicket, in their order. Throws
   * PaymentError; good tickets before the first non-fatal error stay credited.
   */
  async processPayment(payment: Payment, manifestId: string): Promise<ProcessResult> {
    const result: ProcessResult = { credited: 0, ev: ZERO, won: 0 };
    if (!payment.ticketParams) return result;
    if (!payment.sender || payment.sender.length === 0) {
      throw new PaymentError('Could not find Sender for payment', true);
    }
    const expected = payment.expectedPrice;
    if (!expected) {
      throw new PaymentError('invalid expected price sent with payment err="expected price is nil"', true);
    }
    const price = ratPrice(expected);
    if (!price) {
      throw new PaymentError('invalid expected price sent with payment err="pixels per unit is 0"', true);
    }
    // go-livepeer reads payment.ExpirationParams without a nil check (a panic); refuse instead.
    if (!payment.expirationParams) {
      throw new PaymentError('invalid payment: missing expiration_params', true);
    }
    this.dropExpiredNonces();

    const tp = payment.ticketParams;
    const sender = toAddress(payment.sender);
    const seed = bytesToBigint(tp.seed);
    const faceValue = bytesToBigint(tp.faceValue);
    const winProb = bytesToBigint(tp.winProb);
    const expirationBlock = bytesToBigint(tp.expirationBlock);
    const creationRound = payment.expirationParams.creationRound ?? 0n;
    const creationRoundBlockHash = toHash(payment.expirationParams.creationRoundBlockHash);
    const base: Omit<Ticket, 'senderNonce'> = {
      recipient: toAddress(tp.recipient),
      sender,
      faceValue,
      winProb,
      recipientRandHash: toHash(tp.recipientRandHash),
      creationRound,
      creationRoundBlockHash,
    };
    // The same for every ticket of the payment: the HMAC inputs are all payment-level.
    const rand = recipientRand(this.secret, {
      seed,
      sender,
      faceValue,
      winProb,
      expirationBlock,
      price,
      auxData: auxData(creationRound, creationRoundBlockHash),
    });
    const ev = ticketEV(faceValue, winProb);

    let receiveErr: PaymentError | undefined;
    for (const [i, tsp] of (payment.ticketSenderParams ?? []).entries()) {
      // Recovering a signature costs ~1.5 ms of JS (more on a busy box): let the trickle
      // channels and GetOrchestrator calls of other jobs in between, as a prepayment has ~250.
      if (i > 0 && i % TICKETS_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      const ticket: Ticket = { ...base, senderNonce: tsp.senderNonce ?? 0 };
      const sig = tsp.sig ? bytesToHex(tsp.sig) : '0x';
      const { won, error } = await this.receiveTicket(ticket, sig, rand, expirationBlock);
      if (error?.fatal) throw error;
      if (error) receiveErr ??= error;
      if (!receiveErr) {
        this.credit(sender, manifestId, ev);
        result.credited++;
        result.ev = add(result.ev, ev);
      }
      if (won) {
        result.won++;
        this.winningTickets.push({
          ticket,
          sig,
          recipientRand: rand,
          manifestId,
          expirationBlock,
          seed,
          price,
        });
        // Nothing redeems them here (a redeemer would take them off): keep the newest only.
        if (this.winningTickets.length > MAX_KEPT_WINNING_TICKETS) this.winningTickets.shift();
      }
    }
    if (receiveErr) throw receiveErr;
    return result;
  }

  /** recipient.ReceiveTicket: validator checks, win test, nonce, expiry. */
  private async receiveTicket(
    ticket: Ticket,
    sig: Hex,
    rand: bigint,
    expirationBlock: bigint,
  ): Promise<{ won: boolean; error?: PaymentError }> {
    if (ticket.recipient.toLowerCase() !== this.recipient.toLowerCase()) {
      return { won: false, error: new PaymentError('invalid ticket recipient', true) };
    }
    if (ticket.sender.toLowerCase() === zeroAddress) {
      return { won: false, error: new PaymentError('invalid ticket sender', true) };
    }
    if (recipientRandHash(rand) !== ticket.recipientRandHash.toLowerCase()) {
      return {
        won: false,
        error: new PaymentError('invalid recipientRand for ticket recipientRandHash', true),
      };
    }
    if (!(await verifySig(ticket.sender, ticketHash(ticket), sig))) {
      return { won: false, error: new PaymentError('invalid ticket signature', false) };
    }
    const won = isWinningTicket(sig, rand, ticket.winProb);
    const nonceError = this.updateSenderNonce(rand, ticket, expirationBlock);
    if (nonceError) return { won, error: nonceError };
    if (expirationBlock <= this.l1Block()) {
      return { won, error: new PaymentError('TicketParams expired', false) };
    }
    return { won };
  }

  private updateSenderNonce(rand: bigint, ticket: Ticket, expirationBlock: bigint): PaymentError | undefined {
    const key = rand.toString();
    let entry = this.senderNonces.get(key);
    if (entry?.seen.has(ticket.senderNonce)) {
      return new PaymentError(
        `invalid ticket senderNonce: already seen sender=${getAddress(ticket.sender)} nonce=${ticket.senderNonce}`,
        false,
      );
    }
    if (!entry) {
      entry = { seen: new Set(), expirationBlock };
      this.senderNonces.set(key, entry);
    }
    if (entry.seen.size >= MAX_SENDER_NONCES) {
      return new PaymentError(
        `invalid ticket senderNonce: too many values sender=${getAddress(ticket.sender)} nonce=${ticket.senderNonce}`,
        false,
      );
    }
    entry.seen.add(ticket.senderNonce);
    return undefined;
  }

  /** senderNoncesCleanupLoop, run lazily: nonce sets go once their params have expired. */
  private dropExpiredNonces(): void {
    const latest = this.l1Block();
    for (const [key, entry] of this.senderNonces) {
      if (entry.expirationBlock <= latest) this.senderNonces.delete(key);
    }
  }
}

/** Go's BytesToAddress: the last 20 bytes, left-padded (checksummed). */
export function toAddress(bytes: Uint8Array | undefined): Hex {
  const out = new Uint8Array(20);
  const b = bytes ?? new Uint8Array(0);
  out.set(b.subarray(Math.max(0, b.length - 20)), 20 - Math.min(20, b.length));
  return getAddress(bytesToHex(out));
}

/** Go's BytesToHash: the last 32 bytes, left-padded. */
function toHash(bytes: Uint8Array | undefined): Hex {
  const out = new Uint8Array(32);
  const b = bytes ?? new Uint8Array(0);
  out.set(b.subarray(Math.max(0, b.length - 32)), 32 - Math.min(32, b.length));
  return bytesToHex(out);
}

/** For log lines: Go's FloatString(0). */
export const weiString = (r: Rational | undefined): string => (r ? floatString(r, 0) : 'nil');
