// Everything we do to werift's ICE agent below its public API, in one place. werift 0.24 has no
// hook for a shared socket, so the shared-port protocols (ice-ports.ts) are subclasses of its own
// StunProtocol / TcpPassiveProtocol put into Connection's private protocol list. Each reach into
// a private member is checked at run time (assertWeriftIceInternals) and by
// test/webrtc/werift-internals.test.ts, so a werift upgrade that moves them fails loudly.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  Candidate,
  candidateFoundation,
  candidatePriority,
  type Message,
  type RTCIceTransport,
  StunProtocol,
  TcpPassiveProtocol,
} from 'werift';

export type Address = readonly [string, number];

/** werift's ICE agent as an RTCIceTransport exposes it (a Connection at run time). */
export type IceAgent = RTCIceTransport['connection'];

/** The private members of werift's Connection we use; their absence throws WeriftInternalsError. */
interface ConnectionInternals {
  protocols: unknown[];
  ensureProtocol(protocol: unknown): void;
  userHistory: Record<string, string>;
  localUsername: string;
  localPassword: string;
  stunServer?: Address;
}

export class WeriftInternalsError extends Error {
  override name = 'WeriftInternalsError';
}

const EXPECTED = 'werift 0.24.x';

/** Throws WeriftInternalsError naming what moved if werift's ICE internals are not as we expect. */
export function assertWeriftIceInternals(connection: IceAgent): void {
  const c = connection as unknown as Partial<ConnectionInternals>;
  const problems: string[] = [];
  if (!Array.isArray(c.protocols)) problems.push('Connection.protocols is not an array');
  if (typeof c.ensureProtocol !== 'function') problems.push('Connection.ensureProtocol is not a function');
  if (typeof c.userHistory !== 'object' || c.userHistory === null)
    problems.push('Connection.userHistory is missing');
  const stun = StunProtocol.prototype as unknown as Record<string, unknown>;
  if (typeof stun.datagramReceived !== 'function') problems.push('StunProtocol.datagramReceived is missing');
  const tcp = TcpPassiveProtocol.prototype as unknown as Record<string, unknown>;
  if (typeof tcp.registerSocket !== 'function') problems.push('TcpPassiveProtocol.registerSocket is missing');
  if (problems.length > 0) {
    throw new WeriftInternalsError(
      `werift ICE internals changed (${EXPECTED} expected): ${problems.join('; ')}`,
    );
  }
}

function internals(connection: IceAgent): ConnectionInternals {
  assertWeriftIceInternals(connection);
  return connection as unknown as ConnectionInternals;
}

/** Fresh ICE credentials: 64-bit ufrag (werift's own is 16 bits, too few to route by on a shared port). */
export function newIceCredentials(): { ufrag: string; pwd: string } {
  return { ufrag: randomBytes(8).toString('hex'), pwd: randomBytes(16).toString('hex') };
}

/**
 * Gives the agent our credentials instead of werift's. Call after the transport exists and before
 * the answer is made (or, after a restart, before gathering). werift answers checks with
 * userHistory[ufrag], so the replaced entry goes.
 */
export function setLocalIceCredentials(connection: IceAgent, creds: { ufrag: string; pwd: string }): void {
  const c = internals(connection);
  if (c.localUsername !== creds.ufrag) delete c.userHistory[c.localUsername];
  c.localUsername = creds.ufrag;
  c.localPassword = creds.pwd;
  c.userHistory[creds.ufrag] = creds.pwd;
}

/**
 * werift falls back to stun.l.google.com when no STUN server is configured; with no iceServers we
 * contact nothing off the machine, so the fallback goes before gathering.
 */
export function dropDefaultStunServer(connection: IceAgent): void {
  internals(connection).stunServer = undefined;
}

/** Adds a protocol to the agent the way werift adds its own (request and data handlers wired). */
export function addProtocol(connection: IceAgent, protocol: StunProtocol | TcpPassiveProtocol): void {
  const c = internals(connection);
  c.ensureProtocol(protocol);
  c.protocols.push(protocol);
}

/** A host candidate as werift builds its own (foundation, priority), for a shared port. */
export function hostCandidate(
  address: string,
  port: number,
  transport: 'udp' | 'tcp',
  advertiseOnly: boolean,
): Candidate {
  const Cls = advertiseOnly ? AdvertisedCandidate : Candidate;
  return new Cls(
    candidateFoundation('host', transport, address),
    1,
    transport,
    candidatePriority('host', transport === 'udp' ? { transport } : { transport, tcptype: 'passive' }),
    address,
    port,
    'host',
    undefined,
    undefined,
    transport === 'tcp' ? 'passive' : undefined,
  );
}

