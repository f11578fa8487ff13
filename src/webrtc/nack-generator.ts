// RFC 4585 generic NACK on sequence gaps, for the ingest video stream.
//
// Used instead of werift 0.24's receiver NACK handler, which compares sequence numbers without
// wrap-around (after a loss across 65535→0 it never NACKs again), re-sends every 5 ms for only
// ~50 ms (shorter than a typical internet RTT) and sorts lost numbers as strings.

export interface NackGeneratorOptions {
  /** Sends one NACK naming these sequence numbers (in stream order). */
  send: (lost: number[]) => void;
  /** Ask again for a packet still missing after this long. Default 50 ms. */
  retryIntervalMs?: number;
  /** NACKs per missing packet, the first included. Default 5. */
  maxAttempts?: number;
  /** Stop asking for a packet missing this long (a keyframe request is the better remedy). Default 1000 ms. */
  maxAgeMs?: number;
  /** A forward jump larger than this is a stream restart, not loss: nothing is NACKed. Default 512. */
  maxGap?: number;
  /** Upper bound on tracked missing packets; the oldest are forgotten first. Default 1000. */
  maxMissing?: number;
}

/** Round trip assumed until a retransmission has been measured. */
const DEFAULT_RTT_MS = 100;
/** Recovery times kept to estimate the round trip. */
const RECOVERY_SAMPLES = 16;
/** Requested packets after which a sender that answered none is taken not to retransmit. */
const NO_RETRANSMISSION_AFTER = 20;
/** Slack for timers and the sender's own scheduling on top of a round trip. */
const WINDOW_MARGIN_MS = 20;

interface Missing {
  firstSeenAt: number;
  lastSentAt: number;
  attempts: number;
}

export class NackGenerator {
  readonly #send: (lost: number[]) => void;
  readonly #retryIntervalMs: number;
  readonly #maxAttempts: number;
  readonly #maxAgeMs: number;
  readonly #maxGap: number;
  readonly #maxMissing: number;
  /** Keyed by 16-bit seq; Map keeps insertion order, which is stream order. */
  readonly #missing = new Map<number, Missing>();
  #highest: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #recoveryMs: number[] = [];
  nacksSent = 0;
  packetsRequested = 0;
  /** Missing packets that arrived after all (retransmitted, or merely late). */
  packetsRecovered = 0;

  constructor(opts: NackGeneratorOptions) {
    this.#send = opts.send;
    this.#retryIntervalMs = opts.retryIntervalMs ?? 50;
    this.#maxAttempts = opts.maxAttempts ?? 5;
    this.#maxAgeMs = opts.maxAgeMs ?? 1000;
    this.#maxGap = opts.maxGap ?? 512;
    this.#maxMissing = opts.maxMissing ?? 1000;
  }

  get missingCount(): number {
    return this.#missing.size;
  }

  /** Records an arrived packet; NACKs any gap it reveals at once. */
  onPacket(seq: number, now = Date.now()): void {
    if (this.#closed) return;
    seq &= 0xffff;
    if (this.#highest === undefined) {
      this.#highest = seq;
      return;
    }
    const ahead = seqDistance(this.#highest, seq);
    if (ahead <= 0) {
      // Late or retransmitted: no longer missing.
      const entry = this.#missing.get(seq);
      if (entry) {
        this.#missing.delete(seq);
        this.packetsRecovered++;
        this.#recoveryMs.push(now - entry.firstSeenAt);
        if (this.#recoveryMs.length > RECOVERY_SAMPLES) this.#recoveryMs.shift();
      }
      return;
    }
    if (ahead > this.#maxGap) {
      this.#missing.clear();
      this.#highest = seq;
      return;
    }
    const fresh: number[] = [];
    for (let i = 1; i < ahead; i++) {
      const lost = (this.#highest + i) & 0xffff;
      this.#missing.set(lost, { firstSeenAt: now, lastSentAt: now, attempts: 1 });
      fresh.push(lost);
    }
    this.#highest = seq;
    this.#trim();
    if (fresh.length > 0) {
      this.#emit(fresh);
      this.#schedule();
    }
  }

  /**
   * The round trip as seen from here: the quickest recent recovery (gap seen and NACKed → packet
   * in), which is one round trip when the first NACK was answered. Undefined before any recovery.
   */
  get rttMs(): number | undefined {
    return this.#recoveryMs.length ? Math.min(...this.#recoveryMs) : undefined;
  }

  /**
   * How long after a gap is seen its packet can still arrive in answer to a NACK: the last NACK
   * goes out (maxAttempts − 1) retry intervals after the first (plus timer slack), and its answer
   * one round trip later; never longer than maxAgeMs, when the packet is given up. 0 once the
   * sender has shown it does not retransmit (many packets asked for, none came).
   */
  recoveryWindowMs(): number {
    if (this.packetsRequested >= NO_RETRANSMISSION_AFTER && this.packetsRecovered === 0) return 0;
    const lastNackAt = (this.#maxAttempts - 1) * this.#retryIntervalMs + this.#retryIntervalMs / 2;
    const rtt = Math.min(this.rttMs ?? DEFAULT_RTT_MS, this.#maxAgeMs);
    return Math.min(this.#maxAgeMs, Math.ceil(lastNackAt + rtt + WINDOW_MARGIN_MS));
  }

  /** Re-sends NACKs that are due and forgets packets that are too old; run by the internal timer. */
  tick(now = Date.now()): void {
    const due: number[] = [];
    for (const [seq, entry] of this.#missing) {
      if (now - entry.lastSentAt < this.#retryIntervalMs) continue;
      if (entry.attempts >= this.#maxAttempts || now - entry.firstSeenAt >= this.#maxAgeMs) {
        this.#missing.delete(seq);
      } else {
        entry.lastSentAt = now;
        entry.attempts++;
        due.push(seq);
      }
    }
    if (due.length > 0) this.#emit(due);
    if (this.#missing.size === 0) this.#stopTimer();
  }

  close(): void {
    this.#closed = true;
    this.#missing.clear();
    this.#stopTimer();
  }

  #emit(lost: number[]): void {
    this.nacksSent++;
    this.packetsRequested += lost.length;
    this.#send(lost);
  }

  #trim(): void {
    for (const seq of this.#missing.keys()) {
      if (this.#missing.size <= this.#maxMissing) break;
      this.#missing.delete(seq);
    }
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.tick(), Math.max(5, Math.floor(this.#retryIntervalMs / 2)));
    this.#timer.unref();
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Signed distance from `from` to `to` in 16-bit sequence space, in (-32768, 32768]. */
export function seqDistance(from: number, to: number): number {
  const diff = (to - from) & 0xffff;
  return diff > 0x8000 ? diff - 0x10000 : diff;
}
