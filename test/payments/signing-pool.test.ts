// Ticket signing in worker threads (src/payments/signing-pool.ts): the signatures are the ones the
// account makes itself (so payments stay byte-exact), recover to the gateway's address, and every
// failure (a crashed or broken worker, a full queue, a closed pool) rejects the payment cleanly.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Hex, hexToBytes, keccak256, recoverMessageAddress, stringToBytes, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, describe, expect, it } from 'vitest';
import { accountIdentity } from '../../src/payments/identity.ts';
import { rat, ZERO } from '../../src/payments/rational.ts';
import { Balances, TicketSender } from '../../src/payments/sender.ts';
import { SigningError, SigningPool } from '../../src/payments/signing-pool.ts';
import { signatureProblem, type Ticket, ticketHash, ticketTemplate } from '../../src/payments/ticket.ts';
import { decodeMessage } from '../../src/wire/lp-rpc.ts';
import { PAYMENT_HEADER, TEST_ADDRESS, TEST_KEY, vectorInfo } from './vectors.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WORKERS = join(ROOT, 'test', 'fixtures', 'workers');
const account = privateKeyToAccount(TEST_KEY);
const key = () => hexToBytes(TEST_KEY);
const hashOf = (i: number): Hex => keccak256(stringToBytes(`ticket ${i}`));
const DEAD: Hex = `0x${'dead'.repeat(16)}`;

const pools: SigningPool[] = [];
const newPool = (opts: ConstructorParameters<typeof SigningPool>[1] = {}) => {
  const pool = new SigningPool(key(), opts);
  pools.push(pool);
  return pool;
};
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

const newSender = (pool: SigningPool) => {
  const info = vectorInfo();
  return new TicketSender({
    account,
    signer: pool,
    ticketParams: info.ticketParams!,
    priceInfo: info.priceInfo!,
  });
};

