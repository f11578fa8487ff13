// RFC 8840 SDP fragments (`application/trickle-ice-sdpfrag`), as RFC 9725 PATCH bodies use them:
// a bounded, single-pass parser for what a client sends, and the fragment we answer an ICE
// restart with.

export const SDPFRAG_CONTENT_TYPE = 'application/trickle-ice-sdpfrag';

/** Limits on one fragment; a browser sends well under 2 KiB and a handful of candidates. */
export const SDPFRAG_LIMITS = Object.freeze({ bytes: 16 * 1024, lines: 256, candidates: 64 });

/** One remote candidate, validated and re-serialised with single spaces (werift splits on " "). */
export interface FragmentCandidate {
  /** The attribute value without `candidate:`, e.g. `1 1 udp 2122260223 192.0.2.1 61764 typ host`. */
  sdp: string;
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
  type: string;
}

export interface IceFragment {
  ufrag?: string;
  pwd?: string;
  /** The m-section the ICE information belongs to (the BUNDLE tag), if the fragment names one. */
  mid?: string;
  /** Usable candidates of that section. Other components, transports and types are left out (RFC 9725 §4.3.2). */
  candidates: FragmentCandidate[];
  /** Candidates left out because we cannot use them (not UDP/TCP, component ≠ 1, unknown type). */
  ignoredCandidates: number;
  endOfCandidates: boolean;
}

export class SdpFragError extends Error {
  override name = 'SdpFragError';
}

// RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4-256 chars, pwd 22-256 chars.
const UFRAG = /^[A-Za-z0-9+/]{4,256}$/;
const PWD = /^[A-Za-z0-9+/]{22,256}$/;
const FOUNDATION = /^[A-Za-z0-9+/]{1,32}$/;
const LINE = /^[a-z]=/;
const M_LINE = /^m=[^ ]+ \d+(?:\/\d+)? [^ ]+(?: [^ ]+)*$/;
const TOKEN = /^[!#$%&'*+\-.^_`{|}~A-Za-z0-9]+$/;
// An IPv4/IPv6 literal or a host name (mDNS `.local` names included); resolution is werift's job.
const CONNECTION_ADDRESS = /^[A-Za-z0-9.:%_-]{1,255}$/;
const CANDIDATE_TYPES = new Set(['host', 'srflx', 'prflx', 'relay']);

interface Section {
  mid?: string;
  ufrag?: string;
  pwd?: string;
  candidates: FragmentCandidate[];
  ignored: number;
  end: boolean;
}

/**
 * Parses a PATCH body. Throws SdpFragError naming the line (1-based) for anything malformed, or
 * for a fragment over SDPFRAG_LIMITS. Unknown attributes are skipped, as SDP allows.
 */
export function parseSdpFrag(body: string): IceFragment {
  if (body.length > SDPFRAG_LIMITS.bytes) {
    throw new SdpFragError(`fragment is larger than ${SDPFRAG_LIMITS.bytes} bytes`);
  }
  const session: Section = { candidates: [], ignored: 0, end: false };
  const sections: Section[] = [];
  let current = session;
  let bundleTag: string | undefined;
  let candidateCount = 0;
  let lineNo = 0;
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf('\n', start);
    if (end < 0) end = body.length;
    let line = body.slice(start, end);
    start = end + 1;
    lineNo++;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '') continue;
    if (lineNo > SDPFRAG_LIMITS.lines)
      throw new SdpFragError(`fragment has more than ${SDPFRAG_LIMITS.lines} lines`);
    const at = `line ${lineNo}`;
    if (!LINE.test(line)) throw new SdpFragError(`${at}: not an SDP line (type=value): ${clip(line)}`);
    if (line.startsWith('m=')) {
      if (!M_LINE.test(line)) throw new SdpFragError(`${at}: malformed m= line: ${clip(line)}`);
      current = { candidates: [], ignored: 0, end: false };
      sections.push(current);
      continue;
    }
    if (!line.startsWith('a=')) continue; // c=, b=, ...: nothing ICE in them
    const colon = line.indexOf(':');
    const name = colon < 0 ? line.slice(2) : line.slice(2, colon);
    const value = colon < 0 ? undefined : line.slice(colon + 1);
    switch (name) {
      case 'ice-ufrag':
        if (value === undefined || !UFRAG.test(value)) {
          throw new SdpFragError(`${at}: a=ice-ufrag must be 4-256 of A-Z a-z 0-9 + /: ${clip(line)}`);
        }
        if (current.ufrag !== undefined) throw new SdpFragError(`${at}: second a=ice-ufrag in one section`);
        current.ufrag = value;
        break;
      case 'ice-pwd':
        if (value === undefined || !PWD.test(value)) {
          // The password itself is not echoed back.
          throw new SdpFragError(`${at}: a=ice-pwd must be 22-256 of A-Z a-z 0-9 + /`);
        }
        if (current.pwd !== undefined) throw new SdpFragError(`${at}: second a=ice-pwd in one section`);
        current.pwd = value;
        break;
      case 'mid':
        if (current === session) throw new SdpFragError(`${at}: a=mid before any m= line`);
        if (!value || !TOKEN.test(value)) throw new SdpFragError(`${at}: malformed a=mid: ${clip(line)}`);
        current.mid = value;
        break;
      case 'group':
        if (value?.startsWith('BUNDLE')) bundleTag ??= value.split(' ').filter(Boolean)[1];
        break;
      case 'candidate': {
        if (++candidateCount > SDPFRAG_LIMITS.candidates) {
          throw new SdpFragError(`${at}: more than ${SDPFRAG_LIMITS.candidates} candidates`);
        }
        const candidate = parseCandidate(value ?? '', at, line);
        if (candidate) current.candidates.push(candidate);
        else current.ignored++;
        break;
      }
      case 'end-of-candidates':
        current.end = true;
        break;
      default:
        break;
    }
  }
  // With several m-sections, the ICE information is the BUNDLE tag's (RFC 8843); a WHIP client
  // sends only that one (RFC 9725 §4.3.2). Without m= lines, the session-level lines are it.
  const section =
    sections.length === 0
      ? session
      : ((bundleTag !== undefined ? sections.find((s) => s.mid === bundleTag) : undefined) ?? sections[0]);
  const ufrag = section.ufrag ?? session.ufrag;
  const pwd = section.pwd ?? session.pwd;
  return {
    ufrag,
    pwd,
    mid: section.mid,
    candidates: section.candidates,
    ignoredCandidates: section.ignored,
    endOfCandidates: section.end || session.end,
  };
}

