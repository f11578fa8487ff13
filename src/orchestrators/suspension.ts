// How long a failing orchestrator is skipped. Each failure suspends it for
//   baseMs × 2^(failures − 1), at most maxMs,
// where `failures` counts recent failures: one is forgotten per decayMs without a new failure,
// so an orchestrator that failed once long ago starts again from baseMs. A reported success
// forgets all of them and lifts the suspension.

export interface SuspensionOptions {
  /** First suspension. Default 30 s. */
  baseMs?: number;
  /** Longest suspension. Default 10 min. */
  maxMs?: number;
  /** One failure is forgotten per this long without a new one. Default 5 min. */
  decayMs?: number;
}

export interface SuspensionState {
  /** Recent failures, after decay. */
  failures: number;
  /** Epoch ms; undefined when not suspended. */
  until: number | undefined;
  reason: string | undefined;
}

interface Record_ {
  failures: number;
  lastFailureAt: number;
  until: number;
  reason: string;
}

export class Suspensions {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly decayMs: number;
  private readonly records = new Map<string, Record_>();

  constructor(
    opts: SuspensionOptions,
    private readonly now: () => number,
  ) {
    this.baseMs = opts.baseMs ?? 30_000;
    this.maxMs = opts.maxMs ?? 10 * 60_000;
    this.decayMs = opts.decayMs ?? 5 * 60_000;
  }

  /** Counts a failure and (re)starts the suspension; returns how long it lasts. */
  fail(url: string, reason: string): number {
    const now = this.now();
    const failures = this.recentFailures(url, now) + 1;
    const penalty = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(failures - 1, 30));
    this.records.set(url, { failures, lastFailureAt: now, until: now + penalty, reason });
    return penalty;
  }

  /**
   * A suspension decided elsewhere (another gateway node): kept when it lasts longer than this
   * one's own; returns whether it changed anything.
   */
  impose(url: string, reason: string, until: number, failures: number): boolean {
    const now = this.now();
    const r = this.records.get(url);
    if (until <= now || (r && r.until >= until)) return false;
    this.records.set(url, {
      failures: Math.max(failures, r ? this.recentFailures(url, now) : 0, 1),
      lastFailureAt: now,
      until,
      reason,
    });
    return true;
  }

  succeed(url: string): void {
    this.records.delete(url);
  }

  isSuspended(url: string): boolean {
    const r = this.records.get(url);
    return r !== undefined && r.until > this.now();
  }

  state(url: string): SuspensionState {
    const now = this.now();
    const r = this.records.get(url);
    const failures = this.recentFailures(url, now);
    if (!r) return { failures: 0, until: undefined, reason: undefined };
    if (failures === 0 && r.until <= now) {
      this.records.delete(url);
      return { failures: 0, until: undefined, reason: undefined };
    }
    return { failures, until: r.until > now ? r.until : undefined, reason: r.reason };
  }

  forget(url: string): void {
    this.records.delete(url);
  }

  private recentFailures(url: string, now: number): number {
    const r = this.records.get(url);
    if (!r) return 0;
    // Decay counts from the end of the suspension, so a long penalty is not forgotten while it runs.
    const quiet = Math.max(0, now - Math.max(r.lastFailureAt, r.until));
    return Math.max(0, r.failures - Math.floor(quiet / this.decayMs));
  }
}
