// SDP checks for WHIP/WHEP offers, and the rewrite that makes werift answer only what we can handle.
//
// werift 0.24 negotiates codecs by mime type alone (fmtp is ignored) and echoes the offerer's
// rtcp-fb lines, so without the rewrite an answer would accept H.264 packetization-mode=0 or
// transport-cc feedback that werift does not really implement.

export type OfferPurpose = 'publish' | 'view';
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export interface SdpCodec {
  payloadType: number;
  /** As written in a=rtpmap, e.g. `H264`, `opus`. */
  name: string;
  clockRate: number;
  channels?: number;
  /** a=fmtp parameters, keys lower-cased. */
  fmtp: Record<string, string>;
  fmtpLine?: string;
  /** a=rtcp-fb values for this payload type (and `*`), e.g. `nack`, `nack pli`. */
  rtcpFeedback: string[];
}

export interface SdpMediaSection {
  /** Position among the m= lines (werift's mLineIndex). */
  index: number;
  kind: string;
  port: number;
  protocol: string;
  formats: string[];
  mid?: string;
  direction: MediaDirection;
  codecs: SdpCodec[];
  hasIceCredentials: boolean;
  hasFingerprint: boolean;
  /** Lines after the m= line. */
  lines: string[];
}

export interface ParsedSdp {
  /** Lines before the first m= line. */
  sessionLines: string[];
  media: SdpMediaSection[];
}

export interface AcceptedMedia {
  /** The m-section that carries this kind. */
  index: number;
  mid?: string;
  /** Acceptable codecs as offered, e.g. `H264/90000 profile-level-id=42e01f;packetization-mode=1`. */
  codecs: string[];
  payloadTypes: number[];
}

export type OfferCheck =
  | { ok: true; video?: AcceptedMedia; audio?: AcceptedMedia }
  | { ok: false; status: 400 | 406; reason: string };

export class SdpParseError extends Error {
  override name = 'SdpParseError';
}

/** Thrown by IngestPeer/EgressPeer.create for an offer that checkOffer refuses. */
export class OfferRejectedError extends Error {
  override name = 'OfferRejectedError';
  constructor(
    readonly status: 400 | 406,
    reason: string,
  ) {
    super(reason);
  }
}

export const ACCEPTED_VIDEO_DESCRIPTION = 'H264 (packetization-mode=1)';
export const ACCEPTED_AUDIO_DESCRIPTION = 'opus/48000/2';

/** Codecs that repair or wrap another codec; never the reason an offer is acceptable. */
const REPAIR_CODECS = new Set(['rtx', 'red', 'ulpfec', 'flexfec-03', 'flexfec']);
const DIRECTIONS = new Set<string>(['sendrecv', 'sendonly', 'recvonly', 'inactive']);

export function parseSdp(sdp: string): ParsedSdp {
  const lines = sdp.split(/\r?\n/).filter((line) => line.length > 0);
  if (lines[0] !== 'v=0') throw new SdpParseError('SDP must start with "v=0"');
  const sessionLines: string[] = [];
  const media: SdpMediaSection[] = [];
  let current: SdpMediaSection | undefined;
  for (const line of lines) {
    if (!/^[a-z]=/.test(line)) throw new SdpParseError(`malformed SDP line: ${truncate(line)}`);
    if (line.startsWith('m=')) {
      const m = /^m=(\S+) (\d+)(?:\/\d+)? (\S+)((?: \S+)*)$/.exec(line);
      if (!m) throw new SdpParseError(`malformed m= line: ${truncate(line)}`);
      current = {
        index: media.length,
        kind: m[1],
        port: Number(m[2]),
        protocol: m[3],
        formats: m[4].trim().split(' ').filter(Boolean),
        direction: 'sendrecv',
        codecs: [],
        hasIceCredentials: false,
        hasFingerprint: false,
        lines: [],
      };
      media.push(current);
    } else if (current) {
      current.lines.push(line);
    } else {
      sessionLines.push(line);
    }
  }
  const sessionDirection = directionIn(sessionLines);
  const sessionHasIce = hasIceCredentials(sessionLines);
  const sessionHasFingerprint = sessionLines.some((l) => l.startsWith('a=fingerprint:'));
  for (const section of media) {
    section.direction = directionIn(section.lines) ?? sessionDirection ?? 'sendrecv';
    section.mid = attributeValue(section.lines, 'mid');
    section.hasIceCredentials = sessionHasIce || hasIceCredentials(section.lines);
    section.hasFingerprint =
      sessionHasFingerprint || section.lines.some((l) => l.startsWith('a=fingerprint:'));
    section.codecs = parseCodecs(section);
  }
  return { sessionLines, media };
}

