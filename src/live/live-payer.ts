// Paying a live job as go-livepeer's gateway does (spec livepeer-pm.md §3.3): the start request
// prepays 60 s of 720p30; then, on input segments at most once per interval, 27,648,000 units a
// second since the last billed instant × price goes to POST {transcoder}/payment
// (payments/live-clock.ts). Before each payment, as go-livepeer's refreshSessionIfNeeded and
// validatePrice: expired ticket params or an auth token near its end are refreshed with
// GetOrchestrator, and a price above the ceiling or more than double the start price is refused.
import type { Logger } from 'pino';
import type { LocalAccount } from 'viem';
import { OrchestratorError } from '../orchestrators/errors.ts';
import { sendLivePayment } from '../orchestrators/live-payment.ts';
import { segmentCredentials } from '../payments/credentials.ts';
import { accountIdentity, type GatewayIdentity } from '../payments/identity.ts';
import { LIVE_UNITS_PER_SECOND, LiveBillingClock } from '../payments/live-clock.ts';
import { add, floatString, mul, type Rational, rat, ZERO } from '../payments/rational.ts';
import {
  type Balance,
  Balances,
  type PaymentResult,
  priceOf,
  type SenderInfo,
  TicketParamsError,
  TicketSender,
  type ValidateOptions,
} from '../payments/sender.ts';
import type { TicketSigner } from '../payments/signing-pool.ts';
import type { Capabilities, OrchestratorInfo } from '../wire/lp-rpc.ts';
import { type Failure, failureOf, LiveFailure } from './cause.ts';

/** go-livepeer's initPixelsToPay: 60 s of 1280×720×30, prepaid by the start request. */
export const LIVE_START_PIXELS = 1_658_880_000n;
/** go-livepeer's authTokenValidPeriod; a token is refreshed in its last tenth. */
const AUTH_TOKEN_VALID_S = 30 * 60;
/** go-livepeer's priceIncreaseThreshold: refuse to pay once the price more than doubles. */
const PRICE_INCREASE_THRESHOLD = 2n;
/** One /payment (go-livepeer allows a minute; the unpaid limit bounds the wait anyway). */
const PAYMENT_TIMEOUT_MS = 15_000;

/**
 * The start payment of another job on an orchestrator this stream already prepaid. The first
 * job's 60 s stays credited to that job's manifest (go-livepeer keys balances by it, and the
 * manifest id is the orchestrator's, new for every job), so paying 60 s again at every retry
 * buys credit that is never used. The new job needs only enough to run until payments flow:
 * two payment intervals and one payment's timeout (25 s at the default 5 s interval).
 */
export function retryStartPixels(intervalMs: number): bigint {
  const ms = Math.min(60_000, 2 * intervalMs + PAYMENT_TIMEOUT_MS);
  return (LIVE_UNITS_PER_SECOND * BigInt(ms)) / 1000n;
}

/** The gateway's payment account and limits (LiveStreamsOptions.payments). */
export interface LivePaymentsOptions {
  account: LocalAccount;
  /** Signs tickets and credentials off the event loop (the on-chain gateway's SigningPool); default: the account, in line. */
  signer?: TicketSigner;
  /** Refuse ticket params whose single-ticket EV is above this (wei). */
  maxTicketEV: bigint;
  /** Refuse a payment whose tickets' total EV is above this (wei). */
  maxTotalEV: bigint;
  /** How often running jobs are paid. */
  intervalMs: number;
  /** The latest L1 block seen, for the params' expiry check; without it only the orchestrator checks. */
  lastSeenL1Block?: () => bigint;
  /**
   * The gateway's TicketBroker deposit and reserve and the last initialised round (cached chain
   * reads), for the checks before paying: unlock in progress, no deposit or reserve, and a face
   * value above deposit ÷ depositMultiplier. Absent (tests without a chain): those are skipped.
   */
  senderState?: () => Promise<{ senderInfo: SenderInfo; lastInitializedRound: bigint }>;
  /** -depositMultiplier; default 1. */
  depositMultiplier?: number;
}

/** What one stream paid one orchestrator. */
export interface PaymentTally {
  tickets: number;
  paid: Rational;
  lastError: string | null;
}

export interface PaymentStatus {
  orchestrator: string;
  tickets: number;
  /** Total EV of the tickets sent, wei (decimal, rounded). */
  paidEV: string;
  lastError: string | null;
}

export const paymentStatus = (orchestrator: string, t: PaymentTally): PaymentStatus => ({
  orchestrator,
  tickets: t.tickets,
  paidEV: floatString(t.paid, 0),
  lastError: t.lastError,
});

