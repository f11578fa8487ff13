// Segment transcoding end to end: a real 2 s 720p H.264 segment pushed to the gateway
// (PUT/POST /live/{id}/{seq}.ts), transcoded by the local orchestrator's ffmpeg into two
// profiles, answered as multipart/mixed parts and served as HLS; checked with ffprobe.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePresetNames } from '../../src/batch/profiles.ts';
import { LocalOrchestrator } from '../../src/local-orchestrator/server.ts';
import { PriceCeiling } from '../../src/orchestrators/price.ts';
import { offchainIdentity } from '../../src/payments/identity.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
let dir: Workdir;
let segment720: Buffer;
let segment720mp4: Buffer;

/** A 2 s 1280x720 30 fps H.264 + AAC clip, as an encoder would push it. */
async function makeSegment(format: 'mpegts' | 'mp4', offsetS = 0): Promise<Buffer> {
  const file = dir.path(`seg-${format}-${offsetS}.${format === 'mp4' ? 'mp4' : 'ts'}`);
  await run('ffmpeg', [
    ...['-hide_banner', '-loglevel', 'error', '-y'],
    ...['-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=30`],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'],
    ...['-t', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '60', '-pix_fmt', 'yuv420p'],
    ...['-c:a', 'aac', '-output_ts_offset', String(offsetS), '-f', format, file],
  ]);
  return (await import('node:fs/promises')).readFile(file);
}

interface Probe {
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
  }[];
  format: { duration: string; format_name: string };
}

async function probe(data: Buffer, name: string): Promise<Probe> {
  const file = await dir.write(name, data);
  const { stdout } = await run('ffprobe', [
    '-v',
    'error',
    '-show_streams',
    '-show_format',
    '-of',
    'json',
    file,
  ]);
  return JSON.parse(stdout) as Probe;
}

async function startOrchestrator(fault?: string, pricePerUnit = 0n) {
  const orch = await LocalOrchestrator.start({
    serviceAddr: '127.0.0.1:0',
    models: ['passthrough'],
    pricePerUnit,
    pixelsPerUnit: 1n,
    capacity: 4,
    logger,
    fault,
  });
  cleanups.push(() => orch.close());
  return orch;
}

async function startGateway(
  orchestrators: string[],
  opts: { maxSegmentBytes?: number; priceCeiling?: PriceCeiling } = {},
) {
  const gw = await startTestGateway({
    orchestrators,
    logger,
    grpcTimeoutMs: 2000,
    priceCeiling: opts.priceCeiling,
    // random() = 0 draws the first candidate: orchestrators are tried in the order given.
    random: () => 0,
    defaultModel: 'passthrough',
    transcode: {
      identity: offchainIdentity,
      profiles: parsePresetNames('P240p30fps16x9,P360p30fps16x9'),
      maxSegmentBytes: opts.maxSegmentBytes ?? 16 * 1024 * 1024,
      maxAttempts: 3,
      hlsWindowSegments: 10,
      streamIdleTimeoutMs: 60_000,
      maxStreams: 10,
    },
  });
  cleanups.push(() => gw.close());
  return { base: gw.base, pool: gw.pool };
}

interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/** A multipart/mixed body split as RFC 2046 says (independent of the gateway's writer). */
function parseMultipart(body: Buffer, contentType: string): Part[] {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const afterDelim = at + delimiter.length;
    if (body.subarray(afterDelim, afterDelim + 2).toString() === '--') break;
    const headerEnd = body.indexOf('\r\n\r\n', afterDelim);
    const headers: Record<string, string> = {};
    for (const line of body
      .subarray(afterDelim + 2, headerEnd)
      .toString()
      .split('\r\n')) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd);
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

function push(
  base: string,
  path: string,
  body: Buffer,
  headers: Record<string, string> = {},
  method = 'PUT',
) {
  return fetch(`${base}${path}`, {
    method,
    body: new Uint8Array(body),
    headers: {
      'Content-Type': 'video/mp2t',
      'Content-Duration': '2000',
      'Content-Resolution': '1280x720',
      ...headers,
    },
  });
}

