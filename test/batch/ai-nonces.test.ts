// Batch AI requests past the 600 nonces one set of ticket params allows (go-livepeer's
// maxSenderNonces): concurrent requests reuse one GetOrchestrator answer for a few seconds, so
// its params run out; the gateway refreshes that answer from the same orchestrator and pays with
// the fresh params instead of giving up on the only orchestrator there is.
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LivePayments } from '../../src/live/live-payer.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { MAX_SENDER_NONCES } from '../../src/payments/sender.ts';
import { Capability } from '../../src/wire/lp-rpc.ts';
import { startAiGateway } from '../helpers/ai-orchestrator.ts';

const logger = pino({ level: 'silent' });
const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(TEST_KEY);
const T2I = 'ByteDance/SDXL-Lightning';
// 256 × 256 pixels at 1 wei: 65,536 wei a request, 90–91 tickets of EV 728 wei (the change
// of one request is credit for the next).
const EV = 728n;
const TICKETS_PER_REQUEST = 91;
const REQUESTS = 7; // ~630 tickets: past the 600 of one set of params

let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startAiGateway>>;

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n,
    pixelsPerUnit: 1n,
    capacity: 2,
    aiCapacity: REQUESTS,
    logger,
    payments: {
      recipient: '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F',
      ticketEV: EV,
      faceValue: 1_000_000n,
      l1Block: () => 1000n,
      round: { number: 10n, blockHash: `0x${'11'.repeat(32)}` },
    },
  });
  const payments = new LivePayments({ account, maxTicketEV: 1_000n, maxTotalEV: 100_000n, intervalMs: 1000 });
  gw = await startAiGateway({ orchestrators: [orch.url], logger, payments });
});
afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

describe('batch AI past the nonce limit of one GetOrchestrator answer', () => {
  it('refreshes the answer from the same orchestrator and every request succeeds on the first try', async () => {
    expect(REQUESTS * (TICKETS_PER_REQUEST - 1)).toBeGreaterThan(MAX_SENDER_NONCES);
    // Watched, not replaced.
    const renew = vi.spyOn(gw.pool, 'renewAnswer');
    const credit = vi.spyOn(orch.recipient!, 'credit');
    const request = async (i: number) => {
      const res = await fetch(`${gw.base}/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: `fox ${i}`, model_id: T2I, width: 256, height: 256 }),
      });
      return { status: res.status, text: await res.text(), tries: res.headers.get('livepeer-tries') };
    };
    // The first answer is kept (5 s) and serves the rest, which all run at once.
    const first = await request(0);
    const replies = [
      first,
      ...(await Promise.all(Array.from({ length: REQUESTS - 1 }, (_, i) => request(i + 1)))),
    ];
    for (const r of replies) {
      expect(r.status, r.text).toBe(200);
      expect(r.tries).toBe('1');
    }
    // The refresh happened, from this orchestrator, and the requests that ran out shared it.
    expect(renew).toHaveBeenCalled();
    expect(
      renew.mock.calls.every(([url, kind]) => url === orch.url && kind.capability === Capability.TextToImage),
    ).toBe(true);
    expect(renew.mock.calls.length).toBeLessThan(REQUESTS);
    // The orchestrator took more than 600 tickets (credit() runs once per ticket taken), so more
    // than one set of params was used, none past its 600th nonce (it would have refused that).
    const ours = credit.mock.calls.filter(
      ([sender]) => sender.toLowerCase() === account.address.toLowerCase(),
    );
    expect(ours.length).toBeGreaterThan(MAX_SENDER_NONCES);
    renew.mockRestore();
    credit.mockRestore();
  }, 60_000);
});
