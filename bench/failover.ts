// Failover benchmark: how long a WHEP viewer's picture freezes when the orchestrator running the
// stream fails and the gateway moves the stream to another one.
//
// The gateway runs as a child process (`src/main.ts`) and learns its orchestrators from a discovery
// webhook served by this process, so each round can point it at a fresh orchestrator child
// (`test/helpers/orchestrator-process.ts`, model `passthrough`). Per round: the webhook lists only
// the round's target, a werift WHIP publisher and a WHEP viewer start a new stream on it, the
// webhook then adds the long-lived healthy orchestrator, and the target fails:
//
//   killed  SIGKILL of the target's process at a random moment mid-segment
//   silent  the target runs with `stall-output-after:<random 3.5-4.5 s>`: no more output, sockets open
//
// The freeze is measured at the viewer: the receive time of the first complete access unit after the
// gateway noticed the failure (status `swaps[0].at`) minus that of the last one before it. Each
// freeze is split, on one clock (all processes on this machine), into
//   last frame → failure noticed (swaps[].at)            detection
//   noticed → new job running (swaps[].tookMs)           restart: selection, GetOrchestrator, job start
//   job running → publisher sends the next keyframe      waiting for the keyframe (ingest restarts on one)
//   keyframe sent → complete at the viewer               first output: ingest → orchestrator → egress
//
// Each failure kind runs with two publishers: one that honours PLI, as browsers do (the frame slot after
// a keyframe request carries the clip's next keyframe), and one that ignores it and keeps the clip's
// fixed 1 s GOP, as OBS does (`-ignore-pli` kinds).
//
// After each swap the stream is watched a while longer (`--settle-ms`, default 3 s, more than the
// no-output timeout): a second swap there means the new job did not start properly, and an ended
// stream is counted. Target: freeze p50 < 300 ms and max < 1 s for both publishers on a killed
// orchestrator, and no stream ended.
//
//   npm run bench:failover                  50 kills: 25 killed + 25 killed-ignore-pli (~12 min on 2 cores)
//   npm run bench:failover -- --quick       3 swaps per kind (~1.5 min)
//   npm run bench:failover -- --kills 20    that many kills, split over the kinds
//   npm run bench:failover -- --480p        854x480 instead of 1280x720
//   npm run bench:failover -- --kinds killed,silent      any of killed, silent, killed-ignore-pli, silent-ignore-pli
//   npm run bench:failover -- --no-output-timeout-ms 1500   passed to the gateway as -liveNoOutputTimeoutMs
//   BENCH_DEBUG=1 ...                       the gateway's log lines on stderr
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_FLAGS } from '../bin/node-flags.js';
import { makeH264Clip } from '../test/helpers/media.ts';
import {
  type LocalOrchestratorProcess,
  spawnLocalOrchestrator,
} from '../test/helpers/orchestrator-process.ts';
import {
  type AccessUnit,
  h264Frames,
  type RtpFrame,
  splitAccessUnits,
  syntheticOpusFrames,
  WhepTestViewer,
  WhipTestPublisher,
} from '../test/helpers/webrtc-clients.ts';
import { freePort, sleep, waitUntil, withTimeout } from './common.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FPS = 30;
const CLIP_SECONDS = 10;
/** A round takes about this long (stream start, 1-2 s of output, the swap, the settle time, close). */
const ROUND_BUDGET_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// Options

type Kind = 'killed' | 'silent';

interface Scenario {
  name: string;
  kind: Kind;
  honourPli: boolean;
}

const SCENARIOS: Record<string, Omit<Scenario, 'honourPli'> & { ignorePli?: boolean }> = {
  killed: { name: 'killed', kind: 'killed' },
  silent: { name: 'silent', kind: 'silent' },
  'killed-ignore-pli': { name: 'killed-ignore-pli', kind: 'killed', ignorePli: true },
  'silent-ignore-pli': { name: 'silent-ignore-pli', kind: 'silent', ignorePli: true },
};

