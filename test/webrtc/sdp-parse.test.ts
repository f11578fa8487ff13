// The bounded SDP parser: every real offer passes, every malformed one is refused with a message
// that names the line, and every limit holds.
import { describe, expect, it } from 'vitest';
import { checkOffer } from '../../src/webrtc/index.ts';
import { decodeSdp, parseSdp, SDP_LIMITS, SdpParseError } from '../../src/webrtc/sdp-parse.ts';
import { INVALID_MUTATIONS, offerFixtures, withInvalidUtf8 } from '../helpers/sdp-mutations.ts';

const fixtures = offerFixtures();
const chrome = fixtures.get('chrome-whip-offer.sdp') as string;

function refusal(sdp: string): SdpParseError {
  try {
    parseSdp(sdp);
  } catch (err) {
    if (err instanceof SdpParseError) return err;
    throw err;
  }
  throw new Error('parsed without an error');
}

/** The message names a line: its number, and a copy of it that really is that line. */
function expectNamesLine(sdp: string, message: string) {
  const m = /^line (\d+): .+: "(.*)"$/.exec(message);
  expect(m, message).not.toBeNull();
  const [, n, copy] = m as RegExpExecArray;
  const line = sdp.split('\n')[Number(n) - 1].replace(/\r$/, '');
  const shown = copy.endsWith('...') ? copy.slice(0, -3) : copy;
  expect(line.replace(/[^\x20-\x7e]/g, '?').startsWith(shown), `${message} vs line ${n}: ${line}`).toBe(true);
}

