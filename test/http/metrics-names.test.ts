import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/http/metrics.ts';

describe('process metrics', () => {
  it('carry the gateway prefix once (livepeer_gateway_process_*, not process_process_)', () => {
    const m = createMetrics({ streams: () => ({}) as never, pool: {} as never });
    const names = m.registry.getMetricsAsArray().map((x) => (x as unknown as { name: string }).name);
    expect(names).toContain('livepeer_gateway_process_cpu_seconds_total');
    expect(names).toContain('livepeer_gateway_nodejs_eventloop_lag_p99_seconds');
    expect(names.filter((n) => n.includes('process_process_'))).toEqual([]);
  });
});
