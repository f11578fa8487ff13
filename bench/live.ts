// Live-path benchmark: starts the gateway as a child process (embedded local orchestrator, effect
// `passthrough`), drives it with werift WHIP publishers and WHEP viewers on 127.0.0.1, and prints a
// markdown table: time to first frame, gateway-added latency, viewer join (WHEP answer → first
// frame, and whether what a joining viewer gets decodes cleanly), CPU per stream at 1/4/8 streams,
// the gateway's event-loop delay while worst-case SDP offers arrive during 4 live streams, and on
// chain, the event-loop delay while a 5th paid stream starts with its prepayment.
//
//   npm run bench:live                 full run (about 1 min on 2 cores)
//   npm run bench:live -- --quick      fewer repetitions, shorter windows, 1 and 4 streams (~30 s)
//   npm run bench:live -- --cpu-prof   also profile the gateway child (node --cpu-prof) and print its top functions
//   npm run bench:live -- --external-orch
//                                      run the local orchestrator as its own process, so the gateway's CPU
//                                      figures exclude the orchestrator's side of trickle and TLS
//   npm run bench:live -- --streams 1,2,4
//                                      stream counts for the CPU phase
//   npm run bench:live -- --viewers 2  WHEP viewers per stream in the CPU phase
//   npm run bench:live -- --joins 20   viewers that join a running stream one by one (0: skip)
//   npm run bench:live -- --clip-kbps 2500
//                                      cap the clip's bitrate (default: uncapped x264 ultrafast, ~7.6 Mbit/s
//                                      at 720p, three times what a browser sends for 720p30; the on-chain
//                                      phase alone defaults to 2500, a browser's 720p30)
//   npm run bench:live -- --prepay-only
//                                      only the on-chain phase: the gateway's event-loop delay while 4 paid
//                                      streams run and a 5th starts with a 249-ticket prepayment (ganache
//                                      chain, on-chain local orchestrator in its own process)
//   npm run bench:live -- --no-prepay  every phase but that one
//   npm run bench:live -- --prepay-only --prepay-free
//                                      the same with a free orchestrator (no tickets): the control, to tell
//                                      what the prepayment costs from what the machine and stream starts cost
//   npm run bench:live -- --prepay-only --no-nice
//                                      the on-chain phase normally nices (+10) the orchestrator and this
//                                      process (peers, chain): on a deployment they are other machines;
//                                      --no-nice leaves every process at the same priority
//   BENCH_GATEWAY_NODE_FLAGS='' npm run bench:live -- --prepay-only
//                                      the gateway with other Node flags than bin/node-flags.js ('' : none)
//   npm run bench:live -- --vp8-only   only the VP8 phase: CPU of one VP8 publisher (gateway + its ffmpeg
//                                      transcodes) with an H.264 viewer and a VP8 viewer; --no-vp8 skips it
//   BENCH_DEBUG=1 npm run bench:live  also prints each frame's client-side latency (clip index:ms) to stderr
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keccak256, stringToBytes } from 'viem';
import { GATEWAY_NODE_FLAGS } from '../bin/node-flags.js';
import { IvfReader, packetizeVp8 } from '../src/media/index.ts';
import { encryptKeystore } from '../src/payments/keystore.ts';
import { type LocalChain, startLocalChain, TEST_SENDER_KEY } from '../test/helpers/local-chain.ts';
import { h264DecodeReport, makeH264Clip } from '../test/helpers/media.ts';
import { worstCaseOffers } from '../test/helpers/sdp-worst-cases.ts';
import {
  type AccessUnit,
  framesInSequenceOrder,
  h264Frames,
  type RtpFrame,
  splitAccessUnits,
  syntheticOpusFrames,
  toAnnexB,
  WeriftPublisher,
  WeriftViewer,
} from '../test/helpers/webrtc-clients.ts';
import { freePort, sleep, waitUntil, withTimeout } from './common.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The gateway's Node flags: bin/node-flags.js, as `npm start` runs it; BENCH_GATEWAY_NODE_FLAGS
 * replaces them for an A/B ('' for V8's defaults).
 */
function gatewayNodeFlags(): string[] {
  const env = process.env.BENCH_GATEWAY_NODE_FLAGS;
  return env === undefined ? [...GATEWAY_NODE_FLAGS] : env.split(' ').filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Options

interface BenchOptions {
  quick: boolean;
  /** Viewers that join a running stream one after another (instant-start measurement). */
  joins: number;
  /** Run the on-chain prepayment phase / only that phase. */
  prepay: boolean;
  prepayOnly: boolean;
  /** The on-chain phase against a free orchestrator (no tickets), as a control. */
  prepayFree: boolean;
  /** In the on-chain phase, nice the orchestrator and this process (the peers, the chain). */
  nice: boolean;
  cpuProf: boolean;
  externalOrch: boolean;
  streams: number[];
  ttffRuns: number;
  clipSeconds: number;
  /** The clip's bitrate cap; undefined: x264 ultrafast uncapped (~7.6 Mbit/s at 720p). */
  clipKbps: number | undefined;
  latencyWindowMs: number;
  warmupMs: number;
  windowMs: number;
  viewersPerStream: number;
  /** The VP8 publisher phase (transcode CPU); --no-vp8 skips it, --vp8-only runs only it. */
  vp8: boolean;
  vp8Only: boolean;
}

function parseArgs(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const opts: BenchOptions = {
    quick,
    joins: quick ? 8 : 20,
    prepay: !argv.includes('--no-prepay'),
    prepayOnly: argv.includes('--prepay-only'),
    prepayFree: argv.includes('--prepay-free'),
    nice: !argv.includes('--no-nice'),
    cpuProf: argv.includes('--cpu-prof'),
    externalOrch: argv.includes('--external-orch'),
    streams: quick ? [1, 4] : [1, 4, 8],
    ttffRuns: quick ? 3 : 6,
    clipSeconds: 10,
    clipKbps: undefined,
    latencyWindowMs: quick ? 5000 : 8000,
    warmupMs: 3000,
    windowMs: quick ? 5000 : 8000,
    viewersPerStream: 2,
    vp8: !argv.includes('--no-vp8'),
    vp8Only: argv.includes('--vp8-only'),
  };
  const number = (flag: string, min: number, max: number): number | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`${flag} takes a whole number from ${min} to ${max}`);
    return n;
  };
  opts.joins = number('--joins', 0, 200) ?? opts.joins;
  opts.viewersPerStream = number('--viewers', 1, 100) ?? opts.viewersPerStream;
  opts.clipKbps = number('--clip-kbps', 100, 50_000);
  const at = argv.indexOf('--streams');
  if (at >= 0) {
    const list = (argv[at + 1] ?? '').split(',').map(Number);
    if (!list.length || list.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) {
      throw new Error('--streams needs a comma-separated list of stream counts between 1 and 16');
    }
    opts.streams = list;
  }
  for (const arg of argv) {
    const known = [
      ...['--quick', '--cpu-prof', '--external-orch', '--streams', '--joins', '--viewers', '--clip-kbps'],
      ...['--prepay-only', '--no-prepay', '--prepay-free', '--no-nice', '--no-vp8', '--vp8-only'],
    ];
    if (arg.startsWith('--') && !known.includes(arg)) {
      throw new Error(
        `unknown option ${arg} (use ${known.join(', ')}; --streams takes 1,4,8, --joins 20, --viewers 2)`,
      );
    }
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function percentile(values: number[], q: number): number {
  if (!values.length) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const median = (values: number[]) => percentile(values, 0.5);
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const now = () => performance.now();

function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** utime + stime of a process (all its threads), in clock ticks. */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** The machine's UDP datagrams dropped for a full receive buffer (all processes), from /proc/net/snmp. */
function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/);
    return Number(values[names.indexOf('RcvbufErrors')]);
  } catch {
    return Number.NaN;
  }
}

const cpusCount = () => os.cpus().length;

/** Interrupt and steal clock ticks of the whole machine (all cores), from /proc/stat. */
function machineTicks(): { irq: number; steal: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const [, , , , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return { irq: irq + softirq, steal: steal ?? 0 };
  } catch {
    return { irq: Number.NaN, steal: Number.NaN };
  }
}

/** CPU ticks of every other process on the machine, by pid (to tell other work apart from the kernel's). */
function otherProcessTicks(exclude: number[]): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || exclude.includes(pid)) continue;
    try {
      ticks.set(pid, processTicks(pid));
    } catch {
      // gone
    }
  }
  return ticks;
}

/** Ticks the other processes used between two samples, and the busiest of them (pid and command line). */
function otherProcessDelta(
  before: Map<number, number>,
  after: Map<number, number>,
): { ticks: number; top: { command: string; ticks: number }[] } {
  let ticks = 0;
  const used: [number, number][] = [];
  for (const [pid, t] of after) {
    const d = t - (before.get(pid) ?? 0);
    ticks += d;
    if (d > 0) used.push([pid, d]);
  }
  const top = used
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([pid, d]) => {
      let command = `pid ${pid}`;
      try {
        command =
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim().slice(0, 80) || command;
      } catch {
        // gone
      }
      return { command, ticks: d };
    });
  return { ticks, top };
}

function benchCpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Child processes

class Child {
  readonly lines: string[] = [];
  readonly problems: string[] = [];
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #exit: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.lines.push(line);
        if (this.lines.length > 400) this.lines.splice(0, 100);
        if (isProblem(line) && this.problems.length < 200) this.problems.push(line);
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.#exit = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve();
      });
    });
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.proc.pid;
  }

  tail(n = 40): string {
    return this.lines.slice(-n).join('\n');
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.#exit.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await withTimeout(this.#exit, 5000, `${this.name} to die`).catch(() => {});
    }
  }

  waitExit(): Promise<void> {
    return this.#exit;
  }
}

/** pino JSON lines at warn (40) or above, and anything else that looks like an error. */
function isProblem(line: string): boolean {
  if (line.startsWith('{')) {
    try {
      return (JSON.parse(line) as { level?: number }).level! >= 40;
    } catch {
      return true;
    }
  }
  return /error|warn|exception|fail/i.test(line);
}

function spawnTs(name: string, script: string, args: string[], nodeFlags: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  return new Child(name, proc);
}

interface Gateway {
  child: Child;
  orchestrator?: Child;
  base: string;
  profileDir?: string;
  /** Its RTMP ingest port. */
  rtmpPort?: number;
}

