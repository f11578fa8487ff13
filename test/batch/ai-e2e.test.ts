// Batch AI end to end: the gateway in front of the local orchestrator (its CPU stand-ins), the
// output checked as a user would (decoded image sizes with ffprobe), and on-chain tickets the
// local orchestrator verifies before it does the work.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LivePayments } from '../../src/live/live-payer.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { accountIdentity } from '../../src/payments/identity.ts';
import { add, mul, type Rational, rat, sub, ZERO } from '../../src/payments/rational.ts';
import { Capability } from '../../src/wire/lp-rpc.ts';
import { startAiGateway } from '../helpers/ai-orchestrator.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });
const T2I = 'ByteDance/SDXL-Lightning';
const I2I = 'timbrooks/instruct-pix2pix';
const UPSCALE = 'stabilityai/stable-diffusion-x4-upscaler';

let work: Workdir;
let inputPng: Buffer;

async function dimensions(
  data: Buffer,
  name: string,
): Promise<{ codec: string; width: number; height: number }> {
  const file = await work.write(name, data);
  const { stdout } = await run('ffprobe', [
    ...['-v', 'error', '-select_streams', 'v:0'],
    ...['-show_entries', 'stream=codec_name,width,height', '-of', 'json', file],
  ]);
  const s = JSON.parse(stdout).streams[0];
  return { codec: s.codec_name, width: s.width, height: s.height };
}

async function fetchResult(url: string): Promise<Buffer> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

function imageForm(fields: Record<string, string>): FormData {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(inputPng)], { type: 'image/png' }), 'input.png');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

beforeAll(async () => {
  work = await makeWorkdir();
  const file = work.path('input.png');
  await run('ffmpeg', [
    '-v',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=96x64',
    '-frames:v',
    '1',
    '-y',
    file,
  ]);
  inputPng = await readFile(file);
});
afterAll(async () => {
  await work?.remove();
});

