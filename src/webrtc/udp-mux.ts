// One UDP socket for the ICE traffic of every peer (MediaMTX's webrtcLocalUDPAddress). Datagrams
// are routed to the peer's MuxStunProtocol:
//   - a STUN binding request by its USERNAME (our ufrag before the colon), once its
//     MESSAGE-INTEGRITY checks out with that peer's password; its source address is then bound to
//     the peer (a new request from the same address for another peer moves the binding);
//   - a STUN response by its transaction id (we remember the ids of the requests we sent);
//   - everything else (DTLS, SRTP, SRTCP, indications) by the bound source address.
// Anything else is dropped and counted.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { parseMessage } from 'werift';
import { egressLookup, syncSends } from './dgram-lookup.ts';
import { batchSend, type DatagramBatchSend, type DatagramSend, directSend } from './udp-send.ts';
import type { Address, MuxStunProtocol, UdpSink } from './werift-ice.ts';

export interface UdpMuxCounters {
  /** Datagrams received on the socket. */
  received: number;
  /** Datagrams handed to a peer. */
  routed: number;
  /** Non-STUN datagrams (or STUN indications/responses) from an address bound to no peer. */
  droppedUnknownAddress: number;
  /** STUN requests naming a ufrag no peer owns, from an unbound address. */
  droppedUnknownUfrag: number;
  /** STUN requests whose MESSAGE-INTEGRITY does not match the named peer's password. */
  droppedBadIntegrity: number;
  /** Datagrams that look like STUN but do not parse, or requests without USERNAME. */
  droppedMalformed: number;
  /** Datagrams we did not send because the socket's send queue was full. */
  droppedSendQueue: number;
}

export interface UdpMuxStats extends UdpMuxCounters {
  port: number;
  /** Remote addresses currently bound to a peer. */
  bindings: number;
}

/** Per peer: a client rarely uses more than a couple of addresses (host, srflx, relay). */
export const MAX_BINDINGS_PER_PEER = 8;
/** Requests we sent whose response may still arrive; each lives at most TRANSACTION_TTL_MS. */
const MAX_PENDING_TRANSACTIONS = 16_384;
const TRANSACTION_TTL_MS = 40_000;
/** Datagrams queued in libuv beyond this are dropped rather than buffered without bound. */
const MAX_SEND_QUEUE = 2048;
const STUN_MAGIC_COOKIE = 0x2112a442;

export interface UdpMuxOptions {
  host: string;
  port: number;
  /** The peer that owns a ufrag right now, with its ICE password. */
  lookup: (ufrag: string) => { password: Buffer; protocol: MuxStunProtocol } | undefined;
  logger?: Logger;
}

