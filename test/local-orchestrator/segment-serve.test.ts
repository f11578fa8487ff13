// The local orchestrator's POST /segment as a go-livepeer gateway sees it: credentials with
// go-livepeer's status codes, the signature over the profiles, payments credited and the output
// pixels debited, a TranscodeResult whose URLs it serves, transcode errors in the result, faults.
// Real sockets, real ffmpeg, real tickets (public Hardhat test key #0).
import { execFile } from 'node:child_process';
import { request } from 'node:https';
import { promisify } from 'node:util';
import pino from 'pino';
import { type Hex, keccak256 } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseJsonProfiles,
  parsePresetNames,
  profilesHex,
  resolveFormats,
  segDataProfiles,
  type TranscodeProfile,
} from '../../src/batch/profiles.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { flattenSegment } from '../../src/payments/credentials.ts';
import { accountIdentity, type GatewayIdentity, offchainIdentity } from '../../src/payments/identity.ts';
import { compare, mul, rat, sub } from '../../src/payments/rational.ts';
import { TicketSender } from '../../src/payments/sender.ts';
import {
  Capability,
  capabilityBitstring,
  decodeMessage,
  encodeMessage,
  type OrchestratorInfo,
  type SegData,
} from '../../src/wire/lp-rpc.ts';
import { makeTsSegment } from '../helpers/media.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
const TEST_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const RECIPIENT: Hex = '0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F';
const BLOCK_HASH: Hex = '0x41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d';
const EV = 1_000_000n;
const account = privateKeyToAccount(TEST_KEY);
const identity = accountIdentity(account);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const TWO_PROFILES = resolveFormats(parsePresetNames('P240p30fps16x9,P360p30fps16x9'), 'mpegts');
/** Capabilities a gateway asks for: auth token, segment slicing, H.264 in and out, MPEG-TS out. */
const CAPS = capabilityBitstring([Capability.H264, Capability.MPEGTS, Capability.AuthToken, 26]);

let dir: Workdir;
let segment: Buffer;
let free: LocalOrchestrator;
let paid: LocalOrchestrator;
let failing: LocalOrchestrator;

beforeAll(async () => {
  dir = await makeWorkdir();
  segment = await makeTsSegment({ seconds: 2 });
  const base = {
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
  };
  free = await LocalOrchestrator.start({ ...base, pricePerUnit: 0n });
  failing = await LocalOrchestrator.start({ ...base, pricePerUnit: 0n, fault: 'fail-start' });
  paid = await LocalOrchestrator.start({
    ...base,
    pricePerUnit: 1n,
    payments: {
      recipient: RECIPIENT,
      ticketEV: EV,
      faceValue: 4n * EV,
      l1Block: () => 1000n,
      round: { number: 10n, blockHash: BLOCK_HASH },
      accountingIntervalMs: 60_000,
    },
  });
});
afterAll(async () => {
  await Promise.all([free?.close(), paid?.close(), failing?.close()]);
  await dir.remove();
});

