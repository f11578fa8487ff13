// go-livepeer's live auth webhook, asked by a real gateway before a WHIP stream starts, with a
// real HTTP webhook on 127.0.0.1; and the credential a protected stream's own routes need.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/index.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { startTestGateway, type TestGatewayOptions } from '../helpers/gateway.ts';
import { closedPort, type HookServer, startHookServer } from '../helpers/hook-server.ts';
import { iceCredentialsOf, patch, sdpFragment } from '../helpers/ice-clients.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  h264Frames,
  udpSocketCount,
  WeriftPublisher,
  WhepTestViewer,
  WhipTestPublisher,
} from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let hook: HookServer;
let clip: Buffer;
type Gateway = Awaited<ReturnType<typeof startTestGateway>>;
const gateways: Gateway[] = [];

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough', 'invert', 'edges'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 8,
    logger,
    statusIntervalMs: 200,
  });
  hook = await startHookServer();
  clip = await makeH264Clip({ seconds: 2 });
}, 60_000);

afterAll(async () => {
  for (const gw of gateways) await gw.close();
  await hook?.close();
  await orch?.close();
});

async function gateway(live: TestGatewayOptions['live']): Promise<Gateway> {
  const gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    limits: { ingestTimeoutMs: 4000 },
    live,
  });
  gateways.push(gw);
  return gw;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
/** ICE and DTLS on a loaded machine (the whole suite, other work) can take a while. */
const CONNECT = { connectTimeoutMs: 15_000 };

/** A WHIP POST of a real offer; the peer that made it is closed at once. */
async function offer(url: string, headers: Record<string, string> = {}): Promise<Response> {
  const peer = new WeriftPublisher();
  try {
    const sdp = await peer.createOffer();
    return await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', ...headers },
      body: sdp,
    });
  } finally {
    await peer.close();
  }
}

async function errorOf(res: Response): Promise<{ code: string; message: string }> {
  return ((await res.json()) as { error: { code: string; message: string } }).error;
}

