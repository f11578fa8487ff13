// One datagram to one IP address, straight into the socket's libuv handle. dgram's send() does per
// call: argument checks, a list array, a SendWrap object, a lookup callback (dgram-lookup.ts makes
// it synchronous, not free) and an async-id scope, about 0.5–0.8 µs of the ~5 µs a send costs here
// (docs/performance.md). Under fan-out that is per packet per viewer.
//
// The handle's send(req, list, count, port, ip, hasCallback) first tries the send at once
// (uv_udp_try_send) and returns the byte count + 1 when the kernel took the datagram; only when the
// socket's queue is busy does it keep `req` and the buffers for later (returns 0). So one request
// object and one list array serve every send that completes at once, and the caller learns whether
// its buffer is free again: a sender can write the next packet into the same buffer.
//
// This reads dgram's private state (Node 20/22: the handle under the 'state symbol' symbol, the
// bound/connected flags) and takes dgram's SendWrap constructor from the first send it watches.
// Where any of that is missing, sends go through socket.send() and are reported as not done at once.
import type { Socket } from 'node:dgram';
import { createRequire } from 'node:module';

/** Sends `data` to ip:port; true when it left within the call (`data` may be reused at once). */
export type DatagramSend = (data: Uint8Array, port: number, ip: string) => boolean;

interface UdpHandle {
  fd?: number;
  getSendQueueCount?(): number;
  send(
    req: object,
    list: Uint8Array[],
    count: number,
    port: number,
    ip: string,
    hasCallback: boolean,
  ): number;
}

interface DgramState {
  handle: UdpHandle | null;
  bindState: number;
  connectState: number;
}

/** dgram's internal states (lib/internal/dgram.js, lib/dgram.js). */
const BIND_STATE_BOUND = 2;
const CONNECT_STATE_DISCONNECTED = 0;

type SendWrapConstructor = new () => { list?: Uint8Array[] };
let SendWrap: SendWrapConstructor | undefined;

/** Errors the kernel gave for sends (dgram drops them silently without a callback, as we do). */
export const directSendErrors = { count: 0 };

function stateOf(socket: Socket): DgramState | undefined {
  const key = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = key ? (socket as unknown as Record<symbol, DgramState | undefined>)[key] : undefined;
  return state && typeof state === 'object' && 'handle' in state && 'bindState' in state ? state : undefined;
}

/** A send function for `socket` (see above). */
export function directSend(socket: Socket): DatagramSend {
  const state = stateOf(socket);
  const fallback: DatagramSend = (data, port, ip) => {
    socket.send(data, port, ip);
    return false;
  };
  if (!state) return fallback;
  let req: InstanceType<SendWrapConstructor> | undefined;
  const list: Uint8Array[] = [];
  return (data, port, ip) => {
    const handle = state.handle;
    // Closed: nothing leaves (dgram's send() would throw).
    if (!handle) return false;
    if (state.bindState !== BIND_STATE_BOUND || state.connectState !== CONNECT_STATE_DISCONNECTED)
      return fallback(data, port, ip);
    if (!SendWrap) {
      learnSendWrap(handle);
      return fallback(data, port, ip);
    }
    req ??= new SendWrap();
    list[0] = data;
    const result = handle.send(req, list, 1, port, ip, false);
    if (result >= 1) return true;
    if (result === 0) {
      // Queued: libuv keeps the buffer until it is sent, and req keeps it alive until then.
      req.list = [data];
      req = undefined;
    } else directSendErrors.count++;
    list[0] = EMPTY;
    return false;
  };
}

const EMPTY = new Uint8Array(0);

/** Wraps the handle's send() for one call, to take the SendWrap that dgram passes it. */
function learnSendWrap(handle: UdpHandle): void {
  if (Object.hasOwn(handle, 'send')) return;
  const original = handle.send;
  handle.send = function watchOnce(this: UdpHandle, req, ...rest) {
    // Back to the prototype's method.
    delete (handle as Partial<UdpHandle>).send;
    if (typeof req?.constructor === 'function' && req.constructor !== Object)
      SendWrap = req.constructor as SendWrapConstructor;
    return original.call(this, req, ...rest);
  };
}

