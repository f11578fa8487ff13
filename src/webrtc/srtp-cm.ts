// SRTP AES_CM_128_HMAC_SHA1_80 (RFC 3711) for one SSRC, without a cipher object per packet.
// node:crypto cannot give an AES-CTR context a new IV, so the usual way costs a createCipheriv and a
// createHmac per packet. AES-CM's keystream is AES-ECB of counter blocks that depend only on the
// salt, SSRC and packet index, so one ECB context made per key encrypts the counter blocks of the
// next BATCH packets in one update() call, and each packet XORs its share with its payload (in
// WebAssembly SIMD, simd-xor.ts; in JS where that is missing or the payload too long). The
// HMAC-SHA1 uses the key's precomputed blocks: the packet is written behind its 64-byte inner block,
// so the inner hash is one crypto.hash() call, and the outer hash, one SHA-1 block from the opad
// block's precomputed state, runs here in JS (a crypto.hash() call costs more than the block). The
// inner digest comes back as a latin1 string, one char per byte: a Buffer made in C++ costs about
// 0.6 µs more per call than the string (1.6 → 1.0 µs for a 1.3 kB packet on the sandbox's EPYC).
// createHmac where Node has no crypto.hash (before 20.12).
import * as nodeCrypto from 'node:crypto';
import { type Cipher, createCipheriv, createHmac } from 'node:crypto';
import { xorPayloadSimd } from './simd-xor.ts';

/** Spare bytes the caller leaves in front of the packet for the HMAC's inner key block. */
export const CM_PREFIX = 64;
/** HMAC-SHA1-80: the first 10 bytes of the HMAC. */
export const CM_TAG_LENGTH = 10;
const BLOCK = 16;
/** Packets whose keystream one ECB call makes: about 70 ms of a 2 Mbit/s stream. */
const BATCH = 16;
/** The widest packet slot in a batch; a longer payload gets a keystream of its own. */
const MAX_STRIDE = 1504;
const HMAC_BLOCK = 64;
const SHA1_LENGTH = 20;

/** SHA-1 of `data` as 20 latin1 chars (char i = byte i; 'binary' is Node's alias of latin1). */
const sha1: ((data: Uint8Array) => string) | undefined =
  typeof nodeCrypto.hash === 'function' ? (data) => nodeCrypto.hash('sha1', data, 'binary') : undefined;

/** One SSRC's AES-CM context in one direction: protect() for what we send, unprotect() for what we receive. */
export class SrtpCmContext {
  readonly #ecb: Cipher;
  /** The 14-byte session salt. */
  readonly #salt: Buffer;
  readonly #ssrc: number;
  readonly #authKey: Buffer;
  readonly #sha1: typeof sha1;
  /** HMAC key XOR ipad, written in front of each packet. */
  readonly #innerBlock = Buffer.alloc(HMAC_BLOCK, 0x36);
  /** SHA-1 state after the block of HMAC key XOR opad. */
  readonly #outerState = new Int32Array(5);
  readonly #roc = Buffer.alloc(4);
  /** Packet index (ROC·2^16 + SEQ) of the batch's first packet; -1 before the first batch. */
  #first = -1;
  /** Keystream bytes per packet in the batch, a multiple of 16. */
  #stride = 0;
  #keystream: Buffer | undefined;
  #counters: DataView | undefined;

  readonly #simd: boolean;

