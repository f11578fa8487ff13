// The egress's sockets send each datagram within send(): werift's sockets (and the UDP mux's)
// resolve IP literals at once instead of on the next tick, for every send on them, so werift's
// DTLS records and our SRTP leave in the order they were sent. Observable: a datagram sent right
// before close() in the same turn still leaves; with dgram's default lookup it is dropped with the
// socket.
import { createSocket, type Socket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { UdpTransport } from 'werift';
import { egressLookup, syncSends, useEgressLookup } from '../../src/webrtc/dgram-lookup.ts';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

async function receiver(): Promise<{ port: number; got: Buffer[] }> {
  const socket = createSocket({ type: 'udp4', lookup: dnsLookup });
  open.push(socket);
  const got: Buffer[] = [];
  socket.on('message', (data) => got.push(data));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, got };
}

async function bound(socket: Socket): Promise<Socket> {
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('synchronous sends to IP literals on dgram sockets', () => {
  it('control: with dns.lookup a send right before close() never leaves', async () => {
    const { port, got } = await receiver();
    const socket = await bound(createSocket({ type: 'udp4', lookup: dnsLookup }));
    socket.send(Buffer.from('late'), port, '127.0.0.1');
    socket.close();
    await settle();
    expect(got).toHaveLength(0);
  });

  it('a syncSends socket sends to an IP literal within send()', async () => {
    const { port, got } = await receiver();
    const socket = await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup })));
    socket.send(Buffer.from('now'), port, '127.0.0.1');
    socket.close();
    await settle();
    expect(got.map(String)).toEqual(['now']);
  });

  it("bind keeps dns.lookup's next-tick answer ('listening' after bind() returns)", async () => {
    const socket = syncSends(createSocket({ type: 'udp4', lookup: egressLookup }));
    open.push(socket);
    let listeningInBind = false;
    socket.once('listening', () => {
      listeningInBind = true;
    });
    socket.bind(0, '127.0.0.1');
    const afterBind = listeningInBind;
    if (!afterBind) await once(socket, 'listening');
    // werift binds, then waits for 'listening': it must not have fired inside bind().
    expect(afterBind).toBe(false);
  });

  it("werift's UDP transports get it once installed, and their own sends and direct ones keep their order", async () => {
    useEgressLookup();
    const { port, got } = await receiver();
    const transport = await UdpTransport.init('udp4', { interfaceAddresses: { udp4: '127.0.0.1' } });
    // werift's own send path (DTLS records go this way), then a direct send (the egress's SRTP).
    await transport.send(Buffer.from('dtls-finished'), ['127.0.0.1', port]);
    transport.socket.send(Buffer.from('srtp'), port, '127.0.0.1');
    transport.socket.send(Buffer.from('last'), port, '127.0.0.1');
    transport.socket.close();
    await settle();
    expect(got.map(String)).toEqual(['dtls-finished', 'srtp', 'last']);
  });

  // Only names /etc/hosts answers: the tests never ask a DNS server.
  it('still resolves host names through dns.lookup', async () => {
    useEgressLookup();
    const { port, got } = await receiver();
    const socket = await bound(createSocket('udp4'));
    open.push(socket);
    await new Promise<void>((resolve, reject) =>
      socket.send(Buffer.from('by name'), port, 'localhost', (err) => (err ? reject(err) : resolve())),
    );
    await settle();
    expect(got.map(String)).toEqual(['by name']);
  });

  it("keeps a caller's own lookup (and its timing)", async () => {
    useEgressLookup();
    const asked: string[] = [];
    const socket = await bound(
      createSocket({
        type: 'udp4',
        lookup: (address, family, callback) => {
          asked.push(address);
          dnsLookup(address, family, callback);
        },
      }),
    );
    open.push(socket);
    asked.length = 0; // bind's own lookup
    const { port, got } = await receiver();
    socket.send(Buffer.from('own'), port, '127.0.0.1');
    await settle();
    expect(asked).toEqual(['127.0.0.1']);
    expect(got.map(String)).toEqual(['own']);
  });
});
