// Our remote signer over real sockets, against a paying local orchestrator whose recipient checks
// every ticket: go-livepeer's routes, JSON and status codes, the state chain (nonces and credit
// carried by the blob), and what ours adds: forged, replayed and concurrent states refused, a
// lost answer recovered, a bearer token, and the payment webhook (a real HTTP server) deciding.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { getAddress, type Hex, hexToBytes, keccak256, recoverMessageAddress, stringToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/index.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { liveJobCapabilities } from '../../src/orchestrators/capabilities.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { accountIdentity } from '../../src/payments/identity.ts';
import { add, mul, type Rational, rat, sub, ZERO } from '../../src/payments/rational.ts';
import { accountSigner } from '../../src/payments/signing-pool.ts';
import { bytesToBigint, ticketEV } from '../../src/payments/ticket.ts';
import { RemoteSigner, type RemoteSignerOptions } from '../../src/signer/engine.ts';
import { MemoryLedger } from '../../src/signer/ledger.ts';
import { buildSignerApp } from '../../src/signer/server.ts';
import { decodeState, encodeState, ratString, signState } from '../../src/signer/state.ts';
import { decodeMessage, encodeMessage, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const account = privateKeyToAccount(KEY);
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
// At 1 wei per pixel one ticket pays one second of 720p30.
const EV = 27_648_000n;
const TOKEN = 'signer-test-token';

let orch: LocalOrchestrator;
const capabilities = liveJobCapabilities('passthrough');
const freshInfo = () =>
  getOrchestrator(orch.url, { identity: accountIdentity(account), timeoutMs: 5000, capabilities });

beforeAll(async () => {
  orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 1n,
    pixelsPerUnit: 1n,
    capacity: 2,
    logger,
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: EV * 4n,
      l1Block: () => 1000n,
      round: { number: 10n, blockHash: `0x${'41'.repeat(32)}` },
    },
  });
});
afterAll(async () => {
  await orch?.close();
});

interface Harness {
  base: string;
  /** The signer's wall clock (ms); tests move it. */
  clock: { now: number };
  close(): Promise<void>;
}

const running: Harness[] = [];
afterAll(async () => {
  for (const h of running) await h.close();
});

