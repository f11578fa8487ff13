// Prometheus metrics at GET /metrics. Names follow go-livepeer's where one exists
// (`livepeer_` prefix, ai_live_attempts, ai_first_segment_delay_ms) so its dashboards carry over.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { DataPlaneTotals } from '../live/data-status.ts';
import type { LiveMetricsHooks, LiveStreams } from '../live/registry.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import { type OperatorMetricSources, operatorMetrics } from './operator-metrics.ts';

export interface GatewayMetrics {
  registry: Registry;
  live: LiveMetricsHooks;
}

export function createMetrics(sources: {
  streams: () => LiveStreams;
  pool: OrchestratorPool;
  operator?: OperatorMetricSources;
}): GatewayMetrics {
  const registry = new Registry();
  if (sources.operator) operatorMetrics(registry, sources.operator);
  // prom-client's own names start with process_ or nodejs_: the prefix names only the gateway.
  collectDefaultMetrics({ register: registry, prefix: 'livepeer_gateway_' });
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
  // Read at scrape time, so nothing is counted on the media path. One scrape reads many gauges:
  // every stream's status (and the data-plane sums) is built once per scrape, not once per gauge.
  const statuses = perScrape(() => sources.streams().list());
  new Gauge({
    name: 'livepeer_ai_live_streams',
    help: 'Live streams by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of statuses()) this.inc({ state: s.state });
    },
  });
  new Gauge({
    name: 'livepeer_ai_live_viewers',
    help: 'WHEP viewers across all live streams',
    registers: [registry],
    collect() {
      this.set(statuses().reduce((n, s) => n + s.viewers, 0));
    },
  });
  // Data-plane counters, summed over all streams (ended ones included) when scraped.
  const totals = perScrape(() => sources.streams().dataTotals());
  const counter = (name: string, help: string, value: (t: DataPlaneTotals) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(value(totals()));
      },
    });
  new Counter({
    name: 'livepeer_ai_live_input_frames_dropped_total',
    help: 'Input video frames that did not reach the orchestrator, by reason: loss (packet loss NACKs did not repair) or backpressure (its connection was backed up past the bound)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      const t = totals();
      this.reset();
      this.inc({ reason: 'loss' }, t.inputFramesDroppedLoss);
      this.inc({ reason: 'backpressure' }, t.inputFramesDroppedBackpressure);
    },
  });
  counter(
    'livepeer_ai_live_input_packets_lost_total',
    'Publisher RTP packets lost (RFC 3550 cumulative loss at the ingest peers)',
    (t) => t.inputPacketsLost,
  );
  counter(
    'livepeer_ai_live_input_nacks_sent_total',
    'NACK packets sent to publishers',
    (t) => t.inputNacksSent,
  );
  counter(
    'livepeer_ai_live_input_packets_recovered_total',
    'Missing publisher packets that arrived after a NACK',
    (t) => t.inputPacketsRecovered,
  );
  counter(
    'livepeer_ai_live_input_keyframe_requests_total',
    'PLIs sent to publishers',
    (t) => t.inputKeyframeRequests,
  );
  counter(
    'livepeer_ai_live_gop_replays_total',
    'Orchestrator jobs that got the cached input GOP at once (stream start or failover)',
    (t) => t.gopReplays,
  );
  counter(
    'livepeer_ai_live_output_frames_dropped_total',
    'Output video frames skipped for viewers that could not keep up, summed over viewers',
    (t) => t.outputFramesDropped,
  );
  counter(
    'livepeer_ai_live_output_keyframe_requests_total',
    'PLI and FIR from WHEP viewers',
    (t) => t.outputKeyframeRequests,
  );
  counter(
    'livepeer_ai_live_output_nacks_received_total',
    'NACK packets from WHEP viewers',
    (t) => t.outputNacksReceived,
  );
  counter(
    'livepeer_ai_live_output_retransmitted_packets_total',
    'Packets resent to WHEP viewers in answer to NACKs',
    (t) => t.outputRetransmittedPackets,
  );
  counter(
    'livepeer_ai_live_output_packets_lost_total',
    'Packets WHEP viewers reported lost (receiver reports)',
    (t) => t.outputPacketsLost,
  );
  new Gauge({
    name: 'livepeer_ai_live_rtt_seconds',
    help: 'Round trips of the live streams now: publishers (gap → NACKed packet in) and viewers (RTCP), mean and max',
    labelNames: ['peer', 'stat'],
    registers: [registry],
    collect() {
      this.reset();
      const all = statuses();
      const publishers = all.flatMap((s) => (s.input.rtp?.rttMs == null ? [] : [s.input.rtp.rttMs]));
      const viewers = all.flatMap((s) => s.output.viewers.flatMap((v) => (v.rttMs == null ? [] : [v.rttMs])));
      for (const [peer, values] of [
        ['publisher', publishers],
        ['viewer', viewers],
      ] as const) {
        if (!values.length) continue;
        this.set({ peer, stat: 'mean' }, values.reduce((a, b) => a + b, 0) / values.length / 1000);
        this.set({ peer, stat: 'max' }, Math.max(...values) / 1000);
      }
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

/** `read()`'s value, computed at most once per 250 ms: all the gauges of one scrape share it. */
function perScrape<T>(read: () => T): () => T {
  let memo: { at: number; value: T } | undefined;
  return () => {
    const now = Date.now();
    if (!memo || now - memo.at > 250) memo = { at: now, value: read() };
    return memo.value;
  };
}
