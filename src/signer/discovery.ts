// GET /discover-orchestrators (with -remoteDiscovery): go-livepeer's discovery webhook answer
// (server/remote_signer.go GetOrchestrators): `[{"address", "score", "capabilities"}]`, the
// capabilities as `<pipeline>/<model>`, only those priced within the signer's ceilings; repeated
// `caps=` query values select orchestrators offering any of them.
import { offeredModels } from '../orchestrators/capabilities.ts';
import type { OrchestratorPool } from '../orchestrators/pool.ts';
import { isUnpriceable, jobPrice, type PriceCeiling } from '../orchestrators/price.ts';
import { Capability, type OrchestratorInfo } from '../wire/lp-rpc.ts';

/** go-livepeer's pipeline names: the capability's name, lower-cased, spaces as `-`. */
const PIPELINES: [number, string][] = [
  [Capability.TextToImage, 'text-to-image'],
  [Capability.ImageToImage, 'image-to-image'],
  [Capability.ImageToVideo, 'image-to-video'],
  [Capability.Upscale, 'upscale'],
  [Capability.AudioToText, 'audio-to-text'],
  [Capability.SegmentAnything2, 'segment-anything-2'],
  [Capability.LLM, 'llm'],
  [Capability.ImageToText, 'image-to-text'],
  [Capability.LiveVideoToVideo, 'live-video-to-video'],
  [Capability.TextToSpeech, 'text-to-speech'],
];

/** go-livepeer's common.Score_Trusted, the legacy webhook field. */
const SCORE_TRUSTED = 1;

/** `<pipeline>/<model>` for every model `info` offers at a price within `ceiling` (a price is required). */
export function pricedCapabilities(info: OrchestratorInfo, ceiling: PriceCeiling): string[] {
  const out: string[] = [];
  for (const [cap, pipeline] of PIPELINES) {
    for (const model of offeredModels(info, cap)) {
      const price = jobPrice(info, cap, model);
      if (price.from === 'none' || price.pricePerUnit <= 0n || isUnpriceable(price)) continue;
      if (ceiling.refuse(price, model, cap)) continue;
      out.push(`${pipeline}/${model}`);
    }
  }
  return out;
}

/** The answer for `caps` (empty values ignored; none = every orchestrator with a capability). */
export function discoveryAnswer(pool: OrchestratorPool, ceiling: PriceCeiling, caps: readonly string[]) {
  const wanted = new Set(caps.filter((c) => c !== ''));
  const out: { address: string; score: number; capabilities: string[] }[] = [];
  for (const { url, info } of pool.answered()) {
    const capabilities = pricedCapabilities(info, ceiling);
    if (capabilities.length === 0) continue;
    if (wanted.size > 0 && !capabilities.some((c) => wanted.has(c))) continue;
    out.push({ address: url, score: SCORE_TRUSTED, capabilities });
  }
  return out;
}
