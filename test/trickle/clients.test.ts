// TricklePublisher and TrickleSubscriber against a real TrickleServer, over HTTP and HTTPS.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import selfsigned from 'selfsigned';
import { afterEach, describe, expect, it } from 'vitest';
import {
  TrickleError,
  TricklePublisher,
  TrickleServer,
  TrickleSubscriber,
  type TrickleSubscriberOptions,
} from '../../src/trickle/index.ts';

const BASE_PATH = '/ai/trickle/';

type Server = http.Server | https.Server | http2.Http2SecureServer;
type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse) => void;

interface Host {
  trickle: TrickleServer;
  server: Server;
  /** `http(s)://127.0.0.1:port/ai/trickle/` */
  base: string;
  /** `METHOD path` of every request the host has received, in order. */
  seen: string[];
  /** Runs before the trickle server sees a request; returning true means the test handled it. */
  intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startHost(
  create: (handler: Handler) => Server = (h) => http.createServer({ requestTimeout: 0 }, h),
) {
  const trickle = new TrickleServer({ basePath: BASE_PATH });
  const host: Partial<Host> & { seen: string[] } = { trickle, seen: [] };
  const server = create((req, res) => {
    host.seen.push(`${req.method} ${req.url}`);
    if (host.intercept?.(req as http.IncomingMessage, res)) return;
    if (!trickle.handle(req, res)) {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    trickle.close();
    if ('closeAllConnections' in server) server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  const scheme = server instanceof http.Server ? 'http' : 'https';
  host.server = server;
  host.base = `${scheme}://127.0.0.1:${port}${BASE_PATH}`;
  return host as Host;
}

function publisher(
  url: string,
  opts: ConstructorParameters<typeof TricklePublisher>[1] = {},
): TricklePublisher {
  const pub = new TricklePublisher(url, opts);
  cleanups.push(() => pub.close());
  return pub;
}

function subscriber(url: string, opts: TrickleSubscriberOptions = {}): TrickleSubscriber {
  const sub = new TrickleSubscriber(url, opts);
  cleanups.push(() => sub.close());
  return sub;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function readText(body: Readable): Promise<string> {
  return (await readAll(body)).toString();
}

function nextChunk(body: Readable): Promise<string> {
  return new Promise((resolve) => body.once('data', (chunk: Buffer) => resolve(chunk.toString())));
}

/** A debug logger whose messages the test can wait for: a timing-free view of client internals. */
function recordingLogger() {
  const messages: string[] = [];
  const sink = new Writable({
    write(line: Buffer, _encoding, done) {
      messages.push(JSON.parse(line.toString()).msg);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), messages };
}

async function expectTrickleError(
  promise: Promise<unknown>,
  kind: TrickleError['kind'],
): Promise<TrickleError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TrickleError);
  expect((err as TrickleError).kind).toBe(kind);
  return err as TrickleError;
}

describe('TricklePublisher + TrickleSubscriber', () => {
  it('delivers several segments in order', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0 });
    const pub = publisher(`${base}ch`);
    const received = (async () => {
      const got: [number, string][] = [];
      for (let i = 0; i < 4; i++) {
        const segment = await sub.next();
        got.push([segment!.seq, await readText(segment!.body)]);
      }
      return got;
    })();
    for (const text of ['zero', 'one', 'two', 'three']) await pub.writeSegment(text);
    expect(await received).toEqual([
      [0, 'zero'],
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
  });

  it('a subscriber at the live edge gets the next segment written, with its real seq', async () => {
    const { trickle, base, seen } = await startHost();
    trickle.createChannel('ch', 'application/json');
    const pub = publisher(`${base}ch`, { mimeType: 'application/json' });
    for (let i = 0; i < 3; i++) await pub.writeSegment(`{"old":${i}}`);
    const sub = subscriber(`${base}ch`);
    const first = sub.next();
    // The live edge is wherever the publisher is when the request arrives.
    await expect.poll(() => seen).toContain('GET /ai/trickle/ch/-1');
    await pub.writeSegment('{"new":3}');
    const segment = (await first)!;
    expect(segment.seq).toBe(3);
    expect(await readText(segment.body)).toBe('{"new":3}');
    const following = sub.next();
    await pub.writeSegment('{"new":4}');
    expect((await following)!.seq).toBe(4);
  });

  it('streams chunks to subscribers while the segment is still being written', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0 });
    const pub = publisher(`${base}ch`);
    const pending = sub.next();
    const writer = pub.startSegment();
    writer.write(Buffer.from('first'));
    const segment = (await pending)!;
    const started = Date.now();
    expect(await nextChunk(segment.body)).toBe('first');
    writer.write(Buffer.from('second'));
    expect(await nextChunk(segment.body)).toBe('second');
    // Chunk by chunk, not at the segment's end (which has not even happened yet).
    expect(Date.now() - started).toBeLessThan(200);
    const rest = readText(segment.body);
    await writer.end();
    expect(await rest).toBe('');
    expect(() => writer.write(Buffer.from('late'))).toThrow(/write after end/);
  });

  it('a subscriber joining mid-segment gets the bytes so far, then the rest', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const early = subscriber(`${base}ch`, { start: 0 });
    const pub = publisher(`${base}ch`);
    const earlySegment = early.next();
    const writer = pub.startSegment();
    writer.write(Buffer.from('AAA'));
    // The early subscriber seeing AAA proves the server has it.
    expect(await nextChunk((await earlySegment)!.body)).toBe('AAA');

    const late = subscriber(`${base}ch`, { start: -2 });
    const lateSegment = (await late.next())!;
    expect(lateSegment.seq).toBe(0);
    const lateBody = readText(lateSegment.body);
    writer.write(Buffer.from('BBB'));
    await writer.end();
    expect(await lateBody).toBe('AAABBB');
  });

