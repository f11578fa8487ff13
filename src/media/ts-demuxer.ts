// Streaming MPEG-TS demuxer: PAT/PMT discovery, PES reassembly, H.264 access units and audio packets.
import { isH264Keyframe } from './annex-b.ts';
import {
  crc32Mpeg,
  PAT_PID,
  PTS_WRAP,
  readPesTimestamp,
  StreamType,
  TS_PACKET_SIZE,
  TS_SYNC_BYTE,
} from './mpeg-ts.ts';
import { OPUS_CLOCK_RATE, opusPacketSamples } from './opus.ts';

export type AudioCodec = 'opus' | 'aac' | 'mp3' | 'ac3';

export interface DemuxedVideo {
  kind: 'video';
  codec: 'h264';
  pid: number;
  /** One access unit as carried in the PES (AUD included if the muxer wrote one). */
  annexB: Uint8Array;
  pts90k: number;
  /** Equals pts90k when the PES had no DTS. */
  dts90k: number;
  keyframe: boolean;
}

export interface DemuxedAudio {
  kind: 'audio';
  codec: AudioCodec;
  pid: number;
  /** Opus: one Opus packet. AAC: one ADTS frame (header included). Others: one whole PES payload. */
  data: Uint8Array;
  pts90k: number;
}

export type DemuxedFrame = DemuxedVideo | DemuxedAudio;

export interface TsDemuxerStats {
  packets: number;
  /** Times the 0x47 sync byte was lost and searched for again. */
  syncLosses: number;
  skippedBytes: number;
  transportErrors: number;
  continuityErrors: number;
  duplicatePackets: number;
  psiErrors: number;
  /** PES dropped because packets of it were lost or it was truncated or malformed. */
  droppedPes: number;
  /** Opus PES without valid control headers, or packets whose duration could not be read. */
  opusFramingErrors: number;
  adtsErrors: number;
  /** Elementary streams in the PMT that this demuxer does not extract. */
  unsupportedStreams: number;
}

type StreamKind = { kind: 'video'; codec: 'h264' } | { kind: 'audio'; codec: AudioCodec };

interface PesStream {
  pid: number;
  stream: StreamKind;
  buf: Uint8Array;
  len: number;
  /** Collecting a PES that began with a PUSI packet. */
  active: boolean;
  broken: boolean;
}

interface SectionBuffer {
  buf: Uint8Array;
  len: number;
  active: boolean;
}

const NO_CC = -1;
const AAC_SAMPLE_RATES = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/**
 * Push bytes in any chunking; get back the frames completed by them. Call `flush()` at the end of
 * a segment to get the last PES (video PES written by ffmpeg have no length, so they end only at the
 * next PES or at flush). PIDs and stream types come from PAT/PMT.
 *
 * Timestamps are unwrapped across the 33-bit wraparound (nearest to the previous timestamp), so
 * they keep increasing; call `reset()` when the source changes.
 */
export class TsDemuxer {
  readonly stats: TsDemuxerStats = {
    packets: 0,
    syncLosses: 0,
    skippedBytes: 0,
    transportErrors: 0,
    continuityErrors: 0,
    duplicatePackets: 0,
    psiErrors: 0,
    droppedPes: 0,
    opusFramingErrors: 0,
    adtsErrors: 0,
    unsupportedStreams: 0,
  };

  private readonly carry = new Uint8Array(TS_PACKET_SIZE);
  private carryLength = 0;
  private readonly continuity = new Int8Array(8192).fill(NO_CC);
  private pesStreams: (PesStream | undefined)[] = new Array(8192);
  private sections = new Map<number, SectionBuffer>();
  private pmtPid = -1;
  private lastPmtCrc = -1;
  private lastTimestamp = Number.NaN;
  private out: DemuxedFrame[] = [];

  constructor() {
    this.sections.set(PAT_PID, newSectionBuffer());
  }

