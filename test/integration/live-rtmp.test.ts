// RTMP in and out end to end on 127.0.0.1: ffmpeg publishes H.264 High with B-frames (2 s GOP) and
// AAC over RTMP, the gateway segments it to the local orchestrator like a WHIP publish, a werift
// WHEP viewer gets the processed video, and the output is pushed over RTMP to a second RTMP
// server of ours, which is dropped once to see the push come back without disturbing the viewer.
import { type ChildProcess, spawn } from 'node:child_process';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/index.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { rtmpPublishHandler } from '../../src/rtmp/ingest.ts';
import { type RtmpPublisher, RtmpServer } from '../../src/rtmp/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { type HookServer, startHookServer } from '../helpers/hook-server.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import { WhepTestViewer } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
const servers: RtmpServer[] = [];
const children: ChildProcess[] = [];
let hooks: HookServer;

async function rtmpIngest(extra: Partial<Parameters<typeof rtmpPublishHandler>[0]> = {}): Promise<number> {
  const server = new RtmpServer({
    onPublish: rtmpPublishHandler({
      streams: gw.streams,
      defaultModel: 'invert',
      httpBase: gw.base,
      gatewayHost: '127.0.0.1',
      logger,
      ...extra,
    }),
    logger,
  });
  servers.push(server);
  return server.listen(0, '127.0.0.1');
}

/** ffmpeg as OBS would publish: H.264 High, 2 B-frames, 2 s GOP at 30 fps, AAC. */
function ffmpegPublish(url: string, seconds: number) {
  const child = spawn('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=640x360:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
    '-t',
    String(seconds),
    '-c:v',
    'libx264',
    '-preset',
    'veryfast',
    '-profile:v',
    'high',
    '-bf',
    '2',
    '-g',
    '60',
    '-c:a',
    'aac',
    '-f',
    'flv',
    url,
  ]);
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, exit, stderr: () => stderr };
}

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough', 'invert'], { capacity: 8 });
  gw = await startTestGateway({ orchestrators: [orch.url], logger, limits: { ingestTimeoutMs: 3000 } });
  hooks = await startHookServer();
}, 60_000);

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await gw?.close();
  await orch?.close();
  await hooks?.close();
});

