// MPEG-TS muxer for H.264 + Opus, written the way ffmpeg's mpegtsenc writes them.
import { H264_AUD_NAL, startsWithAud } from './annex-b.ts';
import {
  crc32Mpeg,
  PAT_PID,
  StreamType,
  TS_HEADER_SIZE,
  TS_PACKET_SIZE,
  TS_PAYLOAD_SIZE,
  TS_SYNC_BYTE,
  writePcr,
  writePesTimestamp,
} from './mpeg-ts.ts';

export interface TsMuxerOptions {
  video: boolean;
  /** Opus audio with this many channels (1–8); or AAC, given as ADTS frames (an RTMP publish). */
  audio?: { channels: number; codec?: 'opus' | 'aac' };
  /** PCR = DTS − this, floored at 0. Default 0. */
  pcrDelay90k?: number;
  /** Defaults follow ffmpeg: PMT 0x1000, video 0x100, audio 0x101 (0x100 when there is no video). */
  pmtPid?: number;
  videoPid?: number;
  audioPid?: number;
}

export interface TsVideoFrame {
  /** One access unit, Annex-B. An AUD is prepended unless it already starts with one. */
  annexB: Uint8Array;
  pts90k: number;
  /** Defaults to pts90k; written only when it differs. */
  dts90k?: number;
  keyframe: boolean;
}

export interface TsAudioPacket {
  /** One Opus packet, or one ADTS frame for AAC. */
  data: Uint8Array;
  pts90k: number;
}

const VIDEO_STREAM_ID = 0xe0;
/** ffmpeg puts Opus in private_stream_1. */
const OPUS_STREAM_ID = 0xbd;
/** AAC goes in an MPEG audio stream id, as ffmpeg writes it. */
const AAC_STREAM_ID = 0xc0;
const PES_HEADER_MAX = 19;
/** Opus control header: 0x3FF prefix, no trim flags (ETSI TS 102 366 style, as ffmpeg writes it). */
const OPUS_CONTROL_PREFIX_0 = 0x7f;
const OPUS_CONTROL_PREFIX_1 = 0xe0;
const ADAPTATION_PCR_SIZE = 8; // length byte + flags + 6-byte PCR
const ADAPTATION_FLAGS_SIZE = 2; // length byte + flags

enum CcSlot {
  pat = 0,
  pmt = 1,
  video = 2,
  audio = 3,
}

/**
 * Writes MPEG-TS packets as frames arrive: every call returns whole 188-byte packets, ready to be
 * appended to the current segment. PAT+PMT come first in the stream, before every keyframe, and
 * from `startSegment()`, so a segment cut at a keyframe decodes on its own.
 */
export class TsMuxer {
  private readonly pmtPid: number;
  private readonly videoPid: number;
  private readonly audioPid: number;
  private readonly pcrPid: number;
  private readonly hasVideo: boolean;
  private readonly hasAudio: boolean;
  private readonly aac: boolean;
  private readonly pcrDelay90k: number;
  private readonly pat: Uint8Array;
  private readonly pmt: Uint8Array;
  private readonly cc = new Uint8Array(4);
  private readonly header = new Uint8Array(PES_HEADER_MAX + 6 + 2 + 256);
  private wroteAnything = false;
  /** The last thing written was PAT+PMT, so a keyframe need not repeat them. */
  private tablesJustWritten = false;

  constructor(options: TsMuxerOptions) {
    this.hasVideo = options.video;
    this.hasAudio = options.audio !== undefined;
    this.aac = options.audio?.codec === 'aac';
    if (!this.hasVideo && !this.hasAudio) throw new RangeError('TsMuxer needs video, audio or both');
    const channels = options.audio?.channels ?? 2;
    if (this.hasAudio && (!Number.isInteger(channels) || channels < 1 || channels > 8)) {
      throw new RangeError(`Opus channel count ${channels} is not 1–8`);
    }
    this.pmtPid = options.pmtPid ?? 0x1000;
    this.videoPid = options.videoPid ?? 0x100;
    this.audioPid = options.audioPid ?? (this.hasVideo ? 0x101 : 0x100);
    this.pcrPid = this.hasVideo ? this.videoPid : this.audioPid;
    this.pcrDelay90k = options.pcrDelay90k ?? 0;
    this.pat = buildPat(this.pmtPid);
    const streams: Uint8Array[] = [];
    if (this.hasVideo) streams.push(esInfo(StreamType.h264, this.videoPid, []));
    if (this.hasAudio && this.aac) streams.push(esInfo(StreamType.aacAdts, this.audioPid, []));
    else if (this.hasAudio) {
      // Registration descriptor 'Opus' plus DVB extension descriptor 0x80 with the channel config.
      const descriptors = [0x05, 4, 0x4f, 0x70, 0x75, 0x73, 0x7f, 2, 0x80, channels];
      streams.push(esInfo(StreamType.privateData, this.audioPid, descriptors));
    }
    this.pmt = buildPmt(this.pcrPid, streams);
  }

