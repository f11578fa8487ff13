// The live path end to end over real sockets on 127.0.0.1: a werift publisher sends an H.264
// clip over WHIP, the gateway segments it to the local orchestrator over trickle, and a werift
// WHEP viewer receives the processed video, which ffmpeg decodes.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { decodeGray, makeH264Clip, mean } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  h264Frames,
  type RtpFrame,
  syntheticOpusFrames,
  WhepTestViewer,
  WhipTestPublisher,
} from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;
let clip: Buffer;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough', 'invert', 'edges'], { capacity: 8 });
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    limits: { maxViewers: 2, ingestTimeoutMs: 1500 },
  });
  clip = await makeH264Clip({ seconds: 5 });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

const url = (stream: string, what: string) => gw.url(stream, what);

function activeResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

async function status(stream: string) {
  return (await fetch(url(stream, 'status'))).json();
}

/** Frames the viewer decoded that came after `from` (an index into viewer.frames). */
async function meanLuma(viewer: WhepTestViewer, from: number): Promise<number[]> {
  const start = Buffer.from([0, 0, 0, 1]);
  const annexB = Buffer.concat(viewer.frames.slice(from).flatMap((f) => f.nalus.flatMap((n) => [start, n])));
  const frames = await decodeGray(annexB, 64, 48, 'h264');
  return frames.map(mean);
}

