import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { RtmpOutput, redactRtmpUrl } from '../../src/rtmp/output.ts';
import { closedPort } from '../helpers/hook-server.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = pino({ level: 'silent' });
const outputs: RtmpOutput[] = [];
afterEach(() => {
  for (const o of outputs.splice(0)) o.close();
});

describe('RTMP output', () => {
  it('hides the stream key in what it reports', () => {
    expect(redactRtmpUrl('rtmp://a.example:1935/live/sk_live_123')).toBe('rtmp://a.example:1935/live/***');
    expect(redactRtmpUrl('rtmps://b.example/app/key?auth=x')).toBe('rtmps://b.example/app/***?***');
    expect(redactRtmpUrl('not a url')).toBe('rtmp://(unparseable)');
  });

  it('retries a server that refuses and says why; close stops it', async () => {
    const port = await closedPort();
    const out = new RtmpOutput({
      url: `rtmp://127.0.0.1:${port}/live/k`,
      logger,
      initialBackoffMs: 100,
      maxBackoffMs: 400,
    });
    outputs.push(out);
    // ffmpeg opens the output only once it has probed some input: give it a little.
    const ts = execFileSync('ffmpeg', [
      ...[
        '-hide_banner',
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=160x90:rate=30',
        '-t',
        '3',
      ],
      ...['-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-f', 'mpegts', '-'],
    ]);
    let at = 0;
    const feed = setInterval(() => {
      out.write(ts.subarray(at, at + 188 * 40));
      at = (at + 188 * 40) % ts.length;
    }, 20);
    try {
      await waitFor(() => out.status().restarts >= 2, 'two restarts', 30_000);
    } finally {
      clearInterval(feed);
    }
    const s = out.status();
    expect(s.state === 'retrying' || s.state === 'connecting').toBe(true);
    expect(s.lastError).toMatch(/ffmpeg exited/);
    expect(s.url).toBe(`rtmp://127.0.0.1:${port}/live/***`);
    out.close();
    expect(out.status().state).toBe('stopped');
  }, 40_000);
});
