// A ticket-signing worker thread (src/payments/signing-pool.ts starts it). Plain JavaScript that
// imports viem directly, so it loads the same way under tsx, vitest and plain node.
//
// workerData: { key: Uint8Array } (the 32-byte private key; kept here, never sent back or logged).
// In:  { id, hashes: string[] }  32-byte hashes as 0x-hex.
// Out: { id, sigs: string[] }    EIP-191 signatures over each hash's raw bytes, r‖s‖v with v 27/28
//      { id, error: string }     a bad request; the worker stays up.
import { parentPort, workerData } from 'node:worker_threads';
import { bytesToHex } from 'viem';
import { signMessage } from 'viem/accounts';

const HASH = /^0x[0-9a-fA-F]{64}$/;
const key = bytesToHex(workerData.key);

parentPort.on('message', async (msg) => {
  const { id, hashes } = msg;
  try {
    if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === 'string' && HASH.test(h))) {
      throw new Error('every hash must be 32 bytes of 0x-hex');
    }
    const sigs = [];
    for (const raw of hashes) sigs.push(await signMessage({ message: { raw }, privateKey: key }));
    parentPort.postMessage({ id, sigs });
  } catch (err) {
    // Our own words only: the library's text could quote its input.
    const reason =
      err instanceof Error && err.message.startsWith('every hash') ? err.message : 'signing failed';
    parentPort.postMessage({ id, error: reason });
  }
});
