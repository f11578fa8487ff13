// The batched AES_CM_128_HMAC_SHA1_80 path (src/webrtc/srtp-cm.ts, used by DirectRtpSender) must
// produce byte for byte what one AES-128-CTR cipher and one HMAC-SHA1 per packet produce (RFC 3711),
// whatever order, size and rollover count the packets come with. Pure computation, no sockets.
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DirectRtpSender } from '../../src/webrtc/direct-rtp-sender.ts';
import { hasSimdXor } from '../../src/webrtc/simd-xor.ts';
import { CM_PREFIX, CM_TAG_LENGTH, SrtpCmContext } from '../../src/webrtc/srtp-cm.ts';

const SSRC = 0x8badf00d;
const PAYLOAD_TYPE = 102;
const MID_EXTENSION_ID = 3;

interface SessionKeys {
  key: Buffer;
  salt: Buffer;
  auth: Buffer;
}

function newKeys(): SessionKeys {
  return { key: randomBytes(16), salt: randomBytes(14), auth: randomBytes(20) };
}

/** werift's localContext for AES128_CM_HMAC_SHA1_80 with these keys. */
function cmContext(keys: SessionKeys) {
  return {
    profile: 1,
    cipher: { srtpSessionKey: keys.key, srtpSessionSalt: keys.salt, srtpSessionAuthTag: keys.auth },
  };
}

/** A werift sender as DirectRtpSender reads it, whose UDP socket records what is sent. */
function fakeSender(keys: SessionKeys) {
  const sent: Buffer[] = [];
  const socket = { send: (data: Buffer) => sent.push(Buffer.from(data)) };
  const internals = {
    ssrc: SSRC,
    mid: '0',
    headerExtensions: [{ id: MID_EXTENSION_ID, uri: 'urn:ietf:params:rtp-hdrext:sdes:mid' }],
    runRtcp: async () => {},
    ntpTimestamp: 0n,
    rtpTimestamp: 0,
    octetCount: 0,
    packetCount: 0,
    dtlsTransport: {
      state: 'connected',
      srtp: { localContext: cmContext(keys) },
      iceTransport: {
        connection: {
          nominated: {
            protocol: { transport: { socket, closed: false }, sendData: async () => {} },
            remoteAddr: ['127.0.0.1', 9],
            packetsSent: 0,
            bytesSent: 0,
          },
        },
      },
    },
  };
  const direct = DirectRtpSender.create(
    internals as unknown as Parameters<typeof DirectRtpSender.create>[0],
    PAYLOAD_TYPE,
  );
  if (!direct) throw new Error('DirectRtpSender refused the fake sender');
  return { direct, sent, internals };
}

/** RFC 3711 done the plain way: a new AES-128-CTR cipher and a new HMAC-SHA1 for the packet. */
function referencePacket(
  keys: SessionKeys,
  packet: { payload: Buffer; seq: number; roc: number; timestamp: number; marker: boolean },
): Buffer {
  const header = Buffer.alloc(20);
  header[0] = 0x90;
  header[1] = (packet.marker ? 0x80 : 0) | PAYLOAD_TYPE;
  header.writeUInt16BE(packet.seq, 2);
  header.writeUInt32BE(packet.timestamp, 4);
  header.writeUInt32BE(SSRC, 8);
  // RFC 8285 one-byte extension block holding mid "0".
  header.writeUInt16BE(0xbede, 12);
  header.writeUInt16BE(1, 14);
  header[16] = MID_EXTENSION_ID << 4;
  header[17] = '0'.charCodeAt(0);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(SSRC, 4);
  iv.writeUInt32BE(packet.roc, 8);
  iv.writeUInt16BE(packet.seq, 12);
  for (let i = 0; i < 14; i++) iv[i] ^= keys.salt[i];
  const encrypted = createCipheriv('aes-128-ctr', keys.key, iv).update(packet.payload);
  const roc = Buffer.alloc(4);
  roc.writeUInt32BE(packet.roc);
  const tag = createHmac('sha1', keys.auth).update(header).update(encrypted).update(roc).digest();
  return Buffer.concat([header, encrypted, tag.subarray(0, 10)]);
}

