// The gateway's segment transcoder against small orchestrators on 127.0.0.1 that answer as
// go-livepeer's ServeSegment does (200 first, TranscodeResult later), with a recording pool:
// what gets scored, who gets suspended, what a payment the gateway cannot make does, where
// renditions may be downloaded from, and what the credit ledger keeps.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BatchError } from '../../src/batch/errors.ts';
import { parsePresetNames, resolveFormats } from '../../src/batch/profiles.ts';
import { type TranscodePool, Transcoder } from '../../src/batch/transcode.ts';
import { blameOf } from '../../src/live/cause.ts';
import { LivePayments } from '../../src/live/live-payer.ts';
import type { JobKind } from '../../src/orchestrators/capabilities.ts';
import { NoOrchestratorError, type SelectedOrchestrator } from '../../src/orchestrators/select.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { type Rational, rat, ZERO } from '../../src/payments/rational.ts';
import { type Balance, Balances, TicketParamsError } from '../../src/payments/sender.ts';
import { Capability, decodeMessage, encodeMessage, type OrchestratorInfo } from '../../src/wire/lp-rpc.ts';

const logger = pino({ level: 'silent' });
const PROFILES = resolveFormats(parsePresetNames('P240p30fps16x9,P360p30fps16x9'), 'mpegts');
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

interface FakeOrchestrator {
  url: string;
  /** GETs of rendition files it served. */
  downloads: number;
  segments: number;
}

type Behaviour = (
  req: IncomingMessage,
  res: ServerResponse,
  o: FakeOrchestrator & { result: (host?: string) => Buffer },
) => void | Promise<void>;

