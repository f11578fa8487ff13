// The local orchestrator's batch AI routes over real HTTPS, with the headers go-livepeer's
// gateway sends: what the stand-ins make (checked with ffprobe), what GetOrchestrator
// advertises, and the statuses go-livepeer's orchestrator answers with.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AI_MODELS } from '../../src/local-orchestrator/ai-standins.ts';
import { makeAuthToken } from '../../src/local-orchestrator/credentials.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { AI_WORKER_PROTOCOL } from '../../src/orchestrators/live-video.ts';
import { segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { Capability, hasCapability, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';
import {
  form,
  get,
  imageBytes,
  meanAbsDiff,
  post,
  probeImage,
  type Reply,
  rgbPixels,
  testAudio,
  testImage,
} from './ai-helpers.ts';

const T2I = DEFAULT_AI_MODELS['text-to-image'][0];
const I2I = DEFAULT_AI_MODELS['image-to-image'][0];
const UPSCALE = DEFAULT_AI_MODELS.upscale[0];

let orch: LocalOrchestrator;
let info: OrchestratorInfo;
let segment: string;
let png320: Buffer;

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 1,
    logger: pino({ level: 'silent' }),
  });
  info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
  segment = await segmentCredentials(info, offchainIdentity, { manifestId: 'ai' });
  png320 = await testImage(320, 240);
});
afterAll(async () => {
  await orch?.close();
});

/** The headers go-livepeer's gateway sends (off-chain: an empty Livepeer-Payment). */
const gatewayHeaders = (extra: Record<string, string> = {}) => ({
  'livepeer-segment': segment,
  'livepeer-payment': '',
  authorization: AI_WORKER_PROTOCOL,
  ...extra,
});

function postJson(
  path: string,
  body: unknown,
  headers: Record<string, string> = gatewayHeaders(),
): Promise<Reply> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return post(`${orch.url}${path}`, text, { 'content-type': 'application/json', ...headers });
}

async function postForm(
  path: string,
  fields: Parameters<typeof form>[0],
  headers = gatewayHeaders(),
): Promise<Reply> {
  const f = await form(fields);
  return post(`${orch.url}${path}`, f.body, { 'content-type': f.contentType, ...headers });
}

interface Media {
  url: string;
  seed: number;
  nsfw: boolean;
}
function images(res: Reply): Media[] {
  expect(res.status, res.text).toBe(200);
  expect(res.type).toMatch(/^application\/json/);
  const body = JSON.parse(res.text) as { images: Media[] };
  for (const m of body.images) {
    expect(Object.keys(m).sort()).toEqual(['nsfw', 'seed', 'url']);
    expect(typeof m.seed).toBe('number');
    expect(m.nsfw).toBe(false);
  }
  return body.images;
}

const png = (data: Buffer, name = 'in.png') => ({ data, type: 'image/png', name });

