// Image plumbing for the local orchestrator's batch AI stand-ins: read an image's size from its
// header (as Go's image.DecodeConfig does for go-livepeer), encode raw RGB as PNG, and run one
// ffmpeg filter over one image.
import { spawn } from 'node:child_process';
import { crc32, deflateSync } from 'node:zlib';

export interface ImageConfig {
  format: 'png' | 'jpeg' | 'gif' | 'webp';
  width: number;
  height: number;
}

/** Go's image.DecodeConfig error for bytes no registered decoder recognises. */
export const UNKNOWN_FORMAT = 'image: unknown format';

/**
 * Size and format from the header alone (PNG, JPEG, GIF, WebP: the decoders a go-livepeer
 * binary registers). Throws Error with Go's texts: `image: unknown format`, `unexpected EOF`.
 */
export function imageConfig(buf: Uint8Array): ImageConfig {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length >= 8 && b.subarray(0, 8).equals(PNG_SIGNATURE)) {
    if (b.length < 24) throw new Error('unexpected EOF');
    if (b.toString('latin1', 12, 16) !== 'IHDR') throw new Error('png: invalid format: missing IHDR');
    return positive({ format: 'png', width: b.readUInt32BE(16), height: b.readUInt32BE(20) });
  }
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpegConfig(b);
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.toString('latin1', 0, 6))) {
    if (b.length < 10) throw new Error('unexpected EOF');
    return positive({ format: 'gif', width: b.readUInt16LE(6), height: b.readUInt16LE(8) });
  }
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') {
    return webpConfig(b);
  }
  throw new Error(UNKNOWN_FORMAT);
}

function positive(c: ImageConfig): ImageConfig {
  if (c.width <= 0 || c.height <= 0) throw new Error(`${c.format}: invalid format: zero image size`);
  return c;
}

function jpegConfig(b: Buffer): ImageConfig {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) throw new Error('invalid JPEG format: missing 0xff marker start');
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      i += 2;
      continue;
    }
    const length = b.readUInt16BE(i + 2);
    // Start-of-frame markers (not DHT C4, JPG C8, DAC CC) carry the size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > b.length) break;
      return positive({ format: 'jpeg', height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) });
    }
    if (marker === 0xda || marker === 0xd9) throw new Error('invalid JPEG format: missing SOF marker');
    i += 2 + length;
  }
  throw new Error('unexpected EOF');
}

function webpConfig(b: Buffer): ImageConfig {
  if (b.length < 30) throw new Error('unexpected EOF');
  const chunk = b.toString('latin1', 12, 16);
  if (chunk === 'VP8 ') {
    // Frame tag (3 bytes) then the start code 9d 01 2a, then 14-bit width and height.
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) throw new Error('vp8: invalid format');
    return positive({
      format: 'webp',
      width: b.readUInt16LE(26) & 0x3fff,
      height: b.readUInt16LE(28) & 0x3fff,
    });
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) throw new Error('vp8l: invalid header');
    const bits = b.readUInt32LE(21);
    return positive({ format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 });
  }
  if (chunk === 'VP8X') {
    return positive({ format: 'webp', width: b.readUIntLE(24, 3) + 1, height: b.readUIntLE(27, 3) + 1 });
  }
  throw new Error('webp: invalid format');
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))), 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG of `rgb` (width × height × 3 bytes, rows top to bottom). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3) throw new Error('encodePng: pixel buffer does not match the size');
  const stride = width * 3;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    // Filter type 0 (none) per row.
    raw.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw, { level: 3 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Runs `ffmpeg -vf <filter>` over one image and returns the first frame as an RGB PNG. */
export function filterImage(input: Uint8Array, filter: string, signal?: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ffmpeg',
      [
        ...['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', 'pipe:0'],
        ...['-vf', filter, '-frames:v', '1', '-pix_fmt', 'rgb24'],
        ...['-f', 'image2pipe', '-c:v', 'png', 'pipe:1'],
      ],
      { stdio: ['pipe', 'pipe', 'pipe'], signal },
    );
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      if (err.length < 4096) err += c.toString();
    });
    child.on('error', (e) => reject(new Error(`ffmpeg could not run: ${e.message}`)));
    child.on('close', (code) => {
      const png = Buffer.concat(out);
      if (code === 0 && png.length > 0) resolve(png);
      else reject(new Error(`ffmpeg failed (exit ${code}): ${err.trim().split('\n')[0] || 'no output'}`));
    });
    // ffmpeg may exit before reading all input (a bad image): that EPIPE is reported by 'close'.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
