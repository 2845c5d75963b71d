#!/bin/bash
# Runs a local 3-node luaraft cluster in the foreground: installs any missing package
# (as scripts/test.sh does), builds, and starts three nodes on examples/kv.lua (or the
# script given). Ctrl-C stops every node it started.
#
#   scripts/cluster.sh [--data DIR] [--build DIR] [SCRIPT.lua]
#
# Client ports 6001-6003 (redis-cli -p 6001), peer ports 7001-7003, data in ./data/n1..n3
# unless --data says otherwise. Each node logs to DIR/nI.log and to this terminal.
set -euo pipefail

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

data=./data
build=build
script=examples/kv.lua
while [ $# -gt 0 ]; do
    case "$1" in
        --data) [ $# -ge 2 ] || { echo "cluster.sh: --data needs a directory" >&2; exit 2; }
            data=$2; shift ;;
        --build) [ $# -ge 2 ] || { echo "cluster.sh: --build needs a directory" >&2; exit 2; }
            build=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "cluster.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) script=$1 ;;
    esac
    shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
case "$script" in /*) ;; *) script=$(pwd)/$script ;; esac
case "$data" in /*) ;; *) data=$(pwd)/$data ;; esac
case "$build" in /*) ;; *) build=$root/$build ;; esac
[ -f "$script" ] || { echo "cluster.sh: no script at $script" >&2; exit 2; }

# --- Packages (the same list and steps as scripts/test.sh) ---------------------------
packages=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev liblmdb-dev
    redis-tools)
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
cluster=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "==== Stopping nodes ${pids[*]:-}"
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    exit 0
}
trap stop INT TERM EXIT

mkdir -p "$data"
for i in 1 2 3; do
    mkdir -p "$data/n$i"
    "$luaraft" node --id "$i" --data "$data/n$i" --listen "127.0.0.1:600$i" \
        --raft "127.0.0.1:700$i" --cluster "$cluster" "$script" \
        > >(tee -a "$data/n$i.log" >&2) 2>&1 &
    pids+=($!)
done

cat <<EOF2
==== 3 nodes running on $(basename "$script") (pids ${pids[*]}), data in $data
Connect with any of:
    redis-cli -p 6001        redis-cli -p 6002        redis-cli -p 6003
Try: redis-cli -p 6001 SET greeting hello; redis-cli -p 6002 GET greeting;
     redis-cli -p 6001 RAFT.INFO
Kill a node (kill -9 PID) and watch the others elect a leader and go on.
Ctrl-C stops every node.
EOF2
wait
