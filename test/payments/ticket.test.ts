// Upstream vectors (spec §7.1, go-livepeer pm/ticket_test.go, pm/recipient_test.go, crypto/verify_test.go)
// and the derived ticket batch and HMAC vectors (§7.2).
import {
  type Hex,
  hashMessage,
  keccak256,
  recoverMessageAddress,
  stringToBytes,
  toHex,
  zeroAddress,
  zeroHash,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { floatString, rat } from '../../src/payments/rational.ts';
import {
  auxData,
  isWinningTicket,
  MAX_WIN_PROB,
  recipientRand,
  recipientRandHash,
  recipientRandMessage,
  signatureProblem,
  signTicket,
  type Ticket,
  ticketEV,
  ticketHash,
  ticketHasher,
  ticketPacked,
  winProbFor,
  winProbRat,
} from '../../src/payments/ticket.ts';
import {
  FACE_VALUE,
  FOO_HASH,
  RAND_HASH_10,
  RECIPIENT,
  TEST_ADDRESS,
  TEST_KEY,
  WIN_PROB,
} from './vectors.ts';

const zeroTicket = (over: Partial<Ticket> = {}): Ticket => ({
  recipient: zeroAddress,
  sender: zeroAddress,
  faceValue: 0n,
  winProb: 0n,
  senderNonce: 0,
  recipientRandHash: zeroHash,
  creationRound: 0n,
  creationRoundBlockHash: zeroHash,
  ...over,
});

describe('TestHash (go-livepeer pm/ticket_test.go)', () => {
  const cases: [string, Partial<Ticket>, string][] = [
    [
      'SenderNonce = MaxUint32',
      { senderNonce: 4294967295 },
      'e1393fc7f6de093780674022f96cb8e3872235167d037c04d554e58c0e63d280',
    ],
    [
      'SenderNonce = 1',
      { senderNonce: 1 },
      'ce0918ba94518293e9712effbe5fca4f1f431089833a5b8c257cb1e024595f68',
    ],
    [
      'FaceValue 1, WinProb 500',
      { faceValue: 1n, winProb: 500n },
      '87ef13f2d37e4d5352a01d3c77b8179d80e0887f1953bfabfd0bfd7b0f689ddd',
    ],
    [
      'FaceValue 500, WinProb 1',
      { faceValue: 500n, winProb: 1n },
      'aa4b35071043587992ac8b9dd1b2cf1d8311130e6458cf0b2342484e21af5f5b',
    ],
    [
      'Recipient',
      { recipient: RECIPIENT },
      '81e353ae39046e2b77b9f996abbaeed527fda559b61ef90f299c4499dd508ccc',
    ],
    [
      'RecipientRandHash',
      { recipientRandHash: FOO_HASH },
      'be5eaf9a49a39540b9bb02f1a21904f61324a29819e2c032824bfaa10c100b17',
    ],
    [
      'CreationRound 10 + block hash',
      { creationRound: 10n, creationRoundBlockHash: FOO_HASH },
      'e502907c16036ab3d11b78c5a2e93c20f3d6415c67f91de4ed01348182b3b2e2',
    ],
  ];
  it.each(cases)('%s', (_name, over, expected) => {
    expect(ticketHash(zeroTicket(over))).toBe(`0x${expected}`);
    // The batch hasher (a payment's many nonces) gives the same hash for the same ticket.
    const { senderNonce, ...base } = zeroTicket(over);
    expect(ticketHasher(base)(senderNonce)).toBe(`0x${expected}`);
  });
  it('the batch hasher changes only the nonce between hashes, up to 2^53 − 1', () => {
    const base = zeroTicket({ creationRound: 10n, creationRoundBlockHash: FOO_HASH, faceValue: 7n });
    const hash = ticketHasher(base);
    for (const n of [0, 1, 255, 256, 4294967295, 4294967296, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, 5, 0])
      expect(hash(n)).toBe(ticketHash({ ...base, senderNonce: n }));
    expect(() => hash(-1)).toThrow(/bad nonce/);
    expect(() => hash(1.5)).toThrow(/bad nonce/);
  });
  it('packs 168 bytes without auxData and 232 with it', () => {
    expect((ticketPacked(zeroTicket()).length - 2) / 2).toBe(168);
    expect((ticketPacked(zeroTicket({ creationRound: 1n })).length - 2) / 2).toBe(232);
  });
});

describe('TestAuxData (go-livepeer pm/ticket_test.go)', () => {
  const blk: Hex = '0x7624778dedc75f8b322b9fa1632a610d40b85e106c7d9bf0e743a9ce291b9c6f';
  const word = (n: number) => n.toString(16).padStart(64, '0');
  it.each([
    ['round 0, blkHash', 0n, blk, `0x${word(0)}${blk.slice(2)}`],
    ['round 5, zero hash', 5n, zeroHash, `0x${word(5)}${word(0)}`],
    ['round 5, nil hash', 5n, '0x' as Hex, `0x${word(5)}${word(0)}`],
    ['round 0, zero hash', 0n, zeroHash, '0x'],
    ['round 5, blkHash', 5n, blk, `0x${word(5)}${blk.slice(2)}`],
  ] as [string, bigint, Hex, string][])('%s', (_name, round, hash, expected) => {
    expect(auxData(round, hash)).toBe(expected);
  });
});

describe('signature recovery (go-livepeer crypto/verify_test.go)', () => {
  const msg: Hex = '0xb7da355477356fc4c47fcabcf232dc77a6db9b07b7e48b76261cc55cc8fbabb3';
  const sig: Hex =
    '0x206443228e8f784bc3a122de0d85eb3ebff82d6a79cca26c7eeb907099a6404f6dff57bc6828f28bd6cd073c89d94cf3364204679ed8365fa45b5ee6af19a9841c';
  const sigHighS: Hex =
    '0xe742ff452d41413616a5bf43fe15dd88294e983d3d36206c2712f39083d638bde0a0fc89be718fbc1033e1d30d78be1c68081562ed2e97af876f286f3453231d1b';

  it('recovers the signer through EIP-191 over the raw 32 bytes', async () => {
    expect(hashMessage({ raw: msg })).toBe(
      '0x1288735ecfc69223aebf1e4550f8b609241a2a5097d9b34ca50f929e1b8acb6c',
    );
    expect(await recoverMessageAddress({ message: { raw: msg }, signature: sig })).toBe(
      '0x3BadDb1eeE2105893136A3F96c8a963E9C6309d6',
    );
    expect(signatureProblem(sig)).toBeNull();
  });

  it('rejects high s, bad v and bad length as go-livepeer does', () => {
    expect(signatureProblem(sigHighS)).toBe('signature s value too high');
    expect(signatureProblem(`${sig.slice(0, 130)}00` as Hex)).toBe('signature v value must be 27 or 28');
    expect(signatureProblem(sig.slice(0, 130) as Hex)).toBe('invalid signature length');
  });
});

describe('winProb from EV and faceValue (go-livepeer TestTicketParams)', () => {
  it.each([
    [100000000n, 5789604461865809771178549250434395392663499233282028201972879200395660n],
    [777000000n, 745122839364969082519761808292714979750772102095499125093034646125570n],
    [10001n, 57890255593098787833002192285115442382396752657554526567072084795477017120n],
  ])('faceValue %s', (faceValue, winProb) => {
    expect(winProbFor(5n, faceValue)).toBe(winProb);
    const ev = ticketEV(faceValue, winProb);
    expect(ev.num / ev.den).toBe(5n);
  });
  it('handles faceValue 0 and faceValue = EV', () => {
    expect(winProbFor(5n, 0n)).toBe(0n);
    expect(winProbFor(5n, 5n)).toBe(MAX_WIN_PROB);
    expect(MAX_WIN_PROB).toBe(
      115792089237316195423570985008687907853269984665640564039457584007913129639935n,
    );
  });
});

describe('EV and WinProbRat (go-livepeer TestEV, TestWinProbRat)', () => {
  it.each([
    [1000n, MAX_WIN_PROB / 2n, '500'],
    [1000n, 0n, '0'],
    [1000n, MAX_WIN_PROB, '1000'],
    [0n, 999n, '0'],
  ])('faceValue %s winProb %s', (faceValue, winProb, expected) => {
    expect(floatString(ticketEV(faceValue, winProb), 0)).toBe(expected);
  });
  it('EV is exact, not rounded', () => {
    expect(ticketEV(1000n, MAX_WIN_PROB / 2n)).toEqual(rat(1000n * (MAX_WIN_PROB / 2n), MAX_WIN_PROB));
  });
  it.each([
    [MAX_WIN_PROB / 2n, '0.5'],
    [MAX_WIN_PROB / 4n, '0.25'],
    [0n, '0'],
    [MAX_WIN_PROB, '1'],
  ])('winProb %s', (winProb, expected) => {
    const r = winProbRat(winProb);
    const places = expected.includes('.') ? expected.split('.')[1]!.length : 0;
    expect(floatString(r, places)).toBe(expected);
  });
});

describe('§7.2 derived ticket batch', () => {
  const account = privateKeyToAccount(TEST_KEY);
  const base: Ticket = {
    recipient: RECIPIENT,
    sender: TEST_ADDRESS,
    faceValue: FACE_VALUE,
    winProb: WIN_PROB,
    senderNonce: 1,
    recipientRandHash: RAND_HASH_10,
    creationRound: 10n,
    creationRoundBlockHash: FOO_HASH,
  };
  const rows: [number, string, string, string, string][] = [
    [
      1,
      '0x9334322f9d96e88ae73166fcf06a941a6a14848a55aec12caca9017db7d3108f',
      '0x147859f03be15ef1c7b1712f43f82fce50aba89ff56f1fa17877aa2ef02a47a7',
      '0xe8c9fc5ad04f4179fc5c92e5a35bc77f096d4c3b083b45a4b8aceb5103364032495789ee6b1db488b1827ff7b5dc2bb6ef076f2486ebe8fad9777c38ace153701c',
      '0x592a939405b15a0c251f870ee34d1a65bafa13b70827baa7e417809dc5b97725',
    ],
    [
      2,
      '0x20238c1b5302d49ed1421f9e04e6b2f5f05e5dac617d6cccdf3fa3b22113104e',
      '0x0a35da46997800e21248b8773cceaf984294b13bfceaf0680f9b34313bb22fa4',
      '0xde58cf669ad9d7f78751972870e797595bbb2c87bb44cd3bd19939aa032bb6f444b25d04906481017215631678b09db54b9939d780a7f9274bb3dd91bf109cc01c',
      '0xd779ac59237a58f87fa721d797d4a07026212039fba401ebef7f3c0b33f7f242',
    ],
    [
      3,
      '0x64ed72fddffad3c5116b163ccf747f5d9b318e8f8a82b9c01cbb1215e2d59e8e',
      '0xfe29c785ce4a462ef066afa690cec80dff4f9230258f44839b5e4f2680faba5a',
      '0x754a6812c75e31f41b2118f00dc97fe0d046270baf09c0cfa8ba75adca9058a706098c5a4d5d542f1e1fca16227878938f8d96699b0a3c5326bd4828aa57fb121b',
      '0xf037cb8ccf483c129009373f9a0a08dd912e7263b136d5e7f8ad89a9f6e6aabc',
    ],
  ];

  it('packs nonce 1 as the spec shows', () => {
    expect(recipientRandHash(10n)).toBe(RAND_HASH_10);
    expect(ticketPacked(base)).toBe(
      '0x73aed7b5deb30222fa896f399d46cc99c7bee57ff39fd6e51aad88f6f4ce6ab8827279cfffb922660000000000000000000000000000000000000000000000000000000005f5e100000000d6bf94d5e57a42bc3d32907604691b4c8ca08cd2e1b9c3db8c8330a18c0000000000000000000000000000000000000000000000000000000000000001c65a7bb8d6351c1cf70c95a316cc6a92839c986682d98bc35f958f4883f9d2a8000000000000000000000000000000000000000000000000000000000000000a41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d',
    );
  });

  it.each(rows)('nonce %i: hash, digest, signature, win test', async (nonce, hash, digest, sig, winHash) => {
    const t = { ...base, senderNonce: nonce };
    expect(ticketHash(t)).toBe(hash);
    expect(hashMessage({ raw: hash as Hex })).toBe(digest);
    const signed = await signTicket(account, t);
    expect(signed).toBe(sig);
    expect(signatureProblem(signed)).toBeNull();
    expect(await recoverMessageAddress({ message: { raw: hash as Hex }, signature: signed })).toBe(
      TEST_ADDRESS,
    );
    expect(keccak256(`${signed}${10n.toString(16).padStart(64, '0')}` as Hex)).toBe(winHash);
    expect(BigInt(winHash) < WIN_PROB).toBe(false);
    expect(isWinningTicket(signed, 10n, WIN_PROB)).toBe(false);
  });
});

describe('§7.2 orchestrator-side HMAC (recipientRand)', () => {
  const secret = new Uint8Array(32);
  secret[0] = 3;
  const input = {
    seed: 0x1234567890abcdefn,
    sender: TEST_ADDRESS,
    faceValue: FACE_VALUE,
    winProb: WIN_PROB,
    expirationBlock: 20000000n,
    price: { num: 2400n, den: 2n }, // PriceInfo{2400, 2}: normalised to 1200/1 inside
    auxData: auxData(10n, keccak256(stringToBytes('foo'))),
  };
  const RAND = 0x768bb0965611f58f590f50434580afc32f91c141721a968a05853f2089277b45n;
  const RAND_HASH: Hex = '0x9a44cf989dfa42b893f0343e542e0596a666a797bdf0cd11a554a14a658059dc';

  it('derives recipientRand and its hash', () => {
    expect(toHex(recipientRandMessage(input))).toBe(
      '0x1234567890abcdeff39fd6e51aad88f6f4ce6ab8827279cfffb9226605f5e100d6bf94d5e57a42bc3d32907604691b4c8ca08cd2e1b9c3db8c8330a18c01312d0004b001000000000000000000000000000000000000000000000000000000000000000a41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d',
    );
    const rand = recipientRand(secret, input);
    expect(rand).toBe(RAND);
    expect(rand).toBe(53619726635242909539181552161375857931102767703049438811653942617574853802821n);
    expect(recipientRandHash(rand)).toBe(RAND_HASH);
  });

  it('any echo change alters recipientRand', () => {
    expect(recipientRand(secret, { ...input, seed: input.seed + 1n })).not.toBe(RAND);
    expect(recipientRand(secret, { ...input, price: { num: 1201n, den: 1n } })).not.toBe(RAND);
  });

  it('nonce 1 wins at winProb = max/2; nonces 2–4 lose; all lose at the EV-5 winProb', async () => {
    const account = privateKeyToAccount(TEST_KEY);
    const t: Ticket = {
      recipient: RECIPIENT,
      sender: TEST_ADDRESS,
      faceValue: FACE_VALUE,
      winProb: MAX_WIN_PROB / 2n,
      senderNonce: 1,
      recipientRandHash: RAND_HASH,
      creationRound: 10n,
      creationRoundBlockHash: FOO_HASH,
    };
    expect(ticketHash(t)).toBe('0x402a8d4ff8081b3392a1097c5bfd85f722f9a538c31d111d3d3e81d893d9f3b9');
    const sig1 = await signTicket(account, t);
    expect(sig1).toBe(
      '0xe96157f61f530517d7a9330627eb3f60a5dd138d76deee95ae23fc4828326e4a7b193569fe331487e1df45f5b45feb5da35490c393357de7e618ec7175426c1f1b',
    );
    expect(keccak256(`${sig1}${RAND.toString(16).padStart(64, '0')}` as Hex)).toBe(
      '0x2141bb6b4fd150491af1a98992d2ff743b60ed3d22b6936101ad5100bf74aeea',
    );
    expect(isWinningTicket(sig1, RAND, t.winProb)).toBe(true);
    for (const nonce of [2, 3, 4]) {
      expect(isWinningTicket(await signTicket(account, { ...t, senderNonce: nonce }), RAND, t.winProb)).toBe(
        false,
      );
    }
    for (const nonce of [1, 2, 3, 4]) {
      const low = { ...t, winProb: WIN_PROB, senderNonce: nonce };
      expect(isWinningTicket(await signTicket(account, low), RAND, WIN_PROB)).toBe(false);
    }
  });

  it('winProb max always wins except at hash = max; 0 never wins', () => {
    const sig = `0x${'11'.repeat(65)}` as Hex;
    expect(isWinningTicket(sig, 1n, MAX_WIN_PROB)).toBe(true);
    expect(isWinningTicket(sig, 1n, 0n)).toBe(false);
  });
});
