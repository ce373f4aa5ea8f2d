#!/usr/bin/env bash
# Builds the native packet I/O addon (binding.gyp -> build/Release/saru_packet.node).
# Run by `npm install` / `npm ci` (the "install" script) and `npm run build:native`.
# Never downloads anything: it uses the node-gyp bundled with npm (or one in
# node_modules) and, when the system has Node's headers, --nodedir=/usr.
# Off Linux there is no AF_PACKET: exit 0 without building.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != "Linux" ]; then
  echo "build-native: not Linux, skipping the AF_PACKET addon" >&2
  exit 0
fi

# Which node-gyp: npm sets npm_config_node_gyp inside scripts; otherwise the
# one bundled next to the npm in PATH, or a local one.
gyp=()
if [ -n "${npm_config_node_gyp:-}" ] && [ -f "${npm_config_node_gyp}" ]; then
  gyp=(node "${npm_config_node_gyp}")
elif [ -x node_modules/.bin/node-gyp ]; then
  gyp=(node_modules/.bin/node-gyp)
else
  npm_bin="$(command -v npm || true)"
  if [ -n "$npm_bin" ]; then
    bundled="$(dirname "$(readlink -f "$npm_bin")")/../node_modules/node-gyp/bin/node-gyp.js"
    [ -f "$bundled" ] && gyp=(node "$bundled")
  fi
fi
if [ ${#gyp[@]} -eq 0 ]; then
  echo "build-native: node-gyp not found (neither npm's bundled one nor node_modules/.bin)" >&2
  exit 1
fi

# Headers: the system's when present (nothing to download), else node-gyp's
# usual dist-url resolution. The npm config may already say nodedir.
args=(rebuild --release)
nodedir="${npm_config_nodedir:-}"
if [ -z "$nodedir" ] && [ -f /usr/include/node/node_api.h ]; then
  nodedir=/usr
fi
[ -n "$nodedir" ] && args+=("--nodedir=$nodedir")
[ -n "${JOBS:-}" ] && args+=("--jobs=$JOBS")

echo "build-native: ${gyp[*]} ${args[*]}" >&2
"${gyp[@]}" "${args[@]}"
