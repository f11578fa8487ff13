import { liveUrl, play, publish } from '/webrtc.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('stream').value = params.get('stream') ?? `cam-${Math.random().toString(36).slice(2, 8)}`;
$('model').value = params.get('model') ?? '';

let publisher;
let viewer;

function say(text) {
  $('state').textContent = text;
}

$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const stream = $('stream').value;
  $('start').disabled = true;
  try {
    say('Opening the camera…');
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 1280, height: 720 },
      audio: true,
    });
    $('input').srcObject = media;
    say('Connecting…');
    const model = $('model').value.trim();
    publisher = await publish(
      `${liveUrl(stream, 'whip')}${model ? `?model=${encodeURIComponent(model)}` : ''}`,
      media,
    );
    publisher.pc.addEventListener('connectionstatechange', () =>
      say(`Publishing: ${publisher.pc.connectionState}`),
    );
    viewer = await play(liveUrl(stream, 'whep'), $('output'));
    const watch = `${location.origin}/watch.html?stream=${encodeURIComponent(stream)}`;
    $('watch').href = watch;
    $('watch').textContent = watch;
    $('stop').disabled = false;
    $('controls').disabled = false;
    say('Publishing.');
  } catch (err) {
    say(`Could not publish: ${err.message}`);
    $('start').disabled = false;
  }
});

$('stop').addEventListener('click', async () => {
  await viewer?.stop();
  await publisher?.stop();
  for (const track of $('input').srcObject?.getTracks() ?? []) track.stop();
  $('stop').disabled = true;
  $('start').disabled = false;
  $('controls').disabled = true;
  say('Stopped.');
});

$('apply').addEventListener('click', async () => {
  const body = { effect: $('effect').value };
  if ($('prompt').value) body.prompt = $('prompt').value;
  const res = await fetch(liveUrl($('stream').value, 'update'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  say(res.ok ? `Applied ${body.effect}.` : `Update failed: ${(await res.json()).error.message}`);
});
