// AV1 over RTP (AOM "RTP Payload Format for AV1"): aggregation header + OBU elements in, whole
// temporal units out, as a low-overhead bitstream (every OBU with obu_has_size_field=1) that IVF
// carries and ffmpeg decodes. One spatial layer, as a WebRTC publisher sends.
import type { VpxFrame } from './vp8.ts';

/** OBU types the depacketizer looks at (AV1 spec §6.2.2). */
export const OBU_SEQUENCE_HEADER = 1;
export const OBU_TEMPORAL_DELIMITER = 2;
export const OBU_TILE_LIST = 8;
export const OBU_PADDING = 15;

/** The temporal delimiter that starts every temporal unit in a low-overhead bitstream. */
const TEMPORAL_DELIMITER = Uint8Array.of(0x12, 0x00);

export interface Av1AggregationHeader {
  /** Z: the first OBU element continues one begun in the previous packet. */
  continuesFragment: boolean;
  /** Y: the last OBU element goes on in the next packet. */
  fragmentContinues: boolean;
  /** W: number of OBU elements (0: any number, each length-prefixed). */
  elementCount: number;
  /** N: first packet of a coded video sequence. */
  newSequence: boolean;
}

export function parseAv1AggregationHeader(b: number): Av1AggregationHeader {
  return {
    continuesFragment: (b & 0x80) !== 0,
    fragmentContinues: (b & 0x40) !== 0,
    elementCount: (b >> 4) & 0x03,
    newSequence: (b & 0x08) !== 0,
  };
}

