#!/usr/bin/env bash
# Installs what `npm start` / `npm test` need and is missing: npm packages, and
# Debian's ffmpeg (plus, when called with --test: chromium and firefox-esr for the browser tests,
# python3-aiortc for the aiortc client tests, iproute2's ss and redis-server for the scale-out tests).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm dependencies: reinstall when node_modules is missing or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "lp-gateway: installing npm dependencies (npm ci)..."
  npm ci --no-audit --no-fund --loglevel=error
fi

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v firefox-esr >/dev/null 2>&1 || need+=(firefox-esr)
  # ss lists the gateway's sockets in test/integration/ice-ports.test.ts.
  command -v ss >/dev/null 2>&1 || need+=(iproute2)
  # test/peers/aiortc_client.py runs on Debian's interpreter, where python3-aiortc installs.
  /usr/bin/python3 -c 'import aiortc' >/dev/null 2>&1 || need+=(python3-aiortc)
  # The scale-out tests start Debian's redis-server (test/helpers/redis.ts).
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "lp-gateway: installing ${need[*]} with apt-get..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "lp-gateway: missing ${need[*]}. Install it, then run this command again:" >&2
    echo "  sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# The egress's batched UDP sender (optional: without a C compiler the gateway sends packet by packet).
bash scripts/build-native.sh