type Reply = { status: number; body: Buffer };
function postSegment(orch: LocalOrchestrator, body: Buffer, headers: Record<string, string>) {
  return new Promise<Reply>((resolve, reject) => {
    const req = request(
      `${orch.url}/segment`,
      { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'video/MP2T', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function get(url: string) {
  return new Promise<Reply & { type: string }>((resolve, reject) => {
    request(url, { rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks),
          type: String(res.headers['content-type']),
        }),
      );
    })
      .on('error', reject)
      .end();
  });
}

interface SegOptions {
  who?: GatewayIdentity;
  profiles?: TranscodeProfile[];
  /** Sign without the profiles' hex, as an AI job's credentials are signed. */
  signWithoutProfiles?: boolean;
  capabilities?: bigint[];
  hashOf?: Buffer;
  seq?: bigint;
}

/** Livepeer-Segment as go-livepeer's genSegCreds builds it, by hand. */
async function segmentHeader(info: OrchestratorInfo, body: Buffer, o: SegOptions = {}): Promise<string> {
  const profiles = o.profiles ?? TWO_PROFILES;
  const seq = o.seq ?? 3n;
  const hash = keccak256(o.hashOf ?? body, 'bytes');
  const signed = Buffer.concat([
    flattenSegment('stream-a', seq, hash),
    Buffer.from(o.signWithoutProfiles ? '' : profilesHex(profiles.map((p) => p.name))),
  ]);
  const seg: SegData = {
    manifestId: new TextEncoder().encode('stream-a'),
    seq,
    hash,
    sig: await (o.who ?? offchainIdentity).signHashOf(signed),
    duration: 2000,
    capabilities: { bitstring: o.capabilities ?? CAPS },
    authToken: info.authToken,
    ...segDataProfiles(profiles),
  };
  return Buffer.from(encodeMessage('SegData', seg)).toString('base64');
}

const text = (r: Reply) => r.body.toString();

describe('POST /segment off-chain', () => {
  it('transcodes into every profile; the result has the seq, URLs it serves, and output pixels', async () => {
    const info = await getOrchestrator(free.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const res = await postSegment(free, segment, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, segment),
    });
    expect(res.status, text(res)).toBe(200);
    const result = decodeMessage('TranscodeResult', res.body);
    expect(result.error).toBeUndefined();
    expect(result.seq).toBe(3n);
    expect(result.info?.authToken).toEqual(info.authToken);
    const segs = result.data!.segments!;
    expect(segs).toHaveLength(2);
    const session = info.authToken!.sessionId!;
    expect(segs[0]!.url).toBe(`${free.url}/stream/${session}/P240p30fps16x9/3.ts`);
    // 2 s at 30 fps: 60 frames at each size.
    expect(segs.map((s) => s.pixels)).toEqual([60n * 426n * 240n, 60n * 640n * 360n]);
    for (const [i, s] of segs.entries()) {
      const file = await get(s.url!);
      expect(file.status).toBe(200);
      expect(file.type).toBe('video/mp2t');
      const path = await dir.write(`r${i}.ts`, file.body);
      const { stdout } = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', path]);
      const v = (JSON.parse(stdout) as { streams: { codec_name: string; width: number; height: number }[] })
        .streams[0]!;
      expect([v.codec_name, v.width, v.height]).toEqual([
        'h264',
        TWO_PROFILES[i]!.width,
        TWO_PROFILES[i]!.height,
      ]);
    }
    expect((await get(`${free.url}/stream/${session}/P240p30fps16x9/4.ts`)).status).toBe(404);
  });

  it('keeps the aspect ratio as lpms does: a 4:3 input in a 16:9 profile is 426x320, charged at that size', async () => {
    const file = dir.path('4x3.ts');
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=30'],
      ...['-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'mpegts', file],
    ]);
    const input = await (await import('node:fs/promises')).readFile(file);
    const info = await getOrchestrator(free.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const res = await postSegment(free, input, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, input, { profiles: [TWO_PROFILES[0]!] }),
    });
    const s = decodeMessage('TranscodeResult', res.body).data!.segments![0]!;
    expect(s.pixels).toBe(30n * 426n * 320n);
    const path = await dir.write('4x3-out.ts', (await get(s.url!)).body);
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', path]);
    const v = (JSON.parse(stdout) as { streams: { width: number; height: number }[] }).streams[0]!;
    expect([v.width, v.height]).toEqual([426, 320]);
  });

  it("answers go-livepeer's status codes for bad credentials and bodies", async () => {
    const info = await getOrchestrator(free.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const good = await segmentHeader(info, segment);
    const cases: [string, Record<string, string>, Buffer, number, string][] = [
      ['no Livepeer-Segment', { 'livepeer-payment': '' }, segment, 403, 'missing Livepeer-Segment header'],
      [
        'a payment that is not base64',
        { 'livepeer-payment': '%%%', 'livepeer-segment': good },
        segment,
        402,
        'base64',
      ],
      [
        'an auth token from another orchestrator',
        {
          'livepeer-payment': '',
          'livepeer-segment': await segmentHeader(
            await getOrchestrator(paid.url, { identity, timeoutMs: 3000 }),
            segment,
          ),
        },
        segment,
        403,
        'invalid auth token',
      ],
      [
        'capabilities it lacks (HEVC encoding)',
        {
          'livepeer-payment': '',
          'livepeer-segment': await segmentHeader(info, segment, {
            capabilities: capabilityBitstring([0, 16]),
          }),
        },
        segment,
        403,
        'incompatible capabilities',
      ],
      [
        'a body that does not match the signed hash',
        { 'livepeer-payment': '', 'livepeer-segment': good },
        Buffer.concat([segment, Buffer.from([0])]),
        403,
        'Forbidden',
      ],
    ];
    for (const [what, headers, body, status, message] of cases) {
      const res = await postSegment(free, body, headers);
      expect(res.status, what).toBe(status);
      expect(text(res), what).toContain(message);
    }
  });

  it('puts a failed transcode in TranscodeResult.error (after a 200), naming the problem', async () => {
    const info = await getOrchestrator(free.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const garbage = Buffer.alloc(188 * 50, 0x47);
    const bad = await postSegment(free, garbage, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, garbage),
    });
    expect(bad.status).toBe(200);
    expect(decodeMessage('TranscodeResult', bad.body).error).toMatch(/ffmpeg failed|no video frames/);

    const eleven = Array.from({ length: 11 }, (_, i) => ({ ...TWO_PROFILES[0]!, name: `r${i}` }));
    const many = await postSegment(free, segment, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, segment, { profiles: eleven }),
    });
    expect(decodeMessage('TranscodeResult', many.body).error).toBe('Too many outputs');

    // lpms' error for a segment without video frames, which gateways do not retry elsewhere.
    const audioFile = dir.path('audio.ts');
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440', '-t', '1'],
      ...['-c:a', 'aac', '-f', 'mpegts', audioFile],
    ]);
    const audioOnly = await (await import('node:fs/promises')).readFile(audioFile);
    const noVideo = await postSegment(free, audioOnly, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, audioOnly),
    });
    expect(decodeMessage('TranscodeResult', noVideo.body).error).toBe('TranscoderInvalidVideo');

    const odd = resolveFormats(
      parseJsonProfiles('[{"name":"odd","width":427,"height":240,"bitrate":500000}]'),
      'mpegts',
    );
    const res = await postSegment(free, segment, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, segment, { profiles: odd }),
    });
    expect(decodeMessage('TranscodeResult', res.body).error).toContain('even width and height');
  });

  it('the fail-start fault answers 500', async () => {
    const info = await getOrchestrator(failing.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const res = await postSegment(failing, segment, {
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, segment),
    });
    expect(res.status).toBe(500);
    expect(text(res)).toContain('fail-start');
  });
});

