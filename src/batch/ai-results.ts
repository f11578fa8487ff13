// Result files the gateway hosts: go-livepeer's gateway re-saves every image, video and audio an
// orchestrator returns into its own object store and answers with that URL (server/ai_process.go
// processTextToImage et al.). Here: one directory per request under `dir`, removed once older
// than the expiry, served at GET /results/{requestId}/{name}.
import { randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
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

  /** Stores `data` under the request; returns the (sanitised, unique) file name. */
  async save(requestId: string, name: string, data: Uint8Array): Promise<string> {
    const dir = this.requestDir(requestId);
    await mkdir(dir, { recursive: true });
    const safe = sanitiseName(name);
    await writeFile(join(dir, safe), data);
    return safe;
  }

  async exists(requestId: string, name: string): Promise<boolean> {
    const file = this.path(requestId, name);
    if (!file) return false;
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
      return JSON.parse(await readFile(file, 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** A stored file to serve, or undefined when the names are bad, it expired or never existed. */
  async open(
    requestId: string,
    name: string,
  ): Promise<{ stream: ReadStream; size: number; contentType: string } | undefined> {
    const file = this.path(requestId, name);
    if (!file) return undefined;
    try {
      const s = await stat(file);
      if (!s.isFile() || Date.now() - s.mtimeMs > this.opts.ttlMs) return undefined;
      return {
        stream: createReadStream(file),
        size: s.size,
        contentType: CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream',
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
