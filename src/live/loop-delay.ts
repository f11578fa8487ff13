// The gateway's own event-loop delay, measured in one place for every stream: when the loop is
// starved (ticket signing, a CPU hog next door), media stops moving here, and an output gap
// seen then says nothing about the orchestrator. The failover policy reads it before blaming.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Samples kept: 10 s at the default 100 ms. */
const KEPT = 100;

export interface LoopDelaySource {
  /** The longest event-loop delay seen since `since` (Date.now() ms), in ms. */
  maxSince(since: number): number;
}

export class LoopDelayMonitor implements LoopDelaySource {
  readonly #histogram: IntervalHistogram;
  readonly #timer: NodeJS.Timeout;
  readonly #samples: { at: number; maxMs: number }[] = [];
  readonly #sampleMs: number;
  #lastAt = Date.now();

  constructor(sampleMs = 100) {
    this.#sampleMs = sampleMs;
    // libuv's own timer measures how late it runs: every delay counts, not only our sampler's.
    this.#histogram = monitorEventLoopDelay({ resolution: 10 });
    this.#histogram.enable();
    this.#timer = setInterval(() => this.#sample(), sampleMs);
    this.#timer.unref();
  }

  maxSince(since: number): number {
    let max = 0;
    for (let i = this.#samples.length - 1; i >= 0; i--) {
      const s = this.#samples[i];
      if (s.at <= since) break;
      if (s.maxMs > max) max = s.maxMs;
    }
    return max;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#histogram.disable();
  }

  #sample(): void {
    const now = Date.now();
    // The histogram is in ns and reads its 10 ms resolution when idle. A block that starts right
    // after a reset is missed by it, but not by how late this sampler itself runs.
    const late = now - this.#lastAt - this.#sampleMs;
    const maxMs = Math.max(0, this.#histogram.max / 1e6 - 10, late);
    this.#lastAt = now;
    this.#histogram.reset();
    this.#samples.push({ at: now, maxMs });
    if (this.#samples.length > KEPT) this.#samples.shift();
  }
}
