// RTP → H.264 access units (RFC 6184, packetization-mode 1: single NAL, STAP-A, FU-A).
import { H264NalType } from './annex-b.ts';
import { RtpTimestampUnwrapper, seqDiff } from './rtp.ts';

export interface AccessUnit {
  /** Annex-B bytes with 4-byte start codes. */
  annexB: Uint8Array;
  /** The NAL units of `annexB` (views into it, start codes excluded). */
  nalus: Uint8Array[];
  rtpTimestamp: number;
  /**
   * 90 kHz ticks since the first RTP packet, unwrapped across 32-bit timestamp wraparound. A
   * presentation time: with B-frames it steps back between access units (and may be negative).
   */
  pts90k: number;
  /** Contains an IDR slice (NAL type 5). */
  keyframe: boolean;
}

export type H264DropReason =
  /** A sequence-number gap inside or right before the frame. */
  | 'packet-loss'
  /** FU-A continuation without its start, or a new start before the previous end. */
  | 'fu-a-incomplete'
  /** Empty payload, forbidden bit, or a STAP-A whose sizes overrun the packet. */
  | 'malformed'
  /** STAP-B, MTAP16/24 or FU-B: not allowed in packetization-mode 1. */
  | 'unsupported-packet'
  /** A keyframe with no SPS/PPS in-band and none cached. */
  | 'missing-parameter-sets'
  /** A frame after a loss (or at stream start) that is not a keyframe; it cannot be decoded. */
  | 'waiting-for-keyframe'
  /** The frame grew beyond `maxAccessUnitBytes`. */
  | 'too-large';

export interface H264DepacketizerOptions {
  onAccessUnit: (au: AccessUnit) => void;
  /** A frame was discarded. The caller should ask the sender for a keyframe (PLI/FIR), rate-limited. */
  onFrameDropped?: (reason: H264DropReason, rtpTimestamp: number) => void;
  /**
   * After a dropped frame, and at stream start, discard frames until the next keyframe, since they
   * reference what was lost. Default true.
   */
  waitForKeyframe?: boolean;
  /** SPS/PPS NAL units known out of band, e.g. from SDP `sprop-parameter-sets`. */
  parameterSets?: readonly Uint8Array[];
  /** Default 4 MiB. */
  maxAccessUnitBytes?: number;
}

export interface H264DepacketizerStats {
  packets: number;
  accessUnits: number;
  keyframes: number;
  /** Frames discarded for any reason but waiting-for-keyframe. */
  droppedFrames: number;
  /** Intact frames discarded while waiting for a keyframe. */
  skippedFrames: number;
  lostPackets: number;
  /** The sequence number jumped by more than 1000 either way (a restarted sender). */
  sequenceJumps: number;
  /** Units without any slice (e.g. SPS/PPS sent on their own); their parameter sets are kept. */
  unitsWithoutSlices: number;
  /** Packets older than the last one seen (a reorder buffer in front prevents these). */
  latePackets: number;
  fuAErrors: number;
  malformedPackets: number;
  unsupportedPackets: number;
  /** Keyframes that got the cached SPS/PPS prepended. */
  parameterSetsInserted: number;
}

const START_CODE_SIZE = 4;
/** Sequence steps beyond this (either way) are a restart rather than loss or reordering. */
const SEQUENCE_JUMP = 1000;
const NO_SLICE_YET = -1;

/**
 * Reassembles H.264 access units from RTP payloads. Feed packets in sequence order (through a
 * ReorderBuffer); a frame ends at the marker bit or when the timestamp changes.
 * The payload may be reused by the caller once `push` returns.
 */
export class H264Depacketizer {
  readonly stats: H264DepacketizerStats = {
    packets: 0,
    accessUnits: 0,
    keyframes: 0,
    droppedFrames: 0,
    skippedFrames: 0,
    lostPackets: 0,
    sequenceJumps: 0,
    unitsWithoutSlices: 0,
    latePackets: 0,
    fuAErrors: 0,
    malformedPackets: 0,
    unsupportedPackets: 0,
    parameterSetsInserted: 0,
  };

  private readonly onAccessUnit: (au: AccessUnit) => void;
  private readonly onFrameDropped: ((reason: H264DropReason, rtpTimestamp: number) => void) | undefined;
  private readonly waitForKeyframe: boolean;
  private readonly maxAccessUnitBytes: number;
  private readonly unwrapper = new RtpTimestampUnwrapper();
  private sps: Uint8Array | undefined;
  private pps: Uint8Array | undefined;