async function startGateway(opts: BenchOptions): Promise<Gateway> {
  const httpPort = await freePort();
  const orchPort = await freePort();
  const rtmpPort = await freePort();
  const secret = 'lp-gateway-bench';
  let orchestrator: Child | undefined;
  if (opts.externalOrch) {
    orchestrator = spawnTs('local orchestrator', 'src/local-orchestrator/main.ts', [
      ...['-localOrchestratorServiceAddr', `127.0.0.1:${orchPort}`, '-localOrchestratorCapacity', '16'],
      ...['-localOrchestratorSecret', secret, '-v', '0'],
    ]);
    try {
      await waitUntil(
        () => {
          if (orchestrator?.exited) throw new Error('exited');
          return orchestrator!.lines.some((l) => l.includes('listening on'));
        },
        30_000,
        'the local orchestrator to listen',
      );
    } catch (err) {
      await orchestrator.stop();
      throw new Error(
        `the local orchestrator did not start (${(err as Error).message}); its output:\n${orchestrator.tail()}`,
      );
    }
  }
  const profileDir = opts.cpuProf ? mkdtempSync(join(os.tmpdir(), 'lpgw-bench-prof-')) : undefined;
  const nodeFlags = [
    ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
    ...gatewayNodeFlags(),
  ];
  const args = [
    ...['-httpAddr', `127.0.0.1:${httpPort}`, '-liveMaxStreams', '16', '-v', '0'],
    ...['-rtmpAddr', `127.0.0.1:${rtmpPort}`],
    ...(orchestrator
      ? ['-orchAddr', `https://127.0.0.1:${orchPort}`, '-orchSecret', secret]
      : ['-localOrchestratorServiceAddr', `127.0.0.1:${orchPort}`, '-localOrchestratorCapacity', '16']),
  ];
  const child = spawnTs('gateway', 'src/main.ts', args, nodeFlags);
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await waitUntil(
      async () => {
        if (child.exited) throw new Error(`exited with ${child.exited.code ?? child.exited.signal}`);
        try {
          const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
          return res.ok;
        } catch {
          return false;
        }
      },
      30_000,
      `GET ${base}/healthz`,
    );
  } catch (err) {
    await child.stop();
    await orchestrator?.stop();
    throw new Error(
      `the gateway did not start (${(err as Error).message}).\n` +
        `command: node ${['--import', 'tsx', 'src/main.ts', ...args].join(' ')}\n` +
        `its output:\n${child.tail()}`,
    );
  }
  return { child, orchestrator, base, profileDir, rtmpPort };
}

// ---------------------------------------------------------------------------------------------
// WHIP / WHEP over HTTP (the test clients' peers, with our own POSTs so each step can be timed)

async function postSdp(url: string, sdp: string): Promise<{ answerSdp: string; resourceUrl: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp' },
    body: sdp,
    signal: AbortSignal.timeout(20_000),
  });
  const body = await res.text();
  if (res.status !== 201) throw new Error(`POST ${url}: ${res.status} ${body}`);
  const location = res.headers.get('location');
  if (!location) throw new Error(`POST ${url}: 201 without Location`);
  return { answerSdp: body, resourceUrl: new URL(location, url).toString() };
}

async function deleteResource(url: string | undefined): Promise<void> {
  if (!url) return;
  try {
    await fetch(url, { method: 'DELETE', signal: AbortSignal.timeout(5000) });
  } catch {
    // Gone already, or the gateway is down: closing the peer is what matters.
  }
}

interface ViewerClient {
  peer: WeriftViewer;
  resourceUrl?: string;
  frames: number;
  firstFrameAt?: number;
  /** Frames completed during the measuring window (set by the caller). */
  windowStartFrames: number;
  lastFrameAt?: number;
  /** Longest gap between two frames since the caller last reset it, ms. */
  maxGapMs: number;
}

interface StreamClient {
  name: string;
  publisher: WeriftPublisher;
  resourceUrl?: string;
  viewers: ViewerClient[];
  stopped: boolean;
  pump?: Promise<void>;
  videoFramesSent: number;
  /** performance.now() when each clip frame (by index) last finished sending. */
  sendTimes: Float64Array;
  /** Client-side latencies (publisher last packet sent → viewer frame complete), ms, with the clip frame index. */
  latencies: { ms: number; index: number }[];
}

class Clip {
  readonly video: RtpFrame[];
  readonly audio: RtpFrame[];
  readonly durationMs: number;
  /** sha1 of each frame's last slice NAL unit → frame index (passthrough keeps slices byte-exact). */
  readonly indexBySlice = new Map<string, number>();
  readonly events: { at: number; kind: 'video' | 'audio'; index: number }[];

  constructor(
    annexB: Buffer,
    readonly fps: number,
  ) {
    this.video = h264Frames(annexB, fps);
    this.durationMs = (this.video.length * 1000) / fps;
    this.audio = syntheticOpusFrames(Math.round(this.durationMs / 20));
    splitAccessUnits(annexB).forEach((nalus, i) => {
      const key = sliceKey(nalus);
      if (key) this.indexBySlice.set(key, i);
    });
    this.events = [
      ...this.video.map((_, index) => ({ at: (index * 1000) / fps, kind: 'video' as const, index })),
      ...this.audio.map((_, index) => ({ at: index * 20, kind: 'audio' as const, index })),
    ].sort((a, b) => a.at - b.at);
  }
}

function sliceKey(nalus: Uint8Array[]): string | undefined {
  for (let i = nalus.length - 1; i >= 0; i--) {
    const type = nalus[i][0] & 0x1f;
    if (type === 1 || type === 5) return createHash('sha1').update(nalus[i]).digest('base64');
  }
  return undefined;
}

async function closePeer(pc: { close(): Promise<void> }): Promise<void> {
  await withTimeout(pc.close(), 5000, 'closing a peer').catch(() => {});
}

/** Sends the clip in real time, looping it with continuous timestamps, until `stream.stopped`. */
async function pump(
  stream: StreamClient,
  clip: Pick<Clip, 'video' | 'audio' | 'durationMs' | 'events'>,
): Promise<void> {
  const { publisher } = stream;
  const videoLoopTicks = Math.round((clip.durationMs * 90000) / 1000);
  const audioLoopTicks = clip.audio.length * 960;
  const started = now();
  for (let loop = 0; !stream.stopped; loop++) {
    for (const event of clip.events) {
      if (stream.stopped) return;
      const wait = started + loop * clip.durationMs + event.at - now();
      if (wait > 1) await sleep(wait);
      if (stream.stopped) return;
      if (event.kind === 'video') {
        const frame = clip.video[event.index];
        const timestamp = (frame.timestamp + loop * videoLoopTicks) >>> 0;
        await publisher.send({ video: [{ timestamp, payloads: frame.payloads }], realtime: false });
        stream.sendTimes[event.index] = now();
        stream.videoFramesSent++;
      } else {
        const frame = clip.audio[event.index];
        const timestamp = (frame.timestamp + loop * audioLoopTicks) >>> 0;
        await publisher.send({ audio: [{ timestamp, payloads: frame.payloads }], realtime: false });
      }
      // The test publisher keeps every packet it sent; we do not need them.
      if (publisher.sent.length > 2000) publisher.sent.length = 0;
    }
  }
}

function streamUrl(base: string, name: string, what: string): string {
  return `${base}/live/video-to-video/${name}/${what}`;
}

function newViewer(stream: StreamClient, clip: Clip, measureLatency: boolean): ViewerClient {
  const peer = new WeriftViewer();
  const viewer: ViewerClient = { peer, frames: 0, windowStartFrames: 0, maxGapMs: 0 };
  peer.onFrame((unit: AccessUnit) => {
    const at = now();
    viewer.frames++;
    viewer.firstFrameAt ??= at;
    if (viewer.lastFrameAt !== undefined)
      viewer.maxGapMs = Math.max(viewer.maxGapMs, at - viewer.lastFrameAt);
    viewer.lastFrameAt = at;
    if (measureLatency) {
      const key = sliceKey(unit.nalus);
      const index = key === undefined ? undefined : clip.indexBySlice.get(key);
      if (index !== undefined && stream.sendTimes[index] > 0) {
        stream.latencies.push({ ms: at - stream.sendTimes[index], index });
      }
    }
    // The test viewer keeps every packet and frame; keep memory flat.
    if (peer.frames.length > 300) peer.frames.length = 0;
    if (peer.packets.length > 5000) peer.packets.length = 0;
  });
  return viewer;
}

async function connectViewer(base: string, stream: StreamClient, viewer: ViewerClient): Promise<void> {
  const offer = await withTimeout(viewer.peer.createOffer(), 10_000, 'viewer ICE gathering');
  const { answerSdp, resourceUrl } = await postSdp(streamUrl(base, stream.name, 'whep'), offer);
  viewer.resourceUrl = resourceUrl;
  await viewer.peer.applyAnswer(answerSdp, 10_000);
}

function newStream(name: string, clip: Clip): StreamClient {
  return {
    name,
    publisher: new WeriftPublisher(),
    viewers: [],
    stopped: false,
    videoFramesSent: 0,
    sendTimes: new Float64Array(clip.video.length),
    latencies: [],
  };
}

/** Publishes (WHIP), connects `viewers` WHEP viewers, and starts sending. */
async function openStream(
  base: string,
  name: string,
  clip: Clip,
  viewers: number,
  measureLatency = false,
): Promise<StreamClient> {
  const stream = newStream(name, clip);
  try {
    const offer = await withTimeout(stream.publisher.createOffer(), 10_000, 'publisher ICE gathering');
    const { answerSdp, resourceUrl } = await postSdp(streamUrl(base, name, 'whip?model=passthrough'), offer);
    stream.resourceUrl = resourceUrl;
    await stream.publisher.applyAnswer(answerSdp, 10_000);
    for (let i = 0; i < viewers; i++) {
      const viewer = newViewer(stream, clip, measureLatency);
      stream.viewers.push(viewer);
      await connectViewer(base, stream, viewer);
    }
    stream.pump = pump(stream, clip);
    return stream;
  } catch (err) {
    await closeStream(base, stream);
    throw err;
  }
}

async function closeStream(base: string, stream: StreamClient): Promise<void> {
  stream.stopped = true;
  await withTimeout(stream.pump ?? Promise.resolve(), 5000, 'the sender to stop').catch(() => {});
  for (const viewer of stream.viewers) {
    await deleteResource(viewer.resourceUrl);
    await closePeer(viewer.peer);
  }
  await deleteResource(stream.resourceUrl);
  await closePeer(stream.publisher);
  // The next measurement starts from a gateway without this stream.
  await waitUntil(
    async () => {
      try {
        const res = await fetch(streamUrl(base, stream.name, 'status'), {
          signal: AbortSignal.timeout(2000),
        });
        if (res.status === 404) return true;
        // Ended streams stay visible in status for a while, with state 'ended'.
        return ((await res.json()) as { state?: string }).state === 'ended';
      } catch {
        return true;
      }
    },
    10_000,
    `stream ${stream.name} to end`,
  ).catch((err) => console.error(`  warning: ${(err as Error).message}`));
}

interface StreamStatus {
  state: string;
  input: { fps: number; bitrateKbps: number; segments: number; framesDropped: number };
  output: { fps: number; bitrateKbps: number; segments: number };
  latencyMs: { p50: number; p95: number; frames: number } | null;
  lastError: string | null;
}