/** Gateway-wide payment state: the account, and one TicketSender per orchestrator (nonces never reused). */
export class LivePayments {
  readonly identity: GatewayIdentity;
  private readonly senders = new Map<string, TicketSender>();
  /** GetOrchestrator refreshes under way, by orchestrator (payFresh). */
  private readonly refreshing = new Map<string, Promise<OrchestratorInfo>>();

  constructor(readonly opts: LivePaymentsOptions) {
    this.identity = accountIdentity(opts.account, opts.signer);
  }

  /** Whether a job on this orchestrator is paid: ticket params and a price above zero. */
  static pays(info: OrchestratorInfo): boolean {
    const price = info.priceInfo;
    return (
      info.ticketParams !== undefined &&
      price !== undefined &&
      (price.pricePerUnit ?? 0n) > 0n &&
      (price.pixelsPerUnit ?? 0n) > 0n
    );
  }

  /** The orchestrator's sender, brought up to date with this info. */
  senderFor(orchestrator: string, info: OrchestratorInfo): TicketSender {
    const ticketParams = info.ticketParams;
    const priceInfo = info.priceInfo;
    if (!ticketParams || !priceInfo) throw new Error('orchestrator sent no ticket params or price');
    let sender = this.senders.get(orchestrator);
    if (sender) sender.update(ticketParams, priceInfo);
    else {
      sender = new TicketSender({
        account: this.opts.account,
        signer: this.opts.signer,
        ticketParams,
        priceInfo,
      });
      this.senders.set(orchestrator, sender);
    }
    return sender;
  }

  /**
   * A payment of the fee to the orchestrator at `url`, from its sender brought up to date with
   * `info`, §3.4 checked. When the sender's params can pay no more (expired, or their 600 nonces
   * used: TicketParamsError.needsRefresh) `refresh` is asked for a fresh OrchestratorInfo from the
   * same orchestrator, as go-livepeer refreshes a session, and the payment is made with it; calls
   * that run out at once share one refresh. Returns the payment and the info it was made with:
   * the segment credentials must carry that info's auth token.
   * @throws TicketParamsError (also after a refresh), or what `refresh` throws.
   */
  async payFresh(
    url: string,
    info: OrchestratorInfo,
    opts: {
      /** The fee at this info's price. */
      fee: (info: OrchestratorInfo) => Rational;
      balance: (info: OrchestratorInfo) => Balance;
      refresh: () => Promise<OrchestratorInfo>;
    },
  ): Promise<{ payment: PaymentResult; info: OrchestratorInfo; fee: Rational; refreshed: boolean }> {
    const pay = async (with_: OrchestratorInfo) => {
      const validate = await this.validateOptions();
      const fee = opts.fee(with_);
      // senderFor and the nonce allocation in createPayment run without a break: nothing can
      // switch the sender's params in between.
      const payment = await this.senderFor(url, with_).createPayment(fee, {
        balance: opts.balance(with_),
        validate,
      });
      return { payment, fee };
    };
    try {
      return { ...(await pay(info)), info, refreshed: false };
    } catch (err) {
      if (!(err instanceof TicketParamsError && err.needsRefresh)) throw err;
    }
    let refreshing = this.refreshing.get(url);
    if (!refreshing) {
      refreshing = opts.refresh().finally(() => this.refreshing.delete(url));
      this.refreshing.set(url, refreshing);
    }
    const fresh = await refreshing;
    if (!LivePayments.pays(fresh)) throw new Error('the refreshed orchestrator info has no ticket params');
    return { ...(await pay(fresh)), info: fresh, refreshed: true };
  }

  /** What §3.4 checks before a payment: the limits, the L1 block and, on chain, the sender's state. */
  async validateOptions(): Promise<Omit<ValidateOptions, 'numTickets'>> {
    const state = await this.opts.senderState?.();
    return {
      lastSeenL1Block: this.opts.lastSeenL1Block?.() ?? 0n,
      maxTicketEV: this.opts.maxTicketEV,
      maxTotalEV: this.opts.maxTotalEV,
      depositMultiplier: this.opts.depositMultiplier ?? 1,
      senderInfo: state?.senderInfo,
      lastInitializedRound: state?.lastInitializedRound,
    };
  }
}