async function startSigner(
  opts: Partial<RemoteSignerOptions> & { authToken?: string } = {},
): Promise<Harness> {
  const clock = { now: Date.now() };
  const signer = new RemoteSigner({
    account,
    identity: accountIdentity(account),
    ticketSigner: accountSigner(account),
    validateOptions: async () => ({
      lastSeenL1Block: 1000n,
      maxTicketEV: 10n ** 15n,
      maxTotalEV: 10n ** 17n,
      depositMultiplier: 1,
    }),
    ceiling: PriceCeiling.none(),
    ledger: new MemoryLedger({ maxAgeMs: 3_600_000, now: () => clock.now }),
    logger,
    now: () => clock.now,
    ...opts,
  });
  await signer.start();
  const app = await buildSignerApp({
    signer,
    authToken: opts.authToken ? new Secret(opts.authToken) : undefined,
    logger,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const h: Harness = {
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    clock,
    close: () => app.close(),
  };
  running.push(h);
  return h;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

/** The body exactly as go-livepeer's gateway marshals RemotePaymentRequest (server/live_payment.go:235-241). */
function goRequest(
  info: OrchestratorInfo,
  state: { State: string | null; Sig: string | null },
  manifestId = '',
) {
  return JSON.stringify({
    state,
    orchestrator: b64(encodeMessage('OrchestratorInfo', info)),
    ManifestID: manifestId,
    inPixels: 0,
    type: 'lv2v',
    capabilities: b64(encodeMessage('Capabilities', capabilities)),
  });
}

interface Answer {
  status: number;
  body: {
    payment?: string;
    segCreds?: string;
    state?: { State: string; Sig: string };
    error?: { message: string; code: string };
  };
  headers: Headers;
}

async function post(
  h: Harness,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${h.base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

const pay = (h: Harness, body: string, headers?: Record<string, string>) =>
  post(h, '/generate-live-payment', body, headers);

const parseRat = (text: string): Rational => {
  const [n, d] = text.split('/');
  return rat(BigInt(n!), BigInt(d ?? '1'));
};
const paymentOf = (a: Answer) => decodeMessage('Payment', Buffer.from(a.body.payment!, 'base64'));
const stateOf = (a: Answer) => decodeState(Buffer.from(a.body.state!.State, 'base64'));
/** EV of one ticket of this payment (the orchestrator rounds winProb up: a bit over EV). */
const evOf = (p: ReturnType<typeof paymentOf>) =>
  ticketEV(bytesToBigint(p.ticketParams!.faceValue), bytesToBigint(p.ticketParams!.winProb));
/** The credit a state should carry: old + tickets × EV − seconds × EV (1 wei/pixel). */
const credit = (old: Rational, p: ReturnType<typeof paymentOf>, seconds: bigint) =>
  ratString(sub(add(old, mul(rat(BigInt(p.ticketSenderParams!.length)), evOf(p))), rat(EV * seconds)));

describe('remote signer: go-livepeer routes and encodings', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startSigner();
  });

  it('signs its own address for GetOrchestrator, EIP-55, over keccak256 of the address string', async () => {
    // go-livepeer's client posts no body; pygw posts {}.
    for (const body of ['', '{}']) {
      const a = await post(h, '/sign-orchestrator-info', body);
      expect(a.status).toBe(200);
      const { address, signature } = a.body as unknown as { address: string; signature: Hex };
      expect(address).toBe(getAddress(account.address));
      expect(signature).toMatch(/^0x[0-9a-f]{130}$/);
      const signer = await recoverMessageAddress({
        message: { raw: keccak256(stringToBytes(address)) },
        signature,
      });
      expect(signer).toBe(address);
    }
  });

  it("answers go-livepeer's first call, then continues nonces and credit from the state; the orchestrator takes every ticket", async () => {
    const info = await freshInfo();
    const first = await pay(h, goRequest(info, { State: null, Sig: null }));
    expect(first.status).toBe(200);
    expect(Object.keys(first.body)).toEqual(['payment', 'segCreds', 'state']);
    expect(Object.keys(first.body.state!)).toEqual(['State', 'Sig']);
    const p1 = paymentOf(first);
    // 60 s prepaid at 1 wei/pixel: 60 tickets of one second each, nonces 1..60.
    expect(p1.ticketSenderParams).toHaveLength(60);
    expect(p1.ticketSenderParams!.map((t) => t.senderNonce)).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    expect(Buffer.from(p1.sender!).toString('hex')).toBe(account.address.slice(2).toLowerCase());
    const seg = decodeMessage('SegData', Buffer.from(first.body.segCreds!, 'base64'));
    expect(new TextDecoder().decode(seg.profiles)).toBe('invalid');
    expect(seg.authToken?.sessionId).toBe(info.authToken?.sessionId);
    const s1 = stateOf(first);
    expect(s1).toMatchObject({
      sequenceNumber: 0n,
      senderNonce: 60,
      type: 'lv2v',
      balance: credit(ZERO, p1, 60n),
    });
    expect(s1.pmSessionId).toBe(
      Buffer.from(info.ticketParams!.recipientRandHash!).toString('hex').replace(/^/, '0x'),
    );
    expect((await orch.recipient!.processPayment(p1, 'signer-job-1')).credited).toBe(60);

    // 5 s later: five tickets, nonces 61..65, accepted after the first 60.
    h.clock.now += 5000;
    const second = await pay(h, goRequest(info, first.body.state!, 'signer-job-1'));
    expect(second.status).toBe(200);
    const p2 = paymentOf(second);
    expect(p2.ticketSenderParams!.map((t) => t.senderNonce)).toEqual([61, 62, 63, 64, 65]);
    expect(stateOf(second)).toMatchObject({
      sequenceNumber: 1n,
      senderNonce: 65,
      balance: credit(parseRat(s1.balance), p2, 5n),
    });
    expect((await orch.recipient!.processPayment(p2, 'signer-job-1')).credited).toBe(5);

    // Fresh info (a new recipientRandHash) restarts the nonces, the credit carries on.
    h.clock.now += 2500;
    const refreshed = await freshInfo();
    const third = await pay(h, goRequest(refreshed, second.body.state!, 'signer-job-1'));
    expect(third.status).toBe(200);
    const p3 = paymentOf(third);
    expect(p3.ticketSenderParams!.map((t) => t.senderNonce)).toEqual([1, 2, 3]);
    // 2.5 s of fee from 3 tickets: about half a ticket of credit left.
    expect(stateOf(third).balance).toBe(
      ratString(sub(add(parseRat(stateOf(second).balance), mul(rat(3n), evOf(p3))), rat((EV * 5n) / 2n))),
    );
    expect((await orch.recipient!.processPayment(paymentOf(third), 'signer-job-1')).credited).toBe(3);
  });

  it("answers livepeer-python-gateway's calls (pygw@295f2f2 remote_signer.py:203-240): no state, no ManifestID at first", async () => {
    const info = await freshInfo();
    const orchestrator = b64(encodeMessage('OrchestratorInfo', info));
    const first = await pay(h, JSON.stringify({ orchestrator, type: 'lv2v' }));
    expect(first.status).toBe(200);
    // What pygw requires of the answer: a non-empty payment, a state object, segCreds a string.
    expect(typeof first.body.payment).toBe('string');
    expect(typeof first.body.segCreds).toBe('string');
    expect(first.body.state).toBeTypeOf('object');
    h.clock.now += 5000;
    const next = await pay(
      h,
      JSON.stringify({ orchestrator, type: 'lv2v', ManifestID: 'pygw-job', state: first.body.state }),
    );
    expect(next.status).toBe(200);
    expect(paymentOf(next).ticketSenderParams!.map((t) => t.senderNonce)).toEqual([61, 62, 63, 64, 65]);
  });

  it('refuses a forged state (400 invalid sig) and an edited one', async () => {
    const info = await freshInfo();
    const first = await pay(h, goRequest(info, { State: null, Sig: null }));
    const state = Buffer.from(first.body.state!.State, 'base64');
    const edited = Buffer.from(state.toString('utf8').replace(/"SenderNonce":\d+/, '"SenderNonce":0'));
    const forged = await pay(h, goRequest(info, { State: b64(edited), Sig: first.body.state!.Sig }, 'm'));
    expect(forged.status).toBe(400);
    expect(forged.body.error?.message).toBe('invalid sig');
    // Signed by another key.
    const other = privateKeyToAccount(keccak256(stringToBytes('not the signer')));
    const foreign = await pay(
      h,
      goRequest(info, { State: b64(state), Sig: b64(await signState(other, state)) }, 'm'),
    );
    expect(foreign.status).toBe(400);
    expect(foreign.body.error?.message).toBe('invalid sig');
  });

  it('refuses a replayed state (409), gives a lost answer again until its successor is used, one call at a time', async () => {
    const info = await freshInfo();
    const s0 = await pay(h, goRequest(info, { State: null, Sig: null }));
    h.clock.now += 3000;
    const s1 = await pay(h, goRequest(info, s0.body.state!, 'job'));
    expect(s1.status).toBe(200);
    // s0 again while s1 was never used: the answer lost on the way, the same bytes.
    const again = await pay(h, goRequest(info, s0.body.state!, 'job'));
    expect(again.status).toBe(200);
    expect(again.body).toEqual(s1.body);
    // s1 used: s0 is now a replay; s1 again gets s2's answer until s2 is used.
    h.clock.now += 3000;
    const s2 = await pay(h, goRequest(info, s1.body.state!, 'job'));
    expect(s2.status).toBe(200);
    expect(s2.body).not.toEqual(s1.body);
    expect((await pay(h, goRequest(info, s1.body.state!, 'job'))).body).toEqual(s2.body);
    const replay = await pay(h, goRequest(info, s0.body.state!, 'job'));
    expect(replay.status).toBe(409);
    expect(replay.body.error).toEqual({
      code: 'STATE_REPLAYED',
      message: 'payment state already used: send the latest state this signer returned',
    });
    // Two calls with the latest state at once: one is refused, the state is not forked.
    h.clock.now += 3000;
    const both = await Promise.all([
      pay(h, goRequest(info, s2.body.state!, 'job')),
      pay(h, goRequest(info, s2.body.state!, 'job')),
    ]);
    // One goes first: the other is refused while it runs, or (when it came after) gets the same
    // answer. Never two different states.
    const [x, y] = both;
    if (x!.status === 200 && y!.status === 200) expect(x!.body).toEqual(y!.body);
    else {
      expect(both.map((a) => a.status).sort()).toEqual([200, 409]);
      expect(both.find((a) => a.status === 409)!.body.error?.code).toBe('STATE_IN_USE');
    }
    // Then s1 is a replay too.
    expect((await pay(h, goRequest(info, s1.body.state!, 'job'))).body.error?.code).toBe('STATE_REPLAYED');
  });

  it('carries a state written as go-livepeer writes it (any offset, ns, case), and refuses an unknown old one', async () => {
    const info = await freshInfo();
    const rrh = `0x${Buffer.from(info.ticketParams!.recipientRandHash!).toString('hex')}`;
    const address = `0x${Buffer.from(info.address!).toString('hex')}`;
    const lastUpdate = new Date(h.clock.now - 4000);
    // Go's time.Time in a +02:00 zone, with nanoseconds; keys in go-livepeer's order.
    const local = new Date(lastUpdate.getTime() + 2 * 3600_000).toISOString().replace('Z', '');
    const goState = `{"StateID":"6d3f0a1c","PMSessionID":"${rrh}","LastUpdate":"${local}123456+02:00","OrchestratorAddress":"${address}","App":"","AuthExpiry":0,"SenderNonce":7,"Balance":"500/1","InitialPricePerUnit":1,"InitialPixelsPerUnit":1,"Type":"lv2v","SequenceNumber":3,"AuthID":""}`;
    const bytes = new TextEncoder().encode(goState);
    const a = await pay(
      h,
      goRequest(info, { State: b64(bytes), Sig: b64(await signState(account, bytes)) }, 'go-job'),
    );
    expect(a.status).toBe(200);
    // 4 s owed, 500 wei of credit: 4 tickets, continuing from nonce 7.
    expect(paymentOf(a).ticketSenderParams!.map((t) => t.senderNonce)).toEqual([8, 9, 10, 11]);
    expect(stateOf(a)).toMatchObject({
      stateId: '6d3f0a1c',
      sequenceNumber: 4n,
      senderNonce: 11,
      balance: credit(rat(500n), paymentOf(a), 4n),
    });
    // A state of a session this signer never saw, billed two hours ago: refused.
    const old = goState
      .replace('6d3f0a1c', 'ffffffff')
      .replace(
        /"LastUpdate":"[^"]+"/,
        `"LastUpdate":"${new Date(h.clock.now - 2 * 3600_000).toISOString()}"`,
      );
    const oldBytes = new TextEncoder().encode(old);
    const refused = await pay(
      h,
      goRequest(info, { State: b64(oldBytes), Sig: b64(await signState(account, oldBytes)) }, 'x'),
    );
    expect(refused.status).toBe(409);
    expect(refused.body.error?.code).toBe('STATE_EXPIRED');
  });

  it("answers go-livepeer's status codes: 482 when the credit covers it, 480 near the auth token's end, 400 and 481", async () => {
    const info = await freshInfo();
    const first = await pay(h, goRequest(info, { State: null, Sig: null }));
    // A state with credit for hours (a session of its own): nothing to pay (482), and the
    // state stays usable.
    const rich = { ...stateOf(first), stateId: 'rich-session', balance: String(EV * 10_000n) };
    const richBytes = encodeState(rich);
    const richState = { State: b64(richBytes), Sig: b64(await signState(account, richBytes)) };
    h.clock.now += 1000;
    const none = await pay(h, goRequest(info, richState, 'job'));
    expect(none.status).toBe(482);
    expect(none.body.error?.message).toBe('no tickets');
    expect((await pay(h, goRequest(info, richState, 'job'))).status).toBe(482);

    // The auth token in its last tenth: refresh (480) with the orchestrator's URL.
    const expiring = {
      ...info,
      authToken: { ...info.authToken!, expiration: BigInt(Math.floor(h.clock.now / 1000) + 60) },
    };
    const refresh = await pay(h, goRequest(expiring, { State: null, Sig: null }));
    expect(refresh.status).toBe(480);
    expect(refresh.headers.get('livepeer-orchestrator-url')).toBe(info.transcoder);

    const bad = await Promise.all([
      pay(h, '{"orchestrator": 12'),
      pay(h, JSON.stringify({ type: 'lv2v' })),
      pay(
        h,
        JSON.stringify({
          orchestrator: b64(encodeMessage('OrchestratorInfo', { ...info, priceInfo: undefined })),
        }),
      ),
      pay(h, goRequest(info, first.body.state!, '')),
      pay(h, JSON.stringify({ orchestrator: b64(encodeMessage('OrchestratorInfo', info)), type: 'vod' })),
    ]);
    expect(bad.map((a) => a.status)).toEqual([400, 400, 400, 400, 400]);
    expect(bad.map((a) => a.body.error?.message).slice(1)).toEqual([
      'missing orchestrator',
      'missing or zero priceInfo',
      'missing manifestID',
      'invalid job type',
    ]);

    // maxPrice: a JSON number or a numeric string, in wei per 720p-pixel-second for lv2v.
    const withMax = (price: unknown, unit = '720p-pixel-seconds') =>
      JSON.stringify({
        ...JSON.parse(goRequest(info, { State: null, Sig: null })),
        maxPrice: { price, currency: 'wei', unit },
      });
    expect((await pay(h, withMax(0.5))).status).toBe(481);
    expect((await pay(h, withMax('0.5'))).body.error?.message).toBe(
      'orchestrator price 1.000 exceeds request maxPrice ceiling 0.500',
    );
    expect((await pay(h, withMax(2))).status).toBe(200);
    expect((await pay(h, withMax(2, 'seconds'))).status).toBe(400);
  });

  it('bills a type "" start by its inPixels, then lv2v calls by the time since it', async () => {
    const info = await freshInfo();
    const body = `{"orchestrator":"${b64(encodeMessage('OrchestratorInfo', info))}","ManifestID":"short","inPixels":${EV * 25n},"type":""}`;
    const start = await pay(h, body);
    expect(start.status).toBe(200);
    expect(paymentOf(start).ticketSenderParams).toHaveLength(25);
    expect(stateOf(start).type).toBe('');
    h.clock.now += 2000;
    const next = await pay(h, goRequest(info, start.body.state!, 'short'));
    expect(next.status).toBe(200);
    expect(paymentOf(next).ticketSenderParams!.map((t) => t.senderNonce)).toEqual([26, 27]);
    expect(stateOf(next).type).toBe('lv2v');
  });

  it('refuses more than 100 tickets in one call (400)', async () => {
    const info = await freshInfo();
    const body = JSON.stringify({
      orchestrator: b64(encodeMessage('OrchestratorInfo', info)),
      inPixels: String(EV * 101n),
    });
    // inPixels is an int64: a string is not one (Go refuses it too).
    expect((await pay(h, body)).status).toBe(400);
    const many = await pay(
      h,
      `{"orchestrator":"${b64(encodeMessage('OrchestratorInfo', info))}","inPixels":${EV * 101n},"type":""}`,
    );
    expect(many.status).toBe(400);
    expect(many.body.error?.message).toBe('numTickets 101 exceeds maximum of 100');
  });
});

describe('remote signer: a configured price ceiling', () => {
  it('refuses an orchestrator above -maxPricePerUnit with 481', async () => {
    const h = await startSigner({ ceiling: new PriceCeiling({ maxPricePerUnit: 1n, pixelsPerUnit: 2n }) });
    const a = await pay(h, goRequest(await freshInfo(), { State: null, Sig: null }));
    expect(a.status).toBe(481);
    expect(a.body.error?.message).toBe(
      'orchestrator price 1.000 exceeds configured maximum price ceiling 0.500',
    );
  });
});

describe('remote signer: its own auth', () => {
  it('takes a call only with the bearer token; /healthz is open', async () => {
    const h = await startSigner({ authToken: TOKEN });
    const info = await freshInfo();
    const attempts: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong' },
      { Authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const a = await pay(h, goRequest(info, { State: null, Sig: null }), headers);
      expect(a.status).toBe(401);
      expect(a.body.error?.code).toBe('UNAUTHORIZED');
      expect(a.headers.get('www-authenticate')).toBe('Bearer');
      expect((await post(h, '/sign-orchestrator-info', '', headers)).status).toBe(401);
    }
    const ok = { Authorization: `Bearer ${TOKEN}` };
    expect((await pay(h, goRequest(info, { State: null, Sig: null }), ok)).status).toBe(200);
    expect((await post(h, '/sign-orchestrator-info', '', ok)).status).toBe(200);
    expect((await fetch(`${h.base}/healthz`)).status).toBe(200);
  });
});

describe('remote signer: the payment webhook', () => {
  let hook: Server;
  let hookUrl: string;
  const calls: {
    headers: IncomingMessage['headers'];
    body: { headers: Record<string, string[]>; state: Record<string, unknown> };
  }[] = [];
  let answer: (n: number) => { http?: number; body: unknown } = () => ({ body: { status: 200 } });
  let slowMs = 0;

  beforeAll(async () => {
    hook = createServer((req, res) => {
      let data = '';
      req.on('data', (c) => {
        data += c;
      });
      req.on('end', () => {
        calls.push({ headers: req.headers, body: JSON.parse(data) });
        const a = answer(calls.length);
        setTimeout(() => {
          res.writeHead(a.http ?? 200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(a.body));
        }, slowMs);
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/authorize`;
  });
  afterAll(async () => {
    await new Promise((r) => hook.close(r));
  });
  beforeEach(() => {
    calls.length = 0;
  });

  it('is asked with the headers and the new state, allows, and is skipped until its expiry', async () => {
    const h = await startSigner({
      webhook: { url: hookUrl, headers: { Authorization: 'Bearer hook-secret' } },
    });
    answer = () => ({
      body: { status: 200, expiry: Math.floor(h.clock.now / 1000) + 10, auth_id: 'tenant-1' },
    });
    const info = await freshInfo();
    const first = await pay(h, goRequest(info, { State: null, Sig: null }), { 'X-Tenant': 'acme' });
    expect(first.status).toBe(200);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers.authorization).toBe('Bearer hook-secret');
    expect(calls[0]!.body.headers['X-Tenant']).toEqual(['acme']);
    expect(calls[0]!.body.headers['Content-Type']).toEqual(['application/json']);
    // The state as go-livepeer's webhook sees it: the new one, before it is signed.
    expect(Object.keys(calls[0]!.body.state)).toEqual([
      'StateID',
      'PMSessionID',
      'LastUpdate',
      'OrchestratorAddress',
      'App',
      'AuthExpiry',
      'SenderNonce',
      'Balance',
      'InitialPricePerUnit',
      'InitialPixelsPerUnit',
      'Type',
      'SequenceNumber',
      'AuthID',
    ]);
    expect(calls[0]!.body.state.SenderNonce).toBe(60);
    expect(stateOf(first)).toMatchObject({
      authId: 'tenant-1',
      authExpiry: BigInt(Math.floor(h.clock.now / 1000) + 10),
    });

    h.clock.now += 5000;
    const second = await pay(h, goRequest(info, first.body.state!, 'job'));
    expect(second.status).toBe(200);
    expect(calls).toHaveLength(1);
    // Past the expiry it is asked again; a different auth id is refused (500).
    h.clock.now += 6000;
    answer = () => ({ body: { status: 200, auth_id: 'tenant-2' } });
    const third = await pay(h, goRequest(info, second.body.state!, 'job'));
    expect(calls).toHaveLength(2);
    expect(third.status).toBe(500);
    expect(third.body.error?.message).toBe('Internal Server Error');
  });

  it('refuses a second call with a state while the first is under way (409 STATE_IN_USE)', async () => {
    const h = await startSigner({ webhook: { url: hookUrl, headers: {} } });
    const info = await freshInfo();
    answer = () => ({ body: { status: 200 } });
    const first = await pay(h, goRequest(info, { State: null, Sig: null }));
    h.clock.now += 2000;
    // The webhook holds the first call for a while.
    slowMs = 400;
    const running = pay(h, goRequest(info, first.body.state!, 'job'));
    await new Promise((r) => setTimeout(r, 150));
    const second = await pay(h, goRequest(info, first.body.state!, 'job'));
    slowMs = 0;
    expect(second.status).toBe(409);
    expect(second.body.error?.code).toBe('STATE_IN_USE');
    expect((await running).status).toBe(200);
  });

  it("refuses with the webhook's status and reason; its failure is a 500; its maxPrice is a ceiling", async () => {
    const h = await startSigner({ webhook: { url: hookUrl, headers: {} } });
    const info = await freshInfo();
    const first = () => pay(h, goRequest(info, { State: null, Sig: null }));
    answer = () => ({ body: { status: 403, reason: 'account out of credit' } });
    expect(await first()).toMatchObject({
      status: 403,
      body: { error: { message: 'account out of credit', code: 'PAYMENT_REFUSED' } },
    });
    answer = () => ({ body: { status: 402 } });
    expect((await first()).body.error?.message).toBe('signer auth rejected request with status 402');
    for (const a of [
      { http: 500, body: { status: 200 } },
      { body: { reason: 'no status' } },
      { body: { status: 'ok' } },
    ]) {
      answer = () => a;
      expect(await first()).toMatchObject({
        status: 500,
        body: { error: { message: 'Internal Server Error' } },
      });
    }
    answer = () => ({
      body: { status: 200, maxPrice: { price: '0.5', currency: 'wei', unit: '720p-pixel-seconds' } },
    });
    expect((await first()).status).toBe(481);
    answer = () => ({
      body: { status: 200, maxPrice: { price: 5, currency: 'usd', unit: '720p-pixel-seconds' } },
    });
    expect((await first()).status).toBe(502);
    // A refused call returns no state: the session never started, nothing was kept.
    answer = () => ({ body: { status: 200 } });
    expect((await first()).status).toBe(200);
  });
});

describe('remote signer: the state bytes', () => {
  it('are what go-livepeer json.Marshal writes, and read back', async () => {
    const st = {
      stateId: 'a<b>&c',
      pmSessionId: '0xabc',
      lastUpdateMs: Date.UTC(2026, 3, 7, 20, 0, 0, 120),
      orchestratorAddress: '0x00000000000000000000000000000000000000aa' as Hex,
      app: '',
      authExpiry: 0n,
      senderNonce: 7,
      balance: '500',
      initialPricePerUnit: 9_223_372_036_854_775_807n,
      initialPixelsPerUnit: 1n,
      type: 'lv2v',
      sequenceNumber: 3n,
      authId: 'auth-456',
    };
    const text = new TextDecoder().decode(encodeState(st));
    expect(text).toBe(
      '{"StateID":"a\\u003cb\\u003e\\u0026c","PMSessionID":"0xabc","LastUpdate":"2026-04-07T20:00:00.12Z",' +
        '"OrchestratorAddress":"0x00000000000000000000000000000000000000aa","App":"","AuthExpiry":0,"SenderNonce":7,' +
        '"Balance":"500","InitialPricePerUnit":9223372036854775807,"InitialPixelsPerUnit":1,"Type":"lv2v",' +
        '"SequenceNumber":3,"AuthID":"auth-456"}',
    );
    expect(decodeState(encodeState(st))).toEqual(st);
    // Go's zero time (a state that was never billed) reads as no time at all.
    expect(
      decodeState(
        hexToBytes(
          `0x${Buffer.from(text.replace(/"LastUpdate":"[^"]+"/, '"LastUpdate":"0001-01-01T00:00:00Z"')).toString('hex')}`,
        ),
      ).lastUpdateMs,
    ).toBeUndefined();
  });
});
