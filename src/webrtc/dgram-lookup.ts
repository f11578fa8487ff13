// node:dgram resolves the address of every send() through its socket's `lookup`, dns.lookup by
// default, which answers even for an IP literal only on the next tick: per packet a closure and a
// tick, and the send itself deferred to the end of the turn. Under fan-out that is one of the
// larger costs after the syscall and the cipher (about 0.9 µs of ~15 µs per packet per viewer,
// docs/performance.md).
//
// A socket given syncSends() sends to an IP literal within its send() call: its lookup is
// `egressLookup`, which answers IP literals at once while one of that socket's sends runs. Every
// send on the socket goes that way, werift's DTLS records as well as our SRTP, so they leave in the
// order they were sent (were only ours synchronous, media would overtake the DTLS Finished still
// waiting for its tick, and the viewer would drop it). bind() and connect() keep dns.lookup's
// next-tick answer: a synchronous one would emit 'listening' before a caller that binds and then
// waits for the event (werift does) is listening. Host names go to dns.lookup as before.
//
// werift makes its sockets with createSocket(type), so this is given at that door:
// useEgressLookup() makes createSocket on node:dgram (and its ESM bindings) return such sockets.
import type { Socket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

const require = createRequire(import.meta.url);
let sending = false;
/** The last IP literal answered: a viewer's packets all go to one address (isIP is a regex test). */
let lastIp = '';
let lastFamily = 0;

/** dgram's `lookup` option: dns.lookup, except for an IP literal sent by a syncSends() socket. */
export function egressLookup(address: string, family: unknown, callback: LookupCallback): void {
  if (sending) {
    if (address !== lastIp) {
      const ipFamily = isIP(address);
      if (ipFamily !== 0) {
        lastIp = address;
        lastFamily = ipFamily;
      }
    }
    if (address === lastIp) {
      callback(null, address, lastFamily);
      return;
    }
  }
  // biome-ignore lint/suspicious/noExplicitAny: dgram passes dns.lookup's own (family | options) argument.
  dnsLookup(address, family as any, callback);
}

/** Makes every send() of `socket` to an IP literal leave within the call (see above). */
export function syncSends(socket: Socket): Socket {
  // biome-ignore lint/suspicious/noExplicitAny: dgram's own overloads, passed through.
  const send = socket.send as (this: Socket, ...args: any[]) => void;
  // Fixed parameters, not a rest array: this runs per packet. dgram reads its arguments by name,
  // so trailing undefineds mean what leaving them out means.
  socket.send = function sendNow(
    this: Socket,
    msg: unknown,
    offset?: unknown,
    length?: unknown,
    port?: unknown,
    address?: unknown,
    callback?: unknown,
  ) {
    const outer = sending;
    sending = true;
    try {
      send.call(this, msg, offset, length, port, address, callback);
    } finally {
      sending = outer;
    }
  } as Socket['send'];
  return socket;
}

let installed = false;

/**
 * Makes dgram sockets made from now on (without a lookup of their own) syncSends() sockets with
 * egressLookup (once per process).
 */
export function useEgressLookup(): void {
  if (installed) return;
  installed = true;
  const dgram = require('node:dgram') as typeof import('node:dgram');
  const original = dgram.createSocket;
  const createSocket = (typeOrOptions: unknown, listener?: unknown) => {
    const options =
      typeof typeOrOptions === 'string'
        ? { type: typeOrOptions, lookup: egressLookup }
        : typeOrOptions && typeof typeOrOptions === 'object' && !('lookup' in typeOrOptions)
          ? { ...typeOrOptions, lookup: egressLookup }
          : typeOrOptions;
    // biome-ignore lint/suspicious/noExplicitAny: the same arguments dgram.createSocket takes.
    const socket = (original as any)(options, listener) as import('node:dgram').Socket;
    return options === typeOrOptions ? socket : syncSends(socket);
  };
  dgram.createSocket = createSocket as typeof dgram.createSocket;
  // ESM importers (werift's bundle) hold live bindings of node:dgram's exports.
  syncBuiltinESMExports();
}
