// Live transcodes through one ffmpeg child each: VP8/VP9/AV1 publishers → H.264, H.264 → VP8 viewers.
export { type FfmpegExit, FfmpegProcess, type FfmpegProcessOptions } from './ffmpeg-process.ts';
export { H264ToVp8, type H264ToVp8Options, h264ToVp8Args } from './h264-to-vp8.ts';
export { VpxToH264, type VpxToH264Options, vpxToH264Args } from './vpx-to-h264.ts';
