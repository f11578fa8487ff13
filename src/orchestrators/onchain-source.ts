// `onchain` discovery: the BondingManager's transcoder pool (spec livepeer-pm.md §5.3), keeping
// the active orchestrators that publish a service URI in the AI ServiceRegistry, with their stake.
import type { Logger } from 'pino';
import type { LivepeerChain, PoolTranscoder } from '../payments/chain.ts';
import { type DiscoveredOrchestrator, type DiscoverySource, normaliseOrchestratorUrl } from './discovery.ts';

export interface OnChainSourceOptions {
  /** Only transcoderPool() is used. */
  chain: Pick<LivepeerChain, 'transcoderPool'>;
  /** Read the pool again this often; default 10 minutes (the pool changes once a round, ~19 h). */
  refreshIntervalMs?: number;
  logger: Logger;
}

export class OnChainSource implements DiscoverySource {
  readonly name = 'onchain';
  readonly refreshIntervalMs: number;

  constructor(private readonly opts: OnChainSourceOptions) {
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 10 * 60_000;
  }

  async discover(): Promise<DiscoveredOrchestrator[]> {
    let pool: PoolTranscoder[];
    try {
      pool = await this.opts.chain.transcoderPool();
    } catch (err) {
      throw new Error(`reading the transcoder pool failed: ${(err as Error).message}`);
    }
    const { orchestrators, skipped } = selectActive(pool);
    for (const s of skipped) this.opts.logger.warn({ source: this.name }, `on-chain orchestrator: ${s}`);
    if (pool.some((t) => t.active) && orchestrators.length === 0) {
      throw new Error('no active orchestrator in the transcoder pool publishes a usable service URI');
    }
    return orchestrators;
  }
}

/**
 * The active transcoders with a usable service URI, most stake first. An inactive one, or one
 * without a URI, is left out silently (many bonded orchestrators do no AI work); a URI that is not
 * a URL is named in `skipped`. When two share a URL the larger stake is kept.
 */
export function selectActive(pool: readonly PoolTranscoder[]): {
  orchestrators: DiscoveredOrchestrator[];
  skipped: string[];
} {
  const byUrl = new Map<string, bigint>();
  const skipped: string[] = [];
  for (const t of pool) {
    if (!t.active || !t.serviceUri.trim()) continue;
    let url: string;
    try {
      url = normaliseOrchestratorUrl(t.serviceUri);
    } catch (err) {
      skipped.push(
        `${t.address} service URI ${JSON.stringify(t.serviceUri)} ${(err as Error).message}; skipped`,
      );
      continue;
    }
    const prev = byUrl.get(url);
    if (prev === undefined || t.stake > prev) byUrl.set(url, t.stake);
  }
  const orchestrators = [...byUrl].map(([url, stake]) => ({ url, stake }));
  orchestrators.sort((a, b) => (a.stake === b.stake ? 0 : a.stake > b.stake ? -1 : 1));
  return { orchestrators, skipped };
}
