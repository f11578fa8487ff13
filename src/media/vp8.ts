// VP8 and VP9 over RTP: payload descriptors in (RFC 7741, RFC 9628) → whole frames, and VP8 frames
// out → RTP payloads. Only what a WebRTC publisher/viewer needs: one spatial layer, no SVC.

export type VpxCodec = 'vp8' | 'vp9';

/** Codecs whose frames are transcoded to H.264 on ingest (AV1's come from src/media/av1.ts). */
export type TranscodedVideoCodec = VpxCodec | 'av1';

export interface VpxFrame {
  codec: TranscodedVideoCodec;
  data: Uint8Array;
  rtpTimestamp: number;
  keyframe: boolean;
  /** VP8 keyframes carry the picture size; 0 when unknown (VP9, AV1, inter frames). */
  width: number;
  height: number;
}

export interface VpxDepacketizerOptions {
  codec: VpxCodec;
  onFrame: (frame: VpxFrame) => void;
  /** A frame was lost (sequence gap, broken descriptor): ask the sender for a keyframe. */
  onFrameDropped?: () => void;
  /** Default 4 MiB: a frame larger than this is dropped. */
  maxFrameBytes?: number;
}

interface Descriptor {
  /** Bytes of payload descriptor before the codec data. */
  size: number;
  /** This packet begins a frame. */
  begin: boolean;
  /** For VP9: the E bit; for VP8 undefined (the RTP marker ends a frame). */
  end?: boolean;
  /** VP9: the P bit is clear (no inter-picture prediction). */
  independent?: boolean;
  /** VP9 spatial layer id (0 when no layer indices). */
  spatialId: number;
}

/** Parses an RFC 7741 VP8 payload descriptor; undefined if truncated. */
export function parseVp8Descriptor(p: Uint8Array): Descriptor | undefined {
  if (p.length < 1) return undefined;
  let i = 1;
  const x = p[0] & 0x80;
  const begin = (p[0] & 0x10) !== 0 && (p[0] & 0x07) === 0;
  if (x) {
    if (p.length < 2) return undefined;
    const ext = p[1];
    i = 2;
    if (ext & 0x80) {
      if (p.length <= i) return undefined;
      i += p[i] & 0x80 ? 2 : 1; // picture id: M bit → 15 bits
    }
    if (ext & 0x40) i++; // TL0PICIDX
    if (ext & 0x30) i++; // TID/Y/KEYIDX
  }
  if (i > p.length) return undefined;
  return { size: i, begin, spatialId: 0 };
}

/** Parses an RFC 9628 VP9 payload descriptor (flexible or not, with a scalability structure); undefined if truncated. */
export function parseVp9Descriptor(p: Uint8Array): Descriptor | undefined {
  if (p.length < 1) return undefined;
  const b0 = p[0];
  const hasPictureId = b0 & 0x80;
  const interPredicted = b0 & 0x40;
  const hasLayers = b0 & 0x20;
  const flexible = b0 & 0x10;
  const begin = (b0 & 0x08) !== 0;
  const end = (b0 & 0x04) !== 0;
  const hasSs = b0 & 0x02;
  let i = 1;
  const need = (n: number) => i + n <= p.length;
  if (hasPictureId) {
    if (!need(1)) return undefined;
    i += p[i] & 0x80 ? 2 : 1;
  }
  let spatialId = 0;
  if (hasLayers) {
    if (!need(1)) return undefined;
    spatialId = (p[i] >> 1) & 0x07;
    i += flexible ? 1 : 2; // non-flexible mode adds TL0PICIDX
  }
  if (flexible && interPredicted) {
    // Up to 3 reference indices, each with an N bit saying another follows.
    for (let n = 0; n < 3; n++) {
      if (!need(1)) return undefined;
      const more = p[i] & 0x01;
      i++;
      if (!more) break;
    }
  }
  if (hasSs) {
    if (!need(1)) return undefined;
    const ss = p[i++];
    const layers = (ss >> 5) + 1;
    if (ss & 0x10) i += 4 * layers; // widths and heights
    if (ss & 0x08) {
      if (!need(1)) return undefined;
      const groups = p[i++];
      for (let g = 0; g < groups; g++) {
        if (!need(1)) return undefined;
        const refs = (p[i] >> 2) & 0x03;
        i += 1 + refs;
      }
    }
  }
  if (i > p.length) return undefined;
  return { size: i, begin, end, independent: !interPredicted, spatialId };
}

/** A VP8 frame tag's P bit is clear on keyframes (RFC 6386 §9.1); they carry the size after the start code. */
export function vp8KeyframeSize(frame: Uint8Array): { width: number; height: number } | undefined {
  if (frame.length < 10 || frame[0] & 0x01) return undefined;
  if (frame[3] !== 0x9d || frame[4] !== 0x01 || frame[5] !== 0x2a) return undefined;
  return { width: (frame[6] | (frame[7] << 8)) & 0x3fff, height: (frame[8] | (frame[9] << 8)) & 0x3fff };
}