function parseCodecs(section: SdpMediaSection): SdpCodec[] {
  if (section.kind !== 'audio' && section.kind !== 'video') return [];
  const codecs: SdpCodec[] = [];
  for (const format of section.formats) {
    const payloadType = Number(format);
    if (!Number.isInteger(payloadType)) continue;
    const rtpmap = attributeValue(section.lines, `rtpmap:${format}`);
    let name: string;
    let clockRate: number;
    let channels: number | undefined;
    if (rtpmap) {
      const m = /^([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(rtpmap);
      if (!m) throw new SdpParseError(`malformed a=rtpmap for payload type ${format}`);
      name = m[1];
      clockRate = Number(m[2]);
      channels = m[3] === undefined ? undefined : Number(m[3]);
    } else {
      // RFC 3551 static payload types may come without rtpmap; only the common ones matter here.
      const known = STATIC_PAYLOAD_TYPES[payloadType];
      if (!known) continue;
      ({ name, clockRate } = known);
    }
    const fmtpLine = attributeValue(section.lines, `fmtp:${format}`);
    const feedbackPrefixes = [`a=rtcp-fb:${format} `, 'a=rtcp-fb:* '];
    const rtcpFeedback = section.lines
      .filter((l) => feedbackPrefixes.some((p) => l.startsWith(p)))
      .map((l) => l.slice(l.indexOf(' ') + 1).trim());
    codecs.push({
      payloadType,
      name,
      clockRate,
      channels,
      fmtp: parseFmtp(fmtpLine),
      fmtpLine,
      rtcpFeedback: [...new Set(rtcpFeedback)],
    });
  }
  return codecs;
}

const STATIC_PAYLOAD_TYPES: Record<number, { name: string; clockRate: number }> = {
  0: { name: 'PCMU', clockRate: 8000 },
  8: { name: 'PCMA', clockRate: 8000 },
  9: { name: 'G722', clockRate: 8000 },
};

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

function attributeValue(lines: string[], name: string): string | undefined {
  const prefix = `a=${name}`;
  for (const line of lines) {
    if (line === prefix) return '';
    if (line.startsWith(`${prefix}:`)) return line.slice(prefix.length + 1);
    if (line.startsWith(`${prefix} `)) return line.slice(prefix.length + 1);
  }
  return undefined;
}

function directionIn(lines: string[]): MediaDirection | undefined {
  for (const line of lines) {
    const value = line.slice(2);
    if (line.startsWith('a=') && DIRECTIONS.has(value)) return value as MediaDirection;
  }
  return undefined;
}

function hasIceCredentials(lines: string[]): boolean {
  return lines.some((l) => l.startsWith('a=ice-ufrag:')) && lines.some((l) => l.startsWith('a=ice-pwd:'));
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function isAcceptableH264(codec: SdpCodec): boolean {
  return (
    codec.name.toLowerCase() === 'h264' &&
    codec.clockRate === 90000 &&
    codec.fmtp['packetization-mode'] === '1'
  );
}

export function isAcceptableOpus(codec: SdpCodec): boolean {
  return codec.name.toLowerCase() === 'opus' && codec.clockRate === 48000 && (codec.channels ?? 1) === 2;
}

export function describeCodec(codec: SdpCodec): string {
  const rate = `${codec.name}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`;
  return codec.fmtpLine ? `${rate} ${codec.fmtpLine}` : rate;
}

/** Offered codec names for an error message, e.g. `VP8, VP9, H264 (packetization-mode=0)`. */
function describeOffered(sections: SdpMediaSection[]): string {
  const names: string[] = [];
  for (const section of sections) {
    for (const codec of section.codecs) {
      if (REPAIR_CODECS.has(codec.name.toLowerCase())) continue;
      let name = codec.name;
      if (name.toLowerCase() === 'h264')
        name = `H264 (packetization-mode=${codec.fmtp['packetization-mode'] ?? '0'})`;
      else if (name.toLowerCase() === 'opus' && !isAcceptableOpus(codec)) name = describeCodec(codec);
      if (!names.includes(name)) names.push(name);
    }
  }
  return names.length > 0 ? names.join(', ') : 'none';
}

/** The m-sections an answer will use, with their acceptable codecs in offer order. */
export interface OfferPlan {
  parsed: ParsedSdp;
  video: { section: SdpMediaSection; codecs: SdpCodec[] };
  audio?: { section: SdpMediaSection; codecs: SdpCodec[] };
}

type PlanResult = { ok: true; plan: OfferPlan } | { ok: false; status: 400 | 406; reason: string };

export function planOffer(sdp: string, purpose: OfferPurpose): PlanResult {
  let parsed: ParsedSdp;
  try {
    parsed = parseSdp(sdp);
  } catch (err) {
    if (err instanceof SdpParseError) return { ok: false, status: 400, reason: err.message };
    throw err;
  }
  if (parsed.media.length === 0) return { ok: false, status: 400, reason: 'SDP has no m= line' };
  const active = parsed.media.filter((m) => m.port !== 0);
  if (active.length === 0) return { ok: false, status: 400, reason: 'every m= line is rejected (port 0)' };
  if (!active.every((m) => m.hasIceCredentials)) {
    return { ok: false, status: 400, reason: 'SDP has no ICE credentials (a=ice-ufrag and a=ice-pwd)' };
  }
  if (!active.every((m) => m.hasFingerprint)) {
    return { ok: false, status: 400, reason: 'SDP has no DTLS fingerprint (a=fingerprint)' };
  }
  const usable: ReadonlySet<MediaDirection> =
    purpose === 'publish' ? new Set(['sendonly', 'sendrecv']) : new Set(['recvonly', 'sendrecv']);
  const verb = purpose === 'publish' ? 'send' : 'receive';

  const videoSections = active.filter((m) => m.kind === 'video');
  if (videoSections.length === 0) {
    return {
      ok: false,
      status: 406,
      reason: `no video m-section offered; accepted ${ACCEPTED_VIDEO_DESCRIPTION}`,
    };
  }
  const usableVideo = videoSections.filter((m) => usable.has(m.direction));
  if (usableVideo.length === 0) {
    return {
      ok: false,
      status: 400,
      reason: `video m-section is ${videoSections[0].direction}; a ${purpose} offer must be able to ${verb} video`,
    };
  }
  let video: OfferPlan['video'] | undefined;
  for (const section of usableVideo) {
    const codecs = section.codecs.filter(isAcceptableH264);
    if (codecs.length > 0) {
      video = { section, codecs };
      break;
    }
  }
  if (!video) {
    return {
      ok: false,
      status: 406,
      reason: `no acceptable video codec: offered ${describeOffered(usableVideo)}; accepted ${ACCEPTED_VIDEO_DESCRIPTION}`,
    };
  }
  let audio: OfferPlan['audio'];
  for (const section of active) {
    if (section.kind !== 'audio' || !usable.has(section.direction)) continue;
    const codecs = section.codecs.filter(isAcceptableOpus);
    if (codecs.length > 0) {
      audio = { section, codecs };
      break;
    }
  }
  return { ok: true, plan: { parsed, video, audio } };
}

/**
 * Validates a WHIP (`publish`) or WHEP (`view`) offer. 400: malformed (no `v=0`, no m= line, no ICE
 * credentials, no fingerprint, wrong direction). 406: no H.264 with packetization-mode=1 (any
 * profile). Audio is optional: an audio m-section without Opus is answered as rejected.
 */
export function checkOffer(sdp: string, direction: OfferPurpose): OfferCheck {
  const result = planOffer(sdp, direction);
  if (!result.ok) return result;
  const { video, audio } = result.plan;
  return {
    ok: true,
    video: accepted(video),
    audio: audio ? accepted(audio) : undefined,
  };
}

function accepted(media: { section: SdpMediaSection; codecs: SdpCodec[] }): AcceptedMedia {
  return {
    index: media.section.index,
    mid: media.section.mid,
    codecs: media.codecs.map(describeCodec),
    payloadTypes: media.codecs.map((c) => c.payloadType),
  };
}

/**
 * The H.264 profile a profile-level-id names (RFC 6184 §8.1), coarse enough to match a stream
 * against an offer: `constrained-baseline`, `baseline`, `main`, `high`, or `idc-XX`.
 */
export function h264Profile(profileLevelId: string | undefined): string {
  const id = (profileLevelId ?? '42001f').toLowerCase();
  const idc = Number.parseInt(id.slice(0, 2), 16);
  const iop = Number.parseInt(id.slice(2, 4), 16);
  if ((idc === 0x42 && iop & 0x40) || (idc === 0x4d && iop & 0x80)) return 'constrained-baseline';
  if (idc === 0x42) return 'baseline';
  if (idc === 0x4d) return 'main';
  if (idc === 0x64) return 'high';
  return `idc-${id.slice(0, 2)}`;
}

/** Picks one H.264 variant for sending: same profile as the stream if offered, else constrained baseline, else the first. */
export function pickH264ForSending(codecs: SdpCodec[], streamProfileLevelId?: string): SdpCodec {
  const profileOf = (c: SdpCodec) => h264Profile(c.fmtp['profile-level-id']);
  const wanted = streamProfileLevelId ? h264Profile(streamProfileLevelId) : undefined;
  return (
    (wanted ? codecs.find((c) => profileOf(c) === wanted) : undefined) ??
    codecs.find((c) => profileOf(c) === 'constrained-baseline') ??
    codecs[0]
  );
}

export interface RewriteSpec {
  video: { payloadTypes: number[]; rtcpFeedback: readonly string[] };
  audio?: { payloadTypes: number[]; rtcpFeedback: readonly string[] };
}

export interface RewrittenOffer {
  sdp: string;
  /** mime types (`video/VP8`) werift must know so it can answer the sections we turn down. */
  declinedMimeTypes: { mimeType: string; clockRate: number; channels?: number }[];
}

/**
 * Keeps only the chosen payload types and feedback in the used sections; every other audio/video
 * section becomes `inactive` with a single codec, which werift answers with port 0 (rejected).
 */
export function rewriteOffer(plan: OfferPlan, spec: RewriteSpec): RewrittenOffer {
  const declined: RewrittenOffer['declinedMimeTypes'] = [];
  const out: string[] = [...plan.parsed.sessionLines];
  for (const section of plan.parsed.media) {
    let keep: { payloadTypes: number[]; rtcpFeedback: readonly string[] } | undefined;
    if (section === plan.video.section) keep = spec.video;
    else if (plan.audio && section === plan.audio.section) keep = spec.audio;
    const isRtp = section.kind === 'audio' || section.kind === 'video';
    if (!isRtp) {
      out.push(mLine(section, section.formats), ...section.lines);
      continue;
    }
    if (keep) {
      out.push(...rewriteSection(section, keep.payloadTypes, keep.rtcpFeedback));
      continue;
    }
    const first = section.codecs[0];
    if (!first) {
      // Nothing werift could match; a port-0 section is passed through as rejected.
      out.push(mLine({ ...section, port: 0 }, section.formats), ...section.lines);
      continue;
    }
    declined.push({
      mimeType: `${section.kind}/${first.name}`,
      clockRate: first.clockRate,
      channels: first.channels,
    });
    const lines = rewriteSection(section, [first.payloadType], []);
    out.push(...lines.map((l) => (l.startsWith('a=') && DIRECTIONS.has(l.slice(2)) ? 'a=inactive' : l)));
    if (!directionIn(section.lines)) out.push('a=inactive');
  }
  return { sdp: `${out.join('\r\n')}\r\n`, declinedMimeTypes: declined };
}

function mLine(section: Pick<SdpMediaSection, 'kind' | 'port' | 'protocol'>, formats: string[]): string {
  return `m=${section.kind} ${section.port} ${section.protocol} ${formats.join(' ')}`;
}

const PAYLOAD_ATTRIBUTE = /^a=(rtpmap|fmtp|rtcp-fb):(\d+|\*)[ ]?(.*)$/;

function rewriteSection(
  section: SdpMediaSection,
  payloadTypes: number[],
  rtcpFeedback: readonly string[],
): string[] {
  const keep = new Set(payloadTypes.map(String));
  // rtx/FEC are never kept, so neither are their SSRCs (the later members of an ssrc-group): werift
  // takes the first a=ssrc of a section as the media SSRC.
  const repairSsrcs = new Set(
    section.lines.filter((l) => l.startsWith('a=ssrc-group:')).flatMap((l) => l.split(' ').slice(2)),
  );
  const out = [
    mLine(
      section,
      section.formats.filter((f) => keep.has(f)),
    ),
  ];
  for (const line of section.lines) {
    const m = PAYLOAD_ATTRIBUTE.exec(line);
    if (m) {
      const [, attribute, payloadType, value] = m;
      if (payloadType !== '*' && !keep.has(payloadType)) continue;
      if (attribute === 'rtcp-fb' && !rtcpFeedback.includes(value.trim())) continue;
    } else if (line.startsWith('a=ssrc-group:')) {
      continue;
    } else if (line.startsWith('a=ssrc:') && repairSsrcs.has(line.slice('a=ssrc:'.length).split(' ')[0])) {
      continue;
    }
    out.push(line);
  }
  return out;
}

/** Removes rejected (port 0) m-sections from a=group:BUNDLE, as RFC 8843 requires of an answer. */
export function dropRejectedFromBundle(answerSdp: string): string {
  const parsed = parseSdp(answerSdp);
  const rejected = new Set(parsed.media.filter((m) => m.port === 0 && m.mid !== undefined).map((m) => m.mid));
  if (rejected.size === 0) return answerSdp;
  const eol = answerSdp.includes('\r\n') ? '\r\n' : '\n';
  return answerSdp
    .split(/\r?\n/)
    .map((line) => {
      if (!line.startsWith('a=group:BUNDLE')) return line;
      const [, ...mids] = line.slice('a=group:'.length).split(' ');
      return ['a=group:BUNDLE', ...mids.filter((mid) => !rejected.has(mid))].join(' ');
    })
    .join(eol);
}