/** Reads an unsigned LEB128 (at most 8 bytes); undefined if truncated or too long. */
export function readLeb128(p: Uint8Array, at: number): { value: number; bytes: number } | undefined {
  let value = 0;
  for (let i = 0; i < 8; i++) {
    if (at + i >= p.length) return undefined;
    const b = p[at + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return { value, bytes: i + 1 };
  }
  return undefined;
}

export function writeLeb128(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return Uint8Array.from(out);
}

/** Splits an RTP payload into its OBU elements; undefined if a length runs past the end. */
export function splitAv1Payload(
  payload: Uint8Array,
): { header: Av1AggregationHeader; elements: Uint8Array[] } | undefined {
  if (payload.length < 1) return undefined;
  const header = parseAv1AggregationHeader(payload[0]);
  const elements: Uint8Array[] = [];
  let at = 1;
  while (at < payload.length) {
    const last = header.elementCount !== 0 && elements.length === header.elementCount - 1;
    if (last) {
      elements.push(payload.subarray(at));
      break;
    }
    const len = readLeb128(payload, at);
    if (!len) return undefined;
    at += len.bytes;
    if (at + len.value > payload.length) return undefined;
    elements.push(payload.subarray(at, at + len.value));
    at += len.value;
  }
  if (header.elementCount !== 0 && elements.length !== header.elementCount) return undefined;
  return { header, elements };
}

/**
 * One OBU as carried in RTP (usually without a size field) rewritten with obu_has_size_field=1 and
 * its size; undefined if the header is broken. `type` is returned so callers can filter.
 */
export function withObuSize(obu: Uint8Array): { type: number; data: Uint8Array } | undefined {
  if (obu.length < 1 || obu[0] & 0x80) return undefined; // forbidden bit
  const type = (obu[0] >> 3) & 0x0f;
  const headerBytes = obu[0] & 0x04 ? 2 : 1; // extension flag → one more header byte
  if (obu.length < headerBytes) return undefined;
  let body = obu.subarray(headerBytes);
  if (obu[0] & 0x02) {
    // Already sized (allowed, not usual): keep just the bytes its size covers.
    const size = readLeb128(obu, headerBytes);
    if (!size || headerBytes + size.bytes + size.value > obu.length) return undefined;
    body = obu.subarray(headerBytes + size.bytes, headerBytes + size.bytes + size.value);
  }
  const size = writeLeb128(body.length);
  const data = Buffer.allocUnsafe(headerBytes + size.length + body.length);
  data[0] = obu[0] | 0x02;
  if (headerBytes === 2) data[1] = obu[1];
  data.set(size, headerBytes);
  data.set(body, headerBytes + size.length);
  return { type, data };
}

export interface Av1DepacketizerOptions {
  onFrame: (frame: VpxFrame) => void;
  /** A temporal unit was lost (sequence gap, broken payload): ask the sender for a keyframe. */
  onFrameDropped?: () => void;
  /** Default 4 MiB: a temporal unit larger than this is dropped. */
  maxFrameBytes?: number;
}

/**
 * Puts AV1 RTP payloads (in sequence order, e.g. from a ReorderBuffer) back into temporal units.
 * A sequence gap drops the unit it falls in and every unit up to the next keyframe (N bit or a
 * sequence header).
 */
export class Av1Depacketizer {
  private obus: Uint8Array[] = [];
  private bytes = 0;
  private fragment: Uint8Array[] = [];
  private timestamp?: number;
  private lastSeq?: number;
  /** Inside a temporal unit whose packets have all arrived so far. */
  private collecting = false;
  /** The current timestamp's unit is already lost: skip its remaining packets. */
  private skipping = false;
  private newSequence = false;
  private sawSequenceHeader = false;
  private waitForKeyframe = true;
  private readonly maxFrameBytes: number;
  framesDropped = 0;

  constructor(private readonly opts: Av1DepacketizerOptions) {
    this.maxFrameBytes = opts.maxFrameBytes ?? 4 * 1024 * 1024;
  }

  push(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): void {
    const gap = this.lastSeq !== undefined && ((seq - this.lastSeq) & 0xffff) !== 1;
    this.lastSeq = seq;
    if (payload.length === 0) return; // padding keeps the sequence contiguous
    if (gap) {
      if (this.collecting) this.drop();
      else this.waitAfterLoss();
      this.skipping = timestamp === this.timestamp;
    }
    if (timestamp !== this.timestamp) {
      // A unit that ended without a marker (the marker packet can be padding) is still whole.
      if (this.collecting && this.fragment.length === 0) this.emit();
      else if (this.collecting) this.drop();
      this.start(timestamp);
    } else if (this.skipping) {
      if (marker) this.skipping = false;
      return;
    } else if (!this.collecting) {
      this.start(timestamp);
    }
    if (!this.take(payload, marker)) this.lose(marker);
  }

  /** Adds one packet's OBU elements to the unit (emitting it on the marker); false if the packet is broken. */
  private take(payload: Uint8Array, marker: boolean): boolean {
    const split = splitAv1Payload(payload);
    if (!split) return false;
    const { header, elements } = split;
    if (header.newSequence) this.newSequence = true;
    for (let i = 0; i < elements.length; i++) {
      const el = elements[i];
      const continues = i === 0 && header.continuesFragment;
      // A continuation needs its start; any other element must not leave a fragment unfinished.
      if (continues !== this.fragment.length > 0) return false;
      this.fragment.push(el);
      this.bytes += el.length;
      if (this.bytes > this.maxFrameBytes) return false;
      if (i === elements.length - 1 && header.fragmentContinues) break;
      const obu = this.fragment.length === 1 ? this.fragment[0] : Buffer.concat(this.fragment);
      this.fragment = [];
      if (!this.addObu(obu)) return false;
    }
    if (marker) {
      if (this.fragment.length > 0) return false;
      this.emit();
    }
    return true;
  }

  private start(timestamp: number): void {
    this.timestamp = timestamp;
    this.collecting = true;
    this.skipping = false;
    this.obus = [TEMPORAL_DELIMITER];
    this.bytes = 0;
    this.fragment = [];
    this.newSequence = false;
    this.sawSequenceHeader = false;
  }

  private addObu(obu: Uint8Array): boolean {
    const sized = withObuSize(obu);
    if (!sized) return false;
    // Temporal delimiters are implied by RTP (one is written per unit); tile lists and padding are not decoded.
    if (sized.type === OBU_TEMPORAL_DELIMITER || sized.type === OBU_TILE_LIST || sized.type === OBU_PADDING)
      return true;
    if (sized.type === OBU_SEQUENCE_HEADER) this.sawSequenceHeader = true;
    this.obus.push(sized.data);
    return true;
  }

  private emit(): void {
    this.collecting = false;
    const keyframe = this.newSequence || this.sawSequenceHeader;
    const empty = this.obus.length === 1; // nothing but the delimiter
    const data = Buffer.concat(this.obus);
    this.obus = [];
    if (empty) return;
    if (this.waitForKeyframe && !keyframe) {
      this.framesDropped++;
      return;
    }
    this.waitForKeyframe = false;
    this.opts.onFrame({
      codec: 'av1',
      data,
      rtpTimestamp: this.timestamp ?? 0,
      keyframe,
      width: 0,
      height: 0,
    });
  }

  /** The rest of this unit is unusable: drop it and skip its remaining packets. */
  private lose(marker: boolean): void {
    this.drop();
    this.skipping = !marker;
  }

  private drop(): void {
    this.collecting = false;
    this.obus = [];
    this.fragment = [];
    this.bytes = 0;
    this.waitAfterLoss();
  }

  private waitAfterLoss(): void {
    this.framesDropped++;
    this.waitForKeyframe = true;
    this.opts.onFrameDropped?.();
  }
}