describe('SigningPool', () => {
  it('signs as the account does: the same bytes, recovering to the gateway address', async () => {
    const pool = newPool({ size: 2 });
    const hashes = Array.from({ length: 70 }, (_, i) => hashOf(i)); // three chunks, two workers
    const sigs = await pool.signHashes(hashes);
    expect(sigs).toHaveLength(70);
    for (const [i, sig] of sigs.entries()) {
      expect(signatureProblem(sig)).toBeNull();
      expect(sig).toBe(await account.signMessage({ message: { raw: hashes[i]! } }));
    }
    const recovered = await recoverMessageAddress({ message: { raw: hashes[69]! }, signature: sigs[69]! });
    expect(recovered).toBe(TEST_ADDRESS);
    expect(await pool.signHashes([])).toEqual([]);
  });

  it("signs the gateway's GetOrchestrator and segment credentials as the account does", async () => {
    const pool = newPool();
    const inPool = accountIdentity(account, pool);
    const inLine = accountIdentity(account);
    expect(await inPool.signOrchestratorRequest()).toEqual(await inLine.signOrchestratorRequest());
    const message = stringToBytes('segment credentials');
    expect(await inPool.signHashOf(message)).toEqual(await inLine.signHashOf(message));
  });

  it('makes the spec §7.2 Payment byte for byte through TicketSender', async () => {
    const res = await newSender(newPool()).createPayment(rat(15n));
    expect(res.nonces).toEqual([1, 2, 3]);
    expect(res.header).toBe(PAYMENT_HEADER);
  });

  it("a 249-ticket prepayment: every ticket's signature recovers to the sender over its own hash", async () => {
    const sender = newSender(newPool({ size: 2 }));
    const ev = sender.ev;
    const fee = rat(ev.num * 249n - 1n, ev.den); // just under 249 × EV
    const res = await sender.createPayment(fee);
    expect(res.numTickets).toBe(249);
    expect(res.nonces).toEqual(Array.from({ length: 249 }, (_, i) => i + 1));
    const payment = decodeMessage('Payment', Buffer.from(res.header, 'base64'));
    const p = sender.params;
    const base: Omit<Ticket, 'senderNonce'> = {
      recipient: p.recipient,
      sender: account.address,
      faceValue: p.faceValue,
      winProb: p.winProb,
      recipientRandHash: p.recipientRandHash,
      creationRound: p.creationRound,
      creationRoundBlockHash: p.creationRoundBlockHash,
    };
    const tickets = payment.ticketSenderParams!;
    expect(tickets.map((t) => t.senderNonce)).toEqual(res.nonces);
    for (const t of [tickets[0]!, tickets[100]!, tickets[248]!]) {
      const hash = ticketHash({ ...base, senderNonce: t.senderNonce! });
      const signer = await recoverMessageAddress({ message: { raw: hash }, signature: toHex(t.sig!) });
      expect(signer).toBe(TEST_ADDRESS);
    }
  });

  it('a crashed worker fails only its own batch: the payment queued behind it is signed by its replacement', async () => {
    const pool = newPool({ size: 1, workerUrl: new URL(`file://${WORKERS}/sign-worker-crash.mjs`) });
    const crashing = pool.signHashes([hashOf(1), DEAD]);
    const payment = newSender(pool).createPayment(rat(15n));
    await expect(crashing).rejects.toThrow(
      new SigningError('the ticket signing worker stopped (exit code 3)'),
    );
    expect((await payment).header).toBe(PAYMENT_HEADER);
    expect(pool.threads).toBe(1);
  });

  it('a worker lost mid-payment rejects that payment with SigningError; the credit comes back, nonces are not reused', async () => {
    const pool = newPool({ size: 1, workerUrl: new URL(`file://${WORKERS}/sign-worker-dies-after-one.mjs`) });
    const sender = newSender(pool);
    const bal = new Balances().for('0xorch', 'm1');
    bal.add(rat(7n));
    const ev = sender.ev;
    // 249 tickets: eight messages to the one worker, which dies on the second.
    const fee = rat(ev.num * 249n + 7n * ev.den - 1n, ev.den);
    const err = await sender.createPayment(fee, { balance: bal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SigningError);
    expect((err as Error).message).toBe('the ticket signing worker stopped (exit code 4)');
    expect(bal.credit).toEqual(rat(7n));
    expect(sender.noncesUsed).toBe(249);
  });

  it('a worker that cannot start rejects every request instead of hanging, and does not respawn on its own', async () => {
    const pool = newPool({ workerUrl: new URL(`file://${WORKERS}/sign-worker-broken.mjs`) });
    const bal = new Balances().for('0xorch', 'm1');
    const err = await newSender(pool)
      .createPayment(rat(15n), { balance: bal })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SigningError);
    expect(bal.credit).toEqual(ZERO);
    await expect(pool.signHashes([hashOf(3)])).rejects.toBeInstanceOf(SigningError);
    await new Promise((r) => setTimeout(r, 200));
    expect(pool.threads).toBe(0);
  });

  it('hashes in the worker too: signTickets signs the packed ticket with each nonce, as the account signs its hash', async () => {
    const pool = newPool({ size: 2 });
    const base = {
      recipient: TEST_ADDRESS,
      sender: account.address,
      faceValue: 10n ** 15n,
      winProb: 2n ** 200n,
      recipientRandHash: hashOf(7),
      creationRound: 10n,
      creationRoundBlockHash: hashOf(8),
    };
    const nonces = [
      1,
      2,
      3,
      255,
      256,
      4294967295,
      4294967296,
      ...Array.from({ length: 63 }, (_, i) => 1000 + i),
    ];
    const sigs = await pool.signTickets(ticketTemplate(base), nonces); // three chunks
    expect(sigs).toHaveLength(nonces.length);
    for (const i of [0, 3, 5, 6, 40, 69]) {
      const hash = ticketHash({ ...base, senderNonce: nonces[i]! });
      expect(sigs[i]).toBe(await account.signMessage({ message: { raw: hash } }));
    }
    // Without auxData (round 0, zero block hash) the packed ticket is 168 bytes.
    const short = { ...base, creationRound: 0n, creationRoundBlockHash: `0x${'00'.repeat(32)}` as Hex };
    const [sig] = await pool.signTickets(ticketTemplate(short), [9]);
    expect(sig).toBe(
      await account.signMessage({ message: { raw: ticketHash({ ...short, senderNonce: 9 }) } }),
    );
    await expect(pool.signTickets(new Uint8Array(100), [1])).rejects.toThrow(
      'ticket signing failed: a packed ticket is 168 or 232 bytes',
    );
    await expect(pool.signTickets(ticketTemplate(base), [-1])).rejects.toThrow(
      'ticket signing failed: every nonce must be a whole number',
    );
    expect(await pool.signTickets(ticketTemplate(base), [])).toEqual([]);
  });

  it('refuses a bad hash in its own words, and keeps working', async () => {
    const pool = newPool();
    await expect(pool.signHashes(['0x1234' as Hex])).rejects.toThrow(
      'ticket signing failed: every hash must be 32 bytes of 0x-hex',
    );
    expect(await pool.signHashes([hashOf(4)])).toHaveLength(1);
  });

  it('bounds its queue: past maxPending it refuses at once', async () => {
    const pool = newPool({ maxPending: 100 });
    const first = pool.signHashes(Array.from({ length: 80 }, (_, i) => hashOf(i)));
    await expect(pool.signHashes(Array.from({ length: 30 }, (_, i) => hashOf(i)))).rejects.toThrow(
      /ticket signing queue full: 80 tickets waiting, 30 more refused \(limit 100\)/,
    );
    expect(await first).toHaveLength(80);
    expect(await pool.signHashes(Array.from({ length: 100 }, (_, i) => hashOf(i)))).toHaveLength(100);
  });

  it('close() rejects what is waiting, stops its threads and refuses more', async () => {
    const pool = newPool({ size: 2 });
    expect(pool.threads).toBe(2);
    const waiting = expect(pool.signHashes(Array.from({ length: 300 }, (_, i) => hashOf(i)))).rejects.toThrow(
      new SigningError('the ticket signing pool is closed'),
    );
    await pool.close();
    await waiting;
    expect(pool.threads).toBe(0);
    await expect(pool.signHashes([hashOf(5)])).rejects.toBeInstanceOf(SigningError);
  });

  it('works under tsx as npm start runs it, and lets the process exit once closed', async () => {
    const hashes = [hashOf(6), hashOf(7)];
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', join(WORKERS, 'sign-under-tsx.ts'), TEST_KEY, ...hashes],
      { cwd: ROOT, timeout: 20_000 },
    );
    const expected = await Promise.all(hashes.map((raw) => account.signMessage({ message: { raw } })));
    expect(stdout.trim().split('\n')).toEqual(expected);
  });
});
