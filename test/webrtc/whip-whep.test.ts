// The test clients over real HTTP: WHIP publisher → IngestPeer → EgressPeer → WHEP viewer, RTP relayed
// unchanged, and the viewer's Annex-B decodes to exactly the clip's pictures.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkOffer, EgressPeer, IngestPeer, LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import {
  decodedFrameHashes,
  h264Frames,
  makeH264Clip,
  sleep,
  syntheticOpusFrames,
  udpSocketCount,
  WhepTestViewer,
  WhipTestPublisher,
  waitFor,
} from '../helpers/webrtc-clients.ts';

/** A one-stream WHIP/WHEP server relaying RTP as is (no reordering, seq and timestamps passed through). */
class RelayServer {
  readonly server: Server;
  ingest: IngestPeer | undefined;
  readonly viewers = new Map<string, EgressPeer>();
  #nextViewer = 1;

  constructor() {
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => {
        res.writeHead(500).end(err.message);
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    await this.ingest?.close();
    await Promise.all([...this.viewers.values()].map((v) => v.close()));
    await new Promise((resolve) => this.server.close(resolve));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method === 'POST' && (req.url === '/whip' || req.url === '/whep')) {
      const publish = req.url === '/whip';
      const check = checkOffer(body, publish ? 'publish' : 'view');
      if (!check.ok) {
        res.writeHead(check.status, { 'content-type': 'text/plain' }).end(check.reason);
        return;
      }
      let answer: string;
      let location: string;
      if (publish) {
        const ingest = await IngestPeer.create(body, LOOPBACK_NETWORK);
        this.ingest = ingest;
        ingest.onVideoRtp((payload, seq, timestamp, marker) => {
          for (const viewer of this.viewers.values()) viewer.sendVideo(payload, seq, timestamp, marker);
        });
        ingest.onAudioRtp((payload, seq, timestamp, marker) => {
          for (const viewer of this.viewers.values()) viewer.sendAudio(payload, seq, timestamp, marker);
        });
        answer = ingest.answerSdp;
        location = '/whip/stream';
      } else {
        const id = String(this.#nextViewer++);
        const viewer = await EgressPeer.create(body, LOOPBACK_NETWORK);
        viewer.onKeyframeRequest(() => this.ingest?.requestKeyframe());
        this.viewers.set(id, viewer);
        answer = viewer.answerSdp;
        location = `/whep/${id}`;
      }
      res.writeHead(201, { 'content-type': 'application/sdp', location }).end(answer);
      return;
    }
    if (req.method === 'DELETE' && req.url === '/whip/stream' && this.ingest) {
      await this.ingest.close();
      this.ingest = undefined;
      res.writeHead(200).end();
      return;
    }
    const viewerId = req.url?.startsWith('/whep/') ? req.url.slice('/whep/'.length) : undefined;
    const viewer = viewerId ? this.viewers.get(viewerId) : undefined;
    if (req.method === 'DELETE' && viewerId && viewer) {
      await viewer.close();
      this.viewers.delete(viewerId);
      res.writeHead(200).end();
      return;
    }
    res.writeHead(404).end();
  }
}

const relay = new RelayServer();
let baseUrl: string;
let clip: Buffer;

beforeAll(async () => {
  [baseUrl, clip] = await Promise.all([relay.listen(), makeH264Clip({ seconds: 2 })]);
});

afterAll(() => relay.close());

it('WHIP publisher → relay → WHEP viewer: decoded pictures identical to the clip', async () => {
  const before = udpSocketCount();
  const viewer = await WhepTestViewer.connect(`${baseUrl}/whep`);
  const publisher = await WhipTestPublisher.connect(`${baseUrl}/whip`);
  expect(publisher.resourceUrl).toBe(`${baseUrl}/whip/stream`);
  expect(viewer.resourceUrl).toBe(`${baseUrl}/whep/1`);

  const video = h264Frames(clip, 30);
  const sent = await publisher.send({ video, audio: syntheticOpusFrames(100) });
  expect(sent).toMatchObject({ videoFrames: 60, audioFrames: 100 });
  await waitFor(() => viewer.frames.length >= video.length, 2000).catch(() => {});
  expect(viewer.frames.length).toBeGreaterThanOrEqual(Math.floor(video.length * 0.9));
  expect(viewer.audioPackets.length).toBeGreaterThanOrEqual(90);

  const [expected, received] = await Promise.all([
    decodedFrameHashes(clip),
    decodedFrameHashes(viewer.annexB()),
  ]);
  expect(expected).toHaveLength(60);
  expect(received).toEqual(expected.slice(0, received.length));
  expect(received.length).toBeGreaterThanOrEqual(54);

  // A viewer's PLI travels back to the publisher.
  let keyframeRequests = 0;
  publisher.onKeyframeRequest(() => keyframeRequests++);
  await viewer.requestKeyframe();
  await waitFor(() => keyframeRequests === 1, 2000, 'PLI relayed to the publisher');

  // DELETE on both resources closes the server's peers.
  await publisher.close();
  await viewer.close();
  expect(relay.ingest).toBeUndefined();
  expect(relay.viewers.size).toBe(0);
  await sleep(1);
  expect(udpSocketCount()).toBe(before);
});

it('answers 406 to a WHIP offer with no codec it can take (H.265 only), with the reason', async () => {
  const offer = readFileSync(
    new URL('./fixtures/chrome-vp8-only-offer.sdp', import.meta.url),
    'utf8',
  ).replaceAll(/ VP[89]\/90000/g, ' H265/90000');
  const response = await fetch(`${baseUrl}/whip`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: offer,
  });
  expect(response.status).toBe(406);
  expect(await response.text()).toContain(
    'offered H265; accepted H264 (packetization-mode=1), VP8, VP9, AV1',
  );
});