/** An orchestrator whose POST /segment does `behaviour`; it serves its renditions at /r/{n}. */
async function orchestrator(behaviour: Behaviour): Promise<FakeOrchestrator> {
  const state = { url: '', downloads: 0, segments: 0 };
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      state.downloads++;
      res.writeHead(200, { 'Content-Type': 'video/mp2t' }).end(Buffer.alloc(188, 0x47));
      return;
    }
    state.segments++;
    req.resume();
    req.on('end', () => {
      const result = (host = '127.0.0.1') => {
        const base = state.url.replace('127.0.0.1', host);
        return Buffer.from(
          encodeMessage('TranscodeResult', {
            seq: 0n,
            data: { segments: PROFILES.map((_, i) => ({ url: `${base}/r/${i}`, pixels: 1000n })) },
          }),
        );
      };
      void behaviour(req, res, Object.assign(state, { result }));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const answers: Behaviour = (_req, res, o) => {
  res.writeHead(200).end(o.result());
};

function info(url: string, sessionId: string, paid = false): OrchestratorInfo {
  return {
    transcoder: url,
    authToken: {
      token: new Uint8Array([1]),
      sessionId,
      expiration: BigInt(Math.floor(Date.now() / 1000) + 3600),
    },
    ...(paid ? { priceInfo: { pricePerUnit: 1n, pixelsPerUnit: 1n }, ticketParams: {} } : {}),
  };
}

/** Hands out the orchestrators in order, skipping excluded ones; records what the transcoder says. */
class RecordingPool implements TranscodePool {
  latencies: { url: string; ms: number; capability?: number }[] = [];
  suspended: { url: string; reason: string }[] = [];
  constructor(private readonly orchestrators: SelectedOrchestrator[]) {}
  async select(_kind: JobKind, opts: { exclude?: ReadonlySet<string> }) {
    const next = this.orchestrators.find((o) => !opts.exclude?.has(o.url));
    if (!next) {
      throw new NoOrchestratorError(
        '',
        this.orchestrators.map((o) => `${o.url}: excluded (tried)`),
        'H264',
      );
    }
    return next;
  }
  suspend(url: string, reason: string) {
    this.suspended.push({ url, reason });
  }
  renewed: string[] = [];
  /** What renewAnswer answers; absent: it fails as an unreachable orchestrator. */
  fresh?: (url: string) => OrchestratorInfo;
  async renewAnswer(url: string): Promise<OrchestratorInfo> {
    this.renewed.push(url);
    if (!this.fresh) throw new Error('unreachable: GetOrchestrator failed (connection refused)');
    return this.fresh(url);
  }
  reportSuccess() {}
  observeLatency(url: string, ms: number, capability?: number) {
    this.latencies.push({ url, ms, capability });
  }
}

/**
 * On-chain payments in the shape the transcoder uses: each sender takes credit from the balance
 * as TicketSender does, or refuses with `refusal(url)`.
 */
function payments(refusal: (url: string, info: OrchestratorInfo) => TicketParamsError | undefined) {
  const calls: string[] = [];
  const fake = {
    identity: offchainIdentity,
    validateOptions: async () => ({}),
    // The real refresh-and-retry around these fake senders.
    payFresh: LivePayments.prototype.payFresh,
    refreshing: new Map(),
    senderFor: (url: string, info: OrchestratorInfo) => ({
      createPayment: async (fee: Rational, opts: { balance: Balance }) => {
        calls.push(url);
        const refused = refusal(url, info);
        if (refused) throw refused;
        const staged = opts.balance.stageUpdate(fee, rat(1_000_000n));
        return {
          header: 'tickets',
          ev: staged.newCredit,
          update: { ...staged, debit: ZERO, status: 'staged' as const },
        };
      },
    }),
  };
  return { payments: fake as unknown as LivePayments, calls };
}

function transcoder(pool: TranscodePool, extra: Partial<ConstructorParameters<typeof Transcoder>[0]> = {}) {
  return new Transcoder({
    pool,
    identity: offchainIdentity,
    maxAttempts: 3,
    maxRenditionBytes: 1 << 20,
    logger,
    // The test segments are not video: the decode check of a failed one says "decodes".
    inputCheck: async () => undefined,
    ...extra,
  });
}

const segment = (seq = 0n, manifestId = 'm') => ({
  manifestId,
  seq,
  data: Buffer.alloc(188 * 4, 0x47),
  durationMs: 2000,
  profiles: PROFILES,
});

describe('orchestrator latency score', () => {
  it('is taken after the TranscodeResult, so it includes the transcoding after the early 200', async () => {
    // As go-livepeer's ServeSegment: the 200 goes out at once, the result after the work.
    const slow = await orchestrator((_req, res, o) => {
      res.writeHead(200);
      res.flushHeaders();
      setTimeout(() => res.end(o.result()), 400);
    });
    const pool = new RecordingPool([{ url: slow.url, info: info(slow.url, 's1') }]);
    await transcoder(pool).transcode(segment());
    expect(pool.latencies).toHaveLength(1);
    expect(pool.latencies[0]!.url).toBe(slow.url);
    expect(pool.latencies[0]!.ms).toBeGreaterThanOrEqual(380);
    expect(pool.latencies[0]!.capability).toBe(Capability.H264);
  });

  it('is not taken for a 500 or a failed TranscodeResult', async () => {
    const failing = await orchestrator((_req, res) => {
      res.writeHead(500).end('failed to transcode');
    });
    const erroring = await orchestrator((_req, res) => {
      res.writeHead(200).end(Buffer.from(encodeMessage('TranscodeResult', { seq: 0n, error: 'out of GPU' })));
    });
    const working = await orchestrator(answers);
    const pool = new RecordingPool(
      [failing, erroring, working].map((o, i) => ({ url: o.url, info: info(o.url, `s${i}`) })),
    );
    const outcome = await transcoder(pool).transcode(segment());
    expect(outcome.orchestrator).toBe(working.url);
    expect(outcome.tries).toBe(3);
    expect(pool.latencies.map((l) => l.url)).toEqual([working.url]);
  });
});

describe('a segment that does not decode', () => {
  it("is the client's: 422, nobody suspended, no other orchestrator tried", async () => {
    const erroring = await orchestrator((_req, res) => {
      res
        .writeHead(200)
        .end(Buffer.from(encodeMessage('TranscodeResult', { seq: 0n, error: 'Conversion failed!' })));
    });
    const working = await orchestrator(answers);
    const pool = new RecordingPool(
      [erroring, working].map((o, i) => ({ url: o.url, info: info(o.url, `s${i}`) })),
    );
    const checked: number[] = [];
    const t = transcoder(pool, {
      inputCheck: async (data: Uint8Array) => {
        checked.push(data.length);
        return 'Invalid NAL unit size';
      },
    });
    const err = await t.transcode(segment()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchError);
    expect((err as BatchError).status).toBe(422);
    expect((err as BatchError).code).toBe('UNDECODABLE_SEGMENT');
    expect(blameOf(err, 'orchestrator')).toBe('client');
    expect(pool.suspended).toEqual([]);
    expect(checked).toHaveLength(1);
  });

  it('one that decodes here failed on the orchestrator: suspended, the next one tried', async () => {
    const erroring = await orchestrator((_req, res) => {
      res
        .writeHead(200)
        .end(Buffer.from(encodeMessage('TranscodeResult', { seq: 0n, error: 'Conversion failed!' })));
    });
    const working = await orchestrator(answers);
    const pool = new RecordingPool(
      [erroring, working].map((o, i) => ({ url: o.url, info: info(o.url, `s${i}`) })),
    );
    const outcome = await transcoder(pool).transcode(segment());
    expect(outcome.orchestrator).toBe(working.url);
    expect(pool.suspended.map((s) => s.url)).toEqual([erroring.url]);
  });
});

describe('a payment the gateway cannot make', () => {
  it('suspends nobody and is not a try: the next orchestrator is paid and transcodes', async () => {
    const [pricey, fine] = [await orchestrator(answers), await orchestrator(answers)];
    const { payments: pay, calls } = payments((url) =>
      url === pricey.url ? new TicketParamsError('ev-too-high', 'ticket EV 5 > max ticket EV 1') : undefined,
    );
    const pool = new RecordingPool([
      { url: pricey.url, info: info(pricey.url, 'a', true) },
      { url: fine.url, info: info(fine.url, 'b', true) },
    ]);
    const outcome = await transcoder(pool, { payments: pay }).transcode(segment());
    expect(outcome.orchestrator).toBe(fine.url);
    expect(outcome.tries).toBe(1);
    expect(calls).toEqual([pricey.url, fine.url]);
    expect(pool.suspended).toEqual([]);
    expect(pricey.segments).toBe(0);
  });

  it('without a deposit answers 503 CANNOT_PAY at once, asking no further orchestrator', async () => {
    const [first, second] = [await orchestrator(answers), await orchestrator(answers)];
    const { payments: pay, calls } = payments(() => new TicketParamsError('no-deposit', 'no sender deposit'));
    const pool = new RecordingPool([
      { url: first.url, info: info(first.url, 'a', true) },
      { url: second.url, info: info(second.url, 'b', true) },
    ]);
    const err = await transcoder(pool, { payments: pay })
      .transcode(segment())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchError);
    const e = err as BatchError;
    expect([e.status, e.code]).toEqual([503, 'CANNOT_PAY']);
    expect(e.message).toContain('no sender deposit');
    expect(calls).toEqual([first.url]);
    expect(pool.suspended).toEqual([]);
    expect(first.segments + second.segments).toBe(0);
  });
});

describe('ticket params used up (600 nonces) or expired', () => {
  const usedUp = (_url: string, i: OrchestratorInfo) =>
    i.authToken?.sessionId === 'old'
      ? new TicketParamsError('nonces-exhausted', 'ticket params already used for 600 of 600 tickets')
      : undefined;

  it('are refreshed from the same orchestrator, which transcodes with the fresh auth token: no suspension, one try', async () => {
    const tokens: string[] = [];
    const o = await orchestrator((req, res, state) => {
      const seg = decodeMessage('SegData', Buffer.from(String(req.headers['livepeer-segment']), 'base64'));
      tokens.push(seg.authToken?.sessionId ?? '');
      res.writeHead(200).end(state.result());
    });
    const { payments: pay, calls } = payments(usedUp);
    const pool = new RecordingPool([{ url: o.url, info: info(o.url, 'old', true) }]);
    pool.fresh = (url) => info(url, 'fresh', true);
    const t = transcoder(pool, { payments: pay });
    const outcome = await t.transcode(segment());
    expect(outcome.orchestrator).toBe(o.url);
    expect(outcome.tries).toBe(1);
    expect(pool.renewed).toEqual([o.url]);
    expect(calls).toEqual([o.url, o.url]);
    expect(tokens).toEqual(['fresh']);
    expect(pool.suspended).toEqual([]);
    // The stream keeps the refreshed session for its next segment.
    await t.transcode(segment(1n));
    expect(pool.renewed).toEqual([o.url]);
    expect(tokens).toEqual(['fresh', 'fresh']);
  });

  it('when the refresh fails, that orchestrator failed the try (suspended) and the next one is asked', async () => {
    const [stale, other] = [await orchestrator(answers), await orchestrator(answers)];
    const { payments: pay } = payments(usedUp);
    const pool = new RecordingPool([
      { url: stale.url, info: info(stale.url, 'old', true) },
      { url: other.url, info: info(other.url, 'b', true) },
    ]);
    const outcome = await transcoder(pool, { payments: pay }).transcode(segment());
    expect(outcome.orchestrator).toBe(other.url);
    expect(pool.renewed).toEqual([stale.url]);
    expect(pool.suspended.map((s) => s.url)).toEqual([stale.url]);
    expect(pool.suspended[0]!.reason).toContain('ticket params used up, and GetOrchestrator failed');
    expect(stale.segments).toBe(0);
  });
});

describe('rendition URLs', () => {
  it("are only downloaded from the orchestrator's own host; another host is its failure", async () => {
    // Same port, other host name: what a hostile or broken orchestrator could point at.
    const elsewhere = await orchestrator((_req, res, o) => {
      res.writeHead(200).end(o.result('localhost'));
    });
    const working = await orchestrator(answers);
    const pool = new RecordingPool([
      { url: elsewhere.url, info: info(elsewhere.url, 'a') },
      { url: working.url, info: info(working.url, 'b') },
    ]);
    const outcome = await transcoder(pool).transcode(segment());
    expect(outcome.orchestrator).toBe(working.url);
    expect(outcome.tries).toBe(2);
    expect(elsewhere.downloads).toBe(0);
    expect(pool.suspended).toHaveLength(1);
    expect(pool.suspended[0]!.url).toBe(elsewhere.url);
    expect(pool.suspended[0]!.reason).toMatch(
      /localhost.*not on the orchestrator's host 127\.0\.0\.1: refused/,
    );
  });

  it('a 500 naming the reasons when every orchestrator points elsewhere', async () => {
    const elsewhere = await orchestrator((_req, res, o) => {
      res.writeHead(200).end(o.result('localhost'));
    });
    const pool = new RecordingPool([{ url: elsewhere.url, info: info(elsewhere.url, 'a') }]);
    const e = (await transcoder(pool)
      .transcode(segment())
      .catch((x: unknown) => x)) as BatchError;
    expect([e.status, e.code]).toEqual([500, 'TRANSCODE_FAILED']);
    expect(e.details?.reasons).toEqual([expect.stringContaining("not on the orchestrator's host")]);
  });
});

describe('the credit ledger', () => {
  it('drops a session’s credit when the stream leaves that orchestrator or ends', async () => {
    let failNext = false;
    const first = await orchestrator((_req, res, o) => {
      if (failNext) res.writeHead(500).end('gone');
      else res.writeHead(200).end(o.result());
    });
    const second = await orchestrator(answers);
    const balances = new Balances();
    const { payments: pay } = payments(() => undefined);
    const pool = new RecordingPool([
      { url: first.url, info: info(first.url, 'first-session', true) },
      { url: second.url, info: info(second.url, 'second-session', true) },
    ]);
    const t = transcoder(pool, { payments: pay, balances });
    await t.transcode(segment(0n));
    // Tickets bought credit for the estimate; the 2000 output pixels were charged from it.
    expect(balances.get(first.url, 'first-session')).toBeDefined();
    failNext = true;
    const outcome = await t.transcode(segment(1n));
    expect(outcome.orchestrator).toBe(second.url);
    expect(balances.get(first.url, 'first-session')).toBeUndefined();
    expect(balances.get(second.url, 'second-session')).toBeDefined();
    t.endStream('m');
    expect(balances.get(second.url, 'second-session')).toBeUndefined();
  });
});

describe('encoded sizes', () => {
  it('follow Content-Resolution with the aspect ratio kept, or the profile without it', async () => {
    const o = await orchestrator(answers);
    const pool = new RecordingPool([{ url: o.url, info: info(o.url, 'a') }]);
    const t = transcoder(pool);
    const fourThree = await t.transcode({ ...segment(), resolution: { width: 640, height: 480 } });
    expect(fourThree.renditions.map((r) => `${r.width}x${r.height}`)).toEqual(['426x320', '640x480']);
    const unknown = await t.transcode(segment(1n));
    expect(unknown.renditions.map((r) => `${r.width}x${r.height}`)).toEqual(['426x240', '640x360']);
  });
});
