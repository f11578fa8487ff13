// Scale-out benchmark (npm run bench:cluster): three gateway nodes (child processes, one event
// loop each, as deployed) on one Redis, off-chain, sharing one local orchestrator; this process is
// a round-robin client in front of them. It reports
//   A  Redis commands per stream start (INFO commandstats around each WHIP publish, nothing else
//      running: leases of 60 s, so no renewal falls inside)
//   B  GET /status: answered by the owner vs sent on by another node (median, p95; the difference
//      is what a cross-node request adds)
//   C  WHEP POST at a node that does not own the stream: the 307 hop (the client then makes the
//      same POST to the owner, as it would have anyway)
// Flags: --quick (fewer samples).
import pino from 'pino';
import { createClient } from 'redis';
import { LocalOrchestrator } from '../src/local-orchestrator/server.ts';
import { spawnLp, untilReady } from '../test/helpers/lp-process.ts';
import { makeH264Clip } from '../test/helpers/media.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { h264Frames, WhepTestViewer, WhipTestPublisher } from '../test/helpers/webrtc-clients.ts';
import { freePort, waitUntil } from './common.ts';

const quick = process.argv.includes('--quick');
const STATUS_SAMPLES = quick ? 60 : 300;
const WHEP_SAMPLES = quick ? 20 : 100;

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { median: q(0.5), p95: q(0.95), n: s.length };
};
const fmt = (x: number) => x.toFixed(2);

async function main(): Promise<void> {
  const logger = pino({ level: 'silent' });
  const redis = await startRedis();
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit: 0n,
    pixelsPerUnit: 1n,
    capacity: 8,
    logger,
  });
  const nodes: { base: string; kill: () => Promise<void> }[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const p = spawnLp([
      ...['-httpAddr', `127.0.0.1:${port}`, '-redisUrl', redis.url, '-clusterLeaseTtl', '60s'],
      ...['-orchAddr', orch.url, '-liveDefaultModel', 'passthrough', '-v', '1'],
    ]);
    await untilReady(p, 'lp-gateway is running', 60_000);
    nodes.push({ base: `http://127.0.0.1:${port}`, kill: () => p.kill() });
  }
  const cli = createClient({ url: redis.url });
  await cli.connect();
  const commandCounts = async () => {
    const info = await cli.info('commandstats');
    const counts = new Map<string, number>();
    for (const m of info.matchAll(/^cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/gm)) counts.set(m[1]!, Number(m[2]));
    return counts;
  };
  const clip = await makeH264Clip({ seconds: 60 });
  const stop = new AbortController();
  const publishers: WhipTestPublisher[] = [];
  const perStart: Map<string, number>[] = [];
  const streams = ['b0', 'b1', 'b2'];
  // Let discovery's latency messages settle before counting.
  await new Promise((r) => setTimeout(r, 2000));
  for (const [i, s] of streams.entries()) {
    const before = await commandCounts();
    const pub = await WhipTestPublisher.connect(`${nodes[i]!.base}/live/video-to-video/${s}/whip`);
    const after = await commandCounts();
    const diff = new Map<string, number>();
    for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) diff.set(k, v - (before.get(k) ?? 0));
    // Our own INFO call is not the gateway's.
    diff.set('info', (diff.get('info') ?? 0) - 1);
    if (diff.get('info') === 0) diff.delete('info');
    perStart.push(diff);
    publishers.push(pub);
    void pub.send({ video: h264Frames(clip, 30), signal: stop.signal });
  }
  const viewer = await WhepTestViewer.connect(`${nodes[1]!.base}/live/video-to-video/b0/whep`);
  await waitUntil(() => viewer.frames.length > 10, 30_000, 'frames through a redirected viewer');

  // B: round-robin status requests.
  const local: number[] = [];
  const cross: number[] = [];
  for (let i = 0; i < STATUS_SAMPLES; i++) {
    const node = i % 3;
    const s = streams[Math.floor(i / 3) % 3]!;
    const t0 = performance.now();
    const r = await fetch(`${nodes[node]!.base}/live/video-to-video/${s}/status`);
    await r.arrayBuffer();
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`status ${s} at node ${node}: ${r.status}`);
    (streams.indexOf(s) === node ? local : cross).push(ms);
  }
  // C: the WHEP redirect hop.
  const offer = viewer.pc.localDescription!.sdp;
  const hops: number[] = [];
  for (let i = 0; i < WHEP_SAMPLES; i++) {
    const t0 = performance.now();
    const r = await fetch(`${nodes[(i % 2) + 1]!.base}/live/video-to-video/b0/whep`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: offer,
      redirect: 'manual',
    });
    await r.arrayBuffer();
    hops.push(performance.now() - t0);
    if (r.status !== 307) throw new Error(`WHEP at another node: ${r.status}`);
  }

  const l = stats(local);
  const c = stats(cross);
  const h = stats(hops);
  console.log('\nlp-gateway scale-out benchmark: 3 nodes, 1 Redis, 1 local orchestrator, all on 127.0.0.1');
  console.log('\nA  Redis commands per stream start (server-side counts, commands inside scripts included)');
  for (const [i, d] of perStart.entries()) {
    const total = [...d.values()].reduce((a, b) => a + b, 0);
    console.log(`   ${streams[i]}: ${total} commands: ${[...d].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  console.log('\nB  GET /status, round robin over the 3 nodes (ms)');
  console.log(`   at the owner:      median ${fmt(l.median)}  p95 ${fmt(l.p95)}  (n=${l.n})`);
  console.log(`   at another node:   median ${fmt(c.median)}  p95 ${fmt(c.p95)}  (n=${c.n})`);
  console.log(`   added by the hop:  median ${fmt(c.median - l.median)}  p95 ${fmt(c.p95 - l.p95)}`);
  console.log('\nC  WHEP POST at a node that does not own the stream: the 307 (ms)');
  console.log(
    `   median ${fmt(h.median)}  p95 ${fmt(h.p95)}  (n=${h.n}); the POST to the owner follows as usual`,
  );
  console.log(`\nmachine: ${process.env.BENCH_MACHINE ?? 'unnamed'}`);

  stop.abort();
  await viewer.close();
  for (const p of publishers) await p.close();
  await cli.quit();
  for (const n of nodes) await n.kill();
  await orch.close();
  await redis.kill();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
