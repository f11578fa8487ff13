// The gateway's side against a signer that answers exactly as go-livepeer's does (canned replies in
// its format, go-livepeer@176aa41 server/remote_signer.go:765-773, handlers.go:1717-1738): the
// request bytes it sends, the state carried verbatim, 480 (refresh, at most 3 times), 481, 482,
// errors, and a payment that got lost on the way sent again as it was.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failureOf } from '../../src/live/cause.ts';
import { RemoteSignerPayments } from '../../src/live/remote-payments.ts';
import { liveJobCapabilities } from '../../src/orchestrators/capabilities.ts';
import { RemoteSignerClient, RemoteSignerError } from '../../src/signer/client.ts';
import { encodeMessage, type OrchestratorInfo, type Payment } from '../../src/wire/lp-rpc.ts';

const logger = pino({ level: 'silent' });
const ADDRESS = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';
const SIG = `0x${'11'.repeat(64)}1b`;
const capabilities = liveJobCapabilities('passthrough');
// Once: infos made at different instants must encode the same.
const EXPIRATION = BigInt(Math.floor(Date.now() / 1000) + 1800);
const info = (seed: number): OrchestratorInfo => ({
  transcoder: 'https://127.0.0.1:9999',
  address: Buffer.from('73aed7b5deb30222fa896f399d46cc99c7bee57f', 'hex'),
  priceInfo: { pricePerUnit: 1n, pixelsPerUnit: 1n },
  ticketParams: { recipientRandHash: new Uint8Array(32).fill(seed), recipient: new Uint8Array(20).fill(7) },
  authToken: {
    token: new Uint8Array([1]),
    sessionId: 'sess',
    expiration: EXPIRATION,
  },
});
const payment = (tickets: number): string =>
  Buffer.from(
    encodeMessage('Payment', {
      sender: Buffer.from(ADDRESS.slice(2), 'hex'),
      ticketParams: { faceValue: new Uint8Array([0x10]), winProb: new Uint8Array(32).fill(0xff) },
      ticketSenderParams: Array.from({ length: tickets }, (_, i) => ({
        senderNonce: i + 1,
        sig: new Uint8Array(65),
      })),
    } satisfies Payment),
  ).toString('base64');

type Canned = { status: number; body: string; headers?: Record<string, string> };
let server: Server;
let base: string;
const seen: { url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let queue: Canned[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ url: req.url!, headers: req.headers, body });
      const next = queue.shift() ?? { status: 500, body: '{"error":{"message":"Internal Server Error"}}\n' };
      res.writeHead(next.status, { 'Content-Type': 'application/json', ...next.headers });
      res.end(next.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  seen.length = 0;
  queue = [];
});

// go-livepeer's reply: json.Encoder, so a newline; the state's bytes as standard base64.
const goOk = (tickets: number, state: string) => ({
  status: 200,
  body: `{"payment":"${payment(tickets)}","segCreds":"c2VnLWNyZWRz","state":{"State":"${Buffer.from(state).toString('base64')}","Sig":"${Buffer.from(`sig-of-${state}`).toString('base64')}"}}\n`,
});
const goErr = (status: number, message: string, headers?: Record<string, string>) => ({
  status,
  body: `{"error":{"message":"${message}"}}\n`,
  headers,
});

async function backend() {
  const client = new RemoteSignerClient({
    url: `${base}/ignored/path`,
    headers: { Authorization: 'Bearer t' },
  });
  queue.push({ status: 200, body: `{"address":"${ADDRESS.toLowerCase()}","signature":"${SIG}"}\n` });
  return RemoteSignerPayments.connect({ client, intervalMs: 1000, logger });
}

