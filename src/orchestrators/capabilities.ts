import { type Capabilities, Capability, capabilityBitstring, DEFAULT_CAPABILITIES } from '../wire/lp-rpc.ts';

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
