// Prices as exact rationals (wei per pixel), what an orchestrator charges for a live model, and
// the most this gateway pays: -maxPricePerUnit / -pixelsPerUnit, overridden per model by
// -maxPricePerCapability, as go-livepeer's BroadcastConfig does (server/broadcast.go
// GetCapabilitiesMaxPrice / getCapabilityMaxPrice).
import type { CapabilityMaxPrice, Ratio } from '../config/capability-prices.ts';
import { Capability, type OrchestratorInfo, type PriceInfo } from '../wire/lp-rpc.ts';

export type { Ratio } from '../config/capability-prices.ts';

export function ratio(num: bigint, den: bigint): Ratio {
  if (den === 0n) throw new RangeError('ratio with a zero denominator');
  if (den < 0n) return ratio(-num, -den);
  let a = num < 0n ? -num : num;
  let b = den;
  while (b !== 0n) [a, b] = [b, a % b];
  return a === 0n ? { num: 0n, den: 1n } : { num: num / a, den: den / a };
}

/** -1, 0 or 1, exactly. */
export function compareRatio(a: Ratio, b: Ratio): number {
  const l = a.num * b.den;
  const r = b.num * a.den;
  return l < r ? -1 : l > r ? 1 : 0;
}

/** For scoring only (not for comparisons against a ceiling). */
export function ratioToNumber(r: Ratio): number {
  // Scale first so that huge numerators and denominators keep their ratio.
  const scale = 10n ** 18n;
  return Number((r.num * scale) / r.den) / 1e18;
}

/** `1500`, `0.25`, `0.333333…` (up to `digits` decimals, exact when it terminates sooner). */
export function formatRatio(r: Ratio, digits = 6): string {
  const int = r.num / r.den;
  let rest = r.num % r.den;
  if (rest === 0n) return int.toString();
  let frac = '';
  for (let i = 0; i < digits && rest !== 0n; i++) {
    rest *= 10n;
    frac += (rest / r.den).toString();
    rest %= r.den;
  }
  return `${int}.${frac}${rest === 0n ? '' : '…'}`;
}

export interface OrchestratorPrice {
  /** Wei per pixel. */
  perPixel: Ratio;
  pricePerUnit: bigint;
  pixelsPerUnit: bigint;
  /** Where it came from: a per-model `capabilities_prices` entry, `price_info`, or none (free). */
  from: 'model' | 'price_info' | 'none';
}

/**
 * What `info` says the orchestrator charges for `modelId` of `capability`: its
 * `capabilities_prices` entry for that capability and model when present, else `price_info`.
 * Neither present means free: off-chain go-livepeer orchestrators send no price and are never paid.
 */
export function jobPrice(
  info: OrchestratorInfo | undefined,
  capability: number,
  modelId: string,
): OrchestratorPrice {
  const entry =
    modelId === ''
      ? undefined
      : info?.capabilitiesPrices?.find((p) => (p.capability ?? 0) === capability && p.constraint === modelId);
  if (entry) return fromPriceInfo(entry, 'model');
  if (info?.priceInfo) return fromPriceInfo(info.priceInfo, 'price_info');
  return { perPixel: ratio(0n, 1n), pricePerUnit: 0n, pixelsPerUnit: 1n, from: 'none' };
}

/** What `info` charges for live model `modelId`. */
export const livePrice = (info: OrchestratorInfo | undefined, modelId: string): OrchestratorPrice =>
  jobPrice(info, Capability.LiveVideoToVideo, modelId);

function fromPriceInfo(p: PriceInfo, from: OrchestratorPrice['from']): OrchestratorPrice {
  const pricePerUnit = p.pricePerUnit ?? 0n;
  const pixelsPerUnit = p.pixelsPerUnit ?? 0n;
  // A zero price with no pixel count is still zero; a positive price needs pixels (checked by
  // the gRPC client for price_info; a bad capabilities_prices entry counts as unpriceable).
  const perPixel =
    pricePerUnit === 0n
      ? ratio(0n, 1n)
      : pixelsPerUnit > 0n
        ? ratio(pricePerUnit, pixelsPerUnit)
        : { num: 1n, den: 0n };
  return { perPixel, pricePerUnit, pixelsPerUnit, from };
}

