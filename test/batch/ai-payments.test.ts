// Livepeer-Payment for batch AI when the gateway has a payment account: a free orchestrator still
// gets go-livepeer's Payment{sender, expected_price} (no tickets), so it can check the segment
// signature against the sender; off-chain the header stays empty.
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterEach, describe, expect, it } from 'vitest';
import { LivePayments } from '../../src/live/live-payer.ts';
import { decodeMessage } from '../../src/wire/lp-rpc.ts';
import { Capability, pngHeader, startAiGateway, TestAiOrchestrator } from '../helpers/ai-orchestrator.ts';

const logger = pino({ level: 'silent' });
const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(TEST_KEY);
const PNG = pngHeader(64, 32);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('batch AI payment header with a payment account', () => {
  it('a free orchestrator gets the sender and the expected price, and no tickets', async () => {
    const o = await TestAiOrchestrator.start({
      offers: { [Capability.TextToImage]: ['test/t2i'] },
      pricePerUnit: 0n,
      pixelsPerUnit: 1n,
      answer: () => ({
        json: { images: [{ url: `data:image/png;base64,${PNG.toString('base64')}`, seed: 1, nsfw: false }] },
      }),
    });
    cleanups.push(() => o.close());
    const payments = new LivePayments({
      account,
      maxTicketEV: 10_000_000_000n,
      maxTotalEV: 100_000_000_000n,
      intervalMs: 1000,
    });
    const gw = await startAiGateway({ orchestrators: [o.url], logger, payments });
    cleanups.push(() => gw.close());
    const res = await fetch(`${gw.base}/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'a free fox', model_id: 'test/t2i', width: 64, height: 32 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-fee-wei')).toBe('0');
    const header = o.requests[0]!.headers['livepeer-payment'];
    expect(typeof header).toBe('string');
    expect(header).not.toBe('');
    const payment = decodeMessage('Payment', Buffer.from(header as string, 'base64'));
    expect(`0x${Buffer.from(payment.sender!).toString('hex')}`).toBe(account.address.toLowerCase());
    // Price 0 is proto3's default: not on the wire.
    expect(payment.expectedPrice?.pixelsPerUnit).toBe(1n);
    expect(payment.expectedPrice?.pricePerUnit ?? 0n).toBe(0n);
    expect(payment.ticketParams).toBeUndefined();
    expect(payment.ticketSenderParams ?? []).toEqual([]);
  });
});
