// Paid batch AI on the local orchestrator: real PM tickets from the gateway's TicketSender (public
// Hardhat test key #0), go-livepeer's checks (ProcessPayment, SufficientBalance) and its fee
// (output pixels × the price the payment expected), debited after the work.
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_AI_MODELS } from '../../src/local-orchestrator/ai-standins.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { AI_WORKER_PROTOCOL } from '../../src/orchestrators/live-video.ts';
import { segmentCredentials } from '../../src/payments/credentials.ts';
import { accountIdentity } from '../../src/payments/identity.ts';
import { add, mul, type Rational, rat, sub } from '../../src/payments/rational.ts';
import { TicketSender } from '../../src/payments/sender.ts';
import { Capability, decodeMessage, encodeMessage, type Payment } from '../../src/wire/lp-rpc.ts';
import { form, post, type Reply, testImage } from './ai-helpers.ts';

const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const OTHER_KEY: Hex = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const EV = 1_000_000_000n;
/** Wei per pixel: a 256×256 image costs 6.55 tickets' EV. */
const PRICE = 100_000n;
const T2I = DEFAULT_AI_MODELS['text-to-image'][0];
const UPSCALE = DEFAULT_AI_MODELS.upscale[0];

const account = privateKeyToAccount(TEST_KEY);
const identity = accountIdentity(account);
let orch: LocalOrchestrator;

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: PRICE,
    pixelsPerUnit: 1n,
    capacity: 1,
    logger: pino({ level: 'silent' }),
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: 4n * EV,
      l1Block: () => 1000n,
      round: { number: 10n, blockHash: `0x${'11'.repeat(32)}` },
    },
  });
});
afterAll(async () => {
  await orch?.close();
});

/** A session as go-livepeer's gateway makes one: GetOrchestrator for the capability and model. */
async function session(model: string = T2I, cap: number = Capability.TextToImage) {
  const info = await getOrchestrator(orch.url, {
    identity,
    timeoutMs: 3000,
    capabilities: {
      capacities: { [cap]: 1 },
      constraints: { PerCapability: { [cap]: { models: { [model]: {} } } } },
    },
  });
  const sender = new TicketSender({ account, ticketParams: info.ticketParams!, priceInfo: info.priceInfo! });
  const segment = await segmentCredentials(info, identity, { manifestId: `${cap}_${model}` });
  return { info, sender, segment };
}

const textToImage = (payment: string, segment: string, width = 256, height = 256) =>
  post(
    `${orch.url}/text-to-image`,
    JSON.stringify({ model_id: T2I, prompt: 'paid', width, height, seed: 1 }),
    {
      'content-type': 'application/json',
      'livepeer-payment': payment,
      'livepeer-segment': segment,
      authorization: AI_WORKER_PROTOCOL,
    },
  );

const balance = (manifestId = `${Capability.TextToImage}_${T2I}`): Rational =>
  orch.recipient?.balance(account.address, manifestId) ?? rat(0n);
const fee = (pixels: bigint) => mul(rat(pixels), rat(PRICE));
const ok = (res: Reply) => expect(res.status, res.text).toBe(200);

function tamper(header: string, change: (p: Payment) => void): string {
  const p = decodeMessage('Payment', Buffer.from(header, 'base64'));
  change(p);
  return Buffer.from(encodeMessage('Payment', p)).toString('base64');
}

describe('paid batch AI', () => {
  it('credits the tickets, does the work, then debits output pixels × price from (sender, "27_<model>")', async () => {
    const s = await session();
    const before = balance();
    const payment = await s.sender.createPayment(fee(256n * 256n));
    expect(payment.numTickets).toBe(7);
    ok(await textToImage(payment.header, s.segment));
    expect(balance()).toEqual(sub(add(before, payment.ev), fee(256n * 256n)));
  });

  it('refuses a payment without tickets when the balance is under one ticket: 400 "Insufficient balance"', async () => {
    const s = await session();
    const payment = await s.sender.createPayment(fee(64n * 64n));
    const empty = tamper(payment.header, (p) => {
      p.ticketSenderParams = [];
    });
    const before = balance();
    const res = await textToImage(empty, s.segment);
    expect([res.status, res.text]).toEqual([400, 'Insufficient balance']);
    expect(balance()).toEqual(before);
  });

  it('a payment too small for the work: served while the balance holds a ticket, refused once the debt shows', async () => {
    const s = await session();
    const underpaid = async () => textToImage((await s.sender.createPayment(rat(1n))).header, s.segment);
    // Each request pays one ticket (1e9) and costs 6.55e9: the balance falls below one ticket.
    let res = await underpaid();
    for (let i = 0; i < 3 && res.status === 200; i++) res = await underpaid();
    expect([res.status, res.text]).toEqual([400, 'Insufficient balance']);
    expect(balance().num < 0n).toBe(true);
  });

  it('refuses a payment whose expected price differs from the ticket params (recipientRand)', async () => {
    const s = await session();
    const payment = await s.sender.createPayment(fee(64n * 64n));
    const cheaper = tamper(payment.header, (p) => {
      p.expectedPrice = { pricePerUnit: 1n, pixelsPerUnit: 1n };
    });
    const res = await textToImage(cheaper, s.segment);
    expect(res.status).toBe(400);
    expect(res.text).toContain('recipientRand');
  });

  it('403 ErrSegSig for segment credentials another account signed', async () => {
    const s = await session();
    const payment = await s.sender.createPayment(fee(64n * 64n));
    const other = accountIdentity(privateKeyToAccount(OTHER_KEY));
    const forged = await segmentCredentials(s.info, other, {
      manifestId: `${Capability.TextToImage}_${T2I}`,
    });
    const res = await textToImage(payment.header, forged);
    expect([res.status, res.text]).toEqual([403, 'ErrSegSig']);
  });

  it('bills upscale by the input pixels, as go-livepeer does', async () => {
    const s = await session(UPSCALE, Capability.Upscale);
    const manifestId = `${Capability.Upscale}_${UPSCALE}`;
    const payment = await s.sender.createPayment(fee(64n * 48n));
    const before = balance(manifestId);
    const f = await form({
      model_id: UPSCALE,
      prompt: 'x',
      image: { data: await testImage(64, 48), type: 'image/png', name: 'in.png' },
    });
    ok(
      await post(`${orch.url}/upscale`, f.body, {
        'content-type': f.contentType,
        'livepeer-payment': payment.header,
        'livepeer-segment': s.segment,
        authorization: AI_WORKER_PROTOCOL,
      }),
    );
    expect(balance(manifestId)).toEqual(sub(add(before, payment.ev), fee(64n * 48n)));
  });
});
