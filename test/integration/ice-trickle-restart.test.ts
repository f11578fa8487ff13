// RFC 9725 §4.3 on the real gateway over 127.0.0.1: a werift publisher offers no candidates and
// trickles them by PATCH, connects, and then both it and a viewer restart ICE with a new ufrag
// while the stream runs; frames keep reaching the viewer. Once with a UDP socket per peer, once on
// the shared ports. Then every refusal a PATCH can get.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { IcePorts, LOOPBACK_NETWORK, type PeerNetworkOptions } from '../../src/webrtc/index.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import {
  candidatesOf,
  iceCredentialsOf,
  patch,
  restartIce,
  SDPFRAG,
  sdpFragment,
  withoutCandidates,
} from '../helpers/ice-clients.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  h264Frames,
  makeH264Clip,
  sleep,
  WeriftPublisher,
  WhepTestViewer,
} from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
let orch: LocalOrchestrator;
let clip: Buffer;

beforeAll(async () => {
  orch = await startFreeOrchestrator(logger, ['passthrough'], { capacity: 8 });
  clip = await makeH264Clip({ seconds: 10 });
}, 60_000);

afterAll(async () => {
  await orch?.close();
});

/** POSTs a WHIP offer without candidates; the client keeps them for PATCH. */
async function publishWithoutCandidates(whipUrl: string) {
  const publisher = new WeriftPublisher();
  const offer = await publisher.createOffer();
  const response = await fetch(whipUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: withoutCandidates(offer),
  });
  if (response.status !== 201) {
    await publisher.close();
    throw new Error(`POST ${response.status}: ${await response.text()}`);
  }
  return {
    publisher,
    response,
    answer: await response.text(),
    resource: new URL(response.headers.get('location')!, whipUrl).toString(),
    etag: response.headers.get('etag')!,
    candidates: candidatesOf(offer),
    creds: iceCredentialsOf(offer),
  };
}

const networks: [string, () => Promise<{ network: PeerNetworkOptions; ports?: IcePorts }>][] = [
  ['a UDP port per peer', async () => ({ network: LOOPBACK_NETWORK })],
  [
    'the shared UDP and TCP ports',
    async () => {
      const ports = await IcePorts.open({
        udp: { host: '127.0.0.1', port: 0 },
        tcp: { host: '127.0.0.1', port: 0 },
      });
      return { network: { ...LOOPBACK_NETWORK, ports }, ports };
    },
  ],
];

describe.each(networks)('trickle ICE and ICE restart, %s', (_name, makeNetwork) => {
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  let ports: IcePorts | undefined;

  beforeAll(async () => {
    const net = await makeNetwork();
    ports = net.ports;
    gw = await startTestGateway({
      orchestrators: [orch.url],
      logger,
      network: net.network,
      limits: { ingestTimeoutMs: 4000 },
    });
  });

  afterAll(async () => {
    await gw?.close();
    await ports?.close();
  });

  it('connects on trickled candidates, and frames keep reaching a viewer across ICE restarts of publisher and viewer', async () => {
    const pub = await publishWithoutCandidates(gw.url('tr', 'whip?model=passthrough'));
    const { publisher, resource } = pub;
    const controller = new AbortController();
    let viewer: WhepTestViewer | undefined;
    try {
      expect(pub.etag).toMatch(/^"[^"]+"$/);
      expect(pub.response.headers.get('accept-patch')).toBe(SDPFRAG);
      // The client is not told the gateway's candidates: only the gateway's checks to the
      // trickled ones can connect.
      await publisher.pc.setRemoteDescription({ type: 'answer', sdp: withoutCandidates(pub.answer) });
      await sleep(1500);
      expect(publisher.pc.connectionState).not.toBe('connected');
      const trickled = await patch(resource, sdpFragment({ ...pub.creds, candidates: pub.candidates }), {
        'if-match': pub.etag,
      });
      expect(trickled.status).toBe(204);
      expect(trickled.headers.get('etag')).toBeNull();
      expect(await trickled.text()).toBe('');
      await waitFor(() => publisher.pc.connectionState === 'connected', 'the publisher to connect', 10_000);

      viewer = await WhepTestViewer.connect(gw.url('tr', 'whep'));
      const sending = publisher.send({ video: h264Frames(clip, 30), signal: controller.signal });
      await waitFor(() => viewer!.frames.length >= 30, 'frames before the restart', 15_000);

      // ICE restart of the publisher: new ufrag/pwd both ways, a new ETag, the stream stays.
      const serverUfrag = iceCredentialsOf(pub.answer).ufrag;
      const restart = await restartIce(publisher.pc, resource);
      expect(restart.response.status).toBe(200);
      expect(restart.response.headers.get('content-type')).toBe(SDPFRAG);
      expect(restart.etag).toMatch(/^"[^"]+"$/);
      expect(restart.etag).not.toBe(pub.etag);
      expect(restart.server.ufrag).toBeDefined();
      expect(restart.server.ufrag).not.toBe(serverUfrag);
      expect(restart.server.candidates).toBeGreaterThan(0);
      // Another restart right away is refused, and changes nothing.
      const again = sdpFragment({ ufrag: 'againUfrag', pwd: 'againPasswordagainPassword', candidates: [] });
      const tooSoon = await patch(resource, again, { 'if-match': '*' });
      expect(tooSoon.status).toBe(429);
      expect(((await tooSoon.json()) as { error: { code: string } }).error.code).toBe('TOO_MANY_RESTARTS');
      await restart.connected;
      const afterPublisherRestart = viewer.frames.length;
      await waitFor(
        () => viewer!.frames.length >= afterPublisherRestart + 45,
        'frames after the publisher restart',
        15_000,
      );
      // The old ICE session's ETag is stale now; the new one is current.
      const empty = sdpFragment({
        ufrag: iceCredentialsOf(pub.answer).ufrag,
        pwd: 'x'.repeat(22),
        candidates: [],
      });
      const noCreds = empty.replace(/^a=ice-(ufrag|pwd):.*\r\n/gm, '');
      expect((await patch(resource, noCreds, { 'if-match': pub.etag })).status).toBe(412);
      expect((await patch(resource, noCreds, { 'if-match': restart.etag! })).status).toBe(204);

      // ICE restart of the viewer: the same on the WHEP session URL.
      const viewerRestart = await restartIce(viewer.pc, viewer.resourceUrl!);
      expect(viewerRestart.response.status).toBe(200);
      await viewerRestart.connected;
      const afterViewerRestart = viewer.frames.length;
      await waitFor(
        () => viewer!.frames.length >= afterViewerRestart + 45,
        'frames after the viewer restart',
        15_000,
      );

      const status = await gw.status('tr');
      expect(status.state).toBe('live');
      expect(status.viewers).toBe(1);
      expect(status.endReason).toBeUndefined();
      if (ports) {
        // Both restarts re-registered their new ufrag; nothing else was left behind.
        expect(ports.peers).toBe(2);
        expect(ports.stats().udp).toMatchObject({ droppedBadIntegrity: 0 });
      }
      controller.abort();
      await sending;
    } finally {
      controller.abort();
      await viewer?.close();
      await fetch(resource, { method: 'DELETE' });
      await publisher.close();
    }
    if (ports) await waitFor(() => ports!.peers === 0, 'the shared ports to forget both peers', 5000);
  }, 60_000);
});