/** A repeatable pseudo-random sequence, so a failure names the same packets each run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

describe('SRTP AES_CM_128_HMAC_SHA1_80 (batched keystream, precomputed HMAC blocks)', () => {
  it('DirectRtpSender sends exactly the packets of a per-packet CTR + HMAC reference, across the wrap, retransmits and a key change', () => {
    const random = prng(8827);
    let keys = newKeys();
    const { direct, sent, internals } = fakeSender(keys);
    const expected: Buffer[] = [];
    const history = new Map<
      number,
      { payload: Buffer; seq: number; roc: number; timestamp: number; marker: boolean }
    >();
    let seq = 65_000;
    let roc = 0;
    let timestamp = 0x7fff_0000;
    let wrapped = false;
    const sizes = [1, 2, 3, 4, 15, 16, 17, 1199, 1200, 1232, 1233, 1400, 1504, 1505, 3000];
    for (let n = 0; n < 2_400; n++) {
      if (n === 1_800) {
        // A new DTLS session: new keys, and the rollover count starts again.
        keys = newKeys();
        internals.dtlsTransport.srtp.localContext = cmContext(keys);
        history.clear();
        roc = 0;
      }
      // Mostly video-sized packets, every size of interest now and then, sometimes a jump ahead.
      const size = n % 7 === 0 ? sizes[n % sizes.length] : 1 + Math.floor(random() * 1400);
      if (random() < 0.01) {
        const before = seq;
        seq = (seq + 1 + Math.floor(random() * 40)) & 0xffff;
        if (seq < before) roc++;
      }
      const payload = randomBytes(size);
      const marker = random() < 0.1;
      if (marker) timestamp = (timestamp + 3000) >>> 0;
      const packet = { payload, seq, roc, timestamp, marker };
      expect(direct.send(payload, seq, timestamp, marker)).toBe(true);
      expected.push(referencePacket(keys, packet));
      history.set(seq, packet);
      // Retransmissions of older packets, out of order, some from before the wrap.
      if (n % 13 === 5) {
        const lost = [1, 30, 3, 200].map((back) => (seq - back) & 0xffff).filter((s) => history.has(s));
        direct.resend(lost);
        for (const s of lost) expected.push(referencePacket(keys, history.get(s) as typeof packet));
      }
      const next = (seq + 1) & 0xffff;
      if (next < seq) roc++;
      if (roc > 0) wrapped = true;
      seq = next;
    }
    expect(wrapped).toBe(true);
    expect(sent.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) {
      if (!sent[i].equals(expected[i])) {
        throw new Error(`packet ${i} (seq ${expected[i].readUInt16BE(2)}) differs from the reference`);
      }
    }
    expect(direct.retransmitted).toBeGreaterThan(100);
  });

  it('sends packets of rollover count 1 (the 16-bit wrap) exactly as the reference', () => {
    const keys = newKeys();
    const { direct, sent } = fakeSender(keys);
    const payload = randomBytes(1200);
    const expected: Buffer[] = [];
    for (let i = 0; i < 100; i++) {
      const seq = (65_500 + i) & 0xffff;
      const roc = 65_500 + i > 0xffff ? 1 : 0;
      direct.send(payload, seq, 1000, false);
      expected.push(referencePacket(keys, { payload, seq, roc, timestamp: 1000, marker: false }));
    }
    expect(sent.map((p) => p.toString('hex'))).toEqual(expected.map((p) => p.toString('hex')));
  });

  it('encrypts the same wherever the packet sits in memory (unaligned buffers XOR byte by byte), in SIMD or in JS, and with createHmac where crypto.hash is missing', () => {
    const keys = newKeys();
    const senders = {
      default: new SrtpCmContext(keys.key, keys.salt, keys.auth, SSRC),
      // As where WebAssembly SIMD is missing: the XOR in JavaScript.
      js: new SrtpCmContext(keys.key, keys.salt, keys.auth, SSRC, { jsXor: true }),
      // As on a Node before 20.12, without crypto.hash: createHmac.
      hmac: new SrtpCmContext(keys.key, keys.salt, keys.auth, SSRC, { createHmac: true }),
    };
    expect(hasSimdXor).toBe(true); // Node 20's V8 has it: the default path is the SIMD one
    // 2100: longer than a batch slot and than the SIMD regions.
    for (const size of [1, 5, 15, 16, 17, 100, 1201, 2048, 2100]) {
      const payload = randomBytes(size);
      const header = randomBytes(12);
      const layout = (slack: number) => {
        const backing = Buffer.alloc(slack + CM_PREFIX + 12 + size + CM_TAG_LENGTH);
        const out = backing.subarray(slack);
        header.copy(out, CM_PREFIX);
        return out;
      };
      const iv = Buffer.alloc(16);
      iv.writeUInt32BE(SSRC, 4);
      iv.writeUInt32BE(7, 8);
      iv.writeUInt16BE(4242, 12);
      for (let i = 0; i < 14; i++) iv[i] ^= keys.salt[i];
      const encrypted = createCipheriv('aes-128-ctr', keys.key, iv).update(payload);
      const tag = createHmac('sha1', keys.auth)
        .update(header)
        .update(encrypted)
        .update(Buffer.from([0, 0, 0, 7]))
        .digest();
      const expected = Buffer.concat([header, encrypted, tag.subarray(0, 10)]);
      // Slack 3: neither the payload nor the keystream slot is 4-byte aligned; 0: both are.
      for (const slack of [3, 0]) {
        for (const [name, cm] of Object.entries(senders)) {
          expect([
            name,
            size,
            slack,
            cm.protect(layout(slack), 12, payload, 7, 4242).toString('hex'),
          ]).toEqual([name, size, slack, expected.toString('hex')]);
        }
      }
    }
  });
});
