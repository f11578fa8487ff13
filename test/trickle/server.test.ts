// The trickle server as any HTTP client sees it: raw requests, status codes and headers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TrickleServer, type TrickleServerOptions } from '../../src/trickle/index.ts';

const BASE_PATH = '/ai/trickle/';

interface Host {
  trickle: TrickleServer;
  /** `http://127.0.0.1:port/ai/trickle/` */
  base: string;
  /** `METHOD path` of every request the host has received, in order: shows what the server is holding. */
  seen: string[];
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

async function startHost(opts: Partial<TrickleServerOptions> = {}): Promise<Host> {
  const trickle = new TrickleServer({ basePath: BASE_PATH, ...opts });
  const seen: string[] = [];
  const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (!trickle.handle(req, res)) {
      res.statusCode = 404;
      res.end('not trickle');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    trickle.close();
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { trickle, base: `http://127.0.0.1:${port}${BASE_PATH}`, seen };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(
  method: string,
  url: string,
  body?: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A POST whose body the test writes piece by piece; `reply` settles when the server answers. */
function openPost(url: string, headers: http.OutgoingHttpHeaders = {}) {
  const req = http.request(url, { method: 'POST', agent: false, headers });
  const reply = new Promise<Reply>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  reply.catch(() => {});
  req.flushHeaders();
  return { req, reply };
}

/** A GET whose body the test observes as it streams in. */
function openGet(url: string) {
  const req = http.get(url, { agent: false });
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
  });
  response.catch(() => {});
  return { req, response };
}

/** Resolves with the next chunk of `res` (as text). */
function nextChunk(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => res.once('data', (chunk: Buffer) => resolve(chunk.toString())));
}

function readRest(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}

async function publish(url: string, body: string): Promise<Reply> {
  const reply = await send('POST', url, body);
  expect(reply.status).toBe(200);
  return reply;
}

describe('TrickleServer limits', () => {
  it('cuts off a segment over maxSegmentBytes with 413; subscribers get what fit and the end', async () => {
    const { trickle, base } = await startHost({ maxSegmentBytes: 1000 });
    trickle.createChannel('big', 'video/MP2T');
    const reader = send('GET', `${base}big/0`);
    await new Promise((r) => setTimeout(r, 50));
    const reply = await send('POST', `${base}big/0`, 'x'.repeat(5000));
    expect(reply.status).toBe(413);
    expect(reply.body).toContain('1000');
    const got = await reader;
    expect(got.status).toBe(200);
    expect(got.body.length).toBeLessThanOrEqual(1000);
  });
});

describe('TrickleServer routing', () => {
  it('leaves paths outside the base path to the host', async () => {
    const { base } = await startHost();
    const reply = await send('GET', base.replace(BASE_PATH, '/other/thing'));
    expect(reply).toMatchObject({ status: 404, body: 'not trickle' });
  });

  it('answers 404 "Stream not found" for an unknown channel on every route', async () => {
    const { base } = await startHost();
    for (const [method, path] of [
      ['GET', 'nope/0'],
      ['POST', 'nope/0'],
      ['GET', 'nope/next'],
      ['DELETE', 'nope'],
      ['DELETE', 'nope/0'],
    ]) {
      const reply = await send(method, `${base}${path}`, method === 'POST' ? 'data' : undefined);
      expect({ method, path, status: reply.status, body: reply.body.trim() }).toEqual({
        method,
        path,
        status: 404,
        body: 'Stream not found',
      });
    }
  });

  it('answers 400 for a sequence number that is not an integer, 405 for other methods', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    expect((await send('GET', `${base}ch/abc`)).status).toBe(400);
    expect((await send('POST', `${base}ch/1.5`, 'x')).status).toBe(400);
    expect((await send('GET', `${base}ch/-3`)).status).toBe(400);
    expect((await send('PUT', `${base}ch/0`, 'x')).status).toBe(405);
  });

  it('creates channels over HTTP only with autocreate', async () => {
    const strict = await startHost();
    expect((await send('POST', `${strict.base}made`)).status).toBe(404);
    expect(strict.trickle.hasChannel('made')).toBe(false);

    const lenient = await startHost({ autocreate: true });
    expect(
      (await send('POST', `${lenient.base}made`, '', { 'Expect-Content': 'application/json' })).status,
    ).toBe(200);
    expect(lenient.trickle.hasChannel('made')).toBe(true);
    await publish(`${lenient.base}auto/0`, 'first');
    expect(lenient.trickle.hasChannel('auto')).toBe(true);
    expect((await send('GET', `${lenient.base}auto/0`)).body).toBe('first');
  });
});

