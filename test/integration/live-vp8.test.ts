// A publisher that offers only VP8 (Firefox without OpenH264): the gateway transcodes its video to
// H.264 once (ffmpeg) for the orchestrator, an H.264 viewer gets the processed stream as usual, and
// a viewer that offers only VP8 gets it re-encoded once to VP8. Real sockets, processes and ffmpeg.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import {
  IvfReader,
  ivfFileHeader,
  ivfFrameHeader,
  packetizeVp8,
  VpxDepacketizer,
  type VpxFrame,
} from '../../src/media/index.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { decodeGray, ffmpegChildren, makeIvfClip, mean } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  type ReceivedPacket,
  type RtpFrame,
  syntheticOpusFrames,
  WhepTestViewer,
  WhipTestPublisher,
} from '../helpers/webrtc-clients.ts';

const _run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let vp8: RtpFrame[];

/** testsrc2 as VP8 RTP frames, as a browser sends them: keyframe only at the start (and on PLI). */
async function vp8Clip(seconds: number): Promise<RtpFrame[]> {
  const stdout = await makeIvfClip(seconds, [
    '-c:v',
    'libvpx',
    '-deadline',
    'realtime',
    '-cpu-used',
    '8',
    '-g',
    '9999',
    '-b:v',
    '600k',
  ]);
  return new IvfReader()
    .push(stdout)
    .map((f, i) => ({ timestamp: i * 3000, payloads: packetizeVp8(f.data, i) }));
}

/** A VP8 viewer's packets → frames → IVF, decoded by ffmpeg to 64x48 gray pictures. */
async function decodeVp8(packets: ReceivedPacket[]): Promise<Uint8Array[]> {
  const frames: VpxFrame[] = [];
  const depacketizer = new VpxDepacketizer({ codec: 'vp8', onFrame: (f) => frames.push(f) });
  for (const p of [...packets].sort((a, b) => a.receivedAt - b.receivedAt))
    depacketizer.push(p.payload, p.seq, p.timestamp, p.marker);
  if (frames.length === 0) return [];
  const ivf = Buffer.concat([
    ivfFileHeader({ fourcc: 'VP80', width: 320, height: 240, timebaseDen: 90000, timebaseNum: 1 }),
    ...frames.flatMap((f) => [ivfFrameHeader(f.data.length, f.rtpTimestamp), f.data]),
  ]);
  return decodeGray(ivf, 64, 48, 'ivf');
}

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  gw = await startTestGateway({ orchestrators: [orch.url], logger, limits: { maxViewers: 4 } });
  vp8 = await vp8Clip(12);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

describe('VP8 publisher and viewers', () => {
  it('a VP8-only publisher is watched by an H.264-only viewer and a VP8-only viewer; both decode it', async () => {
    const publisher = await WhipTestPublisher.connect(gw.url('fx', 'whip?model=passthrough'), {
      videoCodec: 'vp8',
    });
    const h264Viewer = await WhepTestViewer.connect(gw.url('fx', 'whep'));
    const vp8Viewer = await WhepTestViewer.connect(gw.url('fx', 'whep'), { videoCodec: 'vp8' });
    try {
      expect(h264Viewer.answerSdp).toMatch(/a=rtpmap:\d+ H264\/90000/);
      expect(vp8Viewer.answerSdp).toMatch(/a=rtpmap:\d+ VP8\/90000/);
      expect(vp8Viewer.answerSdp).not.toContain('H264');
      const sending = publisher.send({ video: vp8, audio: syntheticOpusFrames(300) });
      // One transcode in, one VP8 encoder out, whatever the number of viewers.
      await waitFor(async () => (await ffmpegChildren('libx264')) === 1, 'the ingest transcoder', 20_000);
      await waitFor(async () => (await ffmpegChildren('libvpx')) === 1, 'the VP8 encoder', 20_000);
      await waitFor(() => h264Viewer.frames.length >= 60, 'H.264 frames at the H.264 viewer', 20_000);
      await waitFor(() => vp8Viewer.videoPackets.length >= 60, 'VP8 packets at the VP8 viewer', 20_000);
      const during = await gw.status('fx');
      expect(during.viewers).toBe(2);
      expect(during.codecs).toMatchObject({ publisher: 'vp8', vp8Viewers: 1, vp8Encoder: { starts: 1 } });
      expect(during.codecs.vp8Encoder.framesOut).toBeGreaterThan(0);
      // Both viewers are listed, each with the codec it is sent.
      expect(during.output.viewers.map((v: { codec: string }) => v.codec).sort()).toEqual(['h264', 'vp8']);
      expect(
        during.output.viewers.find((v: { codec: string }) => v.codec === 'vp8').framesSent,
      ).toBeGreaterThan(0);
      // The last VP8 viewer gone (while the stream goes on): its encoder stops, the ingest transcode does not.
      await vp8Viewer.close();
      await waitFor(async () => (await ffmpegChildren('libvpx')) === 0, 'the VP8 encoder to stop', 15_000);
      expect(await ffmpegChildren('libx264')).toBe(1);
      await waitFor(
        async () => (await gw.status('fx')).codecs.vp8Encoder === null,
        'status without the encoder',
        5000,
      );
      const sent = await sending;
      expect(sent.videoFrames).toBe(vp8.length);

      const h264Pictures = await decodeGray(
        Buffer.concat(
          h264Viewer.frames.flatMap((f) => f.nalus.flatMap((n) => [Buffer.from([0, 0, 0, 1]), n])),
        ),
        64,
        48,
        'h264',
      );
      const vp8Pictures = await decodeVp8(vp8Viewer.videoPackets);
      expect(h264Pictures.length).toBeGreaterThanOrEqual(60);
      expect(vp8Pictures.length).toBeGreaterThanOrEqual(30);
      expect(
        vp8Viewer.videoPackets.every((p) => p.payloadType === vp8Viewer.videoPackets[0].payloadType),
      ).toBe(true);
      // Same picture (testsrc2 through passthrough) both ways: similar brightness, not black.
      const h264Luma = mean(h264Pictures[h264Pictures.length - 1]);
      const vp8Luma = mean(vp8Pictures[vp8Pictures.length - 1]);
      expect(h264Luma).toBeGreaterThan(30);
      expect(Math.abs(h264Luma - vp8Luma)).toBeLessThan(40);
    } finally {
      await vp8Viewer.close();
      await h264Viewer.close();
      await publisher.close();
    }
    await waitFor(
      async () => (await ffmpegChildren('libx264')) === 0,
      'the ingest transcoder to stop',
      15_000,
    );
  }, 120_000);
});
