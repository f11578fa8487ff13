// Batch AI on the local orchestrator beyond the stand-ins: capacity per (pipeline, model), the
// test-only `aiPipelines` option (a streaming LLM, a pipeline removed), the fail-start and hang
// faults, and the result store's expiry.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AiPipelineHandler, AiRequest } from '../../src/local-orchestrator/ai-pipelines.ts';
import { AiResultStore } from '../../src/local-orchestrator/ai-results.ts';
import { DEFAULT_AI_MODELS } from '../../src/local-orchestrator/ai-standins.ts';
import { LocalOrchestrator, type LocalOrchestratorOptions } from '../../src/local-orchestrator/server.ts';
import { OrchestratorError } from '../../src/orchestrators/errors.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { AI_WORKER_PROTOCOL } from '../../src/orchestrators/live-video.ts';
import { segmentCredentials } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { Capability, hasCapability } from '../../src/wire/lp-rpc.ts';
import { post, type Reply } from './ai-helpers.ts';

const T2I = DEFAULT_AI_MODELS['text-to-image'][0];
const LLM = 'meta-llama/Meta-Llama-3.1-8B-Instruct';
const running: LocalOrchestrator[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((o) => o.close()));
});

async function start(opts: Partial<LocalOrchestratorOptions> = {}) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 1,
    logger: pino({ level: 'silent' }),
    ...opts,
  });
  running.push(orch);
  const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
  const segment = await segmentCredentials(info, offchainIdentity, { manifestId: 'ai' });
  const postJson = (path: string, body: unknown, signal?: AbortSignal): Promise<Reply> =>
    post(
      `${orch.url}${path}`,
      JSON.stringify(body),
      {
        'content-type': 'application/json',
        'livepeer-segment': segment,
        'livepeer-payment': '',
        authorization: AI_WORKER_PROTOCOL,
      },
      { signal },
    );
  return { orch, info, postJson };
}

const t2i = { model_id: T2I, prompt: 'x', width: 64, height: 64 };

/** A pipeline whose requests wait until released: occupies capacity for as long as a test wants. */
function gatedPipeline(models: string[], capacity?: number) {
  const waiting: (() => void)[] = [];
  const handler: AiPipelineHandler = {
    models,
    capacity,
    run: async (req: AiRequest) => {
      await new Promise<void>((resolve) => waiting.push(resolve));
      return { kind: 'json', body: { text: `done ${req.params.prompt}` } };
    },
  };
  const releaseAll = () => {
    for (const release of waiting.splice(0)) release();
  };
  return { handler, waiting, releaseAll };
}

