// IcePorts with the real peers: what the answers announce (the shared ports, a NAT address), the
// bounds, and offers the shared ports cannot carry.
import { afterEach, describe, expect, it } from 'vitest';
import { IcePorts, IcePortsFullError, IngestPeer, OfferRejectedError } from '../../src/webrtc/index.ts';
import { candidatesOf } from '../helpers/ice-clients.ts';
import { WeriftPublisher } from '../helpers/webrtc-clients.ts';

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function offer(opts: { audio?: boolean } = {}): Promise<string> {
  const publisher = new WeriftPublisher({ audio: opts.audio ?? false });
  closers.push(() => publisher.close());
  return publisher.createOffer();
}

async function open(opts: Parameters<typeof IcePorts.open>[0]): Promise<IcePorts> {
  const ports = await IcePorts.open(opts);
  closers.push(() => ports.close());
  return ports;
}

describe('IcePorts', () => {
  it('announces the NAT address with the bound ports, and gives the place back on close', async () => {
    const ports = await open({
      udp: { host: '127.0.0.1', port: 0 },
      tcp: { host: '127.0.0.1', port: 0 },
      announce: ['203.0.113.7', '2001:db8::7'],
    });
    const peer = await IngestPeer.create(await offer(), { ports });
    closers.push(() => peer.close());
    const announced = candidatesOf(peer.answerSdp).map((c) => {
      const [, , transport, , ip, port, , , ...rest] = c.split(' ');
      return `${transport} ${ip}:${port}${rest.includes('passive') ? ' passive' : ''}`;
    });
    // IPv6 cannot be reached through IPv4 sockets: only the IPv4 address is announced.
    expect(announced.sort()).toEqual([
      `tcp 203.0.113.7:${ports.tcp!.port} passive`,
      `udp 203.0.113.7:${ports.udp!.port}`,
    ]);
    expect(ports.stats()).toMatchObject({ peers: 1, udp: { announced: ['203.0.113.7'] } });
    await peer.close();
    expect(ports.peers).toBe(0);
  });

  it('bounds the peers it carries: one more is refused (503 on the HTTP side)', async () => {
    const ports = await open({ udp: { host: '127.0.0.1', port: 0 }, maxPeers: 1 });
    const first = await IngestPeer.create(await offer(), { ports });
    closers.push(() => first.close());
    await expect(IngestPeer.create(await offer(), { ports })).rejects.toBeInstanceOf(IcePortsFullError);
    await first.close();
    const again = await IngestPeer.create(await offer(), { ports });
    closers.push(() => again.close());
  });

  it('refuses an offer that does not bundle, since one ICE session per peer is routed', async () => {
    const ports = await open({ udp: { host: '127.0.0.1', port: 0 } });
    const unbundled = (await offer({ audio: true })).replace(/a=group:BUNDLE[^\r\n]*\r\n/, '');
    const err = await IngestPeer.create(unbundled, { ports }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OfferRejectedError);
    expect((err as OfferRejectedError).status).toBe(400);
    expect((err as Error).message).toContain('BUNDLE');
    expect(ports.peers).toBe(0);
  });

  it('refuses to open without an address, or with nothing to announce of its family', async () => {
    await expect(IcePorts.open({})).rejects.toThrow(/needs a UDP or a TCP address/);
    await expect(IcePorts.open({ udp: { host: 'localhost', port: 0 } })).rejects.toThrow(/not an IP address/);
    await expect(
      IcePorts.open({ udp: { host: '127.0.0.1', port: 0 }, announce: ['2001:db8::7'] }),
    ).rejects.toThrow(/no address to announce/);
  });
});