describe('batch AI through the gateway to the local orchestrator (off-chain)', () => {
  let orch: LocalOrchestrator;
  let gw: Awaited<ReturnType<typeof startAiGateway>>;

  beforeAll(async () => {
    orch = await startFreeOrchestrator(logger, ['passthrough'], { capacity: 2 });
    gw = await startAiGateway({ orchestrators: [orch.url], logger });
  });
  afterAll(async () => {
    await gw?.close();
    await orch?.close();
  });

  it('text-to-image: a PNG of the requested size, hosted by the gateway', async () => {
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a red fox in snow', model_id: T2I, width: 256, height: 128, seed: 3 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-orchestrator')).toBe(orch.url);
    expect(res.headers.get('livepeer-tries')).toBe('1');
    const body = await res.json();
    expect(body.images).toHaveLength(1);
    expect(body.images[0].seed).toBe(3);
    expect(body.images[0].url.startsWith(`${gw.base}/results/`)).toBe(true);
    const png = await fetchResult(body.images[0].url);
    expect(await dimensions(png, 't2i.png')).toEqual({ codec: 'png', width: 256, height: 128 });
  });

  it('image-to-image: the output has the input image size', async () => {
    const res = await fetch(`${gw.base}/image-to-image`, {
      method: 'POST',
      body: imageForm({ prompt: 'make it blue', model_id: I2I }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    const png = await fetchResult(body.images[0].url);
    const size = await dimensions(png, 'i2i.png');
    expect([size.width, size.height]).toEqual([96, 64]);
  });

  it('upscale: four times the input size', async () => {
    const res = await fetch(`${gw.base}/upscale`, {
      method: 'POST',
      body: imageForm({ prompt: 'sharper', model_id: UPSCALE }),
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    const png = await fetchResult(body.images[0].url);
    const size = await dimensions(png, 'up.png');
    expect([size.width, size.height]).toEqual([384, 256]);
  });

  it('a model the local orchestrator does not advertise: 503 naming it; no model named: the default it serves', async () => {
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a red fox', model_id: 'black-forest-labs/FLUX.1-dev' }),
    });
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.message).toContain('text-to-image "black-forest-labs/FLUX.1-dev"');

    // A pipeline the local orchestrator has no stand-in for: not offered at all.
    const llm = await fetch(`${gw.base}/llm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(llm.status).toBe(503);
    const reason = (await llm.json()).error.message as string;
    expect(reason).toContain('llm "meta-llama/llama-3.1-8B-Instruct"');
    expect(reason).toContain('does not offer LLM');

    // No model named: go-livepeer's default for the pipeline, which the stand-ins also serve.
    const plain = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a red fox', width: 64, height: 64 }),
    });
    expect(plain.status).toBe(200);
    const images = (await plain.json()).images as { url: string }[];
    expect(images).toHaveLength(1);
  });

  it("the runner's refusal (a bad size) comes back as 400, not retried", async () => {
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a red fox', model_id: T2I, width: 100, height: 100 }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('livepeer-tries')).toBe('1');
    expect((await res.json()).error.message).toContain('divisible by 8');
  });
});

describe('batch AI retried across local orchestrators', () => {
  it('one failing to start (500) is skipped: the other answers, Livepeer-Tries 2', async () => {
    const failing = await LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models: ['passthrough'],
      pricePerUnit: 0n,
      pixelsPerUnit: 1n,
      capacity: 2,
      logger,
      fault: 'fail-start',
    });
    const working = await startFreeOrchestrator(logger, ['passthrough'], { capacity: 2 });
    const gw = await startAiGateway({ orchestrators: [failing.url, working.url], logger, random: () => 0 });
    try {
      const res = await fetch(`${gw.base}/upscale`, {
        method: 'POST',
        body: imageForm({ prompt: 'sharper', model_id: UPSCALE }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('livepeer-tries')).toBe('2');
      expect(res.headers.get('livepeer-orchestrator')).toBe(working.url);
      const body = await res.json();
      expect(body.images).toHaveLength(1);
      const size = await dimensions(await fetchResult(body.images[0].url), 'retried.png');
      expect([size.width, size.height]).toEqual([384, 256]);
    } finally {
      await gw.close();
      await failing.close();
      await working.close();
    }
  });
});

describe('batch AI paid with tickets the local orchestrator checks', () => {
  const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
  const account = privateKeyToAccount(TEST_KEY);
  let orch: LocalOrchestrator;
  let gw: Awaited<ReturnType<typeof startAiGateway>>;

  beforeAll(async () => {
    orch = await LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models: ['passthrough'],
      pricePerUnit: 1n,
      pixelsPerUnit: 1n,
      capacity: 2,
      logger,
      payments: {
        recipient: '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F',
        ticketEV: 1_000_000_000n,
        faceValue: 4_000_000_000n,
        l1Block: () => 1000n,
        round: { number: 10n, blockHash: `0x${'11'.repeat(32)}` },
      },
    });
    const payments = new LivePayments({
      account,
      maxTicketEV: 10_000_000_000n,
      maxTotalEV: 100_000_000_000n,
      intervalMs: 1000,
    });
    gw = await startAiGateway({ orchestrators: [orch.url], logger, payments });
  });
  afterAll(async () => {
    await gw?.close();
    await orch?.close();
  });

  it('pays output pixels × price in tickets; the orchestrator credits them and does the work', async () => {
    const manifestId = `${Capability.TextToImage}_${T2I}`;
    const recipient = orch.recipient!;
    // Watched, not replaced: the orchestrator's own accounting runs as always.
    const debit = vi.spyOn(recipient, 'debit');
    const credit = vi.spyOn(recipient, 'credit');
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gw.base}/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `paid fox ${i}`, model_id: T2I, width: 256, height: 128 }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
      // 256 × 128 pixels × 1 wei.
      expect(res.headers.get('livepeer-fee-wei')).toBe('32768');
      const body = await res.json();
      const png = await fetchResult(body.images[0].url);
      expect((await dimensions(png, `paid-${i}.png`)).width).toBe(256);
    }
    const ours = (calls: [string, string, Rational][]) =>
      calls.filter(
        ([sender, m]) => m === manifestId && sender.toLowerCase() === account.address.toLowerCase(),
      );
    const debits = ours(debit.mock.calls as [string, string, Rational][]).map(([, , amount]) => amount);
    const credits = ours(credit.mock.calls as [string, string, Rational][]).map(([, , amount]) => amount);
    debit.mockRestore();
    credit.mockRestore();
    // Each request debited exactly its output pixels × price: 256 × 128 × 1 wei.
    const fee = mul(rat(256n * 128n), rat(1n));
    expect(debits).toEqual([fee, fee]);
    // The tickets' EV came in, and what is left is exactly that minus the two debits.
    expect(credits.length).toBeGreaterThan(0);
    const credited = credits.reduce(add, ZERO);
    expect(recipient.balance(account.address, manifestId)).toEqual(sub(credited, add(fee, fee)));
  });

  it('a free orchestrator with tickets turned on does the work: the payment names the sender, no tickets', async () => {
    const free = await LocalOrchestrator.start({
      serviceAddr: '127.0.0.1:0',
      models: ['passthrough'],
      pricePerUnit: 0n,
      pixelsPerUnit: 1n,
      capacity: 2,
      logger,
      payments: {
        recipient: '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F',
        ticketEV: 1_000_000_000n,
        faceValue: 4_000_000_000n,
        l1Block: () => 1000n,
        round: { number: 10n, blockHash: `0x${'11'.repeat(32)}` },
      },
    });
    const payments = new LivePayments({
      account,
      maxTicketEV: 10_000_000_000n,
      maxTotalEV: 100_000_000_000n,
      intervalMs: 1000,
    });
    const paying = await startAiGateway({ orchestrators: [free.url], logger, payments, maxTries: 1 });
    try {
      const res = await fetch(`${paying.base}/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'free fox', model_id: T2I, width: 64, height: 64 }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(res.headers.get('livepeer-fee-wei')).toBe('0');
      const body = await res.json();
      expect((await dimensions(await fetchResult(body.images[0].url), 'free.png')).width).toBe(64);
      expect(free.recipient!.winningTickets).toHaveLength(0);
    } finally {
      await paying.close();
      await free.close();
    }
  });

  it('without a payment the orchestrator refuses the work; the gateway says so', async () => {
    // Signed by the same account, but no tickets in Livepeer-Payment.
    const unpaid = await startAiGateway({
      orchestrators: [orch.url],
      logger,
      maxTries: 1,
      identity: accountIdentity(account),
    });
    try {
      const res = await fetch(`${unpaid.base}/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'free fox', model_id: T2I, width: 64, height: 64 }),
      });
      expect(res.status).toBe(503);
      const body = await res.json();
      // The empty payment names no sender, so the segment signature cannot be the sender's.
      expect(body.error.failures).toEqual([`${orch.url}: 403 ErrSegSig`]);
    } finally {
      await unpaid.close();
    }
  });
});