export interface LivePayerOptions {
  payments: LivePayments;
  sender: TicketSender;
  /** Where to POST /payment. */
  transcoder: string;
  /** The orchestrator's info: its auth token goes into the segment credentials. */
  info: OrchestratorInfo;
  /** The job's manifest id, from the start reply. */
  manifestId: string;
  /** Price per pixel the job was started at (its start payment's expected price). */
  price: Rational;
  /** The job's capabilities, sent in every payment's segment credentials as go-livepeer does. */
  capabilities?: Capabilities;
  tally: PaymentTally;
  /**
   * Pixels the start payment paid ahead (default LIVE_START_PIXELS): payments may fail for half
   * the time they stand for before the job counts as unpaid.
   */
  prepaidPixels?: bigint;
  logger: Logger;
  /**
   * Payment failed for good (refused twice, the price refused, or nothing paid for half the
   * prepaid time): the caller decides, by the failure's blame, whether to move the stream.
   */
  onError: (failure: Failure) => void;
  /** A fresh GetOrchestrator from this orchestrator (expired params, auth token near its end). */
  refresh?: () => Promise<OrchestratorInfo>;
  /** Why the orchestrator's current price is not acceptable (the ceiling), or undefined. */
  refusePrice?: (info: OrchestratorInfo) => string | undefined;
  /** Wall clock, ms (auth token expiry); default Date.now. */
  now?: () => number;
  /** Monotonic clock, ms (billing, unpaid time); default performance.now. */
  monotonic?: () => number;
}

/** Pays one running job as its input segments flow, until stop(). */
export class LivePayer {
  private readonly balance: Balance;
  private readonly clock: LiveBillingClock;
  private readonly now: () => number;
  private readonly monotonic: () => number;
  /** Monotonic ms of the last payment the orchestrator took (the start prepays). */
  private paidAt: number;
  private info: OrchestratorInfo;
  private busy = false;
  private stopped = false;
  /** The payment under way. */
  private inflight?: Promise<void>;
  /** Half the time the start payment stands for. */
  private readonly maxUnpaidMs: number;

