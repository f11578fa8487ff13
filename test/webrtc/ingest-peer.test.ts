// IngestPeer against a werift publisher, offer/answer exchanged in-process, 127.0.0.1 only.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  IngestPeer,
  type IngestPeerOptions,
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
  WeriftPublisher,
  waitFor,
} from '../helpers/webrtc-clients.ts';

interface Received {
  seq: number;
  timestamp: number;
  marker: boolean;
  payload: Buffer;
}

let video: RtpFrame[];
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  video = h264Frames(await makeH264Clip({ seconds: 2 }), 30);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await sleep(1); // let libuv drop closed socket handles before the next socket count
});

async function connect(
  publisherOpts: ConstructorParameters<typeof WeriftPublisher>[0] = {},
  opts: IngestPeerOptions = {},
) {
  const publisher = new WeriftPublisher(publisherOpts);
  cleanups.push(() => publisher.close());
  const ingest = await IngestPeer.create(await publisher.createOffer(), { ...LOOPBACK_NETWORK, ...opts });
  cleanups.push(() => ingest.close());
  const states: PeerState[] = [];
  ingest.onStateChange((state) => states.push(state));
  const videoIn: Received[] = [];
  const audioIn: Received[] = [];
  ingest.onVideoRtp((payload, seq, timestamp, marker) => {
    videoIn.push({ payload: Buffer.from(payload), seq, timestamp, marker });
  });
  ingest.onAudioRtp((payload, seq, timestamp, marker) => {
    audioIn.push({ payload: Buffer.from(payload), seq, timestamp, marker });
  });
  await publisher.applyAnswer(ingest.answerSdp);
  await waitFor(() => ingest.state === 'connected', 5000, 'ingest connected');
  return { publisher, ingest, states, videoIn, audioIn };
}