interface Options {
  quick: boolean;
  swapsPerKind: number;
  width: number;
  height: number;
  scenarios: Scenario[];
  noOutputTimeoutMs: number;
  /** How long each stream is watched after its swap for a second swap or its end. */
  settleMs: number;
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const p480 = argv.includes('--480p');
  let names = ['killed', 'killed-ignore-pli'];
  let noOutputTimeoutMs = 2000;
  let kills = 50;
  let settleMs = 3000;
  const known = ['--quick', '--480p', '--kinds', '--no-output-timeout-ms', '--kills', '--settle-ms'];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!known.includes(arg)) {
      throw new Error(`unknown option ${arg} (use ${known.join(', ')})`);
    }
    if (arg === '--kinds') {
      names = (argv[++i] ?? '').split(',').filter(Boolean);
      const bad = names.filter((n) => !(n in SCENARIOS));
      if (!names.length || bad.length) {
        throw new Error(`--kinds takes a comma-separated list of ${Object.keys(SCENARIOS).join(', ')}`);
      }
    } else if (arg === '--no-output-timeout-ms') {
      noOutputTimeoutMs = Number(argv[++i]);
      if (!Number.isInteger(noOutputTimeoutMs) || noOutputTimeoutMs < 250) {
        throw new Error('--no-output-timeout-ms takes a whole number of milliseconds ≥ 250');
      }
    } else if (arg === '--kills') {
      kills = Number(argv[++i]);
      if (!Number.isInteger(kills) || kills < 1) throw new Error('--kills takes a whole number ≥ 1');
    } else if (arg === '--settle-ms') {
      settleMs = Number(argv[++i]);
      if (!Number.isInteger(settleMs) || settleMs < 0) throw new Error('--settle-ms takes milliseconds ≥ 0');
    }
  }
  const scenarios = names.map((n) => {
    const s = SCENARIOS[n];
    return { name: s.name, kind: s.kind, honourPli: !s.ignorePli };
  });
  return {
    quick,
    swapsPerKind: quick ? 3 : Math.max(1, Math.round(kills / scenarios.length)),
    width: p480 ? 854 : 1280,
    height: p480 ? 480 : 720,
    scenarios,
    noOutputTimeoutMs,
    settleMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const debug = process.env.BENCH_DEBUG ? (line: string) => console.error(line) : () => {};
const T0 = Date.now();
const log = (line: string) => console.error(`bench [${((Date.now() - T0) / 1000).toFixed(0)} s]: ${line}`);

function median(values: number[]): number {
  if (!values.length) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const max = (values: number[]) => (values.length ? Math.max(...values) : Number.NaN);
const fmt = (n: number | undefined | null) =>
  n === undefined || n === null || !Number.isFinite(n) ? '–' : `${Math.round(n)}`;
const random = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** The whole machine's busy and total CPU ticks (all cores), from /proc/stat. */
function cpuTicks(): { busy: number; total: number } {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3] + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** Percent of all cores busy between two cpuTicks() samples. */
const busyPct = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
  (100 * (b.busy - a.busy)) / (b.total - a.total);

// ---------------------------------------------------------------------------------------------
// The clip: 30 fps H.264, 1 s GOP, looped with continuous timestamps

class Clip {
  readonly video: RtpFrame[];
  readonly keyframe: boolean[];
  readonly audio: RtpFrame[];
  /** sha1 of a frame's last slice → its index (passthrough keeps slices byte-exact). */
  readonly indexBySlice = new Map<string, number>();
  readonly kbps: number;

  constructor(annexB: Buffer) {
    this.video = h264Frames(annexB, FPS);
    const units = splitAccessUnits(annexB);
    this.keyframe = units.map((nalus) => nalus.some((n) => (n[0] & 0x1f) === 5));
    units.forEach((nalus, i) => {
      const key = sliceKey(nalus);
      if (key) this.indexBySlice.set(key, i);
    });
    this.audio = syntheticOpusFrames(Math.round((this.video.length * 1000) / FPS / 20));
    this.kbps = (annexB.length * 8) / (this.video.length / FPS) / 1000;
  }

  nextKeyframe(from: number): number {
    for (let i = 0; i < this.video.length; i++) {
      const at = (from + i) % this.video.length;
      if (this.keyframe[at]) return at;
    }
    return from;
  }
}

function sliceKey(nalus: Uint8Array[]): string | undefined {
  for (let i = nalus.length - 1; i >= 0; i--) {
    const type = nalus[i][0] & 0x1f;
    if (type === 1 || type === 5) return createHash('sha1').update(nalus[i]).digest('base64');
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Child processes: the gateway, and the orchestrators through the test helper

class GatewayChild {
  readonly lines: string[] = [];
  warnings = 0;
  exited: string | undefined;
  readonly #exit: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        debug(`[gateway] ${line}`);
        this.lines.push(line);
        if (this.lines.length > 500) this.lines.splice(0, 100);
        if (/"level":(4|5|6)0/.test(line)) this.warnings++;
      }
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    this.#exit = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        this.exited = String(code ?? signal);
        resolve();
      }),
    );
  }

  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }

  async stop(): Promise<void> {
    if (this.exited !== undefined) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.#exit.then(() => true), sleep(5000).then(() => false)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await withTimeout(this.#exit, 5000, 'the gateway to die').catch(() => {});
    }
  }
}

/** Children to SIGKILL if this process exits with them alive (the helper does the same for its own). */
const liveChildren = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** The discovery webhook: GET answers `[{"address": url}, ...]` with the current list. */
class Webhook {
  urls: string[] = [];
  readonly server: Server;

