// IVF, the container ffmpeg reads and writes VP8/VP9/AV1 frames in over a pipe: a 32-byte file
// header, then per frame a 12-byte header (size, 64-bit PTS) and the frame.

export type IvfFourcc = 'VP80' | 'VP90' | 'AV01';

export interface IvfHeader {
  fourcc: IvfFourcc | string;
  width: number;
  height: number;
  /** PTS units per second (timebase denominator / numerator). */
  timebaseDen: number;
  timebaseNum: number;
}

export interface IvfFrame {
  data: Uint8Array;
  pts: number;
}

export const IVF_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 12;

export function ivfFileHeader(h: IvfHeader): Buffer {
  const b = Buffer.alloc(IVF_HEADER_BYTES);
  b.write('DKIF', 0, 'latin1');
  b.writeUInt16LE(0, 4);
  b.writeUInt16LE(IVF_HEADER_BYTES, 6);
  b.write(h.fourcc.padEnd(4).slice(0, 4), 8, 'latin1');
  b.writeUInt16LE(h.width & 0xffff, 12);
  b.writeUInt16LE(h.height & 0xffff, 14);
  b.writeUInt32LE(h.timebaseDen, 16);
  b.writeUInt32LE(h.timebaseNum, 20);
  b.writeUInt32LE(0, 24); // frame count: unknown while streaming
  return b;
}

export function ivfFrameHeader(size: number, pts: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUInt32LE(size, 0);
  b.writeBigInt64LE(BigInt(Math.round(pts)), 4);
  return b;
}

export class IvfParseError extends Error {
  override name = 'IvfParseError';
}

/** Streaming IVF reader: push bytes as they come, get whole frames back. */
export class IvfReader {
  header?: IvfHeader;
  private buffered: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes = 16 * 1024 * 1024) {}

  push(chunk: Uint8Array): IvfFrame[] {
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const frames: IvfFrame[] = [];
    let at = 0;
    const buf = this.buffered;
    if (!this.header) {
      if (buf.length < IVF_HEADER_BYTES) return frames;
      if (buf.toString('latin1', 0, 4) !== 'DKIF') throw new IvfParseError('not IVF: no DKIF signature');
      const headerSize = buf.readUInt16LE(6);
      if (headerSize < IVF_HEADER_BYTES)
        throw new IvfParseError(`IVF header size ${headerSize} is too small`);
      if (buf.length < headerSize) return frames;
      this.header = {
        fourcc: buf.toString('latin1', 8, 12),
        width: buf.readUInt16LE(12),
        height: buf.readUInt16LE(14),
        timebaseDen: buf.readUInt32LE(16),
        timebaseNum: buf.readUInt32LE(20),
      };
      at = headerSize;
    }
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const size = buf.readUInt32LE(at);
      if (size > this.maxFrameBytes) throw new IvfParseError(`IVF frame of ${size} bytes is over the limit`);
      if (buf.length - at < FRAME_HEADER_BYTES + size) break;
      const pts = Number(buf.readBigInt64LE(at + 4));
      // Copied: the frames outlive this buffer (caches, NACK history).
      frames.push({
        data: Buffer.from(buf.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + size)),
        pts,
      });
      at += FRAME_HEADER_BYTES + size;
    }
    this.buffered = buf.subarray(at);
    return frames;
  }
}