async function streamStatus(base: string, name: string): Promise<StreamStatus | undefined> {
  try {
    const res = await fetch(streamUrl(base, name, 'status'), { signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    return (await res.json()) as StreamStatus;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface TtffRun {
  totalMs: number;
  whip201Ms: number;
  publisherConnectedMs: number;
  viewerConnectedMs: number;
  sendToFirstFrameMs: number;
}

/**
 * Timer starts before the publisher's offer; WHEP is POSTed right after WHIP's 201 (the publisher's
 * ICE/DTLS runs meanwhile); sending starts once both are connected; the timer stops at the first
 * complete access unit at the viewer.
 */
async function timeToFirstFrame(base: string, clip: Clip, run: number): Promise<TtffRun> {
  const name = `bench-ttff-${run}-${Date.now() % 100000}`;
  const t0 = now();
  const stream = newStream(name, clip);
  try {
    const offer = await withTimeout(stream.publisher.createOffer(), 10_000, 'publisher ICE gathering');
    const { answerSdp, resourceUrl } = await postSdp(streamUrl(base, name, 'whip?model=passthrough'), offer);
    stream.resourceUrl = resourceUrl;
    const t201 = now();
    const viewer = newViewer(stream, clip, false);
    stream.viewers.push(viewer);
    const [tPublisher, tViewer] = await Promise.all([
      stream.publisher.applyAnswer(answerSdp, 10_000).then(now),
      connectViewer(base, stream, viewer).then(now),
    ]);
    const tSend = now();
    stream.pump = pump(stream, clip);
    await waitUntil(() => viewer.firstFrameAt !== undefined, 10_000, 'the first frame at the viewer');
    const tFirst = viewer.firstFrameAt!;
    return {
      totalMs: tFirst - t0,
      whip201Ms: t201 - t0,
      publisherConnectedMs: tPublisher - t0,
      viewerConnectedMs: tViewer - t0,
      sendToFirstFrameMs: tFirst - tSend,
    };
  } finally {
    await closeStream(base, stream);
  }
}

interface RtmpRun {
  /** ffmpeg started → first processed frame at a WHEP viewer. */
  totalMs: number;
  /** The gateway's CPU (% of one core) with this one RTMP stream and its viewer, idle subtracted. */
  cpuPercent: number;
}

/**
 * An RTMP publish as OBS sends it (ffmpeg: H.264 High with B-frames, 2 s GOP, AAC) through the
 * gateway to a WHEP viewer: time to first frame, then the gateway's CPU over `cpuWindowMs`.
 */
async function rtmpStream(
  gateway: Gateway,
  clip: Clip,
  idlePercent: number,
  cpuWindowMs: number,
): Promise<RtmpRun> {
  const name = `bench-rtmp-${Date.now() % 100000}`;
  const t0 = now();
  const ffmpeg = spawn(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-re'],
      ...['-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine'],
      ...['-t', String(Math.ceil(cpuWindowMs / 1000) + 30)],
      ...[
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-profile:v',
        'high',
        '-bf',
        '2',
        '-g',
        '60',
        '-c:a',
        'aac',
      ],
      ...['-f', 'flv', `rtmp://127.0.0.1:${gateway.rtmpPort}/live/${name}?model=passthrough`],
    ],
    { stdio: 'ignore' },
  );
  const stream = newStream(name, clip);
  try {
    const viewer = newViewer(stream, clip, false);
    stream.viewers.push(viewer);
    // The stream exists once the publish is accepted: until then WHEP answers 404.
    await waitUntil(
      async () => {
        try {
          await connectViewer(gateway.base, stream, viewer);
          return true;
        } catch {
          return false;
        }
      },
      15_000,
      'the RTMP stream to take a viewer',
    );
    await waitUntil(() => viewer.firstFrameAt !== undefined, 20_000, 'the first frame at the viewer');
    const totalMs = viewer.firstFrameAt! - t0;
    const ticksPerSecond = clockTicksPerSecond();
    const before = processTicks(gateway.child.pid);
    const t1 = now();
    await sleep(cpuWindowMs);
    const cpu = (100 * (processTicks(gateway.child.pid) - before)) / ticksPerSecond / ((now() - t1) / 1000);
    return { totalMs, cpuPercent: cpu - idlePercent };
  } finally {
    ffmpeg.kill('SIGKILL');
    await closeStream(gateway.base, stream);
  }
}

interface LatencyResult {
  server?: { p50: number; p95: number; frames: number };
  client: { p50: number; p95: number; max: number; frames: number };
  /** Client-side p50 of keyframes, of the frame right after a keyframe, and of the rest. */
  clientByKind: { keyframe: number; afterKeyframe: number; other: number };
  unmatched: number;
  status?: StreamStatus;
}

async function latency(base: string, clip: Clip, windowMs: number): Promise<LatencyResult> {
  const stream = await openStream(base, `bench-latency-${Date.now() % 100000}`, clip, 1, true);
  try {
    const viewer = stream.viewers[0];
    await waitUntil(() => viewer.frames > 0, 10_000, 'the first frame at the viewer');
    await sleep(windowMs);
    const status = await streamStatus(base, stream.name);
    const l = stream.latencies.map((x) => x.ms);
    const gop = clip.fps; // GOP 1 s
    const of = (keep: (index: number) => boolean) =>
      median(stream.latencies.filter((x) => keep(x.index)).map((x) => x.ms));
    if (process.env.BENCH_DEBUG) {
      console.error(stream.latencies.map((x) => `${x.index}:${x.ms.toFixed(0)}`).join(' '));
    }
    return {
      server: status?.latencyMs ?? undefined,
      client: { p50: median(l), p95: percentile(l, 0.95), max: Math.max(...l), frames: l.length },
      clientByKind: {
        keyframe: of((i) => i % gop === 0),
        afterKeyframe: of((i) => i % gop === 1),
        other: of((i) => i % gop > 1),
      },
      unmatched: viewer.frames - l.length,
      status,
    };
  } finally {
    await closeStream(base, stream);
  }
}

interface JoinRun {
  /** WHEP POST sent → answer received. */
  answerMs: number;
  /** Answer received → the first complete frame at the viewer (ICE + DTLS + the hub's start). */
  answerToFirstFrameMs: number;
  /** … of which answer → the viewer's peer connected (ICE + DTLS, both ends). */
  connectMs: number;
  /** The first frame is a keyframe with SPS and PPS in front. */
  startsWithParameterSets: boolean;
  /** Frames of its first second, and what ffmpeg says decoding them (empty: clean). */
  framesDecoded: number;
  framesReceived: number;
  decodeErrors: string;
  /** Machine-wide UDP receive-buffer drops while this viewer joined (/proc/net/snmp). */
  udpDrops: number;
}

/**
 * Viewers join one running stream one after another, each at a random point of the GOP (the clip's
 * GOP is 1 s), and leave after a second of video; what they got is decoded with ffmpeg.
 */
async function viewerJoins(
  base: string,
  clip: Clip,
  joins: number,
): Promise<{ runs: JoinRun[]; failed: string[] }> {
  const stream = await openStream(base, `bench-join-${Date.now() % 100000}`, clip, 0);
  const runs: JoinRun[] = [];
  const failed: string[] = [];
  try {
    await sleep(2000);
    for (let i = 0; i < joins; i++) {
      await sleep(300 + Math.random() * 700);
      const viewer = newViewer(stream, clip, false);
      stream.viewers.push(viewer);
      try {
        const offer = await withTimeout(viewer.peer.createOffer(), 10_000, 'viewer ICE gathering');
        const udpBefore = udpRcvbufErrors();
        const t0 = now();
        const { answerSdp, resourceUrl } = await postSdp(streamUrl(base, stream.name, 'whep'), offer);
        const tAnswer = now();
        viewer.resourceUrl = resourceUrl;
        await viewer.peer.applyAnswer(answerSdp, 10_000);
        const tConnected = now();
        await waitUntil(() => viewer.firstFrameAt !== undefined, 10_000, 'the joining viewer’s first frame');
        await waitUntil(() => viewer.frames >= 30, 10_000, 'a second of frames at the joining viewer');
        // In sequence order, as a player's jitter buffer hands them on (the test viewer has none:
        // a retransmitted packet would otherwise make a frame out of order). The viewer helper
        // trims its packet list past 5000; a second of packets is below that.
        const units = framesInSequenceOrder(viewer.peer.videoPackets).slice(0, 30);
        const report = await h264DecodeReport(toAnnexB(units));
        const types = units[0]?.nalus.map((n) => n[0] & 0x1f) ?? [];
        if (process.env.BENCH_DEBUG) {
          console.error(
            `join ${i}: ${units.length} frames, ${report.frames} decoded, first ${types.join(',')}, errors: ${report.errors}`,
          );
        }
        runs.push({
          answerMs: tAnswer - t0,
          answerToFirstFrameMs: (viewer.firstFrameAt as number) - tAnswer,
          connectMs: tConnected - tAnswer,
          startsWithParameterSets: units[0]?.keyframe === true && types[0] === 7 && types[1] === 8,
          framesDecoded: report.frames,
          framesReceived: units.length,
          decodeErrors: report.errors,
          udpDrops: udpRcvbufErrors() - udpBefore,
        });
      } catch (err) {
        failed.push(`join ${i + 1}: ${(err as Error).message}`);
      } finally {
        await deleteResource(viewer.resourceUrl);
        await closePeer(viewer.peer);
        stream.viewers.splice(stream.viewers.indexOf(viewer), 1);
      }
    }
  } finally {
    await closeStream(base, stream);
  }
  return { runs, failed };
}

interface LoadResult {
  streams: number;
  viewers: number;
  gatewayCpuPct: number;
  orchestratorCpuPct?: number;
  benchCpuPct: number;
  /** The rest of the machine, % of one core: every other process, interrupt/softirq time, hypervisor steal. */
  otherProcessesPct: number;
  busiestOthers: string[];
  irqPct: number;
  stealPct: number;
  publisherFps: { min: number; avg: number };
  viewerFps: { min: number; avg: number };
  viewerFramesDropped: number;
  maxViewerGapMs: number;
  udpDrops: number;
  serverLatency: { p50: number; p95: number };
  inputFramesDropped: number;
  errors: string[];
}

async function load(
  gateway: Gateway,
  clip: Clip,
  count: number,
  opts: BenchOptions,
  ticksPerSecond: number,
): Promise<LoadResult> {
  const streams: StreamClient[] = [];
  const errors: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      streams.push(
        await openStream(
          gateway.base,
          `bench-load${count}-${i}-${Date.now() % 100000}`,
          clip,
          opts.viewersPerStream,
        ),
      );
    }
    await sleep(opts.warmupMs);
    const viewers = streams.flatMap((s) => s.viewers);
    for (const v of viewers) {
      v.windowStartFrames = v.frames;
      v.maxGapMs = 0;
    }
    const sentBefore = streams.map((s) => s.videoFramesSent);
    const droppedBefore = viewers.reduce((n, v) => n + v.peer.framesDropped, 0);
    const gwBefore = processTicks(gateway.child.pid);
    const orchBefore = gateway.orchestrator ? processTicks(gateway.orchestrator.pid) : 0;
    const benchBefore = benchCpuMs();
    const udpBefore = udpRcvbufErrors();
    const machineBefore = machineTicks();
    const ours = [
      process.pid,
      gateway.child.pid,
      ...(gateway.orchestrator ? [gateway.orchestrator.pid] : []),
    ];
    const othersBefore = otherProcessTicks(ours);
    const t0 = now();
    await sleep(opts.windowMs);
    const seconds = (now() - t0) / 1000;
    const gwTicks = processTicks(gateway.child.pid) - gwBefore;
    const orchTicks = gateway.orchestrator ? processTicks(gateway.orchestrator.pid) - orchBefore : 0;
    const benchMs = benchCpuMs() - benchBefore;
    const udpDrops = udpRcvbufErrors() - udpBefore;
    const machineAfter = machineTicks();
    const others = otherProcessDelta(othersBefore, otherProcessTicks(ours));
    const pctOf = (ticks: number) => (100 * ticks) / ticksPerSecond / seconds;
    const viewerFps = viewers.map((v) => (v.frames - v.windowStartFrames) / seconds);
    const publisherFps = streams.map((s, i) => (s.videoFramesSent - sentBefore[i]) / seconds);
    const statuses = await Promise.all(streams.map((s) => streamStatus(gateway.base, s.name)));
    for (const [i, st] of statuses.entries()) {
      if (!st) errors.push(`${streams[i].name}: no status`);
      else if (st.lastError) errors.push(`${streams[i].name}: ${st.lastError}`);
    }
    const p50s = statuses.flatMap((s) => (s?.latencyMs ? [s.latencyMs.p50] : []));
    const p95s = statuses.flatMap((s) => (s?.latencyMs ? [s.latencyMs.p95] : []));
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      streams: count,
      viewers: viewers.length,
      gatewayCpuPct: (100 * gwTicks) / ticksPerSecond / seconds,
      orchestratorCpuPct: gateway.orchestrator ? (100 * orchTicks) / ticksPerSecond / seconds : undefined,
      benchCpuPct: benchMs / 10 / seconds,
      stealPct: pctOf(machineAfter.steal - machineBefore.steal),
      otherProcessesPct: pctOf(others.ticks),
      busiestOthers: others.top.map((o) => `${o.command} (${fmt(pctOf(o.ticks))} %)`),
      irqPct: pctOf(machineAfter.irq - machineBefore.irq),
      publisherFps: { min: Math.min(...publisherFps), avg: avg(publisherFps) },
      viewerFps: { min: Math.min(...viewerFps), avg: avg(viewerFps) },
      viewerFramesDropped: viewers.reduce((n, v) => n + v.peer.framesDropped, 0) - droppedBefore,
      maxViewerGapMs: Math.max(...viewers.map((v) => v.maxGapMs)),
      udpDrops,
      serverLatency: { p50: median(p50s), p95: Math.max(...p95s) },
      inputFramesDropped: statuses.reduce((n, s) => n + (s?.input.framesDropped ?? 0), 0),
      errors,
    };
  } finally {
    for (const s of streams) s.stopped = true;
    for (const s of streams) await closeStream(gateway.base, s);
  }
}

