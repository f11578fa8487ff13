// WHIP and WHEP from the browser: one offer, one answer (no trickle ICE), DELETE to leave.

/** Resolves when ICE gathering is complete, or after `ms` with what was gathered so far. */
function gathered(pc, ms = 2000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

function preferH264(transceiver) {
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps || !transceiver.setCodecPreferences) return;
  const h264 = caps.codecs.filter(
    (c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine ?? ''),
  );
  const rest = caps.codecs.filter((c) => !h264.includes(c));
  if (h264.length) transceiver.setCodecPreferences([...h264, ...rest]);
}

async function exchange(url, pc, headers = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...headers },
    body: pc.localDescription.sdp,
  });
  if (res.status !== 201) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error.message;
    } catch {}
    throw new Error(message);
  }
  const location = new URL(res.headers.get('Location'), new URL(url, window.location.href)).toString();
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  return location;
}

/** Publishes `stream` (a MediaStream) with WHIP. Returns { pc, stop }. */
export async function publish(url, stream, headers) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') preferH264(t);
  }
  const location = await exchange(url, pc, headers);
  return {
    pc,
    location,
    async stop() {
      pc.close();
      await fetch(location, { method: 'DELETE', headers }).catch(() => {});
    },
  };
}

/** Plays a stream with WHEP into `video`. Returns { pc, stop }. */
export async function play(url, video) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  preferH264(pc.addTransceiver('video', { direction: 'recvonly' }));
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const media = new MediaStream();
  pc.addEventListener('track', (e) => {
    media.addTrack(e.track);
    video.srcObject = media;
  });
  const location = await exchange(url, pc);
  return {
    pc,
    location,
    async stop() {
      pc.close();
      await fetch(location, { method: 'DELETE' }).catch(() => {});
    },
  };
}

export const liveUrl = (stream, what) => `/live/video-to-video/${encodeURIComponent(stream)}/${what}`;