  push(chunk: Uint8Array): DemuxedFrame[] {
    this.out = [];
    let i = 0;
    const n = chunk.length;
    if (this.carryLength > 0) {
      const need = TS_PACKET_SIZE - this.carryLength;
      if (n < need) {
        this.carry.set(chunk, this.carryLength);
        this.carryLength += n;
        return this.out;
      }
      this.carry.set(chunk.subarray(0, need), this.carryLength);
      this.carryLength = 0;
      i = need;
      this.handlePacket(this.carry, 0);
    }
    while (i < n) {
      if (chunk[i] !== TS_SYNC_BYTE) {
        const next = this.findSync(chunk, i);
        this.stats.syncLosses++;
        this.stats.skippedBytes += next - i;
        i = next;
        continue;
      }
      if (i + TS_PACKET_SIZE > n) {
        this.carry.set(chunk.subarray(i), 0);
        this.carryLength = n - i;
        break;
      }
      this.handlePacket(chunk, i);
      i += TS_PACKET_SIZE;
    }
    return this.out;
  }

  /** Emits PES still being collected (end of segment) and forgets continuity counters. */
  flush(): DemuxedFrame[] {
    this.out = [];
    this.carryLength = 0;
    for (const s of this.pesStreams) {
      if (s?.active) this.finishPes(s);
    }
    this.continuity.fill(NO_CC);
    return this.out;
  }

  /** Forgets everything: tables, partial PES, timestamp unwrapping. */
  reset(): void {
    this.carryLength = 0;
    this.continuity.fill(NO_CC);
    this.pesStreams = new Array(8192);
    this.sections = new Map([[PAT_PID, newSectionBuffer()]]);
    this.pmtPid = -1;
    this.lastPmtCrc = -1;
    this.lastTimestamp = Number.NaN;
  }

  /** Next offset where a sync byte is followed by another one a packet later (or the data ends). */
  private findSync(buf: Uint8Array, from: number): number {
    for (let j = from + 1; j < buf.length; j++) {
      if (buf[j] !== TS_SYNC_BYTE) continue;
      if (j + TS_PACKET_SIZE >= buf.length || buf[j + TS_PACKET_SIZE] === TS_SYNC_BYTE) return j;
    }
    return buf.length;
  }

  private handlePacket(buf: Uint8Array, off: number): void {
    this.stats.packets++;
    const b1 = buf[off + 1];
    if (b1 & 0x80) {
      this.stats.transportErrors++;
      return;
    }
    const pid = ((b1 & 0x1f) << 8) | buf[off + 2];
    const pusi = (b1 & 0x40) !== 0;
    const b3 = buf[off + 3];
    const afc = (b3 >> 4) & 3;
    let payloadStart = off + 4;
    let discontinuity = false;
    if (afc & 2) {
      const afLength = buf[off + 4];
      if (afLength > 183) {
        this.stats.transportErrors++;
        return;
      }
      if (afLength > 0) discontinuity = (buf[off + 5] & 0x80) !== 0;
      payloadStart += 1 + afLength;
    }
    if (!(afc & 1)) return;
    const end = off + TS_PACKET_SIZE;

    const pes = this.pesStreams[pid];
    const section = pes ? undefined : this.sections.get(pid);
    if (!pes && !section) return;

    const cc = b3 & 0x0f;
    const last = this.continuity[pid];
    this.continuity[pid] = cc;
    if (last !== NO_CC && !discontinuity) {
      // A repeated counter marks a duplicate; one that starts a unit is more likely a restarted muxer.
      if (cc === last && !pusi) {
        this.stats.duplicatePackets++;
        return;
      }
      if (cc !== ((last + 1) & 0x0f) && cc !== last) {
        this.stats.continuityErrors++;
        if (pes) pes.broken = true;
        else if (section) section.active = false;
      }
    }

    if (pes) this.handlePesPayload(pes, buf, payloadStart, end, pusi);
    else if (section) this.handleSectionPayload(pid, section, buf, payloadStart, end, pusi);
  }

