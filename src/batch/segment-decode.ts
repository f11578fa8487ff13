// Whether a pushed segment (or an uploaded image or audio file) decodes, asked of ffmpeg only after an orchestrator failed to
// transcode it: a segment that the gateway itself cannot decode failed because of what the client
// sent (422, and nobody is suspended); one that decodes here failed on the orchestrator. Decoding
// alone (no encoding) costs a fraction of a transcode, and only failures pay it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanMessage } from '../live/cause.ts';

const DECODE_TIMEOUT_MS = 30_000;

/** Undefined when the segment's video decodes without an error, else ffmpeg's reason (cleaned). */
export function segmentDecodeError(data: Uint8Array): Promise<string | undefined> {
  return mediaDecodeError(data, 'video');
}

/**
 * The same for an uploaded image or audio file of a batch AI request, asked once an orchestrator
 * failed on it: an image is a one-frame video to ffmpeg.
 */
export async function mediaDecodeError(
  data: Uint8Array,
  kind: 'video' | 'audio',
): Promise<string | undefined> {
  // A file, not a pipe: MP4 with its index at the end cannot be read from a pipe.
  const file = join(tmpdir(), `lpgw-check-${randomBytes(8).toString('hex')}`);
  await writeFile(file, data);
  try {
    return await new Promise<string | undefined>((resolve) => {
      execFile(
        'ffmpeg',
        [
          '-nostdin',
          '-v',
          'error',
          '-xerror',
          '-i',
          file,
          '-map',
          kind === 'video' ? '0:v:0' : '0:a:0',
          '-f',
          'null',
          '-',
        ],
        { timeout: DECODE_TIMEOUT_MS, maxBuffer: 256 * 1024 },
        (err, _out, stderr) => {
          if (!err) return resolve(undefined);
          // Killed by our timeout: say nothing about the input (the orchestrator's failure stands).
          if ((err as { killed?: boolean }).killed) return resolve(undefined);
          const lines = stderr.split('\n').filter((l) => l.trim() !== '');
          const why = lines.find((l) => !/^Conversion failed/.test(l)) ?? lines[0] ?? 'it does not decode';
          resolve(cleanMessage(why.split(file).join('segment')).slice(0, 200));
        },
      );
    });
  } finally {
    await rm(file, { force: true });
  }
}
