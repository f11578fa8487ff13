// A bounded, single-pass SDP parser for WebRTC offers (and werift's answers). It checks the
// structure werift relies on, so werift only ever sees SDP that cannot make it throw, and it is
// codec-agnostic: which codec to use is planOffer's business (sdp.ts).
//
// Every refusal names the line (number and a truncated copy). The cost is linear in the size of the
// SDP: one pass over the lines, attributes indexed by payload type as they come, no per-payload-type
// scans. The limits bound that size and the fan-out werift does later (candidates, SSRCs).
import { isIP } from 'node:net';

/**
 * Hard limits on an offer. Real offers are far below them: Chrome's audio+video WHIP offer is
 * ~5.6 KB, 167 lines, 25 video payload types, 1-4 candidates per section; Firefox, OBS and aiortc
 * offers are smaller (test/webrtc/fixtures/). A Chrome offer with three video sections, a data
 * channel and many network interfaces stays under ~25 KB.
 */
export const SDP_LIMITS = {
  /** Bytes of UTF-8. Also the HTTP body limit of WHIP/WHEP (larger gets 413). */
  maxBytes: 64 * 1024,
  maxLines: 2000,
  /** Characters per line; the longest real lines (sha-512 fingerprints, long fmtp) are ~200. */
  maxLineLength: 1024,
  maxMediaSections: 16,
  /** Formats on one m= line. Payload types are unique and 0-127, so 128 is all there can be. */
  maxFormatsPerSection: 128,
  /** werift pairs every remote candidate with every local one and checks each pair. */
  maxCandidatesPerSection: 64,
  /** werift looks SSRCs up linearly per a=ssrc line. */
  maxSsrcsPerSection: 32,
} as const;

export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export type SetupRole = 'actpass' | 'active' | 'passive';

export interface SdpCodec {
  payloadType: number;
  /** As written in a=rtpmap, e.g. `H264`, `opus` (or the RFC 3551 name of a static payload type). */
  name: string;
  clockRate: number;
  channels?: number;
  /** a=fmtp parameters, keys lower-cased. */
  fmtp: Record<string, string>;
  fmtpLine?: string;
  /** a=rtcp-fb values for this payload type (and `*`), e.g. `nack`, `nack pli`; no duplicates. */
  rtcpFeedback: string[];
}

/** The ICE and DTLS parameters of one m-section: its own, else the session-level ones. */
export interface SdpTransport {
  ufrag?: string;
  pwd?: string;
  /** `sha-256 AB:CD:...` as written. */
  fingerprints: string[];
  setup?: SetupRole;
  /** a=candidate values (after `a=candidate:`), validated. */
  candidates: string[];
  endOfCandidates: boolean;
}

export interface SdpMediaSection {
  /** Position among the m= lines (werift's mLineIndex). */
  index: number;
  /** 1-based line number of the m= line, for messages. */
  line: number;
  kind: string;
  port: number;
  protocol: string;
  formats: string[];
  mid?: string;
  direction: MediaDirection;
  /** a=bundle-only (RFC 8843): port 0, yet meant to be used inside the BUNDLE group. */
  bundleOnly: boolean;
  /** One per format, in m= line order (audio/video only). */
  codecs: SdpCodec[];
  ice: SdpTransport;
  hasIceCredentials: boolean;
  hasFingerprint: boolean;
  /** Lines after the m= line, as written. */
  lines: string[];
}

export interface ParsedSdp {
  /** Lines before the first m= line. */
  sessionLines: string[];
  media: SdpMediaSection[];
  /** The mids of the a=group:BUNDLE line, in order; undefined without one. */
  bundle?: string[];
  iceLite: boolean;
}

/** A refusal of the SDP, with the 1-based line it is about (when there is one). */
export class SdpParseError extends Error {
  override name = 'SdpParseError';
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
  }
}

/** RFC 3551 static payload types: usable without a=rtpmap. */
export const STATIC_PAYLOAD_TYPES: Readonly<
  Record<number, { name: string; clockRate: number; channels?: number }>