  private handlePesPayload(pes: PesStream, buf: Uint8Array, start: number, end: number, pusi: boolean): void {
    if (pusi) {
      if (pes.active) this.finishPes(pes);
      pes.active = true;
      pes.broken = false;
      pes.len = 0;
    } else if (!pes.active) {
      return; // joined in the middle of a PES
    }
    const size = end - start;
    if (pes.len + size > pes.buf.length) {
      const grown = new Uint8Array(Math.max(pes.len + size, pes.buf.length * 2));
      grown.set(pes.buf.subarray(0, pes.len));
      pes.buf = grown;
    }
    pes.buf.set(buf.subarray(start, end), pes.len);
    pes.len += size;
    // A PES with a length field is complete as soon as its bytes are in: no need to wait for the next one.
    if (pes.len >= 6) {
      const declared = (pes.buf[4] << 8) | pes.buf[5];
      if (declared > 0 && pes.len >= 6 + declared) this.finishPes(pes);
    }
  }

  private finishPes(pes: PesStream): void {
    pes.active = false;
    const b = pes.buf;
    const len = pes.len;
    if (pes.broken || len < 9 || b[0] !== 0 || b[1] !== 0 || b[2] !== 1) {
      this.stats.droppedPes++;
      return;
    }
    const declared = (b[4] << 8) | b[5];
    const headerEnd = 9 + b[8];
    const end = declared > 0 ? 6 + declared : len;
    if (end > len || headerEnd > end) {
      this.stats.droppedPes++;
      return;
    }
    const flags = b[7] >> 6;
    if (!(flags & 2) || headerEnd < 14) {
      this.stats.droppedPes++; // no PTS: nothing to time the frame with
      return;
    }
    const pts = this.unwrap(readPesTimestamp(b, 9));
    const dts = flags === 3 && headerEnd >= 19 ? this.unwrap(readPesTimestamp(b, 14)) : pts;
    const payload = b.slice(headerEnd, end);
    const stream = pes.stream;
    if (stream.kind === 'video') {
      this.out.push({
        kind: 'video',
        codec: 'h264',
        pid: pes.pid,
        annexB: payload,
        pts90k: pts,
        dts90k: dts,
        keyframe: isH264Keyframe(payload),
      });
    } else if (stream.codec === 'opus') {
      this.splitOpus(pes.pid, payload, pts);
    } else if (stream.codec === 'aac') {
      this.splitAdts(pes.pid, payload, pts);
    } else {
      this.out.push({ kind: 'audio', codec: stream.codec, pid: pes.pid, data: payload, pts90k: pts });
    }
  }

  /** Splits a PES of Opus access units, each behind a control header (0x3FF prefix, au_size, trims). */
  private splitOpus(pid: number, es: Uint8Array, pts: number): void {
    const len = es.length;
    let off = 0;
    let samples = 0;
    while (off < len) {
      if (off + 2 > len || es[off] !== 0x7f || (es[off + 1] & 0xe0) !== 0xe0) {
        this.stats.opusFramingErrors++;
        // Some muxers put one bare Opus packet per PES.
        if (off === 0) this.pushOpus(pid, es, pts);
        return;
      }
      const flags = es[off + 1];
      off += 2;
      let size = 0;
      let byte = 255;
      while (byte === 255 && off < len) {
        byte = es[off++];
        size += byte;
      }
      if (flags & 0x10) off += 2; // start_trim
      if (flags & 0x08) off += 2; // end_trim
      if (flags & 0x04 && off < len) off += 1 + es[off]; // control_extension
      if (byte === 255 || off + size > len) {
        this.stats.opusFramingErrors++;
        return;
      }
      const data = es.subarray(off, off + size);
      off += size;
      this.pushOpus(pid, data, pts + Math.round((samples * 90000) / OPUS_CLOCK_RATE));
      const duration = opusPacketSamples(data);
      if (duration === 0) this.stats.opusFramingErrors++;
      samples += duration === 0 ? 960 : duration;
    }
  }