  // Frame under assembly: Annex-B bytes in a reused buffer, NAL positions alongside.
  private buf = new Uint8Array(64 * 1024);
  private len = 0;
  private readonly naluStarts: number[] = [];
  private inFrame = false;
  private frameTimestamp = 0;
  private broken: H264DropReason | undefined;
  private hasIdr = false;
  private hasSps = false;
  private hasPps = false;
  /** first_mb_in_slice of the frame's first slice is 0, so its beginning was not lost. */
  private firstSliceAtTop = NO_SLICE_YET;
  /** A gap just before this frame: its first packets may be missing. */
  private startUncertain = true;
  private fuStart = -1;

  private haveSeq = false;
  private lastSeq = 0;
  /** Set at start too: the first packet we see may be in the middle of a frame. */
  private gapPending = true;
  private waiting: boolean;

  constructor(options: H264DepacketizerOptions) {
    this.onAccessUnit = options.onAccessUnit;
    this.onFrameDropped = options.onFrameDropped;
    this.waitForKeyframe = options.waitForKeyframe ?? true;
    this.waiting = this.waitForKeyframe;
    this.maxAccessUnitBytes = options.maxAccessUnitBytes ?? 4 * 1024 * 1024;
    for (const nalu of options.parameterSets ?? []) this.cacheParameterSet(nalu, 0, nalu.length);
  }

  /** The latest SPS and PPS seen (in-band or configured). */
  get parameterSets(): { sps?: Uint8Array; pps?: Uint8Array } {
    return { sps: this.sps, pps: this.pps };
  }

  push(payload: Uint8Array, sequenceNumber: number, timestamp: number, marker: boolean): void {
    this.stats.packets++;
    const seq = sequenceNumber & 0xffff;
    const ts = timestamp >>> 0;
    if (this.haveSeq) {
      const gap = seqDiff(seq, this.lastSeq) - 1;
      if (gap < 0 && gap >= -SEQUENCE_JUMP) {
        this.stats.latePackets++;
        return;
      }
      if (gap !== 0) {
        // A jump this large is a restarted sender, not a loss of thousands of packets.
        if (gap > SEQUENCE_JUMP || gap < 0) this.stats.sequenceJumps++;
        else this.stats.lostPackets += gap;
        // The frame in progress has lost its middle or its end (its marker was not seen).
        if (this.inFrame) this.markBroken('packet-loss');
        if (!this.inFrame || ts !== this.frameTimestamp) this.gapPending = true;
      }
    }
    this.haveSeq = true;
    this.lastSeq = seq;

    if (this.inFrame && ts !== this.frameTimestamp) this.completeFrame();
    if (!this.inFrame) this.beginFrame(ts);
    if (this.broken === undefined) this.parsePayload(payload);
    if (marker) this.completeFrame();
  }

  /** Emits the frame in progress (end of stream). */
  flush(): void {
    if (this.inFrame) this.completeFrame();
  }

  /** Call after the sender restarted (new SSRC): forgets sequence and timing state, keeps SPS/PPS. */
  reset(): void {
    this.inFrame = false;
    this.haveSeq = false;
    this.gapPending = true;
    this.waiting = this.waitForKeyframe;
    this.unwrapper.reset();
  }

  private beginFrame(ts: number): void {
    this.inFrame = true;
    this.frameTimestamp = ts;
    this.len = 0;
    this.naluStarts.length = 0;
    this.broken = undefined;
    this.hasIdr = false;
    this.hasSps = false;
    this.hasPps = false;
    this.firstSliceAtTop = NO_SLICE_YET;
    this.fuStart = -1;
    this.startUncertain = this.gapPending;
    this.gapPending = false;
  }

  private markBroken(reason: H264DropReason): void {
    if (this.broken === undefined) this.broken = reason;
  }

