// Transcoding profiles as go-livepeer's -transcodingOptions takes them, and as they travel in
// SegData (which fullProfiles field, the signed name hashes, the capabilities, the fee estimate).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keccak_256 } from '@noble/hashes/sha3';
import { describe, expect, it } from 'vitest';
import {
  estimatedPixels,
  fromNetProfile,
  outputSize,
  PRESETS,
  ProfileError,
  parseJsonProfiles,
  parsePresetNames,
  profilesHex,
  profilesOf,
  resolveFormats,
  segDataProfiles,
  signedProfileNames,
  toNetProfile,
  transcodeCapabilities,
} from '../../src/batch/profiles.ts';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { decodeMessage, encodeMessage } from '../../src/wire/lp-rpc.ts';

describe('-transcodingOptions preset names', () => {
  it("takes go-livepeer's default and gives lpms' sizes, rates and bitrates", () => {
    const [p240, p360] = parsePresetNames('P240p30fps16x9,P360p30fps16x9');
    expect(p240).toMatchObject({
      name: 'P240p30fps16x9',
      width: 426,
      height: 240,
      bitrate: 600_000,
      fps: 30,
    });
    expect(p360).toMatchObject({
      name: 'P360p30fps16x9',
      width: 640,
      height: 360,
      bitrate: 1_200_000,
      fps: 30,
    });
    expect(Object.keys(PRESETS)).toHaveLength(13);
    expect(PRESETS.P720p60fps16x9).toMatchObject({ width: 1280, height: 720, bitrate: 6_000_000, fps: 60 });
  });

  it('refuses unknown names (go-livepeer drops them silently) and duplicates, naming them', () => {
    expect(() => parsePresetNames('P240p30fps16x9, P999p')).toThrow(
      /unknown profile name P999p; known: P720p60fps16x9/,
    );
    expect(() => parsePresetNames(' , ')).toThrow(ProfileError);
    expect(() => parsePresetNames('P240p30fps16x9,P240p30fps16x9')).toThrow(/twice/);
  });
});

describe("go-livepeer's JSON profiles", () => {
  it('reads every field, keys case-insensitively, gop in seconds or "intra", defaults as lpms', () => {
    const [a, b] = parseJsonProfiles(
      JSON.stringify([
        {
          name: 'hd',
          width: 1280,
          height: 720,
          bitrate: 3_000_000,
          fps: 30000,
          fpsDen: 1001,
          profile: 'H264High',
          gop: '2.5',
        },
        { Width: 320, HEIGHT: 180, Bitrate: 250_000, gop: 'intra', encoder: 'H.264' },
      ]),
    );
    expect(a).toMatchObject({
      name: 'hd',
      fps: 30000,
      fpsDen: 1001,
      profile: 'h264high',
      gopMs: 2500,
      colorDepth: 8,
    });
    expect(b).toMatchObject({
      name: 'custom_320x180_250000',
      gopMs: -1,
      encoder: 'H264',
      profile: 'none',
      fps: 0,
    });
  });

  it('refuses bad documents with one line naming the profile and field', () => {
    const bad: [string, RegExp][] = [
      ['{', /is not JSON/],
      ['{"profiles":[]}', /must be a JSON array/],
      ['[]', /has no profiles/],
      ['[{"name":"x","width":0,"height":2,"bitrate":1}]', /profile "x": width must be an integer from 1/],
      ['[{"name":"x","width":2,"height":2,"bitrate":"1k"}]', /bitrate must be an integer/],
      ['[{"name":"x","width":2,"height":2,"bitrate":1,"gop":"-1"}]', /profile "x": gop must be positive/],
      ['[{"name":"x","width":2,"height":2,"bitrate":1,"gop":"often"}]', /gop must be seconds/],
      ['[{"name":"x","width":2,"height":2,"bitrate":1,"profile":"h265main"}]', /profile must be one of/],
      [
        '[{"name":"x","width":2,"height":2,"bitrate":1,"encoder":"AV1"}]',
        /encoder must be one of H\.264, HEVC/,
      ],
      ['[{"name":"a b","width":2,"height":2,"bitrate":1}]', /only letters, digits/],
    ];
    for (const [text, message] of bad) expect(() => parseJsonProfiles(text), text).toThrow(message);
  });

  it('is what -transcodingOptions=<file> loads; a missing file or unknown name stops the start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lpgw-profiles-'));
    const file = join(dir, 'profiles.json');
    writeFileSync(file, '[{"name":"small","width":256,"height":144,"bitrate":200000,"fps":15}]');
    const c = loadConfig({ argv: ['-transcodingOptions', file], env: {}, cwd: dir });
    expect(c.transcodingOptions.source).toBe(file);
    expect(c.transcodingOptions.profiles.map((p) => p.name)).toEqual(['small']);
    expect(
      loadConfig({ argv: [], env: {}, cwd: dir }).transcodingOptions.profiles.map((p) => p.name),
    ).toEqual(['P240p30fps16x9', 'P360p30fps16x9']);
    expect(() => loadConfig({ argv: ['-transcodingOptions', 'nope.json'], env: {}, cwd: dir })).toThrow(
      /transcodingOptions: file not found/,
    );
    expect(() => loadConfig({ argv: ['-transcodingOptions', 'P1080p'], env: {}, cwd: dir })).toThrow(
      ConfigError,
    );
    writeFileSync(file, '[{"name":"small","width":256,"height":144}]');
    expect(() => loadConfig({ argv: ['-transcodingOptions', file], env: {}, cwd: dir })).toThrow(
      /profiles\.json: profile "small": bitrate must be/,
    );
  });
});