/** For tests: forget the learnt constructor. */
export function resetDirectSendForTests(): void {
  SendWrap = undefined;
}

/**
 * Sends packets `data[offsets[i] … + lengths[i]]`, i < count, to ip:port in order; returns how many
 * left (from the first). The caller sends the rest its own way (they wait behind a full socket).
 */
export type DatagramBatchSend = (
  data: Uint8Array,
  offsets: Uint32Array,
  lengths: Uint32Array,
  count: number,
  port: number,
  ip: string,
) => number;

interface UdpBatchAddon {
  sendBatch(
    fd: number,
    ip: string,
    port: number,
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    segmentation: boolean,
  ): number;
}

/** Errors from the kernel that mean "no UDP segmentation here" (old kernel, no checksum offload). */
const NO_SEGMENTATION = new Set([5 /* EIO */, 22 /* EINVAL */, 92 /* ENOPROTOOPT */, 95 /* EOPNOTSUPP */]);

/**
 * The batched sender (src/webrtc/native/udp-batch.c, built by scripts/build-native.sh): one
 * sendmmsg(2) per run of packets, and UDP segmentation where the kernel and the route allow.
 */
export const udpBatch: {
  addon: UdpBatchAddon | undefined;
  /** Why batches are off, or undefined when on. */
  unavailable: string | undefined;
  segmentation: boolean;
  /** Batches handed to the kernel (one sendmmsg each, or a few for very large ones), and the packets they carried. */
  calls: number;
  packets: number;
  /** Batches the kernel refused outright (their packets then went one by one). */
  errors: number;
} = { addon: undefined, unavailable: undefined, segmentation: true, calls: 0, packets: 0, errors: 0 };

function loadBatchAddon(): void {
  if (process.platform !== 'linux') {
    udpBatch.unavailable = `not built for ${process.platform}`;
    return;
  }
  try {
    const path = new URL('../../build/udp-batch.node', import.meta.url).pathname;
    udpBatch.addon = createRequire(import.meta.url)(path) as UdpBatchAddon;
  } catch (err) {
    udpBatch.unavailable = `build/udp-batch.node did not load (${(err as Error).message.split('\n')[0]}); run scripts/build-native.sh`;
  }
}
loadBatchAddon();

/**
 * A batch sender for `socket`, or undefined when batches are off (the caller sends one by one):
 * no addon, or LPGW_UDP_BATCH=0 (an escape hatch, and the A/B switch of bench:fanout --no-batch).
 */
export function batchSend(socket: Socket): DatagramBatchSend | undefined {
  const addon = udpBatch.addon;
  const state = stateOf(socket);
  if (!addon || !state || !egressBatching().on) return undefined;
  return (data, offsets, lengths, count, port, ip) => {
    const handle = state.handle;
    if (!handle || typeof handle.fd !== 'number' || handle.fd < 0) return 0;
    if (state.bindState !== BIND_STATE_BOUND || state.connectState !== CONNECT_STATE_DISCONNECTED) return 0;
    // Packets already waiting in libuv's queue go first: these then wait behind them.
    if (handle.getSendQueueCount?.() !== 0) return 0;
    let sent = addon.sendBatch(handle.fd, ip, port, data, offsets, lengths, count, udpBatch.segmentation);
    if (sent < 0 && udpBatch.segmentation && NO_SEGMENTATION.has(-sent)) {
      // Off for good only when the same packets go without it.
      sent = addon.sendBatch(handle.fd, ip, port, data, offsets, lengths, count, false);
      if (sent >= 0) udpBatch.segmentation = false;
    }
    udpBatch.calls++;
    if (sent < 0) {
      udpBatch.errors++;
      return 0;
    }
    udpBatch.packets += sent;
    return sent;
  };
}

/** Whether the egress sends a frame per system call, and if not, why: for the gateway's start log. */
export function egressBatching(): { on: true; segmentation: boolean } | { on: false; reason: string } {
  if (process.env.LPGW_UDP_BATCH === '0') return { on: false, reason: 'LPGW_UDP_BATCH=0' };
  if (!udpBatch.addon) return { on: false, reason: udpBatch.unavailable ?? 'not loaded' };
  return { on: true, segmentation: udpBatch.segmentation };
}