  private pushOpus(pid: number, data: Uint8Array, pts: number): void {
    this.out.push({ kind: 'audio', codec: 'opus', pid, data, pts90k: pts });
  }

  private splitAdts(pid: number, es: Uint8Array, pts: number): void {
    let off = 0;
    let elapsed = 0;
    while (off + 7 <= es.length) {
      if (es[off] !== 0xff || (es[off + 1] & 0xf0) !== 0xf0) {
        this.stats.adtsErrors++;
        return;
      }
      const frameLength = ((es[off + 3] & 3) << 11) | (es[off + 4] << 3) | (es[off + 5] >> 5);
      const rate = AAC_SAMPLE_RATES[(es[off + 2] >> 2) & 0x0f];
      if (frameLength < 7 || off + frameLength > es.length || rate === undefined) {
        this.stats.adtsErrors++;
        return;
      }
      this.out.push({
        kind: 'audio',
        codec: 'aac',
        pid,
        data: es.subarray(off, off + frameLength),
        pts90k: pts + Math.round(elapsed),
      });
      elapsed += (((es[off + 6] & 3) + 1) * 1024 * 90000) / rate;
      off += frameLength;
    }
  }

  /** Places a 33-bit timestamp in the wrap period nearest to the previous one. */
  private unwrap(raw: number): number {
    if (Number.isNaN(this.lastTimestamp)) {
      this.lastTimestamp = raw;
      return raw;
    }
    const value = raw + Math.round((this.lastTimestamp - raw) / PTS_WRAP) * PTS_WRAP;
    this.lastTimestamp = value;
    return value;
  }

  private handleSectionPayload(
    pid: number,
    section: SectionBuffer,
    buf: Uint8Array,
    start: number,
    end: number,
    pusi: boolean,
  ): void {
    if (pusi) {
      const pointer = buf[start];
      start++;
      if (section.active && start + pointer <= end) {
        this.appendSection(section, buf, start, start + pointer);
        this.completeSection(pid, section);
      }
      start += pointer;
      if (start > end) {
        this.stats.psiErrors++;
        section.active = false;
        return;
      }
      section.active = true;
      section.len = 0;
    }
    if (!section.active) return;
    this.appendSection(section, buf, start, end);
    this.completeSection(pid, section);
  }

  private appendSection(section: SectionBuffer, buf: Uint8Array, start: number, end: number): void {
    const size = end - start;
    if (section.len + size > section.buf.length) {
      const grown = new Uint8Array(Math.max(section.len + size, section.buf.length * 2));
      grown.set(section.buf.subarray(0, section.len));
      section.buf = grown;
    }
    section.buf.set(buf.subarray(start, end), section.len);
    section.len += size;
  }

  /** Parses every complete section collected so far (stuffing 0xFF ends the list). */
  private completeSection(pid: number, section: SectionBuffer): void {
    let off = 0;
    const b = section.buf;
    while (section.active) {
      if (off >= section.len || b[off] === 0xff) {
        if (off > 0) section.active = false;
        return;
      }
      if (off + 3 > section.len) return;
      const total = 3 + (((b[off + 1] & 0x0f) << 8) | b[off + 2]);
      if (off + total > section.len) {
        if (off > 0) {
          // Keep the unfinished section at the front of the buffer.
          b.copyWithin(0, off, section.len);
          section.len -= off;
        }
        return;
      }
      if (total < 12 || crc32Mpeg(b, off, off + total) !== 0) {
        this.stats.psiErrors++;
      } else if (pid === PAT_PID && b[off] === 0x00) {
        this.parsePat(b, off, off + total);
      } else if (pid === this.pmtPid && b[off] === 0x02) {
        this.parsePmt(b, off, off + total);
      }
      off += total;
    }
  }

