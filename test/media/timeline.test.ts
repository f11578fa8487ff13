import { describe, expect, it } from 'vitest';
import { RtpTimeline } from '../../src/media/index.ts';

const video = (initialTimestamp = 1000, initialSequenceNumber = 0) =>
  new RtpTimeline({ clockRate: 90_000, initialTimestamp, initialSequenceNumber });

describe('RtpTimeline', () => {
  it('follows the PTS inside one continuous run', () => {
    const t = video();
    expect([5000, 8000, 11_000].map((pts) => t.timestampFor(pts))).toEqual([1000, 4000, 7000]);
    expect(t.rebases).toBe(0);
  });

  it('continues by one frame when the PTS resets (new segment from another orchestrator)', () => {
    const t = video();
    const out = [900_000, 903_000, 906_000, 0, 3000].map((pts) => t.timestampFor(pts));
    expect(out).toEqual([1000, 4000, 7000, 10_000, 13_000]);
    expect(t.rebases).toBe(1);
  });

  it('continues by one frame when the PTS jumps forward by more than maxJump', () => {
    const t = video();
    const out = [0, 3000, 3000 + 5 * 90_000, 3000 + 5 * 90_000 + 3000].map((pts) => t.timestampFor(pts));
    expect(out).toEqual([1000, 4000, 7000, 10_000]);
    // A forward step within maxJump is a real gap in content time and is kept.
    expect(t.timestampFor(3000 + 5 * 90_000 + 3000 + 45_000)).toBe(55_000);
  });

  it('advances by the wall-clock time across a discontinuity when given', () => {
    const t = video();
    t.timestampFor(0, 10_000);
    t.timestampFor(3000, 10_033);
    // The orchestrator swap took 2 s: the viewer should see 2 s pass, not one frame.
    expect(t.timestampFor(0, 12_033)).toBe(4000 + 180_000);
  });

  it('converts to the track clock (Opus at 48 kHz) and wraps at 2^32', () => {
    const t = new RtpTimeline({ clockRate: 48_000, initialTimestamp: 2 ** 32 - 960, frameDuration90k: 1800 });
    expect([0, 1800, 3600].map((pts) => t.timestampFor(pts))).toEqual([2 ** 32 - 960, 0, 960]);
    expect(t.timestampFor(0)).toBe(1920); // reset: one 20 ms frame later
  });

  it('rebases on request even when the PTS looks continuous', () => {
    const t = video();
    t.timestampFor(0);
    t.markDiscontinuity();
    expect(t.timestampFor(90_000 - 1)).toBe(4000);
  });

  it('follows the PTS of B-frames back and forth, judging continuity on the DTS', () => {
    const t = video();
    // Decode order I0 P3 B1 B2 P6 B4 B5, DTS two frames behind as x264 writes it.
    const pts = [0, 3, 1, 2, 6, 4, 5].map((n) => 90_000 + n * 3000);
    const dts = [-2, -1, 0, 1, 2, 3, 4].map((n) => 90_000 + n * 3000);
    expect(pts.map((p, i) => t.timestampFor(p, undefined, dts[i]))).toEqual(pts.map((p) => p - 89_000));
    expect(t.rebases).toBe(0);
  });

  it('with B-frames, rebases once at a DTS reset and starts after the latest timestamp sent', () => {
    const t = video();
    const pts = [0, 3, 1, 2].map((n) => 900_000 + n * 3000);
    const dts = [-2, -1, 0, 1].map((n) => 900_000 + n * 3000);
    const first = pts.map((p, i) => t.timestampFor(p, undefined, dts[i]));
    expect(first).toEqual([1000, 10_000, 4000, 7000]);
    // A new orchestrator restarts at PTS 0; its first DTS goes one frame after 10_000, the PTS ahead of it.
    const second = pts.map((p, i) => t.timestampFor(p - 900_000, undefined, dts[i] - 900_000));
    expect(second).toEqual([19_000, 28_000, 22_000, 25_000]);
    expect(t.rebases).toBe(1);
  });

  it('hands out sequence numbers that wrap at 16 bits', () => {
    const t = video(0, 65_534);
    expect([0, 1, 2, 3].map(() => t.nextSequenceNumber())).toEqual([65_534, 65_535, 0, 1]);
    expect(t.state.nextSeq).toBe(2);
  });
});
