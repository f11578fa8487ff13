// The input guard's pure parts: the depth scan, finite numbers, cleaned error text, the budget.
import { describe, expect, it } from 'vitest';
import {
  BodyBudget,
  cleanMessage,
  InputError,
  jsonDepthExceeds,
  nonFinitePath,
  parseClientJson,
} from '../../src/http/input-guard.ts';

describe('input guard', () => {
  it('finds nesting past the bound without parsing, strings and escapes skipped', () => {
    expect(jsonDepthExceeds('{"a":[1,{"b":2}]}', 3)).toBe(false);
    expect(jsonDepthExceeds('{"a":[1,{"b":[2]}]}', 3)).toBe(true);
    expect(jsonDepthExceeds('{"a":"[[[[[[\\"[[[["}', 1)).toBe(false);
    const deep = `${'{"p":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    expect(() => parseClientJson(deep)).toThrow(/nested deeper than 32 levels/);
    expect(() => parseClientJson('[[[[1]]]]', 3)).toThrow(InputError);
  });

  it('refuses numbers that are not finite, naming the field', () => {
    expect(() => parseClientJson('{"prompt":"x","width":1e400}')).toThrow(
      /field "width" is a number too large/,
    );
    expect(() => parseClientJson('-1e999')).toThrow(/the body is a number too large/);
    expect(parseClientJson('{"height":18446744073709551617}')).toEqual({ height: 2 ** 64 });
    expect(() => parseClientJson('{"a":')).toThrow(/not JSON/);
    expect(nonFinitePath({ a: 1, b: [2, { c: Number.POSITIVE_INFINITY }] })).toBe('b[1].c');
    expect(nonFinitePath({ image: { data: Buffer.alloc(4) }, n: Number.NaN })).toBe('n');
    expect(nonFinitePath({ a: 'x' })).toBeUndefined();
  });

  it('cleans error text: pointers, paths, stack frames, huge echoed strings', () => {
    const ff =
      'ffmpeg failed: [h264 @ 0x55d5c0a8e2c0] error while decoding MB 3 4 /tmp/lpgw-segment-abc/in: Invalid data at 0x7ffd1234abcd';
    const out = cleanMessage(ff);
    expect(out).not.toMatch(/0x[0-9a-f]{6}/);
    expect(out).not.toContain('/tmp/');
    expect(out).toContain('error while decoding MB 3 4');
    const address = `sender 0x${'ab'.repeat(20)} has no deposit`;
    expect(cleanMessage(address)).toBe(address);
    const stack = 'boom\n    at foo (/work/src/x.ts:1:2)\n    at node:internal/process:3:4';
    expect(cleanMessage(stack)).toBe('boom');
    const huge = `no orchestrator offers "${'m'.repeat(900_000)}"`;
    const cleaned = cleanMessage(huge);
    expect(cleaned.length).toBeLessThan(300);
    expect(cleaned).toContain('900002 characters');
  });

  it('a body budget takes what fits and gives it back', () => {
    const b = new BodyBudget(100);
    expect(b.take(60)).toBe(true);
    expect(b.take(50)).toBe(false);
    b.give(60);
    expect(b.take(100)).toBe(true);
    expect(b.inUse).toBe(100);
  });
});
