#!/usr/bin/env bash
# Builds the egress's batched UDP sender (src/webrtc/native/udp-batch.c → build/udp-batch.node) with
# the system's C compiler against Node's own headers (Node-API: no node-gyp, nothing downloaded).
# Optional: without it the gateway sends packet by packet, as before (src/webrtc/udp-batch.ts).
set -uo pipefail
cd "$(dirname "$0")/.."
src=src/webrtc/native/udp-batch.c
out=build/udp-batch.node
[ -f "$out" ] && [ "$out" -nt "$src" ] && exit 0
include="$(node -p "require('node:path').resolve(process.execPath, '../../include/node')")"
[ -f "$include/node_api.h" ] || include=/usr/include/node
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1 || [ ! -f "$include/node_api.h" ]; then
  echo "lp-gateway: no C compiler or Node headers here: the egress will send packet by packet (install gcc for batched sends)"
  exit 0
fi
mkdir -p build
if "$cc" -O2 -shared -fPIC -Wall -o "$out.tmp" "$src" -I"$include" 2>build/udp-batch.log; then
  mv "$out.tmp" "$out"
else
  rm -f "$out.tmp"
  echo "lp-gateway: building $out failed (build/udp-batch.log): the egress will send packet by packet"
fi
exit 0
