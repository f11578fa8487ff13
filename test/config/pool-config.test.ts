// Config keys of the orchestrator pool: discovery, info cache, and -maxPricePerCapability in
// go-livepeer's JSON format, checked at start-up with one-line errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDecimal } from '../../src/config/capability-prices.ts';
import { type Config, ConfigError, loadConfig } from '../../src/config/index.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lp-pool-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function load(argv: string[] = []): Config {
  return loadConfig({ argv, env: {}, cwd: dir });
}

function fails(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/^config: \S+: .+ \(got .*\)$/);
    return e;
  }
  throw new Error('expected a ConfigError');
}

function prices(json: unknown): string {
  const p = join(dir, 'prices.json');
  writeFileSync(p, typeof json === 'string' ? json : JSON.stringify(json));
  return p;
}

describe('discovery keys', () => {
  it('defaults: webhook every minute, 8 GetOrchestrator calls at once, answers kept 60 s', () => {
    const shipped = loadConfig({ argv: [], env: {} });
    for (const c of [shipped, load()]) {
      expect(c.orchWebhookRefreshInterval).toBe(60_000);
      expect(c.discoveryConcurrency).toBe(8);
      expect(c.orchInfoMaxAge).toBe(60_000);
      expect(c.maxPricePerCapability).toBeUndefined();
    }
  });

  it('parses and refuses values with the key named', () => {
    const c = load([
      '-orchWebhookRefreshInterval',
      '30s',
      '-discoveryConcurrency',
      '3',
      '-orchInfoMaxAge',
      '2m',
    ]);
    expect(c.orchWebhookRefreshInterval).toBe(30_000);
    expect(c.discoveryConcurrency).toBe(3);
    expect(c.orchInfoMaxAge).toBe(120_000);
    expect(fails(() => load(['-discoveryConcurrency', '0'])).key).toBe('discoveryConcurrency');
    expect(fails(() => load(['-orchInfoMaxAge', 'soon'])).key).toBe('orchInfoMaxAge');
    expect(fails(() => load(['-orchWebhookRefreshInterval', '-1s'])).key).toBe('orchWebhookRefreshInterval');
  });

  it('a webhook alone does not start the local orchestrator, so its models do not matter', () => {
    expect(fails(() => load(['-localOrchestratorModels', 'edges'])).key).toBe('liveDefaultModel');
    const c = load(['-localOrchestratorModels', 'edges', '-orchWebhookUrl', 'http://127.0.0.1:1/orchs']);
    expect(c.orchAddr).toEqual([]);
    expect(c.orchWebhookUrl).toBe('http://127.0.0.1:1/orchs');
  });
});

describe('-maxPricePerCapability (go-livepeer format)', () => {
  it('reads a file: model entries, "default", currencies, exact decimals', () => {
    const file = prices({
      capabilities_prices: [
        {
          pipeline: 'live-video-to-video',
          model_id: 'streamdiffusion',
          price_per_unit: 1000,
          pixels_per_unit: 3,
        },
        { pipeline: 'live-video-to-video', price_per_unit: 0.5, currency: 'wei' },
        {
          pipeline: 'text-to-image',
          model_id: 'sd',
          price_per_unit: 2e-9,
          pixels_per_unit: 1,
          currency: 'ETH',
        },
        { pipeline: 'upscale', model_id: '', price_per_unit: 0 },
      ],
    });
    const c = load(['-maxPricePerCapability', file]);
    expect(c.maxPricePerCapability?.source).toBe(file);
    expect(c.maxPricePerCapability?.entries).toEqual([
      {
        pipeline: 'live-video-to-video',
        capability: 35,
        modelId: 'streamdiffusion',
        pricePerUnit: { num: 1000n, den: 1n },
        pixelsPerUnit: { num: 3n, den: 1n },
        currency: 'WEI',
      },
      {
        pipeline: 'live-video-to-video',
        capability: 35,
        modelId: 'default',
        pricePerUnit: { num: 1n, den: 2n },
        pixelsPerUnit: undefined,
        currency: 'WEI',
      },
      {
        pipeline: 'text-to-image',
        capability: 27,
        modelId: 'sd',
        pricePerUnit: { num: 2_000_000_000n, den: 1n },
        pixelsPerUnit: { num: 1n, den: 1n },
        currency: 'ETH',
      },
      {
        pipeline: 'upscale',
        capability: 30,
        modelId: 'default',
        pricePerUnit: undefined,
        pixelsPerUnit: undefined,
        currency: 'WEI',
      },
    ]);
  });

  it('takes the JSON itself too, as go-livepeer does, and keeps big integers exact', () => {
    const c = load([
      '-maxPricePerCapability',
      '{"capabilities_prices":[{"pipeline":"live-video-to-video","model_id":"m","price_per_unit":123456789012345678901234567890}]}',
    ]);
    expect(c.maxPricePerCapability?.source).toBe('inline JSON');
    expect(c.maxPricePerCapability?.entries[0].pricePerUnit).toEqual({
      num: 123456789012345678901234567890n,
      den: 1n,
    });
  });

  it('refuses bad files with one line naming the entry and field', () => {
    const cases: [unknown, string][] = [
      ['{"capabilities_prices": [', 'is not valid JSON'],
      ['[]', 'must be a JSON object'],
      [{ capabilities_prices: {} }, 'must be a JSON array'],
      [
        { capabilities_prices: [{ model_id: 'x', price_per_unit: 1 }] },
        'capabilities_prices[0].pipeline is missing',
      ],
      [
        { capabilities_prices: [{ pipeline: 'live-video', price_per_unit: 1 }] },
        '"live-video" is not a pipeline',
      ],
      [
        { capabilities_prices: [{ pipeline: 'live-video-to-video', price_per_unit: 1, currency: 'USD' }] },
        'currency USD needs an on-chain price feed',
      ],
      [
        { capabilities_prices: [{ pipeline: 'live-video-to-video', price_per_unit: '1000' }] },
        'must be a JSON number',
      ],
      [
        { capabilities_prices: [{ pipeline: 'llm', price_per_unit: -1 }] },
        'price_per_unit must not be negative',
      ],
      [{ capabilities_prices: [{ pipeline: 'llm', price_per_unt: 1 }] }, 'unknown field "price_per_unt"'],
      ['', 'empty file'],
    ];
    for (const [json, message] of cases) {
      const file = prices(json);
      const e = fails(() => load(['-maxPricePerCapability', file]));
      expect(e.key).toBe('maxPricePerCapability');
      expect(e.message).toContain(message);
      expect(e.message).toContain(`(got ${file})`);
    }
    expect(fails(() => load(['-maxPricePerCapability', 'nope.json'])).message).toContain('not found');
  });

  it('decimal text to exact rationals', () => {
    expect(parseDecimal('1000')).toEqual({ num: 1000n, den: 1n });
    expect(parseDecimal('0.25')).toEqual({ num: 1n, den: 4n });
    expect(parseDecimal('1.5e3')).toEqual({ num: 1500n, den: 1n });
    expect(parseDecimal('12e-1')).toEqual({ num: 6n, den: 5n });
    expect(() => parseDecimal('1e999')).toThrow(/exponent/);
  });
});
