import { afterEach, describe, expect, it } from 'vitest';
import { ReorderBuffer } from '../../src/media/index.ts';
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

describe('NackGenerator recovery window', () => {
  it('measures the round trip from the quickest recovery and waits for the last NACK’s answer', () => {
    const { generator } = make({ retryIntervalMs: 50, maxAttempts: 5, maxAgeMs: 1000 });
    // Before any recovery: a 100 ms round trip is assumed. Last NACK at 4 × 50 + 25 (timer slack).
    expect(generator.rttMs).toBeUndefined();
    expect(generator.recoveryWindowMs()).toBe(225 + 100 + 20);
    generator.onPacket(1, 0);
    generator.onPacket(3, 10); // 2 missing, NACKed at 10
    generator.onPacket(2, 50); // its retransmission, 40 ms later
    generator.onPacket(6, 60); // 4, 5 missing at 60
    generator.onPacket(4, 170); // 110 ms: a later NACK was answered
    expect(generator.packetsRecovered).toBe(2);
    expect(generator.rttMs).toBe(40);
    expect(generator.recoveryWindowMs()).toBe(225 + 40 + 20);
  });

  it('never waits past maxAgeMs, and not at all for a sender that does not retransmit', () => {
    expect(make({ retryIntervalMs: 50, maxAttempts: 10, maxAgeMs: 200 }).generator.recoveryWindowMs()).toBe(
      200,
    );
    const { generator } = make({ retryIntervalMs: 50, maxAttempts: 5 });
    generator.onPacket(0, 0);
    generator.onPacket(30, 5); // 29 packets asked for
    for (let t = 30; t < 1200; t += 25) generator.tick(t); // none ever comes
    expect(generator.packetsRequested).toBeGreaterThanOrEqual(20);
    expect(generator.recoveryWindowMs()).toBe(0);
  });
});

describe('reorder buffer and NACKs (injected clock)', () => {
  /**
   * Packets every 5 ms; packet 10 is lost; the publisher answers only the third NACK (the first two
   * are lost on the way), 60 ms after it: the retransmission arrives ~160 ms after the gap.
   */
  function run(reorderWaitMs: (nack: NackGenerator) => number) {
    const released: number[] = [];
    const losses: number[] = [];
    const nacks: { at: number; lost: number[] }[] = [];
    let now = 0;
    const nack = new NackGenerator({ send: (lost) => nacks.push({ at: now, lost }) });
    generators.push(nack);
    const order = new ReorderBuffer<number>({
      onPacket: (p) => released.push(p),
      onLoss: (first) => losses.push(first),
      maxPackets: 512,
    });
    let retransmitAt: number | undefined;
    for (now = 0; now <= 600; now += 5) {
      const seq = now / 5;
      order.setMaxDelay(reorderWaitMs(nack));
      nack.tick(now);
      if (nacks.length === 3 && retransmitAt === undefined) retransmitAt = nacks[2].at + 60;
      if (retransmitAt !== undefined && now >= retransmitAt) {
        nack.onPacket(10, now);
        order.push(10, 10, now);
        retransmitAt = Number.POSITIVE_INFINITY;
      }
      if (seq !== 10) {
        nack.onPacket(seq, now);
        order.push(seq, seq, now);
      }
      order.poll(now);
    }
    return { released, losses, order, nacks };
  }

  it('a buffer that waits as long as a NACK can be answered gets the late retransmission, in order', () => {
    const { released, losses, order } = run((nack) => nack.recoveryWindowMs());
    expect(losses).toEqual([]);
    expect(released.slice(0, 30)).toEqual([...Array(30).keys()]);
    expect(order.stats.late).toBe(0);
  });

  it('a 100 ms buffer gives up on it and then throws the retransmission away as late', () => {
    const { losses, order } = run(() => 100);
    expect(losses).toEqual([10]);
    expect(order.stats.late).toBe(1);
  });
});
