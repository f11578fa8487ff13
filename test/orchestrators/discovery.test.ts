// go-livepeer's webhook answer ([{"address": ..., "score": ...}]) and the sources.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseWebhookAnswer, StaticSource, WebhookSource } from '../../src/orchestrators/discovery.ts';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

describe('webhook answer', () => {
  it('takes go-livepeer entries, normalising addresses; skips empty and bad ones', () => {
    const { orchestrators, skipped } = parseWebhookAnswer(
      JSON.stringify([
        { address: 'https://o1.example:8935', score: 1 },
        { address: 'o2.example:9000' },
        { address: 'https://o1.example:8935' },
        { address: '' },
        { address: 'ftp://o3.example:1' },
        { score: 0.5 },
      ]),
    );
    expect(orchestrators).toEqual([{ url: 'https://o1.example:8935' }, { url: 'https://o2.example:9000' }]);
    expect(skipped).toHaveLength(3);
    expect(skipped.join('\n')).toContain('"ftp://o3.example:1" must use https://');
    expect(parseWebhookAnswer('[]').orchestrators).toEqual([]);
  });

  it('refuses what is not such an array, with the reason', () => {
    expect(() => parseWebhookAnswer('<html>')).toThrow(/not JSON/);
    expect(() => parseWebhookAnswer('{"address":"https://o:1"}')).toThrow(/must be a JSON array/);
    expect(() => parseWebhookAnswer('["https://o:1"]')).toThrow(/entry 0 must be an object/);
    expect(() => parseWebhookAnswer('[{"address": 5}]')).toThrow(/"address" must be a string/);
    expect(() => parseWebhookAnswer('[{"address": "o:1", "score": "high"}]')).toThrow(
      /"score" must be a number/,
    );
    expect(() => parseWebhookAnswer('[{"address": "not a url"}]')).toThrow(/no usable orchestrator address/);
  });
});

describe('sources', () => {
  it('a static list is normalised', async () => {
    expect(await new StaticSource(['o:1', 'https://p.example']).discover()).toEqual([
      { url: 'https://o:1' },
      { url: 'https://p.example:443' },
    ]);
  });

  it('the webhook is fetched with GET and refused on non-2xx, timeouts and bad bodies', async () => {
    let reply: { status: number; body: string; delayMs?: number } = {
      status: 200,
      body: '[{"address":"o:1"}]',
    };
    const methods: string[] = [];
    const server = http.createServer((req, res) => {
      methods.push(req.method ?? '');
      setTimeout(
        () => res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body),
        reply.delayMs ?? 0,
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const source = new WebhookSource({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/orchestrators`,
      refreshIntervalMs: 60_000,
      timeoutMs: 300,
      logger: pino({ level: 'silent' }),
    });
    expect(await source.discover()).toEqual([{ url: 'https://o:1' }]);
    expect(methods).toEqual(['GET']);
    reply = { status: 500, body: 'database down' };
    await expect(source.discover()).rejects.toThrow('webhook answered HTTP 500: database down');
    reply = { status: 200, body: 'junk' };
    await expect(source.discover()).rejects.toThrow(/not JSON/);
    reply = { status: 200, body: '[]', delayMs: 1000 };
    await expect(source.discover()).rejects.toThrow('no answer within 300 ms');
    server.closeAllConnections();
  });
});
