// The signer's ledger on its own, its clock in the test's hands: one next call per state, a new
// session refused and then forgotten, sessions aged out and crowded out.
import { describe, expect, it } from 'vitest';
import { type Claim, MemoryLedger } from '../../src/signer/ledger.ts';

const ok = (c: Claim) => {
  if (c.kind !== 'ok') throw new Error(`expected ok, got ${c.kind}`);
  return c;
};

describe('MemoryLedger', () => {
  it('takes each state once, repeats a lost answer, and refuses the rest', async () => {
    let now = 1_000_000;
    const l = new MemoryLedger({ maxAgeMs: 60_000, answerTtlMs: 5_000, now: () => now });
    ok(await l.claim('s', null, undefined)).commit({ sig: 'A', answer: 'answer-A' });
    // A new session whose id is taken is refused.
    expect((await l.claim('s', null, undefined)).kind).toBe('replayed');
    const a = ok(await l.claim('s', 'A', now));
    expect((await l.claim('s', 'A', now)).kind).toBe('busy');
    a.commit({ sig: 'B', answer: 'answer-B' });
    expect(await l.claim('s', 'A', now)).toEqual({ kind: 'repeat', answer: 'answer-B' });
    // The cached answer ages out: then A is just a replay.
    now += 6_000;
    expect((await l.claim('s', 'A', now)).kind).toBe('replayed');
    // A failed call leaves the state current.
    ok(await l.claim('s', 'B', now)).release();
    ok(await l.claim('s', 'B', now)).commit({ sig: 'C', answer: 'answer-C' });
    expect((await l.claim('s', 'B', now)).kind).toBe('repeat');
    expect((await l.claim('s', 'X', now)).kind).toBe('replayed');
  });

  it('forgets a refused new session, idle sessions, and the least recently used past its size', async () => {
    let now = 0;
    const l = new MemoryLedger({ maxAgeMs: 60_000, maxSessions: 2, now: () => now });
    ok(await l.claim('gone', null, undefined)).release();
    expect(l.size).toBe(0);
    // Unknown states are taken when billed recently, else refused.
    ok(await l.claim('x', 'X1', now - 1000)).commit({ sig: 'X2', answer: '' });
    expect((await l.claim('y', 'Y1', now - 61_000)).kind).toBe('expired');
    ok(await l.claim('y', 'Y1', now)).commit({ sig: 'Y2', answer: '' });
    ok(await l.claim('z', 'Z1', now)).commit({ sig: 'Z2', answer: '' });
    expect(l.size).toBe(2);
    expect(l.evicted).toBe(1);
    // After a minute and more without use, everything is forgotten (and an old state refused).
    now += 120_000;
    expect((await l.claim('z', 'Z2', now - 90_000)).kind).toBe('expired');
    expect(l.size).toBe(0);
  });
});
