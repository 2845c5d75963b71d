#!/bin/bash
# Runs a local luaraft cluster in the foreground: installs any missing package (as
# scripts/test.sh does), builds, and then runs `luaraft cluster` on examples/kv.lua (or
# the script given). Ctrl-C stops every node.
#
#   scripts/cluster.sh [--build DIR] [--nodes N] [--data DIR] [--base-port P] [--fresh]
#                      [SCRIPT.lua] [-- NODE-OPTIONS...]
#
# Every option but --build goes to `luaraft cluster` (see `build/luaraft cluster --help`):
# 3 nodes, client ports 6001-6003 (redis-cli -p 6001), peer ports 7001-7003, HTTP ports
# 8001-8003 (/metrics, /health, /status; the status page's URL is printed at the start),
# data and logs in ./data (n1..n3, n1.log..n3.log), kept across restarts unless --fresh.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

root=$(cd "$(dirname "$0")/.." && pwd)
build=build
script=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) [ $# -ge 2 ] || { echo "cluster.sh: --build needs a directory" >&2; exit 2; }
            build=$2; shift ;;
        --nodes | --data | --base-port)
            [ $# -ge 2 ] || { echo "cluster.sh: $1 needs a value" >&2; exit 2; }
            args+=("$1" "$2"); shift ;;
        --fresh) args+=("$1") ;;
        -h | --help) usage; exit 0 ;;
        --) break ;;
        -*) echo "cluster.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) [ -z "$script" ] || { echo "cluster.sh: more than one script" >&2; exit 2; }
            script=$1 ;;
    esac
    shift
done
[ -n "$script" ] || script=$root/examples/kv.lua
case "$build" in /*) ;; *) build=$root/$build ;; esac
[ -f "$script" ] || { echo "cluster.sh: no script at $script" >&2; exit 2; }

# --- Packages (the same list and steps as scripts/test.sh) ---------------------------
packages=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev liblmdb-dev
    libisal-dev libsodium-dev libhttp-parser-dev redis-tools)
if command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${packages[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "==== Installing ${missing[*]}"
        sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || {
                echo "cluster.sh: missing packages (${missing[*]}) and not root" >&2
                exit 1
            }
            sudo=(sudo)
        fi
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# --- Build ----------------------------------------------------------------------------
echo "==== Build ($build)"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target luaraft >/dev/null
luaraft=$build/luaraft
[ -x "$luaraft" ] || { echo "cluster.sh: no $luaraft after the build" >&2; exit 1; }

# --- Run ------------------------------------------------------------------------------
exec "$luaraft" cluster "${args[@]}" "$script" "$@"
