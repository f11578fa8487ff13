// The pieces of batch AI on their own: image sizes from headers, go-livepeer's fee units per
// pipeline, which orchestrator answers are retried, multipart both ways, and result expiry.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classify, feeUnits } from '../../src/batch/ai-client.ts';
import { PIPELINES } from '../../src/batch/ai-pipelines.ts';
import { ResultStore, sanitiseName } from '../../src/batch/ai-results.ts';
import { BatchError } from '../../src/batch/errors.ts';
import { imageSize } from '../../src/batch/image-size.ts';
import { buildMultipart, parseMultipart, type UploadedFile } from '../../src/batch/multipart.ts';
import { makeWorkdir, type Workdir } from '../media/ffmpeg.ts';

const run = promisify(execFile);
let work: Workdir;

async function encode(name: string, args: string[]): Promise<Buffer> {
  const file = work.path(name);
  await run('ffmpeg', ['-v', 'error', '-y', ...args, file]);
  return readFile(file);
}
const upload = (data: Buffer, filename = 'f'): UploadedFile => ({ filename, contentType: 'x', data });

beforeAll(async () => {
  work = await makeWorkdir();
});
afterAll(async () => {
  await work?.remove();
});

describe('imageSize', () => {
  it('reads PNG, JPEG, GIF and WebP headers as ffmpeg wrote them', async () => {
    const src = ['-f', 'lavfi', '-i', 'testsrc2=size=124x46', '-frames:v', '1'];
    expect(imageSize(await encode('a.png', src))).toEqual({ format: 'png', width: 124, height: 46 });
    expect(imageSize(await encode('a.jpg', [...src, '-pix_fmt', 'yuvj420p']))).toEqual({
      format: 'jpeg',
      width: 124,
      height: 46,
    });
    expect(imageSize(await encode('a.gif', src))).toEqual({ format: 'gif', width: 124, height: 46 });
    const webp = await encode('a.webp', src).catch(() => undefined);
    if (webp) expect(imageSize(webp)).toEqual({ format: 'webp', width: 124, height: 46 });
  });

  it('refuses what is not an image', () => {
    expect(imageSize(Buffer.from('hello world, not an image'))).toBeUndefined();
    expect(imageSize(Buffer.alloc(0))).toBeUndefined();
    expect(imageSize(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2]))).toBeUndefined();
  });
});

