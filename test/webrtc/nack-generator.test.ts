import { afterEach, describe, expect, it } from 'vitest';
import { NackGenerator, type NackGeneratorOptions, seqDistance } from '../../src/webrtc/index.ts';

const generators: NackGenerator[] = [];
afterEach(() => {
  for (const generator of generators.splice(0)) generator.close();
});

function make(opts: Partial<NackGeneratorOptions> = {}) {
  const sent: number[][] = [];
  const generator = new NackGenerator({
    retryIntervalMs: 50,
    maxAttempts: 3,
    ...opts,
    send: (lost) => sent.push(lost),
  });
  generators.push(generator);
  return { generator, sent };
}

describe('seqDistance', () => {
  it('is wrap-aware', () => {
    expect(seqDistance(65535, 0)).toBe(1);
    expect(seqDistance(0, 65535)).toBe(-1);
    expect(seqDistance(100, 90)).toBe(-10);
    expect(seqDistance(65530, 4)).toBe(10);
  });
});

describe('NackGenerator', () => {
  it('says nothing while packets arrive in order, also across the wrap', () => {
    const { generator, sent } = make();
    for (let i = 0; i < 20; i++) generator.onPacket((65530 + i) & 0xffff, 0);
    expect(sent).toEqual([]);
  });

  it('NACKs a gap at once, retries, and stops after maxAttempts', () => {
    const { generator, sent } = make();
    generator.onPacket(10, 0);
    generator.onPacket(13, 0);
    expect(sent).toEqual([[11, 12]]);
    generator.tick(20);
    expect(sent).toHaveLength(1); // not due yet
    generator.tick(50);
    generator.tick(100);
    generator.tick(150);
    generator.tick(200);
    expect(sent).toEqual([
      [11, 12],
      [11, 12],
      [11, 12],
    ]);
    expect(generator.missingCount).toBe(0);
    expect(generator.nacksSent).toBe(3);
    expect(generator.packetsRequested).toBe(6);
  });

  it('forgets a packet that arrives late or is retransmitted', () => {
    const { generator, sent } = make();
    generator.onPacket(10, 0);
    generator.onPacket(13, 0);
    generator.onPacket(11, 5);
    generator.tick(50);
    expect(sent).toEqual([[11, 12], [12]]);
  });

  it('NACKs a packet lost across 65535 → 0 and keeps working after', () => {
    const { generator, sent } = make();
    generator.onPacket(65534, 0);
    generator.onPacket(0, 0);
    generator.onPacket(1, 0);
    generator.onPacket(3, 0);
    expect(sent).toEqual([[65535], [2]]);
  });

  it('treats a big jump as a restart, not loss', () => {
    const { generator, sent } = make({ maxGap: 100 });
    generator.onPacket(1000, 0);
    generator.onPacket(5000, 0);
    generator.onPacket(5001, 0);
    expect(sent).toEqual([]);
  });

  it('gives up on packets older than maxAgeMs', () => {
    const { generator, sent } = make({ maxAttempts: 100, maxAgeMs: 120 });
    generator.onPacket(1, 0);
    generator.onPacket(3, 0);
    for (let t = 50; t <= 300; t += 50) generator.tick(t);
    expect(sent).toEqual([[2], [2], [2]]);
  });
});
