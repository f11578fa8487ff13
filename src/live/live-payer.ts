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
import { segmentCredentials, senderOnlyPayment } from '../payments/credentials.ts';
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
import { RemoteSignerError } from '../signer/client.ts';
import type { Capabilities, OrchestratorInfo } from '../wire/lp-rpc.ts';
import { type Failure, failureOf, LiveFailure } from './cause.ts';
import {
  authTokenExpiring,
  type JobPayments,
  type LivePaymentBackend,
  type MadePayment,
  mergeInfo,
} from './payment-backend.ts';

/** go-livepeer's initPixelsToPay: 60 s of 1280×720×30, prepaid by the start request. */
export const LIVE_START_PIXELS = 1_658_880_000n;
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

/**
 * Gateway-wide payment state when the gateway holds the key: the account, and one TicketSender
 * per orchestrator (nonces never reused).
 */
export class LivePayments implements LivePaymentBackend {
  readonly identity: GatewayIdentity;
  private readonly senders = new Map<string, TicketSender>();
  /** GetOrchestrator refreshes under way, by orchestrator (payFresh). */
  private readonly refreshing = new Map<string, Promise<OrchestratorInfo>>();

  constructor(readonly opts: LivePaymentsOptions) {
    this.identity = accountIdentity(opts.account, opts.signer);
  }

  get intervalMs(): number {
    return this.opts.intervalMs;
  }

  /** On chain, a free orchestrator still learns who signs the segment credentials (no tickets). */
  freePayment(info: OrchestratorInfo): string {
    return senderOnlyPayment(this.identity.address, info.priceInfo);
  }