async function until(check: () => boolean, ms = 3000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const capped = (p: Promise<unknown>) =>
  p.then(
    () => 'served',
    (e: unknown) =>
      e instanceof OrchestratorError && e.message.includes('OrchestratorCapped') ? 'capped' : e,
  );

describe('capacity per pipeline and model', () => {
  it('503 "insufficient capacity" while every slot of the model is busy; GetOrchestrator says capped', async () => {
    const gate = gatedPipeline(['cpu/slow'], 1);
    const { orch, postJson } = await start({ aiPipelines: { 'text-to-image': gate.handler } });
    const askFor = (model: string) =>
      capped(
        getOrchestrator(orch.url, {
          identity: offchainIdentity,
          timeoutMs: 3000,
          capabilities: {
            capacities: { [Capability.TextToImage]: 1 },
            constraints: { PerCapability: { [Capability.TextToImage]: { models: { [model]: {} } } } },
          },
        }),
      );
    expect(await askFor('cpu/slow')).toBe('served');

    const first = postJson('/text-to-image', { model_id: 'cpu/slow', prompt: 'one' });
    await until(() => gate.waiting.length === 1);
    const busy = await postJson('/text-to-image', { model_id: 'cpu/slow', prompt: 'two' });
    expect([busy.status, busy.text]).toEqual([503, 'insufficient capacity']);
    expect(await askFor('cpu/slow')).toBe('capped');
    const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
    // A zero capacity is the protobuf default: absent on the wire.
    expect(
      info.capabilities?.constraints?.PerCapability?.[Capability.TextToImage]?.models?.['cpu/slow'],
    ).toEqual({
      warm: true,
      capacityInUse: 1,
    });

    gate.releaseAll();
    const done = await first;
    expect([done.status, JSON.parse(done.text)]).toEqual([200, { text: 'done one' }]);
    expect(await askFor('cpu/slow')).toBe('served');
    const again = postJson('/text-to-image', { model_id: 'cpu/slow', prompt: 'three' });
    await until(() => gate.waiting.length === 1);
    gate.releaseAll();
    expect((await again).status).toBe(200);
  });
});

describe('aiPipelines (tests only)', () => {
  it('a streaming LLM: SSE chunks reach the client as they are written, before the stream ends', async () => {
    let release!: () => void;
    const holdLast = new Promise<void>((r) => {
      release = r;
    });
    const llm: AiPipelineHandler = {
      models: [LLM],
      run: async (req) => ({
        kind: 'stream',
        chunks: (async function* () {
          const n = Number(req.params.max_tokens);
          for (let i = 0; i < n - 1; i++) {
            yield {
              id: 'c1',
              model: LLM,
              choices: [{ index: 0, delta: { content: `t${i} ` }, finish_reason: null }],
            };
          }
          await holdLast;
          yield {
            id: 'c1',
            model: LLM,
            choices: [{ index: 0, delta: { content: '' }, finish_reason: 'stop' }],
          };
          yield { never: 'sent after the finish reason' };
        })(),
      }),
    };
    const { orch, info } = await start({ aiPipelines: { llm } });
    expect(hasCapability(info.capabilities?.bitstring, Capability.LLM)).toBe(true);
    expect(
      Object.keys(info.capabilities?.constraints?.PerCapability?.[Capability.LLM]?.models ?? {}),
    ).toEqual([LLM]);
    const segment = await segmentCredentials(info, offchainIdentity, { manifestId: 'ai' });
    const res = await fetchSse(orch.url, segment, { model: LLM, messages: [], max_tokens: 3, stream: true });
    expect(res.status).toBe(200);
    expect(res.type).toBe('text/event-stream');
    // The first events arrive while the last one is still held back.
    const early = await res.readUntil((t) => t.includes('t1 '));
    expect(early).toContain('data: {"id":"c1"');
    release();
    const all = await res.rest();
    const events = all
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => JSON.parse(e.slice(6)));
    expect(events.map((e) => e.choices?.[0]?.finish_reason)).toEqual([null, null, 'stop']);
  });

  it('null removes a stand-in: not advertised, and its requests get 503', async () => {
    const { info, postJson } = await start({ aiPipelines: { 'text-to-image': null } });
    expect(hasCapability(info.capabilities?.bitstring, Capability.TextToImage)).toBe(false);
    expect(hasCapability(info.capabilities?.bitstring, Capability.Upscale)).toBe(true);
    const res = await postJson('/text-to-image', t2i);
    expect([res.status, res.text]).toEqual([503, 'insufficient capacity']);
  });

  it('aiModels: the models a stand-in serves; an empty list leaves the pipeline out', async () => {
    const { info, postJson } = await start({ aiModels: { 'text-to-image': ['cpu/gradient'], upscale: [] } });
    expect(
      Object.keys(info.capabilities?.constraints?.PerCapability?.[Capability.TextToImage]?.models ?? {}),
    ).toEqual(['cpu/gradient']);
    expect(hasCapability(info.capabilities?.bitstring, Capability.Upscale)).toBe(false);
    expect((await postJson('/text-to-image', { ...t2i, model_id: 'cpu/gradient' })).status).toBe(200);
    expect((await postJson('/text-to-image', t2i)).status).toBe(503);
  });
});

