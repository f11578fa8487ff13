// H.264 access unit → RTP payloads (RFC 6184 packetization-mode 1).
import { H264NalType, splitAnnexB } from './annex-b.ts';

export interface RtpPayload {
  payload: Uint8Array;
  /** Set on the last payload of the access unit. */
  marker: boolean;
}

export interface H264PacketizerOptions {
  /** Largest RTP payload in bytes. Default 1200. */
  mtu?: number;
  /** Aggregate consecutive small NAL units (SPS+PPS+small IDR, SEI…) into STAP-A packets. Default true. */
  stapA?: boolean;
}

const FU_A_HEADER_SIZE = 2;
const STAP_A_LENGTH_SIZE = 2;

/**
 * Splits one access unit (Annex-B bytes, or its NAL units) into RTP payloads: a single-NAL packet
 * when a NAL fits, FU-A fragments of balanced size when it does not, and STAP-A for runs of small
 * NALs. Access unit delimiters are dropped. Single-NAL payloads are views into the input.
 * Sequence numbers and timestamps are the caller's.
 */
export function packetizeH264(
  accessUnit: Uint8Array | readonly Uint8Array[],
  options: H264PacketizerOptions = {},
): RtpPayload[] {
  const mtu = options.mtu ?? 1200;
  if (mtu < FU_A_HEADER_SIZE + 1) throw new RangeError(`MTU ${mtu} is too small for H.264 RTP`);
  const aggregate = options.stapA ?? true;
  const all = accessUnit instanceof Uint8Array ? splitAnnexB(accessUnit) : accessUnit;
  const nalus: Uint8Array[] = [];
  for (const nalu of all) {
    if (nalu.length > 0 && (nalu[0] & 0x1f) !== H264NalType.aud) nalus.push(nalu);
  }
  const out: RtpPayload[] = [];
  let i = 0;
  while (i < nalus.length) {
    if (aggregate) {
      const end = stapAEnd(nalus, i, mtu);
      if (end - i >= 2) {
        out.push({ payload: buildStapA(nalus, i, end), marker: false });
        i = end;
        continue;
      }
    }
    const nalu = nalus[i++];
    if (nalu.length <= mtu) out.push({ payload: nalu, marker: false });
    else pushFuA(nalu, mtu, out);
  }
  if (out.length > 0) out[out.length - 1].marker = true;
  return out;
}

/** One past the last NAL, starting at `start`, that still fits in one STAP-A. */
function stapAEnd(nalus: readonly Uint8Array[], start: number, mtu: number): number {
  let size = 1;
  let end = start;
  while (end < nalus.length && size + STAP_A_LENGTH_SIZE + nalus[end].length <= mtu) {
    size += STAP_A_LENGTH_SIZE + nalus[end].length;
    end++;
  }
  return end;
}

function buildStapA(nalus: readonly Uint8Array[], start: number, end: number): Uint8Array {
  let size = 1;
  let forbidden = 0;
  let nri = 0;
  for (let i = start; i < end; i++) {
    size += STAP_A_LENGTH_SIZE + nalus[i].length;
    forbidden |= nalus[i][0] & 0x80;
    nri = Math.max(nri, nalus[i][0] & 0x60);
  }
  const payload = new Uint8Array(size);
  payload[0] = forbidden | nri | H264NalType.stapA;
  let offset = 1;
  for (let i = start; i < end; i++) {
    const nalu = nalus[i];
    payload[offset] = nalu.length >>> 8;
    payload[offset + 1] = nalu.length;
    payload.set(nalu, offset + STAP_A_LENGTH_SIZE);
    offset += STAP_A_LENGTH_SIZE + nalu.length;
  }
  return payload;
}

function pushFuA(nalu: Uint8Array, mtu: number, out: RtpPayload[]): void {
  const header = nalu[0];
  const indicator = (header & 0xe0) | H264NalType.fuA;
  const type = header & 0x1f;
  const body = nalu.length - 1;
  const maxFragment = mtu - FU_A_HEADER_SIZE;
  // Balanced sizes avoid a tiny last fragment.
  const count = Math.ceil(body / maxFragment);
  const base = Math.floor(body / count);
  let bigger = body % count;
  let offset = 1;
  for (let i = 0; i < count; i++) {
    const size = bigger-- > 0 ? base + 1 : base;
    const payload = new Uint8Array(FU_A_HEADER_SIZE + size);
    payload[0] = indicator;
    payload[1] = (i === 0 ? 0x80 : 0) | (i === count - 1 ? 0x40 : 0) | type;
    payload.set(nalu.subarray(offset, offset + size), FU_A_HEADER_SIZE);
    offset += size;
    out.push({ payload, marker: false });
  }
}
