// SRTP benchmark: the CPU time one 1200-byte video packet's SRTP costs on the egress, per profile.
//
//   npm run bench:srtp
//
// Compares, in one process, rounds alternating: AES_CM_128_HMAC_SHA1_80 as the egress does it now
// (src/webrtc/srtp-cm.ts: batched ECB keystream, HMAC from precomputed key blocks, the keystream
// XOR in WebAssembly SIMD), the same with the XOR in JS (where SIMD is missing), the same profile
// done per packet (createCipheriv('aes-128-ctr') + createHmac, what it did before), and
// AEAD_AES_128_GCM (createCipheriv('aes-128-gcm') per packet, as DirectRtpSender does). Sequence
// numbers run on across rounds, so the CM path sees packets in order as a live stream gives them.
// No sockets: the rest of a packet's cost (docs/performance.md) is not in these figures.
import { createCipheriv, createHmac, createSecretKey, randomBytes } from 'node:crypto';
import os from 'node:os';
import { CM_PREFIX, CM_TAG_LENGTH, SrtpCmContext } from '../src/webrtc/srtp-cm.ts';

const PAYLOAD = 1200;
const HEADER = 20; // 12 bytes + the sdes:mid extension, as viewers get it
const PACKETS = 100_000;
const ROUNDS = 5;
const SSRC = 0x1234_5678;

const key = randomBytes(16);
const salt = randomBytes(14);
const auth = randomBytes(20);
const keyObject = createSecretKey(key);
const authObject = createSecretKey(auth);
const payload = randomBytes(PAYLOAD);
const header = randomBytes(HEADER);

const ctrIv = Buffer.alloc(16);
const rocBytes = Buffer.alloc(4);
function cmPerPacket(seq: number, roc: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER + PAYLOAD + 10);
  header.copy(out, 0);
  ctrIv.fill(0);
  ctrIv.writeUInt32BE(SSRC, 4);
  ctrIv.writeUInt32BE(roc, 8);
  ctrIv.writeUInt16BE(seq, 12);
  for (let i = 0; i < 14; i++) ctrIv[i] ^= salt[i];
  createCipheriv('aes-128-ctr', keyObject, ctrIv).update(payload).copy(out, HEADER);
  rocBytes.writeUInt32BE(roc, 0);
  createHmac('sha1', authObject)
    .update(out.subarray(0, HEADER + PAYLOAD))
    .update(rocBytes)
    .digest()
    .copy(out, HEADER + PAYLOAD, 0, 10);
  return out;
}

const cm = new SrtpCmContext(key, salt, auth, SSRC);
const cmJsXor = new SrtpCmContext(key, salt, auth, SSRC, { jsXor: true });
function batched(sender: SrtpCmContext): (seq: number, roc: number) => Buffer {
  return (seq, roc) => {
    const out = Buffer.allocUnsafe(CM_PREFIX + HEADER + PAYLOAD + CM_TAG_LENGTH);
    header.copy(out, CM_PREFIX);
    return sender.protect(out, HEADER, payload, roc, seq);
  };
}

const gcmIv = Buffer.alloc(12);
function gcmPerPacket(seq: number, roc: number): Buffer {
  const out = Buffer.allocUnsafe(HEADER + PAYLOAD + 16);
  header.copy(out, 0);
  gcmIv.fill(0);
  gcmIv.writeUInt32BE(SSRC, 2);
  gcmIv.writeUInt32BE(roc, 6);
  gcmIv.writeUInt16BE(seq, 10);
  for (let i = 0; i < 12; i++) gcmIv[i] ^= salt[i];
  const cipher = createCipheriv('aes-128-gcm', keyObject, gcmIv);
  cipher.setAAD(out.subarray(0, HEADER));
  cipher.update(payload).copy(out, HEADER);
  cipher.final();
  cipher.getAuthTag().copy(out, HEADER + PAYLOAD);
  return out;
}

const paths = [
  {
    name: 'AES_CM_128_HMAC_SHA1_80, batched, XOR in WebAssembly SIMD (now)',
    protect: batched(cm),
    cpu: [] as number[],
  },
  {
    name: 'AES_CM_128_HMAC_SHA1_80, batched, XOR in JS',
    protect: batched(cmJsXor),
    cpu: [] as number[],
  },
  {
    name: 'AES_CM_128_HMAC_SHA1_80, cipher + HMAC per packet (before)',
    protect: cmPerPacket,
    cpu: [] as number[],
  },
  { name: 'AEAD_AES_128_GCM, cipher per packet', protect: gcmPerPacket, cpu: [] as number[] },
];

const simdCheck = batched(cm);
const jsCheck = batched(cmJsXor);
for (let i = 0; i < 1000; i++) {
  const reference = cmPerPacket(i, 0);
  if (!simdCheck(i, 0).equals(reference) || !jsCheck(i, 0).equals(reference))
    throw new Error(`the CM paths differ at packet ${i}`);
}
let index = 1000;
for (let round = -1; round < ROUNDS; round++) {
  for (const path of paths) {
    const before = process.cpuUsage();
    for (let i = 0; i < PACKETS; i++, index++) path.protect(index & 0xffff, Math.floor(index / 0x10000));
    const used = process.cpuUsage(before);
    // Round -1 warms the JIT up.
    if (round >= 0) path.cpu.push((used.user + used.system) / PACKETS);
  }
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
console.log(
  [
    '## lp-gateway SRTP: CPU time per 1200-byte packet',
    '',
    `${ROUNDS} rounds of ${PACKETS} packets per path, alternating; ${os.cpus().length} cores ` +
      `(${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg()[0].toFixed(1)}, Node ${process.versions.node}.`,
    '',
    '| SRTP | µs CPU per packet: least | median |',
    '|---|---|---|',
    ...paths.map(
      (p) =>
        `| ${p.name} | **${sorted(p.cpu)[0].toFixed(2)}** | ${sorted(p.cpu)[Math.floor(ROUNDS / 2)].toFixed(2)} |`,
    ),
  ].join('\n'),
);
