// The gateway's own clients run a live-video-to-video job on the local orchestrator over
// real sockets: GetOrchestrator (gRPC/TLS), job start (HTTPS), trickle in and out, control, events.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { liveJobCapabilities } from '../../src/orchestrators/capabilities.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { startLiveVideoToVideo } from '../../src/orchestrators/live-video.ts';
import { OFFCHAIN_PAYMENT, segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { TricklePublisher, TrickleSubscriber } from '../../src/trickle/index.ts';
import { Capability, hasCapability, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';
import { decodeGray, makeSegments, mean, meanAbsDiff } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let segments: Buffer[];

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert', 'edges'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    statusIntervalMs: 200,
  });
  segments = await makeSegments({ seconds: 6 });
}, 30_000);

afterAll(async () => {
  await orch?.close();
});

async function startJob(modelId: string, params: Record<string, unknown> = {}) {
  const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
  const requestId = `req-${Math.random().toString(16).slice(2)}`;
  const urls = await startLiveVideoToVideo(info.transcoder!, {
    modelId,
    params,
    streamId: 'test-stream',
    requestId,
    payment: OFFCHAIN_PAYMENT,
    segment: await segmentCredentials(info, offchainIdentity, { manifestId: requestId }),
  });
  return { info, urls };
}

