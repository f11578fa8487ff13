// Media: RTP ⇄ H.264/VP8/VP9/AV1/Opus ⇄ MPEG-TS/IVF, in TypeScript, without I/O.
export {
  codecStringFromSps,
  findStartCode,
  H264_AUD_NAL,
  H264NalType,
  isH264Keyframe,
  parseSpropParameterSets,
  splitAnnexB,
  startsWithAud,
} from './annex-b.ts';
export {
  Av1Depacketizer,
  type Av1DepacketizerOptions,
  parseAv1AggregationHeader,
  readLeb128,
  splitAv1Payload,
  withObuSize,
  writeLeb128,
} from './av1.ts';
export { DtsGenerator, type DtsGeneratorOptions, type DtsGeneratorStats } from './dts.ts';
export {
  type AccessUnit,
  H264Depacketizer,
  type H264DepacketizerOptions,
  type H264DepacketizerStats,
  type H264DropReason,
} from './h264-depacketizer.ts';
export { type H264PacketizerOptions, packetizeH264, type RtpPayload } from './h264-packetizer.ts';
export { type H264SpsInfo, parseH264Sps } from './h264-sps.ts';
export {
  IVF_HEADER_BYTES,
  type IvfFourcc,
  type IvfFrame,
  type IvfHeader,
  IvfParseError,
  IvfReader,
  ivfFileHeader,
  ivfFrameHeader,
} from './ivf.ts';
export { PTS_WRAP, StreamType } from './mpeg-ts.ts';
export {
  OPUS_CLOCK_RATE,
  type OpusFrame,
  OpusRtpDepacketizer,
  opusFrameSamples,
  opusPacketSamples,
} from './opus.ts';
export {
  ReorderBuffer,
  type ReorderBufferOptions,
  type ReorderBufferStats,
  type ReorderPushResult,
} from './reorder.ts';
export {
  parseRtp,
  type RtpHeaderExtension,
  type RtpPacket,
  RtpParseError,
  type RtpParseErrorReason,
  RtpTimestampUnwrapper,
  seqDiff,
  serializeRtp,
} from './rtp.ts';
export { RtpTimeline, type RtpTimelineOptions } from './timeline.ts';
export {
  type AudioCodec,
  type DemuxedAudio,
  type DemuxedFrame,
  type DemuxedVideo,
  TsDemuxer,
  type TsDemuxerStats,
} from './ts-demuxer.ts';
export { type TsAudioPacket, TsMuxer, type TsMuxerOptions, type TsVideoFrame } from './ts-muxer.ts';
export {
  packetizeVp8,
  parseVp8Descriptor,
  parseVp9Descriptor,
  type TranscodedVideoCodec,
  type Vp8RtpPayload,
  type VpxCodec,
  VpxDepacketizer,
  type VpxDepacketizerOptions,
  type VpxFrame,
  vp8KeyframeSize,
  vp9IsKeyframe,
} from './vp8.ts';
