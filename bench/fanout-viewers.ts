// A process holding many light WHEP viewers for bench:fanout, driven over IPC by bench/fanout.ts.
// Each viewer is a bare werift peer (video only, recvonly) that counts completed frames (RTP
// packets with the marker bit). Kept apart from the gateway so the gateway's CPU is measured alone.
//
// Full viewers (FANOUT_VIEWERS=full): werift's receiver decrypts and authenticates every SRTP packet
// and drops the ones that fail, so a frame counted is a frame that arrived intact; about 35 µs of
// CPU per packet, so on two cores ~170 viewers take all the CPU the gateway does not.
// Sampled viewers (the default): after DTLS, each viewer reads its socket itself and counts frames
// from the RTP headers (clear text in SRTP); every 16th packet still goes through werift's receiver,
// which must authenticate it (`verified`): a broken SRTP shows as verified 0. Their receivers' NACK
// generator is switched off, so the sampling gaps do not turn into retransmissions. STUN, DTLS and
// RTCP all go to werift.
//
// Messages in:  { add: number, url: string }  → { added: number, failed: string[] }
//               { report: true }              → { frames: number[], sampled: number, verified: number }
//               { close: true }               → closes every peer, then exits
import { RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI } from 'werift';
import { LOOPBACK_NETWORK } from '../src/webrtc/index.ts';
import { weriftNetworkConfig } from '../src/webrtc/network.ts';

interface Viewer {
  pc: RTCPeerConnection;
  frames: number;
  /** RTP packets handed to werift's receiver / that it authenticated and decrypted. */
  sampled: number;
  verified: number;
}

const viewers: Viewer[] = [];
const SAMPLED = process.env.FANOUT_VIEWERS !== 'full';
/** Sampled viewers: one RTP packet in this many goes through werift. */
const SAMPLE_EVERY = 16;

/** The parts of werift's private state a sampled viewer reads (werift 0.24). */
interface WeriftTransportInternals {
  receiver: { nack: { addPacket: (packet: unknown) => void } };
  dtlsTransport: {
    iceTransport: {
      connection: {
        nominated?: { protocol: { transport?: { onData: (data: Buffer, addr: [string, number]) => void } } };
      };
    };
  };
}

/** From now on reads RTP headers itself and hands werift only a sample (see the top). */
function sampleRtp(viewer: Viewer, transceiver: unknown): void {
  const transport = (transceiver as WeriftTransportInternals).dtlsTransport.iceTransport.connection.nominated
    ?.protocol.transport;
  if (!transport || typeof transport.onData !== 'function') throw new Error('no UDP transport to sample');
  const werift = transport.onData;
  // werift would NACK every sampling gap (nack is negotiated because the gateway's answer has it).
  (transceiver as WeriftTransportInternals).receiver.nack.addPacket = () => {};
  let n = 0;
  transport.onData = (data, addr) => {
    // RTP: version 2, and not an RTCP packet type (RFC 5761: 192–223 in the second byte).
    if (data.length >= 12 && data[0]! >> 6 === 2 && (data[1]! < 192 || data[1]! > 223)) {
      if (data[1]! & 0x80) viewer.frames++;
      if (++n % SAMPLE_EVERY !== 0) return;
      viewer.sampled++;
    }
    werift(data, addr);
  };
}

function newPeer(): RTCPeerConnection {
  return new RTCPeerConnection({
    ...weriftNetworkConfig(LOOPBACK_NETWORK),
    bundlePolicy: 'max-bundle',
    codecs: {
      video: [
        new RTCRtpCodecParameters({
          mimeType: 'video/H264',
          clockRate: 90000,
          rtcpFeedback: [useNACK(), usePLI()],
          parameters: 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1',
        }),
      ],
    },
  });
}

async function addViewer(url: string): Promise<void> {
  const pc = newPeer();
  const viewer: Viewer = { pc, frames: 0, sampled: 0, verified: 0 };
  const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
  transceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      viewer.verified++;
      if (!SAMPLED && rtp.header.marker) viewer.frames++;
    });
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    const deadline = Date.now() + 10_000;
    while (pc.iceGatheringState !== 'complete' && Date.now() < deadline) await sleep(20);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: pc.localDescription?.sdp,
      signal: AbortSignal.timeout(30_000),
    });
    const answer = await res.text();
    if (res.status !== 201) throw new Error(`POST ${url}: ${res.status} ${answer}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const connectedBy = Date.now() + 30_000;
    while (pc.connectionState !== 'connected') {
      if (Date.now() > connectedBy || pc.connectionState === 'failed') {
        throw new Error(`viewer peer ${pc.connectionState} after 30 s`);
      }
      await sleep(50);
    }
    if (SAMPLED) sampleRtp(viewer, transceiver);
    viewers.push(viewer);
  } catch (err) {
    await pc.close().catch(() => {});
    throw err;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function reply(message: object): void {
  process.send?.(message);
}

process.on('message', async (message: { add?: number; url?: string; report?: boolean; close?: boolean }) => {
  if (message.add !== undefined && message.url) {
    const failed: string[] = [];
    // A few at a time: each connect is an HTTP round trip, ICE and a DTLS handshake.
    const batch = 5;
    for (let i = 0; i < message.add; i += batch) {
      const n = Math.min(batch, message.add - i);
      const results = await Promise.allSettled(Array.from({ length: n }, () => addViewer(message.url!)));
      for (const r of results) if (r.status === 'rejected') failed.push(String(r.reason));
    }
    reply({ added: message.add - failed.length, failed });
  } else if (message.report) {
    reply({
      frames: viewers.map((v) => v.frames),
      sampled: viewers.reduce((n, v) => n + v.sampled, 0),
      verified: viewers.reduce((n, v) => n + v.verified, 0),
    });
  } else if (message.close) {
    await Promise.allSettled(viewers.map((v) => v.pc.close()));
    process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