> = {
  0: { name: 'PCMU', clockRate: 8000 },
  3: { name: 'GSM', clockRate: 8000 },
  4: { name: 'G723', clockRate: 8000 },
  5: { name: 'DVI4', clockRate: 8000 },
  6: { name: 'DVI4', clockRate: 16000 },
  7: { name: 'LPC', clockRate: 8000 },
  8: { name: 'PCMA', clockRate: 8000 },
  9: { name: 'G722', clockRate: 8000 },
  10: { name: 'L16', clockRate: 44100, channels: 2 },
  11: { name: 'L16', clockRate: 44100 },
  12: { name: 'QCELP', clockRate: 8000 },
  13: { name: 'CN', clockRate: 8000 },
  14: { name: 'MPA', clockRate: 90000 },
  15: { name: 'G728', clockRate: 8000 },
  16: { name: 'DVI4', clockRate: 11025 },
  17: { name: 'DVI4', clockRate: 22050 },
  18: { name: 'G729', clockRate: 8000 },
  25: { name: 'CelB', clockRate: 90000 },
  26: { name: 'JPEG', clockRate: 90000 },
  28: { name: 'nv', clockRate: 90000 },
  31: { name: 'H261', clockRate: 90000 },
  32: { name: 'MPV', clockRate: 90000 },
  33: { name: 'MP2T', clockRate: 90000 },
  34: { name: 'H263', clockRate: 90000 },
};

