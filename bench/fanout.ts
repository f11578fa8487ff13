// Fan-out benchmark: how many WHEP viewers one core of the gateway carries on one 720p30 2 Mbit/s
// stream. One werift publisher sends an ffmpeg-made clip (libx264 testsrc2, 2 Mbit/s) in real time;
// the gateway runs effect `passthrough` against a local orchestrator in its own process; viewers are
// light werift peers held by worker processes (bench/fanout-viewers.ts), so the gateway's CPU
// (/proc/<pid>/stat) is its own. Viewers are added in steps; at each step the gateway's CPU and every
// viewer's frame rate are measured over a window. The run stops when the median viewer falls below
// 28 fps (or the gateway uses a whole core); viewers per core = viewers / gateway CPU fraction at the
// last step at or above 28 fps.
//
//   npm run bench:fanout                          steps 10,25,50,100,150,200,250,300
//   npm run bench:fanout -- --steps 10,50,100     other steps
//   npm run bench:fanout -- --cpu-prof            profile the gateway (node --cpu-prof) at the last step
//                                                 and print its top functions (CPU figures inflated)
//   npm run bench:fanout -- --send-path werift    the gateway sends through werift's RTCRtpSender
//                                                 (LPGW_EGRESS_SEND_PATH=werift), for a before/after
//   npm run bench:fanout -- --no-batch            the egress sends packet by packet (LPGW_UDP_BATCH=0),
//                                                 not a frame per system call: for a before/after
//   npm run bench:fanout -- --workers 4           viewer processes (default 3)
//   npm run bench:fanout -- --send-only           no gateway: this process answers WHEP with EgressPeers
//                                                 itself and sends the clip's packets to every viewer
//                                                 (as the output hub does), so its CPU is the send path
//                                                 alone, with nothing upstream to starve on a busy box
//   npm run bench:fanout -- --per-packet          the CPU cost of one packet to one viewer on each path,
//                                                 A/B in one process: 2 × 10 viewers (werift's path,
//                                                 the direct path; --steps 25 for 2 × 25), alternate
//                                                 rounds of the clip in real time, process CPU time
//                                                 per packet (CPU time, not wall time: the least of
//                                                 the rounds is the figure a loaded machine disturbs least)
//   npm run bench:fanout -- --per-packet --srtp   the same A/B between the SRTP profiles instead: direct
//                                                 path with AEAD_AES_128_GCM (LPGW_EGRESS_SRTP=gcm) vs
//                                                 with AES_CM_128_HMAC_SHA1_80 (the default)
//   npm run bench:fanout -- --full-viewers      viewers decrypt and authenticate every packet in werift
//                                                 (~35 µs a packet: two cores then feed ~170 viewers);
//                                                 by default they count frames from RTP headers and
//                                                 have werift authenticate every 16th packet
//   npm run bench:fanout -- --keep-going          run every step even below 28 fps (on a machine
//                                                 loaded by others the frame rate falls for reasons
//                                                 of its own; the CPU per packet stays meaningful)
//
// Besides viewers per core, each step reports the gateway's CPU per packet actually delivered to a
// viewer, and the run fits CPU = fixed + slope × (packets delivered per second) over all steps:
// the slope is the marginal cost of one packet to one viewer, the fixed part the ingest, the
// orchestrator's trickle and the rest that does not grow with viewers.
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_FLAGS } from '../bin/node-flags.js';
import { EgressPeer, LOOPBACK_NETWORK } from '../src/webrtc/index.ts';
import { h264Frames, type RtpFrame, WeriftPublisher } from '../test/helpers/webrtc-clients.ts';
import { freePort, sleep, waitUntil, withTimeout } from './common.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const MIN_FPS = 28;

