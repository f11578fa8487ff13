// H.264 Annex-B byte streams: start codes, NAL unit types, keyframe detection.

/** NAL unit types (ITU-T H.264 table 7-1, RFC 6184 §5.2) that this package cares about. */
export const H264NalType = {
  slice: 1,
  idr: 5,
  sei: 6,
  sps: 7,
  pps: 8,
  aud: 9,
  filler: 12,
  stapA: 24,
  stapB: 25,
  mtap16: 26,
  mtap24: 27,
  fuA: 28,
  fuB: 29,
} as const;

/** The access unit delimiter H.264-in-MPEG-TS requires at the start of every video PES (primary_pic_type 7). */
export const H264_AUD_NAL: Uint8Array = Uint8Array.of(0x09, 0xf0);

/** Index of the first 0x00 of the next `00 00 01` at or after `from`, or -1. */
export function findStartCode(buf: Uint8Array, from: number): number {
  const last = buf.length - 3;
  let i = from;
  while (i <= last) {
    const third = buf[i + 2];
    // No start code can begin at i, i+1 or i+2 when the third byte is neither 0 nor 1.
    if (third > 1) {
      i += 3;
    } else if (third === 1 && buf[i + 1] === 0 && buf[i] === 0) {
      return i;
    } else {
      i++;
    }
  }
  return -1;
}

/**
 * Splits an Annex-B buffer into NAL units (views, no copy). Accepts 3- and 4-byte start codes;
 * trailing zero bytes before a start code are dropped. Bytes before the first start code are ignored.
 */
export function splitAnnexB(buf: Uint8Array): Uint8Array[] {
  const nalus: Uint8Array[] = [];
  let sc = findStartCode(buf, 0);
  while (sc >= 0) {
    const start = sc + 3;
    sc = findStartCode(buf, start);
    let end = sc < 0 ? buf.length : sc;
    while (end > start && buf[end - 1] === 0) end--;
    if (end > start) nalus.push(buf.subarray(start, end));
  }
  return nalus;
}

/** True when the Annex-B access unit contains an IDR slice (NAL type 5). Does not allocate. */
export function isH264Keyframe(annexB: Uint8Array): boolean {
  let sc = findStartCode(annexB, 0);
  while (sc >= 0) {
    const header = sc + 3;
    if (header < annexB.length && (annexB[header] & 0x1f) === H264NalType.idr) return true;
    sc = findStartCode(annexB, header);
  }
  return false;
}

/** True when the buffer's first NAL unit is an access unit delimiter. */
export function startsWithAud(annexB: Uint8Array): boolean {
  const sc = findStartCode(annexB, 0);
  return sc >= 0 && sc + 3 < annexB.length && (annexB[sc + 3] & 0x1f) === H264NalType.aud;
}

/** RFC 6381 codec string (`avc1.PPCCLL`) from an SPS NAL unit (header byte included). */
export function codecStringFromSps(sps: Uint8Array): string {
  if (sps.length < 4 || (sps[0] & 0x1f) !== H264NalType.sps)
    throw new RangeError('not an H.264 SPS NAL unit');
  let s = 'avc1.';
  for (let i = 1; i < 4; i++) s += sps[i].toString(16).padStart(2, '0');
  return s;
}

/** Decodes SDP `sprop-parameter-sets` (comma-separated base64 NAL units, RFC 6184 §8.1). */
export function parseSpropParameterSets(value: string): Uint8Array[] {
  const nalus: Uint8Array[] = [];
  for (const part of value.split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const bytes = Buffer.from(trimmed, 'base64');
    if (bytes.length > 0) nalus.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
  }
  return nalus;
}
