// The pieces behind the operator interfaces, against real servers and real Python where it
// matters: the heartbeat's resilience, go-livepeer's header flag, ai-runner's params hash.
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHeaderList } from '../../src/config/header-list.ts';
import { goQueryEncode, parseAnswer } from '../../src/live/auth-webhook.ts';
import { Heartbeat } from '../../src/live/heartbeat.ts';
import { sanitizeReason } from '../../src/live/operator-http.ts';
import { paramsHash, pythonJson } from '../../src/live/status-compat.ts';
import { type HookServer, startHookServer } from '../helpers/hook-server.ts';
import { waitFor } from '../helpers/wait.ts';

const logger = pino({ level: 'silent' });
const servers: HookServer[] = [];
const beats: Heartbeat[] = [];
afterEach(async () => {
  for (const b of beats.splice(0)) await b.stop();
  for (const s of servers.splice(0)) await s.close();
});

async function server(...args: Parameters<typeof startHookServer>) {
  const s = await startHookServer(...args);
  servers.push(s);
  return s;
}

function heartbeat(url: string, terminated: string[][], timeoutMs = 1000) {
  const b = new Heartbeat({
    url,
    headers: {},
    intervalMs: 100,
    timeoutMs,
    ids: () => ['a', 'b'],
    terminate: async (ids) => {
      terminated.push(ids);
      return ids.filter((id) => id === 'a');
    },
    logger,
  });
  beats.push(b);
  return b;
}

describe('heartbeat', () => {
  it('a hung endpoint times out and the next heartbeats still go', async () => {
    const hung = await server(() => ({ hang: true }));
    const terminated: string[][] = [];
    const b = heartbeat(hung.url, terminated, 150);
    b.start();
    await waitFor(() => hung.requests.length >= 3, 'three heartbeats despite the hang', 3000);
    expect(b.stats().failed).toBeGreaterThanOrEqual(2);
    expect(b.stats().lastError).toBe('no answer within 150 ms');
    expect(terminated).toEqual([]);
  });

  it('answers it cannot use never end streams; terminatedStreamIds does, once per beat', async () => {
    const answers = [
      { status: 500, body: { terminatedStreamIds: ['a'] } },
      { status: 200, body: 'not json' },
      { status: 200, body: { terminatedStreamIds: 'a' } },
      { status: 200, body: { terminatedStreamIds: [1] } },
      { status: 200, body: '' },
      { status: 200, body: { terminatedStreamIds: [] } },
      { status: 200, body: { terminatedStreamIds: ['a', 'zzz'], other: 1 } },
    ];
    const s = await server(() => answers.shift() ?? { status: 200, body: {} });
    const terminated: string[][] = [];
    const b = heartbeat(s.url, terminated);
    for (let i = 0; i < 7; i++) await b.beat();
    expect(terminated).toEqual([['a', 'zzz']]);
    expect(b.stats()).toMatchObject({ sent: 6, failed: 4, terminated: 1 });
    expect(s.requests.map((r) => r.json)).toEqual(Array(7).fill({ ids: ['a', 'b'] }));
  });
});

describe("go-livepeer's header flag", () => {
  it('splits on commas and the first colon, trims, drops items without a name, keeps the last of a repeat', () => {
    expect(parseHeaderList('Authorization:Bearer abc, X-A : 1:2 ,junk,:v,X-A:3')).toEqual({
      Authorization: 'Bearer abc',
      'X-A': '3',
    });
    expect(parseHeaderList('')).toEqual({});
  });
});

describe('auth webhook pieces', () => {
  it("encodes the query as Go's url.Values.Encode()", () => {
    expect(goQueryEncode('b=2&a=x%20y&a=1&c=%2A~_.-&d=%C3%A9&e')).toBe('a=x+y&a=1&b=2&c=%2A~_.-&d=%C3%A9&e=');
    expect(goQueryEncode('')).toBe('');
  });

  it('takes ComfyUI params under "prompt", as go-livepeer does', () => {
    const wf = { '1': { class_type: 'KSampler' } };
    expect(
      parseAnswer(Buffer.from(JSON.stringify({ pipeline: 'comfyui', pipeline_parameters: wf }))),
    ).toEqual({
      pipeline: 'comfyui',
      params: { prompt: wf },
    });
    expect(parseAnswer(Buffer.from(JSON.stringify({ pipeline_parameters: { prompt: 'x' } })))).toEqual({
      params: { prompt: 'x' },
    });
    expect(parseAnswer(Buffer.from('{}'))).toEqual({});
  });

  it('sanitizes reasons to one printable line', () => {
    expect(sanitizeReason('a\r\nb\u0000\tc\u00e9d')).toBe('a b c d');
    expect(sanitizeReason('x'.repeat(300)).length).toBe(200);
  });
});

describe("ai-runner's last_params_hash", () => {
  it('equals md5(json.dumps(params, sort_keys=True)) computed by Python', () => {
    const params = {
      prompt: 'a cat "quoted" \\ é 🐱\n',
      b: [1, 2.5, true, null, { z: 1, a: 'x' }],
      A: 1e-7,
      n: -3,
      big: 12345678901234,
    };
    const python = execFileSync(
      '/usr/bin/python3',
      [
        '-c',
        'import sys, json, hashlib; p = json.loads(sys.stdin.read()); print(json.dumps(p, sort_keys=True)); print(hashlib.md5(json.dumps(p, sort_keys=True).encode()).hexdigest())',
      ],
      { input: JSON.stringify(params) },
    )
      .toString()
      .trim()
      .split('\n');
    expect(pythonJson(params)).toBe(python[0]);
    expect(paramsHash(params)).toBe(python[1]);
  });
});
