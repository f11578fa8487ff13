// Sender side: StageUpdate (go-livepeer core/accounting_test.go), validateTicketParams
// (pm/sender_test.go), the §7.2 Payment built by createPayment, nonces and balances.
import { type Hex, hexToBytes, toHex, zeroHash } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { add, compare, floatString, mul, type Rational, rat, ZERO } from '../../src/payments/rational.ts';
import {
  Balances,
  MAX_SENDER_NONCES,
  stageUpdate,
  TicketParamsError,
  TicketSender,
  type ValidateOptions,
  validateParams,
} from '../../src/payments/sender.ts';
import { bigintToBytes, MAX_WIN_PROB, ticketEV } from '../../src/payments/ticket.ts';
import { decodeMessage, type TicketParams } from '../../src/wire/lp-rpc.ts';
import { PAYMENT_HEADER, PAYMENT_HEX, TEST_ADDRESS, TEST_KEY, vectorInfo } from './vectors.ts';

const account = privateKeyToAccount(TEST_KEY);

const newSender = () => {
  const info = vectorInfo();
  return new TicketSender({ account, ticketParams: info.ticketParams!, priceInfo: info.priceInfo! });
};

const params = (faceValue: bigint, winProb: bigint, expirationBlock = 1000n): TicketParams => ({
  recipient: new Uint8Array(20).fill(1),
  faceValue: bigintToBytes(faceValue),
  winProb: bigintToBytes(winProb),
  recipientRandHash: new Uint8Array(32).fill(2),
  seed: bigintToBytes(77n),
  expirationBlock: bigintToBytes(expirationBlock),
  expirationParams: { creationRound: 3n, creationRoundBlockHash: new Uint8Array(32).fill(4) },
});

const codeOf = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof TicketParamsError) return err.code;
    throw err;
  }
};
const messageOf = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
};

describe('StageUpdate sequence (go-livepeer core/accounting_test.go)', () => {
  const balances = new Balances();
  const bal = balances.for('0xorch', 'manifest');
  const reset = (credit: Rational | undefined) => {
    balances.clear('0xorch', 'manifest');
    if (credit) bal.add(credit);
  };
  it.each([
    [1, rat(2n), rat(1n), undefined, 0, ZERO, rat(2n)],
    [2, rat(2n), rat(2n), undefined, 0, ZERO, rat(2n)],
    [3, rat(1n), rat(5n), rat(1n), 4, rat(4n), rat(1n)],
    [4, rat(1n, 4n), rat(2n), rat(1n), 2, rat(2n), rat(1n, 4n)],
    [5, rat(-5n), rat(2n), rat(1n), 7, rat(7n), rat(-5n)],
    [6, undefined, rat(2n), rat(1n), 2, rat(2n), ZERO],
  ] as [number, Rational | undefined, Rational, Rational | undefined, number, Rational, Rational][])(
    'step %i',
    (_step, before, minCredit, ev, numTickets, newCredit, existing) => {
      reset(before);
      const staged = bal.stageUpdate(minCredit, ev);
      expect(staged).toEqual({ numTickets, newCredit, existingCredit: existing });
      expect(bal.credit).toEqual(ZERO); // reserved
    },
  );

  it('completeBalanceUpdate: staged puts credit back, spent keeps it spent, change credits the rest', () => {
    reset(rat(3n));
    const staged = { ...bal.stageUpdate(rat(5n), rat(1n)), debit: ZERO };
    bal.complete({ ...staged, status: 'staged' });
    expect(bal.credit).toEqual(rat(3n));
    bal.stageUpdate(rat(5n), rat(1n));
    bal.complete({ ...staged, status: 'credit-spent' });
    expect(bal.credit).toEqual(ZERO);
    reset(rat(3n));
    const s2 = bal.stageUpdate(rat(5n), rat(1n));
    bal.complete({ ...s2, debit: rat(9n, 2n), status: 'received-change' });
    expect(bal.credit).toEqual(rat(1n, 2n)); // 3 + 2 − 4.5
    bal.complete({ ...s2, existingCredit: ZERO, newCredit: ZERO, debit: rat(5n), status: 'received-change' });
    expect(bal.credit).toEqual(rat(-9n, 2n)); // change may go negative
  });

  it('the pure form ignores a zero or missing EV', () => {
    expect(stageUpdate(rat(5n), ZERO, ZERO).numTickets).toBe(0);
    expect(stageUpdate(rat(5n), undefined, ZERO).numTickets).toBe(0);
  });
});