describe('faults (tests and demos only)', () => {
  it('fail-start: 500 after the normal checks', async () => {
    const { postJson } = await start({ fault: 'fail-start' });
    const res = await postJson('/text-to-image', t2i);
    expect([res.status, res.text]).toEqual([
      500,
      'text-to-image container returned 500: injected fault fail-start',
    ]);
    // The checks still come first.
    expect((await postJson('/text-to-image', { ...t2i, model_id: 'other/model' })).status).toBe(503);
  });

  it('hang: never answers, holds the slot until the client gives up, then frees it', async () => {
    const { orch, postJson } = await start({ fault: 'hang', aiCapacity: 1 });
    const ac = new AbortController();
    const hung = postJson('/text-to-image', t2i, ac.signal).catch((e: Error) => e);
    const slot = async () => {
      const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
      return (
        info.capabilities?.constraints?.PerCapability?.[Capability.TextToImage]?.models?.[T2I]
          ?.capacityInUse ?? 0
      );
    };
    const end = Date.now() + 3000;
    while ((await slot()) !== 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(await slot()).toBe(1);
    const second = await postJson('/text-to-image', t2i);
    expect(second.status).toBe(503);
    await new Promise((r) => setTimeout(r, 300));
    ac.abort();
    expect(await hung).toBeInstanceOf(Error);
    const freeBy = Date.now() + 3000;
    while ((await slot()) !== 0 && Date.now() < freeBy) await new Promise((r) => setTimeout(r, 20));
    expect(await slot()).toBe(0);
  });

  it('exit-after counts from the first batch AI request too: then every connection drops', async () => {
    const { postJson } = await start({ fault: 'exit-after:100ms' });
    expect((await postJson('/text-to-image', t2i)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(await postJson('/text-to-image', t2i).catch((e: Error) => e)).toBeInstanceOf(Error);
  });

  it('hang: closing the orchestrator ends the hung requests instead of waiting for them', async () => {
    const { orch, postJson } = await start({ fault: 'hang' });
    const hung = postJson('/text-to-image', t2i).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await orch.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await hung).toBeInstanceOf(Error);
  });
});

describe('result store', () => {
  it('drops files once their time is up, and the oldest first past its byte bound', async () => {
    const store = new AiResultStore(100, 10);
    const path = store.put('r1', 'a.png', Buffer.alloc(4), 'image/png');
    expect(path).toBe('/stream/r1/a.png');
    expect(store.get('r1/a.png')?.data.length).toBe(4);
    store.put('r2', 'b.png', Buffer.alloc(4), 'image/png');
    store.put('r3', 'c.png', Buffer.alloc(4), 'image/png');
    expect(store.get('r1/a.png')).toBeUndefined();
    expect(store.get('r3/c.png')).toBeDefined();
    await new Promise((r) => setTimeout(r, 150));
    expect(store.get('r3/c.png')).toBeUndefined();
    store.close();
  });
});

/** POST /llm and read the SSE body incrementally. */
async function fetchSse(base: string, segment: string, body: unknown) {
  const { request } = await import('node:https');
  return new Promise<{
    status: number;
    type: string;
    readUntil: (done: (text: string) => boolean) => Promise<string>;
    rest: () => Promise<string>;
  }>((resolve, reject) => {
    const req = request(
      `${base}/llm`,
      {
        method: 'POST',
        rejectUnauthorized: false,
        headers: {
          'content-type': 'application/json',
          'livepeer-segment': segment,
          'livepeer-payment': '',
          authorization: AI_WORKER_PROTOCOL,
        },
      },
      (res) => {
        let text = '';
        let ended = false;
        const listeners: (() => void)[] = [];
        res.on('data', (c: Buffer) => {
          text += c.toString();
          for (const l of listeners.splice(0)) l();
        });
        res.on('end', () => {
          ended = true;
          for (const l of listeners.splice(0)) l();
        });
        const wait = () => new Promise<void>((r) => listeners.push(r));
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          readUntil: async (done) => {
            while (!done(text)) {
              if (ended) throw new Error(`stream ended before the condition: ${text}`);
              await wait();
            }
            return text;
          },
          rest: async () => {
            while (!ended) await wait();
            return text;
          },
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
