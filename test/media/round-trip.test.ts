// ffmpeg's TS → our demuxer → packetizer → (reordered, lossy) RTP → reorder buffer → depacketizer → our muxer → ffmpeg.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessUnit,
  type DemuxedAudio,
  type DemuxedVideo,
  H264Depacketizer,
  type H264DropReason,
  OpusRtpDepacketizer,
  packetizeH264,
  parseRtp,
  ReorderBuffer,
  type RtpPacket,
  RtpTimeline,
  serializeRtp,
  TsDemuxer,
  TsMuxer,
} from '../../src/media/index.ts';
import { decodeErrors, makeClip, makeWorkdir, probe, type Workdir } from './ffmpeg.ts';

const FRAMES = 60;
const GOP = 30;

let dir: Workdir;
let video: DemuxedVideo[];
let audio: DemuxedAudio[];
let sourceOpusFrames: number;

beforeAll(async () => {
  dir = await makeWorkdir();
  const clip = await makeClip(dir);
  const demuxer = new TsDemuxer();
  // Odd chunk sizes, so TS packets are split across pushes.
  const frames = [];
  for (let i = 0; i < clip.length; i += 1000) frames.push(...demuxer.push(clip.subarray(i, i + 1000)));
  frames.push(...demuxer.flush());
  video = frames.filter((f): f is DemuxedVideo => f.kind === 'video');
  audio = frames.filter((f): f is DemuxedAudio => f.kind === 'audio');
  const source = await probe(dir.path('clip.ts'));
  sourceOpusFrames = Number(source.find((s) => s.codec_name === 'opus')?.nb_read_frames);
}, 20_000);

afterAll(() => dir?.remove());

describe('demuxing ffmpeg output', () => {
  it('yields every video frame with keyframes at GOP boundaries', () => {
    expect(video).toHaveLength(FRAMES);
    expect(video.map((v, i) => (v.keyframe ? i : -1)).filter((i) => i >= 0)).toEqual([0, GOP]);
    for (let i = 1; i < video.length; i++) expect(video[i].pts90k - video[i - 1].pts90k).toBe(3000);
  });

  it('splits Opus PES into packets with increasing pts', () => {
    expect(audio.length).toBe(sourceOpusFrames);
    expect(audio.every((a) => a.codec === 'opus' && a.data.length === 320)).toBe(true);
    for (let i = 1; i < audio.length; i++) expect(audio[i].pts90k - audio[i - 1].pts90k).toBe(1800);
  });
});

interface IngressResult {
  chunks: { bytes: Uint8Array; keyframe: boolean }[];
  accessUnits: AccessUnit[];
  drops: H264DropReason[];
  losses: number[];
}

