// The shared-port demultiplexers on their own, over real sockets on 127.0.0.1: who gets which
// datagram or connection, and what is dropped and counted.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { classes, Message, methods } from 'werift';
import { MAX_TCP_CONNECTIONS_PER_PEER, TcpMux } from '../../src/webrtc/tcp-mux.ts';
import { MAX_BINDINGS_PER_PEER, UdpMux } from '../../src/webrtc/udp-mux.ts';
import type { Address, MuxStunProtocol, MuxTcpProtocol } from '../../src/webrtc/werift-ice.ts';
import { waitFor } from '../helpers/wait.ts';

const PASSWORDS: Record<string, string> = {
  peerA: 'passwordofpeerApasswordA',
  peerB: 'passwordofpeerBpasswordB',
};

/** A binding request as a remote ICE agent sends it to the peer owning `ufrag`. */
function bindingRequest(ufrag: string, password = PASSWORDS[ufrag] ?? 'x'.repeat(22)): Buffer {
  const message = new Message(methods.BINDING, classes.REQUEST);
  message.setAttribute('USERNAME', `${ufrag}:remote`).setAttribute('PRIORITY', 1234);
  message.addMessageIntegrity(Buffer.from(password, 'utf8'));
  message.addFingerprint();
  return message.bytes;
}

/** DTLS-looking bytes (first byte 20-63): never STUN. */
const DTLS = Buffer.from([22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]);

class FakeUdpPeer {
  readonly got: { data: Buffer; from: Address }[] = [];
  receive(data: Buffer, from: Address): void {
    this.got.push({ data, from });
  }
}

describe('UdpMux', () => {
  let mux: UdpMux;
  const peers = new Map<string, FakeUdpPeer>();
  const clients: UdpSocket[] = [];

  async function setUp(): Promise<void> {
    peers.set('peerA', new FakeUdpPeer());
    peers.set('peerB', new FakeUdpPeer());
    mux = await UdpMux.bind({
      host: '127.0.0.1',
      port: 0,
      lookup: (ufrag) => {
        const peer = peers.get(ufrag);
        return (
          peer && {
            password: Buffer.from(PASSWORDS[ufrag], 'utf8'),
            protocol: peer as unknown as MuxStunProtocol,
          }
        );
      },
    });
  }

  async function client(): Promise<UdpSocket & { send1(data: Buffer): Promise<void> }> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    clients.push(socket);
    return Object.assign(socket, {
      send1: async (data: Buffer) => {
        const before = mux.stats().received;
        socket.send(data, mux.port, '127.0.0.1');
        await waitFor(() => mux.stats().received > before, 'the datagram', 2000);
      },
    });
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    peers.clear();
    await mux?.close();
  });

  it('routes a binding request by its USERNAME, then that address by address', async () => {
    await setUp();
    const a = peers.get('peerA')!;
    const c = await client();
    await c.send1(DTLS);
    expect(a.got).toHaveLength(0);
    expect(mux.stats().droppedUnknownAddress).toBe(1);

    await c.send1(bindingRequest('peerA'));
    await c.send1(DTLS);
    expect(a.got).toHaveLength(2);
    expect(a.got[1].data.equals(DTLS)).toBe(true);
    expect(a.got[1].from).toEqual(['127.0.0.1', c.address().port]);
    expect(peers.get('peerB')!.got).toHaveLength(0);
    expect(mux.stats()).toMatchObject({ routed: 2, bindings: 1 });
  });

  it('drops (and counts) an unknown ufrag, a wrong password and STUN that does not parse', async () => {
    await setUp();
    const c = await client();
    await c.send1(bindingRequest('nobody'));
    await c.send1(bindingRequest('peerA', 'not-the-password-of-peerA'));
    const broken = bindingRequest('peerA');
    broken.writeUInt16BE(broken.length, 2); // attribute length beyond the datagram
    await c.send1(broken);
    await c.send1(DTLS); // and the address was bound by none of them
    expect(peers.get('peerA')!.got).toHaveLength(0);
    expect(mux.stats()).toMatchObject({
      droppedUnknownUfrag: 1,
      droppedBadIntegrity: 1,
      droppedMalformed: 1,
      droppedUnknownAddress: 1,
      routed: 0,
      bindings: 0,
    });
  });

  it('moves an address to the peer its latest verified request names', async () => {
    await setUp();
    const c = await client();
    await c.send1(bindingRequest('peerA'));
    await c.send1(bindingRequest('peerB'));
    await c.send1(DTLS);
    expect(peers.get('peerA')!.got).toHaveLength(1);
    expect(peers.get('peerB')!.got).toHaveLength(2);
    expect(mux.stats().bindings).toBe(1);
  });

  it('routes a response by the transaction id of our request and binds a new address to it', async () => {
    await setUp();
    const a = peers.get('peerA')!;
    const c = await client();
    const request = new Message(methods.BINDING, classes.REQUEST);
    mux.expectResponse(request.transactionIdHex, a as unknown as MuxStunProtocol);
    const response = new Message(methods.BINDING, classes.RESPONSE, request.transactionId);
    response.setAttribute('XOR-MAPPED-ADDRESS', ['127.0.0.1', 1]);
    await c.send1(response.bytes);
    await c.send1(DTLS);
    expect(a.got).toHaveLength(2);
    // A response nobody is waiting for, from an unbound address, goes nowhere.
    const stray = new Message(methods.BINDING, classes.RESPONSE);
    const other = await client();
    await other.send1(stray.bytes);
    expect(mux.stats().droppedUnknownAddress).toBe(1);
  });

  it('forgets a peer when it is released, and bounds the addresses one peer holds', async () => {
    await setUp();
    const a = peers.get('peerA')!;
    const first = await client();
    await first.send1(bindingRequest('peerA'));
    for (let i = 0; i < MAX_BINDINGS_PER_PEER; i++) await (await client()).send1(bindingRequest('peerA'));
    expect(mux.stats().bindings).toBe(MAX_BINDINGS_PER_PEER);
    await first.send1(DTLS); // the oldest binding was evicted
    expect(mux.stats().droppedUnknownAddress).toBe(1);
    mux.released(a as unknown as MuxStunProtocol);
    expect(mux.stats().bindings).toBe(0);
  });

  it('sends through the one socket', async () => {
    await setUp();
    const c = await client();
    const got = new Promise<{ data: Buffer; port: number }>((resolve) =>
      c.once('message', (data, rinfo) => resolve({ data, port: rinfo.port })),
    );
    mux.send(DTLS, ['127.0.0.1', c.address().port]);
    mux.send(DTLS, ['not-an-ip', 1]); // never resolved by the mux
    const { data, port } = await got;
    expect(data.equals(DTLS)).toBe(true);
    expect(port).toBe(mux.port);
  });
});

