// Paid segment transcoding: the gateway pays each pushed segment with tickets for go-livepeer's
// fee estimate (output pixels × 1.02 × price), the local orchestrator (a PM recipient) checks the
// signed profiles, credits the tickets and debits the output pixels it really produced, and the
// gateway carries the change to the next segment. Public Hardhat test key #0.
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import pino from 'pino';
import type { Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parsePresetNames } from '../../src/batch/profiles.ts';
import { transcodeRoutes } from '../../src/http/transcode-routes.ts';
import { LivePayments } from '../../src/live/live-payer.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { StaticSource } from '../../src/orchestrators/discovery.ts';
import { OrchestratorPool } from '../../src/orchestrators/pool.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { accountIdentity } from '../../src/payments/identity.ts';
import { compare, rat } from '../../src/payments/rational.ts';
import { makeTsSegment } from '../helpers/media.ts';

const _run = promisify(execFile);
const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const BLOCK_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';
const EV = 1_000_000n;
const account = privateKeyToAccount(TEST_KEY);
const identity = accountIdentity(account);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let segment: Buffer;
let orch: LocalOrchestrator;
let base: string;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  segment = await makeTsSegment({ seconds: 2 });
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n, // 1 wei per pixel
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: 4n * EV,
      l1Block: () => 1000n,
      round: { number: 10n, blockHash: BLOCK_HASH },
      accountingIntervalMs: 60_000,
    },
  });
  closers.push(() => orch.close());
  const pool = new OrchestratorPool({
    sources: [new StaticSource([orch.url])],
    identity,
    grpcTimeoutMs: 3000,
    infoMaxAgeMs: 10_000,
    concurrency: 2,
    priceCeiling: PriceCeiling.none(),
    logger,
  });
  closers.push(async () => pool.stop());
  // The plugin alone on a bare app: what app.ts registers.
  const app = Fastify();
  await app.register(transcodeRoutes, {
    pool,
    identity,
    payments: new LivePayments({ account, maxTicketEV: 10n * EV, maxTotalEV: 100n * EV, intervalMs: 5000 }),
    profiles: parsePresetNames('P240p30fps16x9,P360p30fps16x9'),
    maxSegmentBytes: 16 * 1024 * 1024,
    maxAttempts: 2,
    hlsWindowSegments: 4,
    streamIdleTimeoutMs: 60_000,
    maxStreams: 4,
    logger,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  closers.push(() => app.close());
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
});

describe('paid segment transcoding', () => {
  it('pays each segment with tickets; the orchestrator keeps tickets − output pixels as credit', async () => {
    const outputPixelsPerSegment = 60n * (426n * 240n + 640n * 360n);
    // go-livepeer's estimate: ⌈30 fps⌉ × ⌈2 s⌉ × w × h per profile, × 1.02, at 1 wei per pixel.
    const estimate = (60n * (426n * 240n + 640n * 360n) * 102n) / 100n;
    const debits = vi.spyOn(orch.recipient!, 'debit');
    for (let seq = 0; seq < 3; seq++) {
      const res = await fetch(`${base}/live/paid/${seq}.ts`, {
        method: 'PUT',
        body: new Uint8Array(segment),
        headers: { 'Content-Type': 'video/mp2t', 'Content-Duration': '2000' },
      });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(res.headers.get('livepeer-fee-wei')).toBe(String(outputPixelsPerSegment));
    }
    // Three debits of the output pixels, all on one session (the auth token is reused).
    expect(debits.mock.calls.map(([, , amount]) => compare(amount, rat(outputPixelsPerSegment)))).toEqual([
      0, 0, 0,
    ]);
    const sessions = new Set(debits.mock.calls.map(([sender, session]) => `${sender}/${session}`));
    expect(sessions.size).toBe(1);
    const session = debits.mock.calls[0]![1];
    const credit = orch.recipient!.balance(account.address, session)!;
    // Each segment was prepaid (credit + whole tickets) up to the estimate and charged its pixels,
    // so what is left is the estimate's padding plus less than one ticket.
    expect(compare(credit, rat(estimate - outputPixelsPerSegment))).toBeGreaterThanOrEqual(0);
    expect(compare(credit, rat(estimate - outputPixelsPerSegment + EV))).toBeLessThan(0);
  });
});