describe('live auth webhook', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await gateway({
      authWebhook: { url: `${hook.url}/auth`, apiKey: new Secret('k3y'), timeoutMs: 1000 },
      gatewayHost: 'gw.example.test',
      whepAuthToken: new Secret('viewer-token'),
      operatorToken: new Secret('op-token'),
    });
  });

  it("sends go-livepeer's request, and the answer's pipeline, params, stream id and output reach the stream", async () => {
    hook.requests.length = 0;
    hook.answer(() => ({
      status: 200,
      body: {
        pipeline: 'passthrough',
        pipeline_parameters: { effect: 'edges' },
        stream_id: 'str_abc',
        pipeline_id: 'pip_1',
        rtmp_output_url: 'rtmp://rtmp.example.test/live/key123',
        unknown_key: true,
      },
    }));
    const query = 'pipeline=invert&params=%7B%22effect%22%3A%22invert%22%7D&streamId=q1&zeta=a%20b*';
    const publisher = await WhipTestPublisher.connect(gw.url('cam-ok', `whip?${query}`), {
      ...CONNECT,
      headers: bearer('pub-secret'),
    });
    try {
      expect(hook.requests).toHaveLength(1);
      const req = hook.requests[0];
      expect(req.method).toBe('POST');
      expect(req.path).toBe('/auth');
      // The API key verbatim in both headers, as go-livepeer sends it (no "Bearer ").
      expect(req.headers['x-api-key']).toBe('k3y');
      expect(req.headers.authorization).toBe('k3y');
      expect(req.headers['content-type']).toBe('application/json');
      const body = req.json as Record<string, string>;
      expect(Object.keys(body)).toEqual([
        'stream',
        'stream_key',
        'type',
        'query_params',
        'gateway_host',
        'whep_url',
        'status_url',
        'update_url',
      ]);
      expect(body).toEqual({
        stream: 'cam-ok',
        stream_key: 'cam-ok',
        type: 'livepeer-whip',
        // Go's url.Values.Encode(): keys sorted, "+" for spaces, "*" escaped.
        query_params: 'params=%7B%22effect%22%3A%22invert%22%7D&pipeline=invert&streamId=q1&zeta=a+b%2A',
        gateway_host: 'gw.example.test',
        whep_url: `${gw.base}/live/video-to-video/cam-ok/whep`,
        status_url: 'https://gw.example.test/live/video-to-video/cam-ok/status',
        update_url: 'https://gw.example.test/live/video-to-video/cam-ok/update',
      });
      expect(gw.streams.rtmpOutputOf('cam-ok')).toBe('rtmp://rtmp.example.test/live/key123');

      const sending = publisher.send({ video: h264Frames(clip, 30) });
      // By go-livepeer's stream id, as its clients ask: the webhook's pipeline and params ran on
      // the orchestrator (its own status names the effect it applies).
      const auth = bearer('pub-secret');
      const status = async () => (await fetch(gw.url('str_abc', 'status'), { headers: auth })).json();
      await waitFor(
        async () => (await status()).orchestratorStatus?.inference_status?.effect === 'edges',
        'the orchestrator to run the webhook params',
        15_000,
      );
      await sending;
      await waitFor(async () => (await status()).output.segments >= 1, 'output', 10_000);
      const s = await status();
      expect(s.stream).toBe('cam-ok');
      expect(s.model).toBe('passthrough');
      expect(s.params).toEqual({ effect: 'edges' });
      expect(s.orchestratorStatus.model_id).toBe('passthrough');
      // What go-livepeer's clients read (docs/operator-interfaces.md §4).
      expect(s.stream_id).toBe('str_abc');
      expect(s.pipeline_id).toBe('pip_1');
      expect(s.request_id).toMatch(/^[0-9a-f]{8}$/);
      expect(s.orchestrator_info).toEqual({ address: `0x${'0'.repeat(40)}`, url: orch.url });
      expect(s.gateway_status.whep_url).toBe(`${gw.base}/live/video-to-video/cam-ok/whep`);
      const stats = s.gateway_status.ingest_metrics.stats;
      expect(stats.peer_conn_stats.BytesReceived).toBeGreaterThan(10_000);
      const video = stats.track_stats[0];
      expect(video.type).toBe('video');
      expect(video.packets_received).toBeGreaterThan(50);
      // go-livepeer's rule: more than 2 % lost is a bad connection (loopback under load may lose some).
      expect(video.packet_loss_pct).toBeCloseTo(
        (100 * video.packets_lost) / (video.packets_lost + video.packets_received),
      );
      expect(stats.conn_quality).toBe(video.packet_loss_pct > 2 ? 'bad' : 'good');
      const inference = s.inference_status;
      for (const key of [
        'last_output_time',
        'fps',
        'last_params_update_time',
        'last_params',
        'last_params_hash',
        'last_error_time',
        'last_error',
        'last_restart_time',
        'last_restart_logs',
        'restart_count',
      ]) {
        expect(inference, key).toHaveProperty(key);
      }
      expect(typeof inference.fps).toBe('number');
      expect(inference.last_params).toEqual({ effect: 'edges' });
      expect(inference.last_params_hash).toMatch(/^[0-9a-f]{32}$/);
      expect(inference.restart_count).toBe(0);
      expect(typeof s.input_status).toBe('object');
      expect(s.gateway_status.error).toBeUndefined();
    } finally {
      await publisher.close();
    }
  }, 40_000);

  it('a refusal is a 401 or 403 with the webhook reason (bounded, sanitized), before anything is created', async () => {
    const sockets = udpSocketCount();
    const started: string[] = [];
    const off = gw.streams.events.subscribe((e) => started.push(e.data.type));
    try {
      hook.answer(() => ({
        status: 401,
        body: { error: `no credit left\u0000\u001b[31m${'x'.repeat(5000)}` },
      }));
      const r401 = await offer(gw.url('cam-no', 'whip'));
      expect(r401.status).toBe(401);
      const e401 = await errorOf(r401);
      expect(e401.code).toBe('UNAUTHORIZED');
      // Control characters (the NUL, the escape) are gone; the text is cut at 200 characters.
      expect(e401.message).toMatch(/^refused by the auth webhook: no credit left \[31mx+…$/);
      expect(e401.message.length).toBeLessThan(260);

      hook.answer(() => ({ status: 403, body: 'plan expired\r\nX-Injected: 1' }));
      const r403 = await offer(gw.url('cam-no', 'whip'));
      expect(r403.status).toBe(403);
      expect(await errorOf(r403)).toEqual({
        code: 'FORBIDDEN',
        message: 'refused by the auth webhook: plan expired X-Injected: 1',
      });

      hook.answer(() => ({ status: 404, body: '' }));
      const r404 = await offer(gw.url('cam-no', 'whip'));
      expect(r404.status).toBe(403);
      expect((await errorOf(r404)).message).toBe('refused by the auth webhook: HTTP 404, no reason given');

      // Nothing was created: no peer, no stream, no trace of a stream request.
      expect(udpSocketCount()).toBe(sockets);
      expect(gw.streams.liveCount).toBe(0);
      expect((await fetch(gw.url('cam-no', 'status'))).status).toBe(404);
      expect(started).toEqual([]);
    } finally {
      off();
    }
  }, 20_000);

  it('an answer that is not usable refuses with 503 (never an open door)', async () => {
    const cases: [unknown, string][] = [
      ['not json', 'not JSON'],
      ['', 'empty'],
      [[1, 2], 'not a JSON object'],
      [{ pipeline_parameters: [1] }, '"pipeline_parameters" is not a JSON object'],
      [{ pipeline: '../../etc/passwd;' }, '"pipeline" is not a model id'],
      [{ stream_id: 42 }, '"stream_id" is not a string'],
      [{ rtmp_output_url: 'file:///etc/passwd' }, '"rtmp_output_url" is not an rtmp://'],
      [
        { pipeline_parameters: JSON.parse(`${'{"a":'.repeat(40)}1${'}'.repeat(40)}`) },
        'nested deeper than 32',
      ],
      [{ pad: 'x'.repeat(70_000) }, 'larger than 65536 bytes'],
    ];
    for (const [body, why] of cases) {
      hook.answer(() => ({ status: 200, body: typeof body === 'string' ? body : body }));
      const res = await offer(gw.url('cam-bad', 'whip'));
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(503);
      const error = await errorOf(res);
      expect(error.code).toBe('AUTH_UNAVAILABLE');
      expect(error.message).toContain(why);
    }
    hook.answer(() => ({ status: 502, body: 'upstream: 10.0.0.7:5432 refused' }));
    const res = await offer(gw.url('cam-bad', 'whip'));
    expect(res.status).toBe(503);
    // The webhook's own error text is not the client's business.
    expect((await errorOf(res)).message).toBe(
      'the auth webhook failed (HTTP 502); the stream is refused until it answers',
    );
    expect(gw.streams.liveCount).toBe(0);
  }, 30_000);

  it('WHEP needs the viewer token: without, wrong, right', async () => {
    hook.answer(() => ({ status: 200, body: {} }));
    const publisher = await WhipTestPublisher.connect(gw.url('cam-view', 'whip'), CONNECT);
    try {
      const peer = new WeriftPublisher();
      const sdp = await peer.createOffer();
      await peer.close();
      const post = (headers: Record<string, string>) =>
        fetch(gw.url('cam-view', 'whep'), {
          method: 'POST',
          headers: { 'content-type': 'application/sdp', ...headers },
          body: sdp,
        });
      expect((await post({})).status).toBe(401);
      expect((await post(bearer('nope'))).status).toBe(401);
      const viewer = await WhepTestViewer.connect(gw.url('cam-view', 'whep'), {
        headers: bearer('viewer-token'),
      });
      expect(viewer.resourceUrl).toMatch(/\/whep\/[0-9a-f]+$/);
      const url = viewer.resourceUrl as string;
      expect((await fetch(url, { method: 'DELETE' })).status).toBe(401);
      expect((await fetch(url, { method: 'DELETE', headers: bearer('nope') })).status).toBe(401);
      await viewer.close(); // DELETE with the token
      expect(gw.streams.status('cam-view').viewers).toBe(0);
    } finally {
      await publisher.close();
    }
  }, 30_000);

  it("with the webhook, a stream's own routes need the Bearer token its publisher sent", async () => {
    hook.answer(() => ({ status: 200, body: { stream_id: 'str_cred' } }));
    const publisher = await WhipTestPublisher.connect(gw.url('cam-cred', 'whip'), {
      ...CONNECT,
      headers: bearer('pub-secret'),
    });
    try {
      await checkStreamRoutes(gw, 'cam-cred', publisher, 'pub-secret');
      // The operator reads any status; the list shows protected streams to the operator only.
      expect((await fetch(gw.url('cam-cred', 'status'), { headers: bearer('op-token') })).status).toBe(200);
      const open = await (await fetch(`${gw.base}/live/streams`)).json();
      expect(open.streams.map((s: { stream: string }) => s.stream)).not.toContain('cam-cred');
      expect(open.hidden).toBe(1);
      const all = await (await fetch(`${gw.base}/live/streams`, { headers: bearer('op-token') })).json();
      expect(all.streams.map((s: { stream: string }) => s.stream)).toContain('cam-cred');
      await checkDelete(gw, 'cam-cred', publisher, 'pub-secret');
      // Ended, it still needs the credential: its status says why it ended.
      expect((await fetch(gw.url('cam-cred', 'status'))).status).toBe(401);
      const ended = await (
        await fetch(gw.url('str_cred', 'status'), { headers: bearer('pub-secret') })
      ).json();
      expect(ended.endReason).toBe('publisher sent DELETE');
    } finally {
      await publisher.close();
    }
  }, 30_000);
});

