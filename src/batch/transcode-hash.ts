// keccak256 of whole segments, on the hot path of every push (the gateway hashes what it sends,
// the orchestrator what it receives). hash-wasm's WebAssembly keccak takes ~3 ms per MB where the
// pure-JS one in viem takes ~70 ms, which would otherwise dominate the gateway's added latency.
import { createKeccak, type IHasher } from 'hash-wasm';

let hasher: Promise<IHasher> | undefined;

/** keccak256 (Ethereum's, not SHA3-256) of `data`. */
export async function keccak256Of(data: Uint8Array): Promise<Uint8Array> {
  hasher ??= createKeccak(256);
  const h = await hasher;
  // init/update/digest run synchronously, so concurrent callers never interleave on the one hasher.
  h.init();
  h.update(data);
  return h.digest('binary');
}
