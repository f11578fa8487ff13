// When and how much a live job is billed, the same rule on both ends (go-livepeer's
// LivePaymentProcessor, server/live_payment_processor.go): on an input segment, at most once per
// interval, bill the units for the time since the last billed instant. The clock moves only by
// the time the billed units stand for, so truncated fractions are billed later, not lost. No
// input segment means nothing is billed; the next one bills the gap as well, as go-livepeer's
// orchestrator will debit it.

/** go-livepeer's live rate: 1280×720×30 units per second. */
export const LIVE_UNITS_PER_SECOND = 27_648_000n;

export interface BillingDue {
  /** Units to bill now. */
  units: bigint;
  /** The billed instant to move to once paid (ms). */
  until: number;
}

export class LiveBillingClock {
  private billedUntil: number;

  constructor(
    private readonly intervalMs: number,
    private readonly unitsPerSecond: bigint = LIVE_UNITS_PER_SECOND,
    private readonly now: () => number = Date.now,
  ) {
    this.billedUntil = now();
  }

  /** What an input segment arriving now should bill; undefined within the interval. */
  due(): BillingDue | undefined {
    const now = this.now();
    const elapsed = Math.floor(now - this.billedUntil);
    if (elapsed < this.intervalMs || elapsed <= 0) return undefined;
    const units = (this.unitsPerSecond * BigInt(elapsed)) / 1000n;
    if (units <= 0n) return undefined;
    // The time the units stand for, rounded down to whole ms: the remainder stays unbilled.
    const ms = Number((units * 1000n) / this.unitsPerSecond);
    return { units, until: this.billedUntil + ms };
  }

  /** The units were paid (or debited): move the clock. */
  commit(due: BillingDue): void {
    if (due.until > this.billedUntil) this.billedUntil = due.until;
  }
}
