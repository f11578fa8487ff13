// EgressPeer to a werift viewer, offer/answer exchanged in-process, 127.0.0.1 only.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  EgressPeer,
  type EgressPeerOptions,
  LOOPBACK_NETWORK,
  type PeerState,
} from '../../src/webrtc/index.ts';
import {
  h264Frames,
  makeH264Clip,
  type RtpFrame,
  sleep,
  syntheticOpusFrames,
  udpSocketCount,
  WeriftViewer,
  waitFor,
} from '../helpers/webrtc-clients.ts';

interface Sent {
  seq: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

let video: RtpFrame[];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  video = h264Frames(await makeH264Clip({ seconds: 1 }), 30);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await sleep(1);
});

async function connect(
  opts: EgressPeerOptions = {},
  viewerOpts: ConstructorParameters<typeof WeriftViewer>[0] = {},
) {
  const viewer = new WeriftViewer(viewerOpts);
  cleanups.push(() => viewer.close());
  const egress = await EgressPeer.create(await viewer.createOffer(), { ...LOOPBACK_NETWORK, ...opts });
  cleanups.push(() => egress.close());
  const states: PeerState[] = [];
  egress.onStateChange((state) => states.push(state));
  await viewer.applyAnswer(egress.answerSdp);
  await waitFor(() => egress.state === 'connected', 5000, 'egress connected');
  return { viewer, egress, states };
}

/** Sends frames with the caller's own seq/timestamps, 5 ms apart. */
async function sendFrames(egress: EgressPeer, frames: RtpFrame[], firstSeq: number, firstTimestamp: number) {
  const sent: Sent[] = [];
  let seq = firstSeq;
  for (const frame of frames) {
    const timestamp = (firstTimestamp + frame.timestamp) >>> 0;
    for (const { payload, marker } of frame.payloads) {
      egress.sendVideo(payload, seq, timestamp, marker);
      sent.push({ seq, timestamp, marker, payload });
      seq = (seq + 1) & 0xffff;
    }
    await sleep(5);
  }
  return sent;
}

describe('EgressPeer', () => {
  it('delivers sendVideo/sendAudio payloads, markers, seq and timestamps unchanged', async () => {
    const { viewer, egress, states } = await connect();
    expect(states).toEqual(['connected']);

    const sent = await sendFrames(egress, video, 65520, 4_000_000_000);
    const audioFrames = syntheticOpusFrames(20);
    audioFrames.forEach((frame, i) => {
      egress.sendAudio(frame.payloads[0].payload, 700 + i, 123456 + frame.timestamp, false);
    });
    await waitFor(
      () => viewer.videoPackets.length >= sent.length && viewer.audioPackets.length >= audioFrames.length,
      3000,
      'all packets at the viewer',
    );

    const received = viewer.videoPackets;
    expect(received.map((p) => p.seq)).toEqual(sent.map((p) => p.seq)); // werift keeps our seq, even across the wrap
    received.forEach((packet, i) => {
      expect(packet.timestamp).toBe(sent[i].timestamp);
      expect(packet.marker).toBe(sent[i].marker);
      expect(packet.payload.equals(Buffer.from(sent[i].payload))).toBe(true);
      expect(packet.ssrc).toBe(egress.videoSsrc);
      expect(packet.payloadType).toBe(egress.videoCodec.payloadType);
    });
    expect(viewer.frames).toHaveLength(video.length);
    expect(viewer.framesDropped).toBe(0);
    expect(viewer.audioPackets.map((p) => p.seq)).toEqual(audioFrames.map((_, i) => 700 + i));
    expect(viewer.audioPackets[0]).toMatchObject({
      ssrc: egress.audioSsrc,
      payloadType: egress.audioCodec?.payloadType,
    });

    const stats = egress.stats();
    expect(stats.video).toMatchObject({
      packetsSent: sent.length,
      packetsDropped: 0,
      ssrc: egress.videoSsrc,
    });
    expect(stats.audio?.packetsSent).toBe(audioFrames.length);
  });

  it('reports PLI and FIR from the viewer through onKeyframeRequest', async () => {
    const { viewer, egress } = await connect({}, { audio: false });
    const requests: string[] = [];
    egress.onKeyframeRequest((kind) => requests.push(kind));
    await sendFrames(egress, video.slice(0, 2), 1, 0);
    await viewer.waitForVideoPackets(1);
    await viewer.requestKeyframe();
    await waitFor(() => requests.length === 1, 2000, 'PLI');
    await viewer.sendFir();
    await waitFor(() => requests.length === 2, 2000, 'FIR');
    expect(requests).toEqual(['pli', 'fir']);
    expect(egress.stats().video).toMatchObject({ plisReceived: 1, firsReceived: 1 });
  });

  it('retransmits a NACKed packet from werift history, same seq', async () => {
    const { viewer, egress } = await connect({}, { audio: false });
    const sent = await sendFrames(egress, video.slice(0, 5), 30000, 0);
    await viewer.waitForVideoPackets(sent.length);
    const target = sent[2].seq;
    await viewer.sendNack([target]);
    await waitFor(
      () => viewer.videoPackets.filter((p) => p.seq === target).length === 2,
      2000,
      'retransmission',
    );
    const copies = viewer.videoPackets.filter((p) => p.seq === target);
    expect(copies[1].payload.equals(copies[0].payload)).toBe(true);
    expect(egress.stats().video).toMatchObject({ nacksReceived: 1, retransmittedPackets: 1 });
  });

  it('drops (and counts) packets sent before the viewer is connected', async () => {
    const viewer = new WeriftViewer({ audio: false });
    cleanups.push(() => viewer.close());
    const egress = await EgressPeer.create(await viewer.createOffer(), LOOPBACK_NETWORK);
    cleanups.push(() => egress.close());
    egress.sendVideo(Buffer.from([0x65, 1]), 1, 0, true);
    expect(egress.stats().video.packetsDropped).toBe(1);
    expect(egress.stats().audio).toBeUndefined();
  });

  it('close() releases every UDP socket', async () => {
    const before = udpSocketCount();
    const { viewer, egress, states } = await connect({}, { audio: false });
    expect(udpSocketCount()).toBe(before + 2);
    await egress.close();
    expect(udpSocketCount()).toBe(before + 1);
    expect(states).toEqual(['connected', 'closed']);
    await viewer.close();
    await sleep(1);
    expect(udpSocketCount()).toBe(before);
  });

  it("reports 'failed' when the viewer vanishes", async () => {
    // A receiving werift viewer sends RTCP every 0.5–1.5 s; browsers send more, plus STUN consent.
    const { viewer, egress, states } = await connect({ inactivityTimeoutMs: 2000 }, { audio: false });
    const clock = { seq: 0, timestamp: 0 };
    const stream = async (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end && egress.state === 'connected'; ) {
        for (const { payload, marker } of video[clock.seq % video.length].payloads) {
          egress.sendVideo(payload, clock.seq++, clock.timestamp, marker);
        }
        clock.timestamp += 3000;
        await sleep(33);
      }
    };
    await stream(2500);
    expect(states).toEqual(['connected']);
    const vanishedAt = Date.now();
    await Promise.all(viewer.pc.iceTransports.map((t) => t.connection.close()));
    await stream(4000); // keeps sending until the peer gives up
    expect(egress.state).toBe('failed');
    expect(Date.now() - vanishedAt).toBeLessThan(3000);
    expect(egress.lastInboundAt).toBeLessThanOrEqual(vanishedAt);
  });
});
