// directSend (src/webrtc/udp-send.ts): a datagram straight into the socket's handle, and a true
// answer only when it left within the call, so the egress may write its next packet into the same
// buffer. Checked against real sockets on 127.0.0.1, and against Node's own queued path (Node's
// --test-udp-no-try-send makes every send wait for libuv's queue, as a backed-up socket does).
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { egressLookup, syncSends } from '../../src/webrtc/dgram-lookup.ts';
import { batchSend, directSend, directSendErrors, udpBatch } from '../../src/webrtc/udp-send.ts';

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

/** Packets laid out with gaps between them (as the egress writes them), and their offsets/lengths. */
function layout(sizes: number[]) {
  const data = Buffer.alloc(sizes.reduce((n, size) => n + size + 13, 0));
  const offsets = new Uint32Array(sizes.length);
  const lengths = new Uint32Array(sizes.length);
  let at = 5;
  sizes.forEach((size, i) => {
    offsets[i] = at;
    lengths[i] = size;
    data.fill(i & 0xff, at, at + size);
    data.writeUInt16BE(i, at);
    at += size + 13;
  });
  return { data, offsets, lengths };
}

/** What arrived, as "index:size", checking each packet's bytes. */
async function received(sizes: number[]) {
  const socket = await bound(createSocket('udp4'));
  const got: string[] = [];
  socket.on('message', (m) => {
    const i = m.readUInt16BE(0);
    const intact = m.subarray(2).every((byte) => byte === (i & 0xff));
    got.push(`${i}:${m.length}${intact ? '' : ' corrupt'}`);
  });
  return { port: socket.address().port, got, want: sizes.map((size, i) => `${i}:${size}`) };
}

