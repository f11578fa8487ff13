// RFC 8840 fragments as RFC 9725 PATCH bodies carry them, and the If-Match rules around them.
import { describe, expect, it } from 'vitest';
import { checkIfMatch, IcePatchError } from '../../src/webrtc/ice-patch.ts';
import {
  answerIceContext,
  buildSdpFrag,
  parseSdpFrag,
  SDPFRAG_LIMITS,
  SdpFragError,
} from '../../src/webrtc/sdpfrag.ts';

// RFC 9725 §4.3.2's trickle example and §4.3.3's restart example, as a client sends them.
const TRICKLE = [
  'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:0',
  'a=ice-ufrag:EsAw',
  'a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1',
  'a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1',
  'a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2',
  'a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1',
  'a=end-of-candidates',
  '',
].join('\r\n');

const RESTART = [
  'a=ice-options:trickle ice2',
  'a=group:BUNDLE 0 1',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'a=mid:0',
  'a=ice-ufrag:ysXw',
  'a=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k',
  'a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1',
  '',
].join('\r\n');

function parseError(body: string): string {
  try {
    parseSdpFrag(body);
  } catch (err) {
    expect(err).toBeInstanceOf(SdpFragError);
    return (err as Error).message;
  }
  throw new Error('parsed without error');
}

describe('parseSdpFrag', () => {
  it("reads RFC 9725's trickle example: credentials, every candidate, end-of-candidates", () => {
    const frag = parseSdpFrag(TRICKLE);
    expect(frag.ufrag).toBe('EsAw');
    expect(frag.pwd).toBe('P2uYro0UCOQ4zxjKXaWCBui1');
    expect(frag.mid).toBe('0');
    expect(frag.endOfCandidates).toBe(true);
    expect(frag.candidates.map((c) => [c.transport, c.address, c.port])).toEqual([
      ['udp', '192.0.2.1', 61764],
      ['udp', '198.51.100.2', 61765],
      ['tcp', '192.0.2.1', 9],
    ]);
    expect(frag.candidates[2].sdp).toBe(
      '473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1',
    );
  });

  it("reads RFC 9725's restart example (no end-of-candidates)", () => {
    const frag = parseSdpFrag(RESTART);
    expect(frag).toMatchObject({ ufrag: 'ysXw', pwd: 'vw5LmwG4y/e6dPP/zAP9Gp5k', endOfCandidates: false });
    expect(frag.candidates).toHaveLength(1);
  });

  it('takes the BUNDLE tag section, session-level credentials, and bare candidate lines', () => {
    const twoSections = [
      'a=ice-ufrag:sess',
      'a=ice-pwd:sessionpasswordsessionpw',
      'a=group:BUNDLE v a',
      'm=audio 9 UDP/TLS/RTP/SAVPF 111',
      'a=mid:a',
      'a=candidate:1 1 udp 1 10.0.0.1 1000 typ host',
      'm=video 9 UDP/TLS/RTP/SAVPF 96',
      'a=mid:v',
      'a=candidate:2 1 udp 1 10.0.0.2 2000 typ host',
    ].join('\n');
    const frag = parseSdpFrag(twoSections);
    expect(frag.mid).toBe('v');
    expect(frag.ufrag).toBe('sess');
    expect(frag.candidates.map((c) => c.address)).toEqual(['10.0.0.2']);
    // Some clients send candidates with no m= line at all.
    const bare = parseSdpFrag('a=candidate:1 1 UDP 5 10.1.1.1 5000 typ srflx raddr 0.0.0.0 rport 0\n');
    expect(bare.candidates[0]).toMatchObject({ transport: 'udp', type: 'srflx' });
  });

  it('leaves out candidates it cannot use, silently (RFC 9725 §4.3.2)', () => {
    const frag = parseSdpFrag(
      [
        'a=candidate:1 2 udp 1 10.0.0.1 1001 typ host', // RTCP component: rtcp-mux only
        'a=candidate:2 1 sctp 1 10.0.0.1 1002 typ host', // unknown transport
        'a=candidate:3 1 udp 1 10.0.0.1 1003 typ foo', // unknown type
        'a=candidate:4 1 udp 1 host-4.local 1004 typ host', // mDNS name: werift resolves it
      ].join('\n'),
    );
    expect(frag.candidates.map((c) => c.port)).toEqual([1004]);
    expect(frag.ignoredCandidates).toBe(3);
  });

  it('an empty fragment is a valid no-op', () => {
    expect(parseSdpFrag('')).toMatchObject({ candidates: [], endOfCandidates: false, ufrag: undefined });
  });

  it('names the line of a malformed fragment', () => {
    expect(parseError('a=ice-ufrag:EsAw\nhello\n')).toMatch(/^line 2: not an SDP line/);
    expect(parseError('a=ice-ufrag:abc\n')).toMatch(/^line 1: a=ice-ufrag must be 4-256/);
    expect(parseError('a=ice-ufrag:EsAw\na=ice-pwd:short\n')).toMatch(/^line 2: a=ice-pwd must be 22-256/);
    expect(parseError('a=ice-pwd:short\n')).not.toContain('short'); // the password is not echoed
    expect(parseError('m=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:0\na=candidate:garbage\n')).toMatch(
      /^line 3: malformed a=candidate \(fewer than 8 fields\)/,
    );
    expect(parseError('a=candidate:1 1 udp 1 10.0.0.1 99999 typ host\n')).toMatch(/\(port\)/);
    expect(parseError('a=candidate:1 1 udp 99999999999 10.0.0.1 9 typ host\n')).toMatch(/\(priority\)/);
    expect(parseError('a=candidate:1 1 udp 1 10.0.0.1 9 type host\n')).toMatch(/"typ" expected/);
    expect(parseError('a=candidate:1 1 udp 1 10.0.0.1 9 typ host raddr\n')).toMatch(
      /extension without a value/,
    );
    expect(parseError('a=candidate:1 1 udp 1 10.0.0.1 9 typ host rport x\n')).toMatch(/\(rport\)/);
    expect(parseError('a=candidate:1 1 udp 1 10/0/0/1 9 typ host\n')).toMatch(/connection-address/);
    expect(parseError('m=audio nine UDP/TLS/RTP/SAVPF 111\n')).toMatch(/^line 1: malformed m= line/);
    expect(parseError('a=mid:0\n')).toMatch(/a=mid before any m= line/);
    expect(parseError('a=ice-ufrag:EsAw\na=ice-ufrag:EsAx\n')).toMatch(/^line 2: second a=ice-ufrag/);
    expect(parseError('a=ice-ufrag:Es\u00e9w\n')).toMatch(/a=ice-ufrag:Es\?w/); // non-ASCII shown as ?
  });

  it('refuses fragments over the limits', () => {
    expect(parseError('a=x\n'.repeat(SDPFRAG_LIMITS.bytes))).toMatch(/larger than/);
    expect(parseError('a=x\n'.repeat(SDPFRAG_LIMITS.lines + 1))).toMatch(/more than 256 lines/);
    const many = Array.from(
      { length: SDPFRAG_LIMITS.candidates + 1 },
      (_, i) => `a=candidate:${i} 1 udp 1 10.0.0.1 ${1000 + i} typ host`,
    );
    expect(parseError(many.join('\n'))).toMatch(/more than 64 candidates/);
  });
});