describe('the gateway against a go-livepeer signer', () => {
  it("asks who pays at start: go-livepeer's answer, every route at the signer's root, our headers on each call", async () => {
    const b = await backend();
    expect(b.identity.address).toBe(ADDRESS);
    expect(Buffer.from(await b.identity.signOrchestratorRequest()).toString('hex')).toBe(SIG.slice(2));
    // It signs nothing itself.
    expect(await b.identity.signHashOf(new Uint8Array([1]))).toHaveLength(0);
    expect(seen[0]).toMatchObject({ url: '/sign-orchestrator-info', body: '' });
    expect(seen[0]!.headers.authorization).toBe('Bearer t');
    expect(seen[0]!.headers['content-type']).toBe('application/json');
  });

  it("sends go-livepeer's request body, carries the state verbatim, and counts the tickets", async () => {
    const b = await backend();
    seen.length = 0;
    const job = b.openJob('https://127.0.0.1:9999', info(1), { capabilities });
    queue.push(goOk(60, '{"StateID":"a"}'));
    const start = await job.start({ pixels: 1n, full: true, manifestId: 'req-1' });
    expect(start).toMatchObject({ tickets: 60, segment: 'c2VnLWNyZWRz', payment: payment(60) });
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    // Byte for byte the layout of go-livepeer's RemotePaymentRequest (live_payment.go:235-241).
    expect(seen[0]!.body).toBe(
      `{"state":{"State":null,"Sig":null},"orchestrator":"${b64(encodeMessage('OrchestratorInfo', info(1)))}",` +
        `"ManifestID":"req-1","inPixels":0,"type":"lv2v","capabilities":"${b64(encodeMessage('Capabilities', capabilities))}"}`,
    );
    expect(seen[0]!.url).toBe('/generate-live-payment');

    queue.push(goOk(5, '{"StateID":"a","SequenceNumber":1}'));
    const next = await job.pay({ num: 0n, den: 1n }, 'mid-1');
    expect(next?.tickets).toBe(5);
    const sent = JSON.parse(seen[1]!.body);
    expect(sent.state).toEqual({
      State: Buffer.from('{"StateID":"a"}').toString('base64'),
      Sig: Buffer.from('sig-of-{"StateID":"a"}').toString('base64'),
    });
    expect(sent).toMatchObject({ ManifestID: 'mid-1', type: 'lv2v', inPixels: 0 });

    // A shorter start (a retry on the same orchestrator) bills exactly its pixels: type "".
    const retry = b.openJob('https://127.0.0.1:9999', info(2), { capabilities });
    queue.push(goOk(25, '{"StateID":"b"}'));
    await retry.start({ pixels: 691_200_000n, full: false, manifestId: 'req-2' });
    expect(JSON.parse(seen[2]!.body)).toMatchObject({
      type: '',
      inPixels: 691_200_000,
      state: { State: null, Sig: null },
    });
  });

  it('refreshes on 480 and retries with the fresh info, at most 3 times; 482 is nothing to pay', async () => {
    const b = await backend();
    let refreshes = 0;
    const job = b.openJob('https://127.0.0.1:9999', info(1), {
      capabilities,
      refresh: async () => info(10 + ++refreshes),
    });
    const refresh = goErr(480, 'refresh session for remote signer', {
      'Livepeer-Orchestrator-URL': 'https://127.0.0.1:9999',
    });
    queue.push(refresh, goOk(60, 's1'));
    seen.length = 0;
    await job.start({ pixels: 1n, full: true, manifestId: 'r' });
    expect(refreshes).toBe(1);
    const sentInfo = JSON.parse(seen[1]!.body).orchestrator;
    expect(sentInfo).toBe(
      Buffer.from(encodeMessage('OrchestratorInfo', { ...info(1), ...info(11) })).toString('base64'),
    );

    queue.push(goErr(482, 'no tickets'));
    expect(await job.pay({ num: 0n, den: 1n }, 'm')).toBeNull();

    queue.push(refresh, refresh, refresh, refresh);
    const err = await job.pay({ num: 0n, den: 1n }, 'm').catch((e) => e);
    expect(err).toBeInstanceOf(RemoteSignerError);
    expect(err.message).toBe('remote signer asked for 4 session refreshes in a row');
    expect(refreshes).toBe(4);
  });

  it("reads go-livepeer's errors: the message, and who is to blame", async () => {
    const b = await backend();
    const job = b.openJob('https://127.0.0.1:9999', info(1), { capabilities });
    queue.push(goErr(481, 'orchestrator price 2.000 exceeds configured maximum price ceiling 1.000'));
    const price = await job.start({ pixels: 1n, full: true, manifestId: 'r' }).catch((e) => e);
    expect(price).toMatchObject({ status: 481, blame: 'orchestrator', transient: false });
    expect(failureOf(price, 'payment', { fallback: 'network' })).toMatchObject({
      blame: 'orchestrator',
      message:
        'remote signer answered 481: orchestrator price 2.000 exceeds configured maximum price ceiling 1.000',
    });
    queue.push(goErr(500, 'Internal Server Error'));
    expect(await job.start({ pixels: 1n, full: true, manifestId: 'r' }).catch((e) => e)).toMatchObject({
      status: 500,
      blame: 'gateway',
      transient: false,
    });
    // A start has no skip path: 482 there is a failure.
    queue.push(goErr(482, 'no tickets'));
    expect((await job.start({ pixels: 1n, full: true, manifestId: 'r' }).catch((e) => e)).message).toMatch(
      /482/,
    );
    // The signer gone: transient, our side.
    const gone = new RemoteSignerClient({ url: 'http://127.0.0.1:1' });
    expect(await gone.orchestratorInfo().catch((e) => e)).toMatchObject({
      kind: 'unreachable',
      transient: true,
      blame: 'gateway',
    });
  });

  it('sends a payment that may not have arrived again as it was, before asking the signer for more', async () => {
    const b = await backend();
    const job = b.openJob('https://127.0.0.1:9999', info(1), { capabilities });
    queue.push(goOk(60, 's1'), goOk(3, 's2'));
    await job.start({ pixels: 1n, full: true, manifestId: 'r' });
    const lost = await job.pay({ num: 0n, den: 1n }, 'm');
    lost!.settle('lost');
    seen.length = 0;
    const again = await job.pay({ num: 0n, den: 1n }, 'm');
    expect(seen).toHaveLength(0);
    expect(again).toMatchObject({ payment: lost!.payment, segment: lost!.segment, tickets: 3 });
    // A refused one is not sent again.
    again!.settle('refused');
    queue.push(goOk(4, 's3'));
    expect((await job.pay({ num: 0n, den: 1n }, 'm'))?.tickets).toBe(4);
    expect(JSON.parse(seen[0]!.body).state.State).toBe(Buffer.from('s2').toString('base64'));
  });
});
