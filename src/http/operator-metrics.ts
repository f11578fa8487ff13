// Prometheus metrics of the operator interfaces: stream events delivered and dropped (webhook,
// SSE), the heartbeat, and whether the gateway is draining. Read at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventsWebhook } from '../live/events-webhook.ts';
import type { Heartbeat } from '../live/heartbeat.ts';
import type { SseClients } from './operator-routes.ts';

export interface OperatorMetricSources {
  events?: EventsWebhook;
  sse: SseClients;
  heartbeat?: () => Heartbeat | undefined;
  draining: () => boolean;
}

export function operatorMetrics(registry: Registry, s: OperatorMetricSources): void {
  new Counter({
    name: 'livepeer_gateway_stream_events_delivered_total',
    help: 'Stream events delivered, by sink (webhook: acknowledged with a 2xx; sse: written to a client)',
    labelNames: ['sink'],
    registers: [registry],
    collect() {
      this.reset();
      if (s.events) this.inc({ sink: 'webhook' }, s.events.stats().delivered);
      this.inc({ sink: 'sse' }, s.sse.stats().sent);
    },
  });
  new Counter({
    name: 'livepeer_gateway_stream_events_dropped_total',
    help: 'Stream events dropped: webhook queue_full (oldest first) or failed (every retry failed, or refused); sse slow_client (clients dropped)',
    labelNames: ['sink', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      if (s.events) {
        const w = s.events.stats();
        this.inc({ sink: 'webhook', reason: 'queue_full' }, w.droppedQueueFull);
        this.inc({ sink: 'webhook', reason: 'failed' }, w.droppedFailed);
      }
      this.inc({ sink: 'sse', reason: 'slow_client' }, s.sse.stats().dropped);
    },
  });
  new Gauge({
    name: 'livepeer_gateway_stream_events_queued',
    help: 'Stream events waiting for the events webhook',
    registers: [registry],
    collect() {
      this.set(s.events?.stats().queued ?? 0);
    },
  });
  new Gauge({
    name: 'livepeer_gateway_stream_events_clients',
    help: 'Clients reading /live/events',
    registers: [registry],
    collect() {
      this.set(s.sse.stats().clients);
    },
  });
  new Counter({
    name: 'livepeer_ai_live_heartbeats_total',
    help: 'Heartbeats to liveAIHeartbeatURL by outcome (sent: answered 2xx; failed), and streams the answers terminated',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      this.reset();
      const h = s.heartbeat?.()?.stats();
      if (!h) return;
      this.inc({ outcome: 'sent' }, h.sent);
      this.inc({ outcome: 'failed' }, h.failed);
      this.inc({ outcome: 'terminated' }, h.terminated);
    },
  });
  new Gauge({
    name: 'livepeer_gateway_draining',
    help: '1 while the gateway is shutting down (new streams and jobs refused)',
    registers: [registry],
    collect() {
      this.set(s.draining() ? 1 : 0);
    },
  });
}