interface Options {
  steps: number[];
  workers: number;
  warmupMs: number;
  windowMs: number;
  cpuProf: boolean;
  sendPath: 'direct' | 'werift';
  /** LPGW_UDP_BATCH=0: packet-by-packet sends. */
  noBatch: boolean;
  keepGoing: boolean;
  sendOnly: boolean;
  perPacket: boolean;
  /** --per-packet compares the SRTP profiles (both on the direct path) instead of the send paths. */
  srtp: boolean;
  /** Viewers decrypt every packet in werift (else they sample; bench/fanout-viewers.ts). */
  fullViewers: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    steps: [10, 25, 50, 100, 150, 200, 250, 300],
    workers: 3,
    warmupMs: 3000,
    windowMs: 6000,
    cpuProf: argv.includes('--cpu-prof'),
    sendPath: 'direct',
    noBatch: argv.includes('--no-batch'),
    keepGoing: argv.includes('--keep-going'),
    sendOnly: argv.includes('--send-only'),
    perPacket: argv.includes('--per-packet'),
    fullViewers: argv.includes('--full-viewers'),
    srtp: argv.includes('--srtp'),
  };
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i < 0 ? undefined : (argv[i + 1] ?? '');
  };
  const steps = value('--steps');
  if (steps !== undefined) {
    const list = steps.split(',').map(Number);
    if (
      !list.length ||
      list.some((n, i) => !Number.isInteger(n) || n < 1 || n > 2000 || (i && n <= list[i - 1]))
    ) {
      throw new Error('--steps needs increasing viewer counts between 1 and 2000, e.g. 10,50,100');
    }
    opts.steps = list;
  }
  const workers = value('--workers');
  if (workers !== undefined) {
    const n = Number(workers);
    if (!Number.isInteger(n) || n < 1 || n > 32)
      throw new Error('--workers takes a whole number from 1 to 32');
    opts.workers = n;
  }
  const path = value('--send-path');
  if (path !== undefined) {
    if (path !== 'direct' && path !== 'werift') throw new Error('--send-path is direct or werift');
    opts.sendPath = path;
  }
  if (opts.srtp && !opts.perPacket) throw new Error('--srtp goes with --per-packet');
  const known = [
    '--steps',
    '--workers',
    '--cpu-prof',
    '--send-path',
    '--keep-going',
    '--send-only',
    '--per-packet',
    '--full-viewers',
    '--srtp',
    '--no-batch',
  ];
  for (const arg of argv) {
    if (arg.startsWith('--') && !known.includes(arg))
      throw new Error(`unknown option ${arg} (use ${known.join(', ')})`);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Processes

class Child {
  readonly lines: string[] = [];
  exited = false;
  readonly exit: Promise<void>;
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) this.lines.push(line);
        if (this.lines.length > 300) this.lines.splice(0, 100);
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.exit = new Promise((resolve) =>
      proc.once('exit', () => {
        this.exited = true;
        resolve();
      }),
    );
  }
  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} has no pid`);
    return this.proc.pid;
  }
  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }
  async stop(): Promise<void> {
    if (this.exited) return;
    this.proc.kill('SIGTERM');
    if (!(await Promise.race([this.exit.then(() => true), sleep(15_000).then(() => false)]))) {
      this.proc.kill('SIGKILL');
      await this.exit;
    }
  }
}

function spawnTs(name: string, script: string, args: string[], nodeFlags: string[] = [], env = {}): Child {
  const proc = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', script, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production', ...env },
  });
  return new Child(name, proc);
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all its threads), in clock ticks. */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function startGateway(opts: Options, profileDir: string | undefined) {
  const httpPort = await freePort();
  const orchPort = await freePort();
  const secret = 'lp-gateway-bench';
  const orchestrator = spawnTs('local orchestrator', 'src/local-orchestrator/main.ts', [
    ...['-localOrchestratorServiceAddr', `127.0.0.1:${orchPort}`, '-localOrchestratorCapacity', '4'],
    ...['-localOrchestratorSecret', secret, '-v', '0'],
  ]);
  await waitUntil(
    () => {
      if (orchestrator.exited) throw new Error(`the local orchestrator exited:\n${orchestrator.tail()}`);
      return orchestrator.lines.some((l) => l.includes('listening on'));
    },
    30_000,
    'the local orchestrator to listen',
  );
  const gateway = spawnTs(
    'gateway',
    'src/main.ts',
    [
      ...['-httpAddr', `127.0.0.1:${httpPort}`, '-v', '0'],
      ...['-orchAddr', `https://127.0.0.1:${orchPort}`, '-orchSecret', secret],
      // the default per-stream cap (100) would end the run before the CPU does
      ...['-liveMaxViewers', String(Math.max(...opts.steps))],
    ],
    // As `npm start` runs it (bin/node-flags.js).
    [...GATEWAY_NODE_FLAGS, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])],
    { LPGW_EGRESS_SEND_PATH: opts.sendPath, ...(opts.noBatch ? { LPGW_UDP_BATCH: '0' } : {}) },
  );
  const base = `http://127.0.0.1:${httpPort}`;
  await waitUntil(
    async () => {
      if (gateway.exited) throw new Error(`the gateway exited:\n${gateway.tail()}`);
      try {
        return (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
      } catch {
        return false;
      }
    },
    30_000,
    `GET ${base}/healthz`,
  );
  return { gateway, orchestrator, base };
}