/**
 * A candidate that is announced but never paired: a second address of the same shared socket.
 * Checks the remote sends to it arrive on the socket like any other and are answered by the
 * peer's first protocol; pairing it too would only send each check twice from the same socket.
 */
class AdvertisedCandidate extends Candidate {
  override canPairWith(): boolean {
    return false;
  }
}

/** What a shared-socket UDP protocol needs from the mux that owns the socket. */
export interface UdpSink {
  readonly socketType: 'udp4' | 'udp6';
  readonly port: number;
  /** true when the datagram left within the call (`data` is free again). */
  send(data: Buffer, addr: Address): boolean;
  /** Packets data[offsets[i] … + lengths[i]], i < count, to addr in order; how many left (udp-send.ts batchSend). */
  sendBatch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    addr: Address,
  ): number;
  /** A STUN request went out with this transaction id: route its response back here. */
  expectResponse(transactionIdHex: string, protocol: MuxStunProtocol): void;
  /** The protocol closed (its ICE agent closed): forget it. */
  released(protocol: MuxStunProtocol): void;
}

/** werift's StunProtocol on a virtual transport: one peer's view of the shared UDP socket. */
export class MuxStunProtocol extends StunProtocol {
  readonly #sink: UdpSink;
  #closed = false;

  constructor(sink: UdpSink) {
    super();
    this.#sink = sink;
    const self = this;
    // The members of werift's UdpTransport that StunProtocol uses.
    const transport = {
      socketType: sink.socketType,
      get closed() {
        return self.#closed;
      },
      get address() {
        return {
          address: self.localIp ?? '',
          port: sink.port,
          family: sink.socketType === 'udp4' ? 'IPv4' : 'IPv6',
        };
      },
      send: async (data: Buffer, addr: Address) => {
        if (!self.#closed) sink.send(data, addr);
      },
      close: async () => {
        self.#closed = true;
      },
    };
    this.transport = transport as unknown as StunProtocol['transport'];
  }

  /** A datagram the mux routed to this peer. */
  receive(data: Buffer, addr: Address): void {
    if (this.#closed) return;
    (this as unknown as { datagramReceived(d: Buffer, a: Address): void }).datagramReceived(data, addr);
  }

  /**
   * Sends at once, without a promise: the egress hot path (DirectRtpSender) sends SRTP this way.
   * true when the datagram left within the call (`data` is free again).
   */
  sendDatagram(data: Buffer, addr: Address): boolean {
    return !this.#closed && this.#sink.send(data, addr);
  }

  /** A frame's packets in one system call where the shared socket allows (UdpSink.sendBatch). */
  sendDatagramBatch(
    data: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    addr: Address,
  ): number {
    return this.#closed ? 0 : this.#sink.sendBatch(data, offsets, lengths, count, addr);
  }

  override async sendStun(message: Message, addr: Address): Promise<void> {
    // Requests only: ours are checks and consent; the responses must find their way back here.
    if (message.messageClass === 0) this.#sink.expectResponse(message.transactionIdHex, this);
    await super.sendStun(message, addr);
  }

  override async close(): Promise<void> {
    if (!this.#closed) this.#sink.released(this);
    this.#closed = true;
    await super.close();
  }
}

/** Per-connection cap on queued TCP bytes: a slow client loses media packets, as it would on UDP. */
export const TCP_MAX_QUEUED_BYTES = 1024 * 1024;

/** werift's passive TCP protocol fed with connections accepted on the shared TCP port. */
export class MuxTcpProtocol extends TcpPassiveProtocol {
  /** Media packets dropped because the connection's send queue was full. */
  dropped = 0;
  readonly #onClose: (protocol: MuxTcpProtocol) => void;
  #closed = false;

  constructor(onClose: (protocol: MuxTcpProtocol) => void) {
    super();
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Takes over a connection whose first frame (already unshifted back) named this peer's ufrag. */
  adopt(socket: Socket, remote: Address): void {
    this.registerSocket(socket, remote);
  }

  override async sendData(data: Buffer, addr: Address): Promise<void> {
    const entry = this.sockets.get(`${addr[0]}:${addr[1]}`);
    if (entry && entry.socket.writableLength > TCP_MAX_QUEUED_BYTES) {
      this.dropped++;
      return;
    }
    await super.sendData(data, addr);
  }

  override async close(): Promise<void> {
    if (!this.#closed) this.#onClose(this);
    this.#closed = true;
    await super.close();
  }
}

/** The single ICE transport of a bundled peer connection. */
export function bundleTransport(transports: RTCIceTransport[]): RTCIceTransport | undefined {
  const open = transports.filter((t) => t.state !== 'closed');
  return open.length === 1 ? open[0] : undefined;
}
