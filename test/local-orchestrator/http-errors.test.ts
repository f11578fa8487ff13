// The local orchestrator refuses bad job starts and payments with the status codes go-livepeer uses.
import { request } from 'node:https';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeAuthToken } from '../../src/local-orchestrator/credentials.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { startLiveVideoToVideo } from '../../src/orchestrators/live-video.ts';
import { segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { decodeMessage, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

let orch: LocalOrchestrator;
let info: OrchestratorInfo;
let goodSegment: string;

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 1,
    logger: pino({ level: 'silent' }),
  });
  info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
  goodSegment = await segmentCredentials(info, offchainIdentity, { manifestId: 'm' });
});
afterAll(async () => {
  await orch?.close();
});

function post(path: string, body: string, headers: Record<string, string>) {
  return new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
    const req = request(
      `${orch.url}${path}`,
      { method: 'POST', rejectUnauthorized: false, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type']),
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const json = (segment: string) => ({ 'content-type': 'application/json', 'livepeer-segment': segment });
const job = JSON.stringify({ model_id: 'invert' });

describe('local orchestrator: bad requests', () => {
  it('400 for a body that is not JSON', async () => {
    const res = await post('/live-video-to-video', '{nope', json(goodSegment));
    expect(res.status).toBe(400);
    expect(res.type).toMatch(/text\/plain/);
  });

  it('400 naming the models it serves for an unknown model', async () => {
    const res = await post('/live-video-to-video', JSON.stringify({ model_id: 'sdxl' }), json(goodSegment));
    expect(res.status).toBe(400);
    expect(res.body.toString()).toContain('unknown model_id "sdxl"');
    expect(res.body.toString()).toContain('passthrough, invert');
  });

  it('400 when model_id is missing', async () => {
    const res = await post('/live-video-to-video', JSON.stringify({ params: {} }), json(goodSegment));
    expect(res.status).toBe(400);
    expect(res.body.toString()).toContain('model_id');
  });

  it('403 without Livepeer-Segment, or with an auth token it did not issue or that expired', async () => {
    expect((await post('/live-video-to-video', job, { 'content-type': 'application/json' })).status).toBe(
      403,
    );
    const forged = { ...info, authToken: makeAuthToken(new Uint8Array(32), 'x', 9_999_999_999n) };
    const res = await post(
      '/live-video-to-video',
      job,
      json(await segmentCredentials(forged, offchainIdentity, { manifestId: 'm' })),
    );
    expect(res.status).toBe(403);
    expect(res.body.toString()).toContain('invalid auth token');
    expect((await post('/live-video-to-video', job, json('%%%'))).status).toBe(403);
  });

  it('402 for a Livepeer-Payment that is not a Payment', async () => {
    const res = await post('/live-video-to-video', job, {
      ...json(goodSegment),
      'livepeer-payment': 'not base64!',
    });
    expect(res.status).toBe(402);
    const res2 = await post('/payment', '', {
      'livepeer-segment': goodSegment,
      'livepeer-payment': '/////w==',
    });
    expect(res2.status).toBe(402);
  });

  it('503 when it has no capacity left, and the gateway client reports the reason', async () => {
    const first = await post('/live-video-to-video', job, json(goodSegment));
    expect(first.status).toBe(200);
    const err = await startLiveVideoToVideo(orch.url, {
      modelId: 'invert',
      streamId: 's',
      requestId: 'r',
      payment: '',
      segment: goodSegment,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OrchestratorError);
    expect((err as OrchestratorError).status).toBe(503);
    expect((err as OrchestratorError).message).toContain('insufficient capacity');
    const mid = JSON.parse(first.body.toString()).manifest_id;
    orch.jobs.get(mid)?.stop('test done');
  });

  it('accepts an off-chain payment and answers with fresh info carrying the same auth token', async () => {
    const res = await post('/payment', '', { 'livepeer-segment': goodSegment, 'livepeer-payment': '' });
    expect(res.status).toBe(200);
    const result = decodeMessage('PaymentResult', res.body);
    expect(result.info?.transcoder).toBe(orch.url);
    expect(result.info?.authToken).toEqual(info.authToken);
  });

  it('404 for a route it does not have', async () => {
    expect((await post('/nope', '', {})).status).toBe(404);
  });
});
