// Prometheus metrics at GET /metrics. Names follow go-livepeer's where one exists
// (`livepeer_` prefix, ai_live_attempts, ai_first_segment_delay_ms) so its dashboards carry over.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { LiveMetricsHooks, LiveStreams } from '../live/registry.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';

export interface GatewayMetrics {
  registry: Registry;
  live: LiveMetricsHooks;
}

export function createMetrics(sources: {
  streams: () => LiveStreams;
  pool: OrchestratorPool;
}): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'livepeer_gateway_process_' });
  const attempts = new Counter({
    name: 'livepeer_ai_live_attempts',
    help: 'WHIP publish attempts by outcome (started, refused: a 4xx, failed: no orchestrator or an error)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const firstSegmentDelay = new Histogram({
    name: 'livepeer_ai_first_segment_delay_ms',
    help: 'WHIP offer to the first processed frame sent to viewers, in ms',
    buckets: [100, 250, 500, 1000, 2000, 4000, 8000],
    registers: [registry],
  });
  const swaps = new Counter({
    name: 'livepeer_ai_live_orchestrator_swaps',
    help: 'Orchestrator swaps (failovers) of live streams, by who was to blame (orchestrator, network) and what happened (stall, output-closed, first-output-timeout, ...)',
    labelNames: ['blame', 'cause'],
    registers: [registry],
  });
  // Read at scrape time, so nothing is counted on the media path.
  new Gauge({
    name: 'livepeer_ai_live_streams',
    help: 'Live streams by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of sources.streams().list()) this.inc({ state: s.state });
    },
  });
  new Gauge({
    name: 'livepeer_ai_live_viewers',
    help: 'WHEP viewers across all live streams',
    registers: [registry],
    collect() {
      this.set(
        sources
          .streams()
          .list()
          .reduce((n, s) => n + s.viewers, 0),
      );
    },
  });
  new Gauge({
    name: 'livepeer_orchestrators',
    help: 'Known orchestrators by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const o of sources.pool.list()) this.inc({ state: o.state });
    },
  });
  return {
    registry,
    live: {
      attempt: (outcome) => attempts.inc({ outcome }),
      firstOutput: (ms) => firstSegmentDelay.observe(ms),
      swap: (record) => swaps.inc({ blame: record.blame, cause: record.code }),
    },
  };
}