  private parsePat(b: Uint8Array, start: number, end: number): void {
    // Programs run from after the 8-byte header to before the CRC; the first real program wins.
    for (let p = start + 8; p + 4 <= end - 4; p += 4) {
      const program = (b[p] << 8) | b[p + 1];
      if (program === 0) continue; // network PID
      const pmtPid = ((b[p + 2] & 0x1f) << 8) | b[p + 3];
      if (pmtPid !== this.pmtPid) {
        if (this.pmtPid >= 0) this.sections.delete(this.pmtPid);
        this.pmtPid = pmtPid;
        this.lastPmtCrc = -1;
        this.sections.set(pmtPid, newSectionBuffer());
      }
      return;
    }
  }

  private parsePmt(b: Uint8Array, start: number, end: number): void {
    const crc = ((b[end - 4] << 24) | (b[end - 3] << 16) | (b[end - 2] << 8) | b[end - 1]) >>> 0;
    if (crc === this.lastPmtCrc) return; // repeated at every segment start; nothing changed
    this.lastPmtCrc = crc;
    const programInfoLength = ((b[start + 10] & 0x0f) << 8) | b[start + 11];
    const seen = new Set<number>();
    let p = start + 12 + programInfoLength;
    while (p + 5 <= end - 4) {
      const streamType = b[p];
      const pid = ((b[p + 1] & 0x1f) << 8) | b[p + 2];
      const infoLength = ((b[p + 3] & 0x0f) << 8) | b[p + 4];
      const descriptors = b.subarray(p + 5, Math.min(p + 5 + infoLength, end - 4));
      p += 5 + infoLength;
      const stream = classifyStream(streamType, descriptors);
      if (!stream) {
        this.stats.unsupportedStreams++;
        continue;
      }
      seen.add(pid);
      const existing = this.pesStreams[pid];
      if (existing && existing.stream.kind === stream.kind && existing.stream.codec === stream.codec)
        continue;
      this.pesStreams[pid] = {
        pid,
        stream,
        buf: new Uint8Array(stream.kind === 'video' ? 256 * 1024 : 4096),
        len: 0,
        active: false,
        broken: false,
      };
    }
    for (let pid = 0; pid < this.pesStreams.length; pid++) {
      if (this.pesStreams[pid] && !seen.has(pid)) this.pesStreams[pid] = undefined;
    }
  }
}

function newSectionBuffer(): SectionBuffer {
  return { buf: new Uint8Array(1024), len: 0, active: false };
}

function classifyStream(streamType: number, descriptors: Uint8Array): StreamKind | undefined {
  switch (streamType) {
    case StreamType.h264:
      return { kind: 'video', codec: 'h264' };
    case StreamType.aacAdts:
      return { kind: 'audio', codec: 'aac' };
    case StreamType.mpeg1Audio:
    case StreamType.mpeg2Audio:
      return { kind: 'audio', codec: 'mp3' };
    case StreamType.ac3:
      return { kind: 'audio', codec: 'ac3' };
    case StreamType.privateData:
      return classifyPrivateStream(descriptors);
    default:
      return undefined;
  }
}

/** Private data streams are identified by descriptors: registration 'Opus'/'AC-3', or the DVB AC-3 descriptor. */
function classifyPrivateStream(d: Uint8Array): StreamKind | undefined {
  let p = 0;
  while (p + 2 <= d.length) {
    const tag = d[p];
    const length = d[p + 1];
    if (tag === 0x05 && length >= 4) {
      const id = String.fromCharCode(d[p + 2], d[p + 3], d[p + 4], d[p + 5]);
      if (id === 'Opus') return { kind: 'audio', codec: 'opus' };
      if (id === 'AC-3') return { kind: 'audio', codec: 'ac3' };
    }
    if (tag === 0x6a) return { kind: 'audio', codec: 'ac3' };
    p += 2 + length;
  }
  return undefined;
}
