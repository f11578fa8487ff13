// The batch AI routes' edges: schema errors name the field, 413 above the limit, 415 for the
// wrong content type, 503 naming pipeline and model when nobody offers it, the OpenAPI
// document and the docs page.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Capability, pngHeader, startAiGateway, TestAiOrchestrator } from '../helpers/ai-orchestrator.ts';

const logger = pino({ level: 'silent' });

describe('batch AI routes: validation and errors', () => {
  let orch: TestAiOrchestrator;
  let gw: Awaited<ReturnType<typeof startAiGateway>>;

  beforeAll(async () => {
    orch = await TestAiOrchestrator.start({
      offers: {
        [Capability.TextToImage]: ['stabilityai/sdxl-turbo'],
        [Capability.ImageToImage]: ['img-model'],
      },
      answer: () => ({ json: { images: [] } }),
    });
    gw = await startAiGateway({ orchestrators: [orch.url], logger, bodyLimitBytes: 64 * 1024 });
  });
  afterAll(async () => {
    await gw?.close();
    await orch?.close();
  });

  const postJson = (path: string, body: unknown) =>
    fetch(`${gw.base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('names a missing required field in a 400', async () => {
    const res = await postJson('/text-to-image', { model_id: 'stabilityai/sdxl-turbo' });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe('BAD_REQUEST');
    expect(body.error.message).toBe('missing required field "prompt"');
    expect(orch.requests).toHaveLength(0);
  });

  it('names a field of the wrong type or out of range', async () => {
    let res = await postJson('/text-to-image', { prompt: 'a cat', width: 'wide' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "width" must be integer');
    // Checked as written: a number in a string, or a number where text goes, is not converted.
    res = await postJson('/text-to-image', { prompt: 'a cat', width: '512' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "width" must be integer');
    res = await postJson('/text-to-image', { prompt: 5 });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "prompt" must be string');
    res = await postJson('/text-to-image', { prompt: 'a cat', num_images_per_prompt: 0 });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "num_images_per_prompt" must be >= 1');
    res = await postJson('/llm', { messages: [{ role: 'user' }] });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('missing required field "messages[0].content"');
    res = await postJson('/llm', { messages: [] });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "messages" must NOT have fewer than 1 items');
  });

  it('the measured abuse cases: refused by the gateway, never sent on, never a 5xx', async () => {
    const before = orch.requests.length;
    let res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt":"x","width":1e400}',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toEqual({
      code: 'NOT_FINITE',
      message: 'field "width" is a number too large to represent',
    });
    res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"messages":[{"role":"user","content":"hi"}],"max_tokens":1e400}',
    });
    expect(res.status).toBe(400);
    res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt":"x","height":18446744073709551617}',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "height" must be <= 2048');
    // Multipart text converted to a number: "1e400" is Infinity there too.
    let form = new FormData();
    form.append('prompt', 'restyle');
    form.append('image', new Blob([new Uint8Array(pngHeader(8, 8))]), 'x.png');
    form.append('seed', '1e400');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    // A header claiming 60000×60000.
    form = new FormData();
    form.append('prompt', 'restyle');
    form.append('image', new Blob([new Uint8Array(pngHeader(60000, 60000))]), 'x.png');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('IMAGE_TOO_LARGE');
    // A PNG cut short, and one with a flipped bit (its CRC no longer matches).
    const png = pngHeader(8, 8);
    const flipped = Buffer.from(png);
    flipped[18]! ^= 0x10;
    for (const bad of [png.subarray(0, 40), flipped]) {
      form = new FormData();
      form.append('prompt', 'restyle');
      form.append('image', new Blob([new Uint8Array(bad)]), 'x.png');
      res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
      expect(res.status).toBe(422);
    }
    // A huge model id (900 KB in the field; this gateway's body limit is 64 KiB): refused by the schema, and never echoed back whole.
    res = await postJson('/text-to-image', { prompt: 'x', model_id: 'm'.repeat(60_000) });
    expect(res.status).toBe(400);
    expect((await res.text()).length).toBeLessThan(2000);
    expect(orch.requests.length).toBe(before);
  });

  it('400 for a body that is not JSON', async () => {
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt": ',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('BAD_REQUEST');
  });

  it('multipart: a missing file, a text field where the file goes, an image that is not one', async () => {
    let form = new FormData();
    form.append('prompt', 'restyle');
    let res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('missing required field "image" (a image file upload)');

    form = new FormData();
    form.append('prompt', 'restyle');
    form.append('image', 'not a file');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "image" must be a file upload');

    form = new FormData();
    form.append('prompt', 'restyle');
    form.append('model_id', 'img-model');
    form.append('image', new Blob([new Uint8Array(Buffer.from('hello'))]), 'x.png');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    // Undecodable media is the gateway's 422, before any orchestrator sees it.
    expect(res.status).toBe(422);
    expect((await res.json()).error).toEqual({
      code: 'UNREADABLE_IMAGE',
      message: '"image" is not a PNG, JPEG, GIF or WebP image',
    });

    form = new FormData();
    form.append('prompt', 'restyle');
    form.append('image', new Blob([new Uint8Array(pngHeader(8, 8))]), 'x.png');
    form.append('strength', '1.5');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('field "strength" must be <= 1');
    expect(orch.requests).toHaveLength(0);
  });

  it('413 above the body limit, JSON and multipart', async () => {
    let res = await postJson('/text-to-image', { prompt: 'x'.repeat(70 * 1024) });
    expect(res.status).toBe(413);
    let body = await res.json();
    expect(body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(body.error.message).toContain('65536 bytes');
    const form = new FormData();
    form.append('prompt', 'restyle');
    form.append('image', new Blob([new Uint8Array(Buffer.alloc(70 * 1024))]), 'big.png');
    res = await fetch(`${gw.base}/image-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(413);
    body = await res.json();
    expect(body.error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('415 for the wrong content type', async () => {
    let res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'a cat',
    });
    expect(res.status).toBe(415);
    let body = await res.json();
    expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(body.error.message).toBe('text-to-image takes application/json, not text/plain');
    const form = new FormData();
    form.append('prompt', 'a cat');
    res = await fetch(`${gw.base}/text-to-image`, { method: 'POST', body: form });
    expect(res.status).toBe(415);
    res = await postJson('/image-to-image', { prompt: 'x' });
    expect(res.status).toBe(415);
    body = await res.json();
    expect(body.error.message).toBe('image-to-image takes multipart/form-data, not application/json');
  });

  it('503 naming pipeline, model and why when no orchestrator offers them', async () => {
    const res = await postJson('/text-to-image', { prompt: 'a cat', model_id: 'no/such-model' });
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.code).toBe('NO_ORCHESTRATOR');
    expect(body.error.message).toContain('text-to-image "no/such-model"');
    expect(body.error.model_id).toBe('no/such-model');
    expect(body.error.reasons).toHaveLength(1);
    expect(body.error.reasons[0]).toContain(orch.url);
    expect(body.error.reasons[0]).toContain('no-model');
    expect(res.headers.get('livepeer-tries')).toBe('0');

    const llm = await postJson('/llm', { messages: [{ role: 'user', content: 'hi' }] });
    expect(llm.status).toBe(503);
    const llmBody = await llm.json();
    // No model named: go-livepeer's default for the pipeline.
    expect(llmBody.error.message).toContain('llm "meta-llama/llama-3.1-8B-Instruct"');
    expect(llmBody.error.reasons[0]).toContain('does not offer LLM');
  });

  it('serves its OpenAPI document listing every REST route, and the docs page', async () => {
    const res = await fetch(`${gw.base}/openapi.json`);
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    for (const path of [
      '/text-to-image',
      '/image-to-image',
      '/upscale',
      '/image-to-video',
      '/image-to-video/result',
      '/audio-to-text',
      '/segment-anything-2',
      '/image-to-text',
      '/text-to-speech',
      '/llm',
      '/results/{requestId}/{name}',
      '/live/video-to-video/{stream}/whip',
      '/live/video-to-video/{stream}/whep',
      '/live/{manifestId}/{seq}.ts',
      '/orchestrators',
    ]) {
      expect(doc.paths[path], path).toBeDefined();
    }
    const t2i = doc.paths['/text-to-image'].post.requestBody.content['application/json'].schema;
    expect(t2i.required).toEqual(['prompt']);
    expect(t2i.properties.width.default).toBe(512);
    expect(t2i.properties.height.default).toBe(512);
    const i2i = doc.paths['/image-to-image'].post.requestBody.content['multipart/form-data'].schema;
    expect(i2i.properties.image).toMatchObject({ type: 'string', format: 'binary' });

    const page = await fetch(`${gw.base}/api.html`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('openapi.json');
  });

  it('404 for an unknown or malformed result path', async () => {
    let res = await fetch(`${gw.base}/results/0123456789abcdef/nothing.png`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe('NOT_FOUND');
    res = await fetch(`${gw.base}/results/..%2F..%2Fetc/passwd`);
    expect(res.status).toBe(404);
  });

  it('image-to-video/result: 400 for an unknown request id', async () => {
    const res = await postJson('/image-to-video/result', { request_id: 'abcdef0123456789' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toBe('invalid request ID');
  });
});