describe('webhook that cannot answer', () => {
  it('unreachable: 503', async () => {
    const gw = await gateway({
      authWebhook: { url: `http://127.0.0.1:${await closedPort()}/auth`, timeoutMs: 1000 },
    });
    const res = await offer(gw.url('cam-x', 'whip'));
    expect(res.status).toBe(503);
    const error = await errorOf(res);
    expect(error.code).toBe('AUTH_UNAVAILABLE');
    expect(error.message).toBe(
      'the auth webhook is unreachable (ECONNREFUSED); the stream is refused until it answers',
    );
    expect(gw.streams.liveCount).toBe(0);
  });

  it('slow or silent: 503 after the timeout', async () => {
    const slow = await startHookServer(() => ({ status: 200, body: {}, delayMs: 3000 }));
    const silent = await startHookServer(() => ({ hang: true }));
    try {
      for (const server of [slow, silent]) {
        const gw = await gateway({ authWebhook: { url: server.url, timeoutMs: 300 } });
        const t0 = Date.now();
        const res = await offer(gw.url('cam-slow', 'whip'));
        expect(res.status).toBe(503);
        expect((await errorOf(res)).message).toContain('no answer within 300 ms');
        expect(Date.now() - t0).toBeLessThan(2500);
        expect(gw.streams.liveCount).toBe(0);
      }
    } finally {
      await slow.close();
      await silent.close();
    }
  }, 20_000);
});

