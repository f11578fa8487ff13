// node:dgram resolves the address of every send() through its socket's `lookup`, dns.lookup by
// default, which answers even for an IP literal only on the next tick: per packet a closure and a
// tick, and the send itself deferred to the end of the turn. Under fan-out that is one of the
// larger costs after the syscall and the cipher (about 0.9 µs of ~15 µs per packet per viewer,
// docs/performance.md).
//
// sendNow() sends to an IP literal within the call: the socket's lookup is `egressLookup`, which
// answers IP literals at once while sendNow() runs. Everything else (bind, connect, werift's own
// sends, host names) goes to dns.lookup as before: a synchronous answer to bind() would emit
// 'listening' before a caller that binds and then waits for the event (werift does) is listening.
//
// werift makes its sockets with createSocket(type), so the lookup is given at that door:
// useEgressLookup() makes createSocket on node:dgram (and its ESM bindings) default to it.
import type { Socket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

const require = createRequire(import.meta.url);
let sending = false;

/** dgram's `lookup` option: dns.lookup, except for an IP literal sent by sendNow(). */
export function egressLookup(address: string, family: unknown, callback: LookupCallback): void {
  if (sending) {
    const ipFamily = isIP(address);
    if (ipFamily !== 0) {
      callback(null, address, ipFamily);
      return;
    }
  }
  // biome-ignore lint/suspicious/noExplicitAny: dgram passes dns.lookup's own (family | options) argument.
  dnsLookup(address, family as any, callback);
}

/**
 * Sends one datagram to an IP literal. On a bound socket whose lookup is egressLookup the
 * datagram is handed to the kernel before this returns; on any other socket it is socket.send().
 */
export function sendNow(socket: Socket, data: Buffer, port: number, ip: string): void {
  sending = true;
  try {
    socket.send(data, port, ip);
  } finally {
    sending = false;
  }
}

let installed = false;

/** Makes egressLookup the default lookup of dgram sockets made from now on (once per process). */
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
    return (original as any)(options, listener);
  };
  dgram.createSocket = createSocket as typeof dgram.createSocket;
  // ESM importers (werift's bundle) hold live bindings of node:dgram's exports.
  syncBuiltinESMExports();
}
