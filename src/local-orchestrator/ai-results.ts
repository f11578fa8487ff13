// Result files of batch AI requests, kept in memory and served at
// /stream/<requestId>/<name> as go-livepeer's orchestrator serves its memory object store to
// gateways that speak the AI worker protocol (they download the URL in the reply).

/** go-livepeer's aiWorkerResultsTimeout: a request's files are dropped this long after they were stored. */
export const AI_RESULT_TTL_MS = 10 * 60 * 1000;
/** Bound on memory held by results; the oldest go first past it. */
export const AI_RESULT_MAX_BYTES = 256 * 1024 * 1024;
export const AI_RESULT_PATH = '/stream/';

interface Stored {
  data: Buffer;
  contentType: string;
  expires: number;
}

export class AiResultStore {
  private readonly files = new Map<string, Stored>();
  private bytes = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ttlMs = AI_RESULT_TTL_MS,
    private readonly maxBytes = AI_RESULT_MAX_BYTES,
  ) {}

  /** Stores a file under `<requestId>/<name>`; returns the path to serve it at. */
  put(requestId: string, name: string, data: Buffer, contentType: string): string {
    const key = `${requestId}/${name}`;
    this.drop(key);
    this.files.set(key, { data, contentType, expires: Date.now() + this.ttlMs });
    this.bytes += data.length;
    // Map order is insertion order: the first entries are the oldest.
    for (const [k] of this.files) {
      if (this.bytes <= this.maxBytes) break;
      this.drop(k);
    }
    this.timer ??= setInterval(() => this.sweep(), Math.min(this.ttlMs, 60_000)).unref();
    return `${AI_RESULT_PATH}${key}`;
  }

  /** The file at `<requestId>/<name>`, unless it expired. */
  get(key: string): Stored | undefined {
    const f = this.files.get(key);
    if (!f) return undefined;
    if (f.expires <= Date.now()) {
      this.drop(key);
      return undefined;
    }
    return f;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.files.clear();
    this.bytes = 0;
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, f] of this.files) if (f.expires <= now) this.drop(k);
    if (this.files.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private drop(key: string): void {
    const f = this.files.get(key);
    if (!f) return;
    this.bytes -= f.data.length;
    this.files.delete(key);
  }
}