interface LoopWindow {
  /** The gateway's own event-loop delay (prom-client's monitorEventLoopDelay, 10 ms resolution). */
  loopLagMaxMs: number;
  loopLagP99Ms: number;
  viewerFps: { min: number; avg: number };
  maxViewerGapMs: number;
}

interface OfferReply {
  name: string;
  what: 'WHIP' | 'WHEP';
  status: number;
  ms: number;
  bytes: number;
}

interface OfferStormResult {
  streams: number;
  viewers: number;
  /** The same streams over a window without offers, first. */
  baseline: LoopWindow;
  /** OFFER_BURST captured Chrome offers at once: what any burst of clients costs. */
  normal: { window: LoopWindow; offers: OfferReply[] };
  /** OFFER_BURST worst-case offers at once. */
  worst: { window: LoopWindow; offers: OfferReply[] };
}

/** The gateway's event-loop lag gauges; each scrape also resets prom-client's histogram. */
async function loopLag(base: string): Promise<{ maxMs: number; p99Ms: number }> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const gauge = (name: string) =>
    Number(
      new RegExp(`^livepeer_gateway_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1],
    ) * 1000;
  return { maxMs: gauge('max'), p99Ms: gauge('p99') };
}

/** Runs `during` at the start of a window of windowMs and measures the gateway loop and the viewers. */
async function loopWindow(
  base: string,
  viewers: ViewerClient[],
  windowMs: number,
  during: () => Promise<void>,
): Promise<LoopWindow> {
  for (const v of viewers) {
    v.windowStartFrames = v.frames;
    v.maxGapMs = 0;
  }
  await loopLag(base);
  const t0 = now();
  await during();
  await sleep(Math.max(0, windowMs - (now() - t0)));
  const seconds = (now() - t0) / 1000;
  const lag = await loopLag(base);
  const fps = viewers.map((v) => (v.frames - v.windowStartFrames) / seconds);
  return {
    loopLagMaxMs: lag.maxMs,
    loopLagP99Ms: lag.p99Ms,
    viewerFps: { min: Math.min(...fps), avg: fps.reduce((a, b) => a + b, 0) / fps.length },
    maxViewerGapMs: Math.max(...viewers.map((v) => v.maxGapMs)),
  };
}

const OFFER_BURST = 10;

/**
 * 4 streams × viewers run; a window without offers, then one where OFFER_BURST worst-case offers at
 * the SDP size limit (half WHIP to new streams, half WHEP to a live one) are POSTed at once.
 */
async function offersUnderLoad(gateway: Gateway, clip: Clip, opts: BenchOptions): Promise<OfferStormResult> {
  const streams: StreamClient[] = [];
  const created: string[] = [];
  const burst = async (
    offers: OfferReply[],
    pick: (i: number) => { name: string; whip: string; whep: string },
  ) => {
    const replies = await Promise.all(
      Array.from({ length: OFFER_BURST }, async (_, i) => {
        const offer = pick(i);
        const what = i % 2 === 0 ? 'WHIP' : 'WHEP';
        const url =
          what === 'WHIP'
            ? streamUrl(gateway.base, `bench-offer-${i}-${Date.now() % 100000}`, 'whip?model=passthrough')
            : streamUrl(gateway.base, streams[0].name, 'whep');
        const sdp = what === 'WHIP' ? offer.whip : offer.whep;
        const started = now();
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/sdp' },
          body: sdp,
          signal: AbortSignal.timeout(20_000),
        });
        await res.text();
        const location = res.headers.get('location');
        if (res.status === 201 && location) created.push(new URL(location, url).toString());
        return {
          name: offer.name,
          what,
          status: res.status,
          ms: now() - started,
          bytes: Buffer.byteLength(sdp),
        } as const;
      }),
    );
    offers.push(...replies);
  };
  const clean = async () => {
    for (const url of created.splice(0)) await deleteResource(url);
    await sleep(1000);
  };
  try {
    for (let i = 0; i < 4; i++) {
      streams.push(
        await openStream(
          gateway.base,
          `bench-offers-${i}-${Date.now() % 100000}`,
          clip,
          opts.viewersPerStream,
        ),
      );
    }
    await sleep(opts.warmupMs);
    const viewers = streams.flatMap((s) => s.viewers);
    const baseline = await loopWindow(gateway.base, viewers, opts.windowMs, async () => {});
    const fixture = (name: string) => readFileSync(join(ROOT, 'test/webrtc/fixtures', name), 'utf8');
    const captured = {
      name: 'Chrome',
      whip: fixture('chrome-whip-offer.sdp'),
      whep: fixture('chrome-whep-offer.sdp'),
    };
    const normal: OfferReply[] = [];
    const normalWindow = await loopWindow(gateway.base, viewers, opts.windowMs, () =>
      burst(normal, () => captured),
    );
    await clean();
    const cases = worstCaseOffers();
    const worst: OfferReply[] = [];
    const worstWindow = await loopWindow(gateway.base, viewers, opts.windowMs, () =>
      burst(worst, (i) => {
        const c = cases[i % cases.length];
        return { name: c.name, whip: c.sdp, whep: c.sdp.replaceAll('a=sendonly', 'a=recvonly') };
      }),
    );
    return {
      streams: streams.length,
      viewers: viewers.length,
      baseline,
      normal: { window: normalWindow, offers: normal },
      worst: { window: worstWindow, offers: worst },
    };
  } finally {
    await clean();
    for (const s of streams) s.stopped = true;
    for (const s of streams) await closeStream(gateway.base, s);
  }
}

async function idleCpu(gateway: Gateway, ms: number, ticksPerSecond: number): Promise<number> {
  const before = processTicks(gateway.child.pid);
  const t0 = now();
  await sleep(ms);
  return (100 * (processTicks(gateway.child.pid) - before)) / ticksPerSecond / ((now() - t0) / 1000);
}

/** Log lines grouped by level + message + reason, stream names and numbers blanked out. */
function groupProblems(lines: string[]): [string, number][] {
  const counts = new Map<string, number>();
  for (const line of lines) {
    let key = line;
    try {
      const entry = JSON.parse(line) as {
        level?: number;
        msg?: string;
        reason?: string;
        err?: { message?: string };
      };
      const level = entry.level === 40 ? 'warn' : entry.level === 50 ? 'error' : `level ${entry.level}`;
      key = `${level}: ${entry.msg ?? ''}${entry.reason ? ` (${entry.reason})` : ''}${entry.err?.message ? ` (${entry.err.message})` : ''}`;
    } catch {
      // not JSON: keep the line
    }
    key = key.replace(/\d+/g, '#');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

// ---------------------------------------------------------------------------------------------
// On chain: event-loop delay while a 5th stream starts with a full prepayment

/** Ticket EV and price of the payments benchmark (bench/payments.ts): 60 s prepaid = 249 tickets. */
const PREPAY_TICKET_EV = 8_000_000_000n;
const PREPAY_PRICE_PER_PIXEL = 1200n;
/** prom-client's event-loop monitor resolution (its default): every sample includes it. */
const ELD_RESOLUTION_MS = 10;
const PREPAY_PASSWORD = 'bench on chain';
/** The on-chain phase's clip bitrate unless --clip-kbps is given. */
const PREPAY_CLIP_KBPS = 2500;

interface DelayWindow {
  /** Worst p99 of the windows, and the largest single delay, ms (resolution taken off). */
  p99: number;
  max: number;
  intervals: number;
  /** Every window's p99, ms. */
  p99s: number[];
}

interface PrepayResult {
  ticketsPerStart: number[];
  steady: DelayWindow;
  starting: DelayWindow;
  startToFirstFrameMs: number[];
  /** Longest gap between frames at the running streams' viewers while the 5th started. */
  runningMaxGapMs: number;
  otherProcessesPct: number;
  /** CPU during the start windows, % of one core: the gateway, the orchestrator, this process (peers, chain). */
  gatewayPct: number;
  orchestratorPct: number;
  benchPct: number;
  busiestOthers: string[];
  errors: string[];
  /** Warning and error lines of the on-chain gateway and orchestrator. */
  problems: string[];
  /** With --cpu-prof: where the on-chain gateway's profile went. */
  profileDir?: string;
}

async function scrapeEventLoop(base: string): Promise<{ p99: number; max: number } | undefined> {
  try {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    const read = (name: string) => {
      const m = new RegExp(`^livepeer_gateway_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text);
      return m ? Math.max(0, Number(m[1]) * 1000 - ELD_RESOLUTION_MS) : Number.NaN;
    };
    return { p99: read('p99'), max: read('max') };
  } catch {
    return undefined;
  }
}

