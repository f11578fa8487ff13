// PM tickets (spec livepeer-pm.md §1): hash, signature, EV, the win test and the orchestrator's
// recipientRand. Shared by the gateway (sender) and the local orchestrator (recipient).
import { createHmac } from 'node:crypto';
import {
  bytesToHex,
  concat,
  encodePacked,
  type Hex,
  hexToBigInt,
  hexToBytes,
  keccak256,
  type LocalAccount,
  numberToHex,
  zeroHash,
} from 'viem';
import { type Rational, rat, ZERO } from './rational.ts';

/** winProb is a probability scaled to this: winProb / (2^256 − 1). */
export const MAX_WIN_PROB = (1n << 256n) - 1n;

/** secp256k1 group order n; go-livepeer rejects signatures with s > n/2. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

export interface Ticket {
  recipient: Hex;
  sender: Hex;
  faceValue: bigint;
  winProb: bigint;
  senderNonce: number;
  recipientRandHash: Hex;
  creationRound: bigint;
  creationRoundBlockHash: Hex;
}

/** Minimal big-endian bytes, as Go's big.Int.Bytes(): 0 gives no bytes. Negative values are refused. */
export function bigintToBytes(v: bigint): Uint8Array {
  if (v < 0n) throw new RangeError('bigintToBytes: negative value');
  if (v === 0n) return new Uint8Array(0);
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return hexToBytes(`0x${hex}`);
}

/** Big-endian bytes as an unsigned integer (Go's SetBytes): no bytes give 0. */
export function bytesToBigint(b: Uint8Array | undefined): bigint {
  if (!b || b.length === 0) return 0n;
  return hexToBigInt(bytesToHex(b));
}

/** 32-byte big-endian word. */
export const uint256Bytes = (v: bigint): Uint8Array => hexToBytes(numberToHex(v, { size: 32 }));

/** Ticket auxData: empty when round and block hash are both zero, else uint256(round) ‖ blockHash. */
export function auxData(creationRound: bigint, blockHash: Hex): Hex {
  const hash = blockHash === '0x' ? zeroHash : blockHash;
  if (creationRound === 0n && BigInt(hash) === 0n) return '0x';
  return encodePacked(['uint256', 'bytes32'], [creationRound, hash]);
}

/** The bytes that are hashed: abi.encodePacked(recipient, sender, faceValue, winProb, nonce, randHash, auxData). */
export function ticketPacked(t: Ticket): Hex {
  return encodePacked(
    ['address', 'address', 'uint256', 'uint256', 'uint256', 'bytes32', 'bytes'],
    [
      t.recipient,
      t.sender,
      t.faceValue,
      t.winProb,
      BigInt(t.senderNonce),
      t.recipientRandHash,
      auxData(t.creationRound, t.creationRoundBlockHash),
    ],
  );
}

/** keccak256 of the packed ticket: TicketBroker.getTicketHash and go-livepeer's Ticket.Hash(). */
export const ticketHash = (t: Ticket): Hex => keccak256(ticketPacked(t));

/** Where the 32-byte nonce sits in a packed ticket: after recipient, sender (20 bytes each), faceValue, winProb (32 each). */
export const PACKED_NONCE_OFFSET = 104;

/** The ticket packed with nonce 0: what a batch of tickets differing only in their nonce shares. */
export const ticketTemplate = (base: Omit<Ticket, 'senderNonce'>): Uint8Array =>
  hexToBytes(ticketPacked({ ...base, senderNonce: 0 }));

/** Writes a nonce into a packed ticket (as its uint256). */
export function setPackedNonce(packed: Uint8Array, senderNonce: number): void {
  if (!Number.isSafeInteger(senderNonce) || senderNonce < 0) throw new RangeError('ticket: bad nonce');
  const view = new DataView(packed.buffer, packed.byteOffset + PACKED_NONCE_OFFSET, 32);
  view.setUint32(24, Math.floor(senderNonce / 2 ** 32));
  view.setUint32(28, senderNonce >>> 0);
}

/**
 * ticketHash for many nonces of one ticket: everything but the nonce is packed once, so a hash
 * costs only its keccak.
 */