describe('batchSend (build/udp-batch.node)', () => {
  const sender = async () =>
    batchSend(await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup })))) as NonNullable<
      ReturnType<typeof batchSend>
    >;

  it('is built and loads here (scripts/build-native.sh runs in npm start and npm test)', () => {
    expect(udpBatch.unavailable).toBeUndefined();
    expect(udpBatch.addon).toBeDefined();
  });

  it.each([
    ['with', true],
    ['without', false],
  ])(
    '%s UDP segmentation, a frame of mixed sizes arrives packet for packet, in order, intact',
    async (_w, segmentation) => {
      const saved = udpBatch.segmentation;
      udpBatch.segmentation = segmentation;
      try {
        // Runs of one size with a shorter last (one segmented message each), a longer packet
        // starting a new run, single small packets, and a run longer than the kernel's 64 segments.
        const sizes = [40, 1200, 1200, 1200, 700, 1200, 1200, 30, 30, 30, 90, ...new Array(70).fill(300), 12];
        const { port, got, want } = await received(sizes);
        const send = await sender();
        const { data, offsets, lengths } = layout(sizes);
        const calls = udpBatch.calls;
        expect(send(data, offsets, lengths, sizes.length, port, '127.0.0.1')).toBe(sizes.length);
        expect(udpBatch.calls).toBe(calls + 1);
        await waitForCount(got, sizes.length);
        expect(got).toEqual(want);
        expect(udpBatch.segmentation).toBe(segmentation);
      } finally {
        udpBatch.segmentation = saved;
      }
    },
  );

  it('more messages than one system call takes (every packet longer than the last) all arrive in order', async () => {
    const sizes = Array.from({ length: 150 }, (_, i) => 20 + i);
    const { port, got, want } = await received(sizes);
    const { data, offsets, lengths } = layout(sizes);
    expect((await sender())(data, offsets, lengths, sizes.length, port, '127.0.0.1')).toBe(150);
    await waitForCount(got, 150);
    expect(got).toEqual(want);
  });

  it('a bad destination is counted and reported as nothing sent (the caller then sends one by one), not thrown', async () => {
    const send = await sender();
    const { data, offsets, lengths } = layout([100, 100]);
    const errors = udpBatch.errors;
    expect(send(data, offsets, lengths, 2, 0, '127.0.0.1')).toBe(0);
    expect(send(data, offsets, lengths, 2, 5000, 'not an address')).toBe(0);
    expect(udpBatch.errors).toBe(errors + 2);
    // Still segmenting: the plain retry failed too, so segmentation was not to blame.
    expect(udpBatch.segmentation).toBe(true);
  });

  it('a kernel that refuses segmentation (EIO: no checksum offload) gets the same packets plain, and no more segmented batches', async () => {
    const real = udpBatch.addon as NonNullable<typeof udpBatch.addon>;
    const segmented: boolean[] = [];
    // Such a kernel, in front of the real addon.
    udpBatch.addon = {
      sendBatch: (...args) => {
        segmented.push(args[7]);
        return args[7] ? -5 : real.sendBatch(...args);
      },
    };
    try {
      const sizes = [1200, 1200, 1200, 400];
      const { port, got, want } = await received(sizes);
      const send = await sender();
      const { data, offsets, lengths } = layout(sizes);
      expect(send(data, offsets, lengths, 4, port, '127.0.0.1')).toBe(4);
      expect(send(data, offsets, lengths, 4, port, '127.0.0.1')).toBe(4);
      await waitForCount(got, 8);
      expect(got).toEqual([...want, ...want]);
      expect(segmented).toEqual([true, false, false]);
      expect(udpBatch.segmentation).toBe(false);
    } finally {
      udpBatch.addon = real;
      udpBatch.segmentation = true;
    }
  });

  it('a closed socket sends nothing', async () => {
    const socket = await bound(syncSends(createSocket({ type: 'udp4', lookup: egressLookup })));
    const send = batchSend(socket);
    socket.close();
    open.splice(open.indexOf(socket), 1);
    const { data, offsets, lengths } = layout([10]);
    expect(send?.(data, offsets, lengths, 1, 5000, '127.0.0.1')).toBe(0);
  });

  it('packets waiting in the socket’s queue go first: a batch behind them is not sent', () => {
    // A child Node whose UDP sends all wait for libuv's queue.
    const script = `
      import { createSocket } from 'node:dgram';
      import { batchSend, directSend } from ${JSON.stringify(new URL('../../src/webrtc/udp-send.ts', import.meta.url).href)};
      import { egressLookup, syncSends } from ${JSON.stringify(new URL('../../src/webrtc/dgram-lookup.ts', import.meta.url).href)};
      const r = createSocket('udp4'); const got = [];
      r.on('message', (m) => got.push(String(m)));
      await new Promise((ok) => r.bind(0, '127.0.0.1', ok));
      // As the egress's sockets: sends reach libuv within the call.
      const s = syncSends(createSocket({ type: 'udp4', lookup: egressLookup }));
      await new Promise((ok) => s.bind(0, '127.0.0.1', ok));
      const port = r.address().port;
      directSend(s)(Buffer.from('queued'), port, '127.0.0.1');
      const data = Buffer.from('batch'); const offsets = new Uint32Array([0]); const lengths = new Uint32Array([5]);
      const behind = batchSend(s)(data, offsets, lengths, 1, port, '127.0.0.1');
      await new Promise((ok) => setTimeout(ok, 100));
      const after = batchSend(s)(data, offsets, lengths, 1, port, '127.0.0.1');
      await new Promise((ok) => setTimeout(ok, 100));
      console.log(JSON.stringify({ behind, after, got }));
      s.close(); r.close();`;
    const out = execFileSync(
      process.execPath,
      ['--test-udp-no-try-send', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(JSON.parse(out.trim().split('\n').at(-1) ?? '{}')).toEqual({
      behind: 0,
      after: 1,
      got: ['queued', 'batch'],
    });
  });

  it('LPGW_UDP_BATCH=0 turns batches off', async () => {
    process.env.LPGW_UDP_BATCH = '0';
    try {
      expect(batchSend(await bound(createSocket('udp4')))).toBeUndefined();
    } finally {
      delete process.env.LPGW_UDP_BATCH;
    }
  });
});

async function waitForCount(got: unknown[], count: number): Promise<void> {
  for (let i = 0; i < 100 && got.length < count; i++) await new Promise((resolve) => setTimeout(resolve, 20));
}
