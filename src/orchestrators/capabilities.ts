import {
  type Capabilities,
  Capability,
  capabilityBitstring,
  DEFAULT_CAPABILITIES,
  hasCapability,
  type OrchestratorInfo,
} from '../wire/lp-rpc.ts';

/**
 * What a job needs: a capability (src/wire/lp-rpc.ts `Capability`) and, for AI pipelines, the
 * model id. `modelId: ''` means no model constraint (segment transcoding).
 */
export interface JobKind {
  capability: number;
  modelId: string;
}

export const liveKind = (modelId: string): JobKind => ({ capability: Capability.LiveVideoToVideo, modelId });

/** What a gateway asks GetOrchestrator for a job, as go-livepeer's gateway builds it. */
export function jobCapabilities(kind: JobKind): Capabilities {
  const caps: number[] = [...DEFAULT_CAPABILITIES];
  if (!caps.includes(kind.capability)) caps.push(kind.capability);
  return {
    bitstring: capabilityBitstring(caps),
    capacities: Object.fromEntries(caps.map((c) => [c, 1])),
    ...(kind.modelId === ''
      ? {}
      : {
          constraints: {
            PerCapability: { [kind.capability]: { models: { [kind.modelId]: { warm: false } } } },
          },
        }),
  };
}

/** What a gateway asks for a live job with `modelId`. */
export const liveJobCapabilities = (modelId: string): Capabilities => jobCapabilities(liveKind(modelId));

/** Model ids an orchestrator offers for `capability` (its bit and its per-model constraints). */
export function offeredModels(info: OrchestratorInfo | undefined, capability: number): string[] {
  if (!hasCapability(info?.capabilities?.bitstring, capability)) return [];
  const perCap = info?.capabilities?.constraints?.PerCapability?.[String(capability)];
  return Object.keys(perCap?.models ?? {});
}

/** Model ids an orchestrator offers for live-video-to-video. */
export const liveModels = (info: OrchestratorInfo | undefined): string[] =>
  offeredModels(info, Capability.LiveVideoToVideo);

/** Whether `info` can run `kind`: the capability bit, and the model when one is named. */
export function offers(info: OrchestratorInfo | undefined, kind: JobKind): boolean {
  if (!hasCapability(info?.capabilities?.bitstring, kind.capability)) return false;
  return kind.modelId === '' || offeredModels(info, kind.capability).includes(kind.modelId);
}

/** Human name of a capability for messages. */
export function capabilityName(capability: number): string {
  const name = Object.entries(Capability).find(([, id]) => id === capability)?.[0];
  return name ?? `capability ${capability}`;
}