export class UdpMux implements UdpSink {
  readonly socketType: 'udp4' | 'udp6';
  readonly host: string;
  readonly #socket: Socket;
  readonly #lookup: UdpMuxOptions['lookup'];
  readonly #log: Logger | undefined;
  /** "ip:port" → the peer protocol that address is bound to. */
  readonly #routes = new Map<string, MuxStunProtocol>();
  /** Each peer protocol's bound addresses, oldest first. */
  readonly #bindingsOf = new Map<MuxStunProtocol, Set<string>>();
  /** Transaction id (hex) of a request we sent → the protocol that sent it, and when. */
  readonly #pending = new Map<string, { protocol: MuxStunProtocol; at: number }>();
  readonly #counters: UdpMuxCounters = {
    received: 0,
    routed: 0,
    droppedUnknownAddress: 0,
    droppedUnknownUfrag: 0,
    droppedBadIntegrity: 0,
    droppedMalformed: 0,
    droppedSendQueue: 0,
  };
  #closed = false;
  readonly #send: DatagramSend;
  readonly #sendBatch: DatagramBatchSend | undefined;

  private constructor(socket: Socket, socketType: 'udp4' | 'udp6', opts: UdpMuxOptions) {
    this.#socket = socket;
    this.#send = directSend(socket);
    this.#sendBatch = batchSend(socket);
    this.socketType = socketType;
    this.host = opts.host;
    this.#lookup = opts.lookup;
    this.#log = opts.logger;
    socket.on('message', (data, rinfo) => this.#onMessage(data, rinfo));
    // Send errors (no route, ...) are per datagram; the socket stays usable.
    socket.on('error', (err) => this.#log?.debug({ err }, 'webrtc: shared UDP socket error'));
  }

  /** Binds `host:port` (port 0: any free port). IPv6 when host is an IPv6 literal. */
  static async bind(opts: UdpMuxOptions): Promise<UdpMux> {
    const socketType = isIP(opts.host) === 6 ? 'udp6' : 'udp4';
    // IPv6 sockets stay IPv6-only: candidates are announced per family, never as mapped addresses.
    const socket = syncSends(
      createSocket({
        type: socketType,
        reuseAddr: false,
        ipv6Only: socketType === 'udp6',
        lookup: egressLookup,
      }),
    );
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: opts.host, port: opts.port, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpMux(socket, socketType, opts);
  }

  get port(): number {
    return this.#socket.address().port;
  }

  stats(): UdpMuxStats {
    return { port: this.port, ...this.#counters, bindings: this.#routes.size };
  }

  /** true when the datagram left within the call (`data` is free again). */
  send(data: Buffer, addr: Address): boolean {
    if (this.#closed || isIP(addr[0]) === 0) return false;
    if (this.#socket.getSendQueueCount() > MAX_SEND_QUEUE) {
      this.#counters.droppedSendQueue++;
      return false;
    }
    return this.#send(data, addr[1], addr[0]);
  }

  /** How many of the packets left in one system call (the rest go through send(), which counts drops). */
  sendBatch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    addr: Address,
  ): number {
    if (this.#closed || !this.#sendBatch || isIP(addr[0]) === 0) return 0;
    return this.#sendBatch(data, offsets, lengths, count, addr[1], addr[0]);
  }

  expectResponse(transactionIdHex: string, protocol: MuxStunProtocol): void {
    const now = Date.now();
    this.#pending.delete(transactionIdHex); // a retransmission: keep insertion order = age order
    this.#pending.set(transactionIdHex, { protocol, at: now });
    for (const [id, entry] of this.#pending) {
      if (this.#pending.size <= MAX_PENDING_TRANSACTIONS && now - entry.at < TRANSACTION_TTL_MS) break;
      this.#pending.delete(id);
    }
  }

  released(protocol: MuxStunProtocol): void {
    for (const key of this.#bindingsOf.get(protocol) ?? []) this.#routes.delete(key);
    this.#bindingsOf.delete(protocol);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#routes.clear();
    this.#bindingsOf.clear();
    this.#pending.clear();
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #onMessage(data: Buffer, rinfo: RemoteInfo): void {
    this.#counters.received++;
    const host = rinfo.family === 'IPv6' ? rinfo.address.split('%')[0] : rinfo.address;
    const addr: Address = [host, rinfo.port];
    const key = `${host}:${rinfo.port}`;
    // RFC 7983: 0-3 is STUN; a STUN header is 20 bytes with the magic cookie at offset 4.
    if (data.length >= 20 && data[0] <= 3 && data.readUInt32BE(4) === STUN_MAGIC_COOKIE) {
      this.#onStun(data, addr, key);
      return;
    }
    this.#routeByAddress(data, addr, key);
  }

  /** Anything but a STUN request or an answer we wait for goes to the peer bound to its address. */
  #routeByAddress(data: Buffer, addr: Address, key: string): void {
    const route = this.#routes.get(key);
    if (!route) {
      this.#counters.droppedUnknownAddress++;
      return;
    }
    this.#counters.routed++;
    route.receive(data, addr);
  }

  #onStun(data: Buffer, addr: Address, key: string): void {
    const type = data.readUInt16BE(0);
    // Class bits C1 (bit 8) and C0 (bit 4): 0 request, 1 indication, 2 success, 3 error.
    const cls = ((type >> 7) & 2) | ((type >> 4) & 1);
    if (cls === 0) {
      this.#onRequest(data, addr, key);
      return;
    }
    if (cls >= 2) {
      const id = data.subarray(8, 20).toString('hex');
      const pending = this.#pending.get(id);
      if (pending) {
        this.#pending.delete(id);
        // A success from an address no one sent us a request from (a lite remote, or a trickled
        // candidate answering first): it is this peer's now. The id is 96 random bits we chose.
        if (cls === 2 && !this.#routes.has(key)) this.#bind(key, pending.protocol);
        this.#counters.routed++;
        pending.protocol.receive(data, addr);
        return;
      }
    }
    this.#routeByAddress(data, addr, key);
  }

  #onRequest(data: Buffer, addr: Address, key: string): void {
    const message = parseMessage(data);
    const username = message?.getAttributeValue('USERNAME') as string | undefined;
    if (!message || typeof username !== 'string') {
      this.#counters.droppedMalformed++;
      return;
    }
    const ufrag = username.split(':')[0];
    const owner = this.#lookup(ufrag);
    if (!owner) {
      // An older ICE generation of the peer this address belongs to: werift still knows that
      // password (userHistory) and answers, which keeps a restart's overlap smooth.
      const route = this.#routes.get(key);
      if (route) {
        this.#counters.routed++;
        route.receive(data, addr);
      } else {
        this.#counters.droppedUnknownUfrag++;
      }
      return;
    }
    if (!parseMessage(data, owner.password)) {
      this.#counters.droppedBadIntegrity++;
      return;
    }
    this.#bind(key, owner.protocol);
    this.#counters.routed++;
    owner.protocol.receive(data, addr);
  }

  #bind(key: string, protocol: MuxStunProtocol): void {
    const previous = this.#routes.get(key);
    if (previous === protocol) return;
    if (previous) this.#bindingsOf.get(previous)?.delete(key);
    this.#routes.set(key, protocol);
    let keys = this.#bindingsOf.get(protocol);
    if (!keys) {
      keys = new Set();
      this.#bindingsOf.set(protocol, keys);
    }
    keys.add(key);
    if (keys.size > MAX_BINDINGS_PER_PEER) {
      const oldest = keys.values().next().value as string;
      keys.delete(oldest);
      this.#routes.delete(oldest);
    }
  }
}
