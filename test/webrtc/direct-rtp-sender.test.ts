// The egress's own SRTP send path (src/webrtc/direct-rtp-sender.ts) against werift viewers on
// 127.0.0.1: werift's receiver authenticates every SRTP packet and drops the ones that fail, so
// frames that arrive and decode prove the keys, IVs, rollover counter and tags are right, for both
// SRTP profiles werift negotiates. Not timed.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DirectRtpSender } from '../../src/webrtc/direct-rtp-sender.ts';
import { EgressPeer, IcePorts, LOOPBACK_NETWORK, type PeerNetworkOptions } from '../../src/webrtc/index.ts';
import { udpBatch } from '../../src/webrtc/udp-send.ts';
import {
  decodedFrameHashes,
  h264Frames,
  makeH264Clip,
  type RtpFrame,
  sleep,
  WeriftViewer,
  waitFor,
} from '../helpers/webrtc-clients.ts';

let clip: Buffer;
let video: RtpFrame[];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  clip = await makeH264Clip({ seconds: 1 });
  video = h264Frames(clip, 30);
});

afterEach(async () => {
  delete process.env.LPGW_EGRESS_SEND_PATH;
  delete process.env.LPGW_EGRESS_SRTP;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** werift's SRTP profile numbers: 1 AES128_CM_HMAC_SHA1_80, 7 AEAD_AES_128_GCM. */
async function connect(srtpProfiles?: number[], network: PeerNetworkOptions = LOOPBACK_NETWORK) {
  const viewer = new WeriftViewer({ audio: false });
  cleanups.push(() => viewer.close());
  const offer = await viewer.createOffer();
  if (srtpProfiles) {
    // werift offers both profiles to everyone; the DTLS handshake takes what both sides list.
    for (const transceiver of viewer.pc.getTransceivers()) {
      (transceiver.receiver.dtlsTransport as unknown as { srtpProfiles: number[] }).srtpProfiles =
        srtpProfiles;
    }
  }
  const egress = await EgressPeer.create(offer, network);
  cleanups.push(() => egress.close());
  await viewer.applyAnswer(egress.answerSdp);
  await waitFor(() => egress.canSend, 15_000, 'egress DTLS up');
  return { viewer, egress };
}

async function sendClip(egress: EgressPeer, firstSeq: number): Promise<number> {
  let seq = firstSeq;
  let packets = 0;
  for (const frame of video) {
    for (const { payload, marker } of frame.payloads) {
      expect(egress.sendVideo(payload, seq, 90_000 + frame.timestamp, marker)).toBe(true);
      seq = (seq + 1) & 0xffff;
      packets++;
    }
    await sleep(5);
  }
  return packets;
}

/** As the output hub sends: a frame's packets in one call (batched into one system call). */
async function sendClipByFrame(egress: EgressPeer, firstSeq: number): Promise<number> {
  let seq = firstSeq;
  let packets = 0;
  for (const frame of video) {
    expect(egress.sendVideoFrame(frame.payloads, seq, 90_000 + frame.timestamp)).toBe(true);
    seq = (seq + frame.payloads.length) & 0xffff;
    packets += frame.payloads.length;
    await sleep(5);
  }
  return packets;
}

/** The SRTP profile the viewer's DTLS handshake settled on. */
function negotiatedProfile(viewer: WeriftViewer): number | undefined {
  const [transceiver] = viewer.pc.getTransceivers();
  const dtls = transceiver.receiver.dtlsTransport as unknown as {
    srtp?: { localContext?: { profile: number } };
  };
  return dtls.srtp?.localContext?.profile;
}

async function expectDecodesLikeTheClip(viewer: WeriftViewer, packets: number) {
  await waitFor(() => viewer.videoPackets.length >= packets, 10_000, `${packets} packets at the viewer`);
  expect(viewer.frames).toHaveLength(video.length);
  expect(viewer.framesDropped).toBe(0);
  expect(await decodedFrameHashes(viewer.annexB())).toEqual(await decodedFrameHashes(clip));
}

describe('DirectRtpSender (EgressPeer send path)', () => {
  it.each([
    ['AEAD_AES_128_GCM', [7]],
    ['AES128_CM_HMAC_SHA1_80', [1]],
  ])('%s: a werift viewer authenticates every packet and decodes every frame', async (_name, profiles) => {
    const { viewer, egress } = await connect(profiles);
    // Starting just below the wrap: the second half of the clip needs rollover counter 1.
    const packets = await sendClip(egress, 65_500);
    expect(egress.videoSendPath).toBe('direct');
    expect(negotiatedProfile(viewer)).toBe(profiles[0]);
    await expectDecodesLikeTheClip(viewer, packets);
    expect(egress.stats().video).toMatchObject({ packetsSent: packets, packetsDropped: 0 });
  });

  it.each([
    ['AEAD_AES_128_GCM', [7]],
    ['AES128_CM_HMAC_SHA1_80', [1]],
  ])(
    '%s: frames sent a frame per system call arrive authenticated and decode like the clip',
    async (_name, profiles) => {
      const { viewer, egress } = await connect(profiles);
      const before = { calls: udpBatch.calls, packets: udpBatch.packets };
      const packets = await sendClipByFrame(egress, 65_500);
      expect(egress.videoSendPath).toBe('direct');
      await expectDecodesLikeTheClip(viewer, packets);
      expect(egress.stats().video).toMatchObject({ packetsSent: packets, packetsDropped: 0 });
      // Every frame of more than one packet went as a batch (one packet alone goes the plain way).
      const batched = video.filter((f) => f.payloads.length > 1);
      expect(udpBatch.calls - before.calls).toBe(batched.length);
      expect(udpBatch.packets - before.packets).toBe(batched.reduce((n, f) => n + f.payloads.length, 0));
      expect(udpBatch.errors).toBe(0);
    },
  );

  it('a frame of mixed packet sizes (one batch, several segmented runs) arrives packet for packet', async () => {
    const { viewer, egress } = await connect([1]);
    // Sizes as a packetizer makes them (full fragments, a shorter last), plus ones that break runs.
    const sizes = [20, 30, ...new Array(40).fill(1100), 700, 1100, 1100, 5, 900, 901];
    const payloads = sizes.map((size, i) => ({
      payload: Buffer.alloc(size, i + 1),
      marker: i === sizes.length - 1,
    }));
    expect(egress.sendVideoFrame(payloads, 65_520, 1234)).toBe(true);
    await viewer.waitForVideoPackets(sizes.length, 10_000);
    const got = viewer.videoPackets;
    expect(got.map((p) => p.seq)).toEqual(sizes.map((_, i) => (65_520 + i) & 0xffff));
    expect(got.map((p) => p.payload.length)).toEqual(sizes);
    expect(got.every((p, i) => p.payload.every((byte) => byte === i + 1) && p.timestamp === 1234)).toBe(true);
    expect(got.map((p) => p.marker)).toEqual(sizes.map((_, i) => i === sizes.length - 1));
  });

  it('on the shared UDP port (-liveWebrtcUdpAddr), frames go a batch per frame on its socket and decode like the clip', async () => {
    const ports = await IcePorts.open({ udp: { host: '127.0.0.1', port: 0 } });
    cleanups.push(() => ports.close());
    const { viewer, egress } = await connect(undefined, { ...LOOPBACK_NETWORK, ports });
    const calls = udpBatch.calls;
    const packets = await sendClipByFrame(egress, 65_500);
    expect(egress.videoSendPath).toBe('direct');
    await expectDecodesLikeTheClip(viewer, packets);
    expect(udpBatch.calls - calls).toBe(video.filter((f) => f.payloads.length > 1).length);
  });

  it('LPGW_UDP_BATCH=0: frames go packet by packet, and arrive the same', async () => {
    process.env.LPGW_UDP_BATCH = '0';
    try {
      const { viewer, egress } = await connect();
      const calls = udpBatch.calls;
      const packets = await sendClipByFrame(egress, 10);
      await expectDecodesLikeTheClip(viewer, packets);
      expect(udpBatch.calls).toBe(calls);
    } finally {
      delete process.env.LPGW_UDP_BATCH;
    }
  });

  it('answers a NACK for a packet that went in a batch', async () => {
    const { viewer, egress } = await connect();
    const packets = await sendClipByFrame(egress, 200);
    await viewer.waitForVideoPackets(packets, 10_000);
    await viewer.sendNack([205]);
    await waitFor(
      () => viewer.videoPackets.filter((p) => p.seq === 205).length === 2,
      5000,
      'the retransmission',
    );
    const [first, again] = viewer.videoPackets.filter((p) => p.seq === 205);
    expect(again.payload.equals(first.payload)).toBe(true);
    expect(egress.stats().video.retransmittedPackets).toBe(1);
  });

  it('answers a NACK from its own history, with the rollover counter of the original packet', async () => {
    const { viewer, egress } = await connect();
    const packets = await sendClip(egress, 65_530);
    await viewer.waitForVideoPackets(packets, 10_000);
    // One sent before the wrap (ROC 0) and one after (ROC 1).
    for (const seq of [65_532, 3]) await viewer.sendNack([seq]);
    await waitFor(
      () => [65_532, 3].every((seq) => viewer.videoPackets.filter((p) => p.seq === seq).length === 2),
      5000,
      'both retransmissions',
    );
    expect(egress.videoSendPath).toBe('direct');
    expect(egress.stats().video).toMatchObject({ nacksReceived: 2, retransmittedPackets: 2 });
  });

  it('feeds werift sender reports, so the round-trip time is measured', async () => {
    const { viewer, egress } = await connect();
    await sendClip(egress, 100);
    expect(egress.videoSendPath).toBe('direct');
    await waitFor(
      () => egress.stats().video.roundTripTimeSeconds !== undefined,
      15_000,
      'an RTT from a receiver report',
    );
    expect(egress.stats().video.roundTripTimeSeconds).toBeGreaterThanOrEqual(0);
    expect(viewer.frames.length).toBe(video.length);
  });

  it('LPGW_EGRESS_SEND_PATH=werift keeps werift’s RTCRtpSender path, which delivers the same', async () => {
    process.env.LPGW_EGRESS_SEND_PATH = 'werift';
    const { viewer, egress } = await connect();
    const packets = await sendClip(egress, 1000);
    expect(egress.videoSendPath).toBe('werift');
    await expectDecodesLikeTheClip(viewer, packets);
  });
});

describe('SRTP profile of egress peers', () => {
  /** werift's DTLS transport of the viewer's first transceiver. */
  const viewerDtls = (viewer: WeriftViewer) =>
    viewer.pc.getTransceivers()[0].receiver.dtlsTransport as unknown as {
      role: string;
      srtpProfiles: number[];
    };

  it('a viewer that offers both profiles (as every WebRTC endpoint does) gets AES_CM_128_HMAC_SHA1_80, with us as DTLS server', async () => {
    const { viewer, egress } = await connect();
    expect(egress.answerSdp).toMatch(/^a=setup:passive\r?$/m);
    expect(egress.answerSdp).not.toMatch(/^a=setup:active/m);
    expect(negotiatedProfile(viewer)).toBe(1);
    expect(egress.srtpProfile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(viewerDtls(viewer).role).toBe('client');
    // werift's module-wide list (the viewer's, and every ingest peer's) still prefers GCM.
    expect(viewerDtls(viewer).srtpProfiles).toEqual([7, 1]);
    const packets = await sendClip(egress, 65_500);
    expect(egress.videoSendPath).toBe('direct');
    await expectDecodesLikeTheClip(viewer, packets);
  });

  it('a viewer that offers only GCM still gets GCM', async () => {
    const { viewer, egress } = await connect([7]);
    expect(egress.answerSdp).toMatch(/^a=setup:passive/m);
    expect(negotiatedProfile(viewer)).toBe(7);
    const packets = await sendClip(egress, 10);
    await expectDecodesLikeTheClip(viewer, packets);
  });

  it('LPGW_EGRESS_SRTP=gcm keeps werift’s choice: we answer as DTLS client and the viewer picks GCM', async () => {
    process.env.LPGW_EGRESS_SRTP = 'gcm';
    const { viewer, egress } = await connect();
    expect(egress.answerSdp).toMatch(/^a=setup:active/m);
    expect(negotiatedProfile(viewer)).toBe(7);
    expect(egress.srtpProfile).toBe('AEAD_AES_128_GCM');
    expect(viewerDtls(viewer).role).toBe('server');
    const packets = await sendClip(egress, 10);
    await expectDecodesLikeTheClip(viewer, packets);
  });
});

describe('DirectRtpSender.create', () => {
  const sender = (extra: object) =>
    ({
      ssrc: 1,
      mid: '0',
      headerExtensions: [{ id: 1, uri: 'urn:ietf:params:rtp-hdrext:sdes:mid' }],
      runRtcp: async () => {},
      ...extra,
    }) as unknown as Parameters<typeof DirectRtpSender.create>[0];

  it('takes a sender with only the mid extension', () => {
    expect(DirectRtpSender.create(sender({}), 96)).toBeInstanceOf(DirectRtpSender);
  });

  it.each([
    [
      'another header extension',
      { headerExtensions: [{ id: 3, uri: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time' }] },
    ],
    ['RED', { redRedundantPayloadType: 63 }],
    ['a werift without runRtcp (its sender reports)', { runRtcp: undefined }],
    ['a mid too long for a one-byte extension', { mid: 'x'.repeat(17) }],
  ])('leaves %s to werift', (_what, extra) => {
    expect(DirectRtpSender.create(sender(extra), 96)).toBeUndefined();
  });
});