  /** PAT+PMT, to begin a new segment. */
  startSegment(): Uint8Array {
    const out = new Uint8Array(2 * TS_PACKET_SIZE);
    this.writeTables(out, 0);
    this.wroteAnything = true;
    this.tablesJustWritten = true;
    return out;
  }

  writeVideo(frame: TsVideoFrame): Uint8Array {
    if (!this.hasVideo) throw new Error('TsMuxer was created without video');
    const pts = frame.pts90k;
    const dts = frame.dts90k ?? pts;
    const withDts = dts !== pts;
    const h = this.header;
    h[3] = VIDEO_STREAM_ID;
    let headerLength = this.writePesHeader(pts, withDts ? dts : -1);
    if (!startsWithAud(frame.annexB)) {
      h[headerLength] = 0;
      h[headerLength + 1] = 0;
      h[headerLength + 2] = 0;
      h[headerLength + 3] = 1;
      h.set(H264_AUD_NAL, headerLength + 4);
      headerLength += 4 + H264_AUD_NAL.length;
    }
    // Video PES may exceed 16 bits; length 0 means "unbounded" there.
    setPesLength(h, headerLength + frame.annexB.length - 6, true);
    const tables = !this.wroteAnything || (frame.keyframe && !this.tablesJustWritten);
    const pcr = this.pcrPid === this.videoPid ? Math.max(0, dts - this.pcrDelay90k) : -1;
    return this.writePes(
      CcSlot.video,
      this.videoPid,
      headerLength,
      frame.annexB,
      pcr,
      frame.keyframe,
      tables,
    );
  }

  writeAudio(packet: TsAudioPacket): Uint8Array {
    if (!this.hasAudio) throw new Error('TsMuxer was created without audio');
    const size = packet.data.length;
    if (size === 0) throw new RangeError('empty audio packet');
    const h = this.header;
    h[3] = this.aac ? AAC_STREAM_ID : OPUS_STREAM_ID;
    let headerLength = this.writePesHeader(packet.pts90k, -1);
    if (this.aac) return this.writeAudioPes(headerLength, packet);
    h[headerLength++] = OPUS_CONTROL_PREFIX_0;
    h[headerLength++] = OPUS_CONTROL_PREFIX_1;
    // au_size: 0xFF per full 255, then the remainder (0 when size is a multiple of 255).
    let remaining = size;
    while (remaining >= 255) {
      h[headerLength++] = 0xff;
      remaining -= 255;
    }
    h[headerLength++] = remaining;
    if (headerLength > h.length) throw new RangeError('Opus packet too large');
    return this.writeAudioPes(headerLength, packet);
  }

  private writeAudioPes(headerLength: number, packet: TsAudioPacket): Uint8Array {
    setPesLength(this.header, headerLength + packet.data.length - 6, false);
    const tables = !this.wroteAnything;
    const pcr = this.pcrPid === this.audioPid ? Math.max(0, packet.pts90k - this.pcrDelay90k) : -1;
    return this.writePes(CcSlot.audio, this.audioPid, headerLength, packet.data, pcr, false, tables);
  }

  /** Fills start code, flags and timestamps; the caller has set the stream id. Returns the header length. */
  private writePesHeader(pts: number, dts: number): number {
    const h = this.header;
    h[0] = 0;
    h[1] = 0;
    h[2] = 1;
    h[6] = 0x84; // '10' marker bits, data_alignment_indicator
    if (dts >= 0) {
      h[7] = 0xc0;
      h[8] = 10;
      writePesTimestamp(h, 9, 0b0011, pts);
      writePesTimestamp(h, 14, 0b0001, dts);
      return 19;
    }
    h[7] = 0x80;
    h[8] = 5;
    writePesTimestamp(h, 9, 0b0010, pts);
    return 14;
  }

  private writeTables(out: Uint8Array, offset: number): number {
    offset = this.writeSection(out, offset, CcSlot.pat, PAT_PID, this.pat);
    return this.writeSection(out, offset, CcSlot.pmt, this.pmtPid, this.pmt);
  }

  private writeSection(
    out: Uint8Array,
    offset: number,
    slot: CcSlot,
    pid: number,
    section: Uint8Array,
  ): number {
    out[offset] = TS_SYNC_BYTE;
    out[offset + 1] = 0x40 | (pid >> 8);
    out[offset + 2] = pid & 0xff;
    out[offset + 3] = 0x10 | this.nextCc(slot);
    out[offset + 4] = 0; // pointer_field
    out.set(section, offset + 5);
    out.fill(0xff, offset + 5 + section.length, offset + TS_PACKET_SIZE);
    return offset + TS_PACKET_SIZE;
  }

