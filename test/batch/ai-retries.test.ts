// Batch AI through the gateway to scripted orchestrators on 127.0.0.1: retries to another
// orchestrator (500, a hang, no capacity), no retry for the caller's bad request, the price
// ceiling, go-livepeer's headers on the wire, results re-hosted by the gateway, and an LLM stream
// relayed event by event.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { hasCapability } from '../../src/wire/lp-rpc.ts';
import {
  type AiBehavior,
  Capability,
  pngHeader,
  startAiGateway,
  TestAiOrchestrator,
} from '../helpers/ai-orchestrator.ts';

const logger = pino({ level: 'silent' });
const MODEL = 'test/t2i';
const PNG = pngHeader(64, 32);
const imageReply = (seed = 7) => ({
  json: { images: [{ url: `data:image/png;base64,${PNG.toString('base64')}`, seed, nsfw: false }] },
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function orchestrator(
  answer: (n: number) => AiBehavior,
  extra: Partial<Parameters<typeof TestAiOrchestrator.start>[0]> = {},
) {
  let n = 0;
  const o = await TestAiOrchestrator.start({
    offers: { [Capability.TextToImage]: [MODEL], [Capability.LLM]: ['test/llm'] },
    answer: () => answer(n++),
    ...extra,
  });
  cleanups.push(() => o.close());
  return o;
}

async function gateway(orchestrators: string[], opts: Partial<Parameters<typeof startAiGateway>[0]> = {}) {
  const gw = await startAiGateway({ orchestrators, logger, random: () => 0, ...opts });
  cleanups.push(() => gw.close());
  return gw;
}

const textToImage = (base: string, body: Record<string, unknown> = {}) =>
  fetch(`${base}/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'a lighthouse', model_id: MODEL, width: 64, height: 32, ...body }),
  });

describe('batch AI retries', () => {
  it('an orchestrator answering 500 is skipped: one answer from the next, Livepeer-Tries 2', async () => {
    const bad = await orchestrator(() => ({ status: 500, text: 'runner crashed' }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([bad.url, good.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(good.url);
    const body = await res.json();
    expect(body.images).toHaveLength(1);
    expect(bad.requests).toHaveLength(1);
    expect(good.requests).toHaveLength(1);
    // The failing one is suspended; the next request goes straight to the good one.
    const states = gw.pool.list();
    expect(states.find((s) => s.url === bad.url)?.state).toBe('suspended');
    const again = await textToImage(gw.base);
    expect(again.headers.get('livepeer-tries')).toBe('1');
    expect(bad.requests).toHaveLength(1);
  });

  it('an orchestrator that hangs is given up after the try timeout, then the next answers', async () => {
    const hanging = await orchestrator(() => ({ hang: true }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([hanging.url, good.url], { tryTimeoutMs: 400 });
    const started = Date.now();
    const res = await textToImage(gw.base);
    const took = Date.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(good.url);
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3000);
    expect(hanging.requests).toHaveLength(1);
  });

  it('a reply that starts in time but stalls is given up after the reply timeout, then the next answers', async () => {
    const stalling = await orchestrator(() => ({ stallAfterHeaders: true }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([stalling.url, good.url], { tryTimeoutMs: 5000, replyTimeoutMs: 300 });
    const started = Date.now();
    const res = await textToImage(gw.base);
    const took = Date.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(good.url);
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(3000);
    expect(gw.pool.list().find((s) => s.url === stalling.url)?.state).toBe('suspended');
  });

  it('"insufficient capacity" goes to the next orchestrator without suspending the busy one', async () => {
    const busy = await orchestrator(() => ({ status: 503, text: 'insufficient capacity' }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([busy.url, good.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    // Not suspended: with the same draw order, the next request asks it first again.
    await textToImage(gw.base);
    expect(busy.requests).toHaveLength(2);
  });

  it("a 400 from the orchestrator (the caller's bad request) comes back without a retry", async () => {
    const strict = await orchestrator(() => ({
      status: 400,
      text: 'height and width have to be divisible by 8 but are 33 and 64.',
    }));
    const other = await orchestrator(() => imageReply());
    const gw = await gateway([strict.url, other.url]);
    const res = await textToImage(gw.base, { height: 33 });
    expect(res.status).toBe(400);
    expect(res.headers.get('livepeer-tries')).toBe('1');
    expect(res.headers.get('livepeer-orchestrator')).toBe(strict.url);
    const body = await res.json();
    expect(body.error.code).toBe('REJECTED_BY_ORCHESTRATOR');
    expect(body.error.message).toContain('divisible by 8');
    expect(other.requests).toHaveLength(0);
    await textToImage(gw.base, { height: 40 });
    expect(strict.requests).toHaveLength(2);
  });

  it('all orchestrators failing: 503 listing each failure, up to maxTries', async () => {
    const a = await orchestrator(() => ({ status: 500, text: 'CUDA out of memory' }));
    const b = await orchestrator(() => ({ status: 502, text: 'bad gateway' }));
    const c = await orchestrator(() => imageReply());
    const gw = await gateway([a.url, b.url, c.url], { maxTries: 2 });
    const res = await textToImage(gw.base);
    expect(res.status).toBe(503);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    const body = await res.json();
    expect(body.error.code).toBe('ORCHESTRATORS_FAILED');
    expect(body.error.failures).toEqual([`${a.url}: 500 CUDA out of memory`, `${b.url}: 502 bad gateway`]);
    expect(c.requests).toHaveLength(0);
  });

  it('no new try once the retry budget is spent', async () => {
    // A failure that comes late (not a hang: that has its own, shorter timeout per try).
    const slow = await orchestrator(() => ({ status: 500, text: 'runner crashed', afterMs: 300 }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([slow.url, good.url], { tryTimeoutMs: 1000, retryTimeoutMs: 200 });
    const res = await textToImage(gw.base);
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.message).toContain('retry budget of 200 ms used up');
    expect(good.requests).toHaveLength(0);
  });

  it('with the default settings a hung orchestrator is left within the retry budget and the next answers', async () => {
    const ai = loadConfig({ argv: [], env: {} }).ai;
    // What the defaults promise: a try given up on leaves budget for another.
    expect(ai.tryTimeout).toBeLessThan(ai.processingRetryTimeout);
    const hanging = await orchestrator(() => ({ hang: true }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([hanging.url, good.url], {
      maxTries: ai.maxTries,
      retryTimeoutMs: ai.processingRetryTimeout,
      tryTimeoutMs: ai.tryTimeout,
      replyTimeoutMs: ai.replyTimeout,
      maxInFlight: ai.maxInFlight,
    });
    const started = Date.now();
    const res = await textToImage(gw.base);
    const took = Date.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(good.url);
    expect(took).toBeGreaterThanOrEqual(ai.tryTimeout);
    expect(took).toBeLessThan(ai.processingRetryTimeout);
    expect(hanging.requests).toHaveLength(1);
  }, 60_000);

  it('a stream lasting longer than the try timeout, its events coming in time, is relayed to the end', async () => {
    const chunk = (content: string, finish = '') =>
      JSON.stringify({
        id: 'c',
        model: 'test/llm',
        created: 1,
        choices: [{ index: 0, delta: { content }, finish_reason: finish }],
      });
    // Four gaps of 250 ms: the whole stream takes longer than the 400 ms try timeout.
    const o = await orchestrator(() => ({
      sse: [chunk('a'), chunk('b'), chunk('c'), chunk('d', 'stop')],
      delayMs: 250,
    }));
    const gw = await gateway([o.url], { tryTimeoutMs: 400, replyTimeoutMs: 10_000 });
    const res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test/llm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    const events = (await res.text()).split('\n\n').filter(Boolean);
    expect(events).toHaveLength(4);
    expect(events[3]).toContain('"stop"');
  });

  it('an orchestrator priced above the ceiling is never chosen', async () => {
    const pricey = await orchestrator(() => imageReply(), { pricePerUnit: 1000n, pixelsPerUnit: 1n });
    const cheap = await orchestrator(() => imageReply(), { pricePerUnit: 1n, pixelsPerUnit: 1n });
    const ceiling = new PriceCeiling({ maxPricePerUnit: 10n, pixelsPerUnit: 1n });
    const gw = await gateway([pricey.url, cheap.url], { priceCeiling: ceiling });
    for (let i = 0; i < 4; i++) {
      const res = await textToImage(gw.base);
      expect(res.status).toBe(200);
      expect(res.headers.get('livepeer-orchestrator')).toBe(cheap.url);
    }
    expect(pricey.requests).toHaveLength(0);

    const onlyPricey = await gateway([pricey.url], { priceCeiling: ceiling });
    const res = await textToImage(onlyPricey.base);
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.reasons[0]).toContain('too-expensive');
    expect(pricey.requests).toHaveLength(0);
  });
});

describe('batch AI on the wire', () => {
  it("sends go-livepeer's headers, the schema defaults and the model, and re-hosts the result", async () => {
    const o = await orchestrator(() => imageReply(42));
    const gw = await gateway([o.url]);
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a lighthouse', model_id: MODEL }),
    });
    expect(res.status).toBe(200);
    const sent = o.requests[0]!;
    expect(sent.path).toBe('/text-to-image');
    expect(sent.headers.authorization).toBe('Livepeer-AI-Worker-1.0');
    // Off-chain: go-livepeer's empty payment header.
    expect(sent.headers['livepeer-payment']).toBe('');
    expect(Buffer.from(sent.segment!.manifestId!).toString()).toBe(`${Capability.TextToImage}_${MODEL}`);
    expect(Buffer.from(sent.segment!.authToken!.token!)).toEqual(Buffer.from(o.authToken.token!));
    expect(hasCapability(sent.segment!.capabilities!.bitstring, Capability.TextToImage)).toBe(true);
    expect(JSON.parse(sent.body.toString())).toEqual({
      model_id: MODEL,
      loras: '',
      prompt: 'a lighthouse',
      // go-livepeer's 512 × 512, not ai-runner's documented 1024 × 576.
      height: 512,
      width: 512,
      guidance_scale: 7.5,
      negative_prompt: '',
      safety_check: true,
      num_inference_steps: 50,
      num_images_per_prompt: 1,
    });
    const body = await res.json();
    expect(body.images[0].seed).toBe(42);
    expect(body.images[0].nsfw).toBe(false);
    const url: string = body.images[0].url;
    expect(url.startsWith(`${gw.base}/results/`)).toBe(true);
    expect(res.headers.get('livepeer-request-id')).toBe(url.split('/')[4]);
    const file = await fetch(url);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await file.arrayBuffer())).toEqual(PNG);
  });

  it('downloads a result the orchestrator points at by URL', async () => {
    const files = new Map([['/stream/abc/out.png', { type: 'image/png', data: PNG }]]);
    let self = '';
    const o = await orchestrator(
      () => ({ json: { images: [{ url: `${self}/stream/abc/out.png`, seed: 1, nsfw: false }] } }),
      { files },
    );
    self = o.url;
    const gw = await gateway([o.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.images[0].url).toMatch(new RegExp(`^${gw.base}/results/[0-9a-f]{16}/0-out\\.png$`));
    expect(Buffer.from(await (await fetch(body.images[0].url)).arrayBuffer())).toEqual(PNG);
  });

  it("a result URL on another host than the orchestrator's is refused: the next orchestrator answers", async () => {
    // Another machine as far as host names go (127.0.0.2 is this one's loopback all the same).
    const elsewhere = await TestAiOrchestrator.start({
      offers: {},
      answer: () => ({ status: 404, text: 'no' }),
      files: new Map([['/secret.png', { type: 'image/png', data: PNG }]]),
      host: '127.0.0.2',
    });
    cleanups.push(() => elsewhere.close());
    const pointing = await orchestrator(() => ({
      json: { images: [{ url: `${elsewhere.url}/secret.png`, seed: 1, nsfw: false }] },
    }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([pointing.url, good.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(good.url);
    expect(elsewhere.downloads).toEqual([]);
    const state = gw.pool.list().find((s) => s.url === pointing.url);
    expect(state?.state).toBe('suspended');

    // With nobody else to ask, the caller learns why.
    const alone = await gateway([pointing.url]);
    const refused = await textToImage(alone.base);
    expect(refused.status).toBe(503);
    const body = await refused.json();
    expect(body.error.failures[0]).toBe(
      `${pointing.url}: result URL ${elsewhere.url}/secret.png is not on the orchestrator's own host 127.0.0.1`,
    );
    expect(elsewhere.downloads).toEqual([]);
  });

  it('a result URL that cannot be fetched is a 502, not a retry', async () => {
    const o = await orchestrator(() => ({
      json: { images: [{ url: 'https://127.0.0.1:1/nothing.png', seed: 1, nsfw: false }] },
    }));
    const other = await orchestrator(() => imageReply());
    const gw = await gateway([o.url, other.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(502);
    expect((await res.json()).error.code).toBe('RESULT_UNAVAILABLE');
    expect(other.requests).toHaveLength(0);
  });

  it('a reply that is not JSON counts as a failure: the next orchestrator answers', async () => {
    const broken = await orchestrator(() => ({ status: 200, text: '<html>oops</html>' }));
    const good = await orchestrator(() => imageReply());
    const gw = await gateway([broken.url, good.url]);
    const res = await textToImage(gw.base);
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
  });

  it('LLM stream: Server-Sent Events reach the client before the orchestrator finishes', async () => {
    const chunk = (content: string, finish = '') =>
      JSON.stringify({
        id: 'chat-1',
        model: 'test/llm',
        created: 1,
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
        choices: [{ index: 0, delta: { role: 'assistant', content }, finish_reason: finish }],
      });
    const sent = [chunk('Hel'), chunk('lo'), chunk('!', 'stop')];
    const o = await orchestrator(() => ({ sse: [...sent, '[DONE]'], delayMs: 300 }));
    const gw = await gateway([o.url]);
    const started = Date.now();
    const res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test/llm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('livepeer-tries')).toBe('1');
    const reader = res.body!.getReader();
    const arrivals: { at: number; text: string }[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
      arrivals.push({ at: Date.now() - started, text: Buffer.from(value).toString() });
    }
    const ended = Date.now() - started;
    const events = text
      .split('\n\n')
      .filter(Boolean)
      .map((e) => e.replace(/^data: /, ''));
    expect(events).toEqual(sent);
    // The first event arrived while the orchestrator still had two 300 ms pauses to go.
    expect(arrivals[0]!.text).toContain('Hel');
    expect(ended - arrivals[0]!.at).toBeGreaterThanOrEqual(450);
    const body = JSON.parse(o.requests[0]!.body.toString());
    expect(body).toMatchObject({ model: 'test/llm', stream: true, max_tokens: 256, temperature: 0.7 });
  });

  it('LLM stream: a client that goes away closes the stream to the orchestrator', async () => {
    const chunk = (content: string) =>
      JSON.stringify({
        id: 'c',
        model: 'test/llm',
        created: 1,
        choices: [{ index: 0, delta: { role: 'assistant', content } }],
      });
    const o = await orchestrator(() => ({
      sse: Array.from({ length: 20 }, (_, i) => chunk(`t${i}`)),
      delayMs: 100,
    }));
    const gw = await gateway([o.url]);
    const ac = new AbortController();
    const res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test/llm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toContain('t0');
    ac.abort();
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(o.requests[0]!.closedEarly).toBe(true);
    expect(o.requests[0]!.eventsWritten).toBeLessThan(10);
  });

  it('LLM stream: an orchestrator gone quiet ends the stream with an error event', async () => {
    const o = await orchestrator(() => ({ sse: ['{"choices":[]}'], delayMs: 1000 }));
    const gw = await gateway([o.url], { tryTimeoutMs: 300 });
    const res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'test/llm', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    const event = JSON.parse(text.replace(/^data: /, ''));
    expect(event.error.code).toBe('STREAM_FAILED');
    expect(event.error.message).toContain('stream idle for 300 ms');
  });

  it('LLM without stream: the JSON reply as the orchestrator sent it', async () => {
    const reply = {
      id: 'chat-2',
      model: 'test/llm',
      created: 2,
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi!' }, finish_reason: 'stop' }],
    };
    const o = await orchestrator(() => ({ json: reply }));
    const gw = await gateway([o.url]);
    const res = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'test/llm',
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 16,
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(reply);
  });
});