export function ticketHasher(base: Omit<Ticket, 'senderNonce'>): (senderNonce: number) => Hex {
  const packed = ticketTemplate(base);
  return (senderNonce) => {
    setPackedNonce(packed, senderNonce);
    return keccak256(packed);
  };
}

/** EIP-191 personal_sign over the 32 raw hash bytes; 65 bytes r‖s‖v with v ∈ {27, 28}. */
export async function signTicket(account: LocalAccount, t: Ticket): Promise<Hex> {
  const sig = await account.signMessage({ message: { raw: ticketHash(t) } });
  const problem = signatureProblem(sig);
  if (problem) throw new Error(`signTicket: ${problem}`);
  return sig;
}

/**
 * go-livepeer's shape checks on a ticket signature (crypto/verify.go), or null when it passes:
 * 65 bytes, low s, v 27 or 28. Recovery itself is left to viem.
 */
export function signatureProblem(sig: Hex): string | null {
  if (sig.length !== 132) return 'invalid signature length';
  const s = BigInt(`0x${sig.slice(66, 130)}`);
  if (s > SECP256K1_N / 2n) return 'signature s value too high';
  const v = Number.parseInt(sig.slice(130), 16);
  if (v !== 27 && v !== 28) return 'signature v value must be 27 or 28';
  return null;
}

/** EV = faceValue × winProb / (2^256 − 1), exact. */
export const ticketEV = (faceValue: bigint, winProb: bigint): Rational =>
  faceValue === 0n || winProb === 0n ? ZERO : rat(faceValue * winProb, MAX_WIN_PROB);

/** The win probability as a fraction in [0, 1]. */
export const winProbRat = (winProb: bigint): Rational => rat(winProb, MAX_WIN_PROB);

/** A ticket wins when uint256(keccak256(sig ‖ uint256(recipientRand))) < winProb. */
export function isWinningTicket(sig: Hex, recipientRand: bigint, winProb: bigint): boolean {
  const h = keccak256(concat([sig, numberToHex(recipientRand, { size: 32 })]));
  return hexToBigInt(h) < winProb;
}

/** The orchestrator's winProb for its EV and faceValue (go-livepeer pm/recipient.go): rounds the EV up. */
export function winProbFor(ev: bigint, faceValue: bigint): bigint {
  if (faceValue === 0n) return 0n;
  if (faceValue === ev) return MAX_WIN_PROB;
  const q = MAX_WIN_PROB / faceValue;
  return ev * (MAX_WIN_PROB % faceValue === 0n ? q : q + 1n);
}

export interface RecipientRandInput {
  seed: bigint;
  sender: Hex;
  faceValue: bigint;
  winProb: bigint;
  expirationBlock: bigint;
  /** Price per pixel; normalised here (Go's big.Rat always is). */
  price: Rational;
  auxData: Hex;
}

/** The HMAC message: seed ‖ sender(20) ‖ faceValue ‖ winProb ‖ expirationBlock ‖ priceNum ‖ priceDen ‖ auxData. */
export function recipientRandMessage(input: RecipientRandInput): Uint8Array {
  const price = rat(input.price.num, input.price.den);
  const abs = (v: bigint) => (v < 0n ? -v : v);
  const sender = hexToBytes(input.sender);
  if (sender.length !== 20) throw new RangeError('recipientRand: sender must be 20 bytes');
  return concat([
    bigintToBytes(input.seed),
    sender,
    bigintToBytes(input.faceValue),
    bigintToBytes(input.winProb),
    bigintToBytes(input.expirationBlock),
    bigintToBytes(abs(price.num)),
    bigintToBytes(price.den),
    hexToBytes(input.auxData),
  ]);
}

/** recipientRand = HMAC-SHA256(secret, message) read big-endian (go-livepeer pm/recipient.go). */
export function recipientRand(secret: Uint8Array, input: RecipientRandInput): bigint {
  const mac = createHmac('sha256', secret).update(recipientRandMessage(input)).digest();
  return bytesToBigint(mac);
}

/** The orchestrator's commitment: keccak256(uint256(recipientRand)). */
export const recipientRandHash = (rand: bigint): Hex => keccak256(numberToHex(rand, { size: 32 }));
