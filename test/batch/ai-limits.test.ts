// Bounds on batch AI work: at most ai.maxInFlight jobs at once (async image-to-video included),
// the rest told 503 with Retry-After; an LLM stream whose client went away ends and frees its
// slot even when the client stopped reading first (back-pressure).
import { request } from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
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
const imageReply = () => ({
  json: { images: [{ url: `data:image/png;base64,${PNG.toString('base64')}`, seed: 1, nsfw: false }] },
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An orchestrator whose answers wait until the test opens the gate. */
async function gatedOrchestrator() {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const o = await TestAiOrchestrator.start({
    offers: {
      [Capability.TextToImage]: [MODEL],
      [Capability.ImageToVideo]: ['test/i2v'],
    },
    answer: async (): Promise<AiBehavior> => {
      await gate;
      return imageReply();
    },
  });
  cleanups.push(() => o.close());
  return { o, open };
}

async function gateway(orchestrators: string[], opts: Partial<Parameters<typeof startAiGateway>[0]> = {}) {
  const gw = await startAiGateway({ orchestrators, logger, random: () => 0, ...opts });
  cleanups.push(() => gw.close());
  return gw;
}

const textToImage = (base: string) =>
  fetch(`${base}/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'a lighthouse', model_id: MODEL, width: 64, height: 32 }),
  });

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

describe('ai.maxInFlight', () => {
  it('beyond the limit: 503 BUSY with Retry-After, before anything reaches an orchestrator', async () => {
    const { o, open } = await gatedOrchestrator();
    const gw = await gateway([o.url], { maxInFlight: 2 });
    const first = textToImage(gw.base);
    const second = textToImage(gw.base);
    expect(await until(() => o.requests.length === 2, 5000)).toBe(true);

    const third = await textToImage(gw.base);
    expect(third.status).toBe(503);
    expect(third.headers.get('retry-after')).toBe('1');
    const body = await third.json();
    expect(body.error.code).toBe('BUSY');
    expect(body.error.message).toContain('limit of 2 AI jobs (ai.maxInFlight)');
    expect(o.requests).toHaveLength(2);

    open();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    // The slots are free again.
    expect(await until(() => gw.runner.inFlight === 0, 1000)).toBe(true);
    expect((await textToImage(gw.base)).status).toBe(200);
  });

  it('an async image-to-video job holds its slot after the 202, until its result is stored', async () => {
    const { o, open } = await gatedOrchestrator();
    const gw = await gateway([o.url], { maxInFlight: 1 });
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(pngHeader(64, 64))], { type: 'image/png' }), 'in.png');
    form.append('model_id', 'test/i2v');
    const started = await fetch(`${gw.base}/image-to-video`, {
      method: 'POST',
      headers: { prefer: 'respond-async' },
      body: form,
    });
    expect(started.status).toBe(202);
    const { request_id } = await started.json();
    expect(await until(() => o.requests.length === 1, 5000)).toBe(true);

    const refused = await textToImage(gw.base);
    expect(refused.status).toBe(503);
    expect((await refused.json()).error.code).toBe('BUSY');

    open();
    const poll = () =>
      fetch(`${gw.base}/image-to-video/result`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ request_id }),
      });
    let status = 202;
    for (let i = 0; i < 100 && status === 202; i++) {
      status = (await poll()).status;
      if (status === 202) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status).toBe(200);
    expect(await until(() => gw.runner.inFlight === 0, 1000)).toBe(true);
    expect((await textToImage(gw.base)).status).toBe(200);
  });
});

describe('LLM stream and a client that goes away', () => {
  it('a client that stopped reading and then disconnects: the orchestrator stream is closed within a second, the slot freed', async () => {
    // Big events, slowly: the client's buffers fill and the relay waits for 'drain'.
    const big = (i: number) =>
      JSON.stringify({
        id: 'c',
        model: 'test/llm',
        created: 1,
        choices: [{ index: 0, delta: { content: `${i}${'x'.repeat(256 * 1024)}` } }],
      });
    const o = await TestAiOrchestrator.start({
      offers: { [Capability.LLM]: ['test/llm'] },
      answer: () => ({ sse: Array.from({ length: 200 }, (_, i) => big(i)), delayMs: 20 }),
    });
    cleanups.push(() => o.close());
    const gw = await gateway([o.url]);
    const url = new URL(`${gw.base}/llm`);
    const payload = JSON.stringify({
      model: 'test/llm',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } });
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end(payload);
    });
    expect(res.statusCode).toBe(200);
    res.pause(); // reads nothing: back-pressure up to the relay
    // Long enough for every buffer between the relay and this client to fill.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const rec = o.requests[0]!;
    expect(rec.closedAt).toBeUndefined();
    expect(rec.eventsWritten).toBeLessThan(200);
    const left = Date.now();
    req.destroy();

    expect(await until(() => rec.closedAt !== undefined, 1000)).toBe(true);
    expect(rec.closedAt! - left).toBeLessThan(1000);
    // The relay loop ended (its finally ran): the job's slot is back.
    expect(await until(() => gw.runner.inFlight === 0, 1000)).toBe(true);
  });
});
