// Offer planning for WHIP/WHEP: which m-sections and codecs an answer uses, and the rewrite that
// makes werift answer only what we can handle. Parsing and structural checks are in sdp-parse.ts.
//
// werift 0.24 negotiates codecs by mime type alone (fmtp is ignored), echoes the offerer's rtcp-fb
// lines, and runs one ICE/DTLS transport for a BUNDLE group while applying every bundled section's
// ICE parameters to it (the last one wins). So werift sees a rewritten offer: only the chosen
// payload types and feedback, and the BUNDLE-tag section's ICE and DTLS parameters everywhere.
import {
  type MediaDirection,
  type ParsedSdp,
  parseSdp,
  type SdpCodec,
  type SdpMediaSection,
  SdpParseError,
  type SdpTransport,
} from './sdp-parse.ts';

export {
  type MediaDirection,
  type ParsedSdp,
  parseSdp,
  SDP_LIMITS,
  type SdpCodec,
  type SdpMediaSection,
  SdpParseError,
  type SdpTransport,
} from './sdp-parse.ts';

export type OfferPurpose = 'publish' | 'view';

export interface AcceptedMedia {
  /** The m-section that carries this kind. */
  index: number;
  mid?: string;
  /** Acceptable codecs as offered, e.g. `H264/90000 profile-level-id=42e01f;packetization-mode=1`. */
  codecs: string[];
  payloadTypes: number[];
  /** Video only: the codec the answer uses. */
  codec?: VideoCodecName;
}

export type OfferCheck =
  | { ok: true; video?: AcceptedMedia; audio?: AcceptedMedia }
  | { ok: false; status: 400 | 406; reason: string };

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
/** What each purpose takes: publishers' VP8/VP9/AV1 are transcoded to H.264, viewers without H.264 get VP8. */
export const ACCEPTED_VIDEO_BY_PURPOSE: Record<OfferPurpose, string> = {
  publish: `${ACCEPTED_VIDEO_DESCRIPTION}, VP8, VP9, AV1`,
  view: `${ACCEPTED_VIDEO_DESCRIPTION}, VP8`,
};

/** The video codec an answer uses: H.264 passes through; VP8/VP9/AV1 go through an ffmpeg transcode. */
export type VideoCodecName = 'h264' | 'vp8' | 'vp9' | 'av1';
export const ACCEPTED_AUDIO_DESCRIPTION = 'opus/48000/2';

/** Codecs that repair or wrap another codec; never the reason an offer is acceptable. */
const REPAIR_CODECS = new Set(['rtx', 'red', 'ulpfec', 'flexfec-03', 'flexfec']);

/** Ingest keeps at most this many H.264 variants (Chrome offers ~8); werift matches them one by one. */
const MAX_VIDEO_CODECS = 16;

export function isAcceptableH264(codec: SdpCodec): boolean {
  return (
    codec.name.toLowerCase() === 'h264' &&
    codec.clockRate === 90000 &&
    codec.fmtp['packetization-mode'] === '1'
  );
}

/** VP8, VP9 profile 0 (8-bit 4:2:0, what browsers send unless asked otherwise), or AV1 Main (profile 0). */
export function isAcceptableVpx(codec: SdpCodec, name: 'vp8' | 'vp9' | 'av1'): boolean {
  if (codec.name.toLowerCase() !== name || codec.clockRate !== 90000) return false;
  if (name === 'av1') return (codec.fmtp.profile ?? '0') === '0';
  return name === 'vp8' || (codec.fmtp['profile-id'] ?? '0') === '0';
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
  video: { section: SdpMediaSection; codecs: SdpCodec[]; codec: VideoCodecName };
  audio?: { section: SdpMediaSection; codecs: SdpCodec[] };
  /**
   * With a=group:BUNDLE: the BUNDLE-tag section, the first mid of the group that the answer accepts.
   * Its ICE and DTLS parameters (and only its candidates) apply to the whole bundle (RFC 8843 §7).
   */
  bundleTag?: SdpMediaSection;
}

type PlanResult = { ok: true; plan: OfferPlan } | { ok: false; status: 400 | 406; reason: string };

const refuse = (status: 400 | 406, reason: string) => ({ ok: false as const, status, reason });

/**
 * Parses an offer (sdp-parse.ts: bounded, linear, every structural error a 400 naming the line) and
 * picks what the answer uses: the first usable video section with H.264 packetization-mode=1 and
 * the first usable audio section with Opus. With a BUNDLE group, sections outside it are declined.
 */