/** RFC 8839 §5.1 candidate-attribute. Returns undefined for a well-formed candidate we do not use. */
function parseCandidate(value: string, at: string, line: string): FragmentCandidate | undefined {
  const fields = value.split(' ').filter(Boolean);
  const bad = (why: string) => new SdpFragError(`${at}: malformed a=candidate (${why}): ${clip(line)}`);
  if (fields.length < 8) throw bad('fewer than 8 fields');
  const [foundation, component, transportField, priority, address, port, typ, type] = fields;
  if (!FOUNDATION.test(foundation)) throw bad('foundation');
  if (!/^\d{1,3}$/.test(component) || Number(component) < 1) throw bad('component-id');
  if (!TOKEN.test(transportField)) throw bad('transport');
  if (!/^\d{1,10}$/.test(priority) || Number(priority) > 0xffffffff) throw bad('priority');
  if (!CONNECTION_ADDRESS.test(address)) throw bad('connection-address');
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw bad('port');
  if (typ !== 'typ') throw bad('"typ" expected as the 7th field');
  if (!TOKEN.test(type)) throw bad('cand-type');
  const extensions = fields.slice(8);
  if (extensions.length % 2 !== 0) throw bad('extension without a value');
  for (let i = 0; i < extensions.length; i += 2) {
    const [extName, extValue] = [extensions[i], extensions[i + 1]];
    if (!TOKEN.test(extName)) throw bad(`extension name ${clip(extName)}`);
    if ((extName === 'rport' || extName === 'generation') && !/^\d{1,5}$/.test(extValue)) throw bad(extName);
    if (extName === 'raddr' && !CONNECTION_ADDRESS.test(extValue)) throw bad('raddr');
  }
  const transport = transportField.toLowerCase();
  // rtcp-mux only: component 2 never carries anything here. Unknown transports/types are dropped
  // silently, as RFC 9725 §4.3.2 asks.
  if (component !== '1' || (transport !== 'udp' && transport !== 'tcp') || !CANDIDATE_TYPES.has(type)) {
    return undefined;
  }
  const sdp = [foundation, component, transport, priority, address, port, 'typ', type, ...extensions].join(
    ' ',
  );
  return { sdp, transport, address, port: Number(port), type };
}

function clip(text: string): string {
  // Printable ASCII only in messages: the body may be anything.
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 80 ? `${printable.slice(0, 77)}...` : printable;
}

/** The parts of our SDP answer an ICE restart fragment repeats (RFC 9725 §4.3.3). */
export interface AnswerIceContext {
  /** `a=group:BUNDLE ...`, when the answer has one. */
  bundleLine?: string;
  /** The BUNDLE tag's m= line and mid (the first section when there is no group). */
  mLine: string;
  mid?: string;
  /** `a=ice-lite` / `a=ice-options:...` lines of the answer, repeated as the RFC asks. */
  iceLines: string[];
}

/** Reads an answer once, in one pass, for the restart fragments that follow it. */
export function answerIceContext(answerSdp: string): AnswerIceContext {
  let bundleLine: string | undefined;
  const iceLines: string[] = [];
  const sections: { mLine: string; mid?: string }[] = [];
  for (const raw of answerSdp.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.startsWith('a=group:BUNDLE')) bundleLine ??= line;
    else if (line.startsWith('m=')) sections.push({ mLine: line });
    else if (line.startsWith('a=mid:') && sections.length > 0)
      sections[sections.length - 1].mid ??= line.slice(6);
    else if ((line === 'a=ice-lite' || line.startsWith('a=ice-options:')) && !iceLines.includes(line)) {
      iceLines.push(line);
    }
  }
  const tag = bundleLine?.split(' ')[1];
  const section = sections.find((s) => s.mid !== undefined && s.mid === tag) ?? sections[0];
  if (!section) throw new Error('answer has no m= line');
  return { bundleLine, mLine: section.mLine, mid: section.mid, iceLines };
}

/** Our side of an ICE restart, as the 200 response's body. */
export function buildSdpFrag(
  context: AnswerIceContext,
  ice: { ufrag: string; pwd: string; candidates: string[] },
): string {
  const lines: string[] = context.iceLines.filter((l) => l === 'a=ice-lite');
  if (context.bundleLine) lines.push(context.bundleLine);
  lines.push(context.mLine);
  if (context.mid !== undefined) lines.push(`a=mid:${context.mid}`);
  lines.push(`a=ice-ufrag:${ice.ufrag}`, `a=ice-pwd:${ice.pwd}`);
  lines.push(...context.iceLines.filter((l) => l !== 'a=ice-lite'));
  for (const candidate of ice.candidates) lines.push(`a=candidate:${candidate}`);
  lines.push('a=end-of-candidates');
  return `${lines.join('\r\n')}\r\n`;
}