  private parsePayload(payload: Uint8Array): void {
    const size = payload.length;
    if (size === 0 || payload[0] & 0x80) {
      this.stats.malformedPackets++;
      this.markBroken('malformed');
      return;
    }
    const type = payload[0] & 0x1f;
    if (type >= 1 && type <= 23) {
      this.abandonFragment();
      this.appendNalu(payload, 0, size);
    } else if (type === H264NalType.stapA) {
      this.abandonFragment();
      this.parseStapA(payload);
    } else if (type === H264NalType.fuA) {
      this.parseFuA(payload);
    } else {
      this.stats.unsupportedPackets++;
      // Types 0, 30 and 31 are undefined and to be ignored (RFC 6184 §5.2); the others carry frame data.
      if (type >= H264NalType.stapB && type <= H264NalType.fuB) this.markBroken('unsupported-packet');
    }
  }

  private parseStapA(payload: Uint8Array): void {
    let offset = 1;
    while (offset < payload.length) {
      if (offset + 2 > payload.length) break;
      const size = (payload[offset] << 8) | payload[offset + 1];
      offset += 2;
      if (size === 0 || offset + size > payload.length) break;
      this.appendNalu(payload, offset, size);
      offset += size;
    }
    if (offset !== payload.length || payload.length === 1) {
      this.stats.malformedPackets++;
      this.markBroken('malformed');
    }
  }

  private parseFuA(payload: Uint8Array): void {
    if (payload.length < 3) {
      this.stats.malformedPackets++;
      this.markBroken('malformed');
      return;
    }
    const fuHeader = payload[1];
    const isStart = (fuHeader & 0x80) !== 0;
    const isEnd = (fuHeader & 0x40) !== 0;
    if (isStart) {
      if (this.fuStart >= 0) {
        this.stats.fuAErrors++;
        this.markBroken('fu-a-incomplete');
        return;
      }
      const header = (payload[0] & 0xe0) | (fuHeader & 0x1f);
      this.fuStart = this.writeStartCode(payload.length - 1);
      if (this.fuStart < 0) return;
      this.buf[this.len++] = header;
    } else if (this.fuStart < 0) {
      this.stats.fuAErrors++;
      this.markBroken('fu-a-incomplete');
      return;
    }
    if (!this.ensureCapacity(payload.length - 2)) return;
    this.buf.set(payload.subarray(2), this.len);
    this.len += payload.length - 2;
    if (isEnd) {
      const start = this.fuStart;
      this.fuStart = -1;
      this.noteNalu(start, this.len - start);
    }
  }

  /** A single NAL or STAP-A arrived while a fragmented NAL was still open: that NAL is incomplete. */
  private abandonFragment(): void {
    if (this.fuStart >= 0) {
      this.stats.fuAErrors++;
      this.markBroken('fu-a-incomplete');
      this.fuStart = -1;
    }
  }

  private appendNalu(src: Uint8Array, offset: number, size: number): void {
    const start = this.writeStartCode(size);
    if (start < 0) return;
    this.buf.set(src.subarray(offset, offset + size), start);
    this.len += size;
    this.noteNalu(start, size);
  }

  /** Writes a start code and records where the NAL that follows begins; -1 when the frame is too large. */
  private writeStartCode(followingBytes: number): number {
    if (!this.ensureCapacity(START_CODE_SIZE + followingBytes)) return -1;
    const b = this.buf;
    b[this.len] = 0;
    b[this.len + 1] = 0;
    b[this.len + 2] = 0;
    b[this.len + 3] = 1;
    this.len += START_CODE_SIZE;
    this.naluStarts.push(this.len);
    return this.len;
  }

