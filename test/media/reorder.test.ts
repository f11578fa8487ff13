import { describe, expect, it } from 'vitest';
import { ReorderBuffer } from '../../src/media/index.ts';

function harness(options: { maxPackets?: number; maxDelayMs?: number } = {}) {
  const released: number[] = [];
  const losses: [number, number][] = [];
  const buffer = new ReorderBuffer<string>({
    ...options,
    onPacket: (packet, seq) => {
      expect(packet).toBe(`p${seq}`);
      released.push(seq);
    },
    onLoss: (first, count) => {
      losses.push([first, count]);
      released.push(-1); // marks where, in order, the loss was reported
    },
  });
  const push = (seq: number, now = 0) => buffer.push(seq, `p${seq}`, now);
  return { buffer, released, losses, push };
}

/** Starts a stream at `seq`, past the startup hold. */
function started(seq: number, options: { maxPackets?: number; maxDelayMs?: number } = {}) {
  const h = harness(options);
  h.push(seq, 0);
  h.buffer.flush();
  h.released.length = 0;
  return h;
}

describe('ReorderBuffer', () => {
  it('passes in-order packets straight through once started', () => {
    const { push, released } = started(100);
    expect(push(101, 1000)).toBe('released');
    expect(push(102, 1000)).toBe('released');
    expect(released).toEqual([101, 102]);
  });

  it('puts shuffled packets back in order across 65535 → 0', () => {
    const { push, released, losses } = started(65533);
    for (const seq of [65535, 65534, 1, 0, 2]) push(seq, 1000);
    expect(released).toEqual([65534, 65535, 0, 1, 2]);
    expect(losses).toEqual([]);
  });

  it('starts at the lowest sequence number when the first packets arrive out of order', () => {
    const { push, buffer, released } = harness();
    expect(push(12, 0)).toBe('buffered');
    push(10, 1);
    push(11, 2);
    expect(released).toEqual([]);
    buffer.poll(100);
    expect(released).toEqual([10, 11, 12]);
  });

  it('drops duplicates, whether still buffered or already released', () => {
    const { push, buffer, released } = started(1);
    push(3, 1000);
    expect(push(3, 1000)).toBe('duplicate');
    push(2, 1000);
    expect(push(2, 1000)).toBe('duplicate');
    expect(released).toEqual([2, 3]);
    expect(buffer.stats.duplicates).toBe(2);
  });

  it('gives up on a missing packet after maxPackets later ones and reports the loss', () => {
    const { push, released, losses, buffer } = started(0, { maxPackets: 5, maxDelayMs: 1e9 });
    for (let seq = 2; seq <= 5; seq++) push(seq, 1000);
    expect(released).toEqual([]);
    push(6, 1000);
    expect(losses).toEqual([[1, 1]]);
    expect(released).toEqual([-1, 2, 3, 4, 5, 6]);
    expect(push(1, 1000)).toBe('late');
    expect(buffer.stats).toMatchObject({ lost: 1, late: 1 });
  });

  it('gives up on a missing packet after maxDelayMs (on push or poll)', () => {
    const { push, buffer, released, losses } = started(0, { maxDelayMs: 100 });
    push(3, 1000);
    push(4, 1050);
    buffer.poll(1099);
    expect(released).toEqual([]);
    buffer.poll(1100);
    expect(losses).toEqual([[1, 2]]);
    expect(released).toEqual([-1, 3, 4]);
  });

  it('restarts when the sequence number jumps far ahead or behind', () => {
    const { push, released, buffer } = started(1000);
    push(30_000, 1000);
    push(30_001, 1000);
    push(5, 1000);
    expect(released).toEqual([30_000, 30_001, 5]);
    expect(buffer.stats.resyncs).toBe(2);
  });

  it('flush releases everything and reports the gaps in order', () => {
    const { push, buffer, released, losses } = started(0);
    push(2, 1000);
    push(5, 1000);
    buffer.flush();
    expect(released).toEqual([-1, 2, -1, 5]);
    expect(losses).toEqual([
      [1, 1],
      [3, 2],
    ]);
  });
});
