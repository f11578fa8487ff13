// The RTMP server driven by ffmpeg as a publisher: H.264 High with B-frames and AAC come out as
// Annex-B access units (PTS ≠ DTS) and ADTS frames; other codecs and refusals reach ffmpeg.
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlvAudioFrame, FlvVideoFrame } from '../../src/rtmp/flv.ts';
import { type RtmpPublisher, RtmpRefusal, RtmpServer } from '../../src/rtmp/server.ts';

const logger = pino({ level: 'silent' });
const children: ChildProcess[] = [];
const servers: RtmpServer[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function publish(
  url: string,
  codecArgs: string[],
  seconds = 4,
): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=320x180:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    ...codecArgs,
    '-f',
    'flv',
    url,
  ]);
  children.push(child);
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, stderr: () => err, exit };
}

const H264_AAC = [
  '-c:v',
  'libx264',
  '-preset',
  'ultrafast',
  '-profile:v',
  'high',
  '-bf',
  '2',
  '-g',
  '60',
  '-c:a',
  'aac',
];

async function server(onPublish: (p: RtmpPublisher) => Promise<void>): Promise<number> {
  const s = new RtmpServer({ onPublish, logger });
  servers.push(s);
  return s.listen(0, '127.0.0.1');
}

describe('RTMP server', () => {
  it('takes an ffmpeg publish: H.264 with B-frames (PTS ≠ DTS) in Annex B, AAC in ADTS, the key and query', async () => {
    const video: FlvVideoFrame[] = [];
    const audio: FlvAudioFrame[] = [];
    let seen: RtmpPublisher | undefined;
    let endReason = '';
    const port = await server(async (p) => {
      seen = p;
      p.setSink({
        video: (f) => video.push(f),
        audio: (f) => audio.push(f),
        end: (r) => {
          endReason = r;
        },
      });
    });
    const pub = publish(`rtmp://127.0.0.1:${port}/live/cam1?model=noop&token=abc`, H264_AAC, 3);
    expect(await pub.exit).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen?.app).toBe('live');
    expect(seen?.name).toBe('cam1');
    expect(seen?.query.get('model')).toBe('noop');
    expect(seen?.query.get('token')).toBe('abc');
    expect(video.length).toBeGreaterThan(60);
    const first = video[0];
    expect(first.keyframe).toBe(true);
    // SPS and PPS are in band before the IDR.
    expect(Buffer.from(first.annexB.subarray(0, 5))).toEqual(Buffer.from([0, 0, 0, 1, 0x67]));
    expect(video.some((f) => f.pts90k !== f.dts90k)).toBe(true);
    expect(video.filter((f) => f.keyframe).length).toBeGreaterThanOrEqual(2);
    expect(audio.length).toBeGreaterThan(50);
    expect(audio[0].adts[0]).toBe(0xff);
    expect(seen?.depacketizer.aac).toEqual({ objectType: 2, sampleRate: 48000, channels: 1 });
    expect(endReason).toMatch(/unpublished|deleted|closed/);
  }, 30_000);

  it('refuses a publish with the reason ffmpeg shows', async () => {
    const port = await server(async () => {
      throw new RtmpRefusal('NetStream.Publish.BadName', 'stream "cam1" already has a publisher');
    });
    const pub = publish(`rtmp://127.0.0.1:${port}/live/cam1`, H264_AAC, 2);
    const code = await pub.exit;
    expect(code).not.toBe(0);
    expect(pub.stderr()).toContain('already has a publisher');
  }, 30_000);

  it('refuses codecs other than H.264 and AAC, saying which', async () => {
    let endReason = '';
    const port = await server(async (p) => {
      p.setSink({
        video: () => {},
        audio: () => {},
        end: (r) => {
          endReason = r;
        },
      });
    });
    const pub = publish(`rtmp://127.0.0.1:${port}/live/cam2`, ['-c:v', 'flv1', '-c:a', 'aac'], 2);
    await pub.exit;
    expect(endReason).toMatch(/video codec Sorenson H.263 is not supported: publish H.264/);
    const pub2 = publish(
      `rtmp://127.0.0.1:${port}/live/cam3`,
      ['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'libmp3lame', '-ar', '44100'],
      2,
    );
    await pub2.exit;
    expect(endReason).toMatch(/audio codec MP3 is not supported: publish AAC/);
  }, 30_000);

  it('closes a connection that is not RTMP version 3, and refuses playback', async () => {
    const port = await server(async () => {});
    const closed = await new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1', () => sock.write(Buffer.alloc(1537, 6)));
      let got = 0;
      sock.on('data', (d) => {
        got += d.length;
      });
      sock.on('close', () => resolve(`closed after ${got} bytes`));
    });
    expect(closed).toBe('closed after 0 bytes');
    // ffmpeg reading from us (play) is refused with a reason.
    const play = spawn('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-i',
      `rtmp://127.0.0.1:${port}/live/cam`,
      '-f',
      'null',
      '-',
    ]);
    children.push(play);
    let err = '';
    play.stderr?.on('data', (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => play.on('close', resolve));
    expect(code).not.toBe(0);
    expect(err).toContain('takes publishers only');
  }, 30_000);
});
