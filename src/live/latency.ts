/**
 * Gateway-added latency per frame: from the arrival of a frame's last RTP packet at ingest to
 * the send of the same frame (matched by PTS, which the orchestrator keeps) at egress.
 */
export class FrameLatency {
  private readonly arrivals = new Map<number, number>();
  private readonly samples: number[] = [];
  private next = 0;

  constructor(
    private readonly maxPending = 600,
    private readonly window = 1000,
  ) {}

  frameIn(pts90k: number, atMs: number): void {
    if (this.arrivals.size >= this.maxPending) {
      const oldest = this.arrivals.keys().next().value;
      if (oldest !== undefined) this.arrivals.delete(oldest);
    }
    this.arrivals.set(pts90k, atMs);
  }

  frameOut(pts90k: number, atMs: number): void {
    const arrived = this.arrivals.get(pts90k);
    if (arrived === undefined) return;
    this.arrivals.delete(pts90k);
    if (this.samples.length < this.window) this.samples.push(atMs - arrived);
    else this.samples[this.next++ % this.window] = atMs - arrived;
  }

  /** Percentiles over the last `window` frames, in ms; null before any frame came back. */
  read(): { p50: number; p95: number; frames: number } | null {
    if (!this.samples.length) return null;
    const sorted = [...this.samples].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    return { p50: at(0.5), p95: at(0.95), frames: sorted.length };
  }
}