class FakeTcpPeer {
  closed = false;
  readonly sockets: { socket: Socket; remote: Address; bytes: Buffer[] }[] = [];
  get activeSocketCount(): number {
    return this.sockets.length;
  }
  adopt(socket: Socket, remote: Address): void {
    const entry = { socket, remote, bytes: [] as Buffer[] };
    socket.on('data', (chunk: Buffer) => entry.bytes.push(chunk));
    this.sockets.push(entry);
  }
}

function frame(data: Buffer): Buffer {
  const header = Buffer.alloc(2);
  header.writeUInt16BE(data.length);
  return Buffer.concat([header, data]);
}

describe('TcpMux', () => {
  let mux: TcpMux;
  const peers = new Map<string, FakeTcpPeer>();
  const clients: Socket[] = [];

  async function setUp(): Promise<void> {
    peers.set('peerA', new FakeTcpPeer());
    mux = await TcpMux.listen({
      host: '127.0.0.1',
      port: 0,
      firstFrameTimeoutMs: 300,
      lookup: (ufrag) => {
        const peer = peers.get(ufrag);
        return (
          peer && {
            password: Buffer.from(PASSWORDS[ufrag], 'utf8'),
            protocol: peer as unknown as MuxTcpProtocol,
          }
        );
      },
    });
  }

  async function dial(): Promise<Socket & { ended: Promise<void> }> {
    const socket = connect(mux.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.on('error', () => {});
    clients.push(socket);
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    return Object.assign(socket, { ended });
  }

  afterEach(async () => {
    for (const c of clients.splice(0)) c.destroy();
    for (const p of peers.values()) for (const s of p.sockets) s.socket.destroy();
    peers.clear();
    await mux?.close();
  });

  it('hands a connection to the peer its first frame names, first frame included', async () => {
    await setUp();
    const a = peers.get('peerA')!;
    const c = await dial();
    const first = frame(bindingRequest('peerA'));
    const next = frame(DTLS);
    // Split oddly: the header alone, then the rest with the next frame glued on.
    c.write(first.subarray(0, 2));
    await new Promise((r) => setTimeout(r, 20));
    c.write(Buffer.concat([first.subarray(2), next]));
    await waitFor(
      () => Buffer.concat(a.sockets[0]?.bytes ?? []).length === first.length + next.length,
      'the bytes at the peer',
      2000,
    );
    expect(Buffer.concat(a.sockets[0].bytes).equals(Buffer.concat([first, next]))).toBe(true);
    expect(a.sockets[0].remote).toEqual(['127.0.0.1', c.localPort]);
    expect(mux.stats()).toMatchObject({ accepted: 1, adopted: 1, pending: 0 });
  });

  it('closes connections that start with anything else, and counts why', async () => {
    await setUp();
    const cases: [Buffer, string][] = [
      [frame(DTLS), 'rejectedNotStun'],
      [Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'rejectedNotStun'],
      [frame(bindingRequest('nobody')), 'rejectedUnknownUfrag'],
      [frame(bindingRequest('peerA', 'wrong-password-wrong-pw')), 'rejectedBadIntegrity'],
    ];
    for (const [bytes] of cases) {
      const c = await dial();
      c.write(bytes);
      await c.ended;
    }
    const silent = await dial(); // sends nothing
    await silent.ended;
    expect(mux.stats()).toMatchObject({
      accepted: 5,
      adopted: 0,
      rejectedNotStun: 2,
      rejectedUnknownUfrag: 1,
      rejectedBadIntegrity: 1,
      timedOut: 1,
      pending: 0,
    });
    expect(peers.get('peerA')!.sockets).toHaveLength(0);
  });

  it('bounds the connections of one peer', async () => {
    await setUp();
    const a = peers.get('peerA')!;
    for (let i = 0; i < MAX_TCP_CONNECTIONS_PER_PEER; i++) {
      (await dial()).write(frame(bindingRequest('peerA')));
    }
    await waitFor(() => a.sockets.length === MAX_TCP_CONNECTIONS_PER_PEER, 'every connection adopted', 2000);
    const extra = await dial();
    extra.write(frame(bindingRequest('peerA')));
    await extra.ended;
    expect(mux.stats().rejectedPeerFull).toBe(1);
  });
});