  private nextCc(slot: CcSlot): number {
    const cc = this.cc[slot];
    this.cc[slot] = (cc + 1) & 0x0f;
    return cc;
  }

  /** Splits header + body into TS packets in one output buffer, tables first when asked. */
  private writePes(
    slot: CcSlot,
    pid: number,
    headerLength: number,
    body: Uint8Array,
    pcr: number,
    randomAccess: boolean,
    tables: boolean,
  ): Uint8Array {
    const total = headerLength + body.length;
    const firstAdaptation = pcr >= 0 ? ADAPTATION_PCR_SIZE : randomAccess ? ADAPTATION_FLAGS_SIZE : 0;
    const firstCapacity = TS_PAYLOAD_SIZE - firstAdaptation;
    const pesPackets = total <= firstCapacity ? 1 : 1 + Math.ceil((total - firstCapacity) / TS_PAYLOAD_SIZE);
    const out = new Uint8Array(((tables ? 2 : 0) + pesPackets) * TS_PACKET_SIZE);
    let offset = tables ? this.writeTables(out, 0) : 0;
    const header = this.header;
    let position = 0;
    for (let i = 0; i < pesPackets; i++) {
      const first = i === 0;
      const fixedAdaptation = first ? firstAdaptation : 0;
      const chunk = Math.min(TS_PAYLOAD_SIZE - fixedAdaptation, total - position);
      const adaptation = TS_PAYLOAD_SIZE - chunk; // fixed fields plus stuffing
      out[offset] = TS_SYNC_BYTE;
      out[offset + 1] = (first ? 0x40 : 0) | (pid >> 8);
      out[offset + 2] = pid & 0xff;
      out[offset + 3] = (adaptation > 0 ? 0x30 : 0x10) | this.nextCc(slot);
      let p = offset + TS_HEADER_SIZE;
      if (adaptation > 0) {
        out[p] = adaptation - 1;
        if (adaptation > 1) {
          let flags = 0;
          if (first && randomAccess) flags |= 0x40;
          if (first && pcr >= 0) flags |= 0x10;
          out[p + 1] = flags;
          let q = p + 2;
          if (flags & 0x10) {
            writePcr(out, q, pcr);
            q += 6;
          }
          out.fill(0xff, q, p + adaptation);
        }
        p += adaptation;
      }
      // Copy `chunk` bytes of the virtual concatenation header ‖ body starting at `position`.
      let n = chunk;
      while (n > 0 && position < headerLength) {
        out[p++] = header[position++];
        n--;
      }
      if (n > 0) {
        const start = position - headerLength;
        out.set(body.subarray(start, start + n), p);
        position += n;
      }
      offset += TS_PACKET_SIZE;
    }
    this.wroteAnything = true;
    this.tablesJustWritten = false;
    return out;
  }
}

function setPesLength(h: Uint8Array, length: number, unboundedAllowed: boolean): void {
  if (length > 0xffff) {
    if (!unboundedAllowed) throw new RangeError(`PES of ${length} bytes exceeds 65535`);
    length = 0;
  }
  h[4] = length >> 8;
  h[5] = length & 0xff;
}

function esInfo(streamType: number, pid: number, descriptors: number[]): Uint8Array {
  return Uint8Array.of(
    streamType,
    0xe0 | (pid >> 8),
    pid & 0xff,
    0xf0 | (descriptors.length >> 8),
    descriptors.length & 0xff,
    ...descriptors,
  );
}

/** Wraps a long-form PSI section body: table id, section length, CRC. `body` starts at transport/program id. */
function finishSection(tableId: number, body: number[]): Uint8Array {
  const sectionLength = body.length + 4;
  const section = new Uint8Array(3 + sectionLength);
  section[0] = tableId;
  section[1] = 0xb0 | (sectionLength >> 8);
  section[2] = sectionLength & 0xff;
  section.set(body, 3);
  const crc = crc32Mpeg(section, 0, section.length - 4);
  const end = section.length;
  section[end - 4] = crc >>> 24;
  section[end - 3] = crc >>> 16;
  section[end - 2] = crc >>> 8;
  section[end - 1] = crc;
  return section;
}

function buildPat(pmtPid: number): Uint8Array {
  // transport_stream_id 1, version 0/current, section 0 of 0, program 1 → PMT PID.
  return finishSection(0x00, [0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xe0 | (pmtPid >> 8), pmtPid & 0xff]);
}

function buildPmt(pcrPid: number, streams: Uint8Array[]): Uint8Array {
  const body = [0x00, 0x01, 0xc1, 0x00, 0x00, 0xe0 | (pcrPid >> 8), pcrPid & 0xff, 0xf0, 0x00];
  for (const s of streams) body.push(...s);
  return finishSection(0x02, body);
}
