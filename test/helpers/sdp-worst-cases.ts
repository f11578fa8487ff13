// The costliest offers that fit the SDP limits (src/webrtc/sdp-parse.ts SDP_LIMITS), built from a
// real Chrome offer: what one unauthenticated client can make the gateway parse and answer.
import { readFileSync } from 'node:fs';
import { SDP_LIMITS } from '../../src/webrtc/sdp-parse.ts';

const chrome = readFileSync(new URL('../webrtc/fixtures/chrome-whip-offer.sdp', import.meta.url), 'utf8');
const head = chrome.slice(0, chrome.indexOf('m=audio'));
const audio = chrome.slice(chrome.indexOf('m=audio'), chrome.indexOf('m=video'));
const video = chrome.slice(chrome.indexOf('m=video'));
const transport = video
  .split('\r\n')
  .filter((l) => /^a=(ice-ufrag|ice-pwd|fingerprint|setup):/.test(l))
  .join('\r\n');

/** Appends lines from `make(i)` while the offer stays within the byte and line limits. */
function fill(sdp: string, make: (i: number) => string, maxLines: number = SDP_LIMITS.maxLines): string {
  let bytes = Buffer.byteLength(sdp);
  let lines = sdp.split('\r\n').length - 1;
  const out = [sdp];
  for (let i = 0; ; i++) {
    const line = `${make(i)}\r\n`;
    if (bytes + line.length > SDP_LIMITS.maxBytes || lines + 1 > maxLines) break;
    out.push(line);
    bytes += line.length;
    lines++;
  }
  return out.join('');
}

const candidate = (i: number) =>
  `a=candidate:${i} 1 udp 2122260223 127.0.0.1 ${20000 + i} typ host generation 0`;

export interface WorstCase {
  name: string;
  /** A publish (WHIP) offer. */
  sdp: string;
  /** Whether it is a valid offer (answered) or refused. */
  accepted: boolean;
}

export function worstCaseOffers(): WorstCase[] {
  // Every payload type there can be on one m= line, each an H.264 variant with fmtp and feedback.
  const pts = Array.from({ length: 128 }, (_, pt) => pt).filter((pt) => pt < 72 || pt > 76);
  const codecLines = pts.flatMap((pt) => [
    `a=rtpmap:${pt} H264/90000`,
    `a=fmtp:${pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e0${(pt % 32).toString(16).padStart(2, '0')}`,
    ...['goog-remb', 'transport-cc', 'ccm fir', 'nack', 'nack pli'].map((fb) => `a=rtcp-fb:${pt} ${fb}`),
  ]);
  const maxCodecs = fill(
    `${head}${audio}m=video 9 UDP/TLS/RTP/SAVPF ${pts.join(' ')}\r\nc=IN IP4 0.0.0.0\r\n${transport}\r\na=mid:1\r\na=sendonly\r\na=rtcp-mux\r\na=ssrc:1 cname:x\r\n${codecLines.join('\r\n')}\r\n`,
    (i) => `a=rtcp-fb:* x-${i % 16}`,
  );

  // Sixteen m-sections, every one with the most candidates allowed (only the tag's reach werift).
  const sections: string[] = [audio, video];
  for (let i = 2; i < SDP_LIMITS.maxMediaSections; i++) {
    sections.push(audio.replace('a=mid:0', `a=mid:${i}`).replace(/^a=ssrc:.*\r\n/gm, ''));
  }
  const withCandidates = sections.map((s) =>
    s.replace(
      /^(a=candidate:.*\r\n)/m,
      `${Array.from({ length: SDP_LIMITS.maxCandidatesPerSection }, (_, i) => `${candidate(i)}\r\n`).join('')}`,
    ),
  );
  let body = '';
  let count = 0;
  for (const section of withCandidates) {
    if (Buffer.byteLength(head + body + section) + 64 > SDP_LIMITS.maxBytes) break;
    body += section;
    count++;
  }
  const bundle = `a=group:BUNDLE ${Array.from({ length: count }, (_, i) => i).join(' ')}`;
  const maxSections = head.replace(/^a=group:BUNDLE .*$/m, bundle) + body;

  // The SSRCs werift looks up linearly, described line after line up to the line limit.
  // Chrome's video section has two SSRCs already.
  const maxSsrcs = fill(chrome, (i) => `a=ssrc:${1000 + (i % (SDP_LIMITS.maxSsrcsPerSection - 2))} x-${i}:y`);

  return [
    // The reported attack: one rtpmap 1,000+ times (used to cost minutes); refused at the second.
    { name: 'repeated rtpmap', sdp: fill(chrome, () => 'a=rtpmap:99 H264/90000'), accepted: false },
    { name: 'max lines', sdp: fill(chrome, (i) => `a=x-${i}`), accepted: true },
    {
      name: 'max line length',
      sdp: fill(chrome, (i) => `a=x-${i}:${'v'.repeat(SDP_LIMITS.maxLineLength - 12)}`),
      accepted: true,
    },
    { name: 'max payload types', sdp: maxCodecs, accepted: true },
    { name: 'max sections and candidates', sdp: maxSections, accepted: true },
    { name: 'max SSRC lines', sdp: maxSsrcs, accepted: true },
    // Everything read, then refused on the last line.
    {
      name: 'refused on the last line',
      sdp: `${fill(chrome, (i) => `a=x-${i}`, SDP_LIMITS.maxLines - 1)}a=setup:bogus\r\n`,
      accepted: false,
    },
  ];
}
