// Scale-out with real processes: Redis, a remote signer, three keyless gateway nodes sharing the
// stream registry through Redis, and the local orchestrator on the project's chain checking every
// ticket. Streams are published to different nodes; viewers, status and update calls go to other
// nodes (WHEP answered with 307 to the owner, the rest sent on); one node is killed (SIGKILL) and
// the others say its streams were lost; one is drained (SIGTERM) and says so; the rest stream on,
// also once Redis is gone (new streams then get 503).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { encryptKeystore } from '../../src/payments/keystore.ts';
import { type LocalChain, TEST_SENDER_KEY } from '../helpers/local-chain.ts';
import { freePort, type LpProcess, spawnLp, untilReady } from '../helpers/lp-process.ts';
import { makeH264Clip } from '../helpers/media.ts';
import { type OnChainWorld, redeemOnChain, startOnChainWorld } from '../helpers/onchain-world.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';
import { waitFor } from '../helpers/wait.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../helpers/webrtc-clients.ts';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const PASSWORD = 'scale-out test password';
const TOKEN = 'cluster-signer-token';
let world: OnChainWorld;
let lc: LocalChain;
let orch: LocalOrchestrator;
let redis: TestRedis;
let signer: LpProcess;
const nodes: { proc: LpProcess; base: string }[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  world = await startOnChainWorld(logger, { capacity: 4 });
  ({ lc, orch } = world);

  const dir = mkdtempSync(join(tmpdir(), 'lp-scale-out-'));
  const keyFile = join(dir, 'signer.json');
  writeFileSync(keyFile, JSON.stringify(await encryptKeystore(TEST_SENDER_KEY, PASSWORD, { n: 1024 })));
  const signerPort = await freePort();
  signer = spawnLp([
    '-remoteSigner',
    ...['-network', 'arbitrum-one-mainnet', '-ethUrl', lc.url, '-ethController', lc.controller],
    ...['--chainId', String(lc.chainId), '--aiServiceRegistry', lc.addresses.ServiceRegistry],
    ...['-ethKeystorePath', keyFile, '-ethPassword', PASSWORD],
    ...['-httpAddr', `127.0.0.1:${signerPort}`, '-remoteSignerAuthToken', TOKEN, '-remoteDiscovery'],
    ...['-orchInfoMaxAge', '2s'],
  ]);
  cleanups.push(() => signer.kill());
  await untilReady(signer, 'remote signer is running');

  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const proc = spawnLp([
      ...['-httpAddr', `127.0.0.1:${port}`, '-redisUrl', redis.url, '-clusterLeaseTtl', '2s'],
      ...['-remoteSignerUrl', `http://127.0.0.1:${signerPort}`],
      ...['-remoteSignerHeaders', `Authorization:Bearer ${TOKEN}`],
      ...['-liveDefaultModel', 'passthrough', '-livePaymentInterval', '1s'],
      ...['-orchWebhookRefreshInterval', '1s', '-shutdownTimeout', '10s'],
      // Every stream here is of one account ('open'): three streams and three viewers, cluster-wide.
      ...['-liveAccountMaxStreams', '3', '-liveAccountMaxViewers', '3'],
    ]);
    cleanups.push(() => proc.kill());
    nodes.push({ proc, base: `http://127.0.0.1:${port}` });
  }
  for (const n of nodes) await untilReady(n.proc, 'lp-gateway is running', 60_000);
}, 180_000);

afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await world?.close();
  await redis?.kill();
});

type Status = Record<string, unknown> & {
  state?: string;
  manifestId?: string;
  payments?: { tickets: number; lastError: string | null }[];
  gateway_status?: { whep_url: string };
  error?: { code: string; message: string };
};
const path = (stream: string) => `/live/video-to-video/${stream}`;
const status = async (base: string, stream: string): Promise<{ code: number; body: Status }> => {
  const r = await fetch(`${base}${path(stream)}/status`);
  return { code: r.status, body: (await r.json()) as Status };
};
/** SIGKILL to the gateway (bin/lp-gateway.js runs it as a child) and then its launcher. */
function killHard(pid: number): void {
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  for (const c of children) process.kill(c, 'SIGKILL');
  process.kill(pid, 'SIGKILL');
}
const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