/**
 * Puts VP8/VP9 RTP payloads (in sequence order, e.g. from a ReorderBuffer) back into frames. A
 * sequence gap drops the frame it falls in and every frame up to the next keyframe.
 */
export class VpxDepacketizer {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private timestamp?: number;
  private lastSeq?: number;
  /** Inside a frame whose packets have all arrived so far. */
  private collecting = false;
  private waitForKeyframe = true;
  private readonly maxFrameBytes: number;
  framesDropped = 0;

  constructor(private readonly opts: VpxDepacketizerOptions) {
    this.maxFrameBytes = opts.maxFrameBytes ?? 4 * 1024 * 1024;
  }

  push(payload: Uint8Array, seq: number, timestamp: number, marker: boolean): void {
    // Padding-only packets keep the sequence contiguous and carry nothing.
    const gap = this.lastSeq !== undefined && ((seq - this.lastSeq) & 0xffff) !== 1;
    this.lastSeq = seq;
    if (payload.length === 0) return;
    if (gap && this.collecting) this.drop();
    else if (gap) this.waitAfterLoss();
    const d = this.opts.codec === 'vp8' ? parseVp8Descriptor(payload) : parseVp9Descriptor(payload);
    if (!d) {
      if (this.collecting) this.drop();
      else this.waitAfterLoss();
      return;
    }
    // Only the base spatial layer is decoded; the others are skipped (the base stands alone).
    if (d.spatialId > 0) return;
    if (d.begin) {
      if (this.collecting) this.drop(); // the previous frame never ended
      this.collecting = true;
      this.parts = [];
      this.bytes = 0;
      this.timestamp = timestamp;
    } else if (!this.collecting || timestamp !== this.timestamp) {
      return; // the middle of a frame whose start was lost (already counted)
    }
    const body = payload.subarray(d.size);
    this.parts.push(body);
    this.bytes += body.length;
    if (this.bytes > this.maxFrameBytes) {
      this.drop();
      return;
    }
    if (marker || d.end) this.emit(d);
  }

  private emit(d: Descriptor): void {
    this.collecting = false;
    const data = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [];
    let keyframe: boolean;
    let size: { width: number; height: number } | undefined;
    if (this.opts.codec === 'vp8') {
      size = vp8KeyframeSize(data);
      keyframe = data.length > 0 && (data[0] & 0x01) === 0;
    } else {
      keyframe = d.independent === true && vp9IsKeyframe(data);
    }
    if (this.waitForKeyframe && !keyframe) {
      this.framesDropped++;
      return;
    }
    this.waitForKeyframe = false;
    this.opts.onFrame({
      codec: this.opts.codec,
      data,
      rtpTimestamp: this.timestamp ?? 0,
      keyframe,
      width: size?.width ?? 0,
      height: size?.height ?? 0,
    });
  }

  private drop(): void {
    this.collecting = false;
    this.parts = [];
    this.bytes = 0;
    this.waitAfterLoss();
  }

  private waitAfterLoss(): void {
    this.framesDropped++;
    this.waitForKeyframe = true;
    this.opts.onFrameDropped?.();
  }
}

/** VP9 uncompressed header (VP9 spec §6.2): frame_type 0 is a keyframe. */
export function vp9IsKeyframe(frame: Uint8Array): boolean {
  if (frame.length < 1) return false;
  const b = frame[0];
  const bitAt = (k: number) => (b >> (7 - k)) & 1; // k counts from the most significant bit
  if (b >> 6 !== 2) return false; // frame_marker
  const profile = bitAt(2) | (bitAt(3) << 1);
  let k = profile === 3 ? 5 : 4; // profile 3 has a reserved bit
  if (bitAt(k)) return false; // show_existing_frame
  k++;
  return bitAt(k) === 0; // frame_type: 0 = KEY_FRAME
}

/** One RTP payload of a VP8 frame. */
export interface Vp8RtpPayload {
  payload: Uint8Array;
  marker: boolean;
}

/** Default payload budget per packet, descriptor included (fits a 1200-byte MTU with SRTP and headers). */
const VP8_MAX_PAYLOAD = 1100;

/**
 * Splits one VP8 frame into RTP payloads with an RFC 7741 descriptor carrying a 15-bit picture id
 * (X=1, I=1, M=1), S=1 on the first packet, marker on the last.
 */
export function packetizeVp8(
  frame: Uint8Array,
  pictureId: number,
  maxPayload = VP8_MAX_PAYLOAD,
): Vp8RtpPayload[] {
  const chunk = maxPayload - 4;
  const out: Vp8RtpPayload[] = [];
  const id = pictureId & 0x7fff;
  for (let offset = 0; offset < frame.length || offset === 0; offset += chunk) {
    const body = frame.subarray(offset, offset + chunk);
    const payload = Buffer.allocUnsafe(4 + body.length);
    payload[0] = 0x80 | (offset === 0 ? 0x10 : 0);
    payload[1] = 0x80;
    payload[2] = 0x80 | (id >> 8);
    payload[3] = id & 0xff;
    payload.set(body, 4);
    out.push({ payload, marker: offset + chunk >= frame.length });
    if (frame.length === 0) break;
  }
  return out;
}
