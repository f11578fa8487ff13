// FLV audio/video tag bodies (what RTMP messages 8 and 9 carry) → what the MPEG-TS segmenter
// takes: H.264 access units in Annex B (SPS/PPS from the sequence header before each keyframe)
// with PTS and DTS, and AAC frames with an ADTS header built from the AudioSpecificConfig.
// Anything else is refused with a reason a publisher can act on.

const START_CODE = Buffer.from([0, 0, 0, 1]);
const AVC_CODEC_ID = 7;
const AAC_SOUND_FORMAT = 10;
const VIDEO_CODECS: Record<number, string> = {
  2: 'Sorenson H.263',
  3: 'Screen video',
  4: 'VP6',
  5: 'VP6 alpha',
  6: 'Screen video 2',
  12: 'HEVC',
};
const AUDIO_CODECS: Record<number, string> = {
  0: 'PCM',
  1: 'ADPCM',
  2: 'MP3',
  3: 'PCM LE',
  4: 'Nellymoser',
  5: 'Nellymoser',
  6: 'Nellymoser',
  7: 'G.711 A-law',
  8: 'G.711 mu-law',
  11: 'Speex',
  14: 'MP3 8 kHz',
};
const AAC_SAMPLE_RATES = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

export class UnsupportedMediaError extends Error {}

export interface FlvVideoFrame {
  annexB: Uint8Array;
  /** Presentation and decode time, 90 kHz, from the RTMP timestamp (DTS) and composition time. */
  pts90k: number;
  dts90k: number;
  keyframe: boolean;
}

export interface FlvAudioFrame {
  /** One ADTS frame (7-byte header + raw AAC). */
  adts: Uint8Array;
  pts90k: number;
}

export interface AacConfig {
  objectType: number;
  sampleRate: number;
  channels: number;
}

/** One publisher's state: the parameter sets and AudioSpecificConfig come once, before the frames. */
export class FlvDepacketizer {
  private parameterSets?: Buffer;
  private nalLengthSize = 4;
  private asc?: { profile: number; freqIndex: number; channelConfig: number };
  aac?: AacConfig;
  /** Set when a video sequence header was seen: H.264 High/Main/Baseline, as in the SPS. */
  profileIdc?: number;

  /** Returns the access unit a tag carries, or undefined (sequence header, end of sequence). */
  video(body: Buffer, timestampMs: number): FlvVideoFrame | undefined {
    if (body.length < 1) return undefined;
    if (body[0] & 0x80) {
      // Enhanced RTMP: a FourCC names the codec (hvc1, av01, vp09).
      const fourcc = body.length >= 5 ? body.toString('latin1', 1, 5) : '?';
      throw new UnsupportedMediaError(`video codec ${fourcc} is not supported: publish H.264`);
    }
    const frameType = body[0] >> 4;
    const codec = body[0] & 0x0f;
    if (codec !== AVC_CODEC_ID) {
      throw new UnsupportedMediaError(
        `video codec ${VIDEO_CODECS[codec] ?? `id ${codec}`} is not supported: publish H.264`,
      );
    }
    if (frameType === 5) return undefined; // video info/command frame
    if (body.length < 5) return undefined;
    const packetType = body[1];
    const cts = ((body.readIntBE(2, 3) << 8) >> 8) | 0;
    if (packetType === 0) {
      this.readAvcConfig(body.subarray(5));
      return undefined;
    }
    if (packetType !== 1) return undefined;
    const nalus = this.splitNalus(body.subarray(5));
    if (nalus.length === 0) return undefined;
    const hasIdr = nalus.some((n) => (n[0] & 0x1f) === 5);
    const hasSps = nalus.some((n) => (n[0] & 0x1f) === 7);
    const keyframe = frameType === 1 || hasIdr;
    const parts: Buffer[] = [];
    // A decoder joining at this keyframe needs the parameter sets in-band (MPEG-TS has no extradata).
    if (keyframe && !hasSps && this.parameterSets) parts.push(this.parameterSets);
    for (const n of nalus) parts.push(START_CODE, n);
    const dts90k = timestampMs * 90;
    return { annexB: Buffer.concat(parts), dts90k, pts90k: dts90k + cts * 90, keyframe };
  }