async function readAll(body: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Publishes one segment in a few chunks, like a segmenter writing frames as they come. */
async function publishSegment(pub: TricklePublisher, data: Buffer): Promise<void> {
  const writer = pub.startSegment();
  const step = Math.ceil(data.length / 4);
  for (let i = 0; i < data.length; i += step) {
    writer.write(data.subarray(i, i + step));
    await new Promise((r) => setTimeout(r, 5));
  }
  await writer.end();
}

describe('live-video-to-video on the local orchestrator', () => {
  it('answers GetOrchestrator with the live capability, its models, a price and an auth token', async () => {
    const info: OrchestratorInfo = await getOrchestrator(orch.url, {
      identity: offchainIdentity,
      timeoutMs: 3000,
    });
    expect(info.transcoder).toBe(orch.url);
    expect(hasCapability(info.capabilities?.bitstring, Capability.LiveVideoToVideo)).toBe(true);
    const models =
      info.capabilities?.constraints?.PerCapability?.[String(Capability.LiveVideoToVideo)]?.models ?? {};
    expect(Object.keys(models).sort()).toEqual(['edges', 'invert', 'passthrough']);
    expect(info.priceInfo?.pixelsPerUnit).toBe(1n);
    const livePrices = info.capabilitiesPrices?.filter((p) => p.capability === Capability.LiveVideoToVideo);
    expect(livePrices?.map((p) => p.constraint).sort()).toEqual(['edges', 'invert', 'passthrough']);
    expect(info.authToken?.token?.length).toBe(32);
    expect(Number(info.authToken?.expiration) * 1000).toBeGreaterThan(Date.now() + 25 * 60_000);
  });

  it('answers a request for a model it lacks with OrchestratorCapped, as go-livepeer does', async () => {
    const ok = await getOrchestrator(orch.url, {
      identity: offchainIdentity,
      timeoutMs: 3000,
      capabilities: liveJobCapabilities('invert'),
    });
    expect(ok.capabilitiesPrices).toBeUndefined(); // only listed when the request names no capabilities
    const err = await getOrchestrator(orch.url, {
      identity: offchainIdentity,
      timeoutMs: 3000,
      capabilities: liveJobCapabilities('sdxl-turbo'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrchestratorError);
    expect((err as OrchestratorError).kind).toBe('refused');
    expect((err as OrchestratorError).message).toContain('OrchestratorCapped');
  });

  it('passthrough returns the input bytes untouched', async () => {
    const { urls } = await startJob('passthrough');
    expect(urls.publishUrl).toBe(`${orch.url}/ai/trickle/${urls.manifestId}`);
    expect(urls.subscribeUrl).toBe(`${urls.publishUrl}-out`);
    const tls = { rejectUnauthorized: false };
    const pub = new TricklePublisher(urls.publishUrl, { ...tls, mimeType: 'video/MP2T' });
    const sub = new TrickleSubscriber(urls.subscribeUrl, tls);
    try {
      const outputs: Promise<Buffer>[] = [];
      const reading = (async () => {
        for (let i = 0; i < 2; i++) {
          const seg = await sub.next();
          if (!seg) throw new Error('output ended early');
          outputs.push(readAll(seg.body));
        }
      })();
      await publishSegment(pub, segments[0]);
      await publishSegment(pub, segments[1]);
      await reading;
      const out = await Promise.all(outputs);
      expect(out[0].equals(segments[0])).toBe(true);
      expect(out[1].equals(segments[1])).toBe(true);
    } finally {
      sub.close();
      await pub.close({ deleteChannel: true });
    }
  }, 20_000);

  it('applies the effect to the pixels, and a control message switches it mid-stream', async () => {
    const { urls } = await startJob('invert');
    const tls = { rejectUnauthorized: false };
    const pub = new TricklePublisher(urls.publishUrl, { ...tls, mimeType: 'video/MP2T' });
    const control = new TricklePublisher(urls.controlUrl, { ...tls, mimeType: 'application/json' });
    const sub = new TrickleSubscriber(urls.subscribeUrl, tls);
    const events = new TrickleSubscriber(urls.eventsUrl, tls);
    const seen: Record<string, unknown>[] = [];
    let stopEvents = false;
    const eventReader = (async () => {
      while (!stopEvents) {
        const seg = await events.next().catch(() => null);
        if (!seg) return;
        seen.push(JSON.parse((await readAll(seg.body)).toString()));
      }
    })();
    const outputs: Buffer[] = [];
    const reader = (async () => {
      for (let i = 0; i < 4; i++) {
        const seg = await sub.next();
        if (!seg) throw new Error('output ended early');
        outputs.push(await readAll(seg.body));
      }
    })();
    try {
      await publishSegment(pub, segments[0]);
      await publishSegment(pub, segments[1]);
      // An effect change applies from the next segment the job starts, so let these two finish first.
      await waitFor(() => outputs.length === 2, 'first two output segments');
      await control.writeSegment(JSON.stringify({ effect: 'edges' }));
      // The job reports the new params on its events channel once it has taken them.
      const deadline = Date.now() + 5000;
      while (!seen.some((e) => (e.inference_status as { effect?: string })?.effect === 'edges')) {
        if (Date.now() > deadline)
          throw new Error(`effect change not reported; events: ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      await publishSegment(pub, segments[2]);
      await publishSegment(pub, segments[3]);
      await reader;

      for (let i = 0; i < 4; i++) {
        const input = await decodeGray(segments[i]);
        const output = await decodeGray(outputs[i]);
        expect(output.length).toBeGreaterThanOrEqual(input.length - 1);
        const inverted = meanAbsDiff(input[0], output[0], (v) => 255 - v);
        const same = meanAbsDiff(input[0], output[0]);
        if (i < 2) {
          // invert: each pixel is 255 minus the input pixel, up to compression noise
          expect(inverted).toBeLessThan(12);
          expect(same).toBeGreaterThan(40);
        } else {
          // edges: neither the input nor its negative; mostly dark with bright outlines
          expect(inverted).toBeGreaterThan(40);
          expect(same).toBeGreaterThan(20);
          expect(mean(output[0])).toBeLessThan(mean(input[0]));
        }
      }
      const status = seen.filter((e) => e.type === 'status');
      expect(status.length).toBeGreaterThan(0);
      expect(status.at(-1)?.pipeline).toBe('live-video-to-video');
    } finally {
      stopEvents = true;
      sub.close();
      events.close();
      await control.close();
      await pub.close({ deleteChannel: true });
      await eventReader;
    }
  }, 30_000);
});
