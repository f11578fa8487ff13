// The WebAssembly keccak256 used on segments agrees with viem's, also under concurrent calls.
import { randomBytes } from 'node:crypto';
import { keccak256 } from 'viem';
import { describe, expect, it } from 'vitest';
import { keccak256Of } from '../../src/batch/transcode-hash.ts';

describe('keccak256Of', () => {
  it("is Ethereum's keccak256 (not SHA3-256)", async () => {
    expect(Buffer.from(await keccak256Of(new TextEncoder().encode('abc'))).toString('hex')).toBe(
      '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45',
    );
    expect(Buffer.from(await keccak256Of(new Uint8Array(0))).toString('hex')).toBe(
      'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
  });

  it('matches viem on many inputs hashed at once', async () => {
    const inputs = Array.from({ length: 20 }, (_, i) => randomBytes(i * 997 + (i % 3) * 65_536));
    const ours = await Promise.all(inputs.map((b) => keccak256Of(b)));
    for (const [i, b] of inputs.entries())
      expect(Buffer.from(ours[i]!)).toEqual(Buffer.from(keccak256(b, 'bytes')));
  });
});