describe('TrickleServer publishing and reading', () => {
  it('stores segments and serves them with sequence and content type headers', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'application/json');
    const posted = await publish(`${base}ch/0`, '{"a":1}');
    expect(posted.headers['lp-trickle-seq']).toBe('0');
    const read = await send('GET', `${base}ch/0`);
    expect(read.status).toBe(200);
    expect(read.headers['lp-trickle-seq']).toBe('0');
    expect(read.headers['content-type']).toBe('application/json');
    expect(read.body).toBe('{"a":1}');
  });

  it('POST /-1 writes at the live edge and GET /-2 reads the latest segment', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    await publish(`${base}ch/0`, 'zero');
    const posted = await publish(`${base}ch/-1`, 'one');
    expect(posted.headers['lp-trickle-seq']).toBe('1');
    const current = await send('GET', `${base}ch/-2`);
    expect(current.headers['lp-trickle-seq']).toBe('1');
    expect(current.body).toBe('one');
  });

  it('GET /next tells where the publisher writes next', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const empty = await send('GET', `${base}ch/next`);
    expect(empty).toMatchObject({ status: 200, body: '0' });
    expect(empty.headers['lp-trickle-latest']).toBe('0');
    await publish(`${base}ch/0`, 'a');
    await publish(`${base}ch/1`, 'b');
    const next = await send('GET', `${base}ch/next`);
    expect(next.body).toBe('2');
    expect(next.headers['lp-trickle-latest']).toBe('2');
    expect(next.headers['lp-trickle-closed']).toBeUndefined();
  });

  it('answers 470 with the live edge for segments too far ahead or already dropped', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    for (let seq = 0; seq < 7; seq++) await publish(`${base}ch/${seq}`, `s${seq}`);

    const ahead = await send('GET', `${base}ch/20`);
    expect(ahead.status).toBe(470);
    expect(ahead.body).toBe('Entry not found');
    expect(ahead.headers['lp-trickle-latest']).toBe('7');
    expect(ahead.headers['lp-trickle-seq']).toBe('20');

    // Only the last five segments are kept.
    const dropped = await send('GET', `${base}ch/1`);
    expect(dropped.status).toBe(470);
    expect(dropped.headers['lp-trickle-latest']).toBe('7');
    expect((await send('GET', `${base}ch/2`)).body).toBe('s2');
  });

  it('an empty POST still advances the live edge', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const posted = await publish(`${base}ch/0`, '');
    expect(posted.headers['lp-trickle-seq']).toBe('0');
    expect(posted.headers['lp-trickle-closed']).toBeUndefined();
    expect((await send('GET', `${base}ch/next`)).body).toBe('1');
  });

  it('streams each chunk to a waiting subscriber while the segment is still open', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const get = openGet(`${base}ch/0`);
    const post = openPost(`${base}ch/0`);
    post.req.write('first ');
    const res = await get.response;
    expect(res.headers['lp-trickle-seq']).toBe('0');
    expect(await nextChunk(res)).toBe('first ');
    post.req.write('second');
    expect(await nextChunk(res)).toBe('second');
    const rest = readRest(res);
    post.req.end();
    expect((await post.reply).headers['lp-trickle-seq']).toBe('0');
    expect(await rest).toBe('');
  });

  it('a subscriber joining mid-segment gets what was written so far, then the rest', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const early = openGet(`${base}ch/0`);
    const post = openPost(`${base}ch/0`);
    post.req.write('AAA');
    expect(await nextChunk(await early.response)).toBe('AAA');

    const late = await (await openGet(`${base}ch/0`)).response;
    const lateBody = readRest(late);
    post.req.write('BBB');
    post.req.end();
    expect(await lateBody).toBe('AAABBB');
  });

  it('a publisher dying mid-segment leaves subscribers with the bytes it sent, then the end', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const get = openGet(`${base}ch/0`);
    const post = openPost(`${base}ch/0`);
    post.req.write('partial');
    const res = await get.response;
    const body = readRest(res);
    post.req.destroy();
    expect(await body).toBe('partial');
    // The live edge moved on, so the publisher can continue with the next segment.
    expect((await send('GET', `${base}ch/next`)).body).toBe('1');
  });

  it('Lp-Trickle-Reset ends older segments but not the one being posted', async () => {
    const { trickle, base } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    // A publisher that hangs in the middle of segment 2.
    const hung = openPost(`${base}ch/2`);
    hung.req.write('stuck');
    const stuckReader = await openGet(`${base}ch/2`).response;
    const stuckBody = readRest(stuckReader);
    const waitingReader = openGet(`${base}ch/3`);

    const restarted = openPost(`${base}ch/3`, { 'Lp-Trickle-Reset': '1' });
    restarted.req.write('fresh');
    expect(await stuckBody).toBe('stuck');
    const fresh = await waitingReader.response;
    expect(await nextChunk(fresh)).toBe('fresh');
    restarted.req.end();
    expect((await restarted.reply).status).toBe(200);
    hung.req.destroy();
  });
});

