// The two live transcodes with a real ffmpeg: what comes out, and what happens when ffmpeg dies.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import {
  type AccessUnit,
  Av1Depacketizer,
  type DemuxedVideo,
  IvfReader,
  splitAnnexB,
  type VpxFrame,
  vp8KeyframeSize,
} from '../../src/media/index.ts';
import { FfmpegProcess, H264ToVp8, VpxToH264 } from '../../src/transcode/index.ts';
import { packetizeAv1 } from '../helpers/av1-rtp.ts';
import { waitFor } from '../helpers/wait.ts';
import { makeH264Clip, splitAccessUnits } from '../helpers/webrtc-clients.ts';

const run = promisify(execFile);

function recordingLogger() {
  const lines: { level: number; msg: string; stderr?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

async function vp8Frames(count: number): Promise<VpxFrame[]> {
  const { stdout } = await run(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
      ...[
        '-frames:v',
        String(count),
        '-c:v',
        'libvpx',
        '-deadline',
        'realtime',
        '-cpu-used',
        '8',
        '-g',
        '30',
      ],
      ...['-f', 'ivf', 'pipe:1'],
    ],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return new IvfReader().push(stdout).map((f, i) => {
    const size = vp8KeyframeSize(f.data);
    return {
      codec: 'vp8',
      data: f.data,
      rtpTimestamp: (0xffff_0000 + i * 3000) >>> 0, // crosses the 32-bit wrap
      keyframe: (f.data[0] & 1) === 0,
      width: size?.width ?? 0,
      height: size?.height ?? 0,
    };
  });
}

describe('VpxToH264 (VP8/VP9 publisher → H.264 for the orchestrator)', () => {
  it('turns VP8 frames into H.264 access units with IDRs where the publisher had keyframes, PTS kept', async () => {
    const { logger } = recordingLogger();
    const out: AccessUnit[] = [];
    const t = new VpxToH264({
      gopMs: 2000,
      onAccessUnit: (au) => out.push(au),
      requestKeyframe: () => {},
      logger,
    });
    const frames = await vp8Frames(60);
    for (const f of frames) t.push(f);
    await waitFor(() => out.length >= 59, 'H.264 out', 20_000); // the last waits for the next PES
    t.close();
    expect(out[0].keyframe).toBe(true);
    expect(out.filter((a) => a.keyframe).map((a) => a.pts90k - out[0].pts90k)).toEqual([0, 90_000]);
    expect(out[10].pts90k - out[0].pts90k).toBe(30_000);
    expect(splitAnnexB(out[0].annexB).some((n) => (n[0] & 0x1f) === 7)).toBe(true); // SPS with the IDR
  });

  it('turns AV1 temporal units (from RTP, via Av1Depacketizer) into H.264 with IDRs at the AV1 keyframes', async () => {
    const { stdout } = await run(
      'ffmpeg',
      [
        ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30'],
        ...['-frames:v', '60', '-c:v', 'libaom-av1', '-cpu-used', '8', '-usage', 'realtime', '-g', '30'],
        ...['-f', 'ivf', 'pipe:1'],
      ],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
    );
    const { logger, lines } = recordingLogger();
    const out: AccessUnit[] = [];
    const t = new VpxToH264({
      gopMs: 2000,
      onAccessUnit: (au) => out.push(au),
      requestKeyframe: () => {},
      logger,
    });
    const d = new Av1Depacketizer({ onFrame: (f) => t.push(f) });
    let seq = 0;
    new IvfReader().push(stdout).forEach((f, i) => {
      for (const p of packetizeAv1(f.data, 1100))
        d.push(p.payload, seq++, (0xffff_0000 + i * 3000) >>> 0, p.marker);
    });
    await waitFor(() => out.length >= 59, 'H.264 out', 30_000);
    t.close();
    expect(lines.some((l) => l.msg === 'transcoding av1 ingest to H.264 (ffmpeg)')).toBe(true);
    expect(out.filter((a) => a.keyframe).map((a) => a.pts90k - out[0].pts90k)).toEqual([0, 90_000]);
    expect(out[10].pts90k - out[0].pts90k).toBe(30_000);
  }, 60_000);

  it('logs why ffmpeg died, asks for a keyframe, and restarts on the next one', async () => {
    const { logger, lines } = recordingLogger();
    const out: AccessUnit[] = [];
    let keyframeRequests = 0;
    const t = new VpxToH264({
      gopMs: 1000,
      onAccessUnit: (au) => out.push(au),
      requestKeyframe: () => keyframeRequests++,
      logger,
    });
    const frames = await vp8Frames(31);
    for (const f of frames.slice(0, 10)) t.push(f);
    await waitFor(() => out.length > 0, 'first output', 20_000);
    const pid = t.pid;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid as number, 'SIGKILL');
    await waitFor(() => keyframeRequests > 0, 'a keyframe request after the death', 10_000);
    expect(lines.find((l) => l.level === 40)?.msg).toMatch(/ingest transcoder \(ffmpeg\) died/);
    expect(t.pid).toBeUndefined();
    for (const f of frames.slice(10, 30)) t.push(f); // inter frames: nothing to start on
    expect(t.starts).toBe(1);
    t.push(frames[30]); // keyframe (GOP 30)
    expect(t.starts).toBe(2);
    await waitFor(() => t.pid !== undefined && t.pid !== pid, 'a new ffmpeg', 5000);
    t.close();
  });
});

describe('H264ToVp8 (processed H.264 → VP8 for viewers without H.264)', () => {
  it('makes one VP8 frame per H.264 frame, a VP8 keyframe for each H.264 keyframe, and stops on close', async () => {
    const { logger } = recordingLogger();
    const out: DemuxedVideo[] = [];
    const enc = new H264ToVp8({ onFrame: (f) => out.push(f), requestKeyframe: () => {}, logger });
    const units = splitAccessUnits(await makeH264Clip({ seconds: 2, gop: 30 }));
    units.forEach((nalus, i) => {
      const annexB = Buffer.concat(nalus.flatMap((n) => [Buffer.from([0, 0, 0, 1]), n]));
      const keyframe = nalus.some((n) => (n[0] & 0x1f) === 5);
      enc.push({
        kind: 'video',
        codec: 'h264',
        pid: 256,
        annexB,
        pts90k: i * 3000,
        dts90k: i * 3000,
        keyframe,
      });
    });
    await waitFor(() => out.length >= units.length - 1, 'VP8 out', 20_000);
    expect(out[0].keyframe).toBe(true);
    expect(vp8KeyframeSize(out[0].annexB)).toEqual({ width: 320, height: 240 });
    expect(out.filter((f) => f.keyframe).length).toBeGreaterThanOrEqual(2);
    const pid = enc.pid as number;
    enc.close();
    await waitFor(() => enc.pid === undefined, 'closed', 5000);
    await waitFor(
      async () =>
        !(await run('ps', ['-p', String(pid)]).then(
          () => true,
          () => false,
        )),
      'ffmpeg gone',
      5000,
    );
  });

  it('does not start on an inter frame (it could not decode it)', () => {
    const { logger } = recordingLogger();
    const enc = new H264ToVp8({ onFrame: () => {}, requestKeyframe: () => {}, logger });
    enc.push({
      kind: 'video',
      codec: 'h264',
      pid: 256,
      annexB: Buffer.alloc(8),
      pts90k: 0,
      dts90k: 0,
      keyframe: false,
    });
    expect(enc.starts).toBe(0);
    enc.close();
  });
});

describe('FfmpegProcess', () => {
  it('reports a failed start with the stderr tail, and unexpected exits as such', async () => {
    const exits: { expected: boolean; stderrTail: string; code: number | null }[] = [];
    new FfmpegProcess({
      args: ['-f', 'nonexistent-format', '-i', 'pipe:0', '-f', 'null', '-'],
      onStdout: () => {},
      onExit: (e) => exits.push(e),
    });
    await waitFor(() => exits.length === 1, 'exit', 10_000);
    expect(exits[0]).toMatchObject({ expected: false });
    expect(exits[0].code).not.toBe(0);
    expect(exits[0].stderrTail).toMatch(/nonexistent-format/);
    const missing = new FfmpegProcess({
      binary: '/nonexistent/ffmpeg',
      args: [],
      onStdout: () => {},
      onExit: (e) => exits.push(e),
    });
    expect(missing.write(Buffer.alloc(1))).toBe(true);
    await waitFor(() => exits.length === 2, 'spawn failure', 10_000);
    expect(exits[1].stderrTail).toMatch(/spawn failed/);
    expect(missing.write(Buffer.alloc(1))).toBe(false);
  });
});