/** The WebRTC ingress path: RTP packets (optionally reordered and with one missing) into TS. */
function ingress(opts: { shuffle: boolean; dropFragmentOfFrame?: number }): IngressResult {
  const firstSeq = 65_500; // wraps to 0 during the clip
  const firstTs = 2 ** 32 - 45_000; // RTP timestamp wraps half a second in
  const packets: Uint8Array[] = [];
  let seq = firstSeq;
  video.forEach((frame, index) => {
    const payloads = packetizeH264(frame.annexB, { mtu: 1200 });
    const fragments = payloads.filter((p) => p.payload[0] === 28 + (p.payload[0] & 0xe0));
    const dropped = index === opts.dropFragmentOfFrame ? fragments[1]?.payload : undefined;
    if (index === opts.dropFragmentOfFrame) expect(fragments.length).toBeGreaterThan(2);
    for (const { payload, marker } of payloads) {
      const timestamp = (firstTs + frame.pts90k - video[0].pts90k) % 2 ** 32;
      const packet = serializeRtp({
        payloadType: 96,
        sequenceNumber: seq,
        timestamp,
        ssrc: 1,
        marker,
        payload,
      });
      seq = (seq + 1) & 0xffff;
      if (payload !== dropped) packets.push(packet);
    }
  });
  if (opts.shuffle) {
    for (let i = 0; i + 3 < packets.length; i += 7) {
      [packets[i], packets[i + 2]] = [packets[i + 2], packets[i]];
    }
  }

  const accessUnits: AccessUnit[] = [];
  const drops: H264DropReason[] = [];
  const losses: number[] = [];
  const depacketizer = new H264Depacketizer({
    onAccessUnit: (au) => accessUnits.push(au),
    onFrameDropped: (reason) => drops.push(reason),
  });
  const reorder = new ReorderBuffer<RtpPacket>({
    onPacket: (p) => depacketizer.push(p.payload, p.sequenceNumber, p.timestamp, p.marker),
    onLoss: (first) => losses.push(first),
  });
  packets.forEach((bytes, i) => {
    const p = parseRtp(bytes);
    reorder.push(p.sequenceNumber, p, i * 0.1);
  });
  reorder.flush();
  depacketizer.flush();

  // Audio through RTP as well: 48 kHz timestamps with a random-looking start.
  const opus = new OpusRtpDepacketizer();
  const audioFrames = audio.map((a, i) => {
    const timestamp = (123_456_789 + ((a.pts90k - audio[0].pts90k) * 48_000) / 90_000) >>> 0;
    const p = parseRtp(
      serializeRtp({
        payloadType: 111,
        sequenceNumber: i,
        timestamp,
        ssrc: 2,
        marker: false,
        payload: a.data,
      }),
    );
    const frame = opus.push(p.payload, p.timestamp)!;
    return { data: frame.data, pts90k: frame.pts90k + audio[0].pts90k };
  });

  // Interleave by time, as a live gateway would see them.
  const muxer = new TsMuxer({ video: true, audio: { channels: 2 } });
  const writes = [
    ...accessUnits.map((au) => ({ pts: au.pts90k + video[0].pts90k, video: au })),
    ...audioFrames.map((a) => ({ pts: a.pts90k, audio: a })),
  ].sort((a, b) => a.pts - b.pts);
  const chunks = writes.map((w) =>
    'video' in w && w.video
      ? {
          bytes: muxer.writeVideo({ annexB: w.video.annexB, pts90k: w.pts, keyframe: w.video.keyframe }),
          keyframe: w.video.keyframe,
        }
      : {
          bytes: muxer.writeAudio((w as { audio: { data: Uint8Array; pts90k: number } }).audio),
          keyframe: false,
        },
  );
  return { chunks, accessUnits, drops, losses };
}

describe('RTP ingress to MPEG-TS', () => {
  it('survives reordering and wraparound; ffmpeg decodes every frame', async () => {
    const { chunks, accessUnits, drops } = ingress({ shuffle: true });
    expect(drops).toEqual([]);
    expect(accessUnits).toHaveLength(FRAMES);
    accessUnits.forEach((au, i) => {
      expect(au.keyframe).toBe(video[i].keyframe);
      expect(au.pts90k).toBe(video[i].pts90k - video[0].pts90k);
    });
    const file = await dir.write(
      'ingress.ts',
      chunks.map((c) => c.bytes),
    );
    const streams = await probe(file);
    const h264 = streams.find((s) => s.codec_type === 'video');
    const opus = streams.find((s) => s.codec_type === 'audio');
    expect(h264).toMatchObject({
      codec_name: 'h264',
      width: 320,
      height: 240,
      nb_read_frames: String(FRAMES),
    });
    expect(opus).toMatchObject({ codec_name: 'opus', channels: 2, nb_read_frames: String(audio.length) });
    expect(await decodeErrors(file)).toBe('');
  });

  it('drops the frame that lost an FU-A fragment and the frames up to the next keyframe', async () => {
    const lossyFrame = 12;
    const { chunks, accessUnits, drops, losses } = ingress({
      shuffle: false,
      dropFragmentOfFrame: lossyFrame,
    });
    expect(losses).toHaveLength(1);
    expect(drops[0]).toBe('packet-loss');
    expect(drops.slice(1).every((d) => d === 'waiting-for-keyframe')).toBe(true);
    expect(drops).toHaveLength(GOP - lossyFrame);
    expect(accessUnits).toHaveLength(FRAMES - (GOP - lossyFrame));
    const file = await dir.write(
      'lossy.ts',
      chunks.map((c) => c.bytes),
    );
    const h264 = (await probe(file)).find((s) => s.codec_type === 'video');
    expect(h264?.nb_read_frames).toBe(String(FRAMES - (GOP - lossyFrame)));
    expect(await decodeErrors(file)).toBe('');
  });

  it('cut at each keyframe, every segment decodes on its own', async () => {
    const { chunks } = ingress({ shuffle: false });
    // Audio written before the first keyframe stays in the first segment.
    const segments: Uint8Array[][] = [[]];
    let sawKeyframe = false;
    for (const c of chunks) {
      if (c.keyframe && sawKeyframe) segments.push([]);
      sawKeyframe ||= c.keyframe;
      segments[segments.length - 1].push(c.bytes);
    }
    expect(segments).toHaveLength(FRAMES / GOP);
    for (const [i, segment] of segments.entries()) {
      const file = await dir.write(`segment${i}.ts`, segment);
      const h264 = (await probe(file)).find((s) => s.codec_type === 'video');
      expect(h264?.nb_read_frames).toBe(String(GOP));
      expect(await decodeErrors(file)).toBe('');
    }
  });
});