// ---------------------------------------------------------------------------------------------
// The stream

async function makeClip(): Promise<Buffer> {
  // 720p30 at 2 Mbit/s, a keyframe every 2 s, baseline (no B-frames): what a WebRTC viewer gets.
  return execFileSync(
    'ffmpeg',
    [
      ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30'],
      ...['-t', '10', '-c:v', 'libx264', '-preset', 'veryfast', '-profile:v', 'baseline'],
      ...['-b:v', '2M', '-maxrate', '2M', '-bufsize', '2M', '-g', '60', '-keyint_min', '60'],
      ...['-sc_threshold', '0', '-bf', '0', '-pix_fmt', 'yuv420p', '-f', 'h264', '-'],
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
}

/** "in / out" frames per second from a stream's /status ("?" when it does not answer). */
async function streamFps(url: string): Promise<string> {
  try {
    const status = (await (await fetch(url, { signal: AbortSignal.timeout(2000) })).json()) as {
      input?: { fps?: number };
      output?: { fps?: number };
    };
    return `${status.input?.fps?.toFixed(1) ?? '?'} / ${status.output?.fps?.toFixed(1) ?? '?'}`;
  } catch {
    return '?';
  }
}

/** Sends the clip in real time, looping with continuous timestamps, until stopped. */
function pumpVideo(publisher: WeriftPublisher, frames: RtpFrame[], stopped: () => boolean): Promise<void> {
  const loopTicks = frames.length * 3000;
  const started = performance.now();
  return (async () => {
    for (let i = 0; !stopped(); i++) {
      const wait = started + (i * 1000) / 30 - performance.now();
      if (wait > 1) await sleep(wait);
      const frame = frames[i % frames.length];
      const timestamp = (frame.timestamp + Math.floor(i / frames.length) * loopTicks) >>> 0;
      await publisher.send({ video: [{ timestamp, payloads: frame.payloads }], realtime: false });
      if (publisher.sent.length > 2000) publisher.sent.length = 0;
    }
  })();
}

// ---------------------------------------------------------------------------------------------
// Viewer workers

class ViewerWorker {
  readonly child: Child;
  readonly #proc: ChildProcess;
  viewers = 0;
  constructor(index: number, full: boolean) {
    this.#proc = fork(join(ROOT, 'bench/fanout-viewers.ts'), [], {
      cwd: ROOT,
      env: { ...process.env, FANOUT_VIEWERS: full ? 'full' : 'sampled' },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = new Child(`viewers ${index}`, this.#proc);
  }
  #ask<T>(message: object, ms: number): Promise<T> {
    return withTimeout(
      new Promise<T>((resolve, reject) => {
        this.#proc.once('message', (m) => resolve(m as T));
        this.child.exit.then(() => reject(new Error(`${this.child.name} exited:\n${this.child.tail()}`)));
        this.#proc.send(message);
      }),
      ms,
      `${this.child.name}: ${JSON.stringify(message).slice(0, 40)}`,
    );
  }
  async add(n: number, url: string): Promise<void> {
    const r = await this.#ask<{ added: number; failed: string[] }>({ add: n, url }, 60_000 + n * 3000);
    this.viewers += r.added;
    if (r.failed.length)
      console.error(`${this.child.name}: ${r.failed.length} viewers failed: ${r.failed[0]}`);
  }
  async report(): Promise<ViewerReport> {
    return this.#ask<ViewerReport>({ report: true }, 30_000);
  }
  async close(): Promise<void> {
    if (!this.child.exited) this.#proc.send({ close: true });
    await Promise.race([this.child.exit, sleep(10_000)]);
    await this.child.stop();
  }
}

/** Frames per viewer so far; RTP packets handed to werift's receiver and authenticated by it. */
interface ViewerReport {
  frames: number[];
  sampled: number;
  verified: number;
}

async function allReports(workers: ViewerWorker[]): Promise<ViewerReport> {
  const reports = await Promise.all(workers.map((w) => w.report()));
  return {
    frames: reports.flatMap((r) => r.frames),
    sampled: reports.reduce((n, r) => n + r.sampled, 0),
    verified: reports.reduce((n, r) => n + r.verified, 0),
  };
}

async function allFrames(workers: ViewerWorker[]): Promise<number[]> {
  return (await allReports(workers)).frames;
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Least squares cpu = intercept + slope × packetsPerSecond; undefined with fewer than 2 distinct points. */
function linearFit(points: { cpu: number; packetsPerSecond: number }[]) {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((a, p) => a + p.packetsPerSecond, 0) / n;
  const my = points.reduce((a, p) => a + p.cpu, 0) / n;
  const sxx = points.reduce((a, p) => a + (p.packetsPerSecond - mx) ** 2, 0);
  if (sxx === 0) return undefined;
  const slope = points.reduce((a, p) => a + (p.packetsPerSecond - mx) * (p.cpu - my), 0) / sxx;
  return { slope, intercept: my - slope * mx };
}

// ---------------------------------------------------------------------------------------------
// Profile summary

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/**
 * Self time by function. With `window` (ms since the gateway was spawned; its profile starts within
 * a few ms of that), only the samples inside it count: the steady state, not start-up and joins.
 */
function summarizeProfile(dir: string, window?: { fromMs: number; toMs: number }, top = 25): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) return [`(no .cpuprofile in ${dir})`];
  const profile = files
    .map(
      (f) =>
        JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
          nodes: ProfileNode[];
          samples: number[];
          timeDeltas: number[];
        },
    )
    .sort((a, b) => b.nodes.length - a.nodes.length)[0];
  const { nodes } = profile;
  if (window) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    for (const n of nodes) n.hitCount = 0;
    let at = 0;
    profile.samples.forEach((id, i) => {
      at += profile.timeDeltas[i] / 1000;
      const node = byId.get(id);
      if (node && at >= window.fromMs && at < window.toMs) node.hitCount = (node.hitCount ?? 0) + 1;
    });
  }
  const where = (url: string) => {
    if (!url) return '(native)';
    const path = url.startsWith('file://') ? fileURLToPath(url) : url;
    const nm = path.lastIndexOf('node_modules/');
    return nm >= 0 ? path.slice(nm + 13) : path.startsWith('/') ? relative(ROOT, path) : path;
  };
  const name = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame.url)}${n.callFrame.lineNumber > 0 ? `:${n.callFrame.lineNumber + 1}` : ''}`;
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of nodes) {
    const hits = n.hitCount ?? 0;
    total += hits;
    if (n.callFrame.functionName === '(idle)') idle += hits;
    self.set(name(n), (self.get(name(n)) ?? 0) + hits);
  }
  const busy = total - idle;
  const lines = [
    `busy samples: ${busy} of ${total}${window ? " in the last step's window" : ''}; top functions by self time (% of busy):`,
  ];
  for (const [fn, hits] of [...self]
    .filter(([fn]) => !fn.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)) {
    lines.push(`  ${((100 * hits) / busy).toFixed(1).padStart(5)}%  ${fn}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------

