// WHIP and WHEP from the browser: one offer, one answer (no trickle ICE), DELETE to leave.

/** A refusal from the gateway (its JSON `error`), or `status` 0 when it could not be reached. */
export class GatewayError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'GatewayError';
    this.status = status;
    this.code = code;
  }
}

/**
 * Whether this browser can send / receive H.264 (packetization-mode 1), the codec the gateway
 * forwards untouched. `null` where the browser does not say (no getCapabilities).
 */
export function h264Support() {
  const has = (caps) => (caps ? caps.codecs.some((c) => c.mimeType.toLowerCase() === 'video/h264') : null);
  const api = typeof RTCRtpSender !== 'undefined' && RTCRtpSender.getCapabilities;
  return {
    send: api ? has(RTCRtpSender.getCapabilities('video')) : null,
    receive: api ? has(RTCRtpReceiver.getCapabilities('video')) : null,
    codecs: api ? videoCodecNames(RTCRtpSender.getCapabilities('video')) : [],
  };
}

/** "VP8, VP9, AV1": the video codecs proper (no rtx/red/ulpfec), as a person would name them. */
function videoCodecNames(caps) {
  const names = (caps?.codecs ?? [])
    .map((c) => c.mimeType.split('/')[1])
    .filter((n) => !/^(rtx|red|ulpfec|flexfec-03)$/i.test(n));
  return [...new Set(names)];
}

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
  const caps = RTCRtpReceiver.getCapabilities?.('video');
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
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', ...headers },
      body: pc.localDescription.sdp,
    });
  } catch {
    throw new GatewayError(0, 'UNREACHABLE', 'the gateway could not be reached');
  }
  if (res.status !== 201) {
    let code = 'HTTP_ERROR';
    let message = `it answered ${res.status} ${res.statusText}`.trim();
    try {
      const { error } = await res.json();
      if (error?.message) ({ code, message } = error);
    } catch {}
    throw new GatewayError(res.status, code, message);
  }
  const location = new URL(res.headers.get('Location'), new URL(url, window.location.href)).toString();
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  } catch (err) {
    // The session exists on the gateway: leave it before reporting.
    fetch(location, { method: 'DELETE', headers }).catch(() => {});
    throw err;
  }
  return location;
}

/** One WHIP or WHEP session: `stop()` waits for the DELETE; `abandon()` is for a closing tab. */
function session(pc, location, headers = {}) {
  return {
    pc,
    location,
    async stop() {
      pc.close();
      await fetch(location, { method: 'DELETE', headers }).catch(() => {});
    },
    abandon() {
      pc.close();
      // keepalive: the request outlives the page that sends it.
      fetch(location, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
    },
  };
}

/** Publishes `stream` (a MediaStream) with WHIP. Closes its peer if the gateway refuses. */
export async function publish(url, stream, headers) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  try {
    for (const track of stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
      if (track.kind === 'video') preferH264(t);
    }
    return session(pc, await exchange(url, pc, headers), headers);
  } catch (err) {
    pc.close();
    throw err;
  }
}

/** Plays a stream with WHEP into `video`. Closes its peer if the gateway refuses. */
export async function play(url, video) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  try {
    preferH264(pc.addTransceiver('video', { direction: 'recvonly' }));
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.addEventListener('track', (e) => {
      media.addTrack(e.track);
      video.srcObject = media;
    });
    return session(pc, await exchange(url, pc));
  } catch (err) {
    pc.close();
    throw err;
  }
}

export const liveUrl = (stream, what) => `/live/video-to-video/${encodeURIComponent(stream)}/${what}`;

/** The stream's /status, or null when the gateway has never heard of it (404). */
export async function streamStatus(stream) {
  const res = await fetch(liveUrl(stream, 'status'), { cache: 'no-store' });
  if (res.status === 404) return null;
  if (!res.ok) throw new GatewayError(res.status, 'HTTP_ERROR', `status answered ${res.status}`);
  return res.json();
}

/** How a person gets H.264 in the browser. */
export const H264_FIX =
  'To use it now, open this page in Chrome, Edge or Safari, or in Firefox turn on the ' +
  '“OpenH264 Video Codec provided by Cisco Systems” plugin (menu → Add-ons and themes → Plugins; ' +
  'Firefox downloads it when it is online).';

/** What a person reads when the browser has no H.264 for `what` ('send' or 'play'). */
export function noH264Explanation(what, codecs) {
  const has = codecs.length ? codecs.join(', ') : 'other codecs';
  return what === 'send'
    ? `This browser cannot send H.264 video, only ${has}. This gateway converts VP8, VP9 and AV1 to ` +
        'H.264 for the orchestrator, so you can publish; it costs the gateway some CPU. ' +
        `To send H.264 directly: ${H264_FIX.replace(/^To use it now, /, '')}`
    : `This browser cannot play H.264 video, only ${has}. This gateway sends such browsers VP8 ` +
        'instead, so you can watch.';
}
