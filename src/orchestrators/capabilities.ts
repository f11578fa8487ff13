import {
  type Capabilities,
  Capability,
  capabilityBitstring,
  DEFAULT_CAPABILITIES,
  hasCapability,
  type OrchestratorInfo,
} from '../wire/lp-rpc.ts';

/** What a gateway asks for a live job with `modelId`, as go-livepeer's gateway builds it. */
export function liveJobCapabilities(modelId: string): Capabilities {
  const caps = [...DEFAULT_CAPABILITIES, Capability.LiveVideoToVideo];
  return {
    bitstring: capabilityBitstring(caps),
    capacities: Object.fromEntries(caps.map((c) => [c, 1])),
    constraints: {
      PerCapability: { [Capability.LiveVideoToVideo]: { models: { [modelId]: { warm: false } } } },
    },
  };
}

/** Model ids an orchestrator offers for live-video-to-video (bit 35 and its per-model constraints). */
export function liveModels(info: OrchestratorInfo | undefined): string[] {
  if (!hasCapability(info?.capabilities?.bitstring, Capability.LiveVideoToVideo)) return [];
  const perCap = info?.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)];
  return Object.keys(perCap?.models ?? {});
}