const DIRECTIONS = new Set<string>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);
const SETUP_ROLES = new Set<string>(['actpass', 'active', 'passive']);
/** Digest bytes per RFC 8122 hash name; werift verifies the SHA family only. */
const FINGERPRINT_BYTES: Record<string, number> = {
  'sha-1': 20,
  'sha-224': 28,
  'sha-256': 32,
  'sha-384': 48,
  'sha-512': 64,
};
const LINE_TYPES = new Set('vosiuepcbtrzkam');
const RTP_PROFILE = /^(?:(?:UDP|TCP)\/TLS\/)?RTP\/SAVPF?$/;
const SCTP_PROFILE = /^(?:(?:UDP|TCP)\/)?DTLS\/SCTP$/;
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`{|}~-]+$/;
const ICE_CHARS = /^[A-Za-z0-9+/]+$/;
const HEX_PAIRS = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*$/;
const PAYLOAD_TYPE = /^(?:0|[1-9][0-9]{0,2})$/;
const UINT = /^(?:0|[1-9][0-9]{0,9})$/;
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is its job
const CONTROL_CHARS = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const RTPMAP = /^([^ /]+)\/([1-9][0-9]{0,8})(?:\/([1-9][0-9]?))?$/;
const FMTP_PARAM = /^[A-Za-z0-9_.-]+=[^ ;]*$/;

/**
 * Decodes an SDP body, refusing bytes that are not UTF-8 (naming the line) before any parsing.
 * Linear: each line is decoded once.
 */
export function decodeSdp(bytes: Uint8Array): string {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    return decoder.decode(bytes);
  } catch {
    // Find the line to name: decode line by line (only on this error path).
    let start = 0;
    let line = 1;
    while (start <= bytes.length) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const slice = bytes.subarray(start, end);
      try {
        decoder.decode(slice);
      } catch {
        const shown = new TextDecoder('utf-8').decode(slice.subarray(0, 60)).replace(/\r$/, '');
        throw new SdpParseError(`line ${line}: not valid UTF-8: "${printable(shown)}"`, line);
      }
      start = end + 1;
      line++;
    }
    throw new SdpParseError('SDP is not valid UTF-8');
  }
}

/** A line for an error message: at most 60 characters, anything but printable ASCII as `?`. */
function printable(text: string): string {
  const cut = text.length > 60 ? `${text.slice(0, 57)}...` : text;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

function fail(line: number, text: string, reason: string): never {
  throw new SdpParseError(`line ${line}: ${reason}: "${printable(text)}"`, line);
}

interface SectionBuilder {
  section: SdpMediaSection;
  rtpmaps: Map<number, { name: string; clockRate: number; channels?: number }>;
  fmtps: Map<number, string>;
  feedback: Map<string, string[]>;
  ssrcs: Set<string>;
  extmapIds: Set<number>;
  formatSet: Set<string>;
  ice: Partial<SdpTransport> & { fingerprints: string[]; candidates: string[]; endOfCandidates: boolean };
  direction?: MediaDirection;
}

/**
 * Parses and checks an SDP. Throws SdpParseError naming the line for anything malformed, over a
 * limit, or that werift would choke on. Does not judge codecs or directions (planOffer does).
 */
export function parseSdp(sdp: string): ParsedSdp {
  const bytes = Buffer.byteLength(sdp, 'utf8');
  if (bytes > SDP_LIMITS.maxBytes) {
    throw new SdpParseError(`SDP is ${bytes} bytes; at most ${SDP_LIMITS.maxBytes} are accepted`);
  }
  const rawLines = sdp.split('\n');
  if (rawLines.length > SDP_LIMITS.maxLines + 1) {
    throw new SdpParseError(`SDP has more than ${SDP_LIMITS.maxLines} lines`);
  }
  const sessionLines: string[] = [];
  const media: SdpMediaSection[] = [];
  const builders: SectionBuilder[] = [];
  const session: SectionBuilder['ice'] = { fingerprints: [], candidates: [], endOfCandidates: false };
  let sessionDirection: MediaDirection | undefined;
  let bundle: string[] | undefined;
  let bundleLine = 0;
  let iceLite = false;
  let current: SectionBuilder | undefined;
  let seenVersion = false;
  const mids = new Set<string>();

  for (let i = 0; i < rawLines.length; i++) {
    const n = i + 1;
    const text = rawLines[i].endsWith('\r') ? rawLines[i].slice(0, -1) : rawLines[i];
    if (text.length === 0) continue;
    if (!seenVersion) {
      if (text !== 'v=0') throw new SdpParseError(`line ${n}: SDP must start with "v=0"`, n);
      seenVersion = true;
      sessionLines.push(text);
      continue;
    }
    if (text.length > SDP_LIMITS.maxLineLength) {
      fail(n, text, `line longer than ${SDP_LIMITS.maxLineLength} characters`);
    }
    if (CONTROL_CHARS.test(text)) fail(n, text, 'control character in line');
    if (text[1] !== '=' || !LINE_TYPES.has(text[0])) fail(n, text, 'not an SDP line (<type>=<value>)');
    const type = text[0];
    if (type === 'v') fail(n, text, 'second v= line');
    if (type === 'm') {
      if (media.length >= SDP_LIMITS.maxMediaSections) {
        fail(n, text, `more than ${SDP_LIMITS.maxMediaSections} m= sections`);
      }
      current = startSection(text, n, media.length);
      builders.push(current);
      media.push(current.section);
      continue;
    }
    if (current) current.section.lines.push(text);
    else sessionLines.push(text);
    if (type === 'c') {
      if (!/^c=IN IP[46] [^ ]+$/.test(text)) fail(n, text, 'malformed c= line (IN IP4|IP6 <address>)');
      continue;
    }
    if (type === 'b') {
      if (!/^b=[A-Za-z0-9_-]+:[0-9]{1,10}$/.test(text)) fail(n, text, 'malformed b= line');
      continue;
    }
    if (type !== 'a') continue;
    const colon = text.indexOf(':');
    const name = colon < 0 ? text.slice(2) : text.slice(2, colon);
    const value = colon < 0 ? undefined : text.slice(colon + 1);
    if (!TOKEN.test(name)) fail(n, text, 'malformed attribute name');
    if (current) {
      mediaAttribute(current, name, value, n, text);
      if (name === 'mid') {
        if (mids.has(value as string)) fail(n, text, 'mid used by two m= sections');
        mids.add(value as string);
      }
      continue;
    }
    // Session-level attributes.
    switch (name) {
      case 'group': {
        const parts = (value ?? '').split(' ');
        if (!value || parts.some((p) => !TOKEN.test(p))) fail(n, text, 'malformed a=group');
        if (parts[0] !== 'BUNDLE') break;
        if (bundle) fail(n, text, 'more than one BUNDLE group (not supported)');
        const grouped = parts.slice(1);
        if (new Set(grouped).size !== grouped.length)
          fail(n, text, 'a mid appears twice in the BUNDLE group');
        if (grouped.length > 0) {
          bundle = grouped;
          bundleLine = n;
        }
        break;
      }
      case 'ice-lite':
        iceLite = true;
        break;
      case 'msid-semantic':
        if (!value?.trim()) fail(n, text, 'a=msid-semantic without a value');
        break;
      default:
        if (DIRECTIONS.has(name)) {
          if (sessionDirection) fail(n, text, 'more than one direction attribute');
          sessionDirection = name as MediaDirection;
        } else transportAttribute(session, name, value, n, text);
    }
  }
  if (!seenVersion) throw new SdpParseError('SDP must start with "v=0"');

  for (const builder of builders) finishSection(builder, session, sessionDirection);
  if (bundle) {
    for (const mid of bundle) {
      if (!mids.has(mid))
        fail(bundleLine, `a=group:BUNDLE ${bundle.join(' ')}`, `no m= section has mid ${mid}`);
    }
  }
  return { sessionLines, media, bundle, iceLite };
}

function startSection(text: string, n: number, index: number): SectionBuilder {
  const parts = text.slice(2).split(' ');
  if (parts.length < 4 || parts.some((p) => p === '')) fail(n, text, 'malformed m= line');
  const [kind, portField, protocol] = parts;
  const formats = parts.slice(3);
  const portMatch = /^([0-9]{1,5})(?:\/[0-9]{1,5})?$/.exec(portField);
  if (!TOKEN.test(kind) || !portMatch || Number(portMatch[1]) > 65535) fail(n, text, 'malformed m= line');
  if (formats.length > SDP_LIMITS.maxFormatsPerSection) {
    fail(n, text, `more than ${SDP_LIMITS.maxFormatsPerSection} formats`);
  }
  const isRtp = kind === 'audio' || kind === 'video';
  if (isRtp && !RTP_PROFILE.test(protocol)) {
    fail(n, text, `${kind} needs the UDP/TLS/RTP/SAVPF profile, not ${protocol}`);
  }
  if (kind === 'application' && !SCTP_PROFILE.test(protocol)) {
    fail(n, text, `application needs the UDP/DTLS/SCTP profile, not ${protocol}`);
  }
  const formatSet = new Set<string>();
  for (const format of formats) {
    if (formatSet.has(format)) fail(n, text, `format ${format} listed twice`);
    formatSet.add(format);
    if (isRtp) checkPayloadType(format, n, text);
  }
  return {
    section: {
      index,
      line: n,
      kind,
      port: Number(portMatch[1]),
      protocol,
      formats,
      direction: 'sendrecv',
      bundleOnly: false,
      codecs: [],
      ice: { fingerprints: [], candidates: [], endOfCandidates: false },
      hasIceCredentials: false,
      hasFingerprint: false,
      lines: [],
    },
    rtpmaps: new Map(),
    fmtps: new Map(),
    feedback: new Map(),
    ssrcs: new Set(),
    extmapIds: new Set(),
    formatSet,
    ice: { fingerprints: [], candidates: [], endOfCandidates: false },
  };
}

/** RTP payload types: 0-127 (RFC 3550), and not 72-76, which collide with RTCP under rtcp-mux (RFC 5761 §4). */
function checkPayloadType(text: string, n: number, line: string): number {
  if (!PAYLOAD_TYPE.test(text) || Number(text) > 127) fail(n, line, `payload type ${text} is not 0-127`);
  const pt = Number(text);
  if (pt >= 72 && pt <= 76) fail(n, line, `payload type ${pt} collides with RTCP (RFC 5761)`);
  return pt;
}

/** The payload type an a=rtpmap/fmtp/rtcp-fb names: listed on the m= line of its section. */
function listedPayloadType(b: SectionBuilder, text: string, n: number, line: string): number {
  const pt = checkPayloadType(text, n, line);
  if (!b.formatSet.has(text)) fail(n, line, `payload type ${pt} is not on the m= line`);
  return pt;
}

function mediaAttribute(b: SectionBuilder, name: string, value: string | undefined, n: number, line: string) {
  const section = b.section;
  const isRtp = section.kind === 'audio' || section.kind === 'video';
  switch (name) {
    case 'mid':
      if (section.mid !== undefined) fail(n, line, 'second a=mid');
      if (!value || value.length > 64 || !TOKEN.test(value)) fail(n, line, 'malformed a=mid');
      section.mid = value;
      return;
    case 'bundle-only':
      section.bundleOnly = true;
      return;
    case 'rtpmap': {
      if (!isRtp) return;
      const space = value?.indexOf(' ') ?? -1;
      const m = space > 0 ? RTPMAP.exec((value as string).slice(space + 1)) : null;
      if (!value || !m || !TOKEN.test(m[1]))
        fail(n, line, 'malformed a=rtpmap (<pt> <name>/<rate>[/<channels>])');
      const pt = listedPayloadType(b, value.slice(0, space), n, line);
      if (b.rtpmaps.has(pt)) fail(n, line, `second a=rtpmap for payload type ${pt}`);
      b.rtpmaps.set(pt, {
        name: m[1],
        clockRate: Number(m[2]),
        channels: m[3] === undefined ? undefined : Number(m[3]),
      });
      return;
    }
    case 'fmtp': {
      if (!isRtp) return;
      const space = value?.indexOf(' ') ?? -1;
      const params = space > 0 ? (value as string).slice(space + 1).trim() : '';
      if (!value || !params) fail(n, line, 'malformed a=fmtp (<pt> <parameters>)');
      const pt = listedPayloadType(b, value.slice(0, space), n, line);
      if (b.fmtps.has(pt)) fail(n, line, `second a=fmtp for payload type ${pt}`);
      if (params.includes('=')) {
        for (const part of params.split(';')) {
          const p = part.trim();
          if (p && !FMTP_PARAM.test(p)) fail(n, line, 'malformed a=fmtp parameter (key=value;...)');
        }
      } else if (/\s/.test(params)) fail(n, line, 'malformed a=fmtp parameters');
      b.fmtps.set(pt, params);
      return;
    }
    case 'rtcp-fb': {
      if (!isRtp) return;
      const m = value ? /^([^ ]+) ([A-Za-z0-9_.-]+)(?: ([^ ]+(?: [^ ]+)*))?$/.exec(value) : null;
      if (!value || !m) fail(n, line, 'malformed a=rtcp-fb (<pt|*> <type> [<parameter>])');
      const key = m[1] === '*' ? '*' : String(listedPayloadType(b, m[1], n, line));
      const feedback = m[3] === undefined ? m[2] : `${m[2]} ${m[3]}`;
      const list = b.feedback.get(key);
      if (!list) b.feedback.set(key, [feedback]);
      else if (!list.includes(feedback) && list.length < 16) list.push(feedback);
      return;
    }
    case 'extmap': {
      const m = value
        ? /^([0-9]{1,3})(?:\/(sendrecv|sendonly|recvonly|inactive))? ([^ ]+)(?: [^ ]+)*$/.exec(value)
        : null;
      const id = m ? Number(m[1]) : 0;
      if (!m || id < 1 || id > 255) fail(n, line, 'malformed a=extmap (<1-255>[/<direction>] <uri>)');
      if (b.extmapIds.has(id)) fail(n, line, `second a=extmap with id ${id}`);
      b.extmapIds.add(id);
      return;
    }
    case 'ssrc': {
      const m = value ? /^([0-9]{1,10}) ([A-Za-z0-9_.-]+)(?::.*)?$/.exec(value) : null;
      if (!m || Number(m[1]) > 0xffffffff || !UINT.test(m[1]))
        fail(n, line, 'malformed a=ssrc (<ssrc> <attribute>[:<value>])');
      if (!b.ssrcs.has(m[1])) {
        if (b.ssrcs.size >= SDP_LIMITS.maxSsrcsPerSection)
          fail(n, line, `more than ${SDP_LIMITS.maxSsrcsPerSection} SSRCs`);
        b.ssrcs.add(m[1]);
      }
      return;
    }
    case 'ssrc-group': {
      const parts = (value ?? '').split(' ');
      if (
        parts.length < 2 ||
        !TOKEN.test(parts[0]) ||
        parts.slice(1).some((p) => !UINT.test(p) || Number(p) > 0xffffffff)
      ) {
        fail(n, line, 'malformed a=ssrc-group (<semantics> <ssrc>...)');
      }
      return;
    }
    case 'msid':
      if (!value || !/^[^ ]+(?: [^ ]+)?$/.test(value)) fail(n, line, 'malformed a=msid');
      return;
    case 'rtcp':
      if (!value || !/^[0-9]{1,5}(?: IN IP[46] [^ ]+)?$/.test(value)) fail(n, line, 'malformed a=rtcp');
      return;
    case 'sctp-port':
    case 'max-message-size':
      if (!value || !UINT.test(value)) fail(n, line, `malformed a=${name}`);
      return;
    case 'sctpmap':
      if (!value || !/^[0-9]{1,5} [^ ]+(?: [0-9]{1,10})?$/.test(value)) fail(n, line, 'malformed a=sctpmap');
      return;
    case 'rid':
    case 'simulcast':
      if (!value?.trim()) fail(n, line, `a=${name} without a value`);
      return;
    default:
      if (DIRECTIONS.has(name)) {
        if (b.direction) fail(n, line, 'more than one direction attribute');
        b.direction = name as MediaDirection;
        return;
      }
      transportAttribute(b.ice, name, value, n, line);
  }
}

/** ICE and DTLS attributes, valid at session and media level. Others are ignored. */
function transportAttribute(
  t: SectionBuilder['ice'],
  name: string,
  value: string | undefined,
  n: number,
  line: string,
): void {
  switch (name) {
    case 'ice-ufrag':
      if (t.ufrag !== undefined) fail(n, line, 'second a=ice-ufrag');
      if (!value || value.length < 4 || value.length > 256 || !ICE_CHARS.test(value)) {
        fail(n, line, 'a=ice-ufrag must be 4 to 256 ICE characters (RFC 8839)');
      }
      t.ufrag = value;
      return;
    case 'ice-pwd':
      if (t.pwd !== undefined) fail(n, line, 'second a=ice-pwd');
      if (!value || value.length < 22 || value.length > 256 || !ICE_CHARS.test(value)) {
        fail(n, line, 'a=ice-pwd must be 22 to 256 ICE characters (RFC 8839)');
      }
      t.pwd = value;
      return;
    case 'fingerprint': {
      const space = value?.indexOf(' ') ?? -1;
      const hash = space > 0 ? (value as string).slice(0, space).toLowerCase() : '';
      const hex = space > 0 ? (value as string).slice(space + 1) : '';
      const bytes = FINGERPRINT_BYTES[hash];
      if (!value || !hash || !HEX_PAIRS.test(hex)) {
        fail(n, line, 'malformed a=fingerprint (<hash> <hex pairs separated by colons>)');
      }
      if (!bytes) fail(n, line, `fingerprint hash ${hash} is not supported (sha-1 to sha-512)`);
      if ((hex.length + 1) / 3 !== bytes) fail(n, line, `a ${hash} fingerprint has ${bytes} bytes`);
      if (t.fingerprints.length >= 8) fail(n, line, 'more than 8 fingerprints');
      t.fingerprints.push(value);
      return;
    }
    case 'setup':
      if (t.setup !== undefined) fail(n, line, 'second a=setup');
      if (!value || !SETUP_ROLES.has(value)) fail(n, line, 'a=setup must be actpass, active or passive');
      t.setup = value as SetupRole;
      return;
    case 'candidate':
      if (t.candidates.length >= SDP_LIMITS.maxCandidatesPerSection) {
        fail(n, line, `more than ${SDP_LIMITS.maxCandidatesPerSection} candidates in one section`);
      }
      checkCandidate(value, n, line);
      t.candidates.push(value as string);
      return;
    case 'end-of-candidates':
      t.endOfCandidates = true;
      return;
  }
}

/** RFC 8839 §5.1: foundation component transport priority address port typ type [extensions]. */
function checkCandidate(value: string | undefined, n: number, line: string): void {
  const bad = (what: string): never => fail(n, line, `malformed a=candidate (${what})`);
  const parts = value ? value.split(' ') : [];
  if (parts.length < 8 || parts.some((p) => p === '')) bad('too few fields');
  const [foundation, component, transport, priority, address, port, typ, type] = parts;
  if (foundation.length > 32 || !ICE_CHARS.test(foundation)) bad('foundation');
  if (!/^[0-9]{1,3}$/.test(component) || Number(component) < 1 || Number(component) > 256) bad('component');
  if (!/^(udp|tcp)$/i.test(transport)) bad('transport is not UDP or TCP');
  if (!UINT.test(priority) || Number(priority) > 0xffffffff) bad('priority');
  if (!isAddress(address)) bad('address');
  if (!isPort(port)) bad('port');
  if (typ !== 'typ' || !/^(host|srflx|prflx|relay)$/.test(type)) bad('typ');
  if ((parts.length - 8) % 2 !== 0) bad('extension without a value');
  for (let i = 8; i < parts.length; i += 2) {
    const [key, val] = [parts[i], parts[i + 1]];
    if (!TOKEN.test(key)) bad('extension name');
    if (key === 'raddr' && !isAddress(val)) bad('raddr');
    if (key === 'rport' && !isPort(val)) bad('rport');
    if (key === 'generation' && !UINT.test(val)) bad('generation');
    if (key === 'tcptype' && !/^(active|passive|so)$/.test(val)) bad('tcptype');
  }
}

function isAddress(text: string): boolean {
  return isIP(text) !== 0 || (text.length <= 253 && HOSTNAME.test(text));
}

function isPort(text: string): boolean {
  return /^[0-9]{1,5}$/.test(text) && Number(text) <= 65535;
}

function finishSection(
  b: SectionBuilder,
  session: SectionBuilder['ice'],
  sessionDirection: MediaDirection | undefined,
): void {
  const section = b.section;
  section.direction = b.direction ?? sessionDirection ?? 'sendrecv';
  section.ice = {
    ufrag: b.ice.ufrag ?? session.ufrag,
    pwd: b.ice.pwd ?? session.pwd,
    fingerprints: b.ice.fingerprints.length > 0 ? b.ice.fingerprints : session.fingerprints,
    setup: b.ice.setup ?? session.setup,
    candidates: b.ice.candidates,
    endOfCandidates: b.ice.endOfCandidates,
  };
  section.hasIceCredentials = section.ice.ufrag !== undefined && section.ice.pwd !== undefined;
  section.hasFingerprint = section.ice.fingerprints.length > 0;
  if (section.kind !== 'audio' && section.kind !== 'video') return;
  const common = b.feedback.get('*') ?? [];
  for (const format of section.formats) {
    const payloadType = Number(format);
    const rtpmap = b.rtpmaps.get(payloadType) ?? STATIC_PAYLOAD_TYPES[payloadType];
    if (!rtpmap) {
      fail(section.line, mLineOf(section), `payload type ${payloadType} has no a=rtpmap`);
    }
    const fmtpLine = b.fmtps.get(payloadType);
    const own = b.feedback.get(format) ?? [];
    section.codecs.push({
      payloadType,
      name: rtpmap.name,
      clockRate: rtpmap.clockRate,
      channels: rtpmap.channels,
      fmtp: parseFmtp(fmtpLine),
      fmtpLine,
      rtcpFeedback: common.length === 0 ? own : [...new Set([...own, ...common])],
    });
  }
}

function mLineOf(section: SdpMediaSection): string {
  return `m=${section.kind} ${section.port} ${section.protocol} ${section.formats.join(' ')}`;
}

function parseFmtp(line: string | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  if (!line) return params;
  for (const part of line.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    params[part.slice(0, eq).trim().toLowerCase()] = part.slice(eq + 1).trim();
  }
  return params;
}
