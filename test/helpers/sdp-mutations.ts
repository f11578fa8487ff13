// Seeded SDP mutations for fuzz tests: random damage to real offers, and targeted damage whose
// result is known to be invalid (so a 201 for it is a bug we can count).
import { readdirSync, readFileSync } from 'node:fs';

const FIXTURES = new URL('../webrtc/fixtures/', import.meta.url);

/** Every captured offer (Chrome, Firefox, OBS, aiortc, ...) by file name. */
export function offerFixtures(): Map<string, string> {
  const offers = new Map<string, string>();
  for (const name of readdirSync(FIXTURES).sort()) {
    if (name.endsWith('.sdp')) offers.set(name, readFileSync(new URL(name, FIXTURES), 'utf8'));
  }
  return offers;
}

/** mulberry32: small, fast, seeded. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const NUMBERS = [
  '0',
  '-1',
  '1',
  '72',
  '127',
  '128',
  '255',
  '65535',
  '65536',
  '4294967296',
  '99999999999',
  '',
];
const JUNK = ['', ' ', 'garbage', ':', '=', '\t', '\u00e9', '\u0000', '\u007f', '\ufffd', 'a=b', ' x y z'];

/** One random mutation of an SDP (line-level or character-level). Bytes stay valid UTF-16. */
export function mutate(sdp: string, random: () => number): string {
  const lines = sdp.split('\r\n');
  if (lines.at(-1) === '') lines.pop();
  const i = Math.floor(random() * lines.length);
  const line = lines[i];
  switch (Math.floor(random() * 10)) {
    case 0:
      lines.splice(i, 1);
      break;
    case 1:
      lines.splice(i, 0, line);
      break;
    case 2: {
      const j = Math.floor(random() * lines.length);
      [lines[i], lines[j]] = [lines[j], lines[i]];
      break;
    }
    case 3:
      lines[i] = line.slice(0, Math.floor(random() * line.length));
      break;
    case 4: {
      const at = Math.floor(random() * (line.length + 1));
      lines[i] = line.slice(0, at) + pick(random, JUNK) + line.slice(at);
      break;
    }
    case 5: {
      // Replace one number in the line.
      const numbers = [...line.matchAll(/\d+/g)];
      if (numbers.length === 0) return mutate(sdp, random);
      const m = pick(random, numbers);
      lines[i] = line.slice(0, m.index) + pick(random, NUMBERS) + line.slice((m.index ?? 0) + m[0].length);
      break;
    }
    case 6: {
      // Empty an attribute's value.
      const colon = line.indexOf(':');
      lines[i] = colon > 0 ? line.slice(0, colon + 1) : `${line}:`;
      break;
    }
    case 7:
      // Repeat a line many times (the quadratic-cost attack, bounded by the size limit).
      lines.splice(i, 0, ...Array<string>(Math.floor(random() * 400)).fill(line));
      break;
    case 8: {
      const at = Math.floor(random() * line.length);
      lines[i] = line.slice(0, at) + String.fromCharCode(32 + Math.floor(random() * 95)) + line.slice(at + 1);
      break;
    }
    default: {
      // A token swapped for another line's token.
      const tokens = line.split(' ');
      const other = pick(random, lines).split(' ');
      tokens[Math.floor(random() * tokens.length)] = pick(random, other);
      lines[i] = tokens.join(' ');
    }
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Damage every offer fixture can take and that no valid offer has. A 201 for any is a bug. */
export const INVALID_MUTATIONS: readonly { name: string; apply: (sdp: string) => string }[] = [
  { name: '1-character ice-pwd', apply: (s) => s.replace(/a=ice-pwd:\S+/g, 'a=ice-pwd:x') },
  { name: '21-character ice-pwd', apply: (s) => s.replace(/a=ice-pwd:\S+/g, `a=ice-pwd:${'p'.repeat(21)}`) },
  { name: 'empty ice-ufrag', apply: (s) => s.replace(/a=ice-ufrag:\S+/g, 'a=ice-ufrag:') },
  { name: '3-character ice-ufrag', apply: (s) => s.replace(/a=ice-ufrag:\S+/g, 'a=ice-ufrag:abc') },
  { name: 'ice-pwd with a space', apply: (s) => s.replace(/a=ice-pwd:(\S+)/g, 'a=ice-pwd:$1 $1') },
  { name: 'a=setup:bogus', apply: (s) => s.replace(/a=setup:\w+/g, 'a=setup:bogus') },
  { name: 'a=setup:holdconn', apply: (s) => s.replace(/a=setup:\w+/g, 'a=setup:holdconn') },
  { name: 'empty fingerprint', apply: (s) => s.replace(/a=fingerprint:.*/g, 'a=fingerprint:') },
  {
    name: 'fingerprint without hex',
    apply: (s) => s.replace(/a=fingerprint:(\S+) .*/g, 'a=fingerprint:$1 zz'),
  },
  {
    name: 'fingerprint too short',
    apply: (s) => s.replace(/a=fingerprint:(\S+) (\S+)/g, 'a=fingerprint:$1 AB:CD'),
  },
  {
    name: 'unknown fingerprint hash',
    apply: (s) => s.replace(/a=fingerprint:\S+ /g, 'a=fingerprint:sha-999 '),
  },
  { name: 'a=candidate:garbage', apply: (s) => s.replace(/^(m=.*)$/m, '$1\r\na=candidate:garbage') },
  {
    name: 'candidate with a bad port',
    apply: (s) => s.replace(/^(m=.*)$/m, '$1\r\na=candidate:1 1 udp 2122260223 127.0.0.1 70000 typ host'),
  },
  {
    name: 'payload type 99999999999',
    apply: (s) => s.replace(/^(m=video \S+ \S+) (\d+)/m, '$1 99999999999'),
  },
  { name: 'payload type 128', apply: (s) => s.replace(/^(m=video \S+ \S+) (\d+)/m, '$1 128') },
  { name: 'payload type 73 (RTCP range)', apply: (s) => s.replace(/^(m=video \S+ \S+) (\d+)/m, '$1 73 $2') },
  { name: 'duplicate payload type on m=', apply: (s) => s.replace(/^(m=video \S+ \S+) (\d+)/m, '$1 $2 $2') },
  {
    name: 'duplicate a=rtpmap',
    apply: (s) => s.replace(/^(a=rtpmap:\d+ [^\r\n]*)$/m, '$1\r\n$1'),
  },
  {
    name: 'rtpmap for an unlisted pt',
    apply: (s) => s.replace(/^(m=video .*)$/m, '$1\r\na=rtpmap:55 VP8/90000'),
  },
  {
    name: 'rtpmap without a clock rate',
    apply: (s) => s.replace(/^a=rtpmap:(\d+) (\w+)\/.*$/m, 'a=rtpmap:$1 $2'),
  },
  { name: 'fmtp without parameters', apply: (s) => s.replace(/^a=fmtp:(\d+) .*$/m, 'a=fmtp:$1') },
  { name: 'fmtp for an unlisted pt', apply: (s) => s.replace(/^(m=video .*)$/m, '$1\r\na=fmtp:55 apt=96') },
  {
    name: 'fmtp with a broken parameter',
    apply: (s) => s.replace(/^a=fmtp:(\d+) .*$/m, 'a=fmtp:$1 a=1;;b c=2'),
  },
  {
    name: 'rtcp-fb for an unlisted pt',
    apply: (s) => s.replace(/^(m=video .*)$/m, '$1\r\na=rtcp-fb:55 nack'),
  },
  { name: 'second a=mid in a section', apply: (s) => s.replace(/^(a=mid:\S+)$/m, '$1\r\na=mid:zz') },
  { name: 'two sections with one mid', apply: (s) => s.replace(/^a=mid:\S+$/gm, 'a=mid:0') },
  { name: 'BUNDLE naming an unknown mid', apply: (s) => s.replace(/^(a=group:BUNDLE .*)$/m, '$1 nope') },
  { name: 'control character', apply: (s) => s.replace(/^s=.*$/m, 's=\u0001') },
  { name: 'extmap id 0', apply: (s) => s.replace(/^(m=video .*)$/m, '$1\r\na=extmap:0 urn:x') },
  { name: 'malformed m= line', apply: (s) => s.replace(/^m=video \S+/m, 'm=video nine') },
  {
    name: 'm=video with a non-WebRTC profile',
    apply: (s) => s.replace(/^m=video (\S+) \S+/m, 'm=video $1 RTP/AVP'),
  },
  { name: 'unknown line type', apply: (s) => s.replace(/^(m=video .*)$/m, '$1\r\ny=whatever') },
];

/** Non-UTF-8 bytes in an offer (as a body; a JS string cannot carry them). */
export function withInvalidUtf8(sdp: string): Buffer {
  const at = sdp.indexOf('s=') + 2;
  return Buffer.concat([
    Buffer.from(sdp.slice(0, at)),
    Buffer.from([0xff, 0xfe]),
    Buffer.from(sdp.slice(at)),
  ]);
}
