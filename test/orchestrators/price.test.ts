// Prices compared exactly as rationals, and the ceiling go-livepeer's way: a per-model
// -maxPricePerCapability entry, else the pipeline's "default" entry, else -maxPricePerUnit.
import { describe, expect, it } from 'vitest';
import { parseCapabilityPrices } from '../../src/config/capability-prices.ts';
import { compareRatio, formatRatio, livePrice, PriceCeiling, ratio } from '../../src/orchestrators/price.ts';
import { Capability, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

const live = Capability.LiveVideoToVideo;

describe('rationals', () => {
  it('compares exactly where floats cannot', () => {
    const a = ratio(10n ** 30n + 1n, 10n ** 30n);
    const b = ratio(1n, 1n);
    expect(compareRatio(a, b)).toBe(1);
    expect(compareRatio(ratio(2n, 4n), ratio(1n, 2n))).toBe(0);
    expect(compareRatio(ratio(1n, 3n), ratio(1n, 2n))).toBe(-1);
    expect(formatRatio(ratio(3n, 2n))).toBe('1.5');
    expect(formatRatio(ratio(1n, 3n), 4)).toBe('0.3333…');
  });
});

describe('what an orchestrator charges for a live model', () => {
  const info: OrchestratorInfo = {
    priceInfo: { pricePerUnit: 7n, pixelsPerUnit: 2n },
    capabilitiesPrices: [
      { capability: live, constraint: 'invert', pricePerUnit: 3n, pixelsPerUnit: 1n },
      { capability: Capability.TextToImage, constraint: 'edges', pricePerUnit: 1n, pixelsPerUnit: 1n },
    ],
  };
  it('its capabilities_prices entry for capability 35 and the model, else price_info, else free', () => {
    expect(livePrice(info, 'invert')).toMatchObject({ perPixel: { num: 3n, den: 1n }, from: 'model' });
    expect(livePrice(info, 'edges')).toMatchObject({ perPixel: { num: 7n, den: 2n }, from: 'price_info' });
    expect(livePrice({}, 'edges')).toMatchObject({ perPixel: { num: 0n, den: 1n }, from: 'none' });
  });
});

describe('PriceCeiling', () => {
  const price = (pricePerUnit: bigint, pixelsPerUnit: bigint) =>
    livePrice({ priceInfo: { pricePerUnit, pixelsPerUnit } }, 'm');

  it('-maxPricePerUnit per -pixelsPerUnit; 0 means no limit; equal is allowed', () => {
    const c = new PriceCeiling({ maxPricePerUnit: 1000n, pixelsPerUnit: 3n });
    expect(c.refuse(price(1000n, 3n), 'm')).toBeUndefined();
    expect(c.refuse(price(333n, 1n), 'm')).toBeUndefined(); // 333 < 333.33…
    expect(c.refuse(price(334n, 1n), 'm')).toMatch(
      /above the ceiling 333\.333333… wei\/pixel \(-maxPricePerUnit 1000/,
    );
    expect(PriceCeiling.none().refuse(price(10n ** 40n, 1n), 'm')).toBeUndefined();
  });

  it('per-capability entries override it: the model, else "default", else the global ceiling', () => {
    const entries = parseCapabilityPrices(
      JSON.stringify({
        capabilities_prices: [
          { pipeline: 'live-video-to-video', model_id: 'special', price_per_unit: 50, pixels_per_unit: 10 },
          { pipeline: 'live-video-to-video', model_id: 'default', price_per_unit: 2 },
          { pipeline: 'live-video-to-video', model_id: 'nolimit', price_per_unit: 0 },
          { pipeline: 'text-to-image', model_id: 'default', price_per_unit: 1 },
        ],
      }),
    );
    const c = new PriceCeiling({ maxPricePerUnit: 100n, pixelsPerUnit: 1n, perCapability: entries });
    expect(c.forModel('special')?.perPixel).toEqual({ num: 5n, den: 1n });
    expect(c.forModel('other')?.perPixel).toEqual({ num: 2n, den: 1n });
    // price_per_unit 0: go-livepeer uses -maxPricePerUnit for the entry.
    expect(c.forModel('nolimit')?.perPixel).toEqual({ num: 100n, den: 1n });
    expect(c.forModel('x', Capability.ImageToImage)?.perPixel).toEqual({ num: 100n, den: 1n });
    expect(c.refuse(price(5n, 1n), 'special')).toBeUndefined();
    expect(c.refuse(price(3n, 1n), 'other')).toMatch(/-maxPricePerCapability live-video-to-video\/default/);
    // Without -maxPricePerUnit, an entry with no price sets no limit.
    const d = new PriceCeiling({ maxPricePerUnit: 0n, pixelsPerUnit: 1n, perCapability: entries });
    expect(d.forModel('nolimit')).toEqual(d.forModel('other'));
    expect(
      new PriceCeiling({
        maxPricePerUnit: 0n,
        pixelsPerUnit: 1n,
        perCapability: entries.slice(2, 3),
      }).forModel('nolimit'),
    ).toBeUndefined();
  });

  it('a positive price over zero pixels is refused', () => {
    expect(PriceCeiling.none().refuse(price(5n, 0n), 'm')).toMatch(/cannot be compared/);
  });
});