describe('PATCH refusals', () => {
  let gw: Awaited<ReturnType<typeof startTestGateway>>;

  beforeAll(async () => {
    gw = await startTestGateway({ orchestrators: [orch.url], logger, limits: { ingestTimeoutMs: 10_000 } });
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('answers each bad PATCH with the status RFC 9725 names, and the session survives them', async () => {
    // A session that has not connected yet (its client never learns anything).
    const pub = await publishWithoutCandidates(gw.url('bad', 'whip?model=passthrough'));
    const { resource, etag } = pub;
    const valid = sdpFragment({ ...pub.creds, candidates: [] });
    const error = async (res: Response) => ({
      status: res.status,
      ...((await res.json()) as { error: { code: string; message: string } }).error,
    });
    try {
      expect(
        await error(await patch(resource, valid, { 'content-type': 'text/plain', 'if-match': etag })),
      ).toMatchObject({
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      });
      expect(
        (await patch(resource, '{}', { 'content-type': 'application/json', 'if-match': etag })).status,
      ).toBe(415);
      expect(await error(await patch(resource, valid))).toMatchObject({
        status: 428,
        code: 'PRECONDITION_REQUIRED',
      });
      expect(await error(await patch(resource, valid, { 'if-match': '"not-the-etag"' }))).toMatchObject({
        status: 412,
        code: 'PRECONDITION_FAILED',
      });
      expect((await patch(resource, valid, { 'if-match': `W/${etag}` })).status).toBe(412);
      expect((await patch(resource, valid, { 'if-match': 'not-quoted' })).status).toBe(400);
      const malformed = await error(
        await patch(resource, `${valid}a=candidate:garbage\r\n`, { 'if-match': etag }),
      );
      expect(malformed).toMatchObject({ status: 400, code: 'BAD_SDPFRAG' });
      expect(malformed.message).toMatch(/^line 6: malformed a=candidate/);
      const pwdOnly = valid.replace(/a=ice-pwd:.*/, `a=ice-pwd:${'z'.repeat(24)}`);
      expect((await patch(resource, pwdOnly, { 'if-match': etag })).status).toBe(400);
      expect((await patch(resource, 'a=x\r\n'.repeat(5000), { 'if-match': etag })).status).toBe(413);
      // An ICE restart before the session ever connected cannot be done (and ends nothing).
      const restart = sdpFragment({ ufrag: 'newUfrag', pwd: 'newPasswordnewPassword', candidates: [] });
      expect(await error(await patch(resource, restart, { 'if-match': '*' }))).toMatchObject({
        status: 409,
        code: 'ICE_RESTART_NOT_POSSIBLE',
      });
      // Unknown session, unknown stream, unknown viewer.
      const unknown = resource.replace(/\/whip\/[^/]+$/, '/whip/0123456789abcdef01234567');
      expect(await error(await patch(unknown, valid, { 'if-match': '*' }))).toMatchObject({
        status: 404,
        code: 'NO_SUCH_SESSION',
      });
      expect((await patch(gw.url('nostream', 'whip/abc'), valid, { 'if-match': '*' })).status).toBe(404);
      expect((await patch(gw.url('bad', 'whep/abc'), valid, { 'if-match': '*' })).status).toBe(404);
      // None of that hurt the session: a good trickle is still taken.
      expect((await patch(resource, valid, { 'if-match': etag })).status).toBe(204);
      expect((await gw.status('bad')).state).toBe('starting');
      // DELETE ignores If-Match (RFC 9725 §4.3.1).
      expect((await fetch(resource, { method: 'DELETE', headers: { 'if-match': '"stale"' } })).status).toBe(
        200,
      );
    } finally {
      await pub.publisher.close();
    }
  }, 30_000);
});