  it('concurrent subscribers receive identical bytes', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const subs = [0, 1, 2].map(() => subscriber(`${base}ch`, { start: 0 }));
    const bodies = subs.map(async (sub) => {
      const segment = await sub.next();
      return readAll(segment!.body);
    });
    const pub = publisher(`${base}ch`);
    const writer = pub.startSegment();
    const payload = randomBytes(256 * 1024);
    for (let offset = 0; offset < payload.length; offset += 16 * 1024) {
      writer.write(payload.subarray(offset, offset + 16 * 1024));
    }
    await writer.end();
    for (const body of await Promise.all(bodies)) expect(body.equals(payload)).toBe(true);
  });

  it('preconnects the next segment: the POST for seq n+1 is open while seq n is written', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    const pub = publisher(`${host.base}ch`);
    const writer = pub.startSegment();
    expect(writer.seq).toBe(0);
    await expect.poll(() => host.seen).toEqual(['POST /ai/trickle/ch/0', 'POST /ai/trickle/ch/1']);
    writer.write(Buffer.from('zero'));
    await writer.end();
    // Segment 1 reuses the open request; only segment 2's preconnect is new.
    await pub.writeSegment('one');
    await expect
      .poll(() => host.seen)
      .toEqual(['POST /ai/trickle/ch/0', 'POST /ai/trickle/ch/1', 'POST /ai/trickle/ch/2']);
  });

  it('a subscriber preconnects the next segment as soon as a segment starts', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${host.base}ch`, { start: 0 });
    const pub = publisher(`${host.base}ch`);
    const first = sub.next();
    await pub.writeSegment('zero');
    expect((await first)!.seq).toBe(0);
    await expect
      .poll(() => host.seen.filter((line) => line.startsWith('GET')))
      .toEqual(['GET /ai/trickle/ch/0', 'GET /ai/trickle/ch/1']);
  });

  it('retries a segment once when its preconnected request failed before any byte', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    let failedOnce = false;
    host.intercept = (req) => {
      if (failedOnce || req.url !== '/ai/trickle/ch/1') return false;
      failedOnce = true;
      req.socket.destroy();
      return true;
    };
    const { logger, messages } = recordingLogger();
    const pub = publisher(`${host.base}ch`, { logger });
    await pub.writeSegment('zero');
    await expect.poll(() => messages).toContain('trickle segment POST failed');
    await pub.writeSegment('one');
    expect(messages).toContain('retrying trickle segment');
    const sub = subscriber(`${host.base}ch`, { start: -2 });
    const segment = (await sub.next())!;
    expect(segment.seq).toBe(1);
    expect(await readText(segment.body)).toBe('one');
  });

  it('an aborted segment leaves subscribers with the partial bytes, then the end', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0 });
    const pub = publisher(`${base}ch`);
    const pending = sub.next();
    const writer = pub.startSegment();
    writer.write(Buffer.from('partial'));
    const body = (await pending)!.body;
    expect(await nextChunk(body)).toBe('partial');
    const rest = readText(body);
    writer.abort();
    expect(await rest).toBe('');
    await expect(writer.end()).rejects.toBeInstanceOf(TrickleError);
    // The channel carries on with the next segment.
    const next = sub.next();
    await pub.writeSegment('after');
    expect(await readText((await next)!.body)).toBe('after');
  });

  it('streams a 5 MB segment intact', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0 });
    const pub = publisher(`${base}ch`);
    const payload = randomBytes(5 * 1024 * 1024);
    const received = sub.next().then((segment) => readAll(segment!.body));
    const writer = pub.startSegment();
    for (let offset = 0; offset < payload.length; offset += 64 * 1024) {
      if (!writer.write(payload.subarray(offset, offset + 64 * 1024))) await writer.waitForDrain();
    }
    await writer.end();
    const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
    expect(sha256(await received)).toBe(sha256(payload));
  });
});

describe('closing and errors', () => {
  it('deleting the channel ends subscribers with null and fails the next segment as closed', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${host.base}ch`, { start: 0 });
    const pub = publisher(`${host.base}ch`);
    const first = sub.next();
    await pub.writeSegment('zero');
    expect(await readText((await first)!.body)).toBe('zero');
    const waiting = sub.next();
    // Both the subscriber's and the publisher's requests for segment 1 are waiting on the server.
    await expect
      .poll(() => host.seen)
      .toEqual(expect.arrayContaining(['GET /ai/trickle/ch/1', 'POST /ai/trickle/ch/1']));

    const deleter = new TricklePublisher(`${host.base}ch`);
    await deleter.close({ deleteChannel: true });
    expect(host.trickle.hasChannel('ch')).toBe(false);
    expect(await waiting).toBeNull();
    expect(await sub.next()).toBeNull();
    await expectTrickleError(pub.writeSegment('one'), 'closed');
    // After that, the channel is gone for good.
    await expectTrickleError(pub.writeSegment('two'), 'not-found');
  });

  it('reports an unknown channel as not-found on both clients', async () => {
    const { base } = await startHost();
    const pubErr = await expectTrickleError(publisher(`${base}missing`).writeSegment('x'), 'not-found');
    expect(pubErr.status).toBe(404);
    await expectTrickleError(subscriber(`${base}missing`).next(), 'not-found');
  });

  it('reports other HTTP failures as http errors carrying the status', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    host.intercept = (req, res) => {
      req.resume();
      res.statusCode = req.method === 'POST' ? 500 : 470;
      res.setHeader('Lp-Trickle-Latest', '0');
      res.end('nope');
      return true;
    };
    const pubErr = await expectTrickleError(publisher(`${host.base}ch`).writeSegment('x'), 'http');
    expect(pubErr.status).toBe(500);
    // A segment that never becomes available: the subscriber re-syncs, then gives up on the third miss.
    const subErr = await expectTrickleError(subscriber(`${host.base}ch`, { retryDelayMs: 5 }).next(), 'http');
    expect(subErr.status).toBe(470);
    expect(host.seen.filter((line) => line.startsWith('GET'))).toEqual([
      'GET /ai/trickle/ch/-1',
      'GET /ai/trickle/ch/0',
      'GET /ai/trickle/ch/0',
    ]);
  });

  it('a subscriber that fell behind re-syncs at the live edge after a 470', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    const pub = publisher(`${host.base}ch`);
    for (let i = 0; i < 8; i++) await pub.writeSegment(`s${i}`);
    // Segment 0 has left the server's window of five.
    const sub = subscriber(`${host.base}ch`, { start: 0, retryDelayMs: 10 });
    const pending = sub.next();
    await expect.poll(() => host.seen).toContain('GET /ai/trickle/ch/8');
    await pub.writeSegment('s8');
    const segment = (await pending)!;
    expect(segment.seq).toBe(8);
    expect(await readText(segment.body)).toBe('s8');
  });

  it('a subscriber gives up after three consecutive network failures', async () => {
    const { base, server } = await startHost();
    await new Promise((resolve) => server.close(resolve));
    const sub = subscriber(`${base}ch`, { retryDelayMs: 10 });
    await expectTrickleError(sub.next(), 'network');
  });

  it('close() releases a pending next() with null and leaves no connection open', async () => {
    const host = await startHost();
    host.trickle.createChannel('ch', 'video/MP2T');
    const sub = new TrickleSubscriber(`${host.base}ch`, { start: 0 });
    const pub = new TricklePublisher(`${host.base}ch`);
    const pending = sub.next();
    await pub.writeSegment('zero');
    expect(await readText((await pending)!.body)).toBe('zero');
    const waiting = sub.next();
    await expect.poll(() => host.seen).toContain('GET /ai/trickle/ch/1');
    sub.close();
    await pub.close();
    expect(await waiting).toBeNull();
    expect(() => pub.startSegment()).toThrow(TrickleError);
    const server = host.server as http.Server;
    await expect
      .poll(() => new Promise((resolve) => server.getConnections((_err, count) => resolve(count))))
      .toBe(0);
  });
});

