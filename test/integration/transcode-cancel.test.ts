// A pusher that goes away mid-transcode: the gateway closes its request to the orchestrator (the
// local orchestrator then kills its ffmpeg), blames no orchestrator, and takes the next push.
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePresetNames } from '../../src/batch/profiles.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { runningFfmpeg } from '../../src/local-orchestrator/transcode.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeTsSegment } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';
import { waitFor } from '../helpers/wait.ts';

const _run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let long: Buffer;
let orch: LocalOrchestrator;
let gw: Awaited<ReturnType<typeof startTestGateway>>;

beforeAll(async () => {
  long = await makeTsSegment({ seconds: 8 });
  orch = await startFreeOrchestrator(logger, ['passthrough']);
  gw = await startTestGateway({
    orchestrators: [orch.url],
    logger,
    transcode: {
      identity: offchainIdentity,
      // Heavy enough that ffmpeg is still busy when the pusher leaves.
      profiles: parsePresetNames('P720p30fps16x9,P576p30fps16x9,P360p30fps16x9'),
      maxSegmentBytes: 64 * 1024 * 1024,
      maxAttempts: 3,
      hlsWindowSegments: 4,
      streamIdleTimeoutMs: 60_000,
      maxStreams: 4,
    },
  });
}, 60_000);
afterAll(async () => {
  await gw?.close();
  await orch?.close();
});

describe('a pusher that goes away', () => {
  it('stops the orchestrator work, suspends nobody, and the next push is served', async () => {
    const before = runningFfmpeg();
    const push = request(`${gw.base}/live/gone/0.ts`, {
      method: 'PUT',
      headers: { 'Content-Type': 'video/mp2t', 'Content-Duration': '8000' },
    });
    push.on('error', () => {}); // destroyed on purpose
    push.end(long);
    await waitFor(() => runningFfmpeg() > before, 'the orchestrator to start transcoding', 15_000);
    push.destroy();
    await waitFor(() => runningFfmpeg() === before, 'its ffmpeg to be stopped', 3000);
    expect(gw.pool.list().map((o) => o.state)).toEqual(['available']);

    const res = await fetch(`${gw.base}/live/gone/1.ts`, {
      method: 'PUT',
      headers: { 'Content-Type': 'video/mp2t', 'Content-Duration': '8000' },
      body: new Uint8Array(long),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('1');
  }, 90_000);
});
