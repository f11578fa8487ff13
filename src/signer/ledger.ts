// Which payment state is current, per session (StateID): our remote signer's replay protection,
// which go-livepeer's signer does not have (docs/remote-signer.md §0, §4.3). Every state the
// signer hands out is good for exactly one next call: the ledger remembers the signature of the
// latest state of each session, and a state that is not the latest (an older one sent again) is
// refused. So is a second call with the same state while the first is under way.
//
// One exception keeps a lost answer from stranding a stream: while the latest state has never
// been presented, its parent may be presented again and gets the very same answer (the same
// tickets, nonces and state, cached for a while), which creates no new value.
//
// The interface is asynchronous so that several signer nodes holding one key can share a ledger
// (Redis, later); MemoryLedger serves one signer process.

export type Claim =
  /** The state is current: go on, then commit() the new state or release() on failure. */
  | { kind: 'ok'; commit(next: { sig: string; answer: string }): void; release(): void }
  /** The parent of a latest state never used: here is the answer it got. */
  | { kind: 'repeat'; answer: string }
  /** Not the latest state of its session (replayed), or a session we no longer know of and too old. */
  | { kind: 'replayed' | 'expired' }
  /** A call with this state is under way. */
  | { kind: 'busy' };

export interface StateLedger {
  /**
   * A call presents the state whose signature is `sig` (hex) for `stateId`, last billed at
   * `lastUpdateMs`; `null` sig: a new session (always ok). Never rejects for a normal refusal.
   */
  claim(stateId: string, sig: string | null, lastUpdateMs: number | undefined): Promise<Claim>;
}

export interface MemoryLedgerOptions {
  /**
   * A session not used for this long is forgotten, and a state we do not know (the ledger was
   * lost: a signer restart) is taken only when billed within this long.
   */
  maxAgeMs: number;
  /** How long the answer to the latest call is kept for a repeat. Default 10 min (capped at maxAgeMs). */
  answerTtlMs?: number;
  /** Sessions kept at most; the least recently used goes first. Default 1,000,000. */
  maxSessions?: number;
  now?: () => number;
}

interface Entry {
  latest: string;
  parent?: string;
  answer?: string;
  answerUntil: number;
  busy: boolean;
  usedAt: number;
}

export class MemoryLedger implements StateLedger {
  private readonly sessions = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly answerTtlMs: number;
  private readonly maxSessions: number;
  private sweepAt = 0;
  /** Sessions dropped for room before they aged out (their states could then be replayed once). */
  evicted = 0;

  constructor(private readonly opts: MemoryLedgerOptions) {
    this.now = opts.now ?? Date.now;
    this.answerTtlMs = Math.min(opts.answerTtlMs ?? 10 * 60_000, opts.maxAgeMs);
    this.maxSessions = opts.maxSessions ?? 1_000_000;
  }

  get size(): number {
    return this.sessions.size;
  }

  async claim(stateId: string, sig: string | null, lastUpdateMs: number | undefined): Promise<Claim> {
    const now = this.now();
    this.sweep(now);
    let entry = this.sessions.get(stateId);
    if (sig === null) {
      // A new session: its id is fresh (16 random bytes), so a clash is a bug or an attack.
      if (entry) return { kind: 'replayed' };
      entry = { latest: '', answerUntil: 0, busy: true, usedAt: now };
    } else if (!entry) {
      if (lastUpdateMs === undefined || now - lastUpdateMs > this.opts.maxAgeMs) return { kind: 'expired' };
      entry = { latest: sig, answerUntil: 0, busy: true, usedAt: now };
    } else if (entry.busy) {
      return { kind: 'busy' };
    } else if (sig === entry.latest) {
      entry.busy = true;
    } else if (sig === entry.parent && entry.answer !== undefined && now < entry.answerUntil) {
      entry.usedAt = now;
      return { kind: 'repeat', answer: entry.answer };
    } else {
      return { kind: 'replayed' };
    }
    const e = entry;
    const presented = sig;
    this.touch(stateId, e, now);
    let done = false;
    return {
      kind: 'ok',
      commit: (next) => {
        if (done) return;
        done = true;
        e.parent = presented ?? undefined;
        e.latest = next.sig;
        e.answer = next.answer;
        e.answerUntil = this.now() + this.answerTtlMs;
        e.busy = false;
        e.usedAt = this.now();
        // A new session that was refused never existed.
      },
      release: () => {
        if (done) return;
        done = true;
        e.busy = false;
        if (presented === null) this.sessions.delete(stateId);
      },
    };
  }

  /** Re-inserts the entry at the end: Map order is least recently used first. */
  private touch(stateId: string, e: Entry, now: number): void {
    e.usedAt = now;
    this.sessions.delete(stateId);
    this.sessions.set(stateId, e);
    while (this.sessions.size > this.maxSessions) {
      const [oldest, entry] = this.sessions.entries().next().value as [string, Entry];
      if (entry.busy) break;
      this.sessions.delete(oldest);
      this.evicted++;
    }
  }

  /** Forgets aged sessions and stale answers, at most once a minute. */
  private sweep(now: number): void {
    if (now < this.sweepAt) return;
    this.sweepAt = now + 60_000;
    for (const [id, e] of this.sessions) {
      if (e.answer !== undefined && now >= e.answerUntil) e.answer = undefined;
      if (!e.busy && now - e.usedAt > this.opts.maxAgeMs) this.sessions.delete(id);
    }
  }
}
