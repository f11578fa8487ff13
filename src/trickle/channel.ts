import { SEQ_CURRENT, SEQ_NEXT } from './protocol.ts';

/** Segments kept per channel; a late subscriber can start this far behind the live edge. */
export const SEGMENT_RING_SIZE = 5;

type SegmentListener = () => void;

/**
 * One segment of a channel: the chunks received so far and whether the publisher is done.
 * Chunks are kept whole so every subscriber, however late, replays the same bytes.
 */
export class Segment {
  readonly chunks: Uint8Array[] = [];
  byteLength = 0;
  closed = false;
  readonly #listeners = new Set<SegmentListener>();

  constructor(readonly seq: number) {}

  write(chunk: Uint8Array): void {
    // A closed segment's subscribers have already seen its end; late bytes would be lost anyway.
    if (this.closed || chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.byteLength += chunk.byteLength;
    this.#notify();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#notify();
  }

  /** Calls `listener` after every write and on close; returns the unsubscribe function. */
  watch(listener: SegmentListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}

export interface ReadTarget {
  /** The resolved sequence number (aliases -1/-2 replaced). */
  seq: number;
  /** The segment, if it exists (possibly just pre-created for a waiting subscriber). */
  segment: Segment | undefined;
  nextWrite: number;
  closed: boolean;
}

export class Channel {
  readonly #ring: (Segment | undefined)[] = new Array(SEGMENT_RING_SIZE);
  /** The sequence number the publisher writes next: the live edge. */
  nextWrite = 0;
  /** Last time a segment started; drives the idle sweep. */
  lastWriteAt = Date.now();
  closed = false;

  constructor(
    readonly name: string,
    readonly mimeType: string,
  ) {}

  segmentForWrite(requestedSeq: number): Segment {
    const seq = requestedSeq === SEQ_NEXT ? this.nextWrite : requestedSeq;
    const slot = seq % SEGMENT_RING_SIZE;
    const existing = this.#ring[slot];
    // Reuse a segment a subscriber pre-created, or one a retried POST already targeted.
    if (existing && existing.seq === seq && !existing.closed) return existing;
    existing?.close();
    const segment = new Segment(seq);
    this.#ring[slot] = segment;
    return segment;
  }

  segmentForRead(requestedSeq: number): ReadTarget {
    let seq = requestedSeq;
    if (seq === SEQ_NEXT) seq = this.nextWrite;
    else if (seq === SEQ_CURRENT) seq = Math.max(this.nextWrite - 1, 0);
    const slot = seq % SEGMENT_RING_SIZE;
    let segment = this.#ring[slot];
    if (segment?.seq !== seq) segment = undefined;
    // A subscriber just ahead of the publisher waits for the segment instead of failing.
    const atLiveEdge = seq === this.nextWrite || (this.nextWrite === 0 && seq === 1);
    if (!segment && atLiveEdge && !this.closed) {
      this.#ring[slot]?.close();
      segment = new Segment(seq);
      this.#ring[slot] = segment;
    }
    return { seq, segment, nextWrite: this.nextWrite, closed: this.closed };
  }

  /** Called when a publisher's first byte (or an empty body) arrives for `seq`. */
  markWritten(seq: number): void {
    this.nextWrite = seq + 1;
    this.lastWriteAt = Date.now();
  }

  /** Ends segments older than `seq` so subscribers blocked on them move on after a publisher restart. */
  closeSegmentsBefore(seq: number): void {
    for (const segment of this.#ring) {
      if (segment && segment.seq < seq) segment.close();
    }
  }

  /** Returns false if no segment with that sequence number is in the ring. */
  closeSegment(seq: number): boolean {
    const segment = this.#ring[seq % SEGMENT_RING_SIZE];
    if (!segment || segment.seq !== seq) return false;
    segment.close();
    return true;
  }

  close(): void {
    this.closed = true;
    for (let slot = 0; slot < SEGMENT_RING_SIZE; slot++) {
      this.#ring[slot]?.close();
      this.#ring[slot] = undefined;
    }
  }
}
