// Shared ICE ports: one UDP socket and/or one TCP listener for every peer of the gateway, so a
// container or firewall needs exactly two open ports. Each peer's ICE agent gets protocols on
// these (werift-ice.ts) and host candidates that announce the shared ports; the muxes route by
// the peer's ufrag (udp-mux.ts, tcp-mux.ts), which is unique among live peers.
import { isIP, isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { TcpMux, type TcpMuxStats } from './tcp-mux.ts';
import { UdpMux, type UdpMuxStats } from './udp-mux.ts';
import {
  addProtocol,
  hostCandidate,
  type IceAgent,
  MuxStunProtocol,
  MuxTcpProtocol,
  newIceCredentials,
  setLocalIceCredentials,
} from './werift-ice.ts';

export interface ListenAddress {
  /** An IP literal; `0.0.0.0` (or `::`) binds every interface. */
  host: string;
  /** 0 picks a free port. */
  port: number;
}

export interface IcePortsOptions {
  udp?: ListenAddress;
  tcp?: ListenAddress;
  /**
   * Addresses announced in the host candidates. Default: the bound address, or when bound to the
   * wildcard, loopback and every non-internal address of the machine (of the socket's family).
   * Behind a 1:1 NAT: the public address (the port stays the bound one, so map it 1:1).
   */
  announce?: string[];
  /** Peers (ICE agents) attached at once; one more gets IcePortsFullError. Default 4096. */
  maxPeers?: number;
  logger?: Logger;
}

export interface IcePortsStats {
  peers: number;
  udp?: UdpMuxStats & { announced: string[] };
  tcp?: TcpMuxStats & { announced: string[] };
}

export class IcePortsFullError extends Error {
  override name = 'IcePortsFullError';
}

interface Registration {
  ufrag: string;
  password: Buffer;
  udp?: MuxStunProtocol;
  tcp?: MuxTcpProtocol;
}

/** One peer's place on the shared ports; release() (or the agent closing) gives it back. */
export interface IcePortsAttachment {
  /** The ufrag the muxes route by right now. */
  readonly ufrag: string;
  /**
   * After werift restarted the agent's ICE (new generation): sets fresh credentials on it and
   * routes by the new ufrag from now on. Returns them.
   */
  renew(): { ufrag: string; pwd: string };
  release(): void;
}

export class IcePorts {
  readonly udp: UdpMux | undefined;
  readonly tcp: TcpMux | undefined;
  readonly #announce: { udp: string[]; tcp: string[] };
  readonly #maxPeers: number;
  readonly #byUfrag: Map<string, Registration>;

  private constructor(
    udp: UdpMux | undefined,
    tcp: TcpMux | undefined,
    announce: { udp: string[]; tcp: string[] },
    maxPeers: number,
    registry: Map<string, Registration>,
  ) {
    this.#byUfrag = registry;
    this.udp = udp;
    this.tcp = tcp;
    this.#announce = announce;
    this.#maxPeers = maxPeers;
  }

  static async open(opts: IcePortsOptions): Promise<IcePorts> {
    if (!opts.udp && !opts.tcp) throw new Error('IcePorts needs a UDP or a TCP address');
    for (const [name, listen] of [
      ['udp', opts.udp],
      ['tcp', opts.tcp],
    ] as const) {
      if (listen && isIP(listen.host) === 0)
        throw new Error(`IcePorts ${name}: not an IP address: ${listen.host}`);
    }
    for (const address of opts.announce ?? []) {
      if (isIP(address) === 0) throw new Error(`IcePorts announce: not an IP address: ${address}`);
    }
    // Routing lookups go through the registry of the instance created below.
    const registry = new Map<string, Registration>();
    const lookup = (ufrag: string) => registry.get(ufrag);
    let udp: UdpMux | undefined;
    let tcp: TcpMux | undefined;
    try {
      if (opts.udp) {
        udp = await UdpMux.bind({
          ...opts.udp,
          logger: opts.logger,
          lookup: (ufrag) => {
            const r = lookup(ufrag);
            return r?.udp && { password: r.password, protocol: r.udp };
          },
        });
      }
      if (opts.tcp) {
        tcp = await TcpMux.listen({
          ...opts.tcp,
          logger: opts.logger,
          lookup: (ufrag) => {
            const r = lookup(ufrag);
            return r?.tcp && { password: r.password, protocol: r.tcp };
          },
        });
      }
    } catch (err) {
      await udp?.close();
      await tcp?.close();
      throw err;
    }
    const announce = {
      udp: opts.udp ? announced(opts.udp.host, opts.announce) : [],
      tcp: opts.tcp ? announced(opts.tcp.host, opts.announce) : [],
    };
    for (const [name, list] of Object.entries(announce)) {
      if ((name === 'udp' ? opts.udp : opts.tcp) && list.length === 0) {
        await udp?.close();
        await tcp?.close();
        throw new Error(`IcePorts ${name}: no address to announce of the bound address's IP family`);
      }
    }
    return new IcePorts(udp, tcp, announce, opts.maxPeers ?? 4096, registry);
  }

  /** Every peer (ICE agent) routed by the shared ports right now. */
  get peers(): number {
    return this.#byUfrag.size;
  }

  /**
   * Puts an ICE agent on the shared ports: unique credentials, protocols with host candidates
   * announcing the shared ports (werift advertises them when it gathers). Call after the agent
   * exists (setRemoteDescription) and before the answer.
   */
  attach(connection: IceAgent): IcePortsAttachment {
    if (this.#byUfrag.size >= this.#maxPeers) {
      throw new IcePortsFullError(`the shared ICE ports carry ${this.#maxPeers} peers already`);
    }
    const registration: Registration = { ufrag: '', password: Buffer.alloc(0) };
    const release = () => {
      if (this.#byUfrag.get(registration.ufrag) === registration) this.#byUfrag.delete(registration.ufrag);
    };
    const register = () => {
      const creds = this.#uniqueCredentials();
      release();
      setLocalIceCredentials(connection, creds);
      registration.ufrag = creds.ufrag;
      registration.password = Buffer.from(creds.pwd, 'utf8');
      this.#byUfrag.set(creds.ufrag, registration);
      return creds;
    };
    register();
    const udp = this.udp;
    if (udp) {
      this.#announce.udp.forEach((address, i) => {
        const protocol = new MuxStunProtocol({
          socketType: udp.socketType,
          port: udp.port,
          send: (data, addr) => udp.send(data, addr),
          sendBatch: (data, offsets, lengths, count, addr) =>
            udp.sendBatch(data, offsets, lengths, count, addr),
          expectResponse: (id, p) => udp.expectResponse(id, p),
          released: (p) => {
            udp.released(p);
            if (p === registration.udp) release();
          },
        });
        protocol.localIp = address;
        protocol.localCandidate = hostCandidate(address, udp.port, 'udp', i > 0);
        addProtocol(connection, protocol);
        registration.udp ??= protocol;
      });
    }
    const tcp = this.tcp;
    if (tcp) {
      this.#announce.tcp.forEach((address, i) => {
        const protocol = new MuxTcpProtocol((p) => {
          if (p === registration.tcp) release();
        });
        protocol.localIp = address;
        protocol.localCandidate = hostCandidate(address, tcp.port, 'tcp', i > 0);
        addProtocol(connection, protocol);
        registration.tcp ??= protocol;
      });
    }
    return {
      get ufrag() {
        return registration.ufrag;
      },
      renew: register,
      release,
    };
  }

  stats(): IcePortsStats {
    return {
      peers: this.#byUfrag.size,
      udp: this.udp && { ...this.udp.stats(), announced: [...this.#announce.udp] },
      tcp: this.tcp && { ...this.tcp.stats(), announced: [...this.#announce.tcp] },
    };
  }

  async close(): Promise<void> {
    this.#byUfrag.clear();
    await Promise.all([this.udp?.close(), this.tcp?.close()]);
  }

  #uniqueCredentials(): { ufrag: string; pwd: string } {
    for (;;) {
      const creds = newIceCredentials();
      if (!this.#byUfrag.has(creds.ufrag)) return creds;
    }
  }
}

/** The addresses to announce for a socket bound to `host`, of the socket's family only. */
function announced(host: string, configured: string[] | undefined): string[] {
  const v4 = isIPv4(host);
  const sameFamily = (a: string) => isIPv4(a) === v4;
  if (configured?.length) return configured.filter(sameFamily);
  const wildcard = host === '0.0.0.0' || host === '::';
  if (!wildcard) return [host];
  return machineAddresses(v4 ? 4 : 6);
}

/** Loopback first (a client on this machine), then every other address of that family. */
export function machineAddresses(family: 4 | 6): string[] {
  const all = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && (i.family === `IPv${family}` || (i.family as unknown) === family));
  const loopback = family === 4 ? '127.0.0.1' : '::1';
  const others = all
    .filter((i) => !i!.internal && !(family === 6 && i!.address.startsWith('fe80:')))
    .map((i) => i!.address);
  return [loopback, ...others.filter((a) => a !== loopback)];
}
