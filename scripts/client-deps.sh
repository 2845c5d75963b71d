#!/bin/bash
# Installs the Node.js Redis clients that the specs in spec/clients/ drive
# (ioredis and node-redis, at the versions pinned in spec/clients/package.json
# and package-lock.json) into BUILD_DIR/npm/node_modules. Never global.
# Quiet and quick when the locked versions are already there.
#
# Usage: scripts/client-deps.sh BUILD_DIR
#
# Uses node and npm from PATH; on Debian as root, installs Debian's nodejs
# and npm only when either is missing. The specs find the packages through
# NODE_PATH=BUILD_DIR/npm/node_modules (spec/clients/support.lua sets it).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: scripts/client-deps.sh BUILD_DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
dest=$(cd "$1" && pwd)/npm
lock=$root/spec/clients/package-lock.json
stamp=$dest/node_modules/.luaraft-lock

# Already installed from this very lockfile: nothing to do.
if [ -f "$stamp" ] && cmp -s "$stamp" "$lock"; then
    exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        echo "client-deps.sh: installing Debian's nodejs and npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            nodejs npm >/dev/null
    else
        echo "client-deps.sh: node and npm are needed (install nodejs and npm)" >&2
        exit 1
    fi
fi

echo "client-deps.sh: installing the locked Redis clients into $dest"
mkdir -p "$dest"
cp "$root/spec/clients/package.json" "$lock" "$dest/"
(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
cp "$lock" "$stamp"
