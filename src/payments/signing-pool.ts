// Ticket signing off the media event loop. One secp256k1 signature (viem, pure JS) costs about
// 0.3 ms of CPU on the 2-core EPYC we measure on, and a live job's start prepays about 250
// tickets: signed on the main thread that stalls RTP for every stream. `SigningPool` signs in
// worker threads (src/payments/sign-worker.mjs) instead, with a bounded queue.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Hex, LocalAccount } from 'viem';

/** Something that signs 32-byte hashes as EIP-191 personal messages (r‖s‖v, v 27 or 28). */
export interface TicketSigner {
  /** One signature per hash, in order; rejects with SigningError when it cannot. */
  signHashes(hashes: readonly Hex[]): Promise<Hex[]>;
  /**
   * One signature per nonce over the ticket `packed` (ticketTemplate) with that nonce: the signer
   * hashes too. Optional; without it the caller hashes and calls signHashes.
   */
  signTickets?(packed: Uint8Array, nonces: readonly number[]): Promise<Hex[]>;
}

/** Signs on the calling thread with a viem account (tests, tools; the gateway uses a SigningPool). */
export const accountSigner = (account: LocalAccount): TicketSigner => ({
  signHashes: (hashes) => Promise.all(hashes.map((raw) => account.signMessage({ message: { raw } }))),
});

/** Signing did not happen: the pool is closed or full, or a worker failed. */
export class SigningError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SigningError';
  }
}

export interface SigningPoolOptions {
  /** Worker threads; default 1 on two cores or fewer (the main thread needs the other), else 2. */
  size?: number;
  /** Hashes waiting or being signed, at most; past it signHashes rejects at once. Default 4096. */
  maxPending?: number;
  /** The worker script; tests swap in a failing one. */
  workerUrl?: URL;
}

/** Hashes per message to a worker: about 10 ms of work, so two workers share a big prepayment. */
const CHUNK = 32;
const DEFAULT_MAX_PENDING = 4096;
const WORKER_URL = new URL('./sign-worker.mjs', import.meta.url);

/** What a worker signs: hashes, or one packed ticket with several nonces. */
type Work = { hashes: readonly Hex[] } | { packed: Uint8Array; nonces: readonly number[] };

interface Job {
  id: number;
  work: Work;
  count: number;
  resolve: (sigs: Hex[]) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker?: Worker;
  job?: Job;
}

type Reply = { id: number; sigs: Hex[] } | { id: number; error: string };

export class SigningPool implements TicketSigner {
  readonly size: number;
  private readonly key: Uint8Array;
  private readonly maxPending: number;
  private readonly workerUrl: URL;
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private pending = 0;
  private nextId = 1;
  private closed = false;

  /** Copies `privateKey` (32 bytes); the caller may wipe its own copy. Workers start at once. */
  constructor(privateKey: Uint8Array, opts: SigningPoolOptions = {}) {
    if (privateKey.length !== 32) throw new RangeError('SigningPool: the private key must be 32 bytes');
    this.key = Uint8Array.from(privateKey);
    this.size = Math.max(1, opts.size ?? (availableParallelism() <= 2 ? 1 : 2));
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING;
    this.workerUrl = opts.workerUrl ?? WORKER_URL;
    // Started now, so that loading viem in them is not on the first stream's clock.
    this.slots = Array.from({ length: this.size }, () => ({}));
    for (const slot of this.slots) this.spawn(slot);
  }

  /** Worker threads running now (a crashed one is replaced when work comes). */
  get threads(): number {
    return this.slots.filter((s) => s.worker).length;
  }

  signHashes(hashes: readonly Hex[]): Promise<Hex[]> {
    return this.submit(hashes.length, (from, to) => ({ hashes: hashes.slice(from, to) }));
  }

  signTickets(packed: Uint8Array, nonces: readonly number[]): Promise<Hex[]> {
    // Each message gets its own copy (a posted Uint8Array is cloned anyway).
    return this.submit(nonces.length, (from, to) => ({ packed, nonces: nonces.slice(from, to) }));
  }

  private submit(count: number, part: (from: number, to: number) => Work): Promise<Hex[]> {
    if (this.closed) return Promise.reject(new SigningError('the ticket signing pool is closed'));
    if (count === 0) return Promise.resolve([]);
    if (this.pending + count > this.maxPending) {
      return Promise.reject(
        new SigningError(
          `ticket signing queue full: ${this.pending} tickets waiting, ${count} more refused (limit ${this.maxPending})`,
        ),
      );
    }
    this.pending += count;
    const chunks: Promise<Hex[]>[] = [];
    for (let i = 0; i < count; i += CHUNK) {
      const n = Math.min(CHUNK, count - i);
      const work = part(i, i + n);
      chunks.push(
        new Promise<Hex[]>((resolve, reject) => {
          this.queue.push({ id: this.nextId++, work, count: n, resolve, reject });
        }).finally(() => {
          this.pending -= n;
        }),
      );
    }
    this.dispatch();
    return Promise.all(chunks).then((parts) => parts.flat());
  }

  /** Rejects what is waiting, stops the workers and wipes the key. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const gone = new SigningError('the ticket signing pool is closed');
    for (const job of this.queue.splice(0)) job.reject(gone);
    const stopping: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      slot.job?.reject(gone);
      slot.job = undefined;
      if (slot.worker) stopping.push(slot.worker.terminate());
      slot.worker = undefined;
    }
    this.key.fill(0);
    await Promise.allSettled(stopping);
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(this.workerUrl, { workerData: { key: this.key } });
    worker.unref();
    slot.worker = worker;
    worker.on('message', (reply: Reply) => {
      const job = slot.job;
      if (!job || reply.id !== job.id) return;
      slot.job = undefined;
      worker.unref();
      if ('sigs' in reply && Array.isArray(reply.sigs) && reply.sigs.length === job.count) {
        job.resolve(reply.sigs);
      } else {
        job.reject(
          new SigningError(`ticket signing failed: ${'error' in reply ? reply.error : 'bad reply'}`),
        );
      }
      this.dispatch();
    });
    // An uncaught error in the worker; 'exit' follows, which settles the job.
    worker.on('error', (err) => {
      slot.job?.reject(new SigningError('the ticket signing worker crashed', { cause: err }));
      slot.job = undefined;
    });
    worker.on('exit', (code) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.job?.reject(new SigningError(`the ticket signing worker stopped (exit code ${code})`));
      slot.job = undefined;
      // Replaced only when there is work, so a worker that cannot start does not spin.
      this.dispatch();
    });
    return worker;
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.job) continue;
      const worker = slot.worker ?? this.spawn(slot);
      const job = this.queue.shift()!;
      slot.job = job;
      // Held while working, so a process waiting on a signature does not exit under it.
      worker.ref();
      worker.postMessage({ id: job.id, ...job.work });
    }
  }
}
