// A ticket-signing worker thread (src/payments/signing-pool.ts starts it). Plain JavaScript that
// imports viem directly, so it loads the same way under tsx, vitest and plain node.
//
// workerData: { key: Uint8Array } (the 32-byte private key; kept here, never sent back or logged).
// In:  { id, hashes: string[] }  32-byte hashes as 0x-hex, or
//      { id, packed: Uint8Array, nonces: number[] }  one ticket packed with nonce 0 (168 or 232
//      bytes, src/payments/ticket.ts ticketTemplate) and the nonces to hash it with: the keccak
//      of a big prepayment runs here too, not on the media event loop.
// Out: { id, sigs: string[] }    EIP-191 signatures over each hash's raw bytes, r‖s‖v with v 27/28
//      { id, error: string }     a bad request; the worker stays up.
import { parentPort, workerData } from 'node:worker_threads';
import { bytesToHex, keccak256 } from 'viem';
import { signMessage } from 'viem/accounts';

const HASH = /^0x[0-9a-fA-F]{64}$/;
/** As PACKED_NONCE_OFFSET in src/payments/ticket.ts (test/payments/signing-pool.test.ts checks both agree). */
const NONCE_OFFSET = 104;
const key = bytesToHex(workerData.key);

function hashesOf(msg) {
  if (msg.packed === undefined) {
    const { hashes } = msg;
    if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === 'string' && HASH.test(h))) {
      throw new Error('every hash must be 32 bytes of 0x-hex');
    }
    return hashes;
  }
  const { packed, nonces } = msg;
  if (!(packed instanceof Uint8Array) || (packed.length !== 168 && packed.length !== 232)) {
    throw new Error('a packed ticket is 168 or 232 bytes');
  }
  if (!Array.isArray(nonces) || !nonces.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new Error('every nonce must be a whole number');
  }
  const view = new DataView(packed.buffer, packed.byteOffset + NONCE_OFFSET, 32);
  return nonces.map((n) => {
    view.setUint32(24, Math.floor(n / 2 ** 32));
    view.setUint32(28, n >>> 0);
    return keccak256(packed);
  });
}

parentPort.on('message', async (msg) => {
  const { id } = msg;
  try {
    const sigs = [];
    for (const raw of hashesOf(msg)) sigs.push(await signMessage({ message: { raw }, privateKey: key }));
    parentPort.postMessage({ id, sigs });
  } catch (err) {
    // Our own words only: the library's text could quote its input.
    const reason =
      err instanceof Error && /^(every|a packed)/.test(err.message) ? err.message : 'signing failed';
    parentPort.postMessage({ id, error: reason });
  }
});