describe("feeUnits: go-livepeer's units per pipeline", () => {
  it('images and video: output pixels', async () => {
    const png = await encode('b.png', ['-f', 'lavfi', '-i', 'testsrc2=size=40x30', '-frames:v', '1']);
    expect(
      await feeUnits(PIPELINES['text-to-image'], { width: 512, height: 256, num_images_per_prompt: 3 }),
    ).toBe(512n * 256n * 3n);
    expect(await feeUnits(PIPELINES['image-to-image'], { num_images_per_prompt: 2 }, upload(png))).toBe(
      2400n,
    );
    expect(await feeUnits(PIPELINES.upscale, {}, upload(png))).toBe(1200n);
    expect(await feeUnits(PIPELINES['segment-anything-2'], {}, upload(png))).toBe(1200n);
    expect(await feeUnits(PIPELINES['image-to-text'], {}, upload(png))).toBe(1200n);
    // 25 frames, as stable-video-diffusion-img2vid-xt makes.
    expect(await feeUnits(PIPELINES['image-to-video'], { width: 1024, height: 576 })).toBe(
      1024n * 576n * 25n,
    );
  });

  it('audio: whole seconds × 1000; under a second is a bad request', async () => {
    const wav = await encode('c.wav', ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=2.6']);
    expect(await feeUnits(PIPELINES['audio-to-text'], {}, upload(wav))).toBe(2000n);
    const short = await encode('d.wav', ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=0.5']);
    await expect(feeUnits(PIPELINES['audio-to-text'], {}, upload(short))).rejects.toThrow(
      'audio: shorter than one second',
    );
    await expect(
      feeUnits(PIPELINES['audio-to-text'], {}, upload(Buffer.from('noise'))),
    ).rejects.toBeInstanceOf(BatchError);
  });

  it('LLM: max_tokens; text-to-speech: 1000 × characters', async () => {
    expect(await feeUnits(PIPELINES.llm, { max_tokens: 300 })).toBe(300n);
    expect(await feeUnits(PIPELINES['text-to-speech'], { text: 'héllo' })).toBe(5000n);
  });
});

describe('classify: what an orchestrator error means', () => {
  const cases: [number, string, { retry: boolean; suspend: boolean; status?: number }][] = [
    [500, 'CUDA out of memory', { retry: true, suspend: true }],
    [503, 'insufficient capacity', { retry: true, suspend: false }],
    [400, 'TicketParams expired', { retry: true, suspend: false }],
    [400, 'invalid ticket senderNonce', { retry: true, suspend: false }],
    [400, 'Insufficient balance', { retry: true, suspend: true }],
    [402, 'missing payment', { retry: true, suspend: true }],
    [403, 'ErrSegSig', { retry: true, suspend: true }],
    [400, 'prompt is too long', { retry: false, suspend: false, status: 400 }],
    [422, 'field required', { retry: false, suspend: false, status: 422 }],
    [
      500,
      'text-to-image container returned 400: height must be divisible by 8',
      { retry: false, suspend: false, status: 400 },
    ],
    [429, 'slow down', { retry: true, suspend: false }],
  ];
  for (const [status, text, want] of cases) {
    it(`${status} ${text}`, () => {
      expect(classify(status, text)).toMatchObject(want);
    });
  }
});

describe('multipart', () => {
  it("round-trips: the file first, then the fields, as go-livepeer's writer", async () => {
    const data = Buffer.from([0, 1, 2, 250, 13, 10, 45, 45]);
    const built = buildMultipart(
      { name: 'image', upload: { filename: 'in put".png', contentType: 'image/png', data } },
      [
        ['prompt', 'a "quoted"\nprompt'],
        ['seed', '7'],
      ],
    );
    const text = built.body.toString('latin1');
    expect(text.indexOf('name="image"')).toBeLessThan(text.indexOf('name="prompt"'));
    const parsed = await parseMultipart(built.body, built.contentType);
    expect(parsed.prompt).toBe('a "quoted"\nprompt');
    expect(parsed.seed).toBe('7');
    const file = parsed.image as UploadedFile;
    expect(file.data).toEqual(data);
    expect(file.filename).toBe('in put".png');
  });

  it('refuses a body that does not parse', async () => {
    await expect(parseMultipart(Buffer.from('junk'), 'multipart/form-data; boundary=x')).rejects.toThrow(
      'does not parse',
    );
    await expect(parseMultipart(Buffer.from('junk'), 'multipart/form-data')).rejects.toThrow('boundary');
  });
});

describe('ResultStore', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lpgw-store-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves what it saved until it expires, then removes it', async () => {
    const store = new ResultStore({ dir, ttlMs: 60_000, logger: pino({ level: 'silent' }) });
    await store.start();
    const name = await store.save('00112233aabbccdd', 'out.png', Buffer.from('png!'));
    // Served at once, from memory, before the disk write lands.
    const first = await store.open('00112233aabbccdd', name);
    expect(first?.contentType).toBe('image/png');
    expect(first?.stream).toEqual(Buffer.from('png!'));
    await store.flush();
    expect((await readFile(join(dir, '00112233aabbccdd', name))).toString()).toBe('png!');
    const opened = await store.open('00112233aabbccdd', name);
    expect(opened?.size).toBe(4);
    if (opened && !Buffer.isBuffer(opened.stream)) opened.stream.destroy();
    expect(await store.open('00112233aabbccdd', '../out.png')).toBeUndefined();
    expect(await store.open('not-an-id', name)).toBeUndefined();
    const old = new Date(Date.now() - 120_000);
    await utimes(join(dir, '00112233aabbccdd', name), old, old);
    expect(await store.open('00112233aabbccdd', name)).toBeUndefined();
    await utimes(join(dir, '00112233aabbccdd'), old, old);
    expect(await store.sweep()).toBe(1);
    expect(await store.exists('00112233aabbccdd', name)).toBe(false);
    store.stop();
  });

  it('sanitises file names from orchestrators', () => {
    expect(sanitiseName('../../etc/passwd')).toBe('passwd');
    expect(sanitiseName('a b?.png')).toBe('a_b_.png');
    expect(sanitiseName('..')).toMatch(/^[0-9a-f]{16}\.bin$/);
  });
});