  /**
   * For tests: `createHmac` as on a Node without crypto.hash; `jsXor` as where WebAssembly SIMD is
   * missing.
   */
  constructor(
    key: Buffer,
    salt: Buffer,
    authKey: Buffer,
    ssrc: number,
    fallbacks: { createHmac?: boolean; jsXor?: boolean } = {},
  ) {
    this.#sha1 = fallbacks.createHmac ? undefined : sha1;
    this.#simd = !fallbacks.jsXor;
    this.#ecb = createCipheriv('aes-128-ecb', key, null);
    this.#ecb.setAutoPadding(false);
    this.#salt = Buffer.from(salt.subarray(0, 14));
    this.#ssrc = ssrc >>> 0;
    this.#authKey = Buffer.from(authKey);
    const outerBlock = Buffer.alloc(HMAC_BLOCK, 0x5c);
    for (let i = 0; i < authKey.length; i++) {
      this.#innerBlock[i] ^= authKey[i];
      outerBlock[i] ^= authKey[i];
    }
    for (let i = 0; i < 16; i++) W[i] = outerBlock.readInt32BE(i * 4);
    sha1Block(SHA1_INITIAL, this.#outerState);
  }

  /**
   * Encrypts `payload` into `out` and authenticates the packet. `out` holds CM_PREFIX spare bytes,
   * then the RTP header (headerLength bytes), then room for the payload and CM_TAG_LENGTH bytes.
   * Returns the SRTP packet, a view of `out`.
   */
  protect(out: Buffer, headerLength: number, payload: Uint8Array, roc: number, seq: number): Buffer {
    const start = CM_PREFIX + headerLength;
    const end = start + payload.length;
    this.#xorKeystream(out, start, payload, roc * 0x10000 + seq);
    this.#tag(out, end, roc);
    return out.subarray(CM_PREFIX, end + CM_TAG_LENGTH);
  }

  /**
   * Checks and decrypts a received packet in place. `out` holds CM_PREFIX spare bytes, then the
   * packet without its tag (header, headerLength bytes, and the encrypted payload, payloadLength
   * bytes), then at least CM_TAG_LENGTH spare bytes; the packet's tag is tag[tagAt…tagAt+10). False,
   * with the payload left as it was, when the tag is not the one the key gives (RFC 3711 3.3: no
   * decryption then).
   */
  unprotect(
    out: Buffer,
    headerLength: number,
    payloadLength: number,
    roc: number,
    tag: Uint8Array,
    tagAt = 0,
  ): boolean {
    const start = CM_PREFIX + headerLength;
    const end = start + payloadLength;
    const seq = out.readUInt16BE(CM_PREFIX + 2);
    this.#tag(out, end, roc);
    if (tag.length - tagAt !== CM_TAG_LENGTH) return false;
    // Every byte compared, whatever differs first.
    let differ = 0;
    for (let i = 0; i < CM_TAG_LENGTH; i++) differ |= out[end + i] ^ tag[tagAt + i];
    if (differ !== 0) return false;
    this.#xorKeystream(out, start, out.subarray(start, end), roc * 0x10000 + seq);
    return true;
  }

  /** out[start…) = payload XOR the keystream of packet `index` (payload may be that part of out). */
  #xorKeystream(out: Buffer, start: number, payload: Uint8Array, index: number): void {
    const payloadLength = payload.length;
    if (payloadLength === 0) return;
    const need = Math.ceil(payloadLength / BLOCK) * BLOCK;
    let keystream: Buffer;
    let offset = need > MAX_STRIDE ? -1 : this.#batchOffset(index, need);
    if (offset >= 0) {
      keystream = this.#keystream as Buffer;
    } else {
      // Wider than a batch slot, or older than the batch (a retransmission): its own keystream.
      keystream = this.#makeKeystream(index, 1, need);
      offset = 0;
    }
    if (!this.#simd || !xorPayloadSimd(out, start, payload, keystream, offset)) {
      out.set(payload, start);
      xorInto(out, start, keystream, offset, payloadLength);
    }
  }

