// A publisher that offers only AV1: the gateway depacketizes it and transcodes it to H.264 once
// (ffmpeg) for the orchestrator; an H.264 viewer gets the processed stream as usual. Real sockets,
// processes and ffmpeg.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { IvfReader } from '../../src/media/index.ts';
import { packetizeAv1 } from '../helpers/av1-rtp.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { decodeGray, ffmpegChildren, makeIvfClip, mean } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  type RtpFrame,
  syntheticOpusFrames,
  WhepTestViewer,
  WhipTestPublisher,
} from '../helpers/webrtc-clients.ts';

const _run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let av1: RtpFrame[];

/** testsrc2 as AV1 RTP frames (libaom realtime, keyframe every second). */
async function av1Clip(seconds: number): Promise<RtpFrame[]> {
  const stdout = await makeIvfClip(seconds, [
    '-c:v',
    'libaom-av1',
    '-cpu-used',
    '8',
    '-usage',
    'realtime',
    '-g',
    '30',
    '-b:v',
    '600k',
  ]);
  return new IvfReader()
    .push(stdout)
    .map((f, i) => ({ timestamp: i * 3000, payloads: packetizeAv1(f.data) }));
}

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  gw = await startTestGateway({ orchestrators: [orch.url], logger });
  av1 = await av1Clip(10);
}, 90_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

describe('AV1 publisher', () => {
  it('an AV1-only publisher is watched by an H.264 viewer, whose frames ffmpeg decodes', async () => {
    const publisher = await WhipTestPublisher.connect(gw.url('av', 'whip?model=passthrough'), {
      videoCodec: 'av1',
    });
    const viewer = await WhepTestViewer.connect(gw.url('av', 'whep'));
    try {
      expect(publisher.answerSdp).toMatch(/a=rtpmap:\d+ AV1\/90000/);
      expect(publisher.answerSdp).not.toContain('H264');
      const sending = publisher.send({ video: av1, audio: syntheticOpusFrames(300) });
      await waitFor(async () => (await ffmpegChildren('libx264')) === 1, 'the ingest transcoder', 20_000);
      await waitFor(() => viewer.frames.length >= 60, 'H.264 frames at the viewer', 30_000);
      expect((await gw.status('av')).codecs).toMatchObject({ publisher: 'av1' });
      const sent = await sending;
      expect(sent.videoFrames).toBe(av1.length);
      const pictures = await decodeGray(
        Buffer.concat(viewer.frames.flatMap((f) => f.nalus.flatMap((n) => [Buffer.from([0, 0, 0, 1]), n]))),
        64,
        48,
        'h264',
      );
      expect(pictures.length).toBeGreaterThanOrEqual(60);
      expect(mean(pictures[pictures.length - 1])).toBeGreaterThan(30); // testsrc2, not black
    } finally {
      await viewer.close();
      await publisher.close();
    }
    await waitFor(
      async () => (await ffmpegChildren('libx264')) === 0,
      'the ingest transcoder to stop',
      15_000,
    );
  }, 120_000);
});
