// A client nobody here wrote: Python's aiortc (Debian's python3-aiortc 1.4) publishes audio + video
// over WHIP and watches over WHEP, through the real gateway and the local orchestrator. aiortc gives
// each bundled m-section its own ICE credentials and candidates, so this holds only if the gateway
// applies the BUNDLE-tag section's transport parameters to the whole bundle (RFC 8843).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, syntheticOpusFrames, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const run = promisify(execFile);
const CLIENT = fileURLToPath(new URL('../peers/aiortc_client.py', import.meta.url));
// Debian's interpreter: the python3 on PATH may be another build without aiortc.
const PYTHON = '/usr/bin/python3';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let dir: string;
let video: string;
let audio: string;
let clip: Buffer;

interface ClientResult {
  connected: boolean;
  offer: string;
  answer: string;
  playbackUrl?: string;
  packetsSent?: { audio?: number; video?: number };
  videoFrames?: number;
  audioFrames?: number;
  deleteStatus?: number;
}

async function aiortc(...args: string[]): Promise<ClientResult> {
  const { stdout } = await run(PYTHON, [CLIENT, ...args], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
}

/** Distinct a=ice-ufrag values of the m-sections an SDP does not reject (port 0). */
function ufrags(sdp: string): Set<string | undefined> {
  const sections = sdp.split(/\r?\nm=/).slice(1);
  return new Set(
    sections
      .filter((section) => !/^\S+ 0 /.test(section))
      .map((section) => /\na=ice-ufrag:(\S+)/.exec(section)?.[1]),
  );
}

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  gw = await startTestGateway({ orchestrators: [orch.url], logger, limits: { ingestTimeoutMs: 5000 } });
  dir = await mkdtemp(join(tmpdir(), 'lpgw-aiortc-'));
  video = join(dir, 'video.ts');
  audio = join(dir, 'audio.ogg');
  const quiet = ['-hide_banner', '-loglevel', 'error'];
  // aiortc sends this file's H.264 packets as they are (1 s GOP) and encodes the audio to Opus.
  await run('ffmpeg', [
    ...[...quiet, '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '14', '-c:v', 'libx264'],
    ...['-preset', 'ultrafast', '-profile:v', 'baseline', '-g', '30', '-bf', '0', '-pix_fmt', 'yuv420p'],
    ...['-f', 'mpegts', video],
  ]);
  await run('ffmpeg', [
    ...quiet,
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    '14',
    audio,
  ]);
  clip = await makeH264Clip({ seconds: 6 });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('aiortc (per-section ICE credentials in one BUNDLE group)', () => {
  it('publishes audio + video over WHIP and watches the processed stream over WHEP', async () => {
    const whip = gw.url('py', 'whip?model=passthrough');
    const publishing = aiortc('publish', whip, video, audio, '10');
    // The viewer joins once the orchestrator's output flows.
    await waitFor(
      async () => (await gw.status('py')).output?.segments >= 1,
      'output from the orchestrator',
      15_000,
    );
    // aiortc (pylibsrtp) was asked for AES-CM, and its packets go through the gateway's own decryption.
    const { srtp } = (await gw.status('py')).input.rtp;
    expect(srtp.profile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(srtp.decryptedBy.gateway).toBeGreaterThan(50);
    expect(srtp.decryptedBy.werift).toBeLessThan(10);
    const viewer = await aiortc('view', gw.url('py', 'whep'), '5');
    const publisher = await publishing;

    // aiortc's offers really have the shape this is about: two ufrags in one BUNDLE group.
    expect(ufrags(publisher.offer).size).toBe(2);
    expect(ufrags(viewer.offer).size).toBe(2);
    // Our answers use one ICE transport for the bundle: one ufrag.
    expect(ufrags(publisher.answer).size).toBe(1);
    expect(ufrags(viewer.answer).size).toBe(1);

    expect(publisher.connected).toBe(true);
    expect(publisher.packetsSent?.video ?? 0).toBeGreaterThan(100);
    expect(publisher.packetsSent?.audio ?? 0).toBeGreaterThan(100);
    expect(publisher.deleteStatus).toBe(200);

    expect(viewer.connected).toBe(true);
    // 5 s at 30 fps and 50 Opus frames/s; the viewer starts on a keyframe (the source's GOP is 1 s).
    expect(viewer.videoFrames ?? 0).toBeGreaterThan(60);
    expect(viewer.audioFrames ?? 0).toBeGreaterThan(100);
    expect(viewer.deleteStatus).toBe(200);

    const status = await gw.status('py');
    expect(status.state).toBe('ended');
    expect(status.endReason).toBe('publisher sent DELETE');
    expect(status.input.segments).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('watches a stream published by another client over WHEP', async () => {
    // The WHEP half alone: a werift publisher (one ICE transport), an aiortc viewer.
    const publisher = await WhipTestPublisher.connect(gw.url('py2', 'whip?model=passthrough'));
    try {
      const sending = publisher.send({ video: h264Frames(clip, 30), audio: syntheticOpusFrames(300) });
      await waitFor(async () => (await gw.status('py2')).output?.segments >= 1, 'output', 15_000);
      const viewer = await aiortc('view', gw.url('py2', 'whep'), '3');
      await sending;
      expect(ufrags(viewer.offer).size).toBe(2);
      expect(ufrags(viewer.answer).size).toBe(1);
      expect(viewer.connected).toBe(true);
      expect(viewer.videoFrames ?? 0).toBeGreaterThan(30);
      expect(viewer.deleteStatus).toBe(200);
    } finally {
      await publisher.close();
    }
  }, 60_000);
});
