// The orchestrators this gateway knows, each with its last GetOrchestrator answer (or why
// there is none). Refreshed in parallel with a bounded fan-out; answers have a max age.
import type { Logger } from 'pino';
import type { GatewayIdentity } from '../payments/identity.ts';
import { Capability, hasCapability, type OrchestratorInfo } from '../wire/lp-rpc.ts';
import { OrchestratorError } from './errors.ts';
import { getOrchestrator } from './grpc-client.ts';

export interface OrchestratorEntry {
  url: string;
  info?: OrchestratorInfo;
  /** Round trip of the last successful GetOrchestrator. */
  latencyMs?: number;
  fetchedAt?: number;
  error?: string;
}

export interface DirectoryOptions {
  identity: GatewayIdentity;
  timeoutMs: number;
  maxAgeMs: number;
  concurrency: number;
  logger: Logger;
}

export class OrchestratorDirectory {
  private readonly entries = new Map<string, OrchestratorEntry>();

  constructor(
    urls: readonly string[],
    private readonly opts: DirectoryOptions,
  ) {
    for (const url of urls) this.entries.set(url, { url });
  }

  list(): OrchestratorEntry[] {
    return [...this.entries.values()];
  }

  /** Fetches every entry older than maxAge (all of them with `force`). */
  async refresh(force = false): Promise<OrchestratorEntry[]> {
    const now = Date.now();
    const stale = this.list().filter((e) => force || !e.fetchedAt || now - e.fetchedAt > this.opts.maxAgeMs);
    let next = 0;
    const worker = async () => {
      while (next < stale.length) await this.fetch(stale[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, stale.length) }, worker));
    return this.list();
  }

  private async fetch(entry: OrchestratorEntry): Promise<void> {
    const started = Date.now();
    try {
      entry.info = await getOrchestrator(entry.url, {
        identity: this.opts.identity,
        timeoutMs: this.opts.timeoutMs,
      });
      entry.latencyMs = Date.now() - started;
      entry.error = undefined;
    } catch (err) {
      entry.info = undefined;
      entry.latencyMs = undefined;
      entry.error = err instanceof OrchestratorError ? `${err.kind}: ${err.message}` : String(err);
      this.opts.logger.warn({ orchestrator: entry.url, err: entry.error }, 'GetOrchestrator failed');
    }
    entry.fetchedAt = Date.now();
  }
}

/** Model ids an orchestrator offers for live-video-to-video. */
export function liveModels(info: OrchestratorInfo | undefined): string[] {
  if (!hasCapability(info?.capabilities?.bitstring, Capability.LiveVideoToVideo)) return [];
  const perCap = info?.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)];
  return Object.keys(perCap?.models ?? {});
}