/** A price that cannot be compared (positive price over zero pixels) is never acceptable. */
export function isUnpriceable(p: OrchestratorPrice): boolean {
  return p.perPixel.den === 0n;
}

export interface Ceiling {
  /** Wei per pixel. */
  perPixel: Ratio;
  /** `-maxPricePerUnit`, or the -maxPricePerCapability entry that set it. */
  source: string;
}

export interface PriceCeilingOptions {
  /** Wei per `pixelsPerUnit` pixels; 0n = no limit. */
  maxPricePerUnit: bigint;
  pixelsPerUnit: bigint;
  perCapability?: readonly CapabilityMaxPrice[];
}

export class PriceCeiling {
  private readonly global: Ceiling | undefined;
  /** capability → model id (or `default`) → ceiling. */
  private readonly perCapability = new Map<number, Map<string, Ceiling>>();

  constructor(opts: PriceCeilingOptions) {
    if (opts.pixelsPerUnit <= 0n) throw new RangeError('pixelsPerUnit must be positive');
    this.global =
      opts.maxPricePerUnit > 0n
        ? {
            perPixel: ratio(opts.maxPricePerUnit, opts.pixelsPerUnit),
            source: `-maxPricePerUnit ${opts.maxPricePerUnit} wei per ${opts.pixelsPerUnit} pixels`,
          }
        : undefined;
    for (const e of opts.perCapability ?? []) {
      // As go-livepeer's starter: a missing pixel count is -pixelsPerUnit; a missing price is
      // -maxPricePerUnit (taken as wei), and with neither the entry sets no limit.
      const pixels = e.pixelsPerUnit ?? ratio(opts.pixelsPerUnit, 1n);
      const price =
        e.pricePerUnit ?? (opts.maxPricePerUnit > 0n ? ratio(opts.maxPricePerUnit, 1n) : undefined);
      if (!price) continue;
      const perPixel = ratio(price.num * pixels.den, price.den * pixels.num);
      const models = this.perCapability.get(e.capability) ?? new Map<string, Ceiling>();
      this.perCapability.set(e.capability, models);
      models.set(e.modelId, {
        perPixel,
        source: `-maxPricePerCapability ${e.pipeline}/${e.modelId}`,
      });
    }
  }

  /** No limit at all. */
  static none(): PriceCeiling {
    return new PriceCeiling({ maxPricePerUnit: 0n, pixelsPerUnit: 1n });
  }

  /** The -maxPricePerUnit ceiling alone; undefined = no limit. */
  get globalCeiling(): Ceiling | undefined {
    return this.global;
  }

  /** The -maxPricePerCapability entry for `modelId` (or the capability's `default`), without the global fallback. */
  capabilityCeiling(modelId: string, capability: number): Ceiling | undefined {
    const models = this.perCapability.get(capability);
    return models?.get(modelId) ?? models?.get('default');
  }

  /** The most to pay for `modelId` of `capability`; undefined = no limit. */
  forModel(modelId: string, capability: number = Capability.LiveVideoToVideo): Ceiling | undefined {
    const models = this.perCapability.get(capability);
    return models?.get(modelId) ?? models?.get('default') ?? this.global;
  }

  /** Why `price` is refused for `modelId` of `capability`, or undefined when it is acceptable. */
  refuse(
    price: OrchestratorPrice,
    modelId: string,
    capability: number = Capability.LiveVideoToVideo,
  ): string | undefined {
    if (isUnpriceable(price)) {
      return `price ${price.pricePerUnit} wei per ${price.pixelsPerUnit} pixels cannot be compared`;
    }
    const ceiling = this.forModel(modelId, capability);
    if (!ceiling || compareRatio(price.perPixel, ceiling.perPixel) <= 0) return undefined;
    return `price ${formatRatio(price.perPixel)} wei/pixel for ${modelId === '' ? 'transcoding' : `"${modelId}"`} is above the ceiling ${formatRatio(ceiling.perPixel)} wei/pixel (${ceiling.source})`;
  }
}
