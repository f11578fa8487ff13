// The local orchestrator as a PM recipient: ticket params in GetOrchestrator, ProcessPayment with
// go-livepeer's checks, status codes and messages, balances and live accounting. Real sockets, real
// tickets from the gateway's TicketSender (public Hardhat test key #0).
import { request } from 'node:https';
import pino from 'pino';
import { type Hex, hexToBytes, keccak256, numberToHex, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { segmentCredentials } from '../../src/payments/credentials.ts';
import { accountIdentity, type GatewayIdentity, offchainIdentity } from '../../src/payments/identity.ts';
import { LIVE_UNITS_PER_SECOND } from '../../src/payments/live-clock.ts';
import { add, compare, mul, rat, sub } from '../../src/payments/rational.ts';
import { TicketSender } from '../../src/payments/sender.ts';
import {
  bytesToBigint,
  isWinningTicket,
  recipientRandHash,
  ticketEV,
  winProbFor,
} from '../../src/payments/ticket.ts';
import { TricklePublisher } from '../../src/trickle/index.ts';
import { decodeMessage, encodeMessage, type OrchestratorInfo, type Payment } from '../../src/wire/lp-rpc.ts';

const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const OTHER_KEY: Hex = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const FOO_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';
const EV = 1_000_000_000n;
const FACE_VALUE = 4_000_000_000n; // winProb ≈ 1/4: some tickets win
const START_PIXELS = 1_658_880_000n;

const account = privateKeyToAccount(TEST_KEY);
const identity = accountIdentity(account);
const price = rat(1n); // 1 wei per pixel
let l1 = 1000n;
let clockOffset = 0;
const logs: string[] = [];
let orch: LocalOrchestrator;

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n,
    pixelsPerUnit: 1n,
    capacity: 8,
    logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }),
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: FACE_VALUE,
      l1Block: () => l1,
      round: { number: 10n, blockHash: FOO_HASH },
      accountingIntervalMs: 50,
      now: () => Date.now() + clockOffset,
    },
  });
});
afterAll(async () => {
  await orch?.close();
});

type Reply = { status: number; body: Buffer };
function post(path: string, body: string, headers: Record<string, string>) {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      `${orch.url}${path}`,
      { method: 'POST', rejectUnauthorized: false, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const info = () => getOrchestrator(orch.url, { identity, timeoutMs: 3000 });
const senderFor = (i: OrchestratorInfo) =>
  new TicketSender({ account, ticketParams: i.ticketParams!, priceInfo: i.priceInfo! });
const startFee = () => mul(rat(START_PIXELS), price);

function start(payment: string, segment: string) {
  return post('/live-video-to-video', JSON.stringify({ model_id: 'passthrough' }), {
    'content-type': 'application/json',
    'livepeer-payment': payment,
    'livepeer-segment': segment,
  });
}
const text = (r: Reply) => r.body.toString();

/** A fresh session, a start payment and its signed segment credentials. */
async function prepareStart(fee = startFee()) {
  const i = await info();
  const sender = senderFor(i);
  const payment = await sender.createPayment(fee);
  const segment = await segmentCredentials(i, identity, { manifestId: '35_passthrough' });
  return { info: i, sender, payment, segment };
}

/** Decode a Livepeer-Payment header, change it, encode it again. */
function tamper(header: string, change: (p: Payment) => void): string {
  const p = decodeMessage('Payment', Buffer.from(header, 'base64'));
  change(p);
  return Buffer.from(encodeMessage('Payment', p)).toString('base64');
}

async function startJob() {
  const s = await prepareStart();
  const res = await start(s.payment.header, s.segment);
  expect(res.status, text(res)).toBe(200);
  const reply = JSON.parse(text(res)) as { manifest_id: string; publish_url: string };
  return { ...s, mid: reply.manifest_id, publishUrl: reply.publish_url };
}

async function topUp(sender: TicketSender, i: OrchestratorInfo, mid: string, seconds: bigint) {
  const payment = await sender.createPayment(mul(rat(LIVE_UNITS_PER_SECOND * seconds), price));
  const segment = await segmentCredentials(i, identity, { manifestId: mid });
  return {
    payment,
    segment,
    res: await post('/payment', '', { 'livepeer-payment': payment.header, 'livepeer-segment': segment }),
  };
}

describe('local orchestrator with payments: GetOrchestrator', () => {
  it('answers with ticket params for the signing sender, recipientRandHash bound to them', async () => {
    const i = await info();
    const tp = i.ticketParams!;
    expect(toHex(tp.recipient!)).toBe(RECIPIENT.toLowerCase());
    expect(toHex(i.address!)).toBe(RECIPIENT.toLowerCase());
    expect(bytesToBigint(tp.faceValue)).toBe(FACE_VALUE);
    expect(bytesToBigint(tp.winProb)).toBe(winProbFor(EV, FACE_VALUE));
    expect(bytesToBigint(tp.expirationBlock)).toBe(l1 + 40n);
    expect(tp.expirationParams?.creationRound).toBe(10n);
    expect(toHex(tp.expirationParams!.creationRoundBlockHash!)).toBe(FOO_HASH);
    expect(tp.recipientRandHash).toHaveLength(32);
    expect(i.priceInfo).toMatchObject({ pricePerUnit: 1n, pixelsPerUnit: 1n });
    // Each call draws a new seed, hence a new commitment.
    expect(toHex((await info()).ticketParams!.recipientRandHash!)).not.toBe(toHex(tp.recipientRandHash!));
  });

  it('refuses a request whose signature is not over the checksummed address (gRPC UNKNOWN)', async () => {
    const lowercase: GatewayIdentity = {
      ...identity,
      signOrchestratorRequest: async () =>
        hexToBytes(
          await account.signMessage({
            message: { raw: keccak256(stringToBytes(account.address.toLowerCase())) },
          }),
        ),
    };
    const err = await getOrchestrator(orch.url, { identity: lowercase, timeoutMs: 3000 }).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toContain(
      'Invalid orchestrator request: orchestrator req sig check failed',
    );
    expect((err as { status?: number }).status).toBe(2);
    const unsigned = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 }).catch(
      (e: unknown) => e,
    );
    expect((unsigned as Error).message).toContain('orchestrator req sig check failed');
  });
});

