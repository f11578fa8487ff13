// Each remaining pipeline through the gateway to a scripted orchestrator: what goes on the wire
// (multipart rebuilt, go-livepeer's audio metadata) and what comes back (passed through, or files
// re-hosted), and image-to-video's asynchronous mode with its result route.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMultipart, type UploadedFile } from '../../src/batch/multipart.ts';
import { Capability, pngHeader, startAiGateway, TestAiOrchestrator } from '../helpers/ai-orchestrator.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });
const PNG = pngHeader(32, 16);
const WAV_HEADER = Buffer.from('RIFF0000WAVEfmt ');

let work: Workdir;
let wav: Buffer;
let orch: TestAiOrchestrator;
let gw: Awaited<ReturnType<typeof startAiGateway>>;
let videoDelayMs = 0;

beforeAll(async () => {
  work = await makeWorkdir();
  await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=3.2', '-y', work.path('a.wav')]);
  wav = await readFile(work.path('a.wav'));
  const files = new Map([['/stream/v/clip.mp4', { type: 'video/mp4', data: Buffer.from('not really mp4') }]]);
  orch = await TestAiOrchestrator.start({
    offers: {
      [Capability.AudioToText]: ['openai/whisper-large-v3'],
      [Capability.ImageToText]: ['Salesforce/blip-image-captioning-large'],
      [Capability.SegmentAnything2]: ['facebook/sam2-hiera-large'],
      [Capability.TextToSpeech]: ['parler-tts/parler-tts-large-v1'],
      [Capability.ImageToVideo]: ['stabilityai/stable-video-diffusion-img2vid-xt'],
    },
    files,
    answer: async (req) => {
      switch (req.path) {
        case '/audio-to-text':
          return { json: { text: 'hello there', chunks: [{ timestamp: [0, 1.5], text: 'hello there' }] } };
        case '/image-to-text':
          return { json: { text: 'a test pattern' } };
        case '/segment-anything-2':
          return { json: { masks: '[[[0,1]]]', scores: '[0.9]', logits: '[[[0.1]]]' } };
        case '/text-to-speech':
          return { json: { audio: { url: `data:audio/wav;base64,${WAV_HEADER.toString('base64')}` } } };
        case '/image-to-video':
          await new Promise((resolve) => setTimeout(resolve, videoDelayMs));
          return { json: { images: [{ url: `${orch.url}/stream/v/clip.mp4`, seed: 9, nsfw: false }] } };
        default:
          return { status: 404, text: 'not found' };
      }
    },
  });
  gw = await startAiGateway({ orchestrators: [orch.url], logger });
});
afterAll(async () => {
  await gw?.close();
  await orch?.close();
  await work?.remove();
});

const last = () => orch.requests[orch.requests.length - 1]!;

describe('batch AI pipelines through the gateway', () => {
  it("audio-to-text: the upload rebuilt with go-livepeer's duration metadata; the text passed through", async () => {
    const form = new FormData();
    form.append('audio', new Blob([new Uint8Array(wav)], { type: 'audio/wav' }), 'speech.wav');
    form.append('return_timestamps', 'word');
    const res = await fetch(`${gw.base}/audio-to-text`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      text: 'hello there',
      chunks: [{ timestamp: [0, 1.5], text: 'hello there' }],
    });
    // 3 whole seconds × 1000 units; free here.
    expect(res.headers.get('livepeer-fee-wei')).toBe('0');
    const sent = await parseMultipart(last().body, last().contentType);
    expect((sent.audio as UploadedFile).data).toEqual(wav);
    expect((sent.audio as UploadedFile).filename).toBe('speech.wav');
    expect(sent.model_id).toBe('openai/whisper-large-v3');
    expect(sent.return_timestamps).toBe('word');
    expect(JSON.parse(sent.metadata as string)).toEqual({ duration: '3' });
  });

  it('image-to-text and segment-anything-2: JSON replies passed through', async () => {
    let form = new FormData();
    form.append('image', new Blob([new Uint8Array(PNG)]), 'p.png');
    let res = await fetch(`${gw.base}/image-to-text`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ text: 'a test pattern' });
    const sent = await parseMultipart(last().body, last().contentType);
    expect(sent.prompt).toBe('');

    form = new FormData();
    form.append('image', new Blob([new Uint8Array(PNG)]), 'p.png');
    form.append('point_coords', '[[10,5]]');
    form.append('multimask_output', 'false');
    res = await fetch(`${gw.base}/segment-anything-2`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect((await res.json()).scores).toBe('[0.9]');
    const sam = await parseMultipart(last().body, last().contentType);
    expect(sam.point_coords).toBe('[[10,5]]');
    expect(sam.multimask_output).toBe('false');
    expect(sam.return_logits).toBe('true');
  });

  it('text-to-speech: the audio re-hosted as a .wav the gateway serves', async () => {
    const res = await fetch(`${gw.base}/text-to-speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'Hi there' }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.audio.url).toMatch(/\/results\/[0-9a-f]{16}\/[0-9a-f]{16}-0\.wav$/);
    const file = await fetch(body.audio.url);
    expect(file.headers.get('content-type')).toBe('audio/wav');
    expect(Buffer.from(await file.arrayBuffer())).toEqual(WAV_HEADER);
    expect(JSON.parse(last().body.toString()).description).toContain('A male speaker');
  });

  it('image-to-video: synchronous by default, the video downloaded and re-hosted', async () => {
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(PNG)]), 'p.png');
    form.append('width', '512');
    form.append('height', '256');
    const res = await fetch(`${gw.base}/image-to-video`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.images[0].url).toMatch(/\/results\/[0-9a-f]{16}\/0-clip\.mp4$/);
    const file = await fetch(body.images[0].url);
    expect(file.headers.get('content-type')).toBe('video/mp4');
  });

  it('image-to-video with Prefer: respond-async: 202 {request_id}, then processing, then complete', async () => {
    videoDelayMs = 600;
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(PNG)]), 'p.png');
    const res = await fetch(`${gw.base}/image-to-video`, {
      method: 'POST',
      body: form,
      headers: { prefer: 'respond-async' },
    });
    expect(res.status).toBe(202);
    const { request_id } = await res.json();
    expect(request_id).toMatch(/^[0-9a-f]{16}$/);
    const poll = () =>
      fetch(`${gw.base}/image-to-video/result`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request_id }),
      });
    const early = await poll();
    expect(early.status).toBe(202);
    expect(await early.json()).toEqual({ status: 'processing' });
    let done: Response | undefined;
    for (let i = 0; i < 50 && !done; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const r = await poll();
      if (r.status === 200) done = r;
      else await r.body?.cancel();
    }
    expect(done).toBeDefined();
    const body = await done!.json();
    expect(body.status).toBe('complete');
    expect(body.result.images[0].seed).toBe(9);
    expect((await fetch(body.result.images[0].url)).status).toBe(200);
    videoDelayMs = 0;
  });
});