describe('profiles in SegData', () => {
  const simple = resolveFormats(parsePresetNames('P240p30fps16x9,P360p30fps16x9'), 'mpegts');

  it("uses go-livepeer's field: fullProfiles for plain MPEG-TS, fullProfiles2 with MP4, fullProfiles3 otherwise", () => {
    expect(Object.keys(segDataProfiles(simple)).sort()).toEqual(['fullProfiles', 'profiles']);
    expect(new TextDecoder().decode(segDataProfiles(simple).profiles)).toBe('invalid');
    const mp4 = resolveFormats(parsePresetNames('P240p30fps16x9'), 'mp4');
    expect(mp4[0]!.format).toBe('mp4');
    expect(Object.keys(segDataProfiles(mp4))).toContain('fullProfiles2');
    // A format already set is kept.
    expect(resolveFormats(simple, 'mp4')[0]!.format).toBe('mpegts');
    const gop = [{ ...simple[0]!, gopMs: 2000 }];
    expect(Object.keys(segDataProfiles(gop))).toContain('fullProfiles3');
    const fractional = [{ ...simple[0]!, fpsDen: 1001 }];
    expect(Object.keys(segDataProfiles(fractional))).toContain('fullProfiles3');
  });

  it('round-trips through the protobuf as the orchestrator reads it', () => {
    const profiles = [
      ...simple,
      {
        ...simple[0]!,
        name: 'hq',
        format: 'mp4' as const,
        profile: 'h264main' as const,
        gopMs: -1,
        fpsDen: 1001,
      },
    ];
    const bytes = encodeMessage('SegData', { seq: 1n, ...segDataProfiles(profiles) });
    const seg = decodeMessage('SegData', bytes);
    expect(seg.fullProfiles3?.[2]).toMatchObject({
      name: 'hq',
      format: 1,
      profile: 2,
      gop: -1,
      fpsDen: 1001,
    });
    expect(profilesOf(seg)).toEqual(
      profiles.map((p) => ({ ...p, format: p.format === 'mp4' ? 'mp4' : 'mpegts' })),
    );
    expect(signedProfileNames(seg)).toEqual(['P240p30fps16x9', 'P360p30fps16x9', 'hq']);
  });

  it('refuses enum values it does not know, as go-livepeer makeFfmpegVideoProfiles does', () => {
    expect(() => fromNetProfile({ ...toNetProfile(simple[0]!), format: 7 })).toThrow(
      'unrecognized profile output format',
    );
    expect(() => fromNetProfile({ ...toNetProfile(simple[0]!), profile: 9 })).toThrow(
      'unrecognized encoder profile',
    );
    expect(() => fromNetProfile({ ...toNetProfile(simple[0]!), encoder: 9 })).toThrow(
      'unrecognized video codec',
    );
    expect(fromNetProfile({ width: 2, height: 4, bitrate: 6 }).name).toBe('net_2x4_6');
  });

  it('signs the hex of the first 4 bytes of keccak256(name) per profile (ProfilesToHex)', () => {
    const k = (s: string) => Buffer.from(keccak_256(new TextEncoder().encode(s)).slice(0, 4)).toString('hex');
    expect(profilesHex(['P240p30fps16x9', 'P360p30fps16x9'])).toBe(k('P240p30fps16x9') + k('P360p30fps16x9'));
    expect(profilesHex([])).toBe('');
  });

  it("asks for go-livepeer's job capabilities", () => {
    expect(transcodeCapabilities(simple)).toEqual([0, 1, 12, 26]);
    const fancy = [
      {
        ...simple[0]!,
        format: 'mp4' as const,
        profile: 'h264high' as const,
        gopMs: 1000,
        fpsDen: 2,
        encoder: 'H265' as const,
      },
    ];
    expect(transcodeCapabilities(fancy)).toEqual([0, 2, 3, 9, 11, 12, 16, 26]);
  });

  it("estimates pixels as go-livepeer's estimateFee: ⌈fps⌉ × ⌈seconds⌉, a kept frame rate as 60", () => {
    expect(estimatedPixels(simple, 2000)).toBe(426n * 240n * 30n * 2n + 640n * 360n * 30n * 2n);
    expect(estimatedPixels(simple, 1500)).toBe(estimatedPixels(simple, 2000));
    expect(estimatedPixels([{ ...simple[0]!, fps: 30000, fpsDen: 1001 }], 1000)).toBe(426n * 240n * 30n);
    expect(estimatedPixels([{ ...simple[0]!, fps: 0 }], 1000)).toBe(426n * 240n * 60n);
  });
});

describe('outputSize', () => {
  // What ffmpeg's scale=w='if(gte(iw,ih),W,-2)':h='if(lt(iw,ih),H,-2)' makes of these inputs.
  it("keeps the input's aspect ratio along the profile's long side, rounded to even as ffmpeg -2", () => {
    const p240 = { width: 426, height: 240 };
    expect(outputSize(p240, { width: 1280, height: 720 })).toEqual({ width: 426, height: 240 });
    expect(outputSize(p240, { width: 640, height: 480 })).toEqual({ width: 426, height: 320 });
    expect(outputSize(p240, { width: 720, height: 1280 })).toEqual({ width: 136, height: 240 });
    expect(outputSize({ width: 1280, height: 720 }, { width: 1920, height: 800 })).toEqual({
      width: 1280,
      height: 534,
    });
    expect(outputSize(p240, { width: 0, height: 0 })).toEqual(p240);
  });
});
