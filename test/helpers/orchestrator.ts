// The local orchestrator most tests run against: on loopback, free (no payments), 4 slots.
import type { Logger } from 'pino';
import { LocalOrchestrator, type LocalOrchestratorOptions } from '../../src/local-orchestrator/server.ts';

export function startFreeOrchestrator(
  logger: Logger,
  models: string[] = ['passthrough'],
  more: Partial<LocalOrchestratorOptions> = {},
): Promise<LocalOrchestrator> {
  return LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models,
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    ...more,
  });
}
