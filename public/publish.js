import {
  GatewayError,
  H264_FIX,
  h264Support,
  liveUrl,
  noH264Explanation,
  play,
  publish,
  streamStatus,
} from '/webrtc.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('stream').value = params.get('stream') ?? `cam-${Math.random().toString(36).slice(2, 8)}`;
const wantedModel = params.get('model') ?? '';

/** The running stream: { name, media, publisher, viewer, timer }; null when idle. */
let live = null;

function say(text, bad = false) {
  $('state').textContent = text;
  $('state').className = bad ? 'bad' : '';
}

function note(id, text, bad = false) {
  const el = $(id);
  el.hidden = !text;
  el.textContent = text ?? '';
  el.classList.toggle('bad', bad);
}

/** The stream name and model stay fixed while a stream runs: they name what is running. */
function lock(locked) {
  $('stream').readOnly = locked;
  $('model').disabled = locked;
  $('start').disabled = locked;
  $('stop').disabled = !locked;
}

// --- before the camera: can this browser publish here at all? ---

const codecs = h264Support();
if (typeof RTCPeerConnection === 'undefined') {
  note(
    'codec-note',
    'This browser has no WebRTC, so it cannot publish. Use a current Chrome, Edge, Firefox or Safari.',
    true,
  );
  $('start').disabled = true;
} else if (codecs.send === false) {
  note('codec-note', noH264Explanation('send', codecs.codecs));
}

// --- models: what the orchestrators offer, and which one runs ---

/** Replaces `select`'s options with `models`, keeping `keep` leading options and the selection. */
function fillOptions(select, models, keep) {
  const selected = select.value;
  const fixed = [...select.options].slice(0, keep);
  const options = models.map((m) => {
    const o = document.createElement('option');
    o.value = m;
    o.textContent = m;
    return o;
  });
  select.replaceChildren(...fixed, ...options);
  if ([...select.options].some((o) => o.value === selected)) select.value = selected;
}

/** Makes sure `select` has an option for `model` (one the orchestrators no longer list, say). */
function ensureOption(select, model) {
  if (!model || [...select.options].some((o) => o.value === model)) return;
  const o = document.createElement('option');
  o.value = model;
  o.textContent = model;
  select.append(o);
}

let modelsShown = false;
async function loadModels() {
  let orchestrators;
  try {
    const res = await fetch('/orchestrators', { cache: 'no-store' });
    ({ orchestrators } = await res.json());
  } catch {
    note(
      'models-note',
      'Could not load the models the orchestrators offer; the gateway’s default model is used.',
    );
    return;
  }
  const models = [...new Set(orchestrators.flatMap((o) => o.models))].sort();
  fillOptions($('model'), models, 1);
  fillOptions($('effect'), models, 0);
  ensureOption($('model'), wantedModel);
  if (!modelsShown && wantedModel) $('model').value = wantedModel;
  modelsShown = true;
  note(
    'models-note',
    models.length ? '' : 'No orchestrator offers a live model yet: the gateway tries its default model.',
  );
}
loadModels();
setInterval(loadModels, 5000);

/** "invert" or "invert · prompt: a fox": what the stream runs now, from its /status. */
function describeEffect(status) {
  const effect = typeof status.params?.effect === 'string' ? status.params.effect : status.model;
  const rest = Object.entries(status.params ?? {})
    .filter(([k]) => k !== 'effect')
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return { effect, text: [effect, ...rest].join(' · ') };
}

async function pollStatus() {
  if (!live) return;
  const current = live;
  let status;
  try {
    status = await streamStatus(current.name);
  } catch {
    return; // the gateway is busy or restarting: the peer's own state tells a lost stream
  }
  if (live !== current) return;
  if (!status || status.state === 'ended') {
    const why = status?.endReason ? ` (${status.endReason})` : '';
    await end(`The stream ended${why}.`, true);
    return;
  }
  const { effect, text } = describeEffect(status);
  $('running').textContent = `Running: ${text}`;
  if (!current.effectChosen) {
    ensureOption($('effect'), effect);
    $('effect').value = effect;
  }
}

// --- the camera ---

/** Camera and microphone; the camera alone when there is no usable microphone. */
async function openMedia() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw mediaProblem('This page cannot use the camera: open it over https:// (or from localhost).');
  }
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  try {
    return { media: await navigator.mediaDevices.getUserMedia({ video, audio: true }), audio: true };
  } catch (first) {
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({ video });
    } catch (err) {
      throw mediaProblem(cameraProblem(err));
    }
    return { media, audio: false, why: microphoneProblem(first) };
  }
}

function mediaProblem(message) {
  const err = new Error(message);
  err.name = 'MediaProblem';
  return err;
}

function cameraProblem(err) {
  switch (err?.name) {
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera found. Connect a camera, then press Start again.';
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The browser did not allow the camera. Allow it for this site (the camera icon in the address bar), then press Start again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera is busy or could not start (another program may be using it). Close that program, then press Start again.';
    default:
      return `Could not open the camera: ${err?.message ?? err}`;
  }
}

