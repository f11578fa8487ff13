// RTP packets (RFC 3550 §5.1) and the 16/32-bit arithmetic around sequence numbers and timestamps.

export interface RtpHeaderExtension {
  /** The 16-bit "defined by profile" field, e.g. 0xBEDE for RFC 8285 one-byte headers. */
  profile: number;
  /** Extension body, a multiple of 4 bytes. */
  data: Uint8Array;
}

export interface RtpPacket {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  marker: boolean;
  /** A view into the parsed buffer (no copy), padding excluded. */
  payload: Uint8Array;
  csrcs?: number[];
  extension?: RtpHeaderExtension;
  /** Padding bytes that followed the payload, count byte included. */
  paddingSize?: number;
}

export type RtpParseErrorReason =
  | 'too-short'
  | 'bad-version'
  | 'truncated-csrc'
  | 'truncated-extension'
  | 'bad-padding';

export class RtpParseError extends Error {
  constructor(
    readonly reason: RtpParseErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'RtpParseError';
  }
}

const RTP_HEADER_SIZE = 12;

function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

function writeU32(buf: Uint8Array, off: number, value: number): void {
  buf[off] = value >>> 24;
  buf[off + 1] = value >>> 16;
  buf[off + 2] = value >>> 8;
  buf[off + 3] = value;
}

/** Parses one RTP packet. Throws RtpParseError on malformed input; the payload is a view, not a copy. */
export function parseRtp(buf: Uint8Array): RtpPacket {
  if (buf.length < RTP_HEADER_SIZE) {
    throw new RtpParseError(
      'too-short',
      `RTP packet of ${buf.length} bytes is shorter than the 12-byte header`,
    );
  }
  const b0 = buf[0];
  if (b0 >> 6 !== 2) throw new RtpParseError('bad-version', `RTP version ${b0 >> 6}, expected 2`);
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_SIZE + csrcCount * 4;
  if (offset > buf.length) {
    throw new RtpParseError('truncated-csrc', `RTP packet too short for ${csrcCount} CSRCs`);
  }
  let csrcs: number[] | undefined;
  if (csrcCount > 0) {
    csrcs = new Array<number>(csrcCount);
    for (let i = 0; i < csrcCount; i++) csrcs[i] = readU32(buf, RTP_HEADER_SIZE + i * 4);
  }
  let extension: RtpHeaderExtension | undefined;
  if (b0 & 0x10) {
    if (offset + 4 > buf.length)
      throw new RtpParseError('truncated-extension', 'RTP extension header truncated');
    const profile = (buf[offset] << 8) | buf[offset + 1];
    const length = ((buf[offset + 2] << 8) | buf[offset + 3]) * 4;
    offset += 4;
    if (offset + length > buf.length) {
      throw new RtpParseError('truncated-extension', `RTP extension of ${length} bytes overruns the packet`);
    }
    extension = { profile, data: buf.subarray(offset, offset + length) };
    offset += length;
  }
  let end = buf.length;
  let paddingSize: number | undefined;
  if (b0 & 0x20) {
    paddingSize = buf[buf.length - 1];
    if (paddingSize === 0 || offset + paddingSize > buf.length) {
      throw new RtpParseError('bad-padding', `RTP padding count ${paddingSize} is invalid`);
    }
    end -= paddingSize;
  }
  const packet: RtpPacket = {
    payloadType: buf[1] & 0x7f,
    sequenceNumber: (buf[2] << 8) | buf[3],
    timestamp: readU32(buf, 4),
    ssrc: readU32(buf, 8),
    marker: (buf[1] & 0x80) !== 0,
    payload: buf.subarray(offset, end),
  };
  if (csrcs) packet.csrcs = csrcs;
  if (extension) packet.extension = extension;
  if (paddingSize !== undefined) packet.paddingSize = paddingSize;
  return packet;
}

/** Serializes an RTP packet into a new buffer. */
export function serializeRtp(p: RtpPacket): Uint8Array {
  const csrcCount = p.csrcs?.length ?? 0;
  if (csrcCount > 15) throw new RangeError('at most 15 CSRCs');
  const ext = p.extension;
  if (ext && ext.data.length % 4 !== 0) throw new RangeError('RTP extension length must be a multiple of 4');
  const padding = p.paddingSize ?? 0;
  if (padding > 255) throw new RangeError('RTP padding must be at most 255 bytes');
  const headerSize = RTP_HEADER_SIZE + csrcCount * 4 + (ext ? 4 + ext.data.length : 0);
  const out = new Uint8Array(headerSize + p.payload.length + padding);
  out[0] = 0x80 | (padding > 0 ? 0x20 : 0) | (ext ? 0x10 : 0) | csrcCount;
  out[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  out[2] = p.sequenceNumber >>> 8;
  out[3] = p.sequenceNumber;
  writeU32(out, 4, p.timestamp);
  writeU32(out, 8, p.ssrc);
  let offset = RTP_HEADER_SIZE;
  for (let i = 0; i < csrcCount; i++, offset += 4) writeU32(out, offset, p.csrcs![i]);
  if (ext) {
    out[offset] = ext.profile >>> 8;
    out[offset + 1] = ext.profile;
    const words = ext.data.length / 4;
    out[offset + 2] = words >>> 8;
    out[offset + 3] = words;
    out.set(ext.data, offset + 4);
    offset += 4 + ext.data.length;
  }
  out.set(p.payload, offset);
  if (padding > 0) out[out.length - 1] = padding;
  return out;
}

/** `a - b` for 16-bit sequence numbers, as a signed number in [-32768, 32767]. */
export function seqDiff(a: number, b: number): number {
  return ((a - b + 0x8000) & 0xffff) - 0x8000;
}

/**
 * Turns 32-bit RTP timestamps into a tick count since the first timestamp seen, across wraparound.
 * Each step is taken as the signed 32-bit difference, so the steps back of B-frames (decode order
 * ≠ presentation order) stay small steps back, even across a wrap, and the count may go negative.
 * Assumes successive timestamps differ by less than 2^31 ticks.
 */
export class RtpTimestampUnwrapper {
  private started = false;
  private last = 0;
  private ticks = 0;

  /** Ticks (in the RTP clock) since the first timestamp passed in. */
  unwrap(timestamp: number): number {
    const ts = timestamp >>> 0;
    if (!this.started) {
      this.started = true;
      this.last = ts;
      return 0;
    }
    // Signed 32-bit difference handles both wraparound and small backward steps.
    this.ticks += (ts - this.last) | 0;
    this.last = ts;
    return this.ticks;
  }

  reset(): void {
    this.started = false;
    this.last = 0;
    this.ticks = 0;
  }
}
