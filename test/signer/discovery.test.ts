// The signer's discovery answer (go-livepeer's GET /discover-orchestrators): `<pipeline>/<model>`
// for priced models within the ceilings, and the `caps` filter (any of them).
import { describe, expect, it } from 'vitest';
import { jobCapabilities } from '../../src/orchestrators/capabilities.ts';
import type { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { discoveryAnswer } from '../../src/signer/discovery.ts';
import { Capability, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

const offering = (models: [number, string, bigint][]): OrchestratorInfo => {
  const caps = models.map(([c, m]) => jobCapabilities({ capability: c, modelId: m }));
  return {
    capabilities: {
      bitstring: caps.reduce((a, c) => a.map((w, i) => w | (c.bitstring?.[i] ?? 0n)), [0n]),
      constraints: {
        PerCapability: Object.fromEntries(
          models.map(([c]) => [
            c,
            {
              models: Object.fromEntries(
                models.filter(([k]) => k === c).map(([, m]) => [m, { warm: false }]),
              ),
            },
          ]),
        ),
      },
    },
    capabilitiesPrices: models.map(([c, m, p]) => ({
      capability: c,
      constraint: m,
      pricePerUnit: p,
      pixelsPerUnit: 1n,
    })),
  };
};

const pool = (entries: { url: string; info: OrchestratorInfo }[]) =>
  ({ answered: () => entries }) as unknown as OrchestratorPool;

describe('discoveryAnswer', () => {
  const p = pool([
    {
      url: 'https://a:8935',
      info: offering([
        [Capability.LiveVideoToVideo, 'streamdiffusion', 5n],
        [Capability.TextToImage, 'black-forest-labs/FLUX.1-dev', 50n],
      ]),
    },
    { url: 'https://b:8935', info: offering([[Capability.LiveVideoToVideo, 'comfyui', 0n]]) },
    { url: 'https://c:8935', info: offering([[Capability.LiveVideoToVideo, 'streamdiffusion', 20n]]) },
  ]);
  const ceiling = new PriceCeiling({ maxPricePerUnit: 10n, pixelsPerUnit: 1n });

  it('lists priced models within the ceilings; free ones and dearer ones are left out', () => {
    expect(discoveryAnswer(p, PriceCeiling.none(), [])).toEqual([
      {
        address: 'https://a:8935',
        score: 1,
        capabilities: ['text-to-image/black-forest-labs/FLUX.1-dev', 'live-video-to-video/streamdiffusion'],
      },
      { address: 'https://c:8935', score: 1, capabilities: ['live-video-to-video/streamdiffusion'] },
    ]);
    expect(discoveryAnswer(p, ceiling, [])).toEqual([
      { address: 'https://a:8935', score: 1, capabilities: ['live-video-to-video/streamdiffusion'] },
    ]);
  });

  it('keeps orchestrators offering any of the caps asked for (empty values ignored)', () => {
    const urls = (caps: string[]) => discoveryAnswer(p, PriceCeiling.none(), caps).map((o) => o.address);
    expect(urls(['text-to-image/black-forest-labs/FLUX.1-dev'])).toEqual(['https://a:8935']);
    expect(urls(['live-video-to-video/streamdiffusion', ''])).toEqual(['https://a:8935', 'https://c:8935']);
    expect(urls(['live-video-to-video/comfyui'])).toEqual([]);
    expect(urls([''])).toEqual(['https://a:8935', 'https://c:8935']);
  });
});
