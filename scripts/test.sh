#!/bin/bash
# Builds luaraft and runs its whole test suite. This is the command CI runs
# (.ci/run) and the one the README gives. On Debian 12 as root it first
# installs any missing build or test package.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh [--all | --sanitize | --normal] [--quick] [-R REGEX] [-- CTEST_ARGS...]

Builds with CMake and runs the ctest suite (busted specs, core purity, format).

  (no switch)   the whole suite, as CI runs it: same as --all
  --all         normal build (build/) and its tests, then the ASan+UBSan
                build (build-sanitize/) and its tests
  --normal      only the normal build (build/)
  --sanitize    only the sanitizer build (build-sanitize/, LUARAFT_SANITIZE=ON)
  --quick       export LUARAFT_SEEDS=200: random simulator specs run fewer seeds
  -R REGEX      only the ctest tests matching REGEX (e.g. -R spec_raft)
  -h, --help    this text

Anything after -- goes to ctest unchanged. LUARAFT_SEEDS, if set in the
environment, passes through to the specs.
EOF
}

mode=all
ctest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --all) mode=all ;;
        --normal) mode=normal ;;
        --sanitize) mode=sanitize ;;
        --quick) export LUARAFT_SEEDS=200 ;;
        -R)
            [ $# -ge 2 ] || { echo "test.sh: -R needs a regex" >&2; exit 2; }
            ctest_args+=(-R "$2")
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        --) shift; ctest_args+=("$@"); break ;;
        *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.."

section() {
    printf '\n==== %s ====\n' "$*"
}

# --- Packages -------------------------------------------------------------

packages=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libuv1-dev liblmdb-dev
    libisal-dev libsodium-dev lua-busted clang-format redis-tools redis-server python3-redis
    lua-socket libhiredis-dev libhttp-parser-dev lua-dkjson chromium chromium-driver
    clang libclang-rt-14-dev libfuse3-dev fuse3 iproute2 nftables faketime)

install_missing_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "test.sh: not a Debian system; make sure these are installed: ${packages[*]}"
        return
    fi
    local missing=() p
    for p in "${packages[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return

    section "Installing ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "test.sh: missing packages (${missing[*]}) and not root" >&2
            exit 1
        fi
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# --- Build and test one configuration ---------------------------------------

jobs=$(nproc 2>/dev/null || echo 2)

run_suite() { # name build-dir cmake-args...
    local name=$1 dir=$2
    shift 2

    section "Build ($name, $dir/)"
    # Configure only once: later builds re-run cmake by themselves when
    # CMakeLists.txt changes or a globbed source appears. A configure that
    # failed leaves a cache but no build system, so check for both.
    if [ ! -f "$dir/CMakeCache.txt" ] || { [ ! -f "$dir/Makefile" ] && [ ! -f "$dir/build.ninja" ]; }; then
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
    fi
    cmake --build "$dir" -j "$jobs"
    # The Node.js Redis clients spec/clients/ drives, locked, into $dir/npm.
    scripts/client-deps.sh "$dir"

    section "Test ($name${LUARAFT_SEEDS:+, LUARAFT_SEEDS=$LUARAFT_SEEDS})"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error "${ctest_args[@]}"
}

install_missing_packages

case "$mode" in
    normal) run_suite normal build ;;
    sanitize) run_suite sanitize build-sanitize -DLUARAFT_SANITIZE=ON ;;
    all)
        run_suite normal build
        run_suite sanitize build-sanitize -DLUARAFT_SANITIZE=ON
        ;;
esac

section "All tests passed ($mode)"
