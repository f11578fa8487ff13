// A small jitter/reorder buffer for one RTP stream, keyed by 16-bit sequence number.
import { seqDiff } from './rtp.ts';

export interface ReorderBufferOptions<T> {
  /** Receives packets in sequence order. */
  onPacket: (packet: T, sequenceNumber: number) => void;
  /** Called, in order, before the packet that follows a gap the buffer gave up waiting for. */
  onLoss?: (firstSequenceNumber: number, count: number) => void;
  /** Give up on a missing packet once this many later packets are waiting. Default 50. */
  maxPackets?: number;
  /** Give up on a missing packet once a later packet has waited this long. Default 100 ms; see `setMaxDelay`. */
  maxDelayMs?: number;
}

export type ReorderPushResult = 'released' | 'buffered' | 'duplicate' | 'late';

export interface ReorderBufferStats {
  received: number;
  released: number;
  /** A packet already buffered, or already released and seen again. */
  duplicates: number;
  /** A packet arriving after its slot was given up (counted in `lost` as well). */
  late: number;
  lost: number;
  /** The sequence number jumped so far that the buffer started over. */
  resyncs: number;
}

/**
 * Releases packets in sequence order. A missing sequence number is held back for at most
 * `maxPackets` packets or `maxDelayMs`, then skipped and reported through `onLoss`.
 * The first packets are held up to the same limits, so a stream whose first packets arrive out
 * of order still starts at its lowest sequence number.
 * Time is passed in (`nowMs`), so the buffer does no I/O; call `poll()` from a timer so a
 * gap followed by silence is still released.
 */
export class ReorderBuffer<T> {
  readonly stats: ReorderBufferStats = {
    received: 0,
    released: 0,
    duplicates: 0,
    late: 0,
    lost: 0,
    resyncs: 0,
  };

  private readonly onPacket: (packet: T, sequenceNumber: number) => void;
  private readonly onLoss: ((firstSequenceNumber: number, count: number) => void) | undefined;
  private readonly maxPackets: number;
  private maxDelayMs: number;
  private readonly slots: (T | undefined)[];
  private readonly arrivals: Float64Array;
  private readonly mask: number;
  private started = false;
  /**
   * Until the first release, hold packets (up to maxPackets / maxDelayMs) so that packets
   * overtaken by the very first one are not lost: the stream starts at the lowest seen.
   */
  private startingUp = false;
  private startupSinceMs = 0;
  /** The next sequence number to release. */
  private next = 0;
  /** Highest buffered sequence number; meaningful when `count > 0`. */
  private highest = 0;
  private count = 0;
  /** Recently released sequence numbers, to tell duplicates from packets that came too late. */
  private readonly releasedRecently: Uint8Array = new Uint8Array(8192);

  constructor(options: ReorderBufferOptions<T>) {
    this.onPacket = options.onPacket;
    this.onLoss = options.onLoss;
    this.maxPackets = Math.max(1, options.maxPackets ?? 50);
    this.maxDelayMs = options.maxDelayMs ?? 100;
    let capacity = 16;
    while (capacity < this.maxPackets * 2) capacity *= 2;
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
    this.arrivals = new Float64Array(capacity);
    this.mask = capacity - 1;
  }

  /** How long a missing packet is waited for, ms. */
  get maxDelay(): number {
    return this.maxDelayMs;
  }