describe('IngestPeer', () => {
  it('receives real H.264 and Opus RTP byte-identical, across a sequence wrap', async () => {
    // 65500: the clip's ~100 video packets cross 65535 → 0.
    const { publisher, ingest, states, videoIn, audioIn } = await connect({ firstSeq: 65500 });
    expect(states).toEqual(['connected']);
    ingest.requestKeyframe(); // no video yet: no-op
    expect(ingest.stats().video.plisSent).toBe(0);

    const sentStats = await publisher.send({ video, audio: syntheticOpusFrames(100) });
    const sentVideo = publisher.sent.filter((p) => p.kind === 'video');
    const sentAudio = publisher.sent.filter((p) => p.kind === 'audio');
    await waitFor(() => videoIn.length >= sentVideo.length && audioIn.length >= sentAudio.length, 2000).catch(
      () => {},
    );

    expect(sentStats.videoFrames).toBe(video.length);
    expect(videoIn.length).toBeGreaterThanOrEqual(Math.ceil(sentVideo.length * 0.9));
    expect(audioIn.length).toBeGreaterThanOrEqual(Math.ceil(sentAudio.length * 0.9));
    expect(sentVideo.some((p) => p.seq === 0)).toBe(true);
    const bySeq = new Map(sentVideo.map((p) => [p.seq, p]));
    for (const got of videoIn) {
      const sent = bySeq.get(got.seq);
      expect(sent, `seq ${got.seq}`).toBeDefined();
      expect(got.timestamp).toBe(sent?.timestamp);
      expect(got.marker).toBe(sent?.marker);
      expect(got.payload.equals(Buffer.from(sent?.payload ?? []))).toBe(true);
    }
    const audioBySeq = new Map(sentAudio.map((p) => [p.seq, p]));
    for (const got of audioIn) {
      expect(got.payload.equals(Buffer.from(audioBySeq.get(got.seq)?.payload ?? []))).toBe(true);
    }

    const stats = ingest.stats();
    expect(stats.video.packetsReceived).toBe(videoIn.length);
    expect(stats.video.ssrc).toBe(publisher.videoSsrc);
    expect(stats.video.packetsLost).toBe(0);
    expect(stats.video.nacksSent).toBe(0);
    expect(stats.audio.packetsReceived).toBe(audioIn.length);
    expect(ingest.lastPacketAt).toBeGreaterThan(Date.now() - 2000);
    // The publisher was asked for AES-CM, and what it sent was decrypted by our path, not werift's.
    expect(ingest.srtpProfile).toBe('AES_CM_128_HMAC_SHA1_80');
    expect(ingest.stats().srtp.decryptedBy).not.toBeNull();

    // PLI from requestKeyframe() reaches the publisher.
    let keyframeRequests = 0;
    publisher.onKeyframeRequest(() => keyframeRequests++);
    ingest.requestKeyframe();
    await waitFor(() => keyframeRequests === 1, 2000, 'PLI at publisher');
    expect(ingest.stats().video.plisSent).toBe(1);
  });

  it('LPGW_INGEST_SRTP=gcm leaves the profile, the DTLS role and the decryption to werift', async () => {
    process.env.LPGW_INGEST_SRTP = 'gcm';
    try {
      const { publisher, ingest, videoIn } = await connect();
      await publisher.send({ video: video.slice(0, 20) });
      await waitFor(() => videoIn.length > 0, 2000, 'video');
      expect(ingest.srtpProfile).toBe('AEAD_AES_128_GCM');
      expect(ingest.stats().srtp.decryptedBy).toBeNull();
      const sent = new Map(publisher.sent.map((p) => [p.seq, p]));
      for (const got of videoIn)
        expect(got.payload.equals(Buffer.from(sent.get(got.seq)?.payload ?? []))).toBe(true);
    } finally {
      delete process.env.LPGW_INGEST_SRTP;
    }
  });

  it('negotiates and receives a high-profile (640c1f) offer', async () => {
    const { publisher, ingest, videoIn } = await connect({ h264ProfileLevelId: '640c1f', audio: false });
    expect(ingest.videoCodecs[0].fmtp).toContain('profile-level-id=640c1f');
    expect(ingest.audioCodec).toBeUndefined();
    await publisher.send({ video: video.slice(0, 10) });
    const sent = publisher.sent.length;
    await waitFor(() => videoIn.length === sent, 2000, 'all packets');
  });

  it('sends NACKs for missing packets, also across 65535 → 0 (werift 0.24 misses that one)', async () => {
    const { publisher, ingest } = await connect({ firstSeq: 65530 }, { nack: { retryIntervalMs: 20 } });
    // Index 5 is seq 65535; index 25 comes after the wrap.
    await publisher.send({ video: video.slice(0, 20), dropVideoPackets: new Set([5, 25]) });
    const dropped = [65535, (65530 + 25) & 0xffff];
    await waitFor(
      () => dropped.every((seq) => publisher.stats().nackedSeqs.includes(seq)),
      2000,
      'NACKs for dropped packets',
    );
    const stats = ingest.stats();
    expect(stats.video.nacksSent).toBeGreaterThanOrEqual(2);
    expect(stats.video.packetsLost).toBe(2);
    expect(new Set(publisher.stats().nackedSeqs)).toEqual(new Set(dropped));
  });

  it('close() releases every UDP socket', async () => {
    const before = udpSocketCount();
    const { publisher, ingest } = await connect({ audio: false });
    await publisher.send({ video: video.slice(0, 5), realtime: false });
    // One bundled ICE transport on each side, on 127.0.0.1 only.
    expect(udpSocketCount()).toBe(before + 2);
    await ingest.close();
    expect(ingest.state).toBe('closed');
    expect(udpSocketCount()).toBe(before + 1);
    await publisher.close();
    await sleep(1); // werift's own close() resolves just before libuv drops the handle
    expect(udpSocketCount()).toBe(before);
    await ingest.close(); // idempotent
  });

  it("reports 'failed' when the publisher vanishes (no DTLS close, no consent replies)", async () => {
    const { publisher, ingest, states } = await connect({ audio: false }, { inactivityTimeoutMs: 500 });
    // Alive: 1 s of media keeps it connected although the timeout is shorter.
    await publisher.send({ video: video.slice(0, 30) });
    expect(states).toEqual(['connected']);
    expect(ingest.lastPacketAt).toBeGreaterThan(Date.now() - 200);
    // Closing the ICE sockets directly is a crash as seen from the network: nothing more is sent.
    const vanishedAt = Date.now();
    await Promise.all(publisher.pc.iceTransports.map((t) => t.connection.close()));
    // What was already on its way (in the kernel, both ends in this process) still lands.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const lastPacketAt = ingest.lastPacketAt;
    await waitFor(() => ingest.state === 'failed', 3000, "'failed'");
    expect(Date.now() - vanishedAt).toBeLessThan(1500);
    expect(states).toEqual(['connected', 'failed']);
    expect(ingest.lastPacketAt).toBe(lastPacketAt);
    await ingest.close();
    expect(states).toEqual(['connected', 'failed', 'closed']);
  });

  it("reports 'failed' when the publisher never connects", async () => {
    const publisher = new WeriftPublisher({ audio: false });
    cleanups.push(() => publisher.close());
    const ingest = await IngestPeer.create(await publisher.createOffer(), {
      ...LOOPBACK_NETWORK,
      connectTimeoutMs: 300,
    });
    cleanups.push(() => ingest.close());
    await waitFor(() => ingest.state === 'failed', 2000, "'failed'");
  });
});
