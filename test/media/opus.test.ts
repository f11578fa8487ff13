import { describe, expect, it } from 'vitest';
import { OpusRtpDepacketizer, opusFrameSamples, opusPacketSamples } from '../../src/media/index.ts';

/** TOC byte from config (0–31), stereo flag and frame-count code (0–3). */
const toc = (config: number, code: number) => (config << 3) | code;

describe('Opus packet durations (RFC 6716 §3.1)', () => {
  it('knows the frame size of every mode', () => {
    expect([0, 1, 2, 3].map((c) => opusFrameSamples(toc(c, 0)))).toEqual([480, 960, 1920, 2880]); // SILK NB
    expect([12, 13].map((c) => opusFrameSamples(toc(c, 0)))).toEqual([480, 960]); // Hybrid SWB
    expect([28, 29, 30, 31].map((c) => opusFrameSamples(toc(c, 0)))).toEqual([120, 240, 480, 960]); // CELT FB
  });

  it('counts frames per packet code', () => {
    expect(opusPacketSamples(Uint8Array.of(toc(31, 0), 1, 2))).toBe(960);
    expect(opusPacketSamples(Uint8Array.of(toc(31, 1), 1, 2))).toBe(1920);
    expect(opusPacketSamples(Uint8Array.of(toc(31, 2), 1, 1, 2))).toBe(1920);
    expect(opusPacketSamples(Uint8Array.of(toc(28, 3), 0x03, 1, 2, 3))).toBe(360); // 3 × 2.5 ms
  });

  it('returns 0 for malformed packets', () => {
    expect(opusPacketSamples(new Uint8Array(0))).toBe(0);
    expect(opusPacketSamples(Uint8Array.of(toc(31, 3)))).toBe(0); // code 3 without its count byte
    expect(opusPacketSamples(Uint8Array.of(toc(3, 3), 3))).toBe(0); // 3 × 60 ms > 120 ms
    expect(opusPacketSamples(Uint8Array.of(toc(31, 3), 0))).toBe(0); // zero frames
  });
});

describe('OpusRtpDepacketizer', () => {
  it('maps 48 kHz RTP timestamps to 90 kHz pts across wraparound', () => {
    const d = new OpusRtpDepacketizer();
    const data = Uint8Array.of(toc(31, 0), 1);
    const pts = [0xffff_fc40, 0x0000_0000, 0x0000_03c0].map((ts) => d.push(data, ts)?.pts90k);
    expect(pts).toEqual([0, 1800, 3600]);
  });

  it('skips empty payloads', () => {
    const d = new OpusRtpDepacketizer();
    expect(d.push(new Uint8Array(0), 0)).toBeUndefined();
    expect(d.emptyPackets).toBe(1);
  });
});
