// The HLS kept for pushed streams: playlists a player accepts (master with each rendition's
// bandwidth and size, live media playlists with a sliding window and a media sequence that
// counts what left it), out-of-order and repeated pushes, idle expiry and a bounded stream count.
import { afterEach, describe, expect, it } from 'vitest';
import { HlsStreams } from '../../src/batch/hls.ts';
import { parsePresetNames, resolveFormats } from '../../src/batch/profiles.ts';

const [P240, P360] = resolveFormats(parsePresetNames('P240p30fps16x9,P360p30fps16x9'), 'mpegts') as [
  ReturnType<typeof resolveFormats>[0],
  ReturnType<typeof resolveFormats>[0],
];
const data = (tag: string) => Buffer.from(tag);
let clock = 0;
const made: HlsStreams[] = [];
function streams(opts: Partial<ConstructorParameters<typeof HlsStreams>[0]> = {}) {
  const s = new HlsStreams({
    windowSegments: 3,
    idleTimeoutMs: 60_000,
    maxStreams: 2,
    now: () => clock,
    ...opts,
  });
  made.push(s);
  return s;
}
afterEach(() => {
  for (const s of made.splice(0)) s.close();
  clock = 0;
});
const uris = (playlist: string) => playlist.split('\n').filter((l) => l && !l.startsWith('#'));