/**
 * The gateway's event-loop delay over one window: a /metrics scrape at the start resets its
 * histogram (prom-client resets it on every scrape) and one at stop() reads it, so p99 is the p99
 * of every 10 ms sample in the window (a few seconds: hundreds of samples), not of a slice of it.
 */
function eventLoopWindow(base: string): { stop(): Promise<DelayWindow> } {
  const started = scrapeEventLoop(base);
  return {
    async stop() {
      await started;
      const s = await scrapeEventLoop(base);
      const ok = s !== undefined && Number.isFinite(s.p99);
      return {
        p99: ok ? s.p99 : Number.NaN,
        max: ok ? s.max : Number.NaN,
        intervals: ok ? 1 : 0,
        p99s: ok ? [s.p99] : [],
      };
    },
  };
}

const mergeWindows = (ws: DelayWindow[]): DelayWindow => ({
  p99: Math.max(...ws.map((w) => w.p99)),
  max: Math.max(...ws.map((w) => w.max)),
  intervals: ws.reduce((n, w) => n + w.intervals, 0),
  p99s: ws.flatMap((w) => w.p99s),
});

async function spawnOnChain(
  lc: LocalChain,
  dir: string,
  nodeFlags: string[],
  pricePerPixel: bigint,
): Promise<{ gateway: Child; orchestrator: Child; base: string; orchUrl: string }> {
  const [admin, orchAccount] = [lc.accounts[0]!, lc.accounts[1]!];
  const gatewayKey = join(dir, 'gateway.json');
  const orchKey = join(dir, 'orchestrator.json');
  writeFileSync(
    gatewayKey,
    JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PREPAY_PASSWORD, { n: 1024 })),
  );
  // test/helpers/local-chain.ts derives account i's key from this string.
  const orchSecret = keccak256(stringToBytes('lp-gateway test account 1'));
  writeFileSync(orchKey, JSON.stringify(await encryptKeystore(orchSecret, PREPAY_PASSWORD, { n: 1024 })));
  const chainArgs = [
    ...['-network', 'arbitrum-one-mainnet', '-ethUrl', lc.url, '-ethController', lc.controller],
    ...['--chainId', String(lc.chainId), '--aiServiceRegistry', lc.addresses.ServiceRegistry],
    ...['-ethPassword', PREPAY_PASSWORD],
  ];
  const orchPort = await freePort();
  const orchestrator = spawnTs('local orchestrator (on chain)', 'src/local-orchestrator/main.ts', [
    ...chainArgs,
    ...['-ethKeystorePath', orchKey, '-ticketEV', String(PREPAY_TICKET_EV)],
    ...['-localOrchestratorServiceAddr', `127.0.0.1:${orchPort}`, '-localOrchestratorCapacity', '16'],
    ...['-localOrchestratorModels', 'passthrough', '-liveDefaultModel', 'passthrough'],
    ...['-localOrchestratorPricePerUnit', String(pricePerPixel), '-v', '0'],
  ]);
  let orchUrl = '';
  await waitUntil(
    () => {
      if (orchestrator.exited) throw new Error(`the local orchestrator exited:\n${orchestrator.tail()}`);
      const line = orchestrator.lines.find((l) => l.startsWith('local orchestrator listening on '));
      orchUrl = line?.split(' ')[4] ?? '';
      return orchUrl !== '';
    },
    30_000,
    'the on-chain local orchestrator to listen',
  );
  await lc.send(admin, 'BondingManager', 'setTranscoder', [orchAccount.address, 1000n, true]);
  await lc.send(orchAccount, 'ServiceRegistry', 'setServiceURI', [orchUrl]);
  const httpPort = await freePort();
  const gateway = spawnTs(
    'gateway (on chain)',
    'src/cli.ts',
    [
      'start',
      ...chainArgs,
      ...['-ethKeystorePath', gatewayKey, '-httpAddr', `127.0.0.1:${httpPort}`, '-liveMaxStreams', '16'],
      ...['-v', '0'],
    ],
    nodeFlags,
  );
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await waitUntil(
      async () => {
        if (gateway.exited) throw new Error(`the gateway exited:\n${gateway.tail()}`);
        try {
          const res = await fetch(`${base}/orchestrators?model=passthrough`, {
            signal: AbortSignal.timeout(1000),
          });
          const { orchestrators } = (await res.json()) as { orchestrators: { url: string; state: string }[] };
          return orchestrators.some((o) => o.url === orchUrl && o.state === 'available');
        } catch {
          return false;
        }
      },
      60_000,
      'the on-chain gateway to list the orchestrator as available',
    );
  } catch (err) {
    await gateway.stop();
    await orchestrator.stop();
    throw new Error(`${(err as Error).message}; the gateway's output:\n${gateway.tail()}`);
  }
  return { gateway, orchestrator, base, orchUrl };
}

async function prepayPhase(clip: Clip, opts: BenchOptions, log: (m: string) => void): Promise<PrepayResult> {
  const result: PrepayResult = {
    ticketsPerStart: [],
    steady: { p99: Number.NaN, max: Number.NaN, intervals: 0, p99s: [] },
    starting: { p99: Number.NaN, max: Number.NaN, intervals: 0, p99s: [] },
    startToFirstFrameMs: [],
    runningMaxGapMs: 0,
    otherProcessesPct: Number.NaN,
    gatewayPct: Number.NaN,
    orchestratorPct: Number.NaN,
    benchPct: Number.NaN,
    busiestOthers: [],
    errors: [],
    problems: [],
  };
  log('on chain: starting ganache, the on-chain local orchestrator and gateway...');
  const lc = await startLocalChain();
  const dir = mkdtempSync(join(os.tmpdir(), 'lpgw-bench-chain-'));
  const streams: StreamClient[] = [];
  let children: { gateway: Child; orchestrator: Child; base: string } | undefined;
  try {
    const admin = lc.accounts[0]!;
    await lc.send(admin, 'RoundsManager', 'setRounds', [10n, 10n]);
    await lc.send(admin, 'RoundsManager', 'setBlockHashForRound', [10n, keccak256(stringToBytes('round'))]);
    await lc.send(admin, 'RoundsManager', 'setBlockNum', [5000n]);
    await lc.send(admin, 'TicketBroker', 'setCurrentRound', [10n]);
    const funds = 10n * 10n ** 18n;
    await lc.send(admin, 'TicketBroker', 'fundDepositAndReserve', [funds, funds], 2n * funds);
    result.profileDir = opts.cpuProf ? mkdtempSync(join(os.tmpdir(), 'lpgw-bench-prof-chain-')) : undefined;
    children = await spawnOnChain(
      lc,
      dir,
      [
        ...(result.profileDir ? ['--cpu-prof', '--cpu-prof-dir', result.profileDir] : []),
        ...gatewayNodeFlags(),
      ],
      opts.prepayFree ? 0n : PREPAY_PRICE_PER_PIXEL,
    );
    const { base, gateway, orchestrator } = children;
    // On a real deployment the publishers, viewers, chain and orchestrator run on other machines;
    // here they share two cores with the gateway. Niced, they take only the CPU the gateway leaves,
    // so its event-loop delay is its own work, not the scheduler's (--no-nice: everyone equal).
    if (opts.nice) {
      os.setPriority(orchestrator.pid, 10);
      os.setPriority(process.pid, 10);
    }
    const running = 4;
    log(`on chain: ${running} paid streams × 1 viewer...`);
    for (let i = 0; i < running; i++) streams.push(await openStream(base, `bench-paid-${i}`, clip, 1));
    await waitUntil(
      () => streams.every((s) => s.viewers[0]!.frames > 30),
      30_000,
      'frames at every paid stream',
    );
    await sleep(opts.warmupMs);
    const steady = eventLoopWindow(base);
    await sleep(opts.quick ? 3000 : 5000);
    result.steady = await steady.stop();
    const rounds = opts.quick ? 2 : 4;
    const windows: DelayWindow[] = [];
    const pids = [gateway.pid, orchestrator.pid, process.pid];
    const othersBefore = otherProcessTicks(pids);
    const ownBefore = pids.map(processTicks);
    const roundsStarted = now();
    let windowMs = 0;
    for (let r = 0; r < rounds; r++) {
      log(`on chain: a 5th stream starts with its prepayment (${r + 1}/${rounds})...`);
      for (const s of streams) s.viewers[0]!.maxGapMs = 0;
      const sampler = eventLoopWindow(base);
      await sleep(600); // one quiet interval before
      const t0 = now();
      const fifth = await openStream(base, `bench-fifth-${r}`, clip, 1).catch((err: Error) => {
        result.errors.push(`5th stream ${r + 1}: ${err.message}`);
        return undefined;
      });
      if (fifth) {
        try {
          await waitUntil(
            () => fifth.viewers[0]!.firstFrameAt !== undefined,
            20_000,
            'the 5th stream to play',
          );
          result.startToFirstFrameMs.push(fifth.viewers[0]!.firstFrameAt! - t0);
          await sleep(2000);
        } catch (err) {
          result.errors.push(`5th stream ${r + 1}: ${(err as Error).message}`);
        }
      }
      windows.push(await sampler.stop());
      windowMs += now() - t0 + 600;
      result.runningMaxGapMs = Math.max(
        result.runningMaxGapMs,
        ...streams.map((s) => s.viewers[0]!.maxGapMs),
      );
      if (fifth) {
        const status = (await streamStatus(base, fifth.name)) as
          | (StreamStatus & { payments?: { tickets: number }[] })
          | undefined;
        result.ticketsPerStart.push(status ? (status.payments?.[0]?.tickets ?? 0) : Number.NaN);
        await closeStream(base, fifth);
      }
      await sleep(1000);
    }
    const others = otherProcessDelta(othersBefore, otherProcessTicks(pids));
    const pct = (ticks: number) => (100 * ticks) / clockTicksPerSecond() / (windowMs / 1000);
    result.otherProcessesPct = pct(others.ticks);
    // Over the whole rounds (the windows, each stream's close and the second between rounds).
    const roundsSeconds = (now() - roundsStarted) / 1000;
    [result.gatewayPct, result.orchestratorPct, result.benchPct] = pids.map(
      (pid, i) => (100 * (processTicks(pid) - ownBefore[i]!)) / clockTicksPerSecond() / roundsSeconds,
    );
    result.busiestOthers = others.top.map((t) => t.command);
    result.starting = mergeWindows(windows);
    for (const s of streams) {
      const st = await streamStatus(base, s.name);
      if (st?.state !== 'live')
        result.errors.push(`${s.name} is ${st?.state ?? 'gone'}: ${st?.lastError ?? ''}`);
    }
  } finally {
    for (const s of streams.splice(0)) await closeStream(children?.base ?? '', s);
    try {
      if (opts.nice) os.setPriority(process.pid, 0);
    } catch {
      // Not root: this process stays niced until it exits.
    }
    result.problems = [...(children?.gateway.problems ?? []), ...(children?.orchestrator.problems ?? [])];
    await children?.gateway.stop();
    await children?.orchestrator.stop();
    await lc.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// CPU profile summary

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function summarizeProfile(dir: string): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) return [`(no .cpuprofile in ${dir})`];
  // The gateway's main thread writes the largest profile (tsx's loader thread writes a small one).
  const profiles = files
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: ProfileNode[] })
    .sort((a, b) => b.nodes.length - a.nodes.length);
  const { nodes } = profiles[0];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const where = (url: string): string => {
    if (!url) return '(native)';
    const path = url.startsWith('file://') ? fileURLToPath(url) : url;
    const nm = path.lastIndexOf('node_modules/');
    if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
    return path.startsWith('/') ? relative(ROOT, path) : path;
  };
  const nameOf = (node: ProfileNode): string => {
    const { functionName, url, lineNumber } = node.callFrame;
    // tsx-compiled files report line 0: leave the line out there.
    const line = url && lineNumber > 0 ? `:${lineNumber + 1}` : '';
    return `${functionName || '(anonymous)'} ${where(url)}${line}`;
  };
  const moduleOf = (node: ProfileNode): string => {
    const { functionName, url } = node.callFrame;
    if (!url) return functionName || '(native)';
    const file = where(url);
    if (file.startsWith('src/') || file.startsWith('node:')) return file;
    return file
      .split('/')
      .slice(0, file.startsWith('@') ? 2 : 1)
      .join('/');
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const node of nodes) {
    const hits = node.hitCount ?? 0;
    if (!hits) continue;
    total += hits;
    if (node.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + hits);
    add(self, nameOf(node));
    add(byModule, moduleOf(node));
    // Inclusive time of the project's own functions (each counted once per stack).
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id);
      if (!frame || !where(frame.callFrame.url).startsWith('src/')) continue;
      const key = nameOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(inclusive, key);
    }
  }
  const busy = total - idle;
  const top = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `| ${fmt((100 * v) / busy, 1)} % | \`${k}\` |`);
  return [
    '',
    `CPU profile of the gateway's main thread over the whole run (${files.length} file(s) in ${dir}): busy ` +
      `${fmt((100 * (total - idle)) / total, 1)} % of the time; shares below are of the busy time.`,
    '',
    '| self | function |',
    '|---:|---|',
    ...top(self, 25),
    '',
    '| self | module / file |',
    '|---:|---|',
    ...top(byModule, 12),
    '',
    '| inclusive | project function |',
    '|---:|---|',
    ...top(inclusive, 15),
  ];
}

