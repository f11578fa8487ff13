// Plays one stream with WHEP, and keeps at it: before the stream starts, after it ends and when
// the connection drops, it says so and tries again by itself (1 s, 2 s, 4 s … at most 10 s apart).
import { GatewayError, h264Support, liveUrl, noH264Explanation, play, streamStatus } from '/webrtc.js';

const stream = new URLSearchParams(location.search).get('stream');
const state = document.getElementById('state');
const video = document.getElementById('video');
document.getElementById('name').textContent = stream ?? '';

const MAX_DELAY_MS = 10_000;
const STATUS_EVERY_MS = 2000;

let viewer = null;
let attempt = 0;
let timer;

function say(text, bad = false) {
  state.textContent = text;
  state.className = bad ? 'bad' : '';
}

/** Says `text`, then tries again after the next backoff step. */
function retry(text) {
  const delay = Math.min(1000 * 2 ** attempt, MAX_DELAY_MS);
  attempt++;
  say(`${text} Checking again in ${Math.round(delay / 1000)} s…`);
  clearTimeout(timer);
  timer = setTimeout(connect, delay);
}

async function connect() {
  let session;
  try {
    session = await play(liveUrl(stream, 'whep'), video);
  } catch (err) {
    await refused(err);
    return;
  }
  viewer = session;
  say('Connected: waiting for the first picture…');
  let startedAt;
  const gone = (text) => {
    if (viewer !== session) return;
    viewer = null;
    clearInterval(poll);
    video.srcObject = null;
    void session.stop();
    retry(text);
  };
  session.pc.addEventListener('connectionstatechange', () => {
    const s = session.pc.connectionState;
    if (s === 'failed' || s === 'closed') gone(`“${stream}” has ended or the connection was lost.`);
  });
  // The gateway's word on the stream: ended, or replaced by a new one under the same name.
  const poll = setInterval(async () => {
    let status;
    try {
      status = await streamStatus(stream);
    } catch {
      return;
    }
    if (!status || status.state === 'ended') {
      gone(`“${stream}” has ended${status?.endReason ? ` (${status.endReason})` : ''}.`);
    } else if (startedAt !== undefined && status.startedAt !== startedAt) {
      gone(`“${stream}” restarted.`);
    } else {
      startedAt = status.startedAt;
    }
  }, STATUS_EVERY_MS);
}

async function refused(err) {
  if (!(err instanceof GatewayError)) {
    retry(`Could not play “${stream}”: ${err.message}.`);
    return;
  }
  switch (err.status) {
    case 0:
      retry('The gateway cannot be reached.');
      return;
    case 404: {
      let status = null;
      try {
        status = await streamStatus(stream);
      } catch {}
      retry(
        status?.state === 'ended'
          ? `“${stream}” has ended. Waiting for it to start again.`
          : `“${stream}” has not started yet. Waiting for it to start.`,
      );
      return;
    }
    case 429:
    case 503:
      retry(`“${stream}” has all the viewers it can take.`);
      return;
    case 406: {
      const codecs = h264Support();
      say(
        codecs.receive === false
          ? `${noH264Explanation('play', codecs.codecs)} (The gateway said: “${err.message}”.)`
          : `This browser cannot play “${stream}”. (The gateway said: “${err.message}”.)`,
        true,
      );
      return;
    }
    default:
      if (err.status >= 500) retry(`The gateway could not start playback (${err.message}).`);
      else say(`Cannot play “${stream}”: ${err.message}`, true);
  }
}

video.addEventListener('playing', () => {
  if (!viewer) return;
  attempt = 0;
  say('Playing.');
});

if (!stream) {
  say('No stream given: open this page as /watch.html?stream=NAME.', true);
} else if (typeof RTCPeerConnection === 'undefined') {
  say('This browser has no WebRTC, so it cannot play live streams.', true);
} else {
  connect();
  // Leaving the page leaves the stream at once instead of when the gateway notices.
  window.addEventListener('pagehide', () => {
    clearTimeout(timer);
    viewer?.abandon();
    viewer = null;
  });
}
