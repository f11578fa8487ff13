// directSend (src/webrtc/udp-send.ts): a datagram straight into the socket's handle, and a true
// answer only when it left within the call, so the egress may write its next packet into the same
// buffer. Checked against real sockets on 127.0.0.1, and against Node's own queued path (Node's
// --test-udp-no-try-send makes every send wait for libuv's queue, as a backed-up socket does).
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { egressLookup, syncSends } from '../../src/webrtc/dgram-lookup.ts';
import { directSend, directSendErrors } from '../../src/webrtc/udp-send.ts';

const open: Socket[] = [];
afterEach(() => {
  for (const s of open.splice(0)) {
    try {
      s.close();
    } catch {}
  }
});

async function bound(socket: Socket): Promise<Socket> {
  open.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

async function receiver(): Promise<{ port: number; got: string[] }> {
  const socket = await bound(createSocket('udp4'));
  const got: string[] = [];
  socket.on('message', (data) => got.push(String(data)));
  return { port: socket.address().port, got };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('directSend', () => {
  it('sends within the call, so one buffer carries packet after packet intact', async () => {
    const { port, got } = await receiver();
    const send = directSend(await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup }))));
    const buffer = Buffer.alloc(3);
    const done: boolean[] = [];
    for (const text of ['one', 'two', 'six', 'ten']) {
      buffer.write(text);
      done.push(send(buffer, port, '127.0.0.1'));
    }
    await settle();
    expect(got).toEqual(['one', 'two', 'six', 'ten']);
    // The first send goes through dgram (to learn its request type) and does not promise anything.
    expect(done).toEqual([false, true, true, true]);
  });

  it('a send the kernel did not take at once is reported as queued, and its data still arrives in order', () => {
    // A child Node whose UDP sends all wait for libuv's queue.
    const script = `
      import { createSocket } from 'node:dgram';
      import { directSend } from ${JSON.stringify(new URL('../../src/webrtc/udp-send.ts', import.meta.url).href)};
      const r = createSocket('udp4'); const got = [];
      r.on('message', (m) => got.push(String(m)));
      await new Promise((ok) => r.bind(0, '127.0.0.1', ok));
      const s = createSocket('udp4');
      await new Promise((ok) => s.bind(0, '127.0.0.1', ok));
      const send = directSend(s); const done = [];
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 4; i++) done.push(send(Buffer.from(round + ':' + i), r.address().port, '127.0.0.1'));
        await new Promise((ok) => setTimeout(ok, 50));
        globalThis.gc?.();
      }
      await new Promise((ok) => setTimeout(ok, 100));
      console.log(JSON.stringify({ done, got }));
      s.close(); r.close();`;
    const out = execFileSync(
      process.execPath,
      ['--test-udp-no-try-send', '--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 30_000 },
    );
    const { done, got } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}');
    expect(done).toEqual(new Array(8).fill(false));
    expect(got).toEqual(['0:0', '0:1', '0:2', '0:3', '1:0', '1:1', '1:2', '1:3']);
  });

  it('a closed socket sends nothing and does not throw', async () => {
    const { port, got } = await receiver();
    const socket = await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup })));
    const send = directSend(socket);
    send(Buffer.from('a'), port, '127.0.0.1');
    socket.close();
    open.splice(open.indexOf(socket), 1);
    expect(send(Buffer.from('b'), port, '127.0.0.1')).toBe(false);
    await settle();
    expect(got).toEqual(['a']);
  });

  it('a send the kernel refuses is counted, not thrown', async () => {
    const send = directSend(await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup }))));
    const { port } = await receiver();
    send(Buffer.from('learn'), port, '127.0.0.1');
    const before = directSendErrors.count;
    // Port 0 is no destination (dgram's send() would have refused it before the kernel).
    expect(send(Buffer.from('x'), 0, '127.0.0.1')).toBe(false);
    expect(directSendErrors.count).toBe(before + 1);
    expect(send(Buffer.from('y'), port, '127.0.0.1')).toBe(true);
  });

  it('without dgram’s private state it falls back to socket.send()', () => {
    const sent: unknown[][] = [];
    const fake = { send: (...args: unknown[]) => sent.push(args) } as unknown as Socket;
    const send = directSend(fake);
    const data = Buffer.from('z');
    expect(send(data, 5004, '127.0.0.1')).toBe(false);
    expect(sent).toEqual([[data, 5004, '127.0.0.1']]);
  });
});
