// A process holding many light WHEP viewers for bench:fanout, driven over IPC by bench/fanout.ts.
// Each viewer is a bare werift peer (video only, recvonly) that counts completed frames (RTP
// packets with the marker bit); werift's receiver authenticates every SRTP packet and drops the ones
// that fail, so a frame counted is a frame that arrived intact. Kept apart from the gateway so the
// gateway's CPU is measured alone.
//
// Messages in:  { add: number, url: string }  → { added: number, failed: string[] }
//               { report: true }              → { frames: number[] } (frames per viewer so far)
//               { close: true }               → closes every peer, then exits
import { RTCPeerConnection, RTCRtpCodecParameters, useNACK, usePLI } from 'werift';
import { LOOPBACK_NETWORK } from '../src/webrtc/index.ts';
import { weriftNetworkConfig } from '../src/webrtc/network.ts';

interface Viewer {
  pc: RTCPeerConnection;
  frames: number;
}

const viewers: Viewer[] = [];

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
  const viewer: Viewer = { pc, frames: 0 };
  const transceiver = pc.addTransceiver('video', { direction: 'recvonly' });
  transceiver.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      if (rtp.header.marker) viewer.frames++;
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
    reply({ frames: viewers.map((v) => v.frames) });
  } else if (message.close) {
    await Promise.allSettled(viewers.map((v) => v.pc.close()));
    process.exit(0);
  }
});

process.on('disconnect', () => process.exit(0));
