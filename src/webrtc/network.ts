// Which local addresses and ports werift's ICE agent uses, mapped onto werift's RTCPeerConnection options.

import { isIPv4, isIPv6 } from 'node:net';
import type { CandidatePair, RTCIceServer, RTCPeerConnectionConfig } from 'werift';
import type { IcePorts } from './ice-ports.ts';

export interface PeerNetworkOptions {
  /**
   * STUN/TURN servers. Default: none, so only host candidates are offered and nothing is sent off the
   * machine to discover addresses (werift's own default would contact stun.l.google.com).
   */
  iceServers?: RTCIceServer[];
  /**
   * Announce exactly these addresses as host candidates instead of enumerating the machine's
   * interfaces. Loopback is only usable this way (werift skips internal interfaces when enumerating).
   * Behind a 1:1 NAT (cloud VM with a public IP), put the public IP here and leave `bindAddress`
   * unset: the socket binds to every interface and the announced port is the bound one.
   */
  hostAddresses?: string[];
  /** Bind the UDP sockets to this local address instead of the wildcard (one IPv4 and/or one IPv6). */
  bindAddress?: string | { udp4?: string; udp6?: string };
  /** Inclusive UDP port range for the ICE sockets, e.g. `[40000, 40999]` to match a firewall rule. */
  portRange?: [number, number];
  /** When enumerating interfaces (no `hostAddresses`), also offer IPv6 host candidates. Default true. */
  ipv6?: boolean;
  /** Pair filter passed to werift; return false to skip a local/remote candidate pair. */
  filterCandidatePair?: (pair: CandidatePair) => boolean;
  /**
   * Shared ports (see ice-ports.ts): with a UDP port, every peer's UDP ICE goes through that one
   * socket and `hostAddresses`, `bindAddress` and `portRange` are not used; with a TCP port, every
   * peer also offers a passive ICE-TCP candidate on it. Offers must then use BUNDLE.
   */
  ports?: IcePorts;
}

/** Host candidates on 127.0.0.1 only, sockets bound to loopback: for tests and same-machine clients. */
export const LOOPBACK_NETWORK: Readonly<PeerNetworkOptions> = Object.freeze({
  hostAddresses: ['127.0.0.1'],
  bindAddress: '127.0.0.1',
});

type NetworkConfig = Pick<
  RTCPeerConnectionConfig,
  | 'iceServers'
  | 'iceUseIpv4'
  | 'iceUseIpv6'
  | 'iceAdditionalHostAddresses'
  | 'iceInterfaceAddresses'
  | 'icePortRange'
  | 'iceFilterCandidatePair'
>;

/** Whether a STUN server is configured (else werift's stun.l.google.com fallback must go). */
export function usesStunServer(opts: PeerNetworkOptions): boolean {
  return (opts.iceServers ?? []).some((server) =>
    (Array.isArray(server.urls) ? server.urls : [server.urls]).some((url) => /^stuns?:/i.test(url)),
  );
}

export function weriftNetworkConfig(opts: PeerNetworkOptions): NetworkConfig {
  const config: NetworkConfig = { iceServers: opts.iceServers ?? [] };
  if (opts.ports?.udp) {
    // werift binds nothing of its own: the shared socket's protocols are added per peer.
    config.iceUseIpv4 = false;
    config.iceUseIpv6 = false;
    if (opts.filterCandidatePair) config.iceFilterCandidatePair = opts.filterCandidatePair;
    return config;
  }
  if (opts.hostAddresses !== undefined) {
    if (opts.hostAddresses.length === 0) throw new Error('hostAddresses must not be empty');
    for (const address of opts.hostAddresses) {
      if (!isIPv4(address) && !isIPv6(address))
        throw new Error(`hostAddresses: not an IP address: ${address}`);
    }
    // Turning enumeration off leaves werift with exactly the additional addresses.
    config.iceUseIpv4 = false;
    config.iceUseIpv6 = false;
    config.iceAdditionalHostAddresses = [...opts.hostAddresses];
  } else {
    config.iceUseIpv4 = true;
    config.iceUseIpv6 = opts.ipv6 ?? true;
  }
  if (opts.bindAddress !== undefined) {
    const bind =
      typeof opts.bindAddress === 'string'
        ? isIPv6(opts.bindAddress)
          ? { udp6: opts.bindAddress }
          : { udp4: opts.bindAddress }
        : opts.bindAddress;
    if (bind.udp4 !== undefined && !isIPv4(bind.udp4)) throw new Error(`bindAddress: not IPv4: ${bind.udp4}`);
    if (bind.udp6 !== undefined && !isIPv6(bind.udp6)) throw new Error(`bindAddress: not IPv6: ${bind.udp6}`);
    config.iceInterfaceAddresses = bind;
  }
  if (opts.portRange !== undefined) {
    const [min, max] = opts.portRange;
    // werift requires min < max.
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min >= max) {
      throw new Error(`portRange must be [min, max] with 1 <= min < max <= 65535, got [${min}, ${max}]`);
    }
    config.icePortRange = [min, max];
  }
  if (opts.filterCandidatePair) config.iceFilterCandidatePair = opts.filterCandidatePair;
  return config;
}
