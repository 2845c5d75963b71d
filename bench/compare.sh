#!/bin/bash
# One command for the whole comparison of issue 12: luaraft (3 nodes of examples/kv.lua)
# next to redis-server (appendfsync always), etcd (3 members), canonical raft (3 servers
# of bench/raft_harness.c on Debian's libraft) and Tarantool (3 instances, wal_mode
# fsync), with the machine's own limits (one 4 KiB fdatasync, one durable LMDB commit,
# one loopback round trip), all measured in one run so that their ratios are fair on a
# noisy machine.
#
#   bench/compare.sh [--quick] [--build DIR] [--only "SYSTEM..."] [--no-perf]
#
#   --quick        short runs (about a minute), for trying it; BENCH_QUICK=1 does the same.
#                  The default, the full mode, takes about 10 minutes on 2 cores.
#   --build DIR    the luaraft build to use [LUARAFT_BUILD_DIR, else build/]; configured
#                  RelWithDebInfo (what ships) if it has no cache yet, rebuilt if stale
#   --only LIST    some of: probes luaraft redis etcd raft tarantool scale [all of them];
#                  scale: luaraft holding a million keys (snapshot, restart, join)
#   --no-perf      skip the profile of the luaraft leader (perf record -g at 800 in flight)
#
# It installs what it lacks from Debian (apt-get, as root or through sudo), builds its
# harnesses into DIR/bench/, starts every system on 127.0.0.1 (ports 47000-47999) with its
# data on disk under DIR/bench/data and fsync on, drives it, stops every process it
# started by its pid (also on Ctrl-C or an error) and removes the data. It prints one
# markdown table and writes it, with the raw lines (raw.txt), the plot (compare.png), the
# profile (perf-top.txt) and the servers' logs (logs/), to DIR/bench/results/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${LUARAFT_BUILD_DIR:-$root/build}
quick=${BENCH_QUICK:-0}
only="probes luaraft redis etcd raft tarantool scale"
perf_wanted=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --build) [ $# -ge 2 ] || { echo "compare.sh: --build needs a directory" >&2; exit 2; }
            build=$2; shift ;;
        --only) [ $# -ge 2 ] || { echo "compare.sh: --only needs a list" >&2; exit 2; }
            only=$2; shift ;;
        --no-perf) perf_wanted=0 ;;
        -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$build" in /*) ;; *) build=$PWD/$build ;; esac
bench=$build/bench
results=$bench/results
data=$bench/data
raw=$results/raw.txt

# --- Packages --------------------------------------------------------------------------
# The project's build needs (as scripts/test.sh installs them) and each compared system,
# its load driver's toolchain and the plotter.
wanted=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev liblmdb-dev
    libisal-dev libsodium-dev libhttp-parser-dev redis-server redis-tools etcd-server
    etcd-client golang-go golang-etcd-server-dev libraft-dev tarantool gnuplot-nox linux-perf)
if command -v dpkg-query >/dev/null 2>&1; then
    # One query for all: a package never installed makes dpkg-query complain on stderr.
    have=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${wanted[@]}" 2>/dev/null |
        awk '$2 == "installed" { print $1 }')
    lacking=$(printf '%s\n' "${wanted[@]}" | grep -vxF -f <(printf '%s\n' "$have") || true)
    if [ -n "$lacking" ]; then
        echo "==== Installing $(echo $lacking)"
        as_root=()
        [ "$(id -u)" -eq 0 ] || as_root=(sudo)
        "${as_root[@]}" apt-get update -q
        # shellcheck disable=SC2086 # one word a package
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends $lacking
    fi
fi

# --- Builds ----------------------------------------------------------------------------
echo "==== Build ($build)"
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
[ "$build_type" = RelWithDebInfo ] ||
    echo "compare.sh: WARNING: $build is a $build_type build, not RelWithDebInfo (what ships)" >&2
cmake --build "$build" -j "$(nproc)" --target luaraft >/dev/null
mkdir -p "$bench" "$results"
stale() { [ ! -x "$1" ] || [ -n "$(find "${@:2}" -newer "$1" 2>/dev/null)" ]; }
cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror)
if stale "$bench/probes" "$root/bench/probes.c"; then
    cc "${cflags[@]}" -o "$bench/probes" "$root/bench/probes.c" -llmdb
fi
if stale "$bench/scale" "$root/bench/scale.c"; then
    cc "${cflags[@]}" -pthread -o "$bench/scale" "$root/bench/scale.c"
fi
if stale "$bench/raft_harness" "$root/bench/raft_harness.c"; then
    cc "${cflags[@]}" -o "$bench/raft_harness" "$root/bench/raft_harness.c" -lraft -luv
fi
if stale "$bench/etcd_load" "$root/bench/etcd_load"; then
    # GOPATH mode against the sources Debian ships: nothing is fetched.
    (cd "$root/bench/etcd_load" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE=$bench/gocache go build -o "$bench/etcd_load" .)
fi

# --- Sizes of the runs -----------------------------------------------------------------
# n NAME: requests of a run, a tenth of it in quick mode.
n() {
    local full
    case "$1" in
        c1) full=5000 ;;        # one client: about 1 ms each on luaraft
        c50) full=100000 ;;     # 50 clients, no pipelining
        p16) full=500000 ;;     # 50 clients -P 16 and the sweep around it
        kib) full=200000 ;;     # 1 KiB values
        get) full=1000000 ;;    # reads
        keys) full=1000000 ;;   # the memory run: distinct small keys
        etcd) full=50000 ;;     # per etcd phase (c1 gets a tenth)
        raft) full=200000 ;;    # per canonical raft phase (w1 gets a fortieth)
        tnt) full=100000 ;;     # per Tarantool phase (f1 gets a thirtieth)
    esac
    [ "$quick" = 1 ] && full=$((full / 10))
    echo $full
}

source "$root/bench/compare_lib.sh"
source "$root/bench/scale_lib.sh"

: >"$raw"
{
    echo "machine nproc=$(nproc) cpu=\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\"" \
        "kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%MZ) quick=$quick build_type=$build_type"
    echo "load_before $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$raw"
# BENCH_KEEP_DATA=1 keeps the data directories and logs (DIR/bench/data) for a look.
# The servers' logs are kept in results/logs/.
cleanup() {
    stop_all
    if [ -d "$data" ]; then
        rm -rf "$results/logs" && mkdir -p "$results/logs"
        (cd "$data" && find . -name '*.log' -exec cp --parents {} "$results/logs/" \;)
    fi
    [ "${BENCH_KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$data"
# A system that fails leaves its cells empty and the others go on: each run_* checks
# the steps that can fail (no leader, a load driver's error) and returns 1, or 2 when
# it could not listen, to be started again on the next block of ports.
for system in $only; do
    for base in 47500 47600 47700 47800 47900 47000 47100 47200 47300 47400; do
        echo "==== $system (ports $base-$((base + 99)))"
        status=0
        "run_$system" || status=$?
        stop_all
        [ $status = 2 ] || break
    done
    [ $status = 0 ] || echo "compare.sh: $system failed; its cells stay empty" >&2
done
echo "load_after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw"

lua5.4 "$root/bench/compare_report.lua" "$raw" "$results/compare.dat" >"$results/compare.md"
if command -v gnuplot >/dev/null 2>&1; then
    gnuplot -e "data='$results/compare.dat'; out='$results/compare.png'" "$root/bench/compare.gp" ||
        echo "compare.sh: no plot (no write figures in this run?)" >&2
fi
cat "$results/compare.md"
echo
echo "results: $results/ (compare.md, raw.txt, compare.png${perf_done:+, perf-top.txt})"
