// Paying a live job as go-livepeer's gateway does (spec livepeer-pm.md §3.3): the start request
// prepays 60 s of 720p30; then, every interval, 27,648,000 × whole seconds since the last billed
// instant × price goes to POST {transcoder}/payment, the clock moving by the seconds billed.
import type { Logger } from 'pino';
import type { LocalAccount } from 'viem';
import { sendLivePayment } from '../orchestrators/live-payment.ts';
import { segmentCredentials } from '../payments/credentials.ts';
import { accountIdentity, type GatewayIdentity } from '../payments/identity.ts';
import { add, floatString, mul, type Rational, rat, ZERO } from '../payments/rational.ts';
import { type Balance, Balances, TicketSender, type ValidateOptions } from '../payments/sender.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';

/** go-livepeer's initPixelsToPay: 60 s of 1280×720×30, prepaid by the start request. */
export const LIVE_START_PIXELS = 1_658_880_000n;
/** go-livepeer's live rate: 1280×720×30 "pixels" per second. */
export const LIVE_PIXELS_PER_SECOND = 27_648_000n;

/** The gateway's payment account and limits (LiveStreamsOptions.payments). */
export interface LivePaymentsOptions {
  account: LocalAccount;
  /** Refuse ticket params whose single-ticket EV is above this (wei). */
  maxTicketEV: bigint;
  /** Refuse a payment whose tickets' total EV is above this (wei). */
  maxTotalEV: bigint;
  /** How often running jobs are paid. */
  intervalMs: number;
  /** The latest L1 block seen, for the params' expiry check; without it only the orchestrator checks. */
  lastSeenL1Block?: () => bigint;
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

  constructor(readonly opts: LivePaymentsOptions) {
    this.identity = accountIdentity(opts.account);
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
      sender = new TicketSender({ account: this.opts.account, ticketParams, priceInfo });
      this.senders.set(orchestrator, sender);
    }
    return sender;
  }

  validateOptions(): Omit<ValidateOptions, 'numTickets'> {
    return {
      lastSeenL1Block: this.opts.lastSeenL1Block?.() ?? 0n,
      maxTicketEV: this.opts.maxTicketEV,
      maxTotalEV: this.opts.maxTotalEV,
      depositMultiplier: 1,
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
  /** Price per pixel the job was started at. */
  price: Rational;
  tally: PaymentTally;
  logger: Logger;
  /** Payment failed twice in a row: the caller swaps the orchestrator before it cuts the stream. */
  onError: (reason: string) => void;
  now?: () => number;
}

/** Pays one running job every intervalMs until stop(). */
export class LivePayer {
  private readonly timer: NodeJS.Timeout;
  private readonly balance: Balance;
  private readonly now: () => number;
  private billedUntil: number;
  private info: OrchestratorInfo;
  private busy = false;
  private stopped = false;

  constructor(private readonly opts: LivePayerOptions) {
    this.now = opts.now ?? Date.now;
    this.billedUntil = this.now();
    this.info = opts.info;
    // The start payment's credit counts as spent: the 60 s buffer lives on the orchestrator.
    this.balance = new Balances().for(opts.transcoder, opts.manifestId);
    this.timer = setInterval(() => void this.tick(), opts.payments.opts.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    const seconds = Math.floor((this.now() - this.billedUntil) / 1000);
    if (seconds < 1) return;
    this.busy = true;
    try {
      const fee = mul(rat(LIVE_PIXELS_PER_SECOND * BigInt(seconds)), this.opts.price);
      let reason = '';
      // A failed payment is tried once more at once; a second failure ends this orchestrator.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          await this.pay(fee);
          this.billedUntil += seconds * 1000;
          this.opts.tally.lastError = null;
          return;
        } catch (err) {
          if (this.stopped) return;
          reason = (err as Error).message;
          this.opts.logger.warn(
            { orchestrator: this.opts.transcoder, attempt, reason },
            'live payment failed',
          );
        }
      }
      this.opts.tally.lastError = reason;
      this.stop();
      this.opts.onError(`payment failed: ${reason}`);
    } finally {
      this.busy = false;
    }
  }

  private async pay(fee: Rational): Promise<void> {
    const { sender, payments } = this.opts;
    const payment = await sender.createPayment(fee, {
      balance: this.balance,
      validate: payments.validateOptions(),
    });
    const update = payment.update;
    try {
      const segment = await segmentCredentials(this.info, payments.identity, {
        manifestId: this.opts.manifestId,
      });
      const fresh = await sendLivePayment(this.opts.transcoder, { payment: payment.header, segment });
      if (update) this.balance.complete({ ...update, debit: fee, status: 'received-change' });
      this.opts.tally.tickets += payment.numTickets;
      this.opts.tally.paid = add(this.opts.tally.paid, payment.ev);
      if (fresh?.ticketParams && fresh.priceInfo) sender.update(fresh.ticketParams, fresh.priceInfo);
      if (fresh?.authToken) this.info = { ...this.info, authToken: fresh.authToken };
    } catch (err) {
      // Not credited: the local credit goes back as it was.
      if (update) this.balance.complete(update);
      throw err;
    }
  }
}

export const newTally = (): PaymentTally => ({ tickets: 0, paid: ZERO, lastError: null });
