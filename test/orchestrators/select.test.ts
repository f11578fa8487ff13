// The documented score (select.ts) and the suspension penalty (suspension.ts), deterministically.
import { describe, expect, it } from 'vitest';
import { type Candidate, drawOrder, probabilities, scores } from '../../src/orchestrators/select.ts';
import { Suspensions } from '../../src/orchestrators/suspension.ts';
import { seeded } from './seeded.ts';

describe('score', () => {
  it('prefers cheaper, faster and more staked orchestrators, as the formula says', () => {
    const s = scores([
      { url: 'a', pricePerPixel: 1, latencyMs: 10 },
      { url: 'b', pricePerPixel: 2, latencyMs: 10 },
      { url: 'c', pricePerPixel: 1, latencyMs: 120 },
    ]);
    const mean = 4 / 3;
    expect(s[0]).toBeCloseTo(1);
    expect(s[1]).toBeCloseTo(Math.exp((-2 * 1) / mean));
    expect(s[2]).toBeCloseTo(Math.exp(-110 / 110));
    // Small latency differences (localhost jitter) barely matter; prices all zero are all equal.
    const t = scores([
      { url: 'a', pricePerPixel: 0, latencyMs: 2 },
      { url: 'b', pricePerPixel: 0, latencyMs: 6 },
    ]);
    expect(t[1] / t[0]).toBeGreaterThan(0.95);
    const staked = scores([
      { url: 'a', pricePerPixel: 0, stake: 100n },
      { url: 'b', pricePerPixel: 0, stake: 50n },
      { url: 'c', pricePerPixel: 0 },
    ]);
    expect(staked).toEqual([1, 0.75, 0.5]);
  });

  it('keeps a uniform share so every candidate is picked sometimes', () => {
    const p = probabilities([
      { url: 'free', pricePerPixel: 0 },
      { url: 'dear', pricePerPixel: 1000 },
    ]);
    expect(p[0] + p[1]).toBeCloseTo(1);
    expect(p[1]).toBeGreaterThanOrEqual(0.05);
    expect(p[0]).toBeGreaterThan(0.9);
  });

  it('draws follow the probabilities (seeded random)', () => {
    const cands: Candidate[] = [
      { url: 'cheap', pricePerPixel: 1, latencyMs: 20 },
      { url: 'dear', pricePerPixel: 2, latencyMs: 20 },
      { url: 'slow', pricePerPixel: 1, latencyMs: 400 },
    ];
    const expected = probabilities(cands);
    const random = seeded(42);
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const first = drawOrder(cands, random)[0].url;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    cands.forEach((c, i) => {
      expect((counts.get(c.url) ?? 0) / n).toBeCloseTo(expected[i], 1);
    });
    expect(counts.get('cheap')).toBeGreaterThan(counts.get('dear') ?? 0);
    expect(counts.get('dear')).toBeGreaterThan(counts.get('slow') ?? 0);
    // Every candidate appears once in an order.
    expect(new Set(drawOrder(cands, random).map((c) => c.url)).size).toBe(3);
  });
});

describe('suspension', () => {
  it('30 s, doubling with each recent failure, forgetting one failure per quiet 5 min', () => {
    let now = 1_000_000;
    const s = new Suspensions({}, () => now);
    expect(s.fail('o', 'job start failed')).toBe(30_000);
    expect(s.isSuspended('o')).toBe(true);
    now += 30_001;
    expect(s.isSuspended('o')).toBe(false);
    expect(s.fail('o', 'again')).toBe(60_000);
    expect(s.fail('o', 'again')).toBe(120_000);
    expect(s.state('o')).toMatchObject({ failures: 3, reason: 'again', until: now + 120_000 });
    // 5 min quiet after the suspension ends: one failure forgotten.
    now += 120_000 + 5 * 60_000;
    expect(s.state('o')).toMatchObject({ failures: 2, until: undefined });
    expect(s.fail('o', 'x')).toBe(120_000);
    now += 120_000 + 3 * 5 * 60_000;
    expect(s.state('o').failures).toBe(0);
    expect(s.fail('o', 'x')).toBe(30_000);
    s.succeed('o');
    expect(s.isSuspended('o')).toBe(false);
    expect(s.state('o').failures).toBe(0);
  });

  it('is capped', () => {
    const s = new Suspensions({ baseMs: 1000, maxMs: 5000 }, () => 0);
    const penalties = Array.from({ length: 6 }, () => s.fail('o', 'x'));
    expect(penalties).toEqual([1000, 2000, 4000, 5000, 5000, 5000]);
  });
});
