// Picks an orchestrator for a live job: the first one (in directory order) that answers
// GetOrchestrator for the model. Scoring and price ceilings come with multi-orchestrator support.
import type { GatewayIdentity } from '../payments/identity.ts';
import type { OrchestratorInfo } from '../wire/lp-rpc.ts';
import { liveJobCapabilities } from './capabilities.ts';
import { liveModels, type OrchestratorDirectory } from './directory.ts';
import { OrchestratorError } from './errors.ts';
import { getOrchestrator } from './grpc-client.ts';

export interface SelectedOrchestrator {
  url: string;
  info: OrchestratorInfo;
}

export class NoOrchestratorError extends Error {
  constructor(
    readonly modelId: string,
    readonly reasons: string[],
  ) {
    super(
      reasons.length
        ? `no orchestrator can run model "${modelId}": ${reasons.join('; ')}`
        : `no orchestrator is configured for model "${modelId}"`,
    );
  }
}

export async function selectLiveOrchestrator(
  directory: OrchestratorDirectory,
  modelId: string,
  opts: { identity: GatewayIdentity; timeoutMs: number; exclude?: ReadonlySet<string> },
): Promise<SelectedOrchestrator> {
  const reasons: string[] = [];
  for (const entry of directory.list()) {
    if (opts.exclude?.has(entry.url)) continue;
    try {
      // Asked fresh each time: the reply carries the auth token the job start needs.
      const info = await getOrchestrator(entry.url, {
        identity: opts.identity,
        timeoutMs: opts.timeoutMs,
        capabilities: liveJobCapabilities(modelId),
      });
      if (!liveModels(info).includes(modelId)) {
        reasons.push(`${entry.url} does not offer it`);
        continue;
      }
      return { url: entry.url, info };
    } catch (err) {
      reasons.push(err instanceof OrchestratorError ? err.message : String(err));
    }
  }
  throw new NoOrchestratorError(modelId, reasons);
}
