// The RTP header parser werift uses in the gateway (src/webrtc/werift-rtp-header.ts) against
// werift's own: its CommonJS build is a separate copy of the class that the gateway never patches.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { RtpHeader, RtpPacket } from 'werift';
import { parseRtpHeader, useFastRtpHeaderParse } from '../../src/webrtc/werift-rtp-header.ts';

const weriftCjs = createRequire(import.meta.url)('werift') as { RtpHeader: typeof RtpHeader };
const original = (raw: Buffer) => weriftCjs.RtpHeader.deSerialize(raw);

type Outcome = { threw: true } | { threw: false; header: Record<string, unknown> };

/** A header as plain data; extension payloads by bytes and by where they sit in the packet. */
function outcome(parse: (raw: Buffer) => RtpHeader, raw: Buffer): Outcome {
  let h: RtpHeader;
  try {
    h = parse(raw);
  } catch {
    return { threw: true };
  }
  return {
    threw: false,
    header: {
      ...h,
      extensions: h.extensions.map((e) => ({
        id: e.id,
        bytes: e.payload.toString('hex'),
        at: e.payload.byteOffset - raw.byteOffset,
      })),
    },
  };
}

/** Mostly well-formed packets, with every field and length pushed past its edges now and then. */
function randomPacket(rand: () => number): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  const cc = rand() < 0.7 ? 0 : pick(16);
  const ext = rand() < 0.6;
  const profiles = [0xbede, 0xbede, 0x1000, pick(0x10000)];
  const body: number[] = [];
  body.push((pick(4) << 6) | (rand() < 0.2 ? 0x20 : 0) | (ext ? 0x10 : 0) | cc, pick(256));
  for (let i = 0; i < 10 + 4 * cc; i++) body.push(pick(256));
  if (ext) {
    const profile = profiles[pick(profiles.length)] as number;
    const words = pick(6);
    body.push(profile >> 8, profile & 0xff, 0, words);
    for (let i = 0; i < words * 4; i++) {
      // Padding bytes, one-byte elements (incl. id 15) and two-byte elements, at random.
      const r = rand();
      body.push(r < 0.2 ? 0 : r < 0.3 ? 0xf0 | pick(16) : pick(256));
    }
  }
  for (let i = pick(40); i > 0; i--) body.push(pick(256));
  const full = Buffer.from(body);
  // Cut short a third of the time: through the fixed header, the CSRCs or the extension.
  return rand() < 0.33 ? full.subarray(0, pick(full.length + 1)) : full;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    s ^= s >>> 13;
    return s / 0x100000000;
  };
}

describe('the RTP header parser werift uses in the gateway', () => {
  it('gives what werift gives, or throws where werift throws, over 25 000 fuzzed packets', () => {
    const rand = seeded(7);
    let parsed = 0;
    let withExtensions = 0;
    let threw = 0;
    for (let i = 0; i < 25_000; i++) {
      // Inside a larger buffer, as werift's packets are (subarrays of the socket's datagram).
      const packet = randomPacket(rand);
      const pool = Buffer.alloc(packet.length + 16, 0xaa);
      packet.copy(pool, 8);
      const raw = pool.subarray(8, 8 + packet.length);
      const mine = outcome(parseRtpHeader, raw);
      const theirs = outcome(original, raw);
      expect(mine, raw.toString('hex')).toEqual(theirs);
      if (mine.threw) threw++;
      else {
        parsed++;
        if ((mine.header.extensions as unknown[]).length > 0) withExtensions++;
      }
    }
    // The fuzz reaches every kind of outcome, not only one.
    expect(parsed).toBeGreaterThan(8_000);
    expect(withExtensions).toBeGreaterThan(2_000);
    expect(threw).toBeGreaterThan(2_000);
  });

  it('parses a Chromium packet (one-byte mid, abs-send-time, transport-cc) like werift', () => {
    // A video packet header as Chromium sends it: profile 0xBEDE, 3 words of extensions (the last
    // two bytes padding), then the payload.
    const raw = Buffer.from(
      '90e0 1a2b 0001e240 12345678 bede0003 1030 2201 0203 3100 0a00 0000 7c85 8899 aabb'.replace(/ /g, ''),
      'hex',
    );
    expect(outcome(parseRtpHeader, raw)).toEqual(outcome(original, raw));
    const h = parseRtpHeader(raw);
    expect([h.marker, h.payloadType, h.sequenceNumber, h.ssrc]).toEqual([true, 96, 0x1a2b, 0x12345678]);
    expect(h.extensions.map((e) => e.id)).toEqual([1, 2, 3]);
    expect(h.payloadOffset).toBe(28);
  });

  it('is what werift calls once installed, for its packets too', () => {
    useFastRtpHeaderParse();
    expect(RtpHeader.deSerialize).toBe(parseRtpHeader);
    const sent = new RtpPacket(
      new RtpHeader({
        sequenceNumber: 65535,
        timestamp: 4_000_000_000,
        ssrc: 42,
        marker: true,
        payloadType: 111,
      }),
      Buffer.from('opus'),
    );
    const back = RtpPacket.deSerialize(sent.serialize());
    expect([back.header.sequenceNumber, back.header.timestamp, back.header.ssrc]).toEqual([
      65535, 4_000_000_000, 42,
    ]);
    expect(back.payload.toString()).toBe('opus');
  });
});
