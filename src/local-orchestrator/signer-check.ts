// "Did `address` sign this EIP-191 hash?", fast enough for a 250-ticket prepayment. go-livepeer
// recovers every signer natively (~50 µs); viem's pure-JS recovery costs ~1.5 ms on an idle
// 2-core EPYC and several on a busy one, which held a live job's start past the gateway's 5 s.
//
// A sender's first signature is recovered as before. Its public key Q is then kept, with
// precomputed multiples, and a later signature (r, s, v) over digest z is checked by computing
// R = s⁻¹·z·G + s⁻¹·r·Q: R.x = r (not merely ≡ r mod n) and R.y's parity = v − 27 hold exactly
// when recovering (r, s, v) gives Q back. Any other outcome is decided by recovery itself, so
// the verdict is always recovery's.
import { secp256k1 } from '@noble/curves/secp256k1';
import { getAddress, type Hex, hashMessage, recoverPublicKey } from 'viem';
import { publicKeyToAddress } from 'viem/accounts';

type Point = InstanceType<typeof secp256k1.ProjectivePoint>;

const N = secp256k1.CURVE.n;
/** Senders whose key is kept; the oldest goes first. */
const MAX_SENDERS = 256;
/** wNAF window for a kept key: ~0.2 MB of multiples each, built once. */
const WINDOW = 8;

const mod = (x: bigint) => ((x % N) + N) % N;

function invert(x: bigint): bigint {
  let [a, b, u, v] = [mod(x), N, 1n, 0n];
  while (a !== 0n) {
    const q = b / a;
    [a, b, u, v] = [b - q * a, a, v - q * u, u];
  }
  return mod(v);
}

export class SignerCheck {
  private readonly keys = new Map<string, Point>();
  /** Signatures that went through full recovery (the rest took the fast path). */
  recoveries = 0;

  /**
   * The address that signed `hash` (EIP-191 over its 32 raw bytes) with `sig` (r‖s‖v, v 27/28,
   * shape already checked), when it is `expected`; otherwise whatever recovery says (or throws).
   */
  async signer(expected: Hex, hash: Hex, sig: Hex): Promise<Hex> {
    const key = expected.toLowerCase();
    const digest = hashMessage({ raw: hash });
    const q = this.keys.get(key);
    if (q && matches(q, digest, sig)) return getAddress(expected);
    this.recoveries++;
    const publicKey = await recoverPublicKey({ hash: digest, signature: sig });
    const signer = publicKeyToAddress(publicKey);
    if (signer.toLowerCase() === key && !q) this.keep(key, publicKey);
    return signer;
  }

  private keep(key: string, publicKey: Hex): void {
    const q = secp256k1.ProjectivePoint.fromHex(publicKey.slice(2));
    q._setWindowSize(WINDOW);
    this.keys.set(key, q);
    while (this.keys.size > MAX_SENDERS) this.keys.delete(this.keys.keys().next().value as string);
  }
}

/** R = s⁻¹(z·G + r·Q) has x = r and y parity v − 27: recovery of (r, s, v) gives Q. */
function matches(q: Point, digest: Hex, sig: Hex): boolean {
  try {
    return computeMatches(q, digest, sig);
  } catch {
    return false; // e.g. R at infinity: let recovery say what it is
  }
}

function computeMatches(q: Point, digest: Hex, sig: Hex): boolean {
  const r = BigInt(`0x${sig.slice(2, 66)}`);
  const s = BigInt(`0x${sig.slice(66, 130)}`);
  const v = Number.parseInt(sig.slice(130, 132), 16);
  if (r <= 0n || r >= N || s <= 0n || s >= N || (v !== 27 && v !== 28)) return false;
  const sInv = invert(s);
  const u1 = mod(BigInt(digest) * sInv);
  const u2 = mod(r * sInv);
  const G = secp256k1.ProjectivePoint.BASE;
  const R = (u1 === 0n ? q.multiply(u2) : G.multiply(u1).add(q.multiply(u2))).toAffine();
  return R.x === r && Number(R.y & 1n) === v - 27;
}