describe('live video-to-video over WHIP and WHEP', () => {
  it('a WHEP viewer receives the orchestrator-processed video, and /update switches the effect', async () => {
    const before = activeResources();
    const publisher = await WhipTestPublisher.connect(url('cam1', 'whip?model=invert'));
    expect(publisher.resourceUrl).toMatch(/\/live\/video-to-video\/cam1\/whip\/[0-9a-f]+$/);
    const viewer = await WhepTestViewer.connect(url('cam1', 'whep'));
    const video: RtpFrame[] = h264Frames(clip, 30);
    const sent = await publisher.send({ video, audio: syntheticOpusFrames(250) });
    expect(sent.videoFrames).toBe(150);
    // PLI when the publisher connects and then every pliIntervalMs (2 s here) over a 5 s stream.
    expect(sent.keyframeRequests).toBeGreaterThanOrEqual(2);
    // A real publisher never goes quiet between our checks: audio runs on (its clock continuing from
    // the clip's) until the DELETE, so a slow decode on a loaded machine cannot trip the 1.5 s ingest
    // timeout of this suite and end the stream under the test.
    const quiet = new AbortController();
    const audioGoesOn = publisher.send({
      audio: syntheticOpusFrames(250 + 3000).slice(250),
      signal: quiet.signal,
    });

    // ≥ 90 % of the sent frames reach the viewer (the last, still open segment may lag a little).
    await waitFor(() => viewer.frames.length >= 0.9 * sent.videoFrames, 'frames at the viewer');
    expect(viewer.audioPackets.length).toBeGreaterThan(100);
    const inverted = await meanLuma(viewer, 0);
    const input = (await decodeGray(clip, 64, 48, 'h264')).map(mean);
    expect(mean(Uint8Array.from(input))).toBeLessThan(80); // the clip is dark...
    expect(mean(Uint8Array.from(inverted))).toBeGreaterThan(170); // ...and the viewer sees it inverted

    const status = await (await fetch(url('cam1', 'status'))).json();
    expect(status.state).toBe('live');
    expect(status.orchestrator).toBe(orch.url);
    expect(status.input.segments).toBeGreaterThanOrEqual(4);
    expect(status.output.segments).toBeGreaterThanOrEqual(3);
    expect(status.viewers).toBe(1);
    expect(status.orchestratorStatus?.type).toBe('status');
    expect(status.latencyMs.frames).toBeGreaterThan(100);
    expect(status.input.fps).toBeGreaterThan(0);

    const update = await fetch(url('cam1', 'update'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ effect: 'passthrough' }),
    });
    expect(update.status).toBe(200);
    await waitFor(
      async () =>
        ((await (await fetch(url('cam1', 'status'))).json()).orchestratorStatus?.inference_status?.effect ??
          '') === 'passthrough',
      'the orchestrator to take the new effect',
    );
    const mark = viewer.frames.length;
    await publisher.send({ video: h264Frames(clip, 30, 1200, 10 * 90000) });
    await waitFor(() => viewer.frames.length >= mark + 100, 'frames after the update');
    const plain = await meanLuma(viewer, mark + 40);
    expect(mean(Uint8Array.from(plain))).toBeLessThan(80);

    // One SSRC for the viewer's whole life; sequence numbers and timestamps run on across segments.
    const packets = viewer.videoPackets;
    expect(new Set(packets.map((p) => p.ssrc)).size).toBe(1);
    let gaps = 0;
    let backwards = 0;
    for (let i = 1; i < packets.length; i++) {
      if (((packets[i].seq - packets[i - 1].seq) & 0xffff) !== 1) gaps++;
      if (((packets[i].timestamp - packets[i - 1].timestamp) | 0) < 0) backwards++;
    }
    expect(gaps).toBeLessThanOrEqual(2);
    expect(backwards).toBe(0);

    await viewer.close();
    await waitFor(
      async () => (await (await fetch(url('cam1', 'status'))).json()).viewers === 0,
      'viewer to leave',
    );
    quiet.abort();
    await audioGoesOn;
    await publisher.close(); // DELETE
    const ended = await (await fetch(url('cam1', 'status'))).json();
    expect(ended.state).toBe('ended');
    expect(ended.endReason).toBe('publisher sent DELETE');
    // A WHEP viewer can no longer join an ended stream.
    expect(String(await WhepTestViewer.connect(url('cam1', 'whep')).catch((e: Error) => e))).toContain('404');
    await waitFor(() => orch.jobs.size === 0, 'the orchestrator job to end');
    // Every socket and timer the stream owned is gone.
    await waitFor(
      () => {
        const after = activeResources();
        return (
          (after.UDPWrap ?? 0) <= (before.UDPWrap ?? 0) && (after.Timeout ?? 0) <= (before.Timeout ?? 0) + 2
        );
      },
      `resources released: ${JSON.stringify(activeResources())} vs ${JSON.stringify(before)}`,
    );
  }, 60_000);

  it('a viewer that joins mid-stream sees video within about one segment', async () => {
    const publisher = await WhipTestPublisher.connect(url('late', 'whip?model=passthrough'));
    try {
      const sending = publisher.send({ video: h264Frames(clip, 30) });
      await new Promise((r) => setTimeout(r, 1800));
      const joined = Date.now();
      const viewer = await WhepTestViewer.connect(url('late', 'whep'));
      try {
        await waitFor(() => viewer.frames.length > 0, 'a first frame', 8000);
        // A segment is one second here; allow for the join itself and a machine loaded by the
        // other test files (ffmpeg transcodes run beside this one).
        expect(Date.now() - joined).toBeLessThan(6000);
        expect(viewer.frames[0].keyframe).toBe(true);
      } finally {
        await viewer.close();
      }
      await sending;
    } finally {
      await publisher.close();
    }
  }, 20_000);

  it('406 naming the codecs when the offer has none the gateway takes (H.265 only)', async () => {
    const { readFile } = await import('node:fs/promises');
    const offer = (
      await readFile(new URL('../webrtc/fixtures/chrome-vp8-only-offer.sdp', import.meta.url), 'utf8')
    ).replaceAll(/ VP[89]\/90000/g, ' H265/90000');
    const res = await fetch(url('vp8', 'whip'), {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: offer,
    });
    expect(res.status).toBe(406);
    const { error } = await res.json();
    expect(error.message).toContain('offered H265');
    expect(error.message).toContain('H264 (packetization-mode=1), VP8, VP9, AV1');
    expect((await (await fetch(url('vp8', 'status'))).json()).state).toBe('ended');
  });

  it('ends the stream when the publisher disappears without DELETE', async () => {
    const publisher = await WhipTestPublisher.connect(url('gone', 'whip?model=passthrough'));
    await publisher.send({ video: h264Frames(clip, 30).slice(0, 15) });
    await publisher.pc.close(); // no DELETE: the peer connection just goes away
    await waitFor(async () => (await status('gone')).state === 'ended', 'the stream to end', 8000);
    // werift sends no goodbye, so the ingest timeout is what notices (1.5 s in this suite).
    expect((await status('gone')).endReason).toContain('no media from the publisher');
    publisher.resourceUrl = undefined;
    await publisher.close();
  }, 20_000);

  it('exports Prometheus metrics with go-livepeer names', async () => {
    const text = await (await fetch(`${gw.base}/metrics`)).text();
    expect(text).toMatch(/livepeer_ai_live_attempts\{outcome="started"\} [1-9]/);
    expect(text).toMatch(/livepeer_ai_live_attempts\{outcome="refused"\} [1-9]/); // the 406 above
    expect(text).toMatch(/livepeer_ai_first_segment_delay_ms_count [1-9]/);
    expect(text).toMatch(/livepeer_orchestrators\{state="available"\} 1/);
    expect(text).toContain('livepeer_ai_live_viewers');
  });

  it('refuses a second publisher on a live stream name with 409', async () => {
    const first = await WhipTestPublisher.connect(url('cam2', 'whip'));
    try {
      const err = await WhipTestPublisher.connect(url('cam2', 'whip')).catch((e: Error) => e);
      expect(String(err)).toContain('409');
    } finally {
      await first.close();
    }
  }, 20_000);

  it('answers 503 naming the model when no orchestrator offers it, and keeps no socket for it', async () => {
    // Sockets of earlier tests' peers close a moment after their close() resolves: let them go first.
    await new Promise((r) => setTimeout(r, 500));
    const udpBefore = activeResources().UDPWrap ?? 0;
    const err = await WhipTestPublisher.connect(url('cam3', 'whip?model=sdxl-turbo')).catch((e: Error) => e);
    expect(String(err)).toContain('503');
    expect(String(err)).toContain('sdxl-turbo');
    const status = await (await fetch(url('cam3', 'status'))).json();
    expect(status.state).toBe('ended');
    expect(status.endReason).toContain('sdxl-turbo');
    // The gateway's half-made ingest peer is closed too (the client's own peer closed on the error).
    await waitFor(() => (activeResources().UDPWrap ?? 0) <= udpBefore, 'UDP sockets to be released', 5000);
  }, 20_000);

  it('refuses a viewer over the per-stream limit with 429', async () => {
    const publisher = await WhipTestPublisher.connect(url('cam4', 'whip'));
    const viewers = [
      await WhepTestViewer.connect(url('cam4', 'whep')),
      await WhepTestViewer.connect(url('cam4', 'whep')),
    ];
    try {
      const err = await WhepTestViewer.connect(url('cam4', 'whep')).catch((e: Error) => e);
      expect(String(err)).toContain('429');
    } finally {
      for (const v of viewers) await v.close();
      await publisher.close();
    }
  }, 20_000);

  it('ends a stream whose publisher sends nothing, and releases it', async () => {
    const publisher = await WhipTestPublisher.connect(url('cam5', 'whip'));
    try {
      expect((await fetch(url('cam5', 'status'))).status).toBe(200);
      await waitFor(async () => (await status('cam5')).state === 'ended', 'ingest timeout', 6000);
      expect((await status('cam5')).endReason).toContain('no media from the publisher');
    } finally {
      await publisher.close();
    }
  }, 20_000);
});
