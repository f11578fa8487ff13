// The gateway's look at a pushed segment before paying anyone (go-livepeer reads the codec with
// ffmpeg and answers 422): real files from ffmpeg, checked for a video stream it can send on.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSegment } from '../../src/batch/transcode-input.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
let dir: Workdir;

async function clip(name: string, args: string[]): Promise<Buffer> {
  const file = dir.path(name);
  await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args, file]);
  return readFile(file);
}
const video = ['-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '0.5'];
const audio = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '0.5'];

beforeAll(async () => {
  dir = await makeWorkdir();
});
afterAll(() => dir.remove());

describe('probeSegment', () => {
  it('finds H.264 and HEVC in MPEG-TS (with audio beside it)', async () => {
    const h264 = await clip('a.ts', [
      ...video,
      ...audio,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-c:a',
      'aac',
      '-f',
      'mpegts',
    ]);
    expect(probeSegment('mpegts', h264)).toEqual({ ok: true, video: 'h264' });
    const hevc = await clip('b.ts', [
      ...video,
      '-c:v',
      'libx265',
      '-preset',
      'ultrafast',
      '-x265-params',
      'log-level=none',
      '-f',
      'mpegts',
    ]);
    expect(probeSegment('mpegts', hevc)).toEqual({ ok: true, video: 'hevc' });
  });

  it('refuses MPEG-TS without usable video, naming what it found', async () => {
    const mpeg2 = await clip('c.ts', [...video, '-c:v', 'mpeg2video', '-f', 'mpegts']);
    expect(probeSegment('mpegts', mpeg2)).toEqual({
      ok: false,
      reason: "the segment's video is MPEG-2 video; push H.264 or HEVC",
    });
    const audioOnly = await clip('d.ts', [...audio, '-c:a', 'aac', '-f', 'mpegts']);
    expect(probeSegment('mpegts', audioOnly)).toEqual({
      ok: false,
      reason: 'the segment has no video stream',
    });
  });

  it('refuses bodies that are not MPEG-TS, or have no program tables', () => {
    expect(probeSegment('mpegts', Buffer.alloc(4096, 1))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('0x47 sync byte'),
    });
    expect(probeSegment('mpegts', Buffer.alloc(100, 0x47))).toMatchObject({ ok: false });
    const noPsi = Buffer.alloc(188 * 20, 0xff);
    for (let i = 0; i < noPsi.length; i += 188) noPsi[i] = 0x47;
    expect(probeSegment('mpegts', noPsi)).toEqual({
      ok: false,
      reason: 'the body is MPEG-TS without a program table (PAT)',
    });
    const lost = Buffer.from(noPsi);
    lost[188 * 3] = 0;
    expect(probeSegment('mpegts', lost)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('sync byte lost at packet 3'),
    });
  });

  it('takes an MP4 that starts with a box, refuses one that does not', async () => {
    const mp4 = await clip('e.mp4', [...video, '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'mp4']);
    expect(probeSegment('mp4', mp4)).toEqual({ ok: true });
    expect(probeSegment('mp4', Buffer.from('not an mp4 file'))).toMatchObject({ ok: false });
  });
});