describe('-liveWhipAuthToken guards the stream routes too', () => {
  it('/update, /status, WHIP PATCH and DELETE: without, wrong, right', async () => {
    const gw = await gateway({ whipAuthToken: new Secret('tok') });
    const publisher = await WhipTestPublisher.connect(gw.url('cam-tok', 'whip'), {
      ...CONNECT,
      headers: bearer('tok'),
    });
    try {
      await checkStreamRoutes(gw, 'cam-tok', publisher, 'tok');
      await checkDelete(gw, 'cam-tok', publisher, 'tok');
    } finally {
      await publisher.close();
    }
  }, 30_000);
});

/** /update, /status and PATCH of a live stream: 401 without the credential and with a wrong one. */
async function checkStreamRoutes(gw: Gateway, stream: string, publisher: WhipTestPublisher, token: string) {
  const json = { 'content-type': 'application/json' };
  const update = (headers: Record<string, string>) =>
    fetch(gw.url(stream, 'update'), {
      method: 'POST',
      headers: { ...json, ...headers },
      body: '{"effect":"edges"}',
    });
  const noneUpdate = await update({});
  expect(noneUpdate.status).toBe(401);
  expect(noneUpdate.headers.get('www-authenticate')).toBe('Bearer');
  expect((await errorOf(noneUpdate)).message).toContain('needs the Bearer token it was published with');
  expect((await update(bearer('wrong'))).status).toBe(401);
  expect((await update(bearer(token))).status).toBe(200);
  // Refused updates changed nothing; the accepted one did.
  expect(gw.streams.status(stream).params).toEqual({ effect: 'edges' });

  expect((await fetch(gw.url(stream, 'status'))).status).toBe(401);
  expect((await fetch(gw.url(stream, 'status'), { headers: bearer('wrong') })).status).toBe(401);
  const ok = await fetch(gw.url(stream, 'status'), { headers: bearer(token) });
  expect(ok.status).toBe(200);
  expect((await ok.json()).stream).toBe(stream);

  const resource = publisher.resourceUrl as string;
  const { ufrag, pwd } = iceCredentialsOf(publisher.pc.localDescription?.sdp ?? '');
  const frag = sdpFragment({ ufrag, pwd, candidates: [] });
  expect((await patch(resource, frag, { 'if-match': '*' })).status).toBe(401);
  expect((await patch(resource, frag, { 'if-match': '*', ...bearer('wrong') })).status).toBe(401);
  expect((await patch(resource, frag, { 'if-match': '*', ...bearer(token) })).status).toBe(204);
}

async function checkDelete(gw: Gateway, stream: string, publisher: WhipTestPublisher, token: string) {
  const resource = publisher.resourceUrl as string;
  expect((await fetch(resource, { method: 'DELETE' })).status).toBe(401);
  expect((await fetch(resource, { method: 'DELETE', headers: bearer('wrong') })).status).toBe(401);
  expect(gw.streams.liveCount).toBeGreaterThan(0);
  expect((await fetch(resource, { method: 'DELETE', headers: bearer(token) })).status).toBe(200);
  publisher.resourceUrl = undefined;
  expect(gw.streams.list().map((s) => s.stream)).not.toContain(stream);
}
