import { describe, expect, it } from 'vitest';
import {
  parseRtp,
  type RtpPacket,
  RtpParseError,
  RtpTimestampUnwrapper,
  seqDiff,
  serializeRtp,
} from '../../src/media/index.ts';

const packet: RtpPacket = {
  payloadType: 96,
  sequenceNumber: 65535,
  timestamp: 0xfffffff0,
  ssrc: 0xdeadbeef,
  marker: true,
  payload: Uint8Array.of(1, 2, 3, 4, 5),
};

function parseError(buf: Uint8Array): RtpParseError {
  try {
    parseRtp(buf);
  } catch (err) {
    if (err instanceof RtpParseError) return err;
    throw err;
  }
  throw new Error('expected parseRtp to throw');
}

describe('RTP packets', () => {
  it('round-trips a plain packet', () => {
    const bytes = serializeRtp(packet);
    expect(bytes.length).toBe(12 + 5);
    expect(bytes[0]).toBe(0x80);
    expect(bytes[1]).toBe(0x80 | 96);
    expect(parseRtp(bytes)).toEqual(packet);
  });

  it('round-trips CSRCs, a header extension and padding', () => {
    const full: RtpPacket = {
      ...packet,
      marker: false,
      csrcs: [1, 0xffffffff],
      extension: { profile: 0xbede, data: Uint8Array.of(0x10, 0xaa, 0, 0) },
      paddingSize: 4,
    };
    const bytes = serializeRtp(full);
    expect(bytes.length).toBe(12 + 8 + 4 + 4 + 5 + 4);
    const parsed = parseRtp(bytes);
    expect(parsed).toEqual(full);
    expect(parsed.payload).toEqual(packet.payload);
  });

  it('parses the payload as a view, without copying', () => {
    const bytes = serializeRtp(packet);
    const parsed = parseRtp(bytes);
    expect(parsed.payload.buffer).toBe(bytes.buffer);
  });

  it('rejects a truncated header', () => {
    expect(parseError(serializeRtp(packet).subarray(0, 11)).reason).toBe('too-short');
  });

  it('rejects a version other than 2', () => {
    const bytes = serializeRtp(packet);
    bytes[0] = 0x40;
    expect(parseError(bytes).reason).toBe('bad-version');
  });

  it('rejects CSRCs, extension or padding that overrun the packet', () => {
    const csrc = serializeRtp(packet);
    csrc[0] |= 0x0f; // claims 15 CSRCs
    expect(parseError(csrc).reason).toBe('truncated-csrc');

    const ext = serializeRtp({ ...packet, extension: { profile: 0xbede, data: new Uint8Array(4) } });
    ext[15] = 200; // extension length in words
    expect(parseError(ext).reason).toBe('truncated-extension');

    const padded = serializeRtp({ ...packet, paddingSize: 2 });
    padded[padded.length - 1] = 0;
    expect(parseError(padded).reason).toBe('bad-padding');
    padded[padded.length - 1] = 250;
    expect(parseError(padded).reason).toBe('bad-padding');
  });
});

describe('sequence and timestamp arithmetic', () => {
  it('seqDiff is signed and wraps at 16 bits', () => {
    expect(seqDiff(0, 65535)).toBe(1);
    expect(seqDiff(65535, 0)).toBe(-1);
    expect(seqDiff(10, 5)).toBe(5);
    expect(seqDiff(5, 10)).toBe(-5);
  });

  it('unwraps 32-bit timestamps into ticks since the first one', () => {
    const u = new RtpTimestampUnwrapper();
    expect(u.unwrap(0xffff_f000)).toBe(0);
    expect(u.unwrap(0xffff_fc00)).toBe(0xc00);
    expect(u.unwrap(0x0000_0800)).toBe(0x1800); // wrapped
    expect(u.unwrap(0x0000_0400)).toBe(0x1400); // a step back stays a step back
    expect(u.unwrap(0x8000_0000)).toBe(0x1000 + 0x8000_0000 - 0x400 + 0x400);
  });
});
