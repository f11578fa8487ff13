import { liveUrl, play } from '/webrtc.js';

const stream = new URLSearchParams(location.search).get('stream');
const state = document.getElementById('state');
document.getElementById('name').textContent = stream ?? '';

if (!stream) {
  state.textContent = 'No stream given: open this page as /watch.html?stream=NAME.';
} else {
  try {
    const viewer = await play(liveUrl(stream, 'whep'), document.getElementById('video'));
    viewer.pc.addEventListener('connectionstatechange', () => {
      state.textContent = `Connection: ${viewer.pc.connectionState}`;
    });
    state.textContent = 'Waiting for video…';
    document.getElementById('video').addEventListener('playing', () => {
      state.textContent = 'Playing.';
    });
    window.addEventListener('pagehide', () => viewer.stop());
  } catch (err) {
    state.textContent = `Could not play: ${err.message}`;
  }
}