describe('POST /segment with payments', () => {
  it('checks the segment signature over the profiles (ErrSegSig), credits tickets and debits output pixels', async () => {
    const info = await getOrchestrator(paid.url, { identity, timeoutMs: 3000 });
    const session = info.authToken!.sessionId!;
    const sender = new TicketSender({
      account,
      ticketParams: info.ticketParams!,
      priceInfo: info.priceInfo!,
    });
    const payment = await sender.createPayment(rat(50n * EV));
    expect(payment.numTickets).toBe(50);

    const unsigned = await postSegment(paid, segment, {
      'livepeer-payment': payment.header,
      'livepeer-segment': await segmentHeader(info, segment, { who: identity, signWithoutProfiles: true }),
    });
    expect(unsigned.status).toBe(403);
    expect(text(unsigned)).toBe('ErrSegSig');
    expect(paid.recipient!.balance(account.address, session)).toBeUndefined();

    const res = await postSegment(paid, segment, {
      'livepeer-payment': payment.header,
      'livepeer-segment': await segmentHeader(info, segment, { who: identity }),
    });
    expect(res.status, text(res)).toBe(200);
    const result = decodeMessage('TranscodeResult', res.body);
    expect(result.error).toBeUndefined();
    const pixels = result.data!.segments!.reduce((n, s) => n + s.pixels!, 0n);
    // Balance = tickets' EV − output pixels × 1 wei.
    const balance = paid.recipient!.balance(account.address, session)!;
    expect(compare(balance, sub(payment.ev, mul(rat(pixels), rat(1n))))).toBe(0);
    // Fresh ticket params for the next segment, same auth token.
    expect(result.info?.ticketParams?.recipientRandHash).toHaveLength(32);
    expect(result.info?.authToken).toEqual(info.authToken);
  });

  it('refuses a priced segment with no credit: 400 Insufficient balance', async () => {
    const info = await getOrchestrator(paid.url, { identity, timeoutMs: 3000 });
    const sender = new TicketSender({
      account,
      ticketParams: info.ticketParams!,
      priceInfo: info.priceInfo!,
    });
    // A payment without tickets still names the sender and the expected price.
    const header = Buffer.from(
      encodeMessage('Payment', {
        sender: Buffer.from(account.address.slice(2), 'hex'),
        expectedPrice: sender.priceInfo,
      }),
    ).toString('base64');
    const res = await postSegment(paid, segment, {
      'livepeer-payment': header,
      'livepeer-segment': await segmentHeader(info, segment, { who: identity }),
    });
    expect(res.status).toBe(400);
    expect(text(res)).toBe('Insufficient balance');
  });
});