  private ensureCapacity(extra: number): boolean {
    const needed = this.len + extra;
    if (needed > this.maxAccessUnitBytes) {
      this.markBroken('too-large');
      return false;
    }
    if (needed > this.buf.length) {
      const grown = new Uint8Array(Math.min(Math.max(needed, this.buf.length * 2), this.maxAccessUnitBytes));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    return true;
  }

  private noteNalu(start: number, size: number): void {
    const type = this.buf[start] & 0x1f;
    if (type === H264NalType.idr) this.hasIdr = true;
    else if (type === H264NalType.sps) this.hasSps = true;
    else if (type === H264NalType.pps) this.hasPps = true;
    if (type === H264NalType.sps || type === H264NalType.pps) this.cacheParameterSet(this.buf, start, size);
    if (type >= H264NalType.slice && type <= H264NalType.idr && this.firstSliceAtTop === NO_SLICE_YET) {
      // first_mb_in_slice is ue(v); it is 0 exactly when its first bit is 1.
      this.firstSliceAtTop = size > 1 && this.buf[start + 1] & 0x80 ? 1 : 0;
    }
  }

  private cacheParameterSet(src: Uint8Array, start: number, size: number): void {
    const type = src[start] & 0x1f;
    if (type !== H264NalType.sps && type !== H264NalType.pps) return;
    const cached = type === H264NalType.sps ? this.sps : this.pps;
    if (cached && cached.length === size && sameBytes(cached, src, start)) return;
    const copy = src.slice(start, start + size);
    if (type === H264NalType.sps) this.sps = copy;
    else this.pps = copy;
  }

  private completeFrame(): void {
    this.inFrame = false;
    const timestamp = this.frameTimestamp;
    const pts90k = this.unwrapper.unwrap(timestamp);
    if (this.fuStart >= 0) {
      this.stats.fuAErrors++;
      this.markBroken('fu-a-incomplete');
    }
    if (this.broken === undefined && this.firstSliceAtTop === NO_SLICE_YET) {
      // Nothing to display (no NALs, or only SPS/PPS/SEI); cached parameter sets go with the next keyframe.
      if (this.naluStarts.length > 0) this.stats.unitsWithoutSlices++;
      return;
    }
    if (this.broken === undefined && this.startUncertain && this.firstSliceAtTop !== 1) {
      this.markBroken('packet-loss');
    }
    if (
      this.broken === undefined &&
      this.hasIdr &&
      (!(this.hasSps || this.sps) || !(this.hasPps || this.pps))
    ) {
      this.markBroken('missing-parameter-sets');
    }
    if (this.broken !== undefined) {
      this.stats.droppedFrames++;
      if (this.waitForKeyframe) this.waiting = true;
      this.onFrameDropped?.(this.broken, timestamp);
      return;
    }
    if (this.waiting && !this.hasIdr) {
      this.stats.skippedFrames++;
      this.onFrameDropped?.('waiting-for-keyframe', timestamp);
      return;
    }
    this.waiting = false;
    this.emit(timestamp, pts90k);
  }

  private emit(rtpTimestamp: number, pts90k: number): void {
    const insertSps = this.hasIdr && !this.hasSps ? this.sps : undefined;
    const insertPps = this.hasIdr && !this.hasPps ? this.pps : undefined;
    const extra =
      (insertSps ? START_CODE_SIZE + insertSps.length : 0) +
      (insertPps ? START_CODE_SIZE + insertPps.length : 0);
    const starts = this.naluStarts;
    const count = starts.length;
    // Parameter sets go first, after a leading access unit delimiter if there is one.
    const firstIsAud = (this.buf[starts[0]] & 0x1f) === H264NalType.aud;
    const insertAt = firstIsAud ? (count > 1 ? starts[1] - START_CODE_SIZE : this.len) : 0;
    const annexB = new Uint8Array(this.len + extra);
    annexB.set(this.buf.subarray(0, insertAt), 0);
    let offset = insertAt;
    const nalus: Uint8Array[] = [];
    if (firstIsAud) nalus.push(annexB.subarray(starts[0], insertAt));
    if (insertSps) offset = writeNalu(annexB, offset, insertSps, nalus);
    if (insertPps) offset = writeNalu(annexB, offset, insertPps, nalus);
    annexB.set(this.buf.subarray(insertAt, this.len), offset);
    for (let i = firstIsAud ? 1 : 0; i < count; i++) {
      const end = i + 1 < count ? starts[i + 1] - START_CODE_SIZE : this.len;
      nalus.push(annexB.subarray(starts[i] + extra, end + extra));
    }
    if (extra > 0) this.stats.parameterSetsInserted++;
    this.stats.accessUnits++;
    if (this.hasIdr) this.stats.keyframes++;
    this.onAccessUnit({ annexB, nalus, rtpTimestamp, pts90k, keyframe: this.hasIdr });
  }
}

/** Writes start code + NAL at `offset`, records its view, returns the offset after it. */
function writeNalu(out: Uint8Array, offset: number, nalu: Uint8Array, nalus: Uint8Array[]): number {
  out[offset + 3] = 1;
  const start = offset + START_CODE_SIZE;
  out.set(nalu, start);
  nalus.push(out.subarray(start, start + nalu.length));
  return start + nalu.length;
}

function sameBytes(a: Uint8Array, b: Uint8Array, bOffset: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[bOffset + i]) return false;
  return true;
}