function microphoneProblem(err) {
  if (err?.name === 'NotAllowedError') return 'The microphone is not allowed: publishing video only.';
  if (err?.name === 'NotFoundError') return 'No microphone found: publishing video only.';
  return 'The microphone could not be opened: publishing video only.';
}

// --- start and stop ---

/** The gateway's refusal in plain words, its own message kept as the reason. */
function refusal(err) {
  if (err?.name === 'MediaProblem') return err.message;
  if (!(err instanceof GatewayError)) return `Could not publish: ${err?.message ?? err}`;
  const said = `(The gateway said: “${err.message}”.)`;
  switch (err.status) {
    case 0:
      return 'Could not reach the gateway. Check that it is running, then press Start again.';
    case 401:
      return `This gateway needs a publishing token, which this page does not have. ${said}`;
    case 406:
      return codecs.send === false
        ? `This gateway does not take this browser’s video (${codecs.codecs.join(', ')}): it takes H.264, VP8, VP9 or AV1. ${H264_FIX} ${said}`
        : `This gateway does not take this browser’s video. ${said}`;
    case 409:
      return `The stream name “${$('stream').value}” is already publishing. Pick another name. ${said}`;
    case 503:
      return `No orchestrator can take the stream now. Try again in a moment or pick another model. ${said}`;
    default:
      return `The gateway refused the stream. ${said}`;
  }
}

/** Lets go of everything a stream holds: camera, microphone, peers, the gateway's sessions. */
async function release(state, { abandon = false } = {}) {
  if (!state) return;
  clearInterval(state.timer);
  for (const track of state.media?.getTracks() ?? []) track.stop();
  $('input').srcObject = null;
  $('output').srcObject = null;
  for (const s of [state.viewer, state.publisher]) {
    if (!s) continue;
    if (abandon) s.abandon();
    else await s.stop();
  }
}

async function end(message, bad = false) {
  const state = live;
  live = null;
  await release(state);
  lock(false);
  $('controls').disabled = true;
  $('running').textContent = '';
  say(message, bad);
}

$('form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (live) return;
  const name = $('stream').value;
  const state = { name, effectChosen: false };
  lock(true);
  note('media-note', '');
  $('output-caption').textContent = 'Processed (output)';
  note('codec-note', codecs.send === false ? noH264Explanation('send', codecs.codecs) : '');
  try {
    say('Opening the camera…');
    const { media, audio, why } = await openMedia();
    state.media = media;
    $('input').srcObject = media;
    if (!audio) note('media-note', why);
    say('Connecting to the gateway…');
    const model = $('model').value;
    const url = `${liveUrl(name, 'whip')}${model ? `?model=${encodeURIComponent(model)}` : ''}`;
    state.publisher = await publish(url, media);
  } catch (err) {
    await release(state);
    lock(false);
    // The refusal says it all now, what to do included.
    if (err instanceof GatewayError && err.status === 406) note('codec-note', '');
    say(refusal(err), true);
    return;
  }
  live = state;
  const pc = state.publisher.pc;
  pc.addEventListener('connectionstatechange', () => {
    if (live !== state) return;
    if (pc.connectionState === 'failed') void end('The connection to the gateway was lost.', true);
  });
  const watch = `${location.origin}/watch.html?stream=${encodeURIComponent(name)}`;
  $('watch').href = watch;
  $('watch').textContent = watch;
  $('controls').disabled = false;
  state.timer = setInterval(pollStatus, 2000);
  pollStatus();
  say(`Publishing “${name}”.`);
  // The processed picture, watched like any viewer. Publishing goes on if it cannot play here.
  try {
    const viewer = await play(liveUrl(name, 'whep'), $('output'));
    if (live !== state) viewer.abandon();
    else state.viewer = viewer;
  } catch (err) {
    if (live !== state) return;
    const reason =
      err instanceof GatewayError && err.status === 406 && codecs.receive === false
        ? noH264Explanation('play', codecs.codecs)
        : err.message;
    $('output-caption').textContent = `Processed (output): cannot play here. ${reason}`;
  }
});

$('stop').addEventListener('click', () => end('Stopped.'));

$('effect').addEventListener('change', () => {
  if (live) live.effectChosen = true;
});

$('apply').addEventListener('click', async () => {
  if (!live) return;
  const body = { effect: $('effect').value };
  if ($('prompt').value) body.prompt = $('prompt').value;
  let res;
  try {
    res = await fetch(liveUrl(live.name, 'update'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    say('Could not reach the gateway to change the effect.', true);
    return;
  }
  if (res.ok) {
    if (live) live.effectChosen = false;
    say(`Applied ${body.effect}.`);
    pollStatus();
  } else {
    let message = `${res.status}`;
    try {
      message = (await res.json()).error.message;
    } catch {}
    say(`The effect was not changed: ${message}`, true);
  }
});

// Closing or leaving the tab ends the stream and the preview at once.
window.addEventListener('pagehide', () => {
  const state = live;
  live = null;
  void release(state, { abandon: true });
});