  /**
   * Writes the HMAC-SHA1-80 tag of out[CM_PREFIX…end) and the ROC at out[end…end+10) (RFC 3711
   * 4.2: the tag covers the header, the encrypted payload and the ROC). Uses out[0…CM_PREFIX) and
   * out[end…end+4) as scratch.
   */
  #tag(out: Buffer, end: number, roc: number): void {
    this.#roc.writeUInt32BE(roc >>> 0, 0);
    const hash = this.#sha1;
    if (hash) {
      this.#innerBlock.copy(out, 0);
      this.#roc.copy(out, end);
      const inner = hash(out.subarray(0, end + 4));
      // The outer hash's one remaining block: the inner hash, then SHA-1 padding for 84 bytes.
      for (let i = 0, c = 0; i < 5; i++, c += 4) {
        W[i] =
          (inner.charCodeAt(c) << 24) |
          (inner.charCodeAt(c + 1) << 16) |
          (inner.charCodeAt(c + 2) << 8) |
          inner.charCodeAt(c + 3);
      }
      W[5] = 0x80000000 | 0;
      W.fill(0, 6, 15);
      W[15] = (HMAC_BLOCK + SHA1_LENGTH) * 8;
      const tag = TAG_STATE;
      sha1Block(this.#outerState, tag);
      out.writeInt32BE(tag[0], end);
      out.writeInt32BE(tag[1], end + 4);
      out.writeUInt16BE(tag[2] >>> 16, end + 8);
    } else {
      const tag = createHmac('sha1', this.#authKey)
        .update(out.subarray(CM_PREFIX, end))
        .update(this.#roc)
        .digest();
      tag.copy(out, end, 0, CM_TAG_LENGTH);
    }
  }

  /**
   * Where the keystream for packet `index` starts in the batch, refilling the batch from `index`
   * when the packet is past it or wider than its slots; -1 for a packet older than the batch.
   */
  #batchOffset(index: number, need: number): number {
    const first = this.#first;
    if (this.#keystream && index >= first && index < first + BATCH && need <= this.#stride)
      return (index - first) * this.#stride;
    if (this.#keystream && index < first) return -1;
    const stride = Math.max(this.#stride, need);
    this.#first = index;
    this.#keystream = this.#makeKeystream(index, BATCH, stride);
    return 0;
  }

  /** The keystream of `count` packets from `index` on, `stride` bytes each, in one ECB call. */
  #makeKeystream(index: number, count: number, stride: number): Buffer {
    let counters: DataView;
    if (count === BATCH) {
      if (stride !== this.#stride || !this.#counters) {
        this.#stride = stride;
        this.#counters = this.#newCounters(count, stride);
      }
      counters = this.#counters;
    } else {
      counters = this.#newCounters(count, stride);
    }
    // RFC 3711 4.1.1: block j of packet i is E(k, (salt·2^16) XOR (SSRC·2^64) XOR (i·2^16) + j).
    // Bytes 0–7 (salt, SSRC) and 14–15 (j) never change; bytes 8–13 carry the index.
    const salt = this.#salt;
    const saltRoc = salt.readUInt32BE(8);
    const saltSeq = salt.readUInt16BE(12);
    let offset = 0;
    for (let p = 0; p < count; p++) {
      const i = index + p;
      const rocWord = (saltRoc ^ Math.floor(i / 0x10000)) >>> 0;
      const seqWord = saltSeq ^ (i & 0xffff);
      const packetEnd = offset + stride;
      for (; offset < packetEnd; offset += BLOCK) {
        counters.setUint32(offset + 8, rocWord);
        counters.setUint16(offset + 12, seqWord);
      }
    }
    return this.#ecb.update(new Uint8Array(counters.buffer, counters.byteOffset, counters.byteLength));
  }

  /** Counter blocks for `count` packets of `stride` bytes, with the bytes that never change set. */
  #newCounters(count: number, stride: number): DataView {
    const bytes = new Uint8Array(count * stride);
    const view = new DataView(bytes.buffer);
    const salt = this.#salt;
    const ssrcWord = (salt.readUInt32BE(4) ^ this.#ssrc) >>> 0;
    for (let offset = 0; offset < bytes.length; offset += BLOCK) {
      bytes.set(salt.subarray(0, 4), offset);
      view.setUint32(offset + 4, ssrcWord);
      view.setUint16(offset + 14, (offset % stride) / BLOCK);
    }
    return view;
  }
}

const SHA1_INITIAL = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0);
/** The message schedule; its first 16 words are the block to hash. */
const W = new Int32Array(80);
const TAG_STATE = new Int32Array(5);

/** One SHA-1 compression (FIPS 180-4 6.1.2) of the block in W[0…16) on `state`, into `out`. */
function sha1Block(state: Int32Array, out: Int32Array): void {
  for (let t = 16; t < 80; t++) {
    const x = W[t - 3] ^ W[t - 8] ^ W[t - 14] ^ W[t - 16];
    W[t] = (x << 1) | (x >>> 31);
  }
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  let e = state[4];
  for (let t = 0; t < 80; t++) {
    let f: number;
    let k: number;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc | 0;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6 | 0;
    }
    const next = (((a << 5) | (a >>> 27)) + f + e + k + W[t]) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = next;
  }
  out[0] = (state[0] + a) | 0;
  out[1] = (state[1] + b) | 0;
  out[2] = (state[2] + c) | 0;
  out[3] = (state[3] + d) | 0;
  out[4] = (state[4] + e) | 0;
}

/**
 * Int32Array views of whole ArrayBuffers, the last two asked for: the packets' buffers come from
 * Node's 8 KiB pool and the keystream from one batch, so a view is made every few packets.
 */
const views: { buffer: ArrayBufferLike | undefined; words: Int32Array }[] = [
  { buffer: undefined, words: new Int32Array(0) },
  { buffer: undefined, words: new Int32Array(0) },
];
function wordsOf(buffer: ArrayBufferLike): Int32Array {
  if (views[0].buffer === buffer) return views[0].words;
  if (views[1].buffer !== buffer) {
    views[1] = { buffer, words: new Int32Array(buffer, 0, buffer.byteLength >>> 2) };
  }
  const recent = views[1];
  views[1] = views[0];
  views[0] = recent;
  return recent.words;
}

/** out[at…at+length) ^= keystream[from…from+length), four bytes at a time where both are aligned. */
function xorInto(out: Buffer, at: number, keystream: Buffer, from: number, length: number): void {
  let i = 0;
  const outOffset = out.byteOffset + at;
  const keyOffset = keystream.byteOffset + from;
  if ((outOffset & 3) === 0 && (keyOffset & 3) === 0 && length >= 4) {
    const words = length >>> 2;
    const o = wordsOf(out.buffer);
    const k = wordsOf(keystream.buffer);
    const oStart = outOffset >>> 2;
    const kStart = keyOffset >>> 2;
    for (let w = 0; w < words; w++) o[oStart + w] ^= k[kStart + w];
    i = words << 2;
  }
  for (; i < length; i++) out[at + i] ^= keystream[from + i];
}
