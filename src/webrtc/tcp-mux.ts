// One TCP port for the ICE-TCP (RFC 6544, passive host candidates) traffic of every peer. A new
// connection's first RFC 4571 frame must be a STUN binding request: its USERNAME (our ufrag
// before the colon) names the peer, its MESSAGE-INTEGRITY must match that peer's password, and
// the connection, first frame included, is then handed to the peer's MuxTcpProtocol (werift's
// passive TCP protocol, which does the framing from there on). Anything else is closed and counted.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseMessage } from 'werift';
import type { MuxTcpProtocol } from './werift-ice.ts';

export interface TcpMuxCounters {
  accepted: number;
  /** Connections handed to a peer. */
  adopted: number;
  /** Refused at once: too many connections still waiting for their first frame. */
  rejectedBusy: number;
  /** First frame not a STUN binding request with USERNAME, or larger than a STUN request can be. */
  rejectedNotStun: number;
  rejectedUnknownUfrag: number;
  rejectedBadIntegrity: number;
  /** The named peer already holds MAX_TCP_CONNECTIONS_PER_PEER connections. */
  rejectedPeerFull: number;
  /** No complete first frame in time (firstFrameTimeoutMs). */
  timedOut: number;
}

export interface TcpMuxStats extends TcpMuxCounters {
  port: number;
  /** Connections waiting for their first frame. */
  pending: number;
}

/** Connections still waiting for their first frame; more are refused. */
const MAX_PENDING = 256;
const DEFAULT_FIRST_FRAME_TIMEOUT_MS = 5000;
/** A binding request with USERNAME, PRIORITY, ICE-CONTROLLING, integrity and fingerprint: ~100 bytes. */
const MAX_FIRST_FRAME = 1500;
export const MAX_TCP_CONNECTIONS_PER_PEER = 8;

export interface TcpMuxOptions {
  host: string;
  port: number;
  lookup: (ufrag: string) => { password: Buffer; protocol: MuxTcpProtocol } | undefined;
  /** How long a new connection may take to send its first frame. Default 5000 ms. */
  firstFrameTimeoutMs?: number;
  logger?: Logger;
}

export class TcpMux {
  readonly host: string;
  readonly #server: Server;
  readonly #lookup: TcpMuxOptions['lookup'];
  readonly #log: Logger | undefined;
  readonly #firstFrameTimeoutMs: number;
  readonly #pending = new Set<Socket>();
  readonly #counters: TcpMuxCounters = {
    accepted: 0,
    adopted: 0,
    rejectedBusy: 0,
    rejectedNotStun: 0,
    rejectedUnknownUfrag: 0,
    rejectedBadIntegrity: 0,
    rejectedPeerFull: 0,
    timedOut: 0,
  };

  private constructor(server: Server, opts: TcpMuxOptions) {
    this.#server = server;
    this.host = opts.host;
    this.#lookup = opts.lookup;
    this.#log = opts.logger;
    this.#firstFrameTimeoutMs = opts.firstFrameTimeoutMs ?? DEFAULT_FIRST_FRAME_TIMEOUT_MS;
    server.on('connection', (socket) => this.#onConnection(socket));
    server.on('error', (err) => this.#log?.warn({ err }, 'webrtc: shared TCP listener error'));
  }

  /** Listens on `host:port` (port 0: any free port). */
  static async listen(opts: TcpMuxOptions): Promise<TcpMux> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(
        { host: opts.host, port: opts.port, exclusive: true, ipv6Only: opts.host.includes(':') },
        () => {
          server.off('error', reject);
          resolve();
        },
      );
    });
    return new TcpMux(server, opts);
  }

  get port(): number {
    const address = this.#server.address();
    return address && typeof address === 'object' ? address.port : 0;
  }

  stats(): TcpMuxStats {
    return { port: this.port, ...this.#counters, pending: this.#pending.size };
  }

  /** Stops listening and drops connections still waiting; adopted ones close with their peers. */
  close(): Promise<void> {
    for (const socket of this.#pending) socket.destroy();
    this.#pending.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(socket: Socket): void {
    this.#counters.accepted++;
    if (this.#pending.size >= MAX_PENDING) {
      this.#counters.rejectedBusy++;
      socket.destroy();
      return;
    }
    this.#pending.add(socket);
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      this.#counters.timedOut++;
      done();
      socket.destroy();
    }, this.#firstFrameTimeoutMs);
    const done = () => {
      clearTimeout(timer);
      this.#pending.delete(socket);
      socket.off('data', onData);
    };
    const reject = (counter: keyof TcpMuxCounters) => {
      this.#counters[counter]++;
      done();
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const length = buffered.readUInt16BE(0);
      if (length < 20 || length > MAX_FIRST_FRAME) return reject('rejectedNotStun');
      if (buffered.length < 2 + length) return;
      const frame = buffered.subarray(2, 2 + length);
      const message = parseMessage(frame);
      // A binding request (method 1, class request) with a USERNAME.
      const username = message?.getAttributeValue('USERNAME') as string | undefined;
      if (message?.messageMethod !== 1 || message.messageClass !== 0 || typeof username !== 'string') {
        return reject('rejectedNotStun');
      }
      const owner = this.#lookup(username.split(':')[0]);
      if (!owner || owner.protocol.closed) return reject('rejectedUnknownUfrag');
      if (!parseMessage(frame, owner.password)) return reject('rejectedBadIntegrity');
      if (owner.protocol.activeSocketCount >= MAX_TCP_CONNECTIONS_PER_PEER) return reject('rejectedPeerFull');
      const { remoteAddress, remotePort } = socket;
      if (!remoteAddress || !remotePort) return reject('rejectedNotStun');
      done();
      // Hand over with every byte read so far back in the stream; werift re-reads the first frame.
      socket.pause();
      socket.unshift(buffered);
      this.#counters.adopted++;
      owner.protocol.adopt(socket, [normaliseAddress(remoteAddress), remotePort]);
      socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', () => {}); // a reset before the first frame: 'close' follows
    socket.once('close', () => {
      if (this.#pending.has(socket)) done();
    });
  }
}

/** IPv4 peers on a dual-stack listener appear as ::ffff:a.b.c.d; candidates carry a.b.c.d. */
function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