describe('MPEG-TS egress to RTP', () => {
  it('keeps one continuous RTP stream across two orchestrators whose PTS restart', async () => {
    // The same processed clip twice, as if a second orchestrator took over with its own PTS.
    const segments = [video, video];
    const timeline = new RtpTimeline({ clockRate: 90_000, initialSequenceNumber: 65_000 });
    const packets: { seq: number; ts: number; payload: Uint8Array; marker: boolean }[] = [];
    const frameTimestamps: number[] = [];
    for (const segment of segments) {
      for (const frame of segment) {
        const ts = timeline.timestampFor(frame.pts90k);
        frameTimestamps.push(ts);
        for (const { payload, marker } of packetizeH264(frame.annexB)) {
          packets.push({ seq: timeline.nextSequenceNumber(), ts, payload, marker });
        }
      }
    }
    const steps = frameTimestamps.slice(1).map((ts, i) => (ts - frameTimestamps[i] + 2 ** 32) % 2 ** 32);
    expect(new Set(steps)).toEqual(new Set([3000]));
    expect(timeline.rebases).toBe(1);
    for (let i = 1; i < packets.length; i++) expect(packets[i].seq).toBe((packets[i - 1].seq + 1) & 0xffff);

    // What a viewer receives decodes as one stream.
    const muxer = new TsMuxer({ video: true });
    const chunks: Uint8Array[] = [];
    const depacketizer = new H264Depacketizer({
      onAccessUnit: (au) =>
        chunks.push(muxer.writeVideo({ annexB: au.annexB, pts90k: au.pts90k, keyframe: au.keyframe })),
    });
    for (const p of packets) depacketizer.push(p.payload, p.seq, p.ts, p.marker);
    depacketizer.flush();
    const file = await dir.write('egress.ts', chunks);
    expect((await probe(file))[0]).toMatchObject({ codec_name: 'h264', nb_read_frames: String(2 * FRAMES) });
    expect(await decodeErrors(file)).toBe('');
  });
});

describe('audio-only TsMuxer', () => {
  it('writes Opus that ffmpeg reads and decodes', async () => {
    const muxer = new TsMuxer({ video: false, audio: { channels: 2 } });
    const chunks = [muxer.startSegment(), ...audio.map((a) => muxer.writeAudio(a))];
    const file = await dir.write('audio.ts', chunks);
    const [stream] = await probe(file);
    expect(stream).toMatchObject({ codec_name: 'opus', channels: 2, nb_read_frames: String(audio.length) });
    expect(await decodeErrors(file)).toBe('');
  });
});