  /** Returns the ADTS frame a tag carries, or undefined (the AudioSpecificConfig). */
  audio(body: Buffer, timestampMs: number): FlvAudioFrame | undefined {
    if (body.length < 1) return undefined;
    const format = body[0] >> 4;
    if (format !== AAC_SOUND_FORMAT) {
      throw new UnsupportedMediaError(
        `audio codec ${AUDIO_CODECS[format] ?? `id ${format}`} is not supported: publish AAC (or no audio)`,
      );
    }
    if (body.length < 2) return undefined;
    if (body[1] === 0) {
      this.readAsc(body.subarray(2));
      return undefined;
    }
    const raw = body.subarray(2);
    if (!this.asc) throw new UnsupportedMediaError('AAC frame before its AudioSpecificConfig');
    if (raw.length === 0) return undefined;
    return { adts: adtsFrame(this.asc, raw), pts90k: timestampMs * 90 };
  }

  private readAvcConfig(rec: Buffer): void {
    if (rec.length < 7 || rec[0] !== 1) throw new UnsupportedMediaError('malformed H.264 sequence header');
    this.profileIdc = rec[1];
    this.nalLengthSize = (rec[4] & 0x03) + 1;
    const parts: Buffer[] = [];
    let at = 5;
    const numSps = rec[at++] & 0x1f;
    for (let i = 0; i < numSps; i++) at = this.takeParamSet(rec, at, parts);
    if (at >= rec.length) throw new UnsupportedMediaError('malformed H.264 sequence header (no PPS)');
    const numPps = rec[at++];
    for (let i = 0; i < numPps; i++) at = this.takeParamSet(rec, at, parts);
    this.parameterSets = Buffer.concat(parts);
  }

  private takeParamSet(rec: Buffer, at: number, parts: Buffer[]): number {
    if (at + 2 > rec.length) throw new UnsupportedMediaError('malformed H.264 sequence header');
    const len = rec.readUInt16BE(at);
    if (at + 2 + len > rec.length) throw new UnsupportedMediaError('malformed H.264 sequence header');
    parts.push(START_CODE, rec.subarray(at + 2, at + 2 + len));
    return at + 2 + len;
  }

  private splitNalus(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = this.nalLengthSize;
    let at = 0;
    while (at + n <= data.length) {
      let len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + data[at + i];
      at += n;
      if (len === 0 || at + len > data.length) break;
      const nal = data.subarray(at, at + len);
      at += len;
      const type = nal[0] & 0x1f;
      // The AUD is the muxer's to write.
      if (type !== 9) out.push(nal);
    }
    return out;
  }

  private readAsc(asc: Buffer): void {
    if (asc.length < 2) throw new UnsupportedMediaError('malformed AAC AudioSpecificConfig');
    const objectType = asc[0] >> 3;
    const freqIndex = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
    const channelConfig = (asc[1] >> 3) & 0x0f;
    // ADTS can carry AAC Main/LC/SSR/LTP (object types 1–4) with a table sample rate; HE-AAC signals
    // SBR inside an LC stream, which ADTS carries as LC too.
    if (objectType < 1 || objectType > 4 || freqIndex > 12 || channelConfig === 0) {
      throw new UnsupportedMediaError(
        `AAC object type ${objectType}, rate index ${freqIndex}, channel config ${channelConfig} cannot be carried in ADTS: publish AAC-LC`,
      );
    }
    this.asc = { profile: objectType - 1, freqIndex, channelConfig };
    this.aac = { objectType, sampleRate: AAC_SAMPLE_RATES[freqIndex], channels: channelConfig };
  }
}

function adtsFrame(asc: { profile: number; freqIndex: number; channelConfig: number }, raw: Buffer): Buffer {
  const len = raw.length + 7;
  const h = Buffer.alloc(7);
  h[0] = 0xff;
  h[1] = 0xf1; // MPEG-4, layer 0, no CRC
  h[2] = (asc.profile << 6) | (asc.freqIndex << 2) | (asc.channelConfig >> 2);
  h[3] = ((asc.channelConfig & 3) << 6) | (len >> 11);
  h[4] = (len >> 3) & 0xff;
  h[5] = ((len & 7) << 5) | 0x1f;
  h[6] = 0xfc;
  return Buffer.concat([h, raw]);
}