// ---------------------------------------------------------------------------------------------
// Main

// ---------------------------------------------------------------------------------------------
// VP8 publisher: what a browser without H.264 costs (decode VP8 + encode H.264 in, encode VP8 out)

interface Vp8Result {
  seconds: number;
  /** % of one core, over the window. */
  gatewayCpuPct: number;
  ingestFfmpegCpuPct: number;
  vp8EncoderCpuPct: number;
  h264ViewerFps: number;
  vp8ViewerFps: number;
  publisherFps: number;
}

/** Child processes of `pid` with their command lines, from /proc. */
function childProcesses(pid: number): { pid: number; args: string }[] {
  const out: { pid: number; args: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      out.push({
        pid: Number(entry),
        args: readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '),
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function vp8Phase(gateway: Gateway, opts: BenchOptions, ticksPerSecond: number): Promise<Vp8Result> {
  // 640x480 30 fps: what Firefox sends from a webcam by default.
  const ivf = execFileSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x480:rate=30'],
      ...['-t', String(opts.clipSeconds), '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8'],
      // Keyframe every second like the H.264 clip: the bench publisher cannot answer a PLI after a loss.
      ...['-b:v', '1500k', '-g', '30', '-f', 'ivf', 'pipe:1'],
    ],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  const video = new IvfReader()
    .push(ivf)
    .map((f, i) => ({ timestamp: i * 3000, payloads: packetizeVp8(f.data, i) }));
  const durationMs = (video.length * 1000) / 30;
  const audio = syntheticOpusFrames(Math.round(durationMs / 20));
  const clip = {
    video,
    audio,
    durationMs,
    events: [
      ...video.map((_, index) => ({ at: (index * 1000) / 30, kind: 'video' as const, index })),
      ...audio.map((_, index) => ({ at: index * 20, kind: 'audio' as const, index })),
    ].sort((a, b) => a.at - b.at),
  };
  const name = `bench-vp8-${Date.now() % 100000}`;
  const stream: StreamClient = {
    name,
    publisher: new WeriftPublisher({ videoCodec: 'vp8' }),
    viewers: [],
    stopped: false,
    videoFramesSent: 0,
    sendTimes: new Float64Array(video.length),
    latencies: [],
  };
  const counter = (peer: WeriftViewer): ViewerClient => ({
    peer,
    frames: 0,
    windowStartFrames: 0,
    maxGapMs: 0,
  });
  try {
    const offer = await withTimeout(stream.publisher.createOffer(), 10_000, 'publisher ICE gathering');
    const { answerSdp, resourceUrl } = await postSdp(
      streamUrl(gateway.base, name, 'whip?model=passthrough'),
      offer,
    );
    stream.resourceUrl = resourceUrl;
    await stream.publisher.applyAnswer(answerSdp, 10_000);
    const h264 = counter(new WeriftViewer());
    const vp8 = counter(new WeriftViewer({ videoCodec: 'vp8' }));
    h264.peer.onFrame(() => {
      h264.frames++;
      if (h264.peer.frames.length > 300) h264.peer.frames.length = 0;
      if (h264.peer.packets.length > 5000) h264.peer.packets.length = 0;
    });
    stream.viewers.push(h264, vp8);
    for (const v of stream.viewers) await connectViewer(gateway.base, stream, v);
    stream.pump = pump(stream, clip);
    await sleep(opts.warmupMs);
    // VP8 frames at the VP8 viewer: one marker bit per frame.
    const vp8Frames = () => vp8.peer.packets.filter((p) => p.kind === 'video' && p.marker).length;
    const children = childProcesses(gateway.child.pid).filter((c) => c.args.includes('ffmpeg'));
    const ingest = children.filter((c) => c.args.includes('libx264')).map((c) => c.pid);
    const encoder = children.filter((c) => c.args.includes('libvpx')).map((c) => c.pid);
    if (!ingest.length || !encoder.length)
      throw new Error('the gateway runs no VP8 transcode (ffmpeg children not found)');
    const ticks = (pids: number[]) => pids.reduce((n, pid) => n + processTicks(pid), 0);
    const before = {
      gw: processTicks(gateway.child.pid),
      ingest: ticks(ingest),
      encoder: ticks(encoder),
      h264: h264.frames,
      vp8: vp8Frames(),
      sent: stream.videoFramesSent,
      at: now(),
    };
    await sleep(opts.windowMs);
    const seconds = (now() - before.at) / 1000;
    const pct = (t: number) => (t / ticksPerSecond / seconds) * 100;
    return {
      seconds,
      gatewayCpuPct: pct(processTicks(gateway.child.pid) - before.gw),
      ingestFfmpegCpuPct: pct(ticks(ingest) - before.ingest),
      vp8EncoderCpuPct: pct(ticks(encoder) - before.encoder),
      h264ViewerFps: (h264.frames - before.h264) / seconds,
      vp8ViewerFps: (vp8Frames() - before.vp8) / seconds,
      publisherFps: (stream.videoFramesSent - before.sent) / seconds,
    };
  } finally {
    await closeStream(gateway.base, stream);
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const ticksPerSecond = clockTicksPerSecond();
  const log = (msg: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${msg}`);

  log(`making a ${opts.clipSeconds} s 1280x720 30 fps H.264 clip...`);
  /** The bench's 1280x720 30 fps clip, bitrate capped at `kbps` (uncapped: undefined). */
  const makeClip = (kbps: number | undefined) =>
    makeH264Clip({ seconds: opts.clipSeconds, width: 1280, height: 720, fps: 30, dark: false, kbps });
  const annexB = await makeClip(opts.clipKbps);
  const clip = new Clip(annexB, 30);
  const clipKbps = (annexB.length * 8) / opts.clipSeconds / 1000;
  const packetsPerFrame = clip.video.reduce((n, f) => n + f.payloads.length, 0) / clip.video.length;

  let gateway: Gateway | undefined;
  if (!opts.prepayOnly) {
    log('starting the gateway...');
    gateway = await startGateway(opts);
  }
  let exitCode = 0;
  const watchdog = setTimeout(() => {
    console.error('bench: took over 10 minutes; giving up');
    void gateway?.child
      .stop(2000)
      .then(() => gateway?.orchestrator?.stop(2000))
      .finally(() => process.exit(1));
  }, 10 * 60_000);
  watchdog.unref();
  const onSignal = () => {
    void (gateway?.child.stop(2000) ?? Promise.resolve())
      .then(() => gateway?.orchestrator?.stop(2000))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const ttff: TtffRun[] = [];
  let lat: LatencyResult | undefined;
  let rtmp: RtmpRun | undefined;
  let joinRuns: JoinRun[] = [];
  const loads: LoadResult[] = [];
  let storm: OfferStormResult | undefined;
  const failures: string[] = [];
  let idle = Number.NaN;
  let prepay: PrepayResult | undefined;
  let prepayKbps: number | undefined;
  let vp8Result: Vp8Result | undefined;
  try {
    if (gateway) await offChainPhases(gateway);
  } catch (err) {
    failures.push((err as Error).message);
    exitCode = 1;
  } finally {
    if (gateway) {
      log('stopping the gateway...');
      await gateway.child.stop();
      await gateway.orchestrator?.stop();
    }
  }
  if ((opts.prepay || opts.prepayOnly) && !opts.vp8Only) {
    try {
      // The on-chain phase's streams run at what a browser sends for 720p30 (libwebrtc's ceiling
      // for 1280x720 is 2.5 Mbit/s), unless --clip-kbps says otherwise: its question is what a
      // start with a prepayment costs the loop, not how many 7.6 Mbit/s streams two cores carry.
      prepayKbps = opts.clipKbps ?? PREPAY_CLIP_KBPS;
      const prepayClip = prepayKbps === opts.clipKbps ? clip : new Clip(await makeClip(prepayKbps), 30);
      prepay = await prepayPhase(prepayClip, opts, log);
      for (const e of prepay.errors) failures.push(`on chain: ${e}`);
    } catch (err) {
      failures.push(`on chain: ${(err as Error).message}`);
    }
  }

  async function offChainPhases(gateway: Gateway): Promise<void> {
    if (opts.vp8) {
      log('VP8 publisher: one stream, an H.264 viewer and a VP8 viewer...');
      try {
        vp8Result = await vp8Phase(gateway, opts, ticksPerSecond);
      } catch (err) {
        failures.push(`VP8 publisher: ${(err as Error).message}`);
      }
      if (opts.vp8Only) return;
    }
    idle = await idleCpu(gateway, 2000, ticksPerSecond);

    log(`time to first frame: ${opts.ttffRuns} runs...`);
    // One unmeasured run first: the first stream pays for module loading and JIT warm-up.
    await timeToFirstFrame(gateway.base, clip, 0).catch((err) =>
      failures.push(`ttff warm-up: ${err.message}`),
    );
    for (let i = 1; i <= opts.ttffRuns; i++) {
      try {
        ttff.push(await timeToFirstFrame(gateway.base, clip, i));
      } catch (err) {
        failures.push(`ttff run ${i}: ${(err as Error).message}`);
      }
    }

    log('RTMP: one ffmpeg publish (H.264 High, B-frames, AAC) to a WHEP viewer...');
    try {
      rtmp = await rtmpStream(gateway, clip, idle, opts.quick ? 3000 : 8000);
    } catch (err) {
      failures.push(`rtmp: ${(err as Error).message}`);
    }

    log(`latency: one stream for ${opts.latencyWindowMs / 1000} s...`);
    try {
      lat = await latency(gateway.base, clip, opts.latencyWindowMs);
    } catch (err) {
      failures.push(`latency: ${(err as Error).message}`);
    }

    if (opts.joins > 0) {
      log(`viewer joins: ${opts.joins} viewers join a running stream...`);
      try {
        const joined = await viewerJoins(gateway.base, clip, opts.joins);
        joinRuns = joined.runs;
        for (const f of joined.failed) failures.push(`viewer ${f}`);
      } catch (err) {
        failures.push(`viewer joins: ${(err as Error).message}`);
      }
    }

    for (const count of opts.streams) {
      log(`CPU: ${count} stream(s) × ${opts.viewersPerStream} viewers...`);
      try {
        loads.push(await load(gateway, clip, count, opts, ticksPerSecond));
      } catch (err) {
        failures.push(`${count} streams: ${(err as Error).message}`);
      }
      if (gateway.child.exited) {
        failures.push(`the gateway exited (${gateway.child.exited.code ?? gateway.child.exited.signal})`);
        break;
      }
    }
    if (!gateway.child.exited) {
      log(`offers: ${OFFER_BURST} worst-case offers during 4 streams × ${opts.viewersPerStream} viewers...`);
      try {
        storm = await offersUnderLoad(gateway, clip, opts);
      } catch (err) {
        failures.push(`worst-case offers: ${(err as Error).message}`);
      }
    }
  }

  // ---- report
  const cpus = os.cpus();
  const out: string[] = [];
  out.push(
    `## lp-gateway live benchmark${opts.quick ? ' (--quick)' : ''}${opts.cpuProf ? ' (gateway under --cpu-prof: CPU figures inflated)' : ''}`,
  );
  out.push('');
  out.push(
    `Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ` +
      `${os.type()} ${os.release()}, Node ${process.version}. Gateway: child process (Node flags: ${gatewayNodeFlags().join(' ') || 'none'}), ` +
      (opts.prepayOnly
        ? 'on chain only'
        : opts.externalOrch
          ? 'local orchestrator in its own process'
          : 'embedded local orchestrator (same process)') +
      `, effect \`passthrough\`; all on 127.0.0.1.` +
      (opts.prepay || opts.prepayOnly
        ? ` On chain: ganache with our contract doubles in the bench process; the gateway (\`src/cli.ts start\`, keystore account) and the local orchestrator (\`-ticketEV ${PREPAY_TICKET_EV}\`, ${opts.prepayFree ? '0 wei/pixel: free, no tickets (--prepay-free, the control)' : `${PREPAY_PRICE_PER_PIXEL} wei/pixel`}) each in its own process${opts.nice ? '; the orchestrator and the bench process (peers, chain) niced +10, as if on other machines (--no-nice: not)' : ', all at the same priority (--no-nice)'}; its streams ${prepayKbps === undefined ? 'use the clip above' : `use the clip capped at ${prepayKbps} kbit/s (what a browser sends for 720p30; --clip-kbps to change)`}.`
        : ''),
  );
  out.push(
    `Clip: 1280x720 30 fps H.264 baseline, GOP 1 s, ${opts.clipSeconds} s looped, ${fmt(clipKbps)} kbit/s, ` +
      `${fmt(packetsPerFrame, 1)} RTP packets/frame, plus synthetic Opus 20 ms. Publishers and viewers are werift ` +
      `peers in the bench process.`,
  );
  out.push('');
  out.push('| measurement | value |');
  out.push('|---|---|');
  if (opts.prepayOnly) {
    // only the on-chain rows below
  } else if (ttff.length) {
    const col = (k: keyof TtffRun) => ttff.map((r) => r[k]);
    out.push(
      `| time to first frame, p50 / max (${ttff.length} runs) | **${fmt(median(col('totalMs')))} / ${fmt(Math.max(...col('totalMs')))} ms** |`,
    );
    out.push(
      `| … of which (p50): WHIP 201 / publisher connected / viewer connected | ${fmt(median(col('whip201Ms')))} / ${fmt(median(col('publisherConnectedMs')))} / ${fmt(median(col('viewerConnectedMs')))} ms after start |`,
    );
    out.push(
      `| … first send → first frame at viewer, p50 / max | ${fmt(median(col('sendToFirstFrameMs')))} / ${fmt(Math.max(...col('sendToFirstFrameMs')))} ms |`,
    );
  } else {
    out.push('| time to first frame | failed |');
  }
  if (!opts.prepayOnly) {
    out.push(
      rtmp
        ? `| RTMP publish (ffmpeg, H.264 High + B-frames + AAC, 640×360 30 fps): time to first frame at a WHEP viewer / gateway CPU per stream | **${fmt(rtmp.totalMs)} ms** / ${rtmp.cpuPercent.toFixed(1)} % of a core |`
        : '| RTMP publish | failed |',
    );
  }
  if (lat) {
    const s = lat.server;
    out.push(
      `| gateway-added latency, server (\`status.latencyMs\`, ingest arrival → egress send), p50 / p95 | **${s ? `${fmt(s.p50)} / ${fmt(s.p95)} ms** (${s.frames} frames)` : 'n/a**'} |`,
    );
    out.push(
      `| end-to-end latency, client (publisher last packet sent → viewer frame complete), p50 / p95 / max | **${fmt(lat.client.p50, 1)} / ${fmt(lat.client.p95, 1)} / ${fmt(lat.client.max, 1)} ms** (${lat.client.frames} frames, ${lat.unmatched} unmatched) |`,
    );
    const k = lat.clientByKind;
    out.push(
      `| … client p50 for keyframes / the frame after / other frames | ${fmt(k.keyframe, 1)} / ${fmt(k.afterKeyframe, 1)} / ${fmt(k.other, 1)} ms |`,
    );
  } else if (!opts.prepayOnly) {
    out.push('| latency | failed |');
  }
  if (joinRuns.length) {
    const ms = joinRuns.map((r) => r.answerToFirstFrameMs);
    const p95 = percentile(ms, 0.95);
    const clean = joinRuns.filter(
      (r) => r.decodeErrors === '' && r.framesDecoded === r.framesReceived,
    ).length;
    const withParams = joinRuns.filter((r) => r.startsWithParameterSets).length;
    out.push(
      `| viewer join: WHEP answer → first frame, p50 / p95 / max (${joinRuns.length} joins mid-GOP${joinRuns.length < opts.joins ? `, ${opts.joins - joinRuns.length} failed` : ''}) | **${fmt(median(ms))} / ${fmt(p95)} / ${fmt(Math.max(...ms))} ms** (target p95 < 300: ${p95 < 300 ? 'met' : '**missed**'}) |`,
    );
    out.push(`| … WHEP POST → answer, p50 | ${fmt(median(joinRuns.map((r) => r.answerMs)))} ms |`);
    const connect = joinRuns.map((r) => r.connectMs);
    const afterConnect = joinRuns.map((r) => r.answerToFirstFrameMs - r.connectMs);
    out.push(
      `| … of which answer → viewer connected (ICE + DTLS) / connected → first frame, p50 / p95 | ${fmt(median(connect))} / ${fmt(percentile(connect, 0.95))} ms; ${fmt(median(afterConnect))} / ${fmt(percentile(afterConnect, 0.95))} ms |`,
    );
    out.push(
      `| … joiners whose first frame is SPS + PPS + IDR / whose first second decodes without an ffmpeg error | ${withParams} / ${clean} of ${joinRuns.length} |`,
    );
    const lossy = joinRuns.filter((r) => r.udpDrops > 0);
    out.push(
      `| … joins during which UDP receive buffers overflowed (machine-wide; packets lost before any decoder) | ${lossy.length} of ${joinRuns.length}${lossy.length ? `, ${lossy.filter((r) => r.framesDecoded < r.framesReceived).length} of them among the unclean decodes` : ''} |`,
    );
    const errors = [...new Set(joinRuns.flatMap((r) => (r.decodeErrors ? r.decodeErrors.split('\n') : [])))];
    if (errors.length) failures.push(`decoder errors at joining viewers: ${errors.slice(0, 5).join(' / ')}`);
  } else if (opts.joins > 0 && !opts.prepayOnly && !opts.vp8Only) {
    // The join phase ran (it is skipped by --prepay-only and --vp8-only) and no viewer got a frame.
    out.push('| viewer join | failed |');
  }
  if (!opts.prepayOnly && !opts.vp8Only)
    out.push(`| gateway CPU idle (no streams) | ${fmt(idle, 1)} % of one core |`);
  if (vp8Result) {
    const v = vp8Result;
    const total = v.gatewayCpuPct + v.ingestFfmpegCpuPct + v.vp8EncoderCpuPct;
    out.push(
      `| CPU per VP8 publisher (640x480 30 fps → H.264 for the orchestrator; 1 H.264 + 1 VP8 viewer): gateway + its ffmpegs | ${fmt(total, 1)} % of one core = gateway ${fmt(v.gatewayCpuPct, 1)} % + VP8→H.264 ffmpeg ${fmt(v.ingestFfmpegCpuPct, 1)} % + H.264→VP8 ffmpeg (shared by all VP8 viewers) ${fmt(v.vp8EncoderCpuPct, 1)} %; fps publisher / H.264 viewer / VP8 viewer ${fmt(v.publisherFps, 1)} / ${fmt(v.h264ViewerFps, 1)} / ${fmt(v.vp8ViewerFps, 1)} (${fmt(v.seconds, 1)} s window) |`,
    );
  }
  if (prepay) {
    const t = prepay.ticketsPerStart;
    const d = (w: DelayWindow) =>
      `${fmt(w.p99, 1)} / ${fmt(w.max, 1)} ms${w.p99s.length > 1 ? `; each window's p99 ${w.p99s.map((x) => fmt(x, 1)).join(', ')} ms` : ''}`;
    out.push(
      `| on chain, 4 paid streams × 1 viewer: gateway event-loop delay over ${opts.quick ? 3 : 5} s, p99 / max | ${d(prepay.steady)} |`,
    );
    out.push(
      `| on chain, a 5th stream starts with its prepayment (${t.length ? [...new Set(t)].join('/') : '?'} tickets; ${prepay.startToFirstFrameMs.length} starts): gateway event-loop delay from 0.6 s before each WHIP offer to 2 s after its first frame, p99 (worst window) / max | **${d(prepay.starting)}** (target p99 < 10 ms) |`,
    );
    out.push(
      `| … 5th stream WHIP offer → first frame, p50 / max; longest frame gap at the 4 running streams' viewers meanwhile | ${fmt(median(prepay.startToFirstFrameMs))} / ${fmt(Math.max(...prepay.startToFirstFrameMs))} ms; ${fmt(prepay.runningMaxGapMs)} ms |`,
    );
    out.push(
      `| … CPU during those starts (% of one core): gateway / orchestrator / bench process (peers, chain) | ${fmt(prepay.gatewayPct)} / ${fmt(prepay.orchestratorPct)} / ${fmt(prepay.benchPct)} % |`,
    );
    out.push(
      `| … other processes on the machine during those starts | ${fmt(prepay.otherProcessesPct)} % of a core${prepay.busiestOthers.length ? ` (busiest: ${prepay.busiestOthers.map((c) => `\`${c}\``).join(', ')})` : ''} |`,
    );
  }
  out.push('');
  if (loads.length) {
    const orch = loads.some((l) => l.orchestratorCpuPct !== undefined);
    out.push(
      `| streams × viewers | gateway CPU (% of one core) | per stream |${orch ? ' orchestrator CPU |' : ''} bench process CPU | rest of machine: other processes / irq / steal | publisher fps min / avg | viewer fps min / avg | frames dropped: gateway input / viewers | UDP receive-buffer drops | longest gap at a viewer | server latency p50 / worst p95 | keeps up |`,
    );
    out.push(`|---|---:|---:|${orch ? '---:|' : ''}---:|---:|---|---|---|---:|---:|---|---|`);
    for (const l of loads) {
      const keepsUp = l.viewerFps.min >= 28 && l.publisherFps.min >= 28;
      out.push(
        `| ${l.streams} × ${l.viewers / l.streams} | ${fmt(l.gatewayCpuPct, 1)} % | ${fmt(l.gatewayCpuPct / l.streams, 1)} % |` +
          `${orch ? ` ${fmt(l.orchestratorCpuPct ?? Number.NaN, 1)} % |` : ''}` +
          ` ${fmt(l.benchCpuPct, 1)} % | ${fmt(l.otherProcessesPct, 1)} / ${fmt(l.irqPct, 1)} / ${fmt(l.stealPct, 1)} % | ${fmt(l.publisherFps.min, 1)} / ${fmt(l.publisherFps.avg, 1)} |` +
          ` ${fmt(l.viewerFps.min, 1)} / ${fmt(l.viewerFps.avg, 1)} | ${l.inputFramesDropped} / ${l.viewerFramesDropped} | ${fmt(l.udpDrops)} | ${fmt(l.maxViewerGapMs)} ms |` +
          ` ${fmt(l.serverLatency.p50)} / ${fmt(l.serverLatency.p95)} ms | ${keepsUp ? 'yes' : '**no**'} |`,
      );
    }
    out.push('');
    out.push(
      `CPU window ${opts.windowMs / 1000} s after ${opts.warmupMs / 1000} s warm-up; gateway CPU from /proc/<pid>/stat ` +
        `(utime+stime, all threads, CLK_TCK ${ticksPerSecond}); bench CPU from process.cpuUsage(); rest of machine = ` +
        'all other processes (/proc/*/stat), irq+softirq and steal (/proc/stat) — other work on this box skews the run. ' +
        '"Keeps up" = every publisher and viewer ≥ 28 fps. Frames dropped: gateway input = `status.input.framesDropped` ' +
        '(whole stream), viewers = incomplete access units at the viewers (packet loss) in the window. UDP receive-buffer ' +
        'drops: /proc/net/snmp RcvbufErrors over the window, whole machine (gateway and bench sockets alike).',
    );
    for (const l of loads) {
      for (const e of l.errors) failures.push(`${l.streams} streams: ${e}`);
      if (l.otherProcessesPct >= 10) {
        out.push('');
        out.push(
          `Warning (${l.streams} streams): other processes used ${fmt(l.otherProcessesPct)} % of a core during the window, ` +
            `which skews this row. Busiest: ${l.busiestOthers.map((c) => `\`${c}\``).join(', ')}.`,
        );
      }
      if (l.viewerFps.min >= 28 && l.publisherFps.min >= 28) continue;
      const busy =
        l.gatewayCpuPct +
        l.benchCpuPct +
        (l.orchestratorCpuPct ?? 0) +
        l.otherProcessesPct +
        l.irqPct +
        l.stealPct;
      const where =
        l.publisherFps.min < 28
          ? 'the bench could not send in real time (its publishers fell behind)'
          : l.inputFramesDropped === 0 && l.viewerFramesDropped > 0
            ? 'the gateway lost no input frames; the losses are on the way to the viewers (UDP receive-buffer drops at the bench process, or the gateway sending late)'
            : 'the gateway lost input frames (UDP receive-buffer drops at its ingest sockets while its event loop was busy; the bench publishers ignore PLI, so each loss costs the frames up to the next keyframe, ≤ 1 s)';
      out.push('');
      out.push(
        `Note (${l.streams} streams): not keeping up — ${where}. The machine was ` +
          `${fmt(busy)} % busy of ${cpusCount() * 100} % (${cpusCount()} cores), with gateway${l.orchestratorCpuPct !== undefined ? ', orchestrator' : ''} and bench on it.`,
      );
    }
  }
  if (storm) {
    const row = (label: string, w: LoopWindow, offers?: OfferReply[]) => {
      const replies = new Map<number, number>();
      for (const o of offers ?? []) replies.set(o.status, (replies.get(o.status) ?? 0) + 1);
      const summary = offers
        ? `${[...replies].map(([status, n]) => `${n} × ${status}`).join(', ')}; slowest reply ${fmt(Math.max(...offers.map((o) => o.ms)))} ms`
        : '–';
      return `| ${label} | **${fmt(w.loopLagMaxMs, 1)} / ${fmt(w.loopLagP99Ms, 1)} ms** | ${fmt(w.viewerFps.min, 1)} / ${fmt(w.viewerFps.avg, 1)} | ${fmt(w.maxViewerGapMs)} ms | ${summary} | ${w.viewerFps.min >= 28 ? 'yes' : '**no**'} |`;
    };
    const largest = Math.max(...storm.worst.offers.map((o) => o.bytes)) / 1024;
    out.push('');
    out.push(
      `| ${storm.streams} streams × ${storm.viewers / storm.streams} viewers, then ${OFFER_BURST} offers at once (half WHIP, half WHEP) | gateway event-loop delay max / p99 | viewer fps min / avg | longest gap at a viewer | offer replies | keeps up |`,
    );
    out.push('|---|---:|---|---:|---|---|');
    out.push(row('no offers (baseline)', storm.baseline));
    out.push(row('captured Chrome offers (5.6 / 5.0 KB)', storm.normal.window, storm.normal.offers));
    out.push(
      row(
        `worst-case offers at the limits (≤ ${fmt(largest, 1)} KiB)`,
        storm.worst.window,
        storm.worst.offers,
      ),
    );
    out.push('');
    out.push(
      `Worst cases: test/helpers/sdp-worst-cases.ts (${[...new Set(storm.worst.offers.map((o) => o.name))].join(', ')}). ` +
        `Each burst is POSTed at the start of a ${opts.windowMs / 1000} s window; the gateway's event-loop delay comes from its ` +
        '/metrics (livepeer_gateway_nodejs_eventloop_lag_*, reset at each window start). A 201 is a new stream (WHIP) ' +
        "or viewer (WHEP) with the offer's unreachable candidates, deleted after its window. Target: viewers keep ≥ 28 fps.",
    );
  }
  const problems = [
    ...(gateway?.child.problems ?? []),
    ...(gateway?.orchestrator?.problems ?? []),
    ...(prepay?.problems ?? []),
  ];
  out.push('');
  if (problems.length) {
    out.push(`Gateway log: ${problems.length} warning/error line(s), by message:`);
    out.push('');
    for (const [message, n] of groupProblems(problems)) out.push(`- ${n} × ${message}`);
  } else {
    out.push('Gateway log: no warnings or errors.');
  }
  if (failures.length) {
    out.push('');
    out.push(`Failures:\n${failures.map((f) => `- ${f}`).join('\n')}`);
  }
  if (gateway?.profileDir) {
    try {
      out.push(...summarizeProfile(gateway.profileDir));
    } catch (err) {
      out.push(`(could not read the CPU profile: ${(err as Error).message})`);
    }
  }
  if (prepay?.profileDir) {
    try {
      out.push('', '### On-chain gateway', ...summarizeProfile(prepay.profileDir));
    } catch (err) {
      out.push(`(could not read the CPU profile: ${(err as Error).message})`);
    }
  }
  out.push('');
  out.push(`Bench took ${fmt((Date.now() - started) / 1000)} s.`);
  console.log(out.join('\n'));
  if (failures.length && !ttff.length && !loads.length && !prepay?.startToFirstFrameMs.length) exitCode = 1;
  // werift can leave timers behind after close(); everything of ours is closed, so do not wait for them.
  process.exit(exitCode);
}

main().catch((err) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