  constructor() {
    this.server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.urls.map((address) => ({ address }))));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/orchestrators`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function startGateway(
  webhookUrl: string,
  opts: Options,
): Promise<{ child: GatewayChild; base: string }> {
  const port = await freePort();
  const args = [
    ...['-httpAddr', `127.0.0.1:${port}`, '-orchWebhookUrl', webhookUrl],
    ...['-orchWebhookRefreshInterval', '200ms', '-liveDefaultModel', 'passthrough'],
    ...['-liveNoOutputTimeoutMs', String(opts.noOutputTimeoutMs), '-v', '3'],
  ];
  // The gateway exits when this process goes away, even when SIGKILLed: its stdin pipe closes.
  const guard = 'data:text/javascript,process.stdin.on("end",()=>process.exit(1)).resume()';
  const flags = [...GATEWAY_NODE_FLAGS, '--import', guard, '--import', 'tsx'];
  const proc = spawn(process.execPath, [...flags, 'src/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LP_'))),
  });
  liveChildren.add(proc);
  proc.once('exit', () => liveChildren.delete(proc));
  const child = new GatewayChild(proc);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      async () => {
        if (child.exited !== undefined) throw new Error(`the gateway exited (${child.exited})`);
        try {
          return (await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok;
        } catch {
          return false;
        }
      },
      30_000,
      `GET ${base}/healthz`,
    );
  } catch (err) {
    await child.stop();
    throw new Error(
      `the gateway did not start: ${(err as Error).message}\n` +
        `command: node --import tsx src/main.ts ${args.join(' ')}\nits output:\n${child.tail()}`,
    );
  }
  return { child, base };
}

interface PoolEntry {
  url: string;
  state: string;
}

/** Waits until the gateway's pool is exactly `urls`, every one available for passthrough. */
async function waitForPool(base: string, urls: string[], timeoutMs = 10_000): Promise<void> {
  const want = [...urls].sort().join(' ');
  let seen = '';
  await waitUntil(
    async () => {
      try {
        const res = await fetch(`${base}/orchestrators?model=passthrough`, {
          signal: AbortSignal.timeout(2000),
        });
        const { orchestrators } = (await res.json()) as { orchestrators: PoolEntry[] };
        seen = orchestrators.map((o) => `${o.url}=${o.state}`).join(', ');
        const available = orchestrators.filter((o) => o.state === 'available').map((o) => o.url);
        return orchestrators.length === urls.length && available.sort().join(' ') === want;
      } catch {
        return false;
      }
    },
    timeoutMs,
    `the gateway's pool to be ${want} (it is: ${seen || 'unknown'})`,
  );
}

// ---------------------------------------------------------------------------------------------
// One stream: WHIP publisher pumping the clip in real time, one WHEP viewer

interface ReceivedFrame {
  at: number;
  index: number | undefined;
  keyframe: boolean;
}

interface StreamStatus {
  state: string;
  orchestrator: string | null;
  lastError: string | null;
  input: { gopReplays: number };
  swaps: { at: string; from: string; to: string | null; reason: string; tookMs: number | null }[];
  endReason?: string;
}

class BenchStream {
  publisher?: WhipTestPublisher;
  viewer?: WhepTestViewer;
  readonly frames: ReceivedFrame[] = [];
  readonly ssrcs = new Set<number>();
  /** Date.now() when each clip frame (by index) last finished sending. */
  readonly sendTimes: Float64Array;
  keyframeRequests = 0;
  #stopped = false;
  #pump?: Promise<void>;

  constructor(
    readonly base: string,
    readonly name: string,
    readonly clip: Clip,
    readonly honourPli: boolean,
  ) {
    this.sendTimes = new Float64Array(clip.video.length);
  }

  url(what: string): string {
    return `${this.base}/live/video-to-video/${this.name}/${what}`;
  }

  async open(): Promise<void> {
    this.publisher = await withTimeout(
      WhipTestPublisher.connect(this.url('whip?model=passthrough'), { connectTimeoutMs: 10_000 }),
      20_000,
      'WHIP publish',
    );
    this.#pump = this.pump(this.publisher);
    const viewer = await withTimeout(
      WhepTestViewer.connect(this.url('whep'), { connectTimeoutMs: 10_000 }),
      20_000,
      'WHEP view',
    );
    this.viewer = viewer;
    viewer.onFrame((unit: AccessUnit) => {
      const at = Date.now();
      const key = sliceKey(unit.nalus);
      this.frames.push({
        at,
        index: key === undefined ? undefined : this.clip.indexBySlice.get(key),
        keyframe: unit.keyframe,
      });
      const last = viewer.packets.at(-1);
      if (last) this.ssrcs.add(last.ssrc);
      // The test viewer keeps every packet and frame; keep memory flat.
      if (viewer.frames.length > 300) viewer.frames.length = 0;
      if (viewer.packets.length > 5000) viewer.packets.length = 0;
    });
  }