describe('TrickleServer closing', () => {
  it('DELETE releases a waiting subscriber and a preconnected publisher with Lp-Trickle-Closed', async () => {
    const { trickle, base, seen } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    await publish(`${base}ch/0`, 'zero');
    const waitingGet = openGet(`${base}ch/1`);
    const preconnected = openPost(`${base}ch/1`);
    await expect
      .poll(() => seen)
      .toEqual(expect.arrayContaining(['GET /ai/trickle/ch/1', 'POST /ai/trickle/ch/1']));

    expect((await send('DELETE', `${base}ch`)).status).toBe(200);
    expect(trickle.hasChannel('ch')).toBe(false);

    const released = await waitingGet.response;
    expect(released.statusCode).toBe(200);
    expect(released.headers['lp-trickle-closed']).toBe('terminated');
    expect(await readRest(released)).toBe('');

    const reply = await preconnected.reply;
    expect(reply.status).toBe(200);
    expect(reply.headers['lp-trickle-closed']).toBe('terminated');
    expect(reply.headers['lp-trickle-seq']).toBe('1');
    preconnected.req.destroy();

    expect((await send('GET', `${base}ch/1`)).status).toBe(404);
  });

  it('DELETE of one segment ends it for its subscribers; a missing segment is a 400', async () => {
    const { trickle, base, seen } = await startHost();
    trickle.createChannel('ch', 'video/MP2T');
    const waiting = openGet(`${base}ch/0`);
    await expect.poll(() => seen).toContain('GET /ai/trickle/ch/0');
    expect((await send('DELETE', `${base}ch/0`)).status).toBe(200);
    const res = await waiting.response;
    expect(res.headers['lp-trickle-closed']).toBeUndefined();
    expect(await readRest(res)).toBe('');
    expect((await send('DELETE', `${base}ch/4`)).status).toBe(400);
  });

  it('closeChannel() and close() release waiting subscribers', async () => {
    const { trickle, base, seen } = await startHost();
    trickle.createChannel('a', 'video/MP2T');
    trickle.createChannel('b', 'video/MP2T');
    const waitingA = openGet(`${base}a/0`);
    const waitingB = openGet(`${base}b/0`);
    await expect
      .poll(() => seen)
      .toEqual(expect.arrayContaining(['GET /ai/trickle/a/0', 'GET /ai/trickle/b/0']));

    expect(trickle.closeChannel('a')).toBe(true);
    expect(trickle.closeChannel('a')).toBe(false);
    expect((await waitingA.response).headers['lp-trickle-closed']).toBe('terminated');
    trickle.close();
    expect((await waitingB.response).headers['lp-trickle-closed']).toBe('terminated');
    expect(trickle.hasChannel('b')).toBe(false);
  });

  it('sweeps channels that stay idle', async () => {
    const { trickle, base } = await startHost({ idleTimeoutMs: 30, sweepIntervalMs: 10 });
    trickle.createChannel('idle', 'video/MP2T');
    await expect.poll(() => trickle.hasChannel('idle'), { timeout: 5000 }).toBe(false);
    expect((await send('GET', `${base}idle/next`)).status).toBe(404);
  });
});