describe('parseSdp', () => {
  it.each([...fixtures.keys()])('parses the captured offer %s', (name) => {
    const parsed = parseSdp(fixtures.get(name) as string);
    expect(parsed.media.length).toBeGreaterThanOrEqual(2);
    expect(parsed.bundle?.length).toBeGreaterThanOrEqual(2);
  });

  it('indexes codecs by payload type: rtpmap, fmtp and rtcp-fb in any order, `*` feedback merged once', () => {
    const sdp = chrome.replace(
      'a=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:96',
      'a=rtcp-mux\r\na=rtcp-rsize\r\na=rtcp-fb:* nack\r\na=rtpmap:96',
    );
    const video = parseSdp(sdp).media[1];
    const h264 = video.codecs.find((c) => c.payloadType === 106);
    expect(h264).toMatchObject({ name: 'H264', clockRate: 90000, fmtp: { 'packetization-mode': '1' } });
    expect(h264?.rtcpFeedback.filter((f) => f === 'nack')).toHaveLength(1);
    expect(video.codecs.map((c) => c.payloadType)).toEqual(video.formats.map(Number));
  });

  it.each(INVALID_MUTATIONS.map((m) => [m.name, m.apply] as const))('400 naming the line: %s', (_, apply) => {
    for (const [name, offer] of fixtures) {
      const bad = apply(offer);
      expect(bad, `${name} unchanged`).not.toBe(offer);
      for (const purpose of ['publish', 'view'] as const) {
        const result = checkOffer(bad, purpose);
        expect(result, name).toMatchObject({ ok: false, status: 400 });
        if (!result.ok) expectNamesLine(bad, result.reason);
      }
    }
  });

  it('non-UTF-8 bytes: refused naming the line', () => {
    const bytes = withInvalidUtf8(chrome);
    expect(() => decodeSdp(bytes)).toThrow(/^line 3: not valid UTF-8: "s=\?\?-"$/);
    expect(decodeSdp(Buffer.from(chrome))).toBe(chrome);
  });

  it('the quadratic-cost offer (one rtpmap repeated 1,000 times) stops at the second copy', () => {
    const lines = chrome.split('\r\n');
    const at = lines.indexOf('a=rtpmap:96 VP8/90000');
    lines.splice(at, 1, ...Array<string>(1000).fill('a=rtpmap:96 VP8/90000'));
    const err = refusal(lines.join('\r\n'));
    expect(err.line).toBe(at + 2);
    expect(err.message).toBe(`line ${at + 2}: second a=rtpmap for payload type 96: "a=rtpmap:96 VP8/90000"`);
  });

  it('payload type 99999999999 is named, not echoed back in an answer', () => {
    const sdp = chrome.replace('a=rtpmap:96 VP8/90000', 'a=rtpmap:99999999999 VP8/90000');
    expect(refusal(sdp).message).toMatch(/payload type 99999999999 is not 0-127/);
  });

  it('a dynamic payload type without a=rtpmap is refused; a static one is not', () => {
    const dynamic = chrome.replace('a=rtpmap:96 VP8/90000\r\n', '');
    expect(refusal(dynamic).message).toMatch(/^line \d+: payload type 96 has no a=rtpmap: "m=video/);
    const staticPt = chrome.replace('a=rtpmap:0 PCMU/8000\r\n', '');
    expect(parseSdp(staticPt).media[0].codecs.find((c) => c.payloadType === 0)?.name).toBe('PCMU');
  });

  describe('limits', () => {
    const header = chrome.slice(0, chrome.indexOf('m=audio'));

    it(`bytes: over ${SDP_LIMITS.maxBytes}`, () => {
      const big = `${chrome}${'a=x-pad:0123456789\r\n'.repeat(SDP_LIMITS.maxBytes / 20)}`;
      expect(refusal(big).message).toBe(
        `SDP is ${Buffer.byteLength(big)} bytes; at most ${SDP_LIMITS.maxBytes} are accepted`,
      );
    });

    it(`lines: over ${SDP_LIMITS.maxLines}`, () => {
      expect(refusal(`${chrome}${'a=x\r\n'.repeat(SDP_LIMITS.maxLines)}`).message).toBe(
        `SDP has more than ${SDP_LIMITS.maxLines} lines`,
      );
    });

    it(`line length: over ${SDP_LIMITS.maxLineLength}`, () => {
      const sdp = chrome.replace('s=-', `s=${'x'.repeat(SDP_LIMITS.maxLineLength)}`);
      expect(refusal(sdp).message).toMatch(/^line 3: line longer than 1024 characters: "s=x{55}\.\.\."$/);
    });

    it(`m-sections: over ${SDP_LIMITS.maxMediaSections}`, () => {
      const section = chrome.slice(chrome.indexOf('m=audio'), chrome.indexOf('m=video'));
      const many =
        header + Array.from({ length: 17 }, (_, i) => section.replace('a=mid:0', `a=mid:a${i}`)).join('');
      expect(refusal(many).message).toMatch(/more than 16 m= sections/);
    });

    it(`formats: over ${SDP_LIMITS.maxFormatsPerSection} on one m= line`, () => {
      const formats = Array.from({ length: 129 }, (_, i) => i).join(' ');
      expect(refusal(`${header}m=video 9 UDP/TLS/RTP/SAVPF ${formats}\r\n`).message).toMatch(
        /^line 8: more than 128 formats/,
      );
    });

    it(`candidates: over ${SDP_LIMITS.maxCandidatesPerSection} in one section`, () => {
      const candidates = Array.from(
        { length: 65 },
        (_, i) => `a=candidate:${i} 1 udp 2122260223 127.0.0.1 ${1000 + i} typ host\r\n`,
      ).join('');
      expect(refusal(chrome.replace('a=mid:1\r\n', `a=mid:1\r\n${candidates}`)).message).toMatch(
        /more than 64 candidates in one section/,
      );
    });

    it(`SSRCs: over ${SDP_LIMITS.maxSsrcsPerSection} in one section`, () => {
      const ssrcs = Array.from({ length: 33 }, (_, i) => `a=ssrc:${1000 + i} cname:x\r\n`).join('');
      expect(refusal(chrome.replace('a=mid:1\r\n', `a=mid:1\r\n${ssrcs}`)).message).toMatch(
        /more than 32 SSRCs/,
      );
    });
  });
});
