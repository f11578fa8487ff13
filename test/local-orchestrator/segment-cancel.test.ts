// A gateway that gives up on POST /segment (its timeout, or its own client gone) closes the
// request: the local orchestrator then drops the jobs still queued behind its 2 ffmpeg slots and
// kills the running ffmpeg, instead of burning CPU on answers nobody reads.
import { execFile } from 'node:child_process';
import type { ClientRequest } from 'node:http';
import { request } from 'node:https';
import { promisify } from 'node:util';
import pino from 'pino';
import { keccak256 } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePresetNames, profilesHex, resolveFormats, segDataProfiles } from '../../src/batch/profiles.ts';
import type { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { runningFfmpeg } from '../../src/local-orchestrator/transcode.ts';
import { getOrchestrator } from '../../src/orchestrators/grpc-client.ts';
import { flattenSegment } from '../../src/payments/credentials.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import {
  Capability,
  capabilityBitstring,
  decodeMessage,
  encodeMessage,
  type OrchestratorInfo,
} from '../../src/wire/lp-rpc.ts';
import { makeTsSegment } from '../helpers/media.ts';
import { startFreeOrchestrator } from '../helpers/orchestrator.ts';

const _run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
// Heavy enough that ffmpeg is still busy when the requests are dropped.
const PROFILES = resolveFormats(
  parsePresetNames('P720p30fps16x9,P576p30fps16x9,P360p30fps16x9,P240p30fps16x9'),
  'mpegts',
);
const CAPS = capabilityBitstring([Capability.H264, Capability.MPEGTS, Capability.AuthToken, 26]);

let segment: Buffer;
let orch: LocalOrchestrator;

beforeAll(async () => {
  segment = await makeTsSegment({ seconds: 8 });
  orch = await startFreeOrchestrator(logger, ['passthrough'], { capacity: 8 });
}, 60_000);
afterAll(async () => {
  await orch?.close();
});

async function segmentHeader(info: OrchestratorInfo, seq: bigint, profiles = PROFILES): Promise<string> {
  const hash = keccak256(segment, 'bytes');
  const signed = Buffer.concat([
    flattenSegment('cancel', seq, hash),
    Buffer.from(profilesHex(profiles.map((p) => p.name))),
  ]);
  const seg = {
    manifestId: new TextEncoder().encode('cancel'),
    seq,
    hash,
    sig: await offchainIdentity.signHashOf(signed),
    duration: 8000,
    capabilities: { bitstring: CAPS },
    authToken: info.authToken,
    ...segDataProfiles(profiles),
  };
  return Buffer.from(encodeMessage('SegData', seg)).toString('base64');
}

/** POST /segment; resolves with the answer, or never if the request is destroyed first. */
function postSegment(headers: Record<string, string>) {
  let req!: ClientRequest;
  const answer = new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    req = request(
      `${orch.url}/segment`,
      { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'video/MP2T', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', () => {});
      },
    );
    req.on('error', reject);
    req.end(segment);
  });
  answer.catch(() => {});
  return { req, answer };
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

describe('a gateway that gives up', () => {
  it('leaves no ffmpeg running and starts none of the queued jobs; the orchestrator keeps working', async () => {
    const info = await getOrchestrator(orch.url, { identity: offchainIdentity, timeoutMs: 3000 });
    const before = runningFfmpeg();
    // Four segments for two ffmpeg slots: two run, two wait.
    const pushes = await Promise.all(
      [1n, 2n, 3n, 4n].map(async (seq) =>
        postSegment({ 'livepeer-payment': '', 'livepeer-segment': await segmentHeader(info, seq) }),
      ),
    );
    expect(await until(() => runningFfmpeg() === before + 2, 15_000)).toBe(true);
    for (const p of pushes) p.req.destroy();
    expect(await until(() => runningFfmpeg() === before, 2000)).toBe(true);
    // Had the queued two been left in the queue, they would be running by now.
    await new Promise((r) => setTimeout(r, 800));
    expect(runningFfmpeg()).toBe(before);

    // The slots were given back: a gateway that waits gets its renditions.
    const small = resolveFormats(parsePresetNames('P144p30fps16x9'), 'mpegts');
    const { answer } = postSegment({
      'livepeer-payment': '',
      'livepeer-segment': await segmentHeader(info, 5n, small),
    });
    const res = await answer;
    expect(res.status).toBe(200);
    const result = decodeMessage('TranscodeResult', res.body);
    expect(result.error).toBeUndefined();
    expect(result.data?.segments).toHaveLength(1);
  }, 60_000);
});
