// Payments benchmark: how fast the gateway signs PM tickets, and what one live payment costs.
//
//   npm run bench:payments
//
// A live payment is go-livepeer's 5 s top-up: fee = 27,648,000 pixels/s × 5 s × price, paid in
// tickets at the orchestrator default EV (8e9 wei) with a face value of 1.2e15 wei (1.2M gas ×
// 0.01 gwei × 100) and a price of 1200 wei per pixel: about 21 tickets per payment.
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { floatString, rat } from '../src/payments/rational.ts';
import { TicketSender } from '../src/payments/sender.ts';
import { accountSigner, SigningPool, type TicketSigner } from '../src/payments/signing-pool.ts';
import { bigintToBytes, signTicket, type Ticket, winProbFor } from '../src/payments/ticket.ts';
import type { PriceInfo, TicketParams } from '../src/wire/lp-rpc.ts';

// Hardhat/Anvil account #0: a well-known public test key, never funded on a real network.
const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(KEY);
const EV = 8_000_000_000n;
const FACE_VALUE = 1_200_000_000_000_000n;
const WIN_PROB = winProbFor(EV, FACE_VALUE);
const price: PriceInfo = { pricePerUnit: 1200n, pixelsPerUnit: 1n };
const fee = rat(27_648_000n * 5n * 1200n);

let round = 0;
const freshParams = (): TicketParams => {
  round++;
  const randHash = new Uint8Array(32);
  new DataView(randHash.buffer).setUint32(0, round);
  return {
    recipient: new Uint8Array(20).fill(0x73),
    faceValue: bigintToBytes(FACE_VALUE),
    winProb: bigintToBytes(WIN_PROB),
    recipientRandHash: randHash,
    seed: bigintToBytes(0x1234567890abcdefn + BigInt(round)),
    expirationBlock: bigintToBytes(20_000_000n),
    expirationParams: { creationRound: 4000n, creationRoundBlockHash: new Uint8Array(32).fill(0x41) },
  };
};

async function signRate(n: number): Promise<number> {
  const t: Ticket = {
    recipient: '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F',
    sender: account.address,
    faceValue: FACE_VALUE,
    winProb: WIN_PROB,
    senderNonce: 0,
    recipientRandHash: `0x${'c6'.repeat(32)}`,
    creationRound: 4000n,
    creationRoundBlockHash: `0x${'41'.repeat(32)}`,
  };
  for (let i = 0; i < 50; i++) await signTicket(account, { ...t, senderNonce: i + 1 }); // warm-up
  const start = performance.now();
  for (let i = 0; i < n; i++) await signTicket(account, { ...t, senderNonce: i + 1 });
  return (n / (performance.now() - start)) * 1000;
}

async function paymentCost(
  n: number,
): Promise<{ perPaymentUs: number; p50Us: number; p99Us: number; tickets: number }> {
  const sender = new TicketSender({ account, ticketParams: freshParams(), priceInfo: price });
  const samples: number[] = [];
  let tickets = 0;
  for (let i = 0; i < n + 20; i++) {
    // as after each PaymentResult: new params (not timed)
    sender.update(freshParams(), price);
    const start = performance.now();
    const res = await sender.createPayment(fee);
    const us = (performance.now() - start) * 1000;
    tickets = res.numTickets;
    if (i >= 20) samples.push(us);
  }
  samples.sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return {
    perPaymentUs: mean,
    p50Us: samples[Math.floor(samples.length * 0.5)]!,
    p99Us: samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))]!,
    tickets,
  };
}

/** go-livepeer's start prepayment: 60 s of 1280×720×30 at the price above, 249 tickets. */
const prepayFee = rat(1_658_880_000n * 1200n);

/**
 * The start prepayment with `signer`: its wall time, and the longest time the event loop was held
 * meanwhile (what every stream's RTP waits), from a 1 ms event-loop delay monitor.
 */
async function prepayCost(
  signer: TicketSigner,
  n: number,
): Promise<{ wallMs: number; maxBlockMs: number; p99BlockMs: number; tickets: number }> {
  const sender = new TicketSender({ account, signer, ticketParams: freshParams(), priceInfo: price });
  const walls: number[] = [];
  const blocks: number[] = [];
  const p99s: number[] = [];
  let tickets = 0;
  for (let i = 0; i < n + 2; i++) {
    sender.update(freshParams(), price);
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    // The monitor only sees a block once its timer has ticked before it, and it ticks after it.
    await new Promise((r) => setTimeout(r, 20));
    const start = performance.now();
    const res = await sender.createPayment(prepayFee);
    const wall = performance.now() - start;
    await new Promise((r) => setTimeout(r, 5));
    h.disable();
    tickets = res.numTickets;
    if (i < 2) continue; // warm-up
    walls.push(wall);
    // The monitor's samples include its 1 ms resolution.
    blocks.push(Math.max(0, h.max / 1e6 - 1));
    p99s.push(Math.max(0, h.percentile(99) / 1e6 - 1));
  }
  const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  return { wallMs: med(walls), maxBlockMs: med(blocks), p99BlockMs: med(p99s), tickets };
}

const quick = process.argv.includes('--quick');
const rate = await signRate(quick ? 500 : 3000);
const cost = await paymentCost(quick ? 50 : 300);
const inline = await prepayCost(accountSigner(account), quick ? 3 : 8);
const pool = new SigningPool(hexToBytes(KEY));
const pooled = await prepayCost(pool, quick ? 3 : 8);
await pool.close();
const cpus = os.cpus();
const lines = [
  '| machine | |',
  '|---|---|',
  `| CPU | ${cpus[0]?.model ?? 'unknown'} |`,
  `| cores | ${cpus.length} |`,
  `| Node | ${process.version} (${os.type()} ${os.release()}) |`,
  '',
  '| measure | value |',
  '|---|---|',
  `| tickets signed per second (one core, sequential) | ${Math.round(rate)} |`,
  `| live payment: fee (27,648,000 px/s × 5 s × 1200 wei/px) | ${floatString(fee)} wei |`,
  `| tickets per payment (EV 8e9 wei, faceValue 1.2e15 wei) | ${cost.tickets} |`,
  `| createPayment per 5 s segment, mean | ${cost.perPaymentUs.toFixed(0)} µs |`,
  `| createPayment per 5 s segment, p50 / p99 | ${cost.p50Us.toFixed(0)} / ${cost.p99Us.toFixed(0)} µs |`,
  `| share of one core at one payment per 5 s | ${((cost.perPaymentUs / 5_000_000) * 100).toFixed(3)} % |`,
  `| live start prepayment (60 s of 720p30), tickets | ${inline.tickets} |`,
  `| … signed in line: wall / longest event-loop block / event-loop delay p99 (median of runs) | ${inline.wallMs.toFixed(0)} / ${inline.maxBlockMs.toFixed(1)} / ${inline.p99BlockMs.toFixed(1)} ms |`,
  `| … in the SigningPool (${pool.size} worker${pool.size === 1 ? '' : 's'}): wall / longest event-loop block / event-loop delay p99 | ${pooled.wallMs.toFixed(0)} / ${pooled.maxBlockMs.toFixed(1)} / ${pooled.p99BlockMs.toFixed(1)} ms |`,
  `| load average (1 min) at the end | ${os.loadavg()[0]!.toFixed(1)} |`,
];
console.log(lines.join('\n'));