describe('local orchestrator with payments: job start and top-up', () => {
  it('starts a paid job (200), credits the start under its manifest id, tops up via /payment with fresh params', async () => {
    const { info: i, sender, payment, mid } = await startJob();
    expect(payment.numTickets).toBe(2);
    const recipient = orch.recipient!;
    const afterStart = recipient.balance(account.address, mid)!;
    expect(compare(afterStart, rat(EV))).toBeGreaterThanOrEqual(0);
    expect(compare(afterStart, payment.ev)).toBeLessThanOrEqual(0); // maybe already debited a second

    const top = await topUp(sender, i, mid, 10n);
    expect(top.res.status, text(top.res)).toBe(200);
    const fresh = decodeMessage('PaymentResult', top.res.body).info!;
    expect(fresh.ticketParams?.recipientRandHash).toHaveLength(32);
    expect(toHex(fresh.ticketParams!.recipientRandHash!)).not.toBe(toHex(i.ticketParams!.recipientRandHash!));
    expect(fresh.authToken).toEqual(i.authToken);
    const afterTopUp = recipient.balance(account.address, mid)!;
    // Credited by exactly the tickets' EV (less any per-second debit in between).
    const debited = sub(add(afterStart, top.payment.ev), afterTopUp);
    expect(compare(debited, rat(0n))).toBeGreaterThanOrEqual(0);
    expect(compare(debited, mul(rat(LIVE_UNITS_PER_SECOND * 5n), price))).toBeLessThan(0);

    // The fresh params are good: the sender adopts them and pays again, nonces from 1.
    sender.update(fresh.ticketParams!, fresh.priceInfo!);
    const again = await topUp(sender, fresh, mid, 1n);
    expect(again.res.status, text(again.res)).toBe(200);
    expect(again.payment.nonces[0]).toBe(1);
    orch.jobs.get(mid)?.stop('test done');
  });

  it('takes a start prepaid with 249 tickets: a 24 KB Livepeer-Payment header (Go takes 1 MiB of headers)', async () => {
    const s = await prepareStart(rat(249n * EV));
    expect(s.payment.numTickets).toBe(249);
    expect(s.payment.header.length).toBeGreaterThan(16 * 1024); // over node's default limit
    const res = await start(s.payment.header, s.segment);
    expect(res.status, text(res)).toBe(200);
    const mid = (JSON.parse(text(res)) as { manifest_id: string }).manifest_id;
    // All 249 were taken: the credit is their EV (less at most a second's debit).
    const credit = orch.recipient!.balance(account.address, mid)!;
    expect(compare(credit, sub(s.payment.ev, mul(rat(LIVE_UNITS_PER_SECOND), price)))).toBeGreaterThan(0);
    orch.jobs.get(mid)?.stop('test done');
  });

  it('records winning tickets with a recipientRand that opens the commitment', async () => {
    const before = orch.recipient!.winningTickets.length;
    const i = await info();
    const sender = senderFor(i);
    const payment = await sender.createPayment(rat(EV * 40n)); // 40 tickets at ~1/4: P(no win) ≈ 1e-5
    expect(payment.numTickets).toBe(40);
    const segment = await segmentCredentials(i, identity, { manifestId: 'wins' });
    const res = await post('/payment', '', {
      'livepeer-payment': payment.header,
      'livepeer-segment': segment,
    });
    expect(res.status, text(res)).toBe(200);
    const won = orch.recipient!.winningTickets.slice(before);
    expect(won.length).toBeGreaterThan(0);
    for (const w of won) {
      expect(recipientRandHash(w.recipientRand)).toBe(w.ticket.recipientRandHash);
      expect(isWinningTicket(w.sig, w.recipientRand, w.ticket.winProb)).toBe(true);
      expect(w.manifestId).toBe('wins');
    }
    expect(orch.recipient!.balance(account.address, 'wins')).toEqual(
      mul(rat(40n), ticketEV(FACE_VALUE, winProbFor(EV, FACE_VALUE))),
    );
  });
});