describe('three gateway nodes on one Redis', () => {
  it('streams live on their nodes, are reachable from every node, and a lost node loses only its own', async () => {
    for (const n of nodes) {
      await waitFor(
        async () => {
          const body = (await (await fetch(`${n.base}/orchestrators`)).json()) as {
            orchestrators: { url: string; state: string }[];
          };
          return body.orchestrators.some((o) => o.url === orch.url && o.state === 'available');
        },
        "the orchestrator from the signer's discovery",
        30_000,
      );
    }
    expect(nodes[0]!.proc.stdout()).toContain('scale-out:');

    // One stream per node.
    const clip = await makeH264Clip({ seconds: 40 });
    const streams = ['cs0', 'cs1', 'cs2'];
    const stop = new AbortController();
    const sending: Promise<unknown>[] = [];
    for (const [i, s] of streams.entries()) {
      const publisher = await WhipTestPublisher.connect(`${nodes[i]!.base}${path(s)}/whip?model=passthrough`);
      cleanups.push(() => publisher.close());
      sending.push(publisher.send({ video: h264Frames(clip, 30), signal: stop.signal }));
    }

    // A second publisher of cs0 on another node: 409, the name is taken cluster-wide.
    const dup = await fetch(`${nodes[1]!.base}${path('cs0')}/whip`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    expect(dup.status).toBe(409);
    expect(((await dup.json()) as Status).error!.message).toContain('on another node');

    // Viewers on other nodes: a 307 to the owner, which fetch follows with the POST.
    const viewers: WhepTestViewer[] = [];
    for (const [i, s] of streams.entries()) {
      const other = nodes[(i + 1) % 3]!;
      const raw = await fetch(`${other.base}${path(s)}/whep`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: 'v=0\r\n',
        redirect: 'manual',
      });
      expect(raw.status).toBe(307);
      expect(raw.headers.get('location')).toBe(`${nodes[i]!.base}${path(s)}/whep`);
      const viewer = await WhepTestViewer.connect(`${other.base}${path(s)}/whep`);
      cleanups.push(() => viewer.close());
      viewers.push(viewer);
    }
    for (const v of viewers) await waitFor(() => v.frames.length > 30, 'frames through another node', 30_000);

    // The account's limits hold across nodes: a fourth stream, a fourth viewer, wherever asked.
    const fourth = await fetch(`${nodes[0]!.base}${path('cs9')}/whip`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    expect(fourth.status).toBe(429);
    expect(((await fourth.json()) as Status).error!.code).toBe('ACCOUNT_STREAMS');
    const extraViewer = await fetch(`${nodes[2]!.base}${path('cs0')}/whep`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    expect(extraViewer.status).toBe(429);
    expect(((await extraViewer.json()) as Status).error!.code).toBe('ACCOUNT_VIEWERS');

    // Status and update from random nodes; the playback URL names the owner.
    for (const [i, s] of streams.entries()) {
      const st = await status(pick(nodes).base, s);
      expect(st.code).toBe(200);
      expect(st.body.state).toBe('live');
      expect(st.body.gateway_status?.whep_url).toBe(`${nodes[i]!.base}${path(s)}/whep`);
      const up = await fetch(`${pick(nodes).base}${path(s)}/update`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ prompt: `p-${s}` }),
      });
      expect(up.status).toBe(200);
    }
    const unknown = await status(nodes[0]!.base, 'never-published');
    expect(unknown.code).toBe(404);

    // Paid through the signer on every node.
    for (const s of streams) {
      await waitFor(
        async () => ((await status(nodes[0]!.base, s)).body.payments?.[0]?.tickets ?? 0) > 62,
        `payments of ${s}`,
        30_000,
      );
    }

    // Node 2 dies without a word: its lease lapses, the others say its stream was lost.
    killHard(nodes[2]!.proc.pid);
    await nodes[2]!.proc.exited;
    await waitFor(
      async () => (await status(nodes[0]!.base, 'cs2')).code === 404,
      "the dead node's stream to be reported lost",
      15_000,
    );
    const lost = await status(nodes[1]!.base, 'cs2');
    expect(lost.code).toBe(404);
    expect(lost.body.error!.message).toBe('stream ended (node lost)');
    const lostView = await fetch(`${nodes[0]!.base}${path('cs2')}/whep`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    expect(lostView.status).toBe(404);

    // The others keep their streams: frames still arrive and status says live.
    const before = [viewers[0]!.frames.length, viewers[1]!.frames.length];
    await waitFor(
      () => viewers[0]!.frames.length > before[0]! + 30 && viewers[1]!.frames.length > before[1]! + 30,
      'frames after the node died',
      20_000,
    );
    expect((await status(nodes[1]!.base, 'cs0')).body.state).toBe('live');
    expect((await status(nodes[0]!.base, 'cs1')).body.state).toBe('live');
    // The dead node's viewer slot lapsed with its leases: a new viewer fits the account again.
    const late = await WhepTestViewer.connect(`${nodes[1]!.base}${path('cs0')}/whep`);
    cleanups.push(() => late.close());
    await waitFor(() => late.frames.length > 10, 'frames to a viewer in the freed slot', 20_000);

    // Every payment the orchestrator took verified: no stream reports a payment error, the
    // winners are the signer's and redeem on the TicketBroker.
    const manifests = new Set<string>();
    for (const s of ['cs0', 'cs1']) {
      const st = (await status(nodes[0]!.base, s)).body;
      expect(st.payments![0]!.lastError).toBeNull();
      manifests.add(st.manifestId!);
    }
    const signerAddress = getAddress(lc.accounts[0]!.address);
    const won = orch.recipient!.winningTickets;
    expect(won.filter((w) => manifests.has(w.manifestId)).length).toBeGreaterThan(4);
    for (const w of won) expect(getAddress(w.ticket.sender)).toBe(signerAddress);
    const nonces = won.map((w) => `${w.ticket.recipientRandHash}:${w.ticket.senderNonce}`);
    expect(new Set(nonces).size).toBe(nonces.length);
    for (const w of won.slice(0, 3)) await redeemOnChain(world, w);

    // Node 1 drained (SIGTERM): its stream ends and the others say why, at once.
    await nodes[1]!.proc.kill();
    const drained = await status(nodes[0]!.base, 'cs1');
    expect(drained.code).toBe(404);
    expect(drained.body.error!.message).toBe('stream ended: gateway shutting down');
    expect((await status(nodes[0]!.base, 'cs0')).body.state).toBe('live');

    // Redis down: a new stream is refused with 503 and Retry-After; the running one goes on.
    await redis.kill();
    const refused = await WhipTestPublisher.connect(`${nodes[0]!.base}${path('cs3')}/whip`).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/: 503 .*CLUSTER_UNAVAILABLE/);
    const raw = await fetch(`${nodes[0]!.base}${path('cs4')}/whip`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: (viewers[0]!.pc.localDescription?.sdp ?? 'v=0\r\n').replace(/a=recvonly/g, 'a=sendonly'),
    });
    expect(raw.status).toBe(503);
    expect(raw.headers.get('retry-after')).toBe('5');
    const cs0Frames = viewers[0]!.frames.length;
    await waitFor(() => viewers[0]!.frames.length > cs0Frames + 30, 'frames while Redis is down', 20_000);
    expect((await status(nodes[0]!.base, 'cs0')).body.state).toBe('live');

    stop.abort();
    await Promise.allSettled(sending);
  }, 240_000);
});
