// The Node flags the gateway runs with (bin/lp-gateway.js, hence `npm start` and the Docker
// image, and the benchmarks' gateways).
//
// --max-semi-space-size=64: V8's young generation at 64 MB per semi-space instead of 16. Media
// objects (a segment's frames, packets awaiting a NACK) live one or two seconds; with 16 MB the
// young generation is collected every ~0.7 s at 5 streams and every such object is copied into
// the old generation, which then needs a full mark-compact every second or so, each a 10-30 ms
// stall of every stream. With 64 MB most of them die young. Measured with `npm run bench:live --
// --prepay-only` (docs/performance.md, point 5); costs up to ~100 MB more memory under load.
export const GATEWAY_NODE_FLAGS = ['--max-semi-space-size=64'];
