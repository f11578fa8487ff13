// MPEG-TS (ISO/IEC 13818-1) constants and helpers shared by the muxer and the demuxer.

export const TS_PACKET_SIZE = 188;
export const TS_SYNC_BYTE = 0x47;
export const TS_HEADER_SIZE = 4;
export const TS_PAYLOAD_SIZE = TS_PACKET_SIZE - TS_HEADER_SIZE;

/** PTS/DTS/PCR base are 33-bit counters of a 90 kHz clock. */
export const PTS_WRAP = 2 ** 33;

export const StreamType = {
  mpeg1Audio: 0x03,
  mpeg2Audio: 0x04,
  privateData: 0x06,
  aacAdts: 0x0f,
  h264: 0x1b,
  hevc: 0x24,
  ac3: 0x81,
} as const;

export const PAT_PID = 0;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** CRC-32/MPEG-2 of `buf[start, end)`, as used by PSI sections. Over a whole section (CRC included) it is 0. */
export function crc32Mpeg(buf: Uint8Array, start: number, end: number): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ buf[i]) & 0xff];
  return crc >>> 0;
}

/** Reduces any integer tick count to the 33-bit range. */
export function wrapPts(ticks: number): number {
  const wrapped = ticks % PTS_WRAP;
  return wrapped < 0 ? wrapped + PTS_WRAP : wrapped;
}

/** Writes a 5-byte PES timestamp with the 4-bit `prefix` (0b0010 PTS only, 0b0011 PTS+DTS, 0b0001 DTS). */
export function writePesTimestamp(buf: Uint8Array, offset: number, prefix: number, ticks: number): void {
  const t = wrapPts(ticks);
  const high = Math.floor(t / 2 ** 30); // bits 32..30
  const mid = Math.floor(t / 2 ** 15) & 0x7fff; // bits 29..15
  const low = t % 2 ** 15; // bits 14..0
  buf[offset] = (prefix << 4) | (high << 1) | 1;
  buf[offset + 1] = mid >> 7;
  buf[offset + 2] = ((mid & 0x7f) << 1) | 1;
  buf[offset + 3] = low >> 7;
  buf[offset + 4] = ((low & 0x7f) << 1) | 1;
}

/** Reads a 5-byte PES timestamp (marker bits not checked). */
export function readPesTimestamp(buf: Uint8Array, offset: number): number {
  const high = (buf[offset] >> 1) & 0x07;
  const mid = (buf[offset + 1] << 7) | (buf[offset + 2] >> 1);
  const low = (buf[offset + 3] << 7) | (buf[offset + 4] >> 1);
  return high * 2 ** 30 + mid * 2 ** 15 + low;
}

/** Writes the 6-byte PCR field (base in 90 kHz ticks, extension 0). */
export function writePcr(buf: Uint8Array, offset: number, base90k: number): void {
  const base = wrapPts(base90k);
  const top32 = Math.floor(base / 2); // bits 32..1
  buf[offset] = top32 >>> 24;
  buf[offset + 1] = top32 >>> 16;
  buf[offset + 2] = top32 >>> 8;
  buf[offset + 3] = top32;
  buf[offset + 4] = ((base % 2) << 7) | 0x7e;
  buf[offset + 5] = 0;
}