  constructor(private readonly opts: LivePayerOptions) {
    this.now = opts.now ?? Date.now;
    // A wall clock that steps (NTP) would stop payments or send one huge bill.
    this.monotonic = opts.monotonic ?? (() => performance.now());
    this.clock = new LiveBillingClock(opts.payments.opts.intervalMs, undefined, this.monotonic);
    this.paidAt = this.monotonic();
    const prepaidMs = Number(((opts.prepaidPixels ?? LIVE_START_PIXELS) * 1000n) / LIVE_UNITS_PER_SECOND);
    this.maxUnpaidMs = prepaidMs / 2;
    this.info = opts.info;
    // The start payment's credit counts as spent: the 60 s buffer lives on the orchestrator.
    this.balance = new Balances().for(opts.transcoder, opts.manifestId);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Resolves once the payment under way, if any, has finished (a stopped payer starts none). */
  settled(): Promise<void> {
    return this.inflight?.catch(() => {}) ?? Promise.resolve();
  }

  /**
   * An input segment is on its way to the orchestrator: pay if an interval has passed. Returns
   * the payment under way, if one was started (it never rejects).
   */
  onInputSegment(): Promise<void> | undefined {
    if (this.busy || this.stopped || !this.clock.due()) return undefined;
    const payment = this.payDue().finally(() => {
      if (this.inflight === payment) this.inflight = undefined;
    });
    this.inflight = payment;
    return payment;
  }

  private async payDue(): Promise<void> {
    this.busy = true;
    try {
      const due = this.clock.due();
      if (!due) return;
      const fee = mul(rat(due.units), this.opts.price);
      let reason = '';
      let last: unknown;
      // A refused payment is tried once more at once (with fresh params when the orchestrator
      // said they were stale); a second refusal ends this orchestrator. A payment that did not
      // get through (timeout, connection) stays due and is tried again with a later segment,
      // until nothing has been paid for half the 60 s the start prepaid.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await this.pay(fee, attempt > 0 && STALE_PARAMS.test(reason));
          this.clock.commit(due);
          this.paidAt = this.monotonic();
          this.opts.tally.lastError = null;
          return;
        } catch (err) {
          if (this.stopped) return;
          last = err;
          reason = (err as Error).message;
          this.opts.logger.warn(
            { orchestrator: this.opts.transcoder, attempt, reason },
            'live payment failed',
          );
          if (err instanceof PriceRefused) break;
          if (err instanceof OrchestratorError && err.kind !== 'refused') {
            const unpaidMs = this.monotonic() - this.paidAt;
            if (unpaidMs < this.maxUnpaidMs) {
              this.opts.tally.lastError = reason;
              return;
            }
            reason = `${reason} (nothing paid for ${Math.round(unpaidMs / 1000)} s)`;
            break;
          }
        }
      }
      this.opts.tally.lastError = reason;
      this.stop();
      const failure = failureOf(last, 'payment', { fallback: 'orchestrator', prefix: 'payment failed' });
      // The message may carry the unpaid time, which the error itself does not.
      this.opts.onError({
        ...failure,
        code: last instanceof PriceRefused ? 'price' : 'payment',
        message: `payment failed: ${reason}`,
      });
    } finally {
      this.busy = false;
    }
  }

  private async pay(fee: Rational, forceRefresh: boolean): Promise<void> {
    const { sender, payments } = this.opts;
    const validate = await payments.validateOptions();
    await this.refreshIfNeeded(validate, forceRefresh);
    this.checkPrice();
    const payment = await sender.createPayment(fee, { balance: this.balance, validate });
    const update = payment.update;
    let fresh: OrchestratorInfo | undefined;
    try {
      const segment = await segmentCredentials(this.info, payments.identity, {
        manifestId: this.opts.manifestId,
        capabilities: this.opts.capabilities,
      });
      fresh = await sendLivePayment(this.opts.transcoder, {
        payment: payment.header,
        segment,
        timeoutMs: PAYMENT_TIMEOUT_MS,
      });
    } catch (err) {
      // Not credited: the local credit goes back as it was.
      if (update) this.balance.complete(update);
      throw err;
    }
    if (update) this.balance.complete({ ...update, debit: fee, status: 'received-change' });
    this.opts.tally.tickets += payment.numTickets;
    this.opts.tally.paid = add(this.opts.tally.paid, payment.ev);
    if (!fresh) return;
    try {
      this.take(fresh);
    } catch (err) {
      // The payment was taken; unusable new params are the next payment's problem (refresh).
      this.opts.logger.warn(
        { orchestrator: this.opts.transcoder, reason: (err as Error).message },
        'payment reply has unusable ticket params; keeping the previous ones',
      );
    }
  }

  /** go-livepeer's shouldRefreshSession: auth token in its last tenth, or params expired. */
  private async refreshIfNeeded(
    validate: Omit<ValidateOptions, 'numTickets'>,
    force: boolean,
  ): Promise<void> {
    const refresh = this.opts.refresh;
    if (!refresh) return;
    let why = force ? 'the orchestrator refused the ticket params' : '';
    const expiration = this.info.authToken?.expiration;
    if (!why && expiration !== undefined) {
      const refreshAt = Number(expiration) - AUTH_TOKEN_VALID_S / 10;
      if (this.now() / 1000 > refreshAt) why = 'auth token about to expire';
    }
    if (!why) {
      try {
        this.opts.sender.validate(validate);
      } catch (err) {
        // Other validation errors fail the payment in createPayment, as go-livepeer's do.
        if (!(err instanceof TicketParamsError && err.code === 'expired')) return;
        why = 'ticket params expired';
      }
    }
    if (!why) return;
    this.opts.logger.info({ orchestrator: this.opts.transcoder, why }, 'refreshing orchestrator info');
    this.take(await refresh());
  }

  /** New OrchestratorInfo (a /payment reply or a refresh): params, price and auth token. */
  private take(fresh: OrchestratorInfo): void {
    if (fresh.ticketParams && fresh.priceInfo) this.opts.sender.update(fresh.ticketParams, fresh.priceInfo);
    this.info = {
      ...this.info,
      ...(fresh.authToken ? { authToken: fresh.authToken } : {}),
      ...(fresh.priceInfo ? { priceInfo: fresh.priceInfo } : {}),
    };
  }

  /** validatePrice and the ceiling, on the orchestrator's current price. */
  private checkPrice(): void {
    const current = priceOf(this.info.priceInfo);
    const initial = this.opts.price;
    // current > 2 × initial, in exact integers.
    if (current.num * initial.den > PRICE_INCREASE_THRESHOLD * initial.num * current.den) {
      throw new PriceRefused(
        `orchestrator price has more than doubled: ${floatString(current, 3)} wei/pixel now, ${floatString(initial, 3)} at the start`,
      );
    }
    const refused = this.opts.refusePrice?.(this.info);
    if (refused) throw new PriceRefused(refused);
  }
}

/** The orchestrator's own words for ticket params it no longer takes (pm/recipient.go). */
const STALE_PARAMS = /TicketParams expired|invalid ticket senderNonce|invalid recipientRand/;

/** Not worth a retry: the price is what it is. The orchestrator's price, so its fault. */
class PriceRefused extends LiveFailure {
  constructor(message: string) {
    super({ blame: 'orchestrator', code: 'price', message });
  }
}

export const newTally = (): PaymentTally => ({ tickets: 0, paid: ZERO, lastError: null });