describe('local orchestrator with payments: bad tickets refused as go-livepeer does', () => {
  it('400 fatal recipientRand when an echoed field was changed', async () => {
    const s = await prepareStart();
    const header = tamper(s.payment.header, (p) => {
      p.ticketParams!.seed = hexToBytes(numberToHex(bytesToBigint(p.ticketParams!.seed) ^ 1n));
    });
    const res = await start(header, s.segment);
    expect(res.status).toBe(400);
    expect(text(res)).toBe('invalid recipientRand for ticket recipientRandHash');
    // Changing the price echoed in expected_price is caught the same way.
    const priced = tamper(s.payment.header, (p) => {
      p.expectedPrice = { pricePerUnit: 2n, pixelsPerUnit: 1n };
    });
    expect(text(await start(priced, s.segment))).toBe('invalid recipientRand for ticket recipientRandHash');
  });

  it('400 for a ticket to another recipient', async () => {
    const s = await prepareStart();
    const header = tamper(s.payment.header, (p) => {
      p.ticketParams!.recipient = new Uint8Array(20).fill(7);
    });
    const res = await start(header, s.segment);
    expect(res.status).toBe(400);
    expect(text(res)).toBe('invalid ticket recipient');
  });

  it('400 for a bad ticket signature; the good tickets before it stay credited, none after', async () => {
    const i = await info();
    const sender = senderFor(i);
    const payment = await sender.createPayment(rat(EV * 3n));
    expect(payment.numTickets).toBe(3);
    // Ticket 2 carries ticket 1's signature: well-formed, but not over ticket 2's hash.
    const forged = tamper(payment.header, (p) => {
      p.ticketSenderParams![1]!.sig = new Uint8Array(p.ticketSenderParams![0]!.sig!);
    });
    const segment = await segmentCredentials(i, identity, { manifestId: 'badsig' });
    const res = await post('/payment', '', { 'livepeer-payment': forged, 'livepeer-segment': segment });
    expect(res.status).toBe(400);
    expect(text(res)).toBe('invalid ticket signature');
    // Ticket 1 credited; ticket 2 refused; ticket 3, though good, not credited after the error.
    expect(orch.recipient!.balance(account.address, 'badsig')).toEqual(
      ticketEV(FACE_VALUE, winProbFor(EV, FACE_VALUE)),
    );
  });

  it('400 for a replayed nonce', async () => {
    const i = await info();
    const sender = senderFor(i);
    const payment = await sender.createPayment(rat(EV));
    const segment = await segmentCredentials(i, identity, { manifestId: 'replay' });
    const headers = { 'livepeer-payment': payment.header, 'livepeer-segment': segment };
    expect((await post('/payment', '', headers)).status).toBe(200);
    const res = await post('/payment', '', headers);
    expect(res.status).toBe(400);
    expect(text(res)).toBe(`invalid ticket senderNonce: already seen sender=${account.address} nonce=1`);
  });

  it('400 TicketParams expired once the L1 block reaches expirationBlock', async () => {
    const s = await prepareStart();
    l1 += 40n;
    try {
      const res = await start(s.payment.header, s.segment);
      expect(res.status).toBe(400);
      expect(text(res)).toBe('TicketParams expired');
    } finally {
      l1 -= 40n;
    }
  });

  it('400 without an expected price', async () => {
    const s = await prepareStart();
    const header = tamper(s.payment.header, (p) => {
      delete p.expectedPrice;
    });
    const res = await start(header, s.segment);
    expect(res.status).toBe(400);
    expect(text(res)).toBe('invalid expected price sent with payment err="expected price is nil"');
    const zero = tamper(s.payment.header, (p) => {
      p.expectedPrice = { pricePerUnit: 1n, pixelsPerUnit: 0n };
    });
    expect(text(await start(zero, s.segment))).toBe(
      'invalid expected price sent with payment err="pixels per unit is 0"',
    );
  });

  it('403 ErrSegSig for unsigned segment credentials, or signed by another key', async () => {
    const s = await prepareStart();
    const unsigned = await segmentCredentials(s.info, offchainIdentity, { manifestId: '35_passthrough' });
    const res = await start(s.payment.header, unsigned);
    expect(res.status).toBe(403);
    expect(text(res)).toBe('ErrSegSig');
    const other = accountIdentity(privateKeyToAccount(OTHER_KEY));
    const wrong = await segmentCredentials(s.info, other, { manifestId: '35_passthrough' });
    expect(text(await start(s.payment.header, wrong))).toBe('ErrSegSig');
    const top = await post('/payment', '', {
      'livepeer-payment': s.payment.header,
      'livepeer-segment': unsigned,
    });
    expect(top.status).toBe(403);
  });

  it('402 for an undecodable payment', async () => {
    const s = await prepareStart();
    expect((await start('not base64!', s.segment)).status).toBe(402);
    expect(
      (await post('/payment', '', { 'livepeer-payment': '/////w==', 'livepeer-segment': s.segment })).status,
    ).toBe(402);
  });

  it('400 Insufficient balance for a start paid with less than one ticket', async () => {
    const s = await prepareStart();
    // A payment without tickets (sender and price only) is accepted but credits nothing.
    const empty = tamper(s.payment.header, (p) => {
      delete p.ticketParams;
      delete p.expirationParams;
      p.ticketSenderParams = [];
    });
    const res = await start(empty, s.segment);
    expect(res.status).toBe(400);
    expect(text(res)).toBe('Insufficient balance');
    expect(orch.jobs.size).toBe(0);
  });
});