describe('validateParams (go-livepeer pm/sender.go validateTicketParams)', () => {
  const base: ValidateOptions = {
    lastSeenL1Block: 100n,
    maxTicketEV: 100n,
    depositMultiplier: 2,
    senderInfo: { deposit: 300n, withdrawRound: 0n, reserve: 1000n },
    lastInitializedRound: 10n,
  };
  const half = MAX_WIN_PROB / 2n;

  it.each([
    [300n, 149n],
    [402n, 200n],
    [399n, 199n],
    [400n, 200n],
  ])('deposit %s faceValue %s at winProb max/2 is accepted', (deposit, faceValue) => {
    const opts = { ...base, senderInfo: { deposit, withdrawRound: 0n, reserve: 1000n } };
    expect(() => validateParams(params(faceValue, half), opts)).not.toThrow();
  });

  it('faceValue above deposit / multiplier is rejected', () => {
    const opts = { ...base, depositMultiplier: 5 };
    expect(messageOf(() => validateParams(params(61n, 2222n), opts))).toBe(
      'ticket faceValue 61 > max faceValue 60',
    );
    expect(codeOf(() => validateParams(params(61n, 2222n), opts))).toBe('face-value-too-high');
  });

  it('expiry: last seen 100; 1 and 99 expired, 105 accepted, 0 refused (§2.3)', () => {
    const p = (exp: bigint) => () => validateParams(params(149n, half, exp), base);
    expect(codeOf(p(1n))).toBe('expired');
    expect(codeOf(p(99n))).toBe('expired');
    expect(codeOf(p(101n))).toBe('expired'); // buffer of 1 block
    expect(messageOf(p(99n))).toBe('TicketParams expired');
    expect(codeOf(p(102n))).toBeUndefined();
    expect(codeOf(p(105n))).toBeUndefined();
    expect(messageOf(p(0n))).toBe('ticketParams expiration block is 0');
    try {
      p(99n)();
    } catch (err) {
      expect((err as TicketParamsError).needsRefresh).toBe(true);
    }
  });

  it('checks in go-livepeer order with its messages', () => {
    expect(messageOf(() => validateParams(undefined, base))).toBe('ticketParams is nil');
    // EV 0: free, no further checks (even with no deposit at all)
    const broke = { ...base, senderInfo: { deposit: 0n, withdrawRound: 0n, reserve: 0n } };
    expect(codeOf(() => validateParams(params(1000n, 0n), broke))).toBeUndefined();
    expect(messageOf(() => validateParams(params(50n, MAX_WIN_PROB), base))).toBe(
      'ticket faceValue too low faceValue=50',
    );
    expect(messageOf(() => validateParams(params(202n, half), base))).toBe(
      'ticket EV 101.00000 > max ticket EV 100.00000',
    );
    const unlocking = { ...base, senderInfo: { deposit: 300n, withdrawRound: 11n, reserve: 1n } };
    expect(messageOf(() => validateParams(params(100n, half), unlocking))).toBe(
      'unable to validate sender: deposit and reserve is set to unlock soon',
    );
    const later = { ...base, senderInfo: { deposit: 300n, withdrawRound: 12n, reserve: 1n } };
    expect(codeOf(() => validateParams(params(100n, half), later))).toBeUndefined();
    expect(messageOf(() => validateParams(params(100n, half), broke))).toBe('no sender reserve');
    const noDeposit = { ...base, senderInfo: { deposit: 0n, withdrawRound: 0n, reserve: 1n } };
    expect(messageOf(() => validateParams(params(100n, half), noDeposit))).toBe('no sender deposit');
    const total = { ...base, maxTotalEV: 120n, numTickets: 3 };
    expect(messageOf(() => validateParams(params(100n, half), total))).toBe(
      'total ticket EV 150.00000 for 3 tickets > max total ticket EV 120.00000',
    );
    expect(codeOf(() => validateParams(params(100n, half), { ...total, numTickets: 2 }))).toBeUndefined();
  });
});