  /**
   * Sends video and audio in real time with continuous timestamps, looping the clip. Honouring PLI:
   * the next video slot after a keyframe request carries the clip's next keyframe (the content skips
   * ahead, as an encoder asked for a keyframe would send one at once).
   */
  private async pump(publisher: WhipTestPublisher): Promise<void> {
    const { clip } = this;
    let keyframeWanted = false;
    publisher.onKeyframeRequest(() => {
      this.keyframeRequests++;
      if (this.honourPli) keyframeWanted = true;
    });
    const started = performance.now();
    let videoSlot = 0;
    let audioSlot = 0;
    let content = 0;
    while (!this.#stopped) {
      const videoAt = (videoSlot * 1000) / FPS;
      const audioAt = audioSlot * 20;
      const isVideo = videoAt <= audioAt;
      const wait = started + (isVideo ? videoAt : audioAt) - performance.now();
      if (wait > 1) await sleep(wait);
      if (this.#stopped) return;
      if (isVideo) {
        if (keyframeWanted) {
          content = clip.nextKeyframe(content);
          keyframeWanted = false;
        }
        const frame = clip.video[content];
        const timestamp = Math.round((videoSlot * 90_000) / FPS) >>> 0;
        await publisher.send({ video: [{ timestamp, payloads: frame.payloads }], realtime: false });
        this.sendTimes[content] = Date.now();
        content = (content + 1) % clip.video.length;
        videoSlot++;
      } else {
        const frame = clip.audio[audioSlot % clip.audio.length];
        await publisher.send({
          audio: [{ timestamp: (audioSlot * 960) >>> 0, payloads: frame.payloads }],
          realtime: false,
        });
        audioSlot++;
      }
      // The test publisher keeps every packet it sent; we do not need them.
      if (publisher.sent.length > 2000) publisher.sent.length = 0;
    }
  }

  async status(): Promise<StreamStatus | undefined> {
    try {
      const res = await fetch(this.url('status'), { signal: AbortSignal.timeout(3000) });
      return res.ok ? ((await res.json()) as StreamStatus) : undefined;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    this.#stopped = true;
    await withTimeout(this.#pump ?? Promise.resolve(), 5000, 'the sender to stop').catch(() => {});
    await withTimeout(this.viewer?.close() ?? Promise.resolve(), 5000, 'closing the viewer').catch(() => {});
    await withTimeout(this.publisher?.close() ?? Promise.resolve(), 5000, 'closing the publisher').catch(
      () => {},
    );
  }
}

// ---------------------------------------------------------------------------------------------
// One round: a stream on a fresh target orchestrator, which then fails

interface SwapResult {
  scenario: string;
  round: number;
  ok: boolean;
  error?: string;
  freezeMs?: number;
  /** Last frame before → the gateway noticed (swaps[0].at). */
  detectMs?: number;
  tookMs?: number | null;
  /** New job running → the publisher sent the keyframe the viewer's first new frame is. */
  keyframeWaitMs?: number;
  /** That keyframe sent → complete at the viewer. */
  firstOutputMs?: number;
  /** Failure injected (SIGKILL) → noticed; killed only. */
  killToDetectMs?: number;
  /** Last frame before → first frame the viewer had not seen yet (after a fast-forwarded replay). */
  newContentMs?: number;
  /** Clip frames the viewer never got across the swap. */
  framesSkipped?: number;
  /** Longest gap between frames in the second after the first new frame (a stutter after the swap). */
  gapAfterMs?: number;
  reason?: string;
  viewerSsrcs?: number;
  note?: string;
  /** Swaps after the first one within the settle time: the new job did not take. */
  extraSwaps?: number;
  /** The stream ended (by the end of the settle time). */
  ended?: boolean;
  /** The new job got the cached input GOP (status input.gopReplays). */
  gopReplayed?: boolean;
  /** Percent of all cores busy during the round (whole machine). */
  busyPct?: number;
}

interface Context {
  base: string;
  webhook: Webhook;
  healthy: LocalOrchestratorProcess;
  clip: Clip;
  opts: Options;
}

async function runRound(
  ctx: Context,
  scenario: Scenario,
  round: number,
  target: LocalOrchestratorProcess,
  /** Resolves when no orchestrator is starting in the background any more (none competes with a kill). */
  quiet: () => Promise<unknown>,
): Promise<SwapResult> {
  const result: SwapResult = { scenario: scenario.name, round, ok: false };
  const cpuBefore = cpuTicks();
  const stream = new BenchStream(
    ctx.base,
    `failover-${scenario.name}-${round}-${Date.now() % 100_000}`,
    ctx.clip,
    scenario.honourPli,
  );
  try {
    // Only the target is listed: the stream has to start on it.
    ctx.webhook.urls = [target.url];
    await waitForPool(ctx.base, [target.url], 20_000);
    await stream.open();
    await waitUntil(() => stream.frames.length >= 15, 10_000, 'frames at the viewer');
    const before = await stream.status();
    if (before?.orchestrator !== target.url) {
      throw new Error(`the stream runs on ${before?.orchestrator}, not on the round's target ${target.url}`);
    }
    // Now the healthy one is there to move to.
    ctx.webhook.urls = [target.url, ctx.healthy.url];
    await waitForPool(ctx.base, [target.url, ctx.healthy.url], 20_000);
    const poolReadyAt = Date.now();

    let killedAt: number | undefined;
    await quiet();
    if (scenario.kind === 'killed') {
      // At least 1 s of steady output, then a random moment within the next segment.
      await sleep(random(1000, 2000));
      killedAt = Date.now();
      process.kill(target.pid, 'SIGKILL');
    }
    let swap: StreamStatus['swaps'][number] | undefined;
    let last: StreamStatus | undefined;
    await waitUntil(
      async () => {
        last = await stream.status();
        if (last?.state === 'ended') throw new Error(`the stream ended: ${last.endReason}`);
        swap = last?.swaps[0];
        return swap?.to !== undefined && swap.to !== null;
      },
      15_000,
      'the swap in status',
    ).catch((err: Error) => {
      throw new Error(`${err.message} (last status: ${JSON.stringify(last)})`);
    });
    if (!swap || swap.tookMs === null) throw new Error('no swap recorded');
    const noticed = Date.parse(swap.at);
    result.reason = swap.reason;
    result.tookMs = swap.tookMs;
    if (swap.to !== ctx.healthy.url)
      throw new Error(`swapped to ${swap.to}, not to the healthy ${ctx.healthy.url}`);
    // One second of frames after the swap.
    await waitUntil(
      () => stream.frames.filter((f) => f.at > noticed).length >= FPS,
      10_000,
      'frames at the viewer after the swap',
    );

    const frames = stream.frames;
    const i = frames.findIndex((f) => f.at > noticed);
    if (i <= 0) throw new Error('no frame at the viewer before the failure was noticed');
    const lastBefore = frames[i - 1];
    const firstAfter = frames[i];
    result.freezeMs = firstAfter.at - lastBefore.at;
    result.detectMs = noticed - lastBefore.at;
    if (killedAt !== undefined) result.killToDetectMs = noticed - killedAt;
    const running = noticed + swap.tookMs;
    if (firstAfter.index !== undefined && stream.sendTimes[firstAfter.index] > 0) {
      const sent = stream.sendTimes[firstAfter.index];
      result.keyframeWaitMs = sent - running;
      result.firstOutputMs = firstAfter.at - sent;
    }
    if (firstAfter.index !== undefined && lastBefore.index !== undefined) {
      const n = ctx.clip.video.length;
      // Signed: below zero, the new job started on the cached GOP and the viewer got frames it had
      // already seen (fast-forwarded) before new ones.
      const skipped = (firstAfter.index - lastBefore.index - 1 + n) % n;
      result.framesSkipped = skipped > n / 2 ? skipped - n : skipped;
      const last = lastBefore.index;
      const fresh = frames.slice(i).find((f) => {
        if (f.index === undefined) return false;
        const ahead = (f.index - last + n) % n;
        return ahead > 0 && ahead < n / 2;
      });
      if (fresh) result.newContentMs = fresh.at - lastBefore.at;
    }
    const after = frames.slice(i, i + FPS);
    result.gapAfterMs = Math.max(...after.slice(1).map((f, k) => f.at - after[k].at));
    const notes: string[] = [];
    if (!firstAfter.keyframe) notes.push('first frame after the swap is not a keyframe');
    if (lastBefore.at < poolReadyAt) notes.push('output stopped before the healthy orchestrator was listed');
    if (notes.length) result.note = notes.join('; ');
    result.viewerSsrcs = stream.ssrcs.size;
    // Watch on: the watchdog swaps again if the new job does not produce, and may end the stream.
    if (ctx.opts.settleMs > 0) await sleep(ctx.opts.settleMs);
    const settled = await stream.status();
    result.extraSwaps = Math.max(0, (settled?.swaps.length ?? 1) - 1);
    result.ended = settled?.state === 'ended';
    result.gopReplayed = (settled?.input.gopReplays ?? 0) > 0;
    if (result.gopReplayed && (result.keyframeWaitMs ?? 0) < 0) {
      // The new job started on the keyframe the gateway kept: nothing was waited for.
      result.keyframeWaitMs = 0;
      result.firstOutputMs = firstAfter.at - running;
    }
    if (result.extraSwaps)
      notes.push(`then ${result.extraSwaps} more swap(s): ${settled?.swaps.at(-1)?.reason}`);
    if (result.ended) notes.push(`stream ended: ${settled?.endReason}`);
    if (notes.length) result.note = notes.join('; ');
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
    result.ended = /the stream ended/.test(result.error);
  } finally {
    result.busyPct = busyPct(cpuBefore, cpuTicks());
    await stream.close();
    await target.kill('SIGKILL').catch(() => {});
    ctx.webhook.urls = [ctx.healthy.url];
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const started = Date.now();
  const opts = parseArgs(process.argv.slice(2));
  // Kinds take turns, so the machine's ups and downs fall on all of them alike.
  const rounds = Array.from({ length: opts.swapsPerKind }, (_, i) =>
    opts.scenarios.map((s) => ({ s, i })),
  ).flat();
  const budgetMs = rounds.length * ROUND_BUDGET_MS;
  const watchdogMs = budgetMs + 3 * 60_000;

  const orchestrators: LocalOrchestratorProcess[] = [];
  const webhook = new Webhook();
  let gateway: GatewayChild | undefined;
  const cleanup = async () => {
    await gateway?.stop().catch(() => {});
    await Promise.allSettled(orchestrators.map((o) => o.kill('SIGKILL')));
    await webhook.close().catch(() => {});
  };
  const watchdog = setTimeout(() => {
    console.error(`bench: took over ${Math.round(watchdogMs / 60_000)} minutes; giving up`);
    void cleanup().finally(() => process.exit(1));
  }, watchdogMs);
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void cleanup().finally(() => process.exit(130)));
  }

  const results: SwapResult[] = [];
  let fatal: string | undefined;
  let clip: Clip | undefined;
  try {
    log(`making a ${opts.width}x${opts.height} ${FPS} fps clip...`);
    clip = new Clip(
      await makeH264Clip({
        seconds: CLIP_SECONDS,
        width: opts.width,
        height: opts.height,
        fps: FPS,
        gopSeconds: 1,
      }),
    );

    // One target orchestrator per round, started while the round before it runs (never during a
    // failure: each round waits for the next round's start-up before it kills its own target).
    const spawnOne = async (fault?: string) => {
      const o = await spawnLocalOrchestrator({
        models: ['passthrough'],
        capacity: 4,
        fault,
        startTimeoutMs: 60_000,
      });
      orchestrators.push(o);
      return o;
    };
    const spawnTarget = (r: number) =>
      spawnOne(
        rounds[r].s.kind === 'silent' ? `stall-output-after:${Math.round(random(3500, 4500))}ms` : undefined,
      );
    log('starting the healthy orchestrator and the first target...');
    const healthy = await spawnOne();
    let nextTarget: Promise<LocalOrchestratorProcess> | undefined = rounds.length
      ? spawnTarget(0)
      : undefined;

    const webhookUrl = await webhook.listen();
    webhook.urls = [healthy.url];
    log('starting the gateway...');
    const g = await startGateway(webhookUrl, opts);
    gateway = g.child;
    await waitForPool(g.base, [healthy.url], 15_000);
    const ctx: Context = { base: g.base, webhook, healthy, clip, opts };

    // Warm-up, not measured: the first stream pays for module loading and JIT.
    log('warm-up stream...');
    const warm = new BenchStream(g.base, `failover-warmup-${Date.now() % 100_000}`, clip, true);
    try {
      await warm.open();
      await waitUntil(() => warm.frames.length >= 60, 15_000, 'warm-up frames');
    } finally {
      await warm.close();
    }

    for (let r = 0; r < rounds.length; r++) {
      const { s, i } = rounds[r];
      const over = Date.now() - started > budgetMs;
      let spawnError: string | undefined;
      const target = over
        ? undefined
        : await nextTarget?.catch((err: Error) => {
            spawnError = err.message;
            return undefined;
          });
      nextTarget = !over && r + 1 < rounds.length ? spawnTarget(r + 1) : undefined;
      // Orchestrators that failed to start are reported as this round's failure.
      nextTarget?.catch(() => {});
      const quiet = () => (nextTarget ?? Promise.resolve()).catch(() => {});
      const res: SwapResult = !target
        ? {
            scenario: s.name,
            round: i + 1,
            ok: false,
            error: spawnError ? `the target did not start: ${spawnError}` : 'skipped: over the time budget',
          }
        : await runRound(ctx, s, i + 1, target, quiet);
      results.push(res);
      log(
        res.ok
          ? `${s.name} #${i + 1}: freeze ${fmt(res.freezeMs)} ms (detect ${fmt(res.detectMs)}, restart ${fmt(res.tookMs)}, keyframe ${fmt(res.keyframeWaitMs)}, first output ${fmt(res.firstOutputMs)})`
          : `${s.name} #${i + 1}: FAILED: ${res.error}`,
      );
      if (gateway.exited !== undefined) throw new Error(`the gateway exited (${gateway.exited})`);
    }
  } catch (err) {
    fatal = (err as Error).message;
  } finally {
    log('cleaning up...');
    await cleanup();
  }

  console.log(report(opts, results, clip, gateway, fatal, Date.now() - started));
  process.exit(fatal || results.some((r) => !r.ok) ? 1 : 0);
}

function report(
  opts: Options,
  results: SwapResult[],
  clip: Clip | undefined,
  gateway: GatewayChild | undefined,
  fatal: string | undefined,
  tookMs: number,
): string {
  const cpus = os.cpus();
  const out: string[] = [];
  const t = opts.noOutputTimeoutMs;
  out.push(`## lp-gateway failover benchmark${opts.quick ? ' (--quick)' : ''}`);
  out.push('');
  out.push('| machine | |');
  out.push('|---|---|');
  out.push(`| CPU | ${cpus[0]?.model ?? 'unknown'} |`);
  out.push(`| cores | ${cpus.length} |`);
  out.push(`| Node | ${process.version} (${os.type()} ${os.release()}) |`);
  out.push(
    `| setup | gateway child process (\`-liveNoOutputTimeoutMs ${t}\`, orchestrators from a discovery webhook), ` +
      'one local orchestrator child process per round plus one healthy one, model `passthrough`, all on 127.0.0.1 |',
  );
  out.push(
    `| clip | ${opts.width}x${opts.height} ${FPS} fps H.264 baseline, 1 s GOP${clip ? `, ${fmt(clip.kbps)} kbit/s` : ''}, synthetic Opus; werift WHIP publisher and WHEP viewer in the bench process |`,
  );
  out.push('');
  out.push(
    '| failure | publisher | swaps | **freeze p50** | **freeze max** | target | until new content p50 / max | streams ended | second swaps | GOP replayed | detection p50 | restart (`tookMs`) p50 / max | keyframe wait p50 | first output p50 | largest part (p50) | machine busy p50 / max |',
  );
  out.push('|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  const warnings: string[] = [];
  for (const s of opts.scenarios) {
    const rs = results.filter((r) => r.scenario === s.name && r.ok);
    const failed = results.filter((r) => r.scenario === s.name && !r.ok).length;
    const col = (k: keyof SwapResult) =>
      rs.map((r) => r[k]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    const freeze = col('freezeMs');
    const p50 = median(freeze);
    const worst = max(freeze);
    let target: string;
    if (s.kind === 'killed') {
      target = `p50 < 300, max < 1000: ${p50 < 300 && worst < 1000 ? 'met' : '**missed**'}`;
    } else {
      target = `< ${t + 1000}: ${worst < t + 1000 ? 'met' : p50 < t + 1000 ? 'p50 met, **max missed**' : '**missed**'}`;
    }
    if (!freeze.length) target = 'no data';
    const parts: [string, number][] = [
      ['detection', median(col('detectMs'))],
      ['restart', median(col('tookMs'))],
      ['keyframe wait', median(col('keyframeWaitMs'))],
      ['first output', median(col('firstOutputMs'))],
    ];
    const [largest, largestMs] = parts.reduce((a, b) => (b[1] > a[1] ? b : a));
    const sum = parts.reduce((n, [, v]) => n + (Number.isFinite(v) ? v : 0), 0);
    const share =
      sum > 0 && Number.isFinite(largestMs) ? `${largest} (${fmt((100 * largestMs) / sum)} %)` : '–';
    if (s.kind === 'silent') {
      const waited = rs
        .map((r) => /no output for (\d+) ms/.exec(r.reason ?? '')?.[1])
        .filter((v): v is string => v !== undefined)
        .map(Number);
      if (waited.length && Math.min(...waited) > t + 400) {
        warnings.push(
          `${s.name}: the gateway waited ${Math.min(...waited)}–${Math.max(...waited)} ms for output before swapping, ` +
            `not the ${t} ms passed as -liveNoOutputTimeoutMs: the flag does not reach the live sessions.`,
        );
      }
    }
    const all = results.filter((r) => r.scenario === s.name);
    const ended = all.filter((r) => r.ended).length;
    const seconds = rs.filter((r) => (r.extraSwaps ?? 0) > 0).length;
    const replayed = rs.filter((r) => r.gopReplayed).length;
    out.push(
      `| ${s.kind === 'killed' ? 'killed (SIGKILL)' : `silent (stall; no-output timeout ${t} ms)`} | ${s.honourPli ? 'honours PLI' : 'ignores PLI (1 s GOP)'} | ${rs.length}${failed ? ` (+${failed} failed)` : ''} | **${fmt(p50)} ms** | **${fmt(worst)} ms** | ${target} |` +
        ` ${fmt(median(col('newContentMs')))} / ${fmt(max(col('newContentMs')))} ms |` +
        ` ${ended ? `**${ended}**` : '0'} | ${seconds} | ${replayed} / ${rs.length} |` +
        ` ${fmt(median(col('detectMs')))} ms | ${fmt(median(col('tookMs')))} / ${fmt(max(col('tookMs')))} ms | ${fmt(median(col('keyframeWaitMs')))} ms | ${fmt(median(col('firstOutputMs')))} ms | ${share} |` +
        ` ${fmt(median(col('busyPct')))} / ${fmt(max(col('busyPct')))} % |`,
    );
  }
  for (const w of warnings) out.push('', `**Warning:** ${w}`);
  const kills = results.filter((r) => r.scenario.startsWith('killed'));
  const endedKills = kills.filter((r) => r.ended).length;
  out.push(
    '',
    `Kills: ${kills.length} (${kills.filter((r) => r.ok).length} measured); streams ended: **${endedKills}** ` +
      `(target 0: ${endedKills === 0 && kills.length > 0 ? 'met' : '**missed**'}); streams swapped again within ` +
      `${opts.settleMs} ms of their swap: ${kills.filter((r) => (r.extraSwaps ?? 0) > 0).length}. Machine busy: the ` +
      `whole machine's CPU (all ${os.cpus().length} cores, /proc/stat) during each round, gateway, orchestrators, ` +
      'this bench and whatever else runs on the box (other work skews the figures); load average at the end ' +
      `${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' / ')}.`,
  );
  out.push('');
  out.push('Each swap (ms; freeze = detection + restart + keyframe wait + first output):');
  out.push('');
  out.push(
    '| failure | # | freeze | until new content | detection (last frame → noticed) | restart (`tookMs`: noticed → job running) | keyframe wait (job running → keyframe sent) | first output (keyframe sent → at viewer) | SIGKILL → noticed | longest gap in the next second | clip frames not shown | viewer SSRCs | machine busy | reason (status) |',
  );
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    if (!r.ok) {
      out.push(
        `| ${r.scenario} | ${r.round} | failed | ${r.error?.replace(/\|/g, '/').slice(0, 300)} | | | | | | | | | | |`,
      );
      continue;
    }
    out.push(
      `| ${r.scenario} | ${r.round} | **${fmt(r.freezeMs)}** | ${fmt(r.newContentMs)} | ${fmt(r.detectMs)} | ${fmt(r.tookMs)} | ${fmt(r.keyframeWaitMs)} | ${fmt(r.firstOutputMs)} | ${fmt(r.killToDetectMs)} | ${fmt(r.gapAfterMs)} | ${fmt(r.framesSkipped)} | ${r.viewerSsrcs ?? '–'} | ${fmt(r.busyPct)} % | ${(r.reason ?? '').replace(/\|/g, '/').slice(0, 90)}${r.note ? ` (${r.note})` : ''} |`,
    );
  }
  out.push('');
  out.push(
    'Freeze: viewer-side receive times of complete access units, first after the gateway noticed the failure ' +
      '(status `swaps[].at`) minus last before it. Detection, restart and keyframe wait come from the status ' +
      'and the publisher’s send times (a keyframe wait a few ms below zero: that keyframe was already on its ' +
      'way; 0 when the new job started on the input GOP the gateway kept, which it gets at once); first ' +
      'output is ingest → orchestrator → egress → viewer for the keyframe that restarts the stream (from ' +
      'the job running, for a replayed GOP). All on ' +
      'one clock (Date.now(), one machine). Publisher "honours PLI": the frame slot after a keyframe request ' +
      'carries a keyframe, as browsers do; "ignores PLI": fixed 1 s GOP, as OBS. Clip frames not shown include ' +
      'those the PLI-honouring publisher skips to reach its next keyframe; below zero, the viewer got that many ' +
      'frames it had already seen again (the replayed GOP, fast-forwarded in RTP time).',
  );
  if (gateway)
    out.push('', `Gateway log: ${gateway.warnings} warning/error line(s) (each swap logs a few by design).`);
  if (fatal) out.push('', `**Run aborted:** ${fatal}`);
  out.push('', `Bench took ${fmt(tookMs / 1000)} s.`);
  return out.join('\n');
}

main().catch((err) => {
  console.error(`bench: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
