// The gateway as a user runs it (src/main.ts in its own process, embedded local orchestrator) with
// -liveWebrtcUdpAddr and -liveWebrtcTcpAddr: several publishers and viewers at once go through
// the one UDP socket (ss shows exactly one for the process), and clients that may only use TCP
// publish and watch over the one TCP port.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { candidatesOf, connectTcpOnly, selectedTransport, TCP_ONLY } from '../helpers/ice-clients.ts';
import { waitFor } from '../helpers/wait.ts';
import {
  h264Frames,
  makeH264Clip,
  WeriftPublisher,
  WeriftViewer,
  WhepTestViewer,
  WhipTestPublisher,
} from '../helpers/webrtc-clients.ts';

const run = promisify(execFile);
const MAIN = resolve(import.meta.dirname, '..', '..', 'src', 'main.ts');

let child: ChildProcess;
let base: string;
let udpPort: number;
let tcpPort: number;
let clip: Buffer;
let output = '';

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolvePort(port));
    });
  });
}

/** Sockets of one process as `ss` lists them: local "address:port" of each. */
async function socketsOf(pid: number, kind: 'udp' | 'tcp-listen'): Promise<string[]> {
  const { stdout } = await run('ss', kind === 'udp' ? ['-uanpH'] : ['-tlnpH']);
  return stdout
    .split('\n')
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => line.trim().split(/\s+/)[3]);
}

const url = (stream: string, what: string) => `${base}/live/video-to-video/${stream}/${what}`;

beforeAll(async () => {
  const httpPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  child = spawn(
    process.execPath,
    [
      ...['--import', 'tsx', MAIN],
      ...['-httpAddr', `127.0.0.1:${httpPort}`, '-localOrchestratorServiceAddr', '127.0.0.1:0'],
      ...[
        '-liveWebrtcUdpAddr',
        '127.0.0.1:0',
        '-liveWebrtcTcpAddr',
        '127.0.0.1:0',
        '-liveDefaultModel',
        'passthrough',
      ],
      ...['-v', '1'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LP_LIVENATIP: '' } },
  );
  child.stdout!.on('data', (d) => {
    output += d;
  });
  child.stderr!.on('data', (d) => {
    output += d;
  });
  await waitFor(() => /WebRTC TCP: /.test(output) || child.exitCode !== null, 'the gateway banner', 60_000);
  const udp = /WebRTC UDP: 127\.0\.0\.1:(\d+) for every peer, announced as 127\.0\.0\.1/.exec(output);
  const tcp = /WebRTC TCP: 127\.0\.0\.1:(\d+) for every peer, announced as 127\.0\.0\.1/.exec(output);
  if (!udp || !tcp) throw new Error(`gateway did not start as expected:\n${output}`);
  udpPort = Number(udp[1]);
  tcpPort = Number(tcp[1]);
  clip = await makeH264Clip({ seconds: 3 });
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

describe('one UDP and one TCP port for every peer', () => {
  it('three publishers and three viewers at once through one UDP socket', async () => {
    const streams = ['p1', 'p2', 'p3'];
    const publishers = await Promise.all(streams.map((s) => WhipTestPublisher.connect(url(s, 'whip'))));
    const viewers: WhepTestViewer[] = [];
    try {
      viewers.push(...(await Promise.all(streams.map((s) => WhepTestViewer.connect(url(s, 'whep'))))));
      // Every answer announces the same two ports.
      for (const peer of [...publishers, ...viewers]) {
        const announced = candidatesOf(peer.answerSdp!).map((c) => {
          const [, , transport, , ip, port] = c.split(' ');
          return `${transport} ${ip}:${port}`;
        });
        expect(announced.sort()).toEqual([`tcp 127.0.0.1:${tcpPort}`, `udp 127.0.0.1:${udpPort}`]);
      }
      // The gateway process has exactly one UDP socket, the shared one (and listens on the TCP one).
      expect(await socketsOf(child.pid!, 'udp')).toEqual([`127.0.0.1:${udpPort}`]);
      expect(await socketsOf(child.pid!, 'tcp-listen')).toContain(`127.0.0.1:${tcpPort}`);

      await Promise.all(publishers.map((p) => p.send({ video: h264Frames(clip, 30) })));
      for (const viewer of viewers) {
        await waitFor(() => viewer.frames.length >= 60, 'frames at every viewer', 15_000);
      }
      for (const p of [...publishers, ...viewers]) expect(selectedTransport(p.pc)).toBe('udp');
    } finally {
      await Promise.all([...viewers, ...publishers].map((p) => p.close()));
    }
    // Still one socket once every peer is gone.
    expect(await socketsOf(child.pid!, 'udp')).toEqual([`127.0.0.1:${udpPort}`]);
  }, 60_000);

  it('a publisher and a viewer that may only use TCP: frames flow over ICE-TCP', async () => {
    const publisher = new WeriftPublisher({ rtcConfig: TCP_ONLY, audio: false });
    const viewer = new WeriftViewer({ rtcConfig: TCP_ONLY, audio: false });
    const resources: string[] = [];
    try {
      resources.push((await connectTcpOnly(publisher.pc, url('tcp', 'whip'))).resourceUrl);
      resources.push((await connectTcpOnly(viewer.pc, url('tcp', 'whep'))).resourceUrl);
      expect(selectedTransport(publisher.pc)).toBe('tcp');
      expect(selectedTransport(viewer.pc)).toBe('tcp');
      await publisher.send({ video: h264Frames(clip, 30) });
      await waitFor(() => viewer.frames.length >= 60, 'frames at the TCP viewer', 15_000);
      expect(viewer.framesDropped).toBeLessThan(5);
    } finally {
      for (const r of resources.reverse()) await fetch(r, { method: 'DELETE' }).catch(() => {});
      await viewer.close();
      await publisher.close();
    }
  }, 60_000);
});