describe('TicketSender.createPayment', () => {
  const ev = ticketEV(100000000n, 5789604461865809771178549250434395392663499233282028201972879200395660n);

  it('builds the §7.2 Payment (391 bytes) from the orchestrator info: three tickets, nonces 1–3', async () => {
    const sender = newSender();
    expect(compare(ev, rat(5n))).toBe(1); // EV rounds up, so 15 wei needs 3 tickets, not 4
    expect(sender.ticketsFor(rat(15n), ZERO).numTickets).toBe(3);
    const res = await sender.createPayment(rat(15n));
    expect(res.numTickets).toBe(3);
    expect(res.nonces).toEqual([1, 2, 3]);
    expect(res.ev).toEqual(mul(rat(3n), ev));
    const bytes = Buffer.from(res.header, 'base64');
    expect(bytes.length).toBe(391);
    expect(toHex(bytes)).toBe(`0x${PAYMENT_HEX}`);
    expect(res.header).toBe(PAYMENT_HEADER);
  });

  it('pays at least one ticket for a fee below EV, and none when credit covers the fee', async () => {
    const sender = newSender();
    expect(sender.ticketsFor(rat(1n), ZERO).numTickets).toBe(1);
    expect(sender.ticketsFor(rat(20n), rat(20n)).numTickets).toBe(0);
    expect(sender.ticketsFor(rat(20n), rat(6n)).numTickets).toBe(3);
  });

  it('a 0-ticket payment carries only sender and expected_price', async () => {
    const sender = newSender();
    const balances = new Balances();
    const bal = balances.for('0xorch', 'm1');
    bal.add(rat(100n));
    const res = await sender.createPayment(rat(15n), { balance: bal });
    expect(res.numTickets).toBe(0);
    expect(res.ev).toEqual(ZERO);
    const payment = decodeMessage('Payment', Buffer.from(res.header, 'base64'));
    expect(payment).toEqual({
      sender: hexToBytes(TEST_ADDRESS),
      expectedPrice: { pricePerUnit: 1200n, pixelsPerUnit: 1n },
    });
    expect(sender.noncesUsed).toBe(0);
    // live payment: the orchestrator debits the fee itself
    bal.complete({ ...res.update!, status: 'received-change', debit: rat(15n) });
    expect(bal.credit).toEqual(rat(85n));
  });

  it('counts the balance: tickets only for the shortfall, change credited after the reply', async () => {
    const sender = newSender();
    const bal = new Balances().for('0xorch', 'm1');
    bal.add(rat(6n));
    const res = await sender.createPayment(rat(20n), { balance: bal });
    expect(res.numTickets).toBe(3); // ceil(14 / 5.00…)
    expect(bal.credit).toEqual(ZERO);
    bal.complete({ ...res.update!, status: 'received-change', debit: rat(20n) });
    expect(bal.credit).toEqual(add(rat(-14n), mul(rat(3n), ev)));
  });

  it('never reuses a nonce under concurrent createPayment calls', async () => {
    const sender = newSender();
    const results = await Promise.all(Array.from({ length: 20 }, () => sender.createPayment(rat(15n))));
    const nonces = results.flatMap((r) =>
      (decodeMessage('Payment', Buffer.from(r.header, 'base64')).ticketSenderParams ?? []).map(
        (t) => t.senderNonce,
      ),
    );
    expect(nonces).toHaveLength(60);
    expect([...nonces].sort((a, b) => a! - b!)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    for (const r of results) {
      const p = decodeMessage('Payment', Buffer.from(r.header, 'base64'));
      const n = p.ticketSenderParams!.map((t) => t.senderNonce!);
      expect(n).toEqual([...n].sort((a, b) => a - b)); // nonce order within a payment
      expect(p.expirationParams?.creationRound).toBe(10n);
    }
  });

  it('stops at 600 nonces per params and asks for a refresh; new params restart at 1', async () => {
    const sender = newSender();
    sender.allocateNonces(597);
    const res = await sender.createPayment(rat(15n));
    expect(res.nonces).toEqual([598, 599, 600]);
    expect(sender.noncesLeft).toBe(0);
    const err = await sender.createPayment(rat(1n)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TicketParamsError);
    expect((err as TicketParamsError).code).toBe('nonces-exhausted');
    expect((err as TicketParamsError).needsRefresh).toBe(true);
    expect(MAX_SENDER_NONCES).toBe(600);

    const fresh = vectorInfo();
    fresh.ticketParams!.recipientRandHash = new Uint8Array(32).fill(9);
    sender.update(fresh.ticketParams!, fresh.priceInfo!);
    expect((await sender.createPayment(rat(1n))).nonces).toEqual([1]);
    // the old params coming back do not reuse their nonces
    const old = vectorInfo();
    sender.update(old.ticketParams!, old.priceInfo!);
    expect(codeOf(() => sender.allocateNonces(1))).toBe('nonces-exhausted');
  });

  it('refuses to create tickets on expired params when validating, and restores the credit', async () => {
    const sender = newSender();
    const bal = new Balances().for('0xorch', 'm1');
    bal.add(rat(2n));
    const validate = { lastSeenL1Block: 19999999n, maxTicketEV: 10n, depositMultiplier: 1 };
    const err = await sender.createPayment(rat(15n), { balance: bal, validate }).catch((e: unknown) => e);
    expect((err as TicketParamsError).code).toBe('expired');
    expect(bal.credit).toEqual(rat(2n));
    expect(sender.noncesUsed).toBe(0);
    const ok = await sender.createPayment(rat(15n), {
      validate: { ...validate, lastSeenL1Block: 19999990n },
    });
    expect(ok.numTickets).toBe(3);
  });

  it('echoes ticket params and price info byte for byte (leading zeros kept)', async () => {
    const info = vectorInfo();
    info.ticketParams!.seed = hexToBytes('0x00001234');
    info.priceInfo = {
      pricePerUnit: 2400n,
      pixelsPerUnit: 2n,
      capability: 35,
      constraint: 'streamdiffusion',
    };
    const sender = new TicketSender({ account, ticketParams: info.ticketParams!, priceInfo: info.priceInfo });
    expect(floatString(sender.price)).toBe('1200');
    const p = decodeMessage('Payment', Buffer.from((await sender.createPayment(rat(1n))).header, 'base64'));
    expect(p.ticketParams?.seed).toEqual(hexToBytes('0x00001234'));
    expect(p.ticketParams?.expirationParams).toBeUndefined();
    expect(p.expectedPrice).toEqual(info.priceInfo);
  });

  it('fills in its own expiration params when the orchestrator sent none', async () => {
    const info = vectorInfo();
    delete info.ticketParams!.expirationParams;
    const fallback = {
      creationRound: 10n,
      creationRoundBlockHash: toHex(hexToBytes(zeroHash).fill(7)) as Hex,
    };
    const sender = new TicketSender({
      account,
      ticketParams: info.ticketParams!,
      priceInfo: info.priceInfo!,
      fallbackExpiration: fallback,
    });
    const p = decodeMessage('Payment', Buffer.from((await sender.createPayment(rat(1n))).header, 'base64'));
    expect(p.expirationParams).toEqual({
      creationRound: 10n,
      creationRoundBlockHash: new Uint8Array(32).fill(7),
    });
  });
});
