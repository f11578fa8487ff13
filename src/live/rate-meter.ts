/** Frames and bytes per second over a sliding window of one-second buckets. */
export class RateMeter {
  private readonly frames: number[];
  private readonly bytes: number[];
  private second = Math.floor(Date.now() / 1000);

  constructor(private readonly windowSeconds = 5) {
    this.frames = new Array(windowSeconds).fill(0);
    this.bytes = new Array(windowSeconds).fill(0);
  }

  add(byteCount: number): void {
    this.advance();
    const i = this.second % this.windowSeconds;
    this.frames[i]++;
    this.bytes[i] += byteCount;
  }

  /** Rates over the last full seconds (the current, partial second is left out). */
  read(): { fps: number; bitrateKbps: number } {
    this.advance();
    const current = this.second % this.windowSeconds;
    let frames = 0;
    let bytes = 0;
    for (let i = 0; i < this.windowSeconds; i++) {
      if (i === current) continue;
      frames += this.frames[i];
      bytes += this.bytes[i];
    }
    const seconds = this.windowSeconds - 1;
    return {
      fps: Math.round((frames / seconds) * 10) / 10,
      bitrateKbps: Math.round((bytes * 8) / seconds / 1000),
    };
  }

  private advance(): void {
    const now = Math.floor(Date.now() / 1000);
    for (let s = this.second + 1; s <= now && s <= this.second + this.windowSeconds; s++) {
      this.frames[s % this.windowSeconds] = 0;
      this.bytes[s % this.windowSeconds] = 0;
    }
    this.second = now;
  }
}