/** CPU time per packet per viewer on each send path, alternating rounds in one process. */
async function perPacketCost(opts: Options, frames: RtpFrame[]): Promise<string[]> {
  const viewersPerPath = opts.steps[0];
  const peers: EgressPeer[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const peer = await EgressPeer.create(Buffer.concat(chunks).toString('utf8'), LOOPBACK_NETWORK);
        peers.push(peer);
        res.writeHead(201, { 'content-type': 'application/sdp', location: `/whep/${peers.length}` });
        res.end(peer.answerSdp);
      } catch (err) {
        res.writeHead(400).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/whep`;
  const workers = Array.from({ length: opts.workers }, (_, i) => new ViewerWorker(i, opts.fullViewers));
  // The two sides of the A/B: what each sets in the environment, and what its peers must show.
  const variants = opts.srtp
    ? [
        { label: 'direct, AEAD_AES_128_GCM', path: 'direct', srtp: 'gcm', profile: 'AEAD_AES_128_GCM' },
        {
          label: 'direct, AES_CM_128_HMAC_SHA1_80',
          path: 'direct',
          srtp: 'cm',
          profile: 'AES_CM_128_HMAC_SHA1_80',
        },
      ]
    : [
        { label: 'werift (RTCRtpSender.sendRtp)', path: 'werift', srtp: undefined, profile: undefined },
        { label: 'direct (DirectRtpSender)', path: 'direct', srtp: undefined, profile: undefined },
      ];
  const groups: EgressPeer[][] = [[], []];
  let seq = 0;
  let timestamp = 0;
  /**
   * One pass over the clip to every peer of a group, in real time (30 frames a second, as live:
   * faster would overflow the viewers and turn the measurement into one of retransmissions).
   * Returns the packets sent, retransmissions included.
   */
  const round = async (group: EgressPeer[]) => {
    const resent = () => group.reduce((n, p) => n + p.stats().video.retransmittedPackets, 0);
    const resent0 = resent();
    let sent = 0;
    const started = performance.now();
    for (const [i, frame] of frames.entries()) {
      const wait = started + (i * 1000) / 30 - performance.now();
      if (wait > 1) await sleep(wait);
      timestamp = (timestamp + 3000) >>> 0;
      for (const peer of group) {
        // As the output hub sends: a frame at a time.
        if (peer.sendVideoFrame(frame.payloads, seq, timestamp)) sent += frame.payloads.length;
      }
      seq = (seq + frame.payloads.length) & 0xffff;
    }
    return sent + resent() - resent0;
  };
  const costs: number[][] = [[], []];
  try {
    for (const [v, variant] of variants.entries()) {
      const before = peers.length;
      // The SRTP preference is read when a peer answers, the send path at its first send.
      if (variant.srtp) process.env.LPGW_EGRESS_SRTP = variant.srtp;
      await Promise.all(
        workers.map((w, i) => {
          const share =
            Math.floor(viewersPerPath / workers.length) + (i < viewersPerPath % workers.length ? 1 : 0);
          return share ? w.add(share, url) : undefined;
        }),
      );
      // A viewer that failed to connect leaves a peer that never can send: leave it out.
      const added = peers.slice(before);
      await waitUntil(() => added.every((p) => p.canSend), 10_000, 'DTLS').catch(() => {});
      groups[v] = added.filter((p) => p.canSend);
      if (!groups[v].length) throw new Error(`no ${variant.label} viewer connected`);
      process.env.LPGW_EGRESS_SEND_PATH = variant.path;
      await round(groups[v]);
      if (groups[v].some((p) => p.videoSendPath !== variant.path))
        throw new Error(`not every peer took the ${variant.path} path`);
      if (variant.profile && groups[v].some((p) => p.srtpProfile !== variant.profile))
        throw new Error(`not every peer negotiated ${variant.profile}`);
    }
    for (let r = 0; r < 4; r++) {
      for (const v of [0, 1]) {
        const cpu0 = process.cpuUsage();
        const sent = await round(groups[v]);
        const cpu = process.cpuUsage(cpu0);
        costs[v].push((cpu.user + cpu.system) / sent);
      }
    }
  } finally {
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled(peers.map((p) => p.close()));
    server.close();
  }
  const median = (xs: number[]) =>
    quantile(
      [...xs].sort((a, b) => a - b),
      0.5,
    );
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(', ');
  const min = (xs: number[]) => Math.min(...xs);
  return [
    '| path | viewers | µs CPU per packet per viewer: least of 4 rounds | median | rounds |',
    '|---|---|---|---|---|',
    ...variants.map(
      (variant, v) =>
        `| ${variant.label} | ${groups[v].length} | **${min(costs[v]).toFixed(1)}** | ${median(costs[v]).toFixed(1)} | ${fmt(costs[v])} |`,
    ),
  ];
}

/** The egress alone: a WHEP endpoint of bare EgressPeers in this process, fed the clip's packets. */
async function sendOnly(opts: Options, frames: RtpFrame[], packetsPerSecond: number): Promise<string[]> {
  process.env.LPGW_EGRESS_SEND_PATH = opts.sendPath;
  if (opts.noBatch) process.env.LPGW_UDP_BATCH = '0';
  const peers: EgressPeer[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const peer = await EgressPeer.create(Buffer.concat(chunks).toString('utf8'), LOOPBACK_NETWORK);
        peers.push(peer);
        res.writeHead(201, { 'content-type': 'application/sdp', location: `/whep/${peers.length}` });
        res.end(peer.answerSdp);
      } catch (err) {
        res.writeHead(400).end(String(err));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/whep`;
  const workers = Array.from({ length: opts.workers }, (_, i) => new ViewerWorker(i, opts.fullViewers));
  let stopped = false;
  let sent = 0;
  // One packet list per frame, sent to every viewer with shared seq/timestamps, 30 frames a second.
  const pumping = (async () => {
    const started = performance.now();
    let seq = 0;
    for (let i = 0; !stopped; i++) {
      const wait = started + (i * 1000) / 30 - performance.now();
      if (wait > 1) await sleep(wait);
      const frame = frames[i % frames.length];
      const timestamp = (i * 3000) >>> 0;
      for (const peer of peers) {
        if (!peer.canSend) continue;
        // As the output hub sends: a frame at a time.
        if (peer.sendVideoFrame(frame.payloads, seq, timestamp)) sent += frame.payloads.length;
      }
      seq = (seq + frame.payloads.length) & 0xffff;
    }
  })();
  const rows: string[] = [];
  try {
    for (const step of opts.steps) {
      const add = step - peers.length;
      await Promise.all(
        workers.map((w, i) => {
          const share = Math.floor(add / workers.length) + (i < add % workers.length ? 1 : 0);
          return share ? w.add(share, url) : undefined;
        }),
      );
      await sleep(opts.warmupMs);
      const f0 = await allFrames(workers);
      const cpu0 = process.cpuUsage();
      const sent0 = sent;
      const t0 = performance.now();
      await sleep(opts.windowMs);
      const cpu1 = process.cpuUsage(cpu0);
      const sentPackets = sent - sent0;
      const f1 = await allFrames(workers);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = (cpu1.user + cpu1.system) / 1e6 / seconds;
      const fps = f1.map((n, i) => (n - (f0[i] ?? 0)) / seconds).sort((a, b) => a - b);
      const row =
        `| ${peers.length} | ${(cpu * 100).toFixed(1)}% | ${quantile(fps, 0.5).toFixed(1)} | ${fps[0]?.toFixed(1)} | ` +
        `${Math.round(sentPackets / seconds)} | ${((cpu * seconds * 1e6) / sentPackets).toFixed(1)} | ` +
        `${Math.round(1e6 / (((cpu * seconds * 1e6) / sentPackets) * packetsPerSecond))} | ${os.loadavg()[0].toFixed(1)} |`;
      rows.push(row);
      console.error(row);
    }
  } finally {
    stopped = true;
    await pumping;
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled(peers.map((p) => p.close()));
    server.close();
  }
  return [
    '| viewers | sender CPU (of one core) | median fps | min fps | packets sent/s | µs per packet per viewer | viewers per core | load avg |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ];
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const profileDir = opts.cpuProf ? mkdtempSync(join(os.tmpdir(), 'lpgw-fanout-prof-')) : undefined;
  console.error('making the 720p30 2 Mbit/s clip…');
  const clip = await makeClip();
  const frames = h264Frames(clip, 30);
  const bitrate = (clip.length * 8) / (frames.length / 30);
  const packetsPerSecond = (frames.reduce((n, f) => n + f.payloads.length, 0) * 30) / frames.length;
  if (opts.perPacket) {
    const table = await perPacketCost(opts, frames);
    console.log(
      [
        `## lp-gateway fan-out: CPU per packet per viewer, ${opts.srtp ? 'AEAD_AES_128_GCM vs AES_CM_128_HMAC_SHA1_80 (direct path)' : 'werift path vs direct path'}`,
        '',
        `The 1280×720 30 fps 2 Mbit/s clip (${packetsPerSecond.toFixed(0)} RTP packets/s), sent frame by frame to werift ` +
          `viewers in ${opts.workers} other processes; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ` +
          `average ${os.loadavg()[0].toFixed(1)}, all on 127.0.0.1.`,
        '',
        ...table,
      ].join('\n'),
    );
    process.exit(0);
  }
  if (opts.sendOnly) {
    const table = await sendOnly(opts, frames, packetsPerSecond);
    console.log(
      [
        `## lp-gateway fan-out benchmark, send path only (\`${opts.sendPath}\`, ${opts.noBatch ? 'packet by packet' : 'a frame per system call'})`,
        '',
        `EgressPeers in the benchmark process send a 1280×720 30 fps H.264 clip (${(bitrate / 1e6).toFixed(2)} Mbit/s, ` +
          `${packetsPerSecond.toFixed(0)} RTP packets/s) to werift viewers in ${opts.workers} other processes; ` +
          `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), all on 127.0.0.1.`,
        '',
        ...table,
      ].join('\n'),
    );
    process.exit(0);
  }
  const spawnedAt = performance.now();
  const { gateway, orchestrator, base } = await startGateway(opts, profileDir);
  let lastWindow: { fromMs: number; toMs: number } | undefined;
  const publisher = new WeriftPublisher({ audio: false });
  const workers = Array.from({ length: opts.workers }, (_, i) => new ViewerWorker(i, opts.fullViewers));
  let stopped = false;
  let pumping: Promise<void> | undefined;
  const rows: string[] = [];
  let best: { viewers: number; cpu: number } | undefined;
  const samples: { cpu: number; packetsPerSecond: number }[] = [];
  try {
    const name = `fanout-${Date.now() % 100000}`;
    const offer = await publisher.createOffer();
    const res = await fetch(`${base}/live/video-to-video/${name}/whip?model=passthrough`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: offer,
    });
    const answer = await res.text();
    if (res.status !== 201) throw new Error(`WHIP: ${res.status} ${answer}`);
    await publisher.applyAnswer(answer, 20_000);
    pumping = pumpVideo(publisher, frames, () => stopped);
    const whep = `${base}/live/video-to-video/${name}/whep`;
    let viewers = 0;
    for (const step of opts.steps) {
      const add = step - viewers;
      await Promise.all(
        workers.map((w, i) => {
          const share = Math.floor(add / workers.length) + (i < add % workers.length ? 1 : 0);
          return share ? w.add(share, whep) : undefined;
        }),
      );
      viewers = workers.reduce((n, w) => n + w.viewers, 0);
      await sleep(opts.warmupMs);
      const r0 = await allReports(workers);
      const f0 = r0.frames;
      const t0 = performance.now();
      const c0 = processTicks(gateway.pid);
      const v0 = workers.reduce((n, w) => n + processTicks(w.child.pid), 0);
      const o0 = processTicks(orchestrator.pid);
      const b0 = process.cpuUsage();
      const load0 = os.loadavg()[0];
      await sleep(opts.windowMs);
      const b1 = process.cpuUsage(b0);
      // The stream's own frame rates as the gateway sees them: a publisher or orchestrator starved by
      // the rig shows here (input/output below 30), a slow egress does not.
      const stream = await streamFps(`${base}/live/video-to-video/${name}/status`);
      const c1 = processTicks(gateway.pid);
      const v1 = workers.reduce((n, w) => n + processTicks(w.child.pid), 0);
      const o1 = processTicks(orchestrator.pid);
      const r1 = await allReports(workers);
      const f1 = r1.frames;
      const seconds = (performance.now() - t0) / 1000;
      // Sampled viewers: the share of the packets handed to werift that it authenticated.
      const sampled = r1.sampled - r0.sampled;
      const authenticated = opts.fullViewers
        ? '-'
        : sampled > 0
          ? `${((100 * (r1.verified - r0.verified)) / sampled).toFixed(0)}%`
          : 'none';
      if (!opts.fullViewers && (sampled === 0 || r1.verified - r0.verified < 0.95 * sampled))
        console.error(
          `SRTP check failed: werift authenticated ${r1.verified - r0.verified} of ${sampled} sampled packets`,
        );
      lastWindow = { fromMs: t0 - spawnedAt, toMs: t0 - spawnedAt + seconds * 1000 };
      const cpu = (c1 - c0) / CLK_TCK / seconds;
      const fps = f1.map((n, i) => (n - (f0[i] ?? 0)) / seconds).sort((a, b) => a - b);
      const median = quantile(fps, 0.5);
      const perCore = cpu > 0 ? viewers / cpu : Number.NaN;
      // Packets the gateway really delivered (a starved publisher or orchestrator sends fewer).
      const delivered = (fps.reduce((a, b) => a + b, 0) * packetsPerSecond) / 30;
      samples.push({ cpu, packetsPerSecond: delivered });
      const row =
        `| ${viewers} | ${(cpu * 100).toFixed(1)}% | ${median.toFixed(1)} | ${quantile(fps, 0.1).toFixed(1)} | ` +
        `${fps[0]?.toFixed(1)} | ${Math.round(perCore)} | ${((cpu * 1e6) / delivered).toFixed(1)} | ` +
        `${(((v1 - v0) / CLK_TCK / seconds) * 100).toFixed(0)}% | ${(((o1 - o0) / CLK_TCK / seconds) * 100).toFixed(0)}% | ` +
        `${authenticated} | ${stream} | ${(((b1.user + b1.system) / 1e6 / seconds) * 100).toFixed(0)}% | ${load0.toFixed(1)} |`;
      rows.push(row);
      console.error(row);
      if (median >= MIN_FPS) best = { viewers, cpu };
      if (!opts.keepGoing && (median < MIN_FPS || cpu > 0.95)) break;
    }
  } finally {
    const problems = gateway.lines.filter((l) => /"level":(40|50|60)/.test(l));
    if (problems.length)
      console.error(
        `gateway warnings/errors (${problems.length}, last 8):\n${problems.slice(-8).join('\n')}`,
      );
    stopped = true;
    await pumping?.catch(() => {});
    await Promise.allSettled(workers.map((w) => w.close()));
    await publisher.close().catch(() => {});
    await gateway.stop();
    await orchestrator.stop();
  }
  const out = [
    `## lp-gateway fan-out benchmark${opts.cpuProf ? ' (gateway under --cpu-prof: CPU figures inflated)' : ''}`,
    '',
    `One 1280×720 30 fps H.264 stream (${(bitrate / 1e6).toFixed(2)} Mbit/s, ${packetsPerSecond.toFixed(0)} RTP packets/s), ` +
      `effect \`passthrough\`, local orchestrator in its own process, send path \`${opts.sendPath}\` (${opts.noBatch ? 'packet by packet' : 'a frame per system call'}), ` +
      `${opts.workers} viewer processes (${opts.fullViewers ? 'full werift viewers: every packet decrypted and authenticated' : `sampled viewers: frames counted from RTP headers, every ${16}th packet authenticated by werift`}); ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), all on 127.0.0.1.`,
    '',
    '| viewers | gateway CPU (of one core) | median fps | p10 fps | min fps | viewers per core | gateway µs per delivered packet | viewer processes CPU | orchestrator CPU | sampled packets authenticated | stream in/out fps at the gateway | bench process (publisher) CPU | load avg |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    best
      ? `Viewers per core at the last step at or above ${MIN_FPS} fps: **${Math.round(best.viewers / best.cpu)}** ` +
        `(${best.viewers} viewers, gateway at ${(best.cpu * 100).toFixed(1)}% of a core).`
      : `No step kept the median viewer at ${MIN_FPS} fps.`,
  ];
  const fit = linearFit(samples);
  if (fit) {
    out.push(
      '',
      `Fit over the steps: CPU = ${(fit.intercept * 100).toFixed(1)}% of a core + ${(fit.slope * 1e6).toFixed(1)} µs × ` +
        `packets delivered per second → the send work alone carries ` +
        `**${Math.round(1 / (fit.slope * packetsPerSecond))} viewers per core** at this bitrate.`,
    );
  }
  if (profileDir) out.push('', '```', ...summarizeProfile(profileDir, lastWindow), '```');
  console.log(out.join('\n'));
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
