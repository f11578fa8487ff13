// Test-side AV1 RTP packetizer (the gateway only receives AV1): a temporal unit from an IVF file
// (low-overhead bitstream, sized OBUs) → RTP payloads with the AV1 aggregation header.
import { readLeb128, writeLeb128 } from '../../src/media/index.ts';

export interface Av1Obu {
  type: number;
  /** The OBU header byte(s) with obu_has_size_field cleared, then the payload. */
  bytes: Uint8Array;
}

/** The OBUs of one temporal unit written with size fields (as libaom/ffmpeg write IVF). */
export function splitSizedObus(tu: Uint8Array): Av1Obu[] {
  const out: Av1Obu[] = [];
  let at = 0;
  while (at < tu.length) {
    const h = tu[at];
    const headerBytes = h & 0x04 ? 2 : 1;
    if (!(h & 0x02)) throw new Error('OBU without a size field');
    const size = readLeb128(tu, at + headerBytes);
    if (!size) throw new Error('truncated OBU size');
    const start = at + headerBytes + size.bytes;
    const header = Buffer.from(tu.subarray(at, at + headerBytes));
    header[0] &= ~0x02;
    out.push({
      type: (h >> 3) & 0x0f,
      bytes: Buffer.concat([header, tu.subarray(start, start + size.value)]),
    });
    at = start + size.value;
  }
  return out;
}

export interface Av1Packet {
  payload: Buffer;
  marker: boolean;
}

/**
 * Packs a temporal unit's OBUs (temporal delimiters left out) into payloads of at most maxPayload
 * bytes, fragmenting OBUs across packets. `counted`: W = element count (last element without its
 * length) when a packet holds at most 3 elements; otherwise W = 0 and every element has its length.
 */
export function packetizeAv1(tu: Uint8Array, maxPayload = 1100, counted = true): Av1Packet[] {
  const obus = splitSizedObus(tu).filter((o) => o.type !== 2);
  const keyframe = obus.some((o) => o.type === 1);
  interface Pending {
    z: boolean;
    y: boolean;
    elements: Uint8Array[];
    used: number;
  }
  const packets: Pending[] = [];
  let cur: Pending = { z: false, y: false, elements: [], used: 1 };
  for (const obu of obus) {
    let rest = obu.bytes;
    while (rest.length > 0) {
      const left = maxPayload - cur.used;
      const whole = writeLeb128(rest.length).length + rest.length;
      if (whole <= left) {
        cur.elements.push(rest);
        cur.used += whole;
        rest = rest.subarray(rest.length);
      } else if (left > 3) {
        const n = left - writeLeb128(left).length;
        cur.elements.push(rest.subarray(0, n));
        cur.y = true;
        packets.push(cur);
        cur = { z: true, y: false, elements: [], used: 1 };
        rest = rest.subarray(n);
      } else {
        packets.push(cur);
        cur = { z: false, y: false, elements: [], used: 1 };
      }
    }
  }
  if (cur.elements.length > 0) packets.push(cur);
  return packets.map((p, i) => {
    const w = counted && p.elements.length <= 3 ? p.elements.length : 0;
    const head = (p.z ? 0x80 : 0) | (p.y ? 0x40 : 0) | (w << 4) | (keyframe && i === 0 ? 0x08 : 0);
    const parts: Uint8Array[] = [Uint8Array.of(head)];
    p.elements.forEach((e, k) => {
      if (w === 0 || k < w - 1) parts.push(writeLeb128(e.length));
      parts.push(e);
    });
    return { payload: Buffer.concat(parts), marker: i === packets.length - 1 };
  });
}