export function planOffer(sdp: string, purpose: OfferPurpose): PlanResult {
  // LiveSession checks an offer (checkOffer) right before its peer plans it again: parse it once.
  // Plans are never modified, so sharing the last one is safe.
  if (lastPlan && lastPlan.sdp === sdp && lastPlan.purpose === purpose) return lastPlan.result;
  const result = plan(sdp, purpose);
  lastPlan = { sdp, purpose, result };
  return result;
}

let lastPlan: { sdp: string; purpose: OfferPurpose; result: PlanResult } | undefined;

function plan(sdp: string, purpose: OfferPurpose): PlanResult {
  let parsed: ParsedSdp;
  try {
    parsed = parseSdp(sdp);
  } catch (err) {
    if (err instanceof SdpParseError) return refuse(400, err.message);
    throw err;
  }
  if (parsed.media.length === 0) return refuse(400, 'SDP has no m= line');
  const bundle = new Set(parsed.bundle);
  const inBundle = (m: SdpMediaSection) => m.mid !== undefined && bundle.has(m.mid);
  for (const m of parsed.media) {
    if (m.kind !== 'audio' && m.kind !== 'video' && m.kind !== 'application') {
      return refuse(400, `line ${m.line}: m=${m.kind} is not supported (audio, video, application)`);
    }
  }
  // A bundle-only section (RFC 8843 §6) has port 0 yet is in use.
  const active = parsed.media.filter((m) => m.port !== 0 || (m.bundleOnly && inBundle(m)));
  if (active.length === 0) return refuse(400, 'every m= line is rejected (port 0)');
  // werift puts every section of a bundled offer on the one transport: one outside the group
  // cannot have its own, so it is declined (RTP) or refused (a data channel we would answer).
  const usableTransport = (m: SdpMediaSection) => parsed.bundle === undefined || inBundle(m);
  const strayApplication = active.find((m) => m.kind === 'application' && !usableTransport(m));
  if (strayApplication) {
    return refuse(400, `line ${strayApplication.line}: m=application is outside the BUNDLE group`);
  }
  const usable: ReadonlySet<MediaDirection> =
    purpose === 'publish' ? new Set(['sendonly', 'sendrecv']) : new Set(['recvonly', 'sendrecv']);
  const verb = purpose === 'publish' ? 'send' : 'receive';

  const videoSections = active.filter((m) => m.kind === 'video' && usableTransport(m));
  if (videoSections.length === 0) {
    const stray = active.find((m) => m.kind === 'video');
    if (stray) return refuse(400, `line ${stray.line}: the video m-section is outside the BUNDLE group`);
    return refuse(406, `no video m-section offered; accepted ${ACCEPTED_VIDEO_BY_PURPOSE[purpose]}`);
  }
  const usableVideo = videoSections.filter((m) => usable.has(m.direction));
  if (usableVideo.length === 0) {
    return refuse(
      400,
      `video m-section is ${videoSections[0].direction}; a ${purpose} offer must be able to ${verb} video`,
    );
  }
  // H.264 anywhere wins (no transcode); then VP8, then (publishers only) VP9, then AV1.
  const fallbacks: ('vp8' | 'vp9' | 'av1')[] = purpose === 'publish' ? ['vp8', 'vp9', 'av1'] : ['vp8'];
  let video: OfferPlan['video'] | undefined;
  for (const section of usableVideo) {
    const codecs = section.codecs.filter(isAcceptableH264);
    if (codecs.length > 0) {
      video = { section, codecs: codecs.slice(0, MAX_VIDEO_CODECS), codec: 'h264' };
      break;
    }
  }
  for (const name of fallbacks) {
    for (const section of usableVideo) {
      if (video) break;
      const codec = section.codecs.find((c) => isAcceptableVpx(c, name));
      if (codec) video = { section, codecs: [codec], codec: name };
    }
  }
  if (!video) {
    return refuse(
      406,
      `no acceptable video codec: offered ${describeOffered(usableVideo)}; accepted ${ACCEPTED_VIDEO_BY_PURPOSE[purpose]}`,
    );
  }
  let audio: OfferPlan['audio'];
  for (const section of active) {
    if (section.kind !== 'audio' || !usable.has(section.direction) || !usableTransport(section)) continue;
    const codecs = section.codecs.filter(isAcceptableOpus);
    if (codecs.length > 0) {
      audio = { section, codecs };
      break;
    }
  }
  const accepted = new Set<SdpMediaSection>([video.section]);
  if (audio) accepted.add(audio.section);
  for (const m of active) if (m.kind === 'application') accepted.add(m);

  let bundleTag: SdpMediaSection | undefined;
  if (parsed.bundle) {
    const byMid = new Map(parsed.media.map((m) => [m.mid, m]));
    bundleTag = parsed.bundle.map((mid) => byMid.get(mid)).find((m) => m && accepted.has(m));
  }
  // The sections whose transport parameters werift will use: the tag, or each accepted section.
  for (const m of bundleTag ? [bundleTag] : accepted) {
    const where = `the m= section on line ${m.line}${bundleTag ? ' (the BUNDLE tag)' : ''}`;
    if (!m.hasIceCredentials) {
      return refuse(400, `${where} has no ICE credentials (a=ice-ufrag and a=ice-pwd)`);
    }
    if (!m.hasFingerprint) return refuse(400, `${where} has no DTLS fingerprint (a=fingerprint)`);
  }
  return { ok: true, plan: { parsed, video, audio, bundleTag } };
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

function accepted(media: {
  section: SdpMediaSection;
  codecs: SdpCodec[];
  codec?: VideoCodecName;
}): AcceptedMedia {
  return {
    index: media.section.index,
    mid: media.section.mid,
    codecs: media.codecs.map(describeCodec),
    payloadTypes: media.codecs.map((c) => c.payloadType),
    codec: media.codec,
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

/** Session-level attributes werift may read and that need no rewriting; the rest is left out. */
const SESSION_ATTRIBUTES = new Set(['ice-lite', 'ice-options', 'msid-semantic', 'extmap-allow-mixed']);
/** Media-level attributes passed through for the sections an answer uses. */
const KEPT_ATTRIBUTES = new Set(['msid', 'extmap', 'extmap-allow-mixed', 'rtcp-mux', 'rtcp-rsize']);
const SCTP_ATTRIBUTES = new Set(['sctp-port', 'max-message-size', 'sctpmap']);

/**
 * Writes the offer werift sees, from the parsed offer only (no unchecked line reaches werift):
 * - used sections keep only the chosen payload types (rtpmap, fmtp as offered, the allowed
 *   rtcp-fb once each) and their media SSRC; rtx/FEC, their SSRCs, rid/simulcast go;
 * - every other audio/video section becomes `inactive` with a single codec, which werift answers
 *   with port 0 (rejected);
 * - with BUNDLE, every section carries the BUNDLE-tag section's ICE and DTLS parameters and only
 *   the tag's candidates (RFC 8843 §7), so werift's one transport gets one set of credentials.
 */
export function rewriteOffer(plan: OfferPlan, spec: RewriteSpec): RewrittenOffer {
  const { parsed, bundleTag } = plan;
  const declined: RewrittenOffer['declinedMimeTypes'] = [];
  const out: string[] = [];
  for (const line of parsed.sessionLines) {
    if (line.startsWith('a=')) {
      const colon = line.indexOf(':');
      if (SESSION_ATTRIBUTES.has(colon < 0 ? line.slice(2) : line.slice(2, colon))) out.push(line);
    } else if ('vostc'.includes(line[0])) out.push(line);
  }
  if (parsed.bundle) out.push(`a=group:BUNDLE ${parsed.bundle.join(' ')}`);
  for (const section of parsed.media) {
    let keep: RewriteSpec['video'] | undefined;
    if (section === plan.video.section) keep = spec.video;
    else if (plan.audio && section === plan.audio.section) keep = spec.audio;
    const transport = bundleTag && parsed.bundle ? bundleTag.ice : section.ice;
    const candidates = !bundleTag || section === bundleTag;
    const port = section.port === 0 && section.bundleOnly && keep ? 9 : section.port;
    const head = (formats: readonly (string | number)[]) =>
      `m=${section.kind} ${port} ${section.protocol} ${formats.join(' ')}`;
    const connection = section.lines.find((l) => l.startsWith('c='));
    const lines: string[] = [];
    if (section.kind === 'application') {
      lines.push(head(section.formats));
      if (connection) lines.push(connection);
      if (section.mid !== undefined) lines.push(`a=mid:${section.mid}`);
      lines.push(...section.lines.filter((l) => SCTP_ATTRIBUTES.has(attributeName(l))));
    } else if (keep) {
      const codecs = byPayloadType(section.codecs);
      lines.push(head(keep.payloadTypes));
      if (connection) lines.push(connection);
      if (section.mid !== undefined) lines.push(`a=mid:${section.mid}`);
      lines.push(`a=${section.direction}`);
      lines.push(...section.lines.filter((l) => KEPT_ATTRIBUTES.has(attributeName(l))));
      lines.push(...mediaSsrcLines(section));
      for (const pt of keep.payloadTypes) {
        const codec = codecs.get(pt);
        if (!codec) throw new Error(`payload type ${pt} is not offered in m-section ${section.index}`);
        lines.push(rtpmapLine(codec));
        if (codec.fmtpLine) lines.push(`a=fmtp:${pt} ${codec.fmtpLine}`);
        for (const fb of codec.rtcpFeedback)
          if (keep.rtcpFeedback.includes(fb)) lines.push(`a=rtcp-fb:${pt} ${fb}`);
      }
    } else {
      // Every audio/video format has a codec (sdp-parse refuses one without a=rtpmap or static type).
      const first = section.codecs[0];
      declined.push({
        mimeType: `${section.kind}/${first.name}`,
        clockRate: first.clockRate,
        channels: first.channels,
      });
      lines.push(head([first.payloadType]));
      if (connection) lines.push(connection);
      if (section.mid !== undefined) lines.push(`a=mid:${section.mid}`);
      lines.push('a=inactive');
      if (section.lines.includes('a=rtcp-mux')) lines.push('a=rtcp-mux');
      lines.push(rtpmapLine(first));
    }
    lines.push(...transportLines(transport, candidates));
    out.push(...lines);
  }
  return { sdp: `${out.join('\r\n')}\r\n`, declinedMimeTypes: declined };
}

function attributeName(line: string): string {
  if (!line.startsWith('a=')) return '';
  const colon = line.indexOf(':');
  return colon < 0 ? line.slice(2) : line.slice(2, colon);
}

function byPayloadType(codecs: SdpCodec[]): Map<number, SdpCodec> {
  return new Map(codecs.map((c) => [c.payloadType, c]));
}

function rtpmapLine(codec: SdpCodec): string {
  const channels = codec.channels === undefined ? '' : `/${codec.channels}`;
  return `a=rtpmap:${codec.payloadType} ${codec.name}/${codec.clockRate}${channels}`;
}

/** The a=ssrc attributes werift reads (its SSRC_INFO_ATTRS); others it ignores. */
const SSRC_ATTRIBUTES = new Set(['cname', 'msid', 'mslabel', 'label']);

/**
 * a=ssrc lines of the media SSRCs only, one per SSRC and attribute werift reads. rtx/FEC are never
 * kept, so neither are their SSRCs (the later members of an ssrc-group): werift takes the first
 * a=ssrc of a section as the media SSRC.
 */
function mediaSsrcLines(section: SdpMediaSection): string[] {
  const repair = new Set<string>();
  for (const line of section.lines) {
    if (line.startsWith('a=ssrc-group:')) for (const ssrc of line.split(' ').slice(2)) repair.add(ssrc);
  }
  const seen = new Set<string>();
  return section.lines.filter((line) => {
    if (!line.startsWith('a=ssrc:')) return false;
    const space = line.indexOf(' ');
    const ssrc = line.slice('a=ssrc:'.length, space);
    const colon = line.indexOf(':', space);
    const attribute = colon < 0 ? line.slice(space + 1) : line.slice(space + 1, colon);
    const key = `${ssrc} ${attribute}`;
    if (repair.has(ssrc) || !SSRC_ATTRIBUTES.has(attribute) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function transportLines(t: SdpTransport, withCandidates: boolean): string[] {
  const lines: string[] = [];
  if (t.ufrag !== undefined) lines.push(`a=ice-ufrag:${t.ufrag}`);
  if (t.pwd !== undefined) lines.push(`a=ice-pwd:${t.pwd}`);
  for (const fingerprint of t.fingerprints) lines.push(`a=fingerprint:${fingerprint}`);
  // RFC 4145 §4: no a=setup means active.
  lines.push(`a=setup:${t.setup ?? 'active'}`);
  if (withCandidates) {
    for (const candidate of t.candidates) lines.push(`a=candidate:${candidate}`);
    if (t.endOfCandidates) lines.push('a=end-of-candidates');
  }
  return lines;
}

/**
 * Finishes werift's answer: drops rejected (port 0) m-sections from a=group:BUNDLE, as RFC 8843
 * requires, and checks that the accepted bundled sections share one set of ICE and DTLS
 * parameters (werift runs one transport for them). Throws on an answer that does not.
 */
export function finishAnswer(answerSdp: string, offerBundled = true): string {
  if (!offerBundled) {
    // werift writes a BUNDLE group even when the offer had none, with one transport per section;
    // an answer may not add one (RFC 8843 §7.3), so it goes.
    return answerSdp.replace(/^a=group:BUNDLE[^\r\n]*\r?\n/gm, '');
  }
  const parsed = parseSdp(answerSdp);
  if (parsed.bundle) {
    const bundled = new Set(parsed.bundle);
    const used = parsed.media.filter((m) => m.port !== 0 && m.mid !== undefined && bundled.has(m.mid));
    const key = (m: SdpMediaSection) => `${m.ice.ufrag} ${m.ice.pwd} ${m.ice.fingerprints.join(',')}`;
    if (used.some((m) => key(m) !== key(used[0]))) {
      throw new Error('werift answered a BUNDLE group with differing ICE/DTLS parameters');
    }
  }
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
