// XOR of a payload with its keystream, 16 bytes at a time in WebAssembly SIMD, for the egress's
// AES-CM (srtp-cm.ts). A JavaScript loop over Int32Array views costs about 0.7 µs per 1200-byte
// packet under fan-out, the largest share of the SRTP after the SHA-1; copying payload and
// keystream into the module's memory, one SIMD pass and copying the result out cost about a
// tenth of that. The module, by hand (WAT):
//
//   (module
//     (memory (export "m") 1)
//     (func (export "x") (param $dst i32) (param $src i32) (param $len i32) (local $i i32)
//       (block (loop
//         (br_if 1 (i32.ge_u (local.get $i) (local.get $len)))
//         (v128.store (i32.add (local.get $dst) (local.get $i))
//           (v128.xor (v128.load (i32.add (local.get $dst) (local.get $i)))
//                     (v128.load (i32.add (local.get $src) (local.get $i)))))
//         (local.set $i (i32.add (local.get $i) (i32.const 16)))
//         (br 0)))))
//
// It XORs whole 16-byte blocks, so up to 15 bytes past `len` in each region are scratch.

/** The longest payload this path takes; the regions are this long (a multiple of 16). */
export const SIMD_XOR_MAX = 2048;
const DATA = 0;
const KEYSTREAM = SIMD_XOR_MAX;

const CODE = [
  [0x01, 0x01, 0x7f], // one local i32 ($i)
  [0x02, 0x40, 0x03, 0x40], // block, loop
  [0x20, 3, 0x20, 2, 0x4f, 0x0d, 1], // br_if 1 (i >= len)
  [0x20, 0, 0x20, 3, 0x6a], // dst + i (the store's address)
  [0x20, 0, 0x20, 3, 0x6a, 0xfd, 0x00, 0x00, 0x00], // v128.load (dst + i)
  [0x20, 1, 0x20, 3, 0x6a, 0xfd, 0x00, 0x00, 0x00], // v128.load (src + i)
  [0xfd, 0x51], // v128.xor
  [0xfd, 0x0b, 0x00, 0x00], // v128.store
  [0x20, 3, 0x41, 0x10, 0x6a, 0x21, 3], // i += 16
  [0x0c, 0, 0x0b, 0x0b, 0x0b], // br 0, end loop, end block, end func
].flat();

const section = (id: number, bytes: number[]): number[] => [id, bytes.length, ...bytes];

const MODULE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
  ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type: (i32 i32 i32) -> ()
  ...section(3, [1, 0]), // one function of type 0
  ...section(5, [1, 0x00, 1]), // memory: 1 page (64 KiB)
  ...section(7, [2, 1, 0x6d, 0x02, 0, 1, 0x78, 0x00, 0]), // export "m" (memory), "x" (func)
  ...section(10, [1, CODE.length, ...CODE]),
]);

interface SimdXor {
  memory: Uint8Array;
  xor: (dst: number, src: number, len: number) => void;
}

/** The compiled module, or undefined where WebAssembly SIMD is missing (the caller XORs in JS). */
const simd: SimdXor | undefined = (() => {
  try {
    if (typeof WebAssembly !== 'object' || !WebAssembly.validate(MODULE)) return undefined;
    const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE));
    const exports = instance.exports as { m: WebAssembly.Memory; x: SimdXor['xor'] };
    return { memory: new Uint8Array(exports.m.buffer), xor: exports.x };
  } catch {
    return undefined;
  }
})();

export const hasSimdXor = simd !== undefined;

/**
 * out[at…at+payload.length) = payload XOR keystream[from…). false (nothing written) where SIMD is
 * missing or the payload is longer than SIMD_XOR_MAX.
 */
export function xorPayloadSimd(
  out: Uint8Array,
  at: number,
  payload: Uint8Array,
  keystream: Uint8Array,
  from: number,
): boolean {
  const length = payload.length;
  if (!simd || length > SIMD_XOR_MAX) return false;
  const { memory, xor } = simd;
  memory.set(payload, DATA);
  memory.set(keystream.subarray(from, from + length), KEYSTREAM);
  xor(DATA, KEYSTREAM, length);
  out.set(memory.subarray(DATA, DATA + length), at);
  return true;
}