describe('RTMP ingest and output', () => {
  it('an ffmpeg RTMP publish reaches a WHEP viewer and an RTMP output; a second publisher is refused; the output comes back after a drop', async () => {
    const port = await rtmpIngest();
    // The RTMP server the output is pushed to: our own ingest code on another port.
    let target: RtmpPublisher | undefined;
    const got = { video: 0, audio: 0, keyframes: 0, connections: 0 };
    const sink = new RtmpServer({
      logger,
      onPublish: async (p) => {
        target = p;
        got.connections++;
        p.setSink({
          video: (f) => {
            got.video++;
            if (f.keyframe) got.keyframes++;
          },
          audio: () => {
            got.audio++;
          },
          end: () => {},
        });
      },
    });
    servers.push(sink);
    const sinkPort = await sink.listen(0, '127.0.0.1');
    const out = encodeURIComponent(`rtmp://127.0.0.1:${sinkPort}/live/out-key`);
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${port}/live/rcam?model=invert&rtmpOutput=${out}`, 40);

    await waitFor(
      async () => (await gw.status('rcam')).state === 'live',
      'the RTMP stream to go live',
      30_000,
    );
    const viewer = await WhepTestViewer.connect(gw.url('rcam', 'whep'));
    await waitFor(() => viewer.frames.length >= 60, 'frames at the WHEP viewer', 30_000);
    await waitFor(() => got.video >= 60 && got.audio > 20, 'video and audio at the RTMP output', 30_000);

    // ffmpeg reports its progress (frames written to the server) every half second.
    await waitFor(
      async () => (await gw.status('rcam')).rtmpOutputs?.[0]?.state === 'live',
      'the output to be live',
      20_000,
    );
    let status = await gw.status('rcam');
    expect(status.publisher).toMatchObject({ kind: 'rtmp', h264Profile: 100, aac: { sampleRate: 48000 } });
    expect(status.publisher.reorderedFrames).toBeGreaterThan(10); // B-frames: PTS ≠ DTS
    expect(status.rtmpOutputs).toHaveLength(1);
    expect(status.rtmpOutputs[0]).toMatchObject({ state: 'live', restarts: 0 });
    expect(status.rtmpOutputs[0].url).toBe(`rtmp://127.0.0.1:${sinkPort}/live/***`);
    expect(status.input.segments).toBeGreaterThanOrEqual(2);

    // A second publisher on the same stream name is refused, with the reason.
    const second = ffmpegPublish(`rtmp://127.0.0.1:${port}/live/rcam`, 5);
    expect(await second.exit).not.toBe(0);
    expect(second.stderr()).toContain('already has a publisher');

    // The output's server drops it: the push reconnects; the viewer never stops.
    const viewerBefore = viewer.frames.length;
    target?.close('test drops the output');
    await waitFor(
      async () => (await gw.status('rcam')).rtmpOutputs[0].restarts >= 1,
      'the output to restart',
      20_000,
    );
    const videoBefore = got.video;
    await waitFor(() => got.video >= videoBefore + 30, 'video at the output again', 30_000);
    expect(got.connections).toBeGreaterThanOrEqual(2);
    await waitFor(
      async () => (await gw.status('rcam')).rtmpOutputs[0].state === 'live',
      'the output live again',
      20_000,
    );
    expect(viewer.frames.length).toBeGreaterThan(viewerBefore + 30);

    // The publisher leaves: the stream ends and says why.
    pub.child.kill('SIGKILL');
    await waitFor(async () => (await gw.status('rcam')).state === 'ended', 'the stream to end', 15_000);
    status = await gw.status('rcam');
    expect(status.endReason).toMatch(/RTMP publisher gone/);
    expect(status.rtmpOutputs[0].state).toBe('stopped');
    await viewer.close();
  }, 150_000);

  it('a publisher that stops sending (its socket open) is ended after the ingest timeout', async () => {
    const port = await rtmpIngest();
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${port}/live/frozen?model=passthrough`, 60);
    await waitFor(async () => (await gw.status('frozen')).state === 'live', 'the stream to go live', 30_000);
    pub.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor(
      async () => (await gw.status('frozen')).state === 'ended',
      'the silent publisher to be noticed',
      20_000,
    );
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(2500);
    expect((await gw.status('frozen')).endReason).toMatch(/no media from the publisher for 3000 ms/);
    pub.child.kill('SIGKILL');
  }, 60_000);

  it('a stream that ends on our side tells its publisher why (no orchestrator for the model)', async () => {
    const port = await rtmpIngest();
    const pub = ffmpegPublish(`rtmp://127.0.0.1:${port}/live/nomodel?model=no-such-model`, 30);
    expect(await pub.exit).not.toBe(0);
    expect(pub.stderr()).toMatch(/Server error: .*orchestrator/i);
  }, 60_000);

  it('publish auth: the WHIP token as ?token=, and the auth webhook asked with type rtmp', async () => {
    const port = await rtmpIngest({ whipAuthToken: new Secret('s3cret') });
    const refused = ffmpegPublish(`rtmp://127.0.0.1:${port}/live/locked`, 3);
    expect(await refused.exit).not.toBe(0);
    expect(refused.stderr()).toContain('missing or wrong token');
    const wrongApp = ffmpegPublish(`rtmp://127.0.0.1:${port}/app/locked?token=s3cret`, 3);
    expect(await wrongApp.exit).not.toBe(0);
    expect(wrongApp.stderr()).toContain('publish to rtmp://host/live/STREAM');

    hooks.answer(() => ({ status: 403, body: { error: 'not this one' } }));
    const hooked = await rtmpIngest({ authWebhook: { url: hooks.url, timeoutMs: 3000 } });
    const denied = ffmpegPublish(`rtmp://127.0.0.1:${hooked}/live/hooked?token=abc&streamId=s1`, 3);
    expect(await denied.exit).not.toBe(0);
    const asked = hooks.requests.at(-1)?.json as Record<string, unknown>;
    expect(asked).toMatchObject({ stream: 'hooked', stream_key: 'hooked', type: 'rtmp' });
    expect(String(asked.query_params)).toContain('streamId=s1');

    hooks.answer(() => ({ status: 200, body: { pipeline: 'passthrough' } }));
    const allowed = ffmpegPublish(`rtmp://127.0.0.1:${hooked}/live/hooked2?token=abc`, 30);
    await waitFor(
      async () =>
        (await fetch(gw.url('hooked2', 'status'), { headers: { authorization: 'Bearer abc' } })).status ===
        200,
      'the allowed stream',
      20_000,
    );
    // The key's token is the stream's credential for /status and /update, as a WHIP Bearer token is.
    expect((await fetch(gw.url('hooked2', 'status'))).status).toBe(401);
    allowed.child.kill('SIGKILL');
  }, 90_000);
});
