// werift's DTLS does its X25519 key exchange with tweetnacl, in JavaScript: a key pair and a shared
// secret per handshake, 0.6-0.9 ms each on the media event loop, at every publisher's and viewer's
// start (docs/performance.md, the stream-start event-loop delay). OpenSSL does the same in tens of
// microseconds. werift calls tweetnacl through its module object (`nacl.box.keyPair`,
// `nacl.scalarMult`), so those two functions are replaced on that object with node:crypto's X25519.
// Same inputs, same bytes (RFC 7748 vectors and tweetnacl itself in test/webrtc/native-x25519.test.ts);
// where OpenSSL refuses (an all-zero shared secret from a small-order point), tweetnacl answers as before.
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { createRequire } from 'node:module';

interface Nacl {
  scalarMult: ((n: Uint8Array, p: Uint8Array) => Uint8Array) & { base: (n: Uint8Array) => Uint8Array };
  box: { keyPair: () => { publicKey: Uint8Array; secretKey: Uint8Array } };
}

/** DER prefix of an X25519 PKCS#8 private key (RFC 8410), before the 32 raw bytes. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * The KeyObjects of the key pairs made here, by their secret key's ArrayBuffer: werift hands the
 * secret back as a Buffer over that same ArrayBuffer, and importing a private key costs OpenSSL
 * ~0.4 ms (its decoders) against ~0.04 ms for making the pair.
 */
const made = new WeakMap<ArrayBufferLike, KeyObject>();

function privateKey(raw: Uint8Array): KeyObject {
  return (
    made.get(raw.buffer) ??
    createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' })
  );
}

const publicKey = (raw: Uint8Array): KeyObject =>
  createPublicKey({
    key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') },
    format: 'jwk',
  });

/** 32 bytes in an ArrayBuffer of their own: werift reads `keys.secretKey.buffer` whole. */
function own(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  out.set(bytes);
  return out;
}

/** tweetnacl's scalarMult, by OpenSSL: X25519(n, p), both clamp n. */
export function x25519(n: Uint8Array, p: Uint8Array): Uint8Array {
  return own(diffieHellman({ privateKey: privateKey(n), publicKey: publicKey(p) }));
}

/** tweetnacl's box.keyPair, by OpenSSL. */
export function x25519KeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const pair = generateKeyPairSync('x25519');
  const jwk = pair.privateKey.export({ format: 'jwk' });
  const secretKey = own(Buffer.from(jwk.d ?? '', 'base64url'));
  made.set(secretKey.buffer, pair.privateKey);
  return { secretKey, publicKey: own(Buffer.from(jwk.x ?? '', 'base64url')) };
}

/** The tweetnacl module object werift uses (resolved from werift's own location). */
export function weriftNacl(): Nacl {
  const fromHere = createRequire(import.meta.url);
  return createRequire(fromHere.resolve('werift'))('tweetnacl') as Nacl;
}

let installed = false;

/** Replaces tweetnacl's X25519 for werift (once per process). */
export function useNativeX25519(): void {
  if (installed) return;
  installed = true;
  const nacl = weriftNacl();
  const js = nacl.scalarMult;
  const native = (n: Uint8Array, p: Uint8Array): Uint8Array => {
    if (n.length !== 32 || p.length !== 32) return js(n, p); // tweetnacl's own errors
    try {
      return x25519(n, p);
    } catch {
      return js(n, p);
    }
  };
  // base, scalarLength and groupElementLength stay tweetnacl's.
  nacl.scalarMult = Object.assign(native, js);
  nacl.box.keyPair = x25519KeyPair;
}