  openJob(
    url: string,
    info: OrchestratorInfo,
    opts: { capabilities: Capabilities; refresh?: () => Promise<OrchestratorInfo> },
  ): JobPayments {
    return new LocalJobPayments(this, url, info, opts.capabilities);
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

/** One job paid with the gateway's own account: its share of the orchestrator's TicketSender. */
class LocalJobPayments implements JobPayments {
  private readonly sender: TicketSender;
  /** The job's local credit (tickets above the fee), as go-livepeer's Balance. */
  private readonly balance = new Balances().for('job', 'job');
  readonly price: Rational;
  info: OrchestratorInfo;

  constructor(
    private readonly payments: LivePayments,
    url: string,
    info: OrchestratorInfo,
    private readonly capabilities: Capabilities,
  ) {
    this.sender = payments.senderFor(url, info);
    // The orchestrator bills the job at the start payment's expected price for its whole life;
    // the shared sender's price may move with other streams' replies later.
    this.price = this.sender.price;
    this.info = info;
  }

  async start(opts: { pixels: bigint; manifestId: string }): Promise<MadePayment> {
    // Prepaid (at least one ticket), signed by the paying account; the credit counts as spent.
    const validate = await this.payments.validateOptions();
    const p = await this.sender.createPayment(mul(rat(opts.pixels), this.price), { validate });
    return { ...p, ...(await this.credentials(p, opts.manifestId)), settle: () => {} };
  }

  async refreshReason(force: boolean, nowMs: number): Promise<string> {
    if (force) return 'the orchestrator refused the ticket params';
    if (authTokenExpiring(this.info, nowMs)) return 'auth token about to expire';
    try {
      this.sender.validate(await this.payments.validateOptions());
    } catch (err) {
      // Other validation errors fail the payment in createPayment, as go-livepeer's do.
      if (err instanceof TicketParamsError && err.code === 'expired') return 'ticket params expired';
    }
    return '';
  }

  async pay(fee: Rational, manifestId: string): Promise<MadePayment> {
    const validate = await this.payments.validateOptions();
    const p = await this.sender.createPayment(fee, { balance: this.balance, validate });
    const update = p.update;
    let creds: { payment: string; segment: string; tickets: number; ev: Rational };
    try {
      creds = await this.credentials(p, manifestId);
    } catch (err) {
      if (update) this.balance.complete(update);
      throw err;
    }
    return {
      ...creds,
      settle: (outcome) => {
        if (!update) return;
        // Not credited: the local credit goes back as it was (new tickets are signed next time).
        this.balance.complete(
          outcome === 'delivered' ? { ...update, debit: fee, status: 'received-change' } : update,
        );
      },
    };
  }

  take(fresh: OrchestratorInfo): void {
    if (fresh.ticketParams && fresh.priceInfo) this.sender.update(fresh.ticketParams, fresh.priceInfo);
    this.info = mergeInfo(this.info, fresh);
  }

  /** The job's capabilities go into every payment's segment credentials, as go-livepeer sends them. */
  private async credentials(p: PaymentResult, manifestId: string) {
    const segment = await segmentCredentials(this.info, this.payments.identity, {
      manifestId,
      capabilities: this.capabilities,
    });
    return { payment: p.header, segment, tickets: p.numTickets, ev: p.ev };
  }
}

export interface LivePayerOptions {
  /** The job's payments (the local sender, or the remote signer). */
  job: JobPayments;
  /** How often the job is paid. */
  intervalMs: number;
  /** Where to POST /payment. */
  transcoder: string;
  /** The job's manifest id, from the start reply. */
  manifestId: string;
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
  private readonly clock: LiveBillingClock;
  private readonly now: () => number;
  private readonly monotonic: () => number;
  /** Monotonic ms of the last payment the orchestrator took (the start prepays). */
  private paidAt: number;
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
    this.clock = new LiveBillingClock(opts.intervalMs, undefined, this.monotonic);
    this.paidAt = this.monotonic();
    const prepaidMs = Number(((opts.prepaidPixels ?? LIVE_START_PIXELS) * 1000n) / LIVE_UNITS_PER_SECOND);
    this.maxUnpaidMs = prepaidMs / 2;
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
      const fee = mul(rat(due.units), this.opts.job.price);
      let reason = '';
      let last: unknown;
      // A refused payment is tried once more at once (with fresh params when the orchestrator
      // said they were stale); a second refusal ends this orchestrator. A payment that did not
      // get through (timeout, connection; the remote signer unreachable) stays due and is tried
      // again with a later segment, until nothing has been paid for half the 60 s the start prepaid.
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
          const transient =
            (err instanceof OrchestratorError && err.kind !== 'refused') ||
            (err instanceof RemoteSignerError && err.transient);
          if (transient) {
            const unpaidMs = this.monotonic() - this.paidAt;
            if (unpaidMs < this.maxUnpaidMs) {
              this.opts.tally.lastError = reason;
              return;
            }
            reason = `${reason} (nothing paid for ${Math.round(unpaidMs / 1000)} s)`;
            break;
          }
          // The signer's refusal is not a stale-params problem a second try would fix.
          if (err instanceof RemoteSignerError) break;
        }
      }
      this.opts.tally.lastError = reason;
      this.stop();
      const failure = failureOf(last, 'payment', { fallback: 'orchestrator', prefix: 'payment failed' });
      // The message may carry the unpaid time, which the error itself does not.
      this.opts.onError({
        ...failure,
        code:
          last instanceof PriceRefused || (last instanceof RemoteSignerError && last.blame === 'orchestrator')
            ? 'price'
            : 'payment',
        message: `payment failed: ${reason}`,
      });
    } finally {
      this.busy = false;
    }
  }

  private async pay(fee: Rational, forceRefresh: boolean): Promise<void> {
    const { job } = this.opts;
    // go-livepeer's refreshSessionIfNeeded: auth token near its end, or params expired.
    const why = this.opts.refresh ? await job.refreshReason(forceRefresh, this.now()) : '';
    if (why && this.opts.refresh) {
      this.opts.logger.info({ orchestrator: this.opts.transcoder, why }, 'refreshing orchestrator info');
      job.take(await this.opts.refresh());
    }
    this.checkPrice();
    const made = await job.pay(fee, this.opts.manifestId);
    // The remote signer's credit still covers this interval: nothing to send.
    if (!made) return;
    let fresh: OrchestratorInfo | undefined;
    try {
      fresh = await sendLivePayment(this.opts.transcoder, {
        payment: made.payment,
        segment: made.segment,
        timeoutMs: PAYMENT_TIMEOUT_MS,
      });
    } catch (err) {
      made.settle(err instanceof OrchestratorError && err.kind !== 'refused' ? 'lost' : 'refused');
      throw err;
    }
    made.settle('delivered');
    this.opts.tally.tickets += made.tickets;
    this.opts.tally.paid = add(this.opts.tally.paid, made.ev);
    if (!fresh) return;
    try {
      job.take(fresh);
    } catch (err) {
      // The payment was taken; unusable new params are the next payment's problem (refresh).
      this.opts.logger.warn(
        { orchestrator: this.opts.transcoder, reason: (err as Error).message },
        'payment reply has unusable ticket params; keeping the previous ones',
      );
    }
  }

  /** validatePrice and the ceiling, on the orchestrator's current price. */
  private checkPrice(): void {
    const info = this.opts.job.info;
    const current = priceOf(info.priceInfo);
    const initial = this.opts.job.price;
    // current > 2 × initial, in exact integers.
    if (current.num * initial.den > PRICE_INCREASE_THRESHOLD * initial.num * current.den) {
      throw new PriceRefused(
        `orchestrator price has more than doubled: ${floatString(current, 3)} wei/pixel now, ${floatString(initial, 3)} at the start`,
      );
    }
    const refused = this.opts.refusePrice?.(info);
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