describe('GetOrchestrator advertises the batch AI stand-ins', () => {
  it('sets the capability bits of text-to-image, image-to-image and upscale only', () => {
    const bits = info.capabilities?.bitstring;
    for (const cap of [Capability.TextToImage, Capability.ImageToImage, Capability.Upscale]) {
      expect(hasCapability(bits, cap), `capability ${cap}`).toBe(true);
    }
    for (const cap of [
      Capability.ImageToVideo,
      Capability.AudioToText,
      Capability.SegmentAnything2,
      Capability.LLM,
      Capability.ImageToText,
      Capability.TextToSpeech,
    ]) {
      expect(hasCapability(bits, cap), `capability ${cap}`).toBe(false);
    }
    expect(hasCapability(bits, Capability.LiveVideoToVideo)).toBe(true);
  });

  it('lists each model under its capability, with hardware and a price per (capability, model)', () => {
    const per = info.capabilities?.constraints?.PerCapability ?? {};
    expect(Object.keys(per[Capability.TextToImage]?.models ?? {})).toEqual([
      ...DEFAULT_AI_MODELS['text-to-image'],
    ]);
    expect(Object.keys(per[Capability.ImageToImage]?.models ?? {})).toEqual([
      ...DEFAULT_AI_MODELS['image-to-image'],
    ]);
    expect(Object.keys(per[Capability.Upscale]?.models ?? {})).toEqual([UPSCALE]);
    expect(per[Capability.TextToImage]?.models?.[T2I]).toMatchObject({ warm: true, capacity: 4 });
    expect(info.hardware).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ pipeline: 'text-to-image', modelId: T2I }),
        expect.objectContaining({ pipeline: 'upscale', modelId: UPSCALE }),
      ]),
    );
    expect(info.capabilitiesPrices).toEqual(
      expect.arrayContaining([
        // A zero pricePerUnit is the protobuf default: absent on the wire.
        { capability: Capability.ImageToImage, constraint: I2I, pixelsPerUnit: 1n },
      ]),
    );
  });

  it('answers a request for a model or pipeline it does not serve, without listing them (not capped)', async () => {
    const ask = (cap: number, model: string) =>
      getOrchestrator(orch.url, {
        identity: offchainIdentity,
        timeoutMs: 3000,
        capabilities: {
          capacities: { [cap]: 1 },
          constraints: { PerCapability: { [cap]: { models: { [model]: {} } } } },
        },
      });
    const served = await ask(Capability.TextToImage, T2I);
    expect(
      Object.keys(served.capabilities?.constraints?.PerCapability?.[Capability.TextToImage]?.models ?? {}),
    ).toContain(T2I);
    const otherModel = await ask(Capability.TextToImage, 'some/other-model');
    expect(
      Object.keys(
        otherModel.capabilities?.constraints?.PerCapability?.[Capability.TextToImage]?.models ?? {},
      ),
    ).not.toContain('some/other-model');
    const llm = await ask(Capability.LLM, 'meta-llama/Meta-Llama-3.1-8B-Instruct');
    expect(hasCapability(llm.capabilities?.bitstring, Capability.LLM)).toBe(false);
  });
});

describe('text-to-image stand-in', () => {
  const request = (over: Record<string, unknown> = {}) =>
    postJson('/text-to-image', {
      model_id: T2I,
      prompt: 'a lighthouse at dusk',
      width: 256,
      height: 128,
      ...over,
    });

  it('makes num_images_per_prompt PNGs of the requested size, seeds seed, seed+1, ...', async () => {
    const imgs = images(await request({ seed: 7, num_images_per_prompt: 2 }));
    expect(imgs.map((m) => m.seed)).toEqual([7, 8]);
    for (const m of imgs) {
      // With the AI worker protocol header the results are files to download, as go-livepeer does.
      expect(m.url).toMatch(new RegExp(`^${orch.url}/stream/[0-9a-f]+/[0-9a-f]+\\.png$`));
      expect(await probeImage(await imageBytes(m.url))).toEqual({ codec: 'png', width: 256, height: 128 });
    }
    const [a, b] = await Promise.all(imgs.map((m) => imageBytes(m.url)));
    expect(a.equals(b)).toBe(false);
  });

  it('depends on the prompt and the seed, and only on them', async () => {
    const pixels = async (over: Record<string, unknown>) =>
      rgbPixels(await imageBytes(images(await request(over))[0].url));
    const base = await pixels({ seed: 42 });
    expect((await pixels({ seed: 42 })).equals(base)).toBe(true);
    expect(meanAbsDiff(await pixels({ seed: 43 }), base)).toBeGreaterThan(5);
    expect(meanAbsDiff(await pixels({ seed: 42, prompt: 'a lighthouse at dawn' }), base)).toBeGreaterThan(5);
  });

  it('answers data URLs to a gateway without the AI worker protocol header (older go-livepeer)', async () => {
    const res = await postJson(
      '/text-to-image',
      { model_id: T2I, prompt: 'p', width: 64, height: 64, seed: 1 },
      gatewayHeaders({ authorization: '' }),
    );
    const [m] = images(res);
    expect(m.url.startsWith('data:image/png;base64,')).toBe(true);
    expect(await probeImage(await imageBytes(m.url))).toMatchObject({ width: 64, height: 64 });
  });

  it('picks a random seed when none is given, and says which', async () => {
    const [a] = images(await request());
    const [b] = images(await request());
    expect(Number.isInteger(a.seed) && a.seed >= 0).toBe(true);
    expect(a.seed).not.toBe(b.seed);
  });

  it('answers 404 for a result file it does not hold', async () => {
    expect((await get(`${orch.url}/stream/nope/none.png`)).status).toBe(404);
  });
});

