// bin/lp-gateway.js (npm start, the Docker image) starts the gateway with bin/node-flags.js: the
// 64 MB young generation that keeps stream starts from stalling the media loop (docs/performance.md).
import { afterEach, describe, expect, it } from 'vitest';
import { GATEWAY_NODE_FLAGS } from '../../bin/node-flags.js';
import { freePort, type LpProcess, spawnLp, untilReady } from '../helpers/lp-process.ts';

let proc: LpProcess | undefined;
afterEach(async () => {
  await proc?.kill();
});

describe('the launcher', () => {
  it('runs the gateway with the young generation at 64 MB per semi-space, and says so', async () => {
    expect(GATEWAY_NODE_FLAGS).toContain('--max-semi-space-size=64');
    const port = await freePort();
    // An orchestrator that is not there: the gateway starts anyway, and no local one is started.
    proc = spawnLp([
      '-httpAddr',
      `127.0.0.1:${port}`,
      '-orchAddr',
      'https://127.0.0.1:9',
      '-orchSecret',
      'x',
    ]);
    await untilReady(proc, 'young generation');
    expect(proc.stdout()).toContain('young generation up to 64 MB per semi-space');
  }, 60_000);
});
