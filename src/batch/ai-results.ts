// Result files the gateway hosts: go-livepeer's gateway re-saves every image, video and audio an
// orchestrator returns into its own object store and answers with that URL (server/ai_process.go
// processTextToImage et al.). Here: one directory per request under `dir`, removed once older
// than the expiry, served at GET /results/{requestId}/{name}. A saved file is served from memory
// until it is on disk, so answering a request never waits for the disk.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';

const REQUEST_ID = /^[0-9a-f]{16}$/;
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.flac': 'audio/flac',
  '.json': 'application/json',
};

const EXTENSIONS: Record<string, string> = Object.fromEntries(
  Object.entries(CONTENT_TYPES).map(([ext, type]) => [type, ext]),
);

export const newRequestId = (): string => randomBytes(8).toString('hex');

/** File extension for a MIME type ('.bin' when unknown). */
export const extensionFor = (contentType: string): string =>
  EXTENSIONS[contentType.split(';')[0]!.trim().toLowerCase()] ??
  (contentType.startsWith('audio/') ? '.wav' : '.bin');

export interface ResultStoreOptions {
  dir: string;
  /** A request's files are removed once this old. */
  ttlMs: number;
  logger: Logger;
}

export class ResultStore {
  private timer?: NodeJS.Timeout;
  /** Files saved but maybe not yet written, by path: served from here meanwhile. */
  private readonly pending = new Map<string, { data: Uint8Array; at: number }>();
  private readonly writes = new Set<Promise<void>>();

  constructor(private readonly opts: ResultStoreOptions) {}

  get dir(): string {
    return this.opts.dir;
  }

  /** Creates the directory, clears expired results and starts the sweeper. */
  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    await this.sweep();
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.opts.ttlMs / 4)));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Resolves once every file saved so far is on disk (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  /**
   * Stores `data` under the request and returns the (sanitised) file name at once; the file is
   * served from memory until the disk write lands. A failed write is logged, and the file is then
   * served from memory until it expires.
   */
  async save(requestId: string, name: string, data: Uint8Array): Promise<string> {
    const dir = this.requestDir(requestId);
    const safe = sanitiseName(name);
    const file = join(dir, safe);
    this.pending.set(file, { data, at: Date.now() });
    const write = (async () => {
      try {
        await mkdir(dir, { recursive: true });
        await writeFile(file, data);
        this.pending.delete(file);
      } catch (err) {
        this.opts.logger.warn({ file, err: (err as Error).message }, 'saving a batch result failed');
      }
    })();
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    return safe;
  }

  async exists(requestId: string, name: string): Promise<boolean> {
    const file = this.path(requestId, name);
    if (!file) return false;
    if (this.fresh(file)) return true;
    try {
      return (await stat(file)).isFile();
    } catch {
      return false;
    }
  }

  async readJson(requestId: string, name: string): Promise<unknown | undefined> {
    const file = this.path(requestId, name);
    if (!file) return undefined;
    try {
      const kept = this.fresh(file);
      if (kept) return JSON.parse(Buffer.from(kept).toString('utf8'));
      return JSON.parse(await readFile(file, 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** A stored file to serve, or undefined when the names are bad, it expired or never existed. */
  async open(
    requestId: string,
    name: string,
  ): Promise<{ stream: Readable | Buffer; size: number; contentType: string } | undefined> {
    const file = this.path(requestId, name);
    if (!file) return undefined;
    const contentType = CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
    const kept = this.fresh(file);
    if (kept)
      return {
        stream: Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength),
        size: kept.byteLength,
        contentType,
      };
    try {
      const s = await stat(file);
      if (!s.isFile() || Date.now() - s.mtimeMs > this.opts.ttlMs) return undefined;
      return {
        stream: createReadStream(file),
        size: s.size,
        contentType,
      };
    } catch {
      return undefined;
    }
  }

  /** Removes request directories older than the expiry. */
  async sweep(): Promise<number> {
    let removed = 0;
    let entries: string[];
    try {
      entries = await readdir(this.opts.dir);
    } catch {
      return 0;
    }
    const now = Date.now();
    for (const [file, kept] of this.pending) if (now - kept.at > this.opts.ttlMs) this.pending.delete(file);
    for (const id of entries) {
      if (!REQUEST_ID.test(id)) continue;
      const dir = join(this.opts.dir, id);
      try {
        const s = await stat(dir);
        if (now - s.mtimeMs > this.opts.ttlMs) {
          await rm(dir, { recursive: true, force: true });
          removed++;
        }
      } catch {
        // removed meanwhile
      }
    }
    if (removed) this.opts.logger.debug({ removed }, 'expired batch results removed');
    return removed;
  }

  /** The bytes of a file saved but not yet on disk, unless expired. */
  private fresh(file: string): Uint8Array | undefined {
    const kept = this.pending.get(file);
    return kept && Date.now() - kept.at <= this.opts.ttlMs ? kept.data : undefined;
  }

  private requestDir(requestId: string): string {
    if (!REQUEST_ID.test(requestId)) throw new Error(`bad request id ${requestId}`);
    return join(this.opts.dir, requestId);
  }

  private path(requestId: string, name: string): string | undefined {
    if (!REQUEST_ID.test(requestId) || !FILE_NAME.test(name) || name.includes('..')) return undefined;
    return join(this.opts.dir, requestId, name);
  }
}

/** A file name safe in a path and a URL: the last path segment, odd characters replaced. */
export function sanitiseName(name: string): string {
  const base = name.split(/[\\/]/).pop() ?? '';
  let safe = base.replace(/[^A-Za-z0-9._-]/g, '_').replace(/\.{2,}/g, '.');
  safe = safe.replace(/^[._-]+/, '');
  if (safe === '') safe = `${newRequestId()}.bin`;
  return safe.slice(-128);
}
