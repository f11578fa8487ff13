// REST path benchmark (npm run bench:rest): what the gateway adds to batch AI requests and to
// segment transcoding, and how many requests per second it passes through, all off-chain on
// 127.0.0.1. The gateway and the orchestrators run as child processes of this script (one event
// loop each, as deployed); this process is the client and sends the same requests straight to
// the orchestrator, with the headers the gateway sends, for comparison.
//   A  image-to-image 512×512 through the gateway vs direct (the ffmpeg stand-in), interleaved
//   B  a 2 s 720p30 segment into P240p30fps16x9 + P360p30fps16x9: PUT /live vs POST /segment
//   C  req/s at concurrency 1, 8, 32 with an orchestrator that answers a fixed PNG at once
// Flags: --quick (fewer samples), --prof (CPU profiles of the gateways into $TMPDIR),
// --spans (time spent inside the gateway, by step).
import { type ChildProcess, execFile, fork } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pino from 'pino';
import { AiJobRunner } from '../src/batch/ai-client.ts';
import { ResultStore } from '../src/batch/ai-results.ts';
import { buildMultipart } from '../src/batch/multipart.ts';
import {
  parsePresetNames,
  profilesHex,
  resolveFormats,
  segDataProfiles,
  transcodeCapabilities,
} from '../src/batch/profiles.ts';
import { TRANSCODE_JOB, Transcoder } from '../src/batch/transcode.ts';
import { keccak256Of } from '../src/batch/transcode-hash.ts';
import { buildGatewayApp } from '../src/http/app.ts';
import { LiveStreams } from '../src/live/registry.ts';
import { LocalOrchestrator } from '../src/local-orchestrator/server.ts';
import { jobCapabilities } from '../src/orchestrators/capabilities.ts';
import { StaticSource } from '../src/orchestrators/discovery.ts';
import { readBody } from '../src/orchestrators/http.ts';
import { AI_WORKER_PROTOCOL } from '../src/orchestrators/live-video.ts';
import { OrchestratorPool } from '../src/orchestrators/pool.ts';
import { PriceCeiling } from '../src/orchestrators/price.ts';
import { flattenSegment, OFFCHAIN_PAYMENT, segmentCredentials } from '../src/payments/credentials.ts';
import { offchainIdentity } from '../src/payments/identity.ts';
import { LOOPBACK_NETWORK } from '../src/webrtc/index.ts';
import {
  Capability,
  capabilityBitstring,
  decodeMessage,
  encodeMessage,
  type OrchestratorInfo,
  type SegData,
} from '../src/wire/lp-rpc.ts';
import { withTimeout } from './common.ts';

const run = promisify(execFile);
const logger = pino({ level: 'silent' });
const SELF = fileURLToPath(import.meta.url);
const I2I_MODEL = 'timbrooks/instruct-pix2pix';
const ZERO_MODEL = 'bench/zero-work';
const PROFILES = 'P240p30fps16x9,P360p30fps16x9';
const TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// Child roles: `--role=orchestrator [--zero=<png path>]` and `--role=gateway --orch=<url>`.
// Each reports { url } over IPC when it listens and exits when the parent disconnects.

