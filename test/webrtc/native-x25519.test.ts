// werift's DTLS X25519 by node:crypto (src/webrtc/native-x25519.ts): the same bytes as RFC 7748's
// vectors and as tweetnacl itself, key pairs werift can read, and a real werift DTLS handshake with
// it in place (the peers in the other webrtc tests shake hands through it as well).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { EgressPeer, LOOPBACK_NETWORK } from '../../src/webrtc/index.ts';
import { useNativeX25519, weriftNacl, x25519, x25519KeyPair } from '../../src/webrtc/native-x25519.ts';
import { WeriftViewer, waitFor } from '../helpers/webrtc-clients.ts';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('native X25519 for werift', () => {
  // werift's tweetnacl object: importing the webrtc layer above already swapped its X25519.
  const nacl = weriftNacl();
  // The reference: tweetnacl's plain build (nacl.js), a module of its own that nothing swaps.
  const js = createRequire(createRequire(import.meta.url).resolve('werift'))('tweetnacl/nacl.js')
    .scalarMult as typeof nacl.scalarMult;

  it('matches RFC 7748 section 6.1 (Alice and Bob)', () => {
    const alicePriv = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
    const bobPriv = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
    const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    expect(toHex(x25519(alicePriv, hex('09'.padEnd(64, '0'))))).toBe(alicePub);
    expect(toHex(x25519(alicePriv, hex(bobPub)))).toBe(shared);
    expect(toHex(x25519(bobPriv, hex(alicePub)))).toBe(shared);
  });

  it('gives the bytes tweetnacl gives, and key pairs whose halves belong together', () => {
    for (let i = 0; i < 50; i++) {
      const n = randomBytes(32);
      const p = nacl.scalarMult.base(randomBytes(32));
      expect(toHex(x25519(n, p))).toBe(toHex(js(n, p)));
    }
    const pair = x25519KeyPair();
    expect(toHex(nacl.scalarMult.base(pair.secretKey))).toBe(toHex(pair.publicKey));
    // werift reads Buffer.from(keys.secretKey.buffer): the arrays must own exactly 32 bytes.
    expect(pair.secretKey.buffer.byteLength).toBe(32);
    expect(pair.publicKey.buffer.byteLength).toBe(32);
  });

  it("is what werift's tweetnacl object runs, and falls back to tweetnacl where OpenSSL refuses", () => {
    useNativeX25519(); // once per process: a second call changes nothing
    expect(nacl.box.keyPair).toBe(x25519KeyPair);
    expect(toHex(nacl.scalarMult.base(new Uint8Array(32).fill(7)))).toBe(
      toHex(js.base(new Uint8Array(32).fill(7))),
    );
    const n = randomBytes(32);
    const p = x25519KeyPair().publicKey;
    expect(toHex(nacl.scalarMult(n, p))).toBe(toHex(x25519(n, p)));
    // A small-order point (u = 0): OpenSSL refuses the all-zero secret, tweetnacl returns it.
    expect(() => x25519(n, new Uint8Array(32))).toThrow();
    expect(toHex(nacl.scalarMult(n, new Uint8Array(32)))).toBe('00'.repeat(32));
  });

  it('a werift viewer and an EgressPeer shake hands through it', async () => {
    // Importing the webrtc layer made the swap; count what the handshake calls.
    const calls = { keyPair: 0, scalarMult: 0 };
    const { keyPair } = nacl.box;
    const scalarMult = nacl.scalarMult;
    nacl.box.keyPair = () => {
      calls.keyPair++;
      return keyPair();
    };
    nacl.scalarMult = Object.assign((n: Uint8Array, p: Uint8Array) => {
      calls.scalarMult++;
      return scalarMult(n, p);
    }, scalarMult);
    const viewer = new WeriftViewer({ audio: false });
    let egress: EgressPeer | undefined;
    try {
      egress = await EgressPeer.create(await viewer.createOffer(), { ...LOOPBACK_NETWORK });
      await viewer.applyAnswer(egress.answerSdp);
      await waitFor(() => egress?.state === 'connected', 5000, 'egress connected');
      // Both ends in this process: two key pairs and two shared secrets, the native ones.
      expect(calls).toEqual({ keyPair: 2, scalarMult: 2 });
      expect(keyPair).toBe(x25519KeyPair);
    } finally {
      nacl.box.keyPair = keyPair;
      nacl.scalarMult = scalarMult;
      await egress?.close();
      await viewer.close();
    }
  });
});