describe('image-to-image stand-in', () => {
  it('returns images of the input size, changed by the prompt and seed', async () => {
    const input = await rgbPixels(png320);
    const res = await postForm('/image-to-image', {
      model_id: I2I,
      prompt: 'make it autumn',
      image: png(png320),
      seed: '5',
      num_images_per_prompt: '2',
    });
    const imgs = images(res);
    expect(imgs.map((m) => m.seed)).toEqual([5, 6]);
    const outs = await Promise.all(imgs.map(async (m) => imageBytes(m.url)));
    for (const out of outs) {
      expect(await probeImage(out)).toEqual({ codec: 'png', width: 320, height: 240 });
      expect(meanAbsDiff(await rgbPixels(out), input)).toBeGreaterThan(5);
    }
    expect(outs[0].equals(outs[1])).toBe(false);
  });

  it("takes uploads larger than the orchestrator's 1 MB default body limit", async () => {
    const big = await testImage(700, 700, 'png', 'noise');
    expect(big.length).toBeGreaterThan(1024 * 1024);
    const res = await postForm('/image-to-image', { model_id: I2I, prompt: 'x', image: png(big) });
    expect(await probeImage(await imageBytes(images(res)[0].url))).toMatchObject({ width: 700, height: 700 });
  });

  it('takes a JPEG too', async () => {
    const jpeg = await testImage(200, 100, 'mjpeg');
    const res = await postForm('/image-to-image', {
      model_id: I2I,
      prompt: 'x',
      image: { data: jpeg, type: 'image/jpeg', name: 'in.jpg' },
    });
    expect(await probeImage(await imageBytes(images(res)[0].url))).toMatchObject({ width: 200, height: 100 });
  });
});

describe('upscale stand-in', () => {
  it('returns the image 4× as wide and as high, as stable-diffusion-x4-upscaler does', async () => {
    const small = await testImage(160, 120);
    const res = await postForm('/upscale', {
      model_id: UPSCALE,
      prompt: 'sharper',
      image: png(small),
      seed: '9',
    });
    const [m] = images(res);
    expect(m.seed).toBe(9);
    expect(await probeImage(await imageBytes(m.url))).toEqual({ codec: 'png', width: 640, height: 480 });
  });

  it('fails as an out-of-memory runner does for an input too large', async () => {
    const big = await testImage(1280, 1024);
    const res = await postForm('/upscale', { model_id: UPSCALE, prompt: 'x', image: png(big) });
    expect(res.status).toBe(500);
    expect(res.text).toBe(
      'upscale container returned 500: Out of memory error. Try reducing input image resolution.',
    );
  });
});