describe('over TLS', () => {
  async function certificate() {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keySize: 2048 });
    return { key: pems.private, cert: pems.cert };
  }

  it('publishes and subscribes over https with a self-signed certificate', async () => {
    const tls = await certificate();
    const { trickle, base } = await startHost((handler) =>
      https.createServer({ ...tls, requestTimeout: 0 }, handler),
    );
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0, rejectUnauthorized: false });
    const pub = publisher(`${base}ch`, { rejectUnauthorized: false });
    const received = sub.next().then((segment) => readText(segment!.body));
    await pub.writeSegment('secure');
    expect(await received).toBe('secure');

    // Certificates are checked unless the caller opts out.
    await expectTrickleError(publisher(`${base}ch`).writeSegment('x'), 'network');
    await expectTrickleError(subscriber(`${base}ch`, { retryDelayMs: 10 }).next(), 'network');
  });

  it('works behind an HTTP/2 server that accepts HTTP/1 (the orchestrator setup)', async () => {
    const tls = await certificate();
    const { trickle, base } = await startHost((handler) =>
      http2.createSecureServer({ ...tls, allowHTTP1: true }, handler as never),
    );
    trickle.createChannel('ch', 'video/MP2T');
    const sub = subscriber(`${base}ch`, { start: 0, rejectUnauthorized: false });
    const pub = publisher(`${base}ch`, { rejectUnauthorized: false });
    const received = sub.next().then((segment) => readText(segment!.body));
    const writer = pub.startSegment();
    writer.write(Buffer.from('over '));
    writer.write(Buffer.from('h1'));
    await writer.end();
    expect(await received).toBe('over h1');

    // An HTTP/2 client reads the same channel through the compat API.
    const session = http2.connect(base.replace(BASE_PATH, ''), { rejectUnauthorized: false });
    cleanups.push(() => session.close());
    const stream = session.request({ ':method': 'GET', ':path': `${BASE_PATH}ch/0` });
    const [headers, body] = await Promise.all([
      new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve)),
      readText(stream),
    ]);
    expect(headers[':status']).toBe(200);
    expect(headers['lp-trickle-seq']).toBe('0');
    expect(body).toBe('over h1');
  });
});
