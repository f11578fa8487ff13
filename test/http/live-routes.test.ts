// WHIP/WHEP/update/status refusals a client would see, through the gateway's real HTTP app.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/index.ts';
import { buildGatewayApp } from '../../src/http/app.ts';
import { LiveStreams } from '../../src/live/registry.ts';
import { StaticSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';

const logger = pino({ level: 'silent' });
const pool = new OrchestratorPool({
  sources: [new StaticSource([])],
  identity: offchainIdentity,
  grpcTimeoutMs: 500,
  infoMaxAgeMs: 1000,
  concurrency: 2,
  priceCeiling: PriceCeiling.none(),
  logger,
});
const streams = new LiveStreams({
  pool,
  identity: offchainIdentity,
  limits: {
    minSegmentDurationMs: 1000,
    pliIntervalMs: 2000,
    maxViewers: 2,
    ingestTimeoutMs: 5000,
    maxStreams: 4,
  },
  network: LOOPBACK_NETWORK,
  logger,
});
let app: Awaited<ReturnType<typeof buildGatewayApp>>;

beforeAll(async () => {
  app = await buildGatewayApp({
    pool,
    streams,
    bodyLimitBytes: 64 * 1024,
    logger,
    live: {
      iceServers: [{ urls: ['turn:turn.example.test:3478'], username: 'u', credential: new Secret('p"w') }],
      whipAuthToken: new Secret('s3cret'),
      defaultModel: 'invert',
    },
  });
});
afterAll(async () => {
  await app.close();
  await streams.closeAll();
});

const whip = '/live/video-to-video/cam1/whip';
const auth = { authorization: 'Bearer s3cret' };
const sdp = { 'content-type': 'application/sdp' };

describe('WHIP/WHEP routes: bad requests', () => {
  it('401 without the configured Bearer token, with WWW-Authenticate', async () => {
    const res = await app.inject({ method: 'POST', url: whip, headers: sdp, payload: 'v=0\r\n' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.json().error.code).toBe('UNAUTHORIZED');
    const wrong = await app.inject({
      method: 'POST',
      url: whip,
      headers: { ...sdp, authorization: 'Bearer x' },
      payload: 'v=0',
    });
    expect(wrong.statusCode).toBe(401);
  });

  it('415 for an offer that is not application/sdp', async () => {
    const res = await app.inject({
      method: 'POST',
      url: whip,
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{}',
    });
    expect(res.statusCode).toBe(415);
  });

  it('400 with a reason for malformed SDP', async () => {
    const res = await app.inject({
      method: 'POST',
      url: whip,
      headers: { ...auth, ...sdp },
      payload: 'hello',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message.length).toBeGreaterThan(5);
  });

  it('400 for an empty offer and for a bad stream name', async () => {
    expect(
      (await app.inject({ method: 'POST', url: whip, headers: { ...auth, ...sdp }, payload: '' })).statusCode,
    ).toBe(400);
    const bad = await app.inject({
      method: 'POST',
      url: '/live/video-to-video/..%2Fx/whip',
      headers: { ...auth, ...sdp },
      payload: 'v=0',
    });
    expect(bad.statusCode).toBe(400);
  });

  it('413 for an offer over the body limit', async () => {
    const res = await app.inject({
      method: 'POST',
      url: whip,
      headers: { ...auth, ...sdp },
      payload: `v=0\r\n${'a=x\r\n'.repeat(20000)}`,
    });
    expect(res.statusCode).toBe(413);
  });

  it('404 for WHEP, update, status and DELETE on an unknown stream', async () => {
    const whep = await app.inject({
      method: 'POST',
      url: '/live/video-to-video/nope/whep',
      headers: sdp,
      payload: 'v=0',
    });
    expect(whep.statusCode).toBe(404);
    expect(whep.json().error.message).toContain('nope');
    // The stream's own routes need the publish credential (here -liveWhipAuthToken) first.
    const update = await app.inject({
      method: 'POST',
      url: '/live/video-to-video/nope/update',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{"effect":"edges"}',
    });
    expect(update.statusCode).toBe(404);
    expect(
      (await app.inject({ method: 'GET', url: '/live/video-to-video/nope/status', headers: auth }))
        .statusCode,
    ).toBe(404);
    const del = await app.inject({
      method: 'DELETE',
      url: '/live/video-to-video/nope/whip/abc',
      headers: auth,
    });
    expect(del.statusCode).toBe(404);
  });

  it('415 and 400 for updates that are not a JSON object', async () => {
    const text = await app.inject({
      method: 'POST',
      url: '/live/video-to-video/nope/update',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'effect=edges',
    });
    expect(text.statusCode).toBe(415);
    const bad = await app.inject({
      method: 'POST',
      url: '/live/video-to-video/nope/update',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{oops',
    });
    expect(bad.statusCode).toBe(400);
  });

  it('answers CORS preflight with the WHIP headers and the ICE servers as Link headers', async () => {
    const res = await app.inject({
      method: 'OPTIONS',
      url: whip,
      headers: { origin: 'https://studio.example' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(String(res.headers['access-control-allow-methods'])).toContain('DELETE');
    expect(String(res.headers['access-control-expose-headers'])).toContain('Location');
    expect(String(res.headers.link)).toBe(
      '<turn:turn.example.test:3478>; rel="ice-server"; username="u"; credential="p\\"w"; credential-type="password"',
    );
  });

  it('advertises PATCH with application/trickle-ice-sdpfrag (RFC 9725 §4.3)', async () => {
    const res = await app.inject({ method: 'OPTIONS', url: `${whip}/abc` });
    expect(res.statusCode).toBe(204);
    expect(res.headers['accept-patch']).toBe('application/trickle-ice-sdpfrag');
    expect(String(res.headers['access-control-allow-methods'])).toContain('PATCH');
    expect(String(res.headers['access-control-allow-headers'])).toContain('If-Match');
    expect(String(res.headers['access-control-expose-headers'])).toContain('ETag');
  });

  it('PATCH: 401 without the WHIP token, 415 for another type, 404 for an unknown stream', async () => {
    const frag = { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': '*' };
    const url = `${whip}/abc`;
    expect((await app.inject({ method: 'PATCH', url, headers: frag, payload: '' })).statusCode).toBe(401);
    const wrong = await app.inject({
      method: 'PATCH',
      url,
      headers: { ...auth, 'content-type': 'application/sdp', 'if-match': '*' },
      payload: 'v=0',
    });
    expect(wrong.statusCode).toBe(415);
    expect(wrong.json().error.message).toContain('application/trickle-ice-sdpfrag');
    const none = await app.inject({ method: 'PATCH', url, headers: { ...auth, 'if-match': '*' } });
    expect(none.statusCode).toBe(415);
    const gone = await app.inject({ method: 'PATCH', url, headers: { ...auth, ...frag }, payload: '' });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('NO_SUCH_STREAM');
    // WHEP session URLs take no token.
    const whep = '/live/video-to-video/cam1/whep/abc';
    expect((await app.inject({ method: 'PATCH', url: whep, headers: frag, payload: '' })).statusCode).toBe(
      404,
    );
  });
});
