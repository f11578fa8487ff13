// Where the pool learns which orchestrators exist. A source only says which URLs (and, when it
// knows, their stake); the pool asks each orchestrator what it offers. An on-chain source (the
// bonded orchestrators and their stake from the BondingManager) fits the same interface.

import type { Logger } from 'pino';
import { Invalid, orchUrl } from '../config/parse.ts';
import { readCapped } from '../http/capped-body.ts';

export interface DiscoveredOrchestrator {
  /** Normalised `https://host:port`. */
  url: string;
  /** Bonded stake in wei, when the source knows it (on-chain); selection favours more stake. */
  stake?: bigint;
}

export interface DiscoverySource {
  /** Shown in status and logs: `orchAddr`, `webhook`, later `onchain`. */
  readonly name: string;
  /** Ask discover() again this often; undefined: the answer never changes. */
  readonly refreshIntervalMs?: number;
  /**
   * The orchestrators this source lists now. Rejects with a one-line reason when the answer is
   * unusable: the pool then logs it and keeps the list this source gave before.
   */
  discover(): Promise<DiscoveredOrchestrator[]>;
}

/** `-orchAddr a,b,c` (or the embedded local orchestrator): a fixed list. */
export class StaticSource implements DiscoverySource {
  private readonly list: DiscoveredOrchestrator[];

  constructor(
    urls: readonly string[],
    readonly name = 'orchAddr',
  ) {
    this.list = urls.map((u) => ({ url: normaliseOrchestratorUrl(u) }));
  }

  async discover(): Promise<DiscoveredOrchestrator[]> {
    return this.list.map((o) => ({ ...o }));
  }
}

export interface WebhookSourceOptions {
  url: string;
  refreshIntervalMs: number;
  timeoutMs: number;
  logger: Logger;
  /** Request headers (e.g. an Authorization the webhook wants). */
  headers?: Record<string, string>;
}

const MAX_WEBHOOK_BYTES = 1024 * 1024;

/**
 * `-orchWebhookUrl`: go-livepeer's orchestrator discovery webhook (discovery/wh_discovery.go).
 * GET the URL; any 2xx answer's body must be a JSON array of `{"address": "https://host:port",
 * "score": 0.5}`. go-livepeer uses `score` only to split trusted from untrusted orchestrators for
 * transcoding verification (live AI takes every score), so it is accepted and ignored here.
 */
export class WebhookSource implements DiscoverySource {
  readonly name = 'webhook';
  readonly refreshIntervalMs: number;

  constructor(private readonly opts: WebhookSourceOptions) {
    this.refreshIntervalMs = opts.refreshIntervalMs;
  }

  async discover(): Promise<DiscoveredOrchestrator[]> {
    let res: Response;
    try {
      res = await fetch(this.opts.url, {
        headers: { accept: 'application/json', ...this.opts.headers },
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        redirect: 'follow',
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const reason =
        e.name === 'TimeoutError'
          ? `no answer within ${this.opts.timeoutMs} ms`
          : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new Error(`webhook request failed: ${reason}`);
    }
    const bytes = await readCapped(res, MAX_WEBHOOK_BYTES);
    if (!bytes) throw new Error(`webhook answer is larger than ${MAX_WEBHOOK_BYTES} bytes`);
    const body = bytes.toString('utf8');
    if (res.status < 200 || res.status >= 300) {
      throw new Error(`webhook answered HTTP ${res.status}${body ? `: ${oneLine(body, 120)}` : ''}`);
    }
    const { orchestrators, skipped } = parseWebhookAnswer(body);
    for (const s of skipped) this.opts.logger.warn({ webhook: this.opts.url }, `orchestrator webhook: ${s}`);
    return orchestrators;
  }
}

/**
 * go-livepeer's webhook answer: a JSON array of `{address, score?}`. As go-livepeer does,
 * entries with an empty address are skipped and so are addresses that are not URLs (each named
 * in `skipped`); a body that is not such an array is refused whole. Stricter than go-livepeer:
 * a non-empty list with no usable address is refused too, rather than emptying the pool.
 */
export function parseWebhookAnswer(body: string): {
  orchestrators: DiscoveredOrchestrator[];
  skipped: string[];
} {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    throw new Error(`webhook answer is not JSON (${(err as Error).message}): ${oneLine(body, 80)}`);
  }
  if (!Array.isArray(doc)) {
    throw new Error(
      `webhook answer must be a JSON array of {"address": "https://host:port"}, got ${kind(doc)}`,
    );
  }
  const orchestrators: DiscoveredOrchestrator[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  doc.forEach((entry: unknown, i) => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      throw new Error(`webhook answer entry ${i} must be an object {"address": ...}, got ${kind(entry)}`);
    }
    const { address, score } = entry as { address?: unknown; score?: unknown };
    if (address !== undefined && address !== null && typeof address !== 'string') {
      throw new Error(`webhook answer entry ${i}: "address" must be a string, got ${kind(address)}`);
    }
    if (score !== undefined && score !== null && typeof score !== 'number') {
      throw new Error(`webhook answer entry ${i}: "score" must be a number, got ${kind(score)}`);
    }
    if (!address) {
      skipped.push(`entry ${i} has no address; skipped`);
      return;
    }
    let url: string;
    try {
      url = normaliseOrchestratorUrl(address);
    } catch (err) {
      skipped.push(`entry ${i} address ${JSON.stringify(address)} ${(err as Error).message}; skipped`);
      return;
    }
    if (seen.has(url)) return;
    seen.add(url);
    orchestrators.push({ url });
  });
  if (doc.length > 0 && orchestrators.length === 0) {
    throw new Error(`webhook answer has no usable orchestrator address (${skipped.join('; ')})`);
  }
  return { orchestrators, skipped };
}

/** `host:port` or `https://host[:port]` → `https://host:port`; throws with a reason. */
export function normaliseOrchestratorUrl(address: string): string {
  try {
    return orchUrl(address.trim());
  } catch (err) {
    if (err instanceof Invalid) throw new Error(err.message);
    throw err;
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