beforeAll(async () => {
  dir = await makeWorkdir();
  [segment720, segment720mp4] = await Promise.all([makeSegment('mpegts'), makeSegment('mp4')]);
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await dir.remove();
});

describe('segment transcoding through the gateway', () => {
  let base: string;
  let orchUrl: string;
  beforeAll(async () => {
    const orch = await startOrchestrator();
    orchUrl = orch.url;
    ({ base } = await startGateway([orch.url]));
  });

  it('answers multipart/mixed with one H.264 part per profile, at its size, 30 fps and 2 s', async () => {
    const res = await push(base, '/live/mp-test/0.ts', segment720, { Accept: 'multipart/mixed' });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-orchestrator')).toBe(orchUrl);
    expect(res.headers.get('livepeer-tries')).toBe('1');
    const type = res.headers.get('content-type') ?? '';
    expect(type).toMatch(/^multipart\/mixed; boundary=/);
    const parts = parseMultipart(Buffer.from(await res.arrayBuffer()), type);
    expect(parts.map((p) => p.headers['rendition-name'])).toEqual(['P240p30fps16x9', 'P360p30fps16x9']);
    const sizes: Record<string, [number, number]> = {
      P240p30fps16x9: [426, 240],
      P360p30fps16x9: [640, 360],
    };
    for (const part of parts) {
      const name = part.headers['rendition-name']!;
      expect(part.headers['content-type']).toBe(`video/mp2t; name="${name}_0.ts"`);
      expect(part.headers['content-disposition']).toBe(`attachment; filename="${name}_0.ts"`);
      expect(Number(part.headers['content-length'])).toBe(part.body.length);
      const info = await probe(part.body, `${name}.ts`);
      const video = info.streams.find((s) => s.codec_type === 'video')!;
      expect(video.codec_name).toBe('h264');
      expect([video.width, video.height]).toEqual(sizes[name]);
      expect(video.avg_frame_rate).toBe('30/1');
      expect(info.streams.some((s) => s.codec_type === 'audio')).toBe(true);
      expect(Number(info.format.duration)).toBeGreaterThan(1.8);
      expect(Number(info.format.duration)).toBeLessThan(2.2);
    }
  });

  it('takes a push as curl --data-binary sends it (application/x-www-form-urlencoded), as go-livepeer does', async () => {
    const res = await push(base, '/live/curl-test/0.ts', segment720, {
      'Content-Type': 'application/x-www-form-urlencoded',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('1');
  });

  it('keeps MP4 pushes as MP4 renditions (the profiles take the input format)', async () => {
    const res = await push(base, '/live/mp4-test/7.mp4', segment720mp4, {
      Accept: 'multipart/mixed',
      'Content-Type': 'video/mp4',
    });
    expect(res.status).toBe(200);
    const parts = parseMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '');
    expect(parts).toHaveLength(2);
    expect(parts[0]!.headers['content-type']).toBe('video/mp4; name="P240p30fps16x9_7.mp4"');
    const info = await probe(parts[1]!.body, 'r.mp4');
    expect(info.format.format_name).toContain('mp4');
    const video = info.streams.find((s) => s.codec_type === 'video')!;
    expect([video.codec_name, video.width, video.height]).toEqual(['h264', 640, 360]);
    expect(Number(info.format.duration)).toBeGreaterThan(1.8);
    expect(Number(info.format.duration)).toBeLessThan(2.3);
  });

  it('serves what was pushed as HLS: master, media playlists listing every segment, playable segments', async () => {
    const segments = [segment720, await makeSegment('mpegts', 2), await makeSegment('mpegts', 4)];
    for (const [seq, data] of segments.entries()) {
      // POST as well as PUT; no Accept: an empty 200.
      const res = await push(base, `/live/hls-test/${seq}.ts`, data, {}, seq === 1 ? 'POST' : 'PUT');
      expect(res.status).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBe(0);
    }
    const master = await fetch(`${base}/stream/hls-test.m3u8`);
    expect(master.status).toBe(200);
    expect(master.headers.get('access-control-allow-origin')).toBe('*');
    expect(master.headers.get('content-type')).toContain('mpegurl');
    const masterText = await master.text();
    const variants = [...masterText.matchAll(/#EXT-X-STREAM-INF:([^\n]*)\n([^\n]+)/g)];
    expect(variants.map((v) => v[2])).toEqual([
      'hls-test/P240p30fps16x9.m3u8',
      'hls-test/P360p30fps16x9.m3u8',
    ]);
    expect(variants[0]![1]).toContain('RESOLUTION=426x240');
    expect(variants[0]![1]).toContain('BANDWIDTH=600000');
    for (const v of variants) {
      const mediaUrl = new URL(v[2]!, `${base}/stream/hls-test.m3u8`);
      const media = await (await fetch(mediaUrl)).text();
      expect(media).toContain('#EXT-X-TARGETDURATION:2');
      expect(media).toContain('#EXT-X-MEDIA-SEQUENCE:0');
      const uris = media.split('\n').filter((l) => l && !l.startsWith('#'));
      expect(uris).toHaveLength(3);
      expect(media.match(/#EXTINF:2\.000,/g)).toHaveLength(3);
      expect(media).not.toContain('DISCONTINUITY');
      for (const uri of uris) {
        const seg = await fetch(new URL(uri, mediaUrl));
        expect(seg.status).toBe(200);
        expect(seg.headers.get('content-type')).toBe('video/mp2t');
        const info = await probe(Buffer.from(await seg.arrayBuffer()), 'hls.ts');
        expect(info.streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264');
      }
    }
    // ffmpeg as an HLS player: it follows the master to a variant and decodes the pushed 6 s
    // (asked for 5 s: a live playlist has no end, and the player reads ahead of what it plays).
    const played = await run(
      'ffmpeg',
      [
        ...['-hide_banner', '-v', 'error', '-live_start_index', '0', '-i', `${base}/stream/hls-test.m3u8`],
        ...['-map', '0:v:0', '-t', '5', '-f', 'null', '-', '-progress', 'pipe:1'],
      ],
      { timeout: 20_000, killSignal: 'SIGKILL' },
    );
    const frames = Math.max(...[...played.stdout.matchAll(/frame=(\d+)/g)].map((m) => Number(m[1])));
    expect(frames).toBeGreaterThanOrEqual(150);
    expect(frames).toBeLessThanOrEqual(151);
    // The renditions continue each other in time, as the pushed segments did.
    const first = await probe(
      Buffer.from(await (await fetch(`${base}/stream/hls-test/P240p30fps16x9/0.ts`)).arrayBuffer()),
      'a.ts',
    );
    const third = await probe(
      Buffer.from(await (await fetch(`${base}/stream/hls-test/P240p30fps16x9/2.ts`)).arrayBuffer()),
      'c.ts',
    );
    const start = (p: Probe) => Number((p.format as { start_time?: string }).start_time);
    expect(start(third) - start(first)).toBeCloseTo(4, 1);
  });

  it('answers 404 with a reason for streams, renditions and segments it does not have', async () => {
    for (const path of [
      '/stream/nope.m3u8',
      '/stream/hls-test/P1080.m3u8',
      '/stream/hls-test/P240p30fps16x9/99.ts',
    ]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
  });
});

describe('bad pushes get a clear 4xx before any orchestrator is paid', () => {
  let base: string;
  beforeAll(async () => {
    const orch = await startOrchestrator();
    ({ base } = await startGateway([orch.url], { maxSegmentBytes: 1024 * 1024 }));
  });
  const small = () => segment720.subarray(0, 188 * 100);
  const cases: [string, () => Promise<Response>, number, string][] = [
    ['an unknown extension', () => push(base, '/live/bad/0.m3u8', small()), 400, 'UNKNOWN_EXTENSION'],
    ['no extension', () => push(base, '/live/bad/0', small()), 400, 'UNKNOWN_EXTENSION'],
    ['a non-numeric sequence', () => push(base, '/live/bad/abc.ts', small()), 400, 'BAD_SEQUENCE'],
    ['a bad manifest id', () => push(base, '/live/b%20d/0.ts', small()), 400, 'BAD_MANIFEST_ID'],
    [
      'a non-numeric Content-Duration',
      () => push(base, '/live/bad/0.ts', small(), { 'Content-Duration': '2s' }),
      400,
      'BAD_DURATION',
    ],
    [
      'a zero Content-Duration',
      () => push(base, '/live/bad/0.ts', small(), { 'Content-Duration': '0' }),
      400,
      'BAD_DURATION',
    ],
    [
      'a bad Content-Resolution',
      () => push(base, '/live/bad/0.ts', small(), { 'Content-Resolution': '1280*720' }),
      400,
      'BAD_RESOLUTION',
    ],
    ['an empty body', () => push(base, '/live/bad/0.ts', Buffer.alloc(0)), 400, 'EMPTY_BODY'],
    [
      'a body that is not even JSON, sent as JSON',
      () => push(base, '/live/bad/0.ts', Buffer.from('{nope'), { 'Content-Type': 'application/json' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a JSON body',
      () => push(base, '/live/bad/0.ts', Buffer.from('{}'), { 'Content-Type': 'application/json' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'a body over the limit',
      () => push(base, '/live/bad/0.ts', Buffer.alloc(1024 * 1024 + 1, 0x47)),
      413,
      'PAYLOAD_TOO_LARGE',
    ],
    [
      'a body that is not MPEG-TS',
      () => push(base, '/live/bad/0.ts', Buffer.alloc(4096, 1)),
      422,
      'UNREADABLE_SEGMENT',
    ],
    [
      'an .mp4 that is not MP4',
      () => push(base, '/live/bad/0.mp4', small(), { 'Content-Type': 'video/mp4' }),
      422,
      'UNREADABLE_SEGMENT',
    ],
  ];
  for (const [what, send, status, code] of cases) {
    it(`${what}: ${status} ${code}`, async () => {
      const res = await send();
      expect(res.status).toBe(status);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message).toMatch(/\w/);
      expect(body.error.message).not.toContain('\n');
    });
  }
});

describe('orchestrator failures', () => {
  it('an orchestrator that answers 500 is suspended and the next one transcodes: one answer, two tries', async () => {
    const failing = await startOrchestrator('fail-start');
    const working = await startOrchestrator();
    const { base, pool } = await startGateway([failing.url, working.url]);
    const res = await push(base, '/live/retry/0.ts', segment720, { Accept: 'multipart/mixed' });
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(working.url);
    const parts = parseMultipart(Buffer.from(await res.arrayBuffer()), res.headers.get('content-type') ?? '');
    expect(parts).toHaveLength(2);
    const failed = pool.list().find((o) => o.url === failing.url)!;
    expect(failed.state).toBe('suspended');
    expect(failed.why).toContain('500');
    // The next segment of the stream stays on the orchestrator that worked.
    const next = await push(base, '/live/retry/1.ts', segment720);
    expect(next.headers.get('livepeer-tries')).toBe('1');
    expect(next.headers.get('livepeer-orchestrator')).toBe(working.url);
  });

  it('an orchestrator that hangs is given up after the upload timeout (2 s for 2 s) and the next transcodes', async () => {
    const hung = await startOrchestrator('hang');
    const working = await startOrchestrator();
    const { base, pool } = await startGateway([hung.url, working.url]);
    const started = performance.now();
    const res = await push(base, '/live/hang/0.ts', segment720);
    const took = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('livepeer-tries')).toBe('2');
    expect(res.headers.get('livepeer-orchestrator')).toBe(working.url);
    expect(took).toBeGreaterThanOrEqual(2000);
    expect(took).toBeLessThan(6000);
    const stuck = pool.list().find((o) => o.url === hung.url)!;
    expect(stuck.state).toBe('suspended');
    expect(stuck.why).toContain('no answer within 2000 ms');
  });

  it('a segment the orchestrator says has no video (TranscoderInvalidVideo) is 422 at once, nobody suspended', async () => {
    const first = await startOrchestrator();
    const second = await startOrchestrator();
    const { base, pool } = await startGateway([first.url, second.url]);
    // The PMT still lists H.264 (so the gateway's look passes) but every video packet is gone.
    const noVideo = Buffer.concat(
      Array.from({ length: segment720.length / 188 }, (_, i) =>
        segment720.subarray(i * 188, i * 188 + 188),
      ).filter((p) => (((p[1]! & 0x1f) << 8) | p[2]!) !== 0x100),
    );
    const res = await push(base, '/live/novideo/0.ts', noVideo);
    expect(res.status).toBe(422);
    expect(res.headers.get('livepeer-tries')).toBe('1');
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('UNTRANSCODABLE_SEGMENT');
    expect(body.error.message).toContain('TranscoderInvalidVideo');
    expect(pool.list().every((o) => o.state !== 'suspended')).toBe(true);
  });

  it("500 (go-livepeer's HandlePush status) with one reason per orchestrator when every one tried failed", async () => {
    const failing = await startOrchestrator('fail-start');
    const { base } = await startGateway([failing.url, 'https://127.0.0.1:1']);
    const res = await push(base, '/live/none/0.ts', segment720);
    expect(res.status).toBe(500);
    // The unreachable one never got past GetOrchestrator: one segment was sent.
    expect(res.headers.get('livepeer-tries')).toBe('1');
    const body = (await res.json()) as { error: { code: string; message: string; reasons: string[] } };
    expect(body.error.code).toBe('TRANSCODE_FAILED');
    expect(body.error.reasons.some((r) => r.startsWith(`${failing.url}: /segment answered 500`))).toBe(true);
    expect(body.error.reasons.some((r) => r.startsWith('https://127.0.0.1:1'))).toBe(true);
    expect(body.error.reasons).toHaveLength(2);
  });

  it('503 NO_ORCHESTRATOR when no orchestrator is reachable at all', async () => {
    const { base } = await startGateway(['https://127.0.0.1:1']);
    const res = await push(base, '/live/none/0.ts', segment720);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string; reasons: string[] } };
    expect(body.error.code).toBe('NO_ORCHESTRATOR');
    expect(body.error.reasons).toHaveLength(1);
    expect(body.error.reasons[0]).toContain('https://127.0.0.1:1');
  });
});

describe('the price ceiling', () => {
  it('an orchestrator priced above -maxPricePerUnit is never chosen for transcoding', async () => {
    // Listed first, so with random() = 0 it would be drawn first if it were a candidate.
    const pricey = await startOrchestrator(undefined, 10n);
    const cheap = await startOrchestrator(undefined, 1n);
    const capped = await startGateway([pricey.url, cheap.url], {
      priceCeiling: new PriceCeiling({ maxPricePerUnit: 5n, pixelsPerUnit: 1n }),
    });
    for (let i = 0; i < 4; i++) {
      // A new stream each time: every push goes through selection.
      const res = await push(capped.base, `/live/ceiling${i}/0.ts`, segment720);
      expect(res.status, await res.clone().text()).toBe(200);
      expect(res.headers.get('livepeer-orchestrator')).toBe(cheap.url);
      expect(res.headers.get('livepeer-tries')).toBe('1');
    }
    // Without the ceiling the same draw picks the pricey one: the ceiling is what kept it out.
    const uncapped = await startGateway([pricey.url, cheap.url]);
    const res = await push(uncapped.base, '/live/uncapped/0.ts', segment720);
    expect(res.headers.get('livepeer-orchestrator')).toBe(pricey.url);
  });
});
