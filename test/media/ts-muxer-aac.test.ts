import { describe, expect, it } from 'vitest';
import { TsDemuxer, TsMuxer } from '../../src/media/index.ts';

// One AAC-LC 48 kHz mono ADTS frame with a 4-byte payload.
function adts(payload: number[]): Uint8Array {
  const len = payload.length + 7;
  return Uint8Array.from([
    0xff,
    0xf1,
    0x4c,
    0x40 | (len >> 11),
    (len >> 3) & 0xff,
    ((len & 7) << 5) | 0x1f,
    0xfc,
    ...payload,
  ]);
}

describe('TsMuxer with AAC (an RTMP publish carried as go-livepeer carries it)', () => {
  it('writes ADTS frames as stream type 0x0f that a demuxer reads back with their PTS', () => {
    const mux = new TsMuxer({ video: true, audio: { channels: 1, codec: 'aac' } });
    const idr = Uint8Array.from([
      0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0, 0, 0, 1, 0x68, 0xee, 0, 0, 0, 1, 0x65, 0x88, 0x84,
    ]);
    const bytes = [
      mux.startSegment(),
      mux.writeVideo({ annexB: idr, pts90k: 93_000, dts90k: 90_000, keyframe: true }),
      mux.writeAudio({ data: adts([1, 2, 3, 4]), pts90k: 90_000 }),
      mux.writeAudio({ data: adts([5, 6, 7, 8]), pts90k: 91_920 }),
    ];
    const demux = new TsDemuxer();
    const frames = [...bytes.flatMap((b) => demux.push(b)), ...demux.flush()];
    const audio = frames.filter((f) => f.kind === 'audio');
    expect(audio.map((f) => [f.codec, f.pts90k])).toEqual([
      ['aac', 90_000],
      ['aac', 91_920],
    ]);
    const video = frames.find((f) => f.kind === 'video');
    expect(video && [video.pts90k, video.dts90k]).toEqual([93_000, 90_000]);
  });
});