describe('the restart answer fragment', () => {
  const answer = [
    'v=0',
    'o=- 1 0 IN IP4 0.0.0.0',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1',
    'm=video 9 UDP/TLS/RTP/SAVPF 97',
    'a=ice-ufrag:old',
    'a=ice-options:trickle',
    'a=mid:0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 96',
    'a=ice-options:trickle',
    'a=mid:1',
    '',
  ].join('\r\n');

  it("repeats the answer's BUNDLE tag section and ice-options, with the new credentials", () => {
    const body = buildSdpFrag(answerIceContext(answer), {
      ufrag: 'abcdabcdabcdabcd',
      pwd: '0123456789abcdef0123456789abcdef',
      candidates: ['1 1 udp 2130706431 198.51.100.1 39132 typ host'],
    });
    expect(body.split('\r\n')).toEqual([
      'a=group:BUNDLE 0 1',
      'm=video 9 UDP/TLS/RTP/SAVPF 97',
      'a=mid:0',
      'a=ice-ufrag:abcdabcdabcdabcd',
      'a=ice-pwd:0123456789abcdef0123456789abcdef',
      'a=ice-options:trickle',
      'a=candidate:1 1 udp 2130706431 198.51.100.1 39132 typ host',
      'a=end-of-candidates',
      '',
    ]);
    // What we send, our own parser (and so a client's) reads back.
    const back = parseSdpFrag(body);
    expect(back).toMatchObject({ ufrag: 'abcdabcdabcdabcd', mid: '0', endOfCandidates: true });
    expect(back.candidates).toHaveLength(1);
  });
});

describe('If-Match (RFC 9110 §13.1.1, strong comparison)', () => {
  const etag = '"abc123"';
  const status = (header: string | undefined) => {
    try {
      checkIfMatch(header, etag);
      return 'ok';
    } catch (err) {
      expect(err).toBeInstanceOf(IcePatchError);
      return (err as IcePatchError).status;
    }
  };

  it('428 without it, 412 for another or a weak tag, 400 when not entity-tags', () => {
    expect(status(undefined)).toBe(428);
    expect(status('  ')).toBe(428);
    expect(status('"abc123"')).toBe('ok');
    expect(status('*')).toBe('ok');
    expect(status('"zzz", "abc123"')).toBe('ok');
    expect(status('"zzz"')).toBe(412);
    expect(status('W/"abc123"')).toBe(412);
    expect(status('abc123')).toBe(400);
    expect(status('"abc123" "zzz"')).toBe(400);
  });
});
