// Duration of an uploaded audio file, for the audio-to-text fee: go-livepeer's
// common.CalculateAudioDuration probes the container and bills whole seconds (truncated); under
// one second is a bad request. We ask ffprobe, from a temporary file because some containers
// (MP4 with the index at the end) cannot be probed from a pipe.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROBE_TIMEOUT_MS = 10_000;

export class AudioDurationError extends Error {}

/** Whole seconds of audio in `data`; throws AudioDurationError when it cannot be worked out. */
export async function audioDurationSeconds(data: Uint8Array): Promise<number> {
  const file = join(tmpdir(), `lpgw-audio-${randomBytes(8).toString('hex')}`);
  await writeFile(file, data);
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        'ffprobe',
        [
          '-v',
          'error',
          '-show_entries',
          'format=duration',
          '-of',
          'default=noprint_wrappers=1:nokey=1',
          file,
        ],
        { timeout: PROBE_TIMEOUT_MS },
        (err, out, stderr) => {
          if (err) {
            const why = (stderr || err.message).trim().split('\n').pop() ?? '';
            reject(
              new AudioDurationError(`audio: not a readable audio file (${why.replace(`${file}: `, '')})`),
            );
          } else resolve(out);
        },
      );
    });
    const seconds = Number.parseFloat(stdout.trim());
    if (!Number.isFinite(seconds)) throw new AudioDurationError('audio: its duration cannot be read');
    const whole = Math.trunc(seconds);
    if (whole <= 0) throw new AudioDurationError('audio: shorter than one second');
    return whole;
  } finally {
    await rm(file, { force: true });
  }
}