  /**
   * Changes how long a missing packet is waited for (e.g. as long as a NACK can still be
   * answered, which depends on the measured round trip). Takes effect at the next push or poll.
   */
  setMaxDelay(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`reorder delay must be ≥ 0 ms, got ${ms}`);
    this.maxDelayMs = ms;
  }

  /** Packets waiting behind a gap. */
  get buffered(): number {
    return this.count;
  }

  push(sequenceNumber: number, packet: T, nowMs: number = performance.now()): ReorderPushResult {
    const seq = sequenceNumber & 0xffff;
    this.stats.received++;
    if (!this.started) {
      this.started = true;
      this.startingUp = true;
      this.startupSinceMs = nowMs;
      this.next = seq;
    }
    let diff = seqDiff(seq, this.next);
    if (this.startingUp && diff < 0 && seqDiff(this.highest, seq) < this.slots.length) {
      // Nothing released yet: an earlier packet simply becomes the start of the stream.
      this.next = seq;
      diff = 0;
    }
    if (diff < 0) {
      if (diff >= -this.slots.length) return this.rejectOld(seq);
      // Far behind: the sender restarted its sequence numbers.
      this.resync(seq);
      this.release(packet, seq);
      return 'released';
    }
    if (diff === 0 && !this.startingUp) {
      this.release(packet, seq);
      this.drainReady();
      this.expireWaiting(nowMs);
      return 'released';
    }
    if (diff >= this.slots.length) {
      this.resync(seq);
      this.release(packet, seq);
      return 'released';
    }
    const index = seq & this.mask;
    if (this.slots[index] !== undefined) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.slots[index] = packet;
    this.arrivals[index] = nowMs;
    if (this.count === 0 || seqDiff(seq, this.highest) > 0) this.highest = seq;
    this.count++;
    if (this.startingUp) {
      const waited = nowMs - this.startupSinceMs;
      if (seqDiff(this.highest, this.next) + 1 < this.maxPackets && waited < this.maxDelayMs)
        return 'buffered';
      this.endStartup();
    }
    const span = this.count > 0 ? seqDiff(this.highest, this.next) : 0;
    if (span >= this.maxPackets) {
      this.advance(span - this.maxPackets + 1);
      this.drainReady();
    }
    this.expireWaiting(nowMs);
    return this.slots[index] === undefined ? 'released' : 'buffered';
  }

  /** Releases packets whose missing predecessor has been waited for longer than `maxDelayMs`. */
  poll(nowMs: number = performance.now()): void {
    if (this.startingUp && nowMs - this.startupSinceMs >= this.maxDelayMs) this.endStartup();
    this.expireWaiting(nowMs);
  }

  /** Releases everything buffered, reporting the gaps (e.g. at end of stream). */
  flush(): void {
    if (this.startingUp) this.endStartup();
    if (this.count > 0) this.advance(seqDiff(this.highest, this.next) + 1);
  }

  /** Forgets all state; buffered packets are dropped. */
  reset(): void {
    this.slots.fill(undefined);
    this.releasedRecently.fill(0);
    this.count = 0;
    this.started = false;
    this.startingUp = false;
  }

  private endStartup(): void {
    this.startingUp = false;
    this.drainReady();
  }

  private rejectOld(seq: number): ReorderPushResult {
    if (this.releasedRecently[seq >> 3] & (1 << (seq & 7))) {
      this.stats.duplicates++;
      return 'duplicate';
    }
    this.stats.late++;
    return 'late';
  }

  private resync(seq: number): void {
    this.flush();
    this.stats.resyncs++;
    this.releasedRecently.fill(0);
    this.next = seq;
  }

  private release(packet: T, seq: number): void {
    this.releasedRecently[seq >> 3] |= 1 << (seq & 7);
    // Clear the bit half the sequence space ahead so the bitmap never reports stale duplicates.
    const stale = (seq + 0x8000) & 0xffff;
    this.releasedRecently[stale >> 3] &= ~(1 << (stale & 7));
    this.next = (seq + 1) & 0xffff;
    this.stats.released++;
    this.onPacket(packet, seq);
  }

  private drainReady(): void {
    while (this.count > 0) {
      const index = this.next & this.mask;
      const packet = this.slots[index];
      if (packet === undefined) return;
      this.slots[index] = undefined;
      this.count--;
      this.release(packet, this.next);
    }
  }

  /** Moves `steps` sequence numbers forward, releasing what is there and reporting what is not. */
  private advance(steps: number): void {
    let lossStart = -1;
    let lossCount = 0;
    for (let i = 0; i < steps; i++) {
      const seq = this.next;
      const index = seq & this.mask;
      const packet = this.slots[index];
      if (packet === undefined) {
        if (lossCount === 0) lossStart = seq;
        lossCount++;
        this.next = (seq + 1) & 0xffff;
        continue;
      }
      if (lossCount > 0) {
        this.reportLoss(lossStart, lossCount);
        lossCount = 0;
      }
      this.slots[index] = undefined;
      this.count--;
      this.release(packet, seq);
    }
    if (lossCount > 0) this.reportLoss(lossStart, lossCount);
  }

  private reportLoss(first: number, count: number): void {
    this.stats.lost += count;
    this.onLoss?.(first, count);
  }

  private expireWaiting(nowMs: number): void {
    while (this.count > 0) {
      // The next packet present after the gap; it is the one that has waited longest in practice.
      let gap = 1;
      let index = (this.next + 1) & this.mask;
      while (this.slots[index] === undefined) {
        gap++;
        index = (this.next + gap) & this.mask;
      }
      if (nowMs - this.arrivals[index] < this.maxDelayMs) return;
      this.advance(gap);
      this.drainReady();
    }
  }
}
