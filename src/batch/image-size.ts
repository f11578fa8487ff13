// Width and height of an uploaded image from its header, as go-livepeer's image.DecodeConfig gives
// them for the fee of image-to-image, upscale, segment-anything-2 and image-to-text. PNG, JPEG,
// GIF and WebP; nothing is decoded past the header.
import { crc32 } from 'node:zlib';

export interface ImageSize {
  format: 'png' | 'jpeg' | 'gif' | 'webp';
  width: number;
  height: number;
}

/** The image's size, or undefined when the bytes are not a PNG, JPEG, GIF or WebP header. */
export function imageSize(b: Uint8Array): ImageSize | undefined {
  const size = png(b) ?? jpeg(b) ?? gif(b) ?? webp(b);
  return size && size.width > 0 && size.height > 0 ? size : undefined;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
const ascii = (b: Uint8Array, at: number, n: number) => String.fromCharCode(...b.subarray(at, at + n));

function png(b: Uint8Array): ImageSize | undefined {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 24 || signature.some((v, i) => b[i] !== v) || ascii(b, 12, 4) !== 'IHDR') return undefined;
  const d = view(b);
  return { format: 'png', width: d.getUint32(16), height: d.getUint32(20) };
}

function gif(b: Uint8Array): ImageSize | undefined {
  if (b.length < 10 || !/^GIF8[79]a$/.test(ascii(b, 0, 6))) return undefined;
  const d = view(b);
  return { format: 'gif', width: d.getUint16(6, true), height: d.getUint16(8, true) };
}

function jpeg(b: Uint8Array): ImageSize | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  const d = view(b);
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return undefined;
    const marker = b[i + 1]!;
    // Fill bytes and markers without a length.
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const length = d.getUint16(i + 2);
    if (length < 2) return undefined;
    // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > b.length) return undefined;
      return { format: 'jpeg', height: d.getUint16(i + 5), width: d.getUint16(i + 7) };
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan data before any frame header
    i += 2 + length;
  }
  return undefined;
}

function webp(b: Uint8Array): ImageSize | undefined {
  if (b.length < 30 || ascii(b, 0, 4) !== 'RIFF' || ascii(b, 8, 4) !== 'WEBP') return undefined;
  const d = view(b);
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ') {
    // Key frame start code 9d 01 2a, then 14-bit width and height.
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) return undefined;
    return { format: 'webp', width: d.getUint16(26, true) & 0x3fff, height: d.getUint16(28, true) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    if (b[20] !== 0x2f) return undefined;
    const bits = d.getUint32(21, true);
    return { format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') {
    const w = b[24]! | (b[25]! << 8) | (b[26]! << 16);
    const h = b[27]! | (b[28]! << 8) | (b[29]! << 16);
    return { format: 'webp', width: w + 1, height: h + 1 };
  }
  return undefined;
}

/**
 * Whether the file's structure holds together past the header, in one linear pass without
 * decoding pixels: PNG chunks with their CRCs up to IEND, a JPEG scan ended by EOI, a GIF's
 * trailer, a WebP's RIFF size. A truncated or bit-flipped upload is caught here, by the gateway,
 * instead of failing on an orchestrator that was paid for it. Undefined when intact, else why not.
 */
export function imageDamage(b: Uint8Array, format: ImageSize['format']): string | undefined {
  switch (format) {
    case 'png':
      return pngDamage(b);
    case 'jpeg': {
      // Encoders may pad after EOI; it must be there, after a scan (SOS).
      const tail = Buffer.from(b.subarray(Math.max(0, b.length - 4096)));
      if (Buffer.from(b).indexOf(Buffer.from([0xff, 0xda])) < 0) return 'the JPEG has no image data';
      return tail.lastIndexOf(Buffer.from([0xff, 0xd9])) < 0
        ? 'the JPEG is cut off (no end marker)'
        : undefined;
    }
    case 'gif': {
      let end = b.length;
      while (end > 0 && b[end - 1] === 0) end--;
      return b[end - 1] === 0x3b ? undefined : 'the GIF is cut off (no trailer)';
    }
    case 'webp': {
      const size = view(b).getUint32(4, true);
      return size + 8 <= b.length && size >= 22 ? undefined : 'the WebP is cut off (RIFF size past its end)';
    }
  }
}

function pngDamage(b: Uint8Array): string | undefined {
  const d = view(b);
  let i = 8;
  while (i + 12 <= b.length) {
    const length = d.getUint32(i);
    if (i + 12 + length > b.length) return `the PNG is cut off (chunk at byte ${i} runs past its end)`;
    const type = b.subarray(i + 4, i + 8);
    if (crc32(b.subarray(i + 4, i + 8 + length)) !== d.getUint32(i + 8 + length)) {
      return `the PNG is damaged (bad CRC in chunk ${ascii(type, 0, 4).replace(/[^A-Za-z]/g, '?')})`;
    }
    if (ascii(type, 0, 4) === 'IEND') return undefined;
    i += 12 + length;
  }
  return 'the PNG is cut off (no IEND chunk)';
}