const role = process.argv.find((a) => a.startsWith('--role='))?.slice(7);
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/** A gateway with the batch AI and transcode routes, as src/main.ts wires them, off-chain. */
async function startGateway(orchestrator: string) {
  const pool = new OrchestratorPool({
    sources: [new StaticSource([orchestrator])],
    identity: offchainIdentity,
    grpcTimeoutMs: 3000,
    infoMaxAgeMs: 10_000,
    concurrency: 4,
    priceCeiling: PriceCeiling.none(),
    logger,
  });
  const streams = new LiveStreams({
    pool,
    identity: offchainIdentity,
    limits: {
      minSegmentDurationMs: 1000,
      pliIntervalMs: 2000,
      maxViewers: 1,
      ingestTimeoutMs: 5000,
      maxStreams: 1,
    },
    network: LOOPBACK_NETWORK,
    logger,
  });
  const dir = await mkdtemp(join(tmpdir(), 'lpgw-bench-results-'));
  const results = new ResultStore({ dir, ttlMs: 60_000, logger });
  await results.start();
  const runner = new AiJobRunner({
    pool,
    identity: offchainIdentity,
    maxTries: 3,
    retryTimeoutMs: TIMEOUT_MS,
    tryTimeoutMs: TIMEOUT_MS,
    results,
    logger,
  });
  const app = await buildGatewayApp({
    pool,
    streams,
    live: { iceServers: [], defaultModel: 'passthrough' },
    bodyLimitBytes: 1024 * 1024,
    batch: { runner, results, bodyLimitBytes: 8 * 1024 * 1024 },
    transcode: {
      identity: offchainIdentity,
      profiles: parsePresetNames(PROFILES),
      maxSegmentBytes: 16 * 1024 * 1024,
      maxAttempts: 3,
      hlsWindowSegments: 10,
      streamIdleTimeoutMs: 60_000,
      maxStreams: 10,
    },
    logger,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    server: app.server,
    base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    async close() {
      app.server.closeAllConnections();
      await app.close();
      pool.stop();
      results.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Timing spans inside the gateway (--spans): the batch runner's and result store's methods
 * wrapped in place, so that src/ stays as it is. Sum per span / requests = mean ms per request.
 */
function instrument() {
  const samples = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    const list = samples.get(name) ?? [];
    samples.set(name, list);
    list.push(ms);
  };
  const wrap = (proto: object, method: string, name: string) => {
    const target = proto as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const original = target[method]!;
    target[method] = async function (this: unknown, ...args: unknown[]) {
      const t = performance.now();
      try {
        return await original.apply(this, args);
      } finally {
        add(name, performance.now() - t);
      }
    };
  };
  wrap(AiJobRunner.prototype, 'run', 'runner.run (ai-client.ts): prepare + select + POST + finish');
  wrap(AiJobRunner.prototype, 'attempt', 'runner.attempt: credentials + POST until answer headers');
  wrap(AiJobRunner.prototype, 'finish', 'runner.finish: read reply + rehost');
  wrap(AiJobRunner.prototype, 'fetchResult', 'runner.fetchResult: GET the result from the orchestrator');
  wrap(ResultStore.prototype, 'save', 'ResultStore.save (ai-results.ts): mkdir + writeFile');
  wrap(Transcoder.prototype, 'transcode', 'Transcoder.transcode (transcode.ts): hash + select + submit');
  wrap(Transcoder.prototype, 'submit', 'Transcoder.submit: POST /segment + TranscodeResult + downloads');
  // Keep-alive should make new connections rare; each one here is a TCP (and TLS) setup.
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    add('new outgoing connections (count only)', 0);
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof connect;
  return {
    add,
    reset: () => samples.clear(),
    summary: () =>
      [...samples].map(([name, list]) => ({
        name,
        count: list.length,
        mean: list.reduce((a, b) => a + b, 0) / list.length,
        p50: pct(list, 50),
        p95: pct(list, 95),
        samples: list,
      })),
  };
}

// ---------------------------------------------------------------------------------------------
// The client side.

interface Child {
  url: string;
  proc: ChildProcess;
}

function spawnChild(args: string[], execArgv: string[] = []): Promise<Child> {
  const proc = fork(SELF, args, { execArgv: [...process.execArgv, ...execArgv], stdio: 'inherit' });
  return withTimeout(
    new Promise<Child>((resolve, reject) => {
      proc.once('message', (m) => resolve({ url: (m as { url: string }).url, proc }));
      proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}) before it listened`)));
    }),
    30_000,
    `child ${args.join(' ')} to listen`,
  );
}

async function stopChild(c: Child): Promise<void> {
  if (c.proc.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => c.proc.once('exit', () => resolve()));
  c.proc.disconnect();
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
}

/** Nearest-rank percentile of unsorted samples. */
function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a');

// Keep-alive clients like the gateway's own (src/orchestrators/http.ts): the same for both
// sides, so that the difference is the gateway's.
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
const httpsAgent = new HttpsAgent({ keepAlive: true, rejectUnauthorized: false, maxSockets: 256 });

/** Sends and reads the whole answer; throws unless 200. */
function send(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
  method = 'POST',
): Promise<{ res: IncomingMessage; body: Buffer }> {
  const u = new URL(url);
  const request = u.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(u, {
      method,
      agent: u.protocol === 'http:' ? httpAgent : httpsAgent,
      headers: { ...headers, 'Content-Length': body.length },
      timeout: TIMEOUT_MS,
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      readBody(res, 64 * 1024 * 1024, TIMEOUT_MS, url).then((data) => {
        if (res.statusCode !== 200) {
          reject(
            new Error(`${method} ${url} answered ${res.statusCode}: ${data.toString('utf8').slice(0, 300)}`),
          );
        } else resolve({ res, body: data });
      }, reject);
    });
    req.end(body);
  });
}

/** How long `fn` took, or the time it measured itself when it returns a number. */
async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = performance.now();
  const own = await fn();
  return typeof own === 'number' ? own : performance.now() - t;
}

/** What the direct requests need of the orchestrator: a fresh GetOrchestrator answer. */
async function orchestratorInfo(url: string, kind: { capability: number; modelId: string }) {
  const pool = new OrchestratorPool({
    sources: [new StaticSource([url])],
    identity: offchainIdentity,
    grpcTimeoutMs: 3000,
    infoMaxAgeMs: 10_000,
    concurrency: 1,
    priceCeiling: PriceCeiling.none(),
    logger,
  });
  try {
    return (await pool.select(kind)).info;
  } finally {
    pool.stop();
  }
}

/** The image-to-image request, to the gateway (as a user sends it) and direct (as the gateway does). */
function imageToImage(png: Buffer, model: string, gateway: string, info: OrchestratorInfo) {
  const upload = { filename: 'input.png', contentType: 'image/png', data: png };
  const fields: [string, string][] = [
    ['prompt', 'make it blue'],
    ['model_id', model],
  ];
  const form = buildMultipart({ name: 'image', upload }, fields);
  const kind = { capability: Capability.ImageToImage, modelId: model };
  const transcoder = info.transcoder || '';
  return {
    viaGateway: () => send(`${gateway}/image-to-image`, { 'Content-Type': form.contentType }, form.body),
    direct: async () => {
      const segment = await segmentCredentials(info, offchainIdentity, {
        manifestId: `${kind.capability}_${kind.modelId}`,
        capabilities: jobCapabilities(kind),
      });
      return send(
        `${transcoder.replace(/\/$/, '')}/image-to-image`,
        {
          'Content-Type': form.contentType,
          'Livepeer-Payment': OFFCHAIN_PAYMENT,
          'Livepeer-Segment': segment,
          Authorization: AI_WORKER_PROTOCOL,
        },
        form.body,
      );
    },
  };
}

interface SpanSummary {
  name: string;
  count: number;
  mean: number;
  p50: number;
  p95: number;
  /** In the order recorded: with one request at a time, index i of every span is request i. */
  samples: number[];
}

/** p50 of `a[i] − b[i]` (spans of the same sequential requests). */
function pairedP50(a: SpanSummary | undefined, b: SpanSummary | undefined): number {
  if (!a || !b || a.samples.length !== b.samples.length) return Number.NaN;
  return pct(
    a.samples.map((v, i) => v - b.samples[i]!),
    50,
  );
}

function spansOf(c: Child): Promise<SpanSummary[]> {
  return withTimeout(
    new Promise((resolve) => {
      const onMessage = (m: unknown) => {
        const spans = (m as { spans?: SpanSummary[] }).spans;
        if (!spans) return;
        c.proc.off('message', onMessage);
        resolve(spans);
      };
      c.proc.on('message', onMessage);
      c.proc.send('spans:get');
    }),
    5000,
    "the gateway's timing spans",
  );
}

interface PairResult {
  gw: number[];
  direct: number[];
  /** gateway − direct per interleaved pair. */
  diff: number[];
}

/** Sequential pairs, alternating which goes first, after `warmup` of each. */
async function interleaved(
  n: number,
  warmup: number,
  gw: (i: number) => Promise<unknown>,
  direct: (i: number) => Promise<unknown>,
): Promise<PairResult> {
  for (let i = 0; i < warmup; i++) {
    await gw(i);
    await direct(i);
  }
  const out: PairResult = { gw: [], direct: [], diff: [] };
  for (let i = warmup; i < warmup + n; i++) {
    let g: number;
    let d: number;
    if (i % 2 === 0) {
      g = await timed(() => gw(i));
      d = await timed(() => direct(i));
    } else {
      d = await timed(() => direct(i));
      g = await timed(() => gw(i));
    }
    out.gw.push(g);
    out.direct.push(d);
    out.diff.push(g - d);
  }
  return out;
}

/** Closed-loop load: `concurrency` clients back to back for `seconds`. */
async function load(fn: () => Promise<unknown>, concurrency: number, seconds: number) {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          await fn();
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { rps: latencies.length / elapsed, p50: pct(latencies, 50), p95: pct(latencies, 95), errors };
}

async function main() {
  const quick = process.argv.includes('--quick');
  const prof = process.argv.includes('--prof');
  const began = performance.now();
  const loadAtStart = os.loadavg()[0]!.toFixed(2);
  const work = await mkdtemp(join(tmpdir(), 'lpgw-bench-rest-'));
  const children: Child[] = [];
  try {
    const png512 = join(work, 'in512.png');
    const png64 = join(work, 'in64.png');
    const tiny = join(work, 'tiny.png');
    const seg = join(work, 'seg720.ts');
    const ff = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi'];
    await Promise.all([
      run('ffmpeg', [...ff, '-i', 'testsrc2=size=512x512', '-frames:v', '1', png512]),
      run('ffmpeg', [...ff, '-i', 'testsrc2=size=64x64', '-frames:v', '1', png64]),
      run('ffmpeg', [...ff, '-i', 'color=c=red:size=8x8', '-frames:v', '1', tiny]),
      run('ffmpeg', [
        ...[...ff, '-i', 'testsrc2=size=1280x720:rate=30'],
        ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
        ...['-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60', '-pix_fmt', 'yuv420p'],
        ...['-c:a', 'aac', '-f', 'mpegts', seg],
      ]),
    ]);
    const [image512, image64, segment] = await Promise.all([
      readFile(png512),
      readFile(png64),
      readFile(seg),
    ]);

    const profDir = join(tmpdir(), 'lpgw-bench-rest-profiles');
    if (prof) {
      await mkdir(profDir, { recursive: true });
      console.error(`gateway CPU profiles go to ${profDir}`);
    }
    const gwArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
    const spans = process.argv.includes('--spans');
    const standIn = await spawnChild(['--role=orchestrator']);
    children.push(standIn);
    const zero = await spawnChild(['--role=orchestrator', `--zero=${tiny}`]);
    children.push(zero);
    const [gwStandIn, gwZero] = await Promise.all([
      // Spans always on the stand-in's gateway: B's pairs alone drown in ffmpeg's own jitter.
      spawnChild(['--role=gateway', `--orch=${standIn.url}`, '--spans'], gwArgv),
      spawnChild(['--role=gateway', `--orch=${zero.url}`, ...(spans ? ['--spans'] : [])], gwArgv),
    ]);
    children.push(gwStandIn, gwZero);

    // A: image-to-image 512×512 on the ffmpeg stand-in.
    const nA = quick ? 40 : 200;
    const infoA = await orchestratorInfo(standIn.url, {
      capability: Capability.ImageToImage,
      modelId: I2I_MODEL,
    });
    const reqA = imageToImage(image512, I2I_MODEL, gwStandIn.url, infoA);
    const a = await interleaved(nA, 10, reqA.viaGateway, reqA.direct);
    const checkA = JSON.parse((await reqA.viaGateway()).body.toString('utf8'));
    if (!checkA.images?.[0]?.url?.startsWith(gwStandIn.url))
      throw new Error('A: gateway answer has no image');
    console.error(`A done (${((performance.now() - began) / 1000).toFixed(0)} s)`);

    // B: the 720p segment into two profiles.
    const nB = quick ? 6 : 20;
    const profiles = resolveFormats(parsePresetNames(PROFILES), 'mpegts');
    const infoB = await orchestratorInfo(standIn.url, TRANSCODE_JOB);
    const hash = await keccak256Of(segment);
    const pushHeaders = {
      'Content-Type': 'video/mp2t',
      'Content-Duration': '2000',
      'Content-Resolution': '1280x720',
      Accept: 'multipart/mixed',
    };
    let renditionBytes = 0;
    const pushViaGateway = async (i: number) => {
      const { res, body } = await send(`${gwStandIn.url}/live/bench/${i}.ts`, pushHeaders, segment, 'PUT');
      if (!String(res.headers['content-type']).startsWith('multipart/mixed')) {
        throw new Error('B: the push answer is not multipart/mixed');
      }
      renditionBytes = body.length;
    };
    const directDownloads: number[] = [];
    const pushDirect = async (i: number) => {
      // As src/batch/transcode.ts submits it (SubmitSegment), timed up to the TranscodeResult.
      const started = performance.now();
      const manifestId = 'bench-direct';
      const seq = BigInt(i);
      const sig = await offchainIdentity.signHashOf(
        Buffer.concat([
          flattenSegment(manifestId, seq, hash),
          Buffer.from(profilesHex(profiles.map((p) => p.name))),
        ]),
      );
      const segData: SegData = {
        manifestId: new TextEncoder().encode(manifestId),
        seq,
        hash,
        sig,
        duration: 2000,
        capabilities: { bitstring: capabilityBitstring(transcodeCapabilities(profiles)) },
        authToken: infoB.authToken,
        ...segDataProfiles(profiles),
      };
      const { body } = await send(
        `${(infoB.transcoder || standIn.url).replace(/\/$/, '')}/segment`,
        {
          'Livepeer-Segment': Buffer.from(encodeMessage('SegData', segData)).toString('base64'),
          'Livepeer-Payment': OFFCHAIN_PAYMENT,
          'Content-Type': 'video/MP2T',
        },
        segment,
      );
      const result = decodeMessage('TranscodeResult', body);
      if (result.error || result.data?.segments?.length !== profiles.length) {
        throw new Error(`B: direct /segment failed: ${result.error ?? 'wrong rendition count'}`);
      }
      const took = performance.now() - started;
      {
        // What the gateway does next, timed apart: fetch both renditions.
        const t = performance.now();
        await Promise.all(result.data.segments.map((r) => send(r.url!, {}, Buffer.alloc(0), 'GET')));
        directDownloads.push(performance.now() - t);
      }
      return took;
    };
    gwStandIn.proc.send('spans:reset');
    const b = await interleaved(nB, 2, pushViaGateway, pushDirect);
    const breakdownB = await spansOf(gwStandIn);
    // The gateway's own part, from low-noise pieces: its time outside SubmitSegment (upload,
    // probe, hash, answer) plus what fetching the renditions takes.
    const spanB = (name: string) => breakdownB.find((x) => x.name.startsWith(name));
    const outsideSubmit = pairedP50(spanB('server'), spanB('Transcoder.submit'));
    const hashing = pairedP50(spanB('Transcoder.transcode'), spanB('Transcoder.submit'));
    const estimateB = outsideSubmit + pct(directDownloads, 50);
    console.error(`B done (${((performance.now() - began) / 1000).toFixed(0)} s)`);

    // C: throughput with a near-zero-work orchestrator.
    const seconds = quick ? 2 : 5;
    const infoC = await orchestratorInfo(zero.url, {
      capability: Capability.ImageToImage,
      modelId: ZERO_MODEL,
    });
    const reqC = imageToImage(image64, ZERO_MODEL, gwZero.url, infoC);
    const c: {
      level: number;
      gw: Awaited<ReturnType<typeof load>>;
      direct: Awaited<ReturnType<typeof load>>;
    }[] = [];
    let breakdown: SpanSummary[] = [];
    for (const level of [1, 8, 32]) {
      await load(reqC.viaGateway, level, 0.7);
      if (spans && level === 1) gwZero.proc.send('spans:reset');
      const gw = await load(reqC.viaGateway, level, seconds);
      if (spans && level === 1) breakdown = await spansOf(gwZero);
      await load(reqC.direct, level, 0.3);
      const direct = await load(reqC.direct, level, quick ? 1 : 2);
      c.push({ level, gw, direct });
    }
    // What the gateway's extra round trip costs seen from outside: the result GET alone.
    const resultGet: number[] = [];
    if (spans) {
      for (let i = 0; i < 200; i++) {
        const { body } = await reqC.direct();
        const url = JSON.parse(body.toString('utf8')).images[0].url as string;
        const t = performance.now();
        await send(url, {}, Buffer.alloc(0), 'GET');
        resultGet.push(performance.now() - t);
      }
    }
    console.error(`C done (${((performance.now() - began) / 1000).toFixed(0)} s)`);

    const addedA = { p50: pct(a.gw, 50) - pct(a.direct, 50), p95: pct(a.gw, 95) - pct(a.direct, 95) };
    const addedB = { p50: pct(b.gw, 50) - pct(b.direct, 50), p95: pct(b.gw, 95) - pct(b.direct, 95) };
    const c1 = c[0]!;
    const addedC1 = { p50: c1.gw.p50 - c1.direct.p50, p95: c1.gw.p95 - c1.direct.p95 };
    const best = Math.max(...c.map((x) => x.gw.rps));
    const mark = (ok: boolean) => (ok ? 'met' : '**missed**');
    const cpus = os.cpus();
    const lines = [
      `| machine | ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores, Node ${process.version}, load average at start / end ${loadAtStart} / ${os.loadavg()[0]!.toFixed(2)} (other processes share the cores) |`,
      '|---|---|',
      '',
      '| measure | gateway | direct to orchestrator | gateway adds (p50 / p95) | target |',
      '|---|---|---|---|---|',
      `| A image-to-image 512×512, ffmpeg stand-in, ${nA} pairs, p50 / p95 ms | ${ms(pct(a.gw, 50))} / ${ms(pct(a.gw, 95))} | ${ms(pct(a.direct, 50))} / ${ms(pct(a.direct, 95))} | ${ms(addedA.p50)} / ${ms(addedA.p95)} (per pair: ${ms(pct(a.diff, 50))} / ${ms(pct(a.diff, 95))}) | p95 < 5 ms: ${mark(addedA.p95 < 5)} |`,
      `| A′ image-to-image 64×64, near-zero orchestrator, concurrency 1, p50 / p95 ms | ${ms(c1.gw.p50)} / ${ms(c1.gw.p95)} | ${ms(c1.direct.p50)} / ${ms(c1.direct.p95)} | ${ms(addedC1.p50)} / ${ms(addedC1.p95)} | p95 < 5 ms: ${mark(addedC1.p95 < 5)} |`,
      `| B 2 s 720p30 → 240p + 360p, ${nB} pairs, p50 / p95 ms | ${ms(pct(b.gw, 50))} / ${ms(pct(b.gw, 95))} | ${ms(pct(b.direct, 50))} / ${ms(pct(b.direct, 95))} | ${ms(addedB.p50)} / ${ms(addedB.p95)} (per pair: ${ms(pct(b.diff, 50))} / ${ms(pct(b.diff, 95))}) | |  |`,
      `| B estimate from the gateway's spans (p50): outside SubmitSegment ${ms(outsideSubmit)} (of which segment hash ${ms(hashing)}) + rendition downloads ${ms(pct(directDownloads, 50))} | | | ${ms(estimateB)} | < 20 ms: ${mark(estimateB < 20)} |`,
      ...c.map(
        (x) =>
          `| C concurrency ${x.level}: req/s, p50 / p95 ms | ${x.gw.rps.toFixed(0)} req/s, ${ms(x.gw.p50)} / ${ms(x.gw.p95)}${x.gw.errors ? `, ${x.gw.errors} errors` : ''} | ${x.direct.rps.toFixed(0)} req/s, ${ms(x.direct.p50)} / ${ms(x.direct.p95)}${x.direct.errors ? `, ${x.direct.errors} errors` : ''} | | ${x.gw.rps === best ? `≥ 500 req/s (best level): ${mark(best >= 500)}` : ''} |`,
      ),
      '',
      `Gateway adds = p50(gateway) − p50(direct), p95(gateway) − p95(direct); "per pair" is the p50 / p95 of the difference in each interleaved pair (includes the stand-in's own jitter). Direct = POST to the orchestrator with the gateway's headers, answer read; the gateway also fetches and stores the result file (A, C) or the renditions (B, ${(renditionBytes / 1024).toFixed(0)} KiB multipart answer). Best throughput ${best.toFixed(0)} req/s (target ≥ 500: ${mark(best >= 500)}). Total ${((performance.now() - began) / 1000).toFixed(0)} s.`,
    ];
    const row = (x: SpanSummary) =>
      `| ${x.name} | ${x.count} | ${x.mean.toFixed(2)} | ${x.p50.toFixed(2)} | ${x.p95.toFixed(2)} |`;
    lines.push(
      '',
      '| inside the gateway, B | count | mean ms | p50 | p95 |',
      '|---|---|---|---|---|',
      ...breakdownB.filter((x) => x.count > 0 && !x.name.startsWith('new outgoing')).map(row),
      `| client: direct /segment, then GET of both renditions alone | ${directDownloads.length} | ${(directDownloads.reduce((a, b) => a + b, 0) / directDownloads.length).toFixed(2)} | ${pct(directDownloads, 50).toFixed(2)} | ${pct(directDownloads, 95).toFixed(2)} |`,
    );
    if (spans) {
      lines.push(
        '',
        '| inside the gateway (--spans), C at concurrency 1 | count | mean ms | p50 | p95 |',
        '|---|---|---|---|---|',
        ...breakdown.map(row),
        `| client: GET of the orchestrator's result URL alone | ${resultGet.length} | ${(resultGet.reduce((a, b) => a + b, 0) / resultGet.length).toFixed(2)} | ${pct(resultGet, 50).toFixed(2)} | ${pct(resultGet, 95).toFixed(2)} |`,
      );
    }
    console.log(lines.join('\n'));
  } finally {
    await Promise.all(children.map(stopChild));
    await rm(work, { recursive: true, force: true });
  }
}

// Last, once every declaration above is initialised.
if (role === 'orchestrator') {
  const zeroPng = arg('zero');
  const png = zeroPng ? await readFile(zeroPng) : undefined;
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    aiCapacity: png ? 64 : 4,
    // Near-zero work: the orchestrator's own handling (credentials, capacity, result store) stays.
    aiPipelines: png
      ? {
          'image-to-image': {
            models: [ZERO_MODEL],
            run: async () => ({ kind: 'images', images: [{ png, seed: 1, nsfw: false }] }),
          },
        }
      : undefined,
  });
  process.send?.({ url: orch.url });
  process.on('disconnect', () => void orch.close().finally(() => process.exit(0)));
} else if (role === 'gateway') {
  const spans = process.argv.includes('--spans') ? instrument() : undefined;
  const gw = await startGateway(arg('orch')!);
  if (spans) {
    gw.server.on('request', (_req, res) => {
      const t = performance.now();
      res.once('finish', () => spans.add('server: request in → answer sent', performance.now() - t));
    });
    process.on('message', (m) => {
      if (m === 'spans:reset') spans.reset();
      if (m === 'spans:get') process.send?.({ spans: spans.summary() });
    });
  }
  process.send?.({ url: gw.base });
  process.on('disconnect', () => void gw.close().finally(() => process.exit(0)));
} else {
  await main();
}