describe('bad requests get the status go-livepeer answers with', () => {
  it('400 for a body that is not JSON, a missing or mistyped field', async () => {
    const notJson = await postJson('/text-to-image', '{nope');
    expect(notJson.status).toBe(400);
    expect(notJson.type).toMatch(/^text\/plain/);
    const noPrompt = await postJson('/text-to-image', { model_id: T2I });
    expect(noPrompt.status).toBe(400);
    expect(noPrompt.text).toContain('prompt');
    const noModel = await postJson('/text-to-image', { prompt: 'x' });
    expect(noModel.status).toBe(400);
    expect(noModel.text).toContain('model_id');
    const badHeight = await postJson('/text-to-image', { model_id: T2I, prompt: 'x', height: 'tall' });
    expect(badHeight.status).toBe(400);
    expect(badHeight.text).toContain('height');
  });

  it('400 for a multipart route sent JSON, a missing image, an unreadable image, a mistyped field', async () => {
    const json = await postJson('/image-to-image', { model_id: I2I, prompt: 'x' });
    expect(json.status).toBe(400);
    expect(json.text).toContain('multipart/form-data');
    const noImage = await postForm('/upscale', { model_id: UPSCALE, prompt: 'x' });
    expect(noImage.status).toBe(400);
    expect(noImage.text).toContain('image');
    const notImage = await postForm('/upscale', {
      model_id: UPSCALE,
      prompt: 'x',
      image: png(Buffer.from('hello, not a picture')),
    });
    expect(notImage.status).toBe(400);
    expect(notImage.text).toBe('image: unknown format');
    const badSeed = await postForm('/image-to-image', {
      model_id: I2I,
      prompt: 'x',
      image: png(png320),
      seed: 'abc',
    });
    expect(badSeed.status).toBe(400);
    expect(badSeed.text).toContain('seed');
  });

  it("500 with the runner's reason for what the runner refuses (go-livepeer wraps runner errors)", async () => {
    const empty = await postJson('/text-to-image', { model_id: T2I, prompt: '' });
    expect(empty.status).toBe(500);
    expect(empty.text).toBe('text-to-image container returned 400: Prompt must be provided.');
    const odd = await postJson('/text-to-image', { model_id: T2I, prompt: 'x', width: 100, height: 64 });
    expect(odd.status).toBe(500);
    expect(odd.text).toContain('divisible by 8');
  });

  it('403 without Livepeer-Segment or with a forged auth token; 402 for an unreadable Livepeer-Payment', async () => {
    const body = { model_id: T2I, prompt: 'x', width: 64, height: 64 };
    const missing = await postJson('/text-to-image', body, { authorization: AI_WORKER_PROTOCOL });
    expect(missing.status).toBe(403);
    const forged = { ...info, authToken: makeAuthToken(new Uint8Array(32), 'x', 9_999_999_999n) };
    const forgedSegment = await segmentCredentials(forged, offchainIdentity, { manifestId: 'ai' });
    const bad = await postJson('/text-to-image', body, gatewayHeaders({ 'livepeer-segment': forgedSegment }));
    expect(bad.status).toBe(403);
    expect(bad.text).toBe('invalid auth token');
    const badPayment = await postJson(
      '/text-to-image',
      body,
      gatewayHeaders({ 'livepeer-payment': 'not base64!' }),
    );
    expect(badPayment.status).toBe(402);
  });
});

describe('pipelines and models it does not serve: 503 "insufficient capacity", as go-livepeer', () => {
  it('for an unknown model of a served pipeline', async () => {
    const res = await postJson('/text-to-image', { model_id: 'black-forest-labs/FLUX.1-dev', prompt: 'x' });
    expect(res.status).toBe(503);
    expect(res.text).toBe('insufficient capacity');
  });

  it('for every pipeline without a stand-in, after the checks go-livepeer makes first', async () => {
    const model = { model_id: 'any/model' };
    const wav = { data: await testAudio(2), type: 'audio/wav', name: 'a.wav' };
    const replies = {
      llm: await postJson('/llm', {
        model: 'any/model',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 8,
      }),
      'text-to-speech': await postJson('/text-to-speech', { ...model, text: 'hello' }),
      'image-to-video': await postForm('/image-to-video', { ...model, image: png(png320) }),
      'audio-to-text': await postForm('/audio-to-text', { ...model, audio: wav }),
      'segment-anything-2': await postForm('/segment-anything-2', { ...model, image: png(png320) }),
      'image-to-text': await postForm('/image-to-text', { ...model, image: png(png320) }),
    };
    for (const [pipeline, res] of Object.entries(replies)) {
      expect(`${pipeline}: ${res.status} ${res.text}`).toBe(`${pipeline}: 503 insufficient capacity`);
    }
    // go-livepeer refuses these before looking for capacity.
    const noMaxTokens = await postJson('/llm', { model: 'any/model', messages: [] });
    expect([noMaxTokens.status, noMaxTokens.text]).toEqual([400, 'MaxTokens not specified']);
    const silence = await postForm('/audio-to-text', {
      ...model,
      audio: { data: Buffer.from('not audio'), type: 'audio/wav', name: 'a.wav' },
    });
    expect([silence.status, silence.text]).toEqual([400, 'Unable to calculate duration']);
  });
});