describe('HLS playlists of pushed streams', () => {
  it('master lists each MPEG-TS rendition with bandwidth, resolution and frame rate, in profile order', () => {
    const hls = streams();
    const mp4 = { ...P360, name: 'mp4-out', format: 'mp4' as const };
    hls.add('s', 0n, 2000, [
      { profile: P240, data: data('a') },
      { profile: P360, data: data('b') },
      { profile: mp4, data: data('c') },
    ]);
    expect(hls.master('s')).toBe(
      [
        '#EXTM3U',
        '#EXT-X-VERSION:3',
        '#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=600000,RESOLUTION=426x240,FRAME-RATE=30.000',
        's/P240p30fps16x9.m3u8',
        '#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=1200000,RESOLUTION=640x360,FRAME-RATE=30.000',
        's/P360p30fps16x9.m3u8',
        '',
      ].join('\n'),
    );
    expect(hls.media('s', 'mp4-out')).toBeUndefined();
    expect(hls.master('other')).toBeUndefined();
  });

  it('a media playlist slides its window; the media sequence counts the segments that left', () => {
    const hls = streams();
    for (let seq = 0n; seq < 5n; seq++)
      hls.add('s', seq, seq === 4n ? 2500 : 2000, [{ profile: P240, data: data(`s${seq}`) }]);
    const media = hls.media('s', 'P240p30fps16x9')!;
    expect(media).toContain('#EXT-X-MEDIA-SEQUENCE:2');
    expect(media).toContain('#EXT-X-TARGETDURATION:3');
    expect(media).toContain('#EXTINF:2.500,');
    expect(media).not.toContain('#EXT-X-ENDLIST');
    expect(uris(media)).toEqual(['P240p30fps16x9/2.ts', 'P240p30fps16x9/3.ts', 'P240p30fps16x9/4.ts']);
    expect(hls.segment('s', 'P240p30fps16x9', 4n)?.toString()).toBe('s4');
    expect(hls.segment('s', 'P240p30fps16x9', 1n)).toBeUndefined();
  });

  it('lists a segment only when it is the newest; a repeated seq replaces its data in place', () => {
    const hls = streams();
    for (const seq of [5n, 3n, 6n]) hls.add('s', seq, 2000, [{ profile: P240, data: data(`v1-${seq}`) }]);
    hls.add('s', 6n, 2000, [{ profile: P240, data: data('v2-6') }]);
    const media = hls.media('s', 'P240p30fps16x9')!;
    // 3 came after 5: inserting it would move 5 to another media sequence number.
    expect(uris(media)).toEqual(['P240p30fps16x9/5.ts', 'P240p30fps16x9/6.ts']);
    expect(media).toContain('#EXT-X-MEDIA-SEQUENCE:0');
    expect(hls.segment('s', 'P240p30fps16x9', 6n)?.toString()).toBe('v2-6');
    expect(hls.segment('s', 'P240p30fps16x9', 3n)).toBeUndefined();
  });

  it('every listed URL keeps its media sequence number across reloads, whatever order pushes come in', () => {
    const hls = streams({ windowSegments: 4 });
    /** URL → media sequence number, from one playlist as a player reads it. */
    const numbers = (playlist: string) => {
      const first = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)![1]);
      return new Map(uris(playlist).map((u, i) => [u, first + i]));
    };
    const seen = new Map<string, number>();
    for (const seq of [0n, 2n, 1n, 3n, 5n, 4n, 6n, 9n, 7n, 8n, 10n, 11n]) {
      hls.add('s', seq, 2000, [{ profile: P240, data: data(`${seq}`) }]);
      for (const [uri, n] of numbers(hls.media('s', 'P240p30fps16x9')!)) {
        expect(seen.get(uri) ?? n, `${uri} after pushing ${seq}`).toBe(n);
        seen.set(uri, n);
      }
    }
    const last = hls.media('s', 'P240p30fps16x9')!;
    expect(uris(last)).toEqual([
      'P240p30fps16x9/6.ts',
      'P240p30fps16x9/9.ts',
      'P240p30fps16x9/10.ts',
      'P240p30fps16x9/11.ts',
    ]);
    expect(last).toContain('#EXT-X-MEDIA-SEQUENCE:4');
  });

  it('counts the discontinuities that left the window in EXT-X-DISCONTINUITY-SEQUENCE', () => {
    const hls = streams({ windowSegments: 2 });
    for (const seq of [0n, 5n, 6n]) hls.add('s', seq, 2000, [{ profile: P240, data: data('x') }]);
    const media = hls.media('s', 'P240p30fps16x9')!;
    expect(uris(media)).toEqual(['P240p30fps16x9/5.ts', 'P240p30fps16x9/6.ts']);
    expect(media).toContain('#EXT-X-MEDIA-SEQUENCE:1');
    expect(media).toContain('#EXT-X-DISCONTINUITY-SEQUENCE:1');
    expect(media).not.toContain('#EXT-X-DISCONTINUITY\n');
  });

  it('the master advertises the encoded size a rendition reports, not the nominal one', () => {
    const hls = streams();
    hls.add('s', 0n, 2000, [{ profile: P240, data: data('a'), width: 426, height: 320 }]);
    expect(hls.master('s')).toContain('RESOLUTION=426x320');
    expect(hls.master('s')).not.toContain('426x240');
  });

  it('marks a gap in sequence numbers as a discontinuity', () => {
    const hls = streams();
    for (const seq of [0n, 1n, 7n]) hls.add('s', seq, 2000, [{ profile: P240, data: data('x') }]);
    const lines = hls.media('s', 'P240p30fps16x9')!.split('\n');
    expect(lines.indexOf('#EXT-X-DISCONTINUITY')).toBe(lines.indexOf('P240p30fps16x9/7.ts') - 2);
    expect(lines.filter((l) => l === '#EXT-X-DISCONTINUITY')).toHaveLength(1);
  });

  it('drops a stream idle for idleTimeoutMs, and tells who cares', () => {
    const expired: string[] = [];
    const hls = streams({ idleTimeoutMs: 1000, onExpire: (id) => expired.push(id) });
    hls.add('a', 0n, 2000, [{ profile: P240, data: data('x') }]);
    clock = 600;
    hls.add('b', 0n, 2000, [{ profile: P240, data: data('x') }]);
    clock = 1000;
    hls.sweep();
    expect(hls.has('a')).toBe(false);
    expect(hls.has('b')).toBe(true);
    expect(expired).toEqual(['a']);
    expect(hls.master('a')).toBeUndefined();
  });

  it('keeps at most maxStreams: the least recently pushed goes first', () => {
    const expired: string[] = [];
    const hls = streams({ maxStreams: 2, onExpire: (id) => expired.push(id) });
    hls.add('a', 0n, 2000, [{ profile: P240, data: data('x') }]);
    hls.add('b', 0n, 2000, [{ profile: P240, data: data('x') }]);
    hls.add('a', 1n, 2000, [{ profile: P240, data: data('x') }]);
    hls.add('c', 0n, 2000, [{ profile: P240, data: data('x') }]);
    expect(expired).toEqual(['b']);
    expect([hls.has('a'), hls.has('b'), hls.has('c')]).toEqual([true, false, true]);
    expect(hls.size).toBe(2);
  });

  it('refuses a window of zero segments', () => {
    expect(() => new HlsStreams({ windowSegments: 0, idleTimeoutMs: 1000, maxStreams: 1 })).toThrow(
      RangeError,
    );
  });
});
