// Shared by the local orchestrator's batch AI tests: HTTPS requests with the gateway's headers,
// multipart bodies, and ffmpeg/ffprobe to make and inspect images.
import { spawn } from 'node:child_process';
import { request } from 'node:https';

export interface Reply {
  status: number;
  type: string;
  body: Buffer;
  text: string;
}

export function post(
  url: string,
  body: string | Buffer,
  headers: Record<string, string>,
  opts: { signal?: AbortSignal } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', rejectUnauthorized: false, headers, signal: opts.signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const all = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type']),
            body: all,
            text: all.toString(),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function get(url: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request(url, { rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const all = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body: all,
          text: '',
        });
      });
    })
      .on('error', reject)
      .end();
  });
}

export type FormValue = string | { data: Buffer; type: string; name: string };

/** A multipart/form-data body as a browser or go-livepeer's gateway would send it. */
export async function form(
  fields: Record<string, FormValue>,
): Promise<{ body: Buffer; contentType: string }> {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') fd.set(k, v);
    else fd.set(k, new Blob([new Uint8Array(v.data)], { type: v.type }), v.name);
  }
  const res = new Response(fd);
  return { body: Buffer.from(await res.arrayBuffer()), contentType: String(res.headers.get('content-type')) };
}

function run(cmd: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} failed: ${err.trim()}`)),
    );
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** One frame of ffmpeg's testsrc2 pattern (or of noise, which PNG cannot compress) as PNG or JPEG. */
export function testImage(
  width: number,
  height: number,
  codec: 'png' | 'mjpeg' = 'png',
  pattern: 'testsrc2' | 'noise' = 'testsrc2',
): Promise<Buffer> {
  const source =
    pattern === 'noise'
      ? `nullsrc=s=${width}x${height},geq=random(1)*255:random(2)*255:random(3)*255`
      : `testsrc2=s=${width}x${height}:r=1`;
  return run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', source, '-frames:v', '1'],
    ...(codec === 'mjpeg' ? ['-pix_fmt', 'yuvj420p'] : []),
    ...['-f', 'image2pipe', '-c:v', codec, 'pipe:1'],
  ]);
}

/** A WAV file of `seconds` of a sine tone. */
export function testAudio(seconds: number): Promise<Buffer> {
  return run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`],
    ...['-f', 'wav', 'pipe:1'],
  ]);
}

/** What ffprobe (a decoder independent of ours) says an image is. */
export async function probeImage(data: Buffer): Promise<{ codec: string; width: number; height: number }> {
  const out = await run(
    'ffprobe',
    ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', '-i', 'pipe:0'],
    data,
  );
  const s = JSON.parse(out.toString()).streams[0];
  return { codec: s.codec_name, width: s.width, height: s.height };
}

/** The image decoded to packed RGB by ffmpeg. */
export function rgbPixels(data: Buffer): Promise<Buffer> {
  return run(
    'ffmpeg',
    ['-v', 'error', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
    data,
  );
}

export function meanAbsDiff(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) throw new Error('meanAbsDiff: sizes differ');
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

/** The bytes of an ImageResponse url: a data URL, or a file the orchestrator serves. */
export async function imageBytes(url: string): Promise<Buffer> {
  const prefix = 'data:image/png;base64,';
  if (url.startsWith(prefix)) return Buffer.from(url.slice(prefix.length), 'base64');
  const res = await get(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return res.body;
}