describe('local orchestrator with payments: live accounting', () => {
  it('debits the running job as input segments arrive, nothing without input, and closes it once payments stop', async () => {
    const { mid, publishUrl } = await startJob();
    expect(orch.jobs.has(mid)).toBe(true);
    const input = new TricklePublisher(publishUrl, { rejectUnauthorized: false, mimeType: 'video/MP2T' });
    // Bytes are enough: the orchestrator accounts on segment arrival, before any decoding.
    const segment = () => input.writeSegment(new Uint8Array(188).fill(0x47)).catch(() => {});
    try {
      const before = orch.recipient!.balance(account.address, mid)!;
      clockOffset += 2000; // two seconds, but no input: nothing is debited
      await new Promise((r) => setTimeout(r, 200));
      expect(orch.recipient!.balance(account.address, mid)).toEqual(before);

      await segment();
      await waitFor(() => compare(orch.recipient!.balance(account.address, mid) ?? rat(0n), before) < 0);
      const debit = sub(before, orch.recipient!.balance(account.address, mid)!);
      // The gap is billed with the segment that ends it, as go-livepeer's processor does.
      expect(compare(debit, mul(rat(LIVE_UNITS_PER_SECOND * 2n), price))).toBeGreaterThanOrEqual(0);

      clockOffset += 120_000; // far more than the start payment covers (60 s)
      await segment();
      await waitFor(() => !orch.jobs.has(mid));
      const line = logs.find((l) => l.includes(`insufficient balance, mid=${mid}, fee=`));
      expect(line).toMatch(/insufficient balance, mid=\w+, fee=\d+, balance=\d+/);
      // The job's balance goes with it.
      expect(orch.recipient!.balance(account.address, mid)).toBeUndefined();
    } finally {
      await input.close();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}
