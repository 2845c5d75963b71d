#!/bin/sh
# Builds the libFuzzer targets in fuzz/ with clang (ASan+UBSan) and runs each from its seed
# corpus. --smoke: LUARAFT_FUZZ_RUNS runs a target (default 20000); otherwise each target runs
# LUARAFT_FUZZ_SECONDS seconds (default 600). Prints executions and crashes per target; a
# crash input is written to fuzz/regressions/TARGET/. Exit status 1 if any target crashed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${LUARAFT_FUZZ_DIR:-$root/build-fuzz}
mode=long
[ "${1:-}" = "--smoke" ] && mode=smoke
mkdir -p "$out"
cc=${CC_FUZZ:-clang}
flags="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -I$root/src -I$root/fuzz"

# target: its sources besides fuzz/fuzz_TARGET.c
sources_of() {
    case "$1" in
    resp) echo src/client/resp.c src/util/buf.c src/util/assert.c ;;
    wire) echo src/peer/wire.c src/peer/wire_handshake.c src/util/buf.c src/util/assert.c src/util/crc32c.c -lisal ;;
    core) echo src/raft/*.c src/util/*.c -lisal ;;
    decode|script) echo $(cd "$root" && ls src/fsm/*.c | grep -v worker.c) src/command.c src/util/*.c \
        $(pkg-config --cflags --libs lua5.4) -lsodium -lm -lisal ;;
    snapfile) echo src/store/snapfile.c src/store/snapfile_dir.c src/store/script_identity.c \
        src/util/crc32c.c src/util/assert.c src/util/log.c src/util/crash_point.c -lisal ;;
    pattern) echo src/fsm/pattern.c $(pkg-config --cflags --libs lua5.4) ;;
    *) echo "fuzz.sh: no sources for $1" >&2; exit 2 ;;
    esac
}

# target: libFuzzer options of its own
options_of() {
    case "$1" in
    pattern) echo -timeout=10 ;; # the step budget bounds every input: a slow one is a bug
    script) echo -timeout=10 -max_len=4096 ;; # the budgets bound every input, as pattern's
    esac
}

failed=0
for f in "$root"/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c); t=${t#fuzz_}
    srcs=""
    for s in $(sources_of "$t"); do
        case "$s" in -*) srcs="$srcs $s" ;; *) srcs="$srcs $root/$s" ;; esac
    done
    $cc $flags "$f" $srcs -o "$out/fuzz_$t"
    work="$out/corpus_$t"; mkdir -p "$work" "$root/fuzz/regressions/$t"
    cp "$root"/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    if [ $mode = smoke ]; then lim="-runs=${LUARAFT_FUZZ_RUNS:-20000}"
    else lim="-max_total_time=${LUARAFT_FUZZ_SECONDS:-600}"; fi
    log="$out/fuzz_$t.log"
    rc=0
    "$out/fuzz_$t" $lim $(options_of "$t") -artifact_prefix="$root/fuzz/regressions/$t/" "$work" >"$log" 2>&1 || rc=$?
    execs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo "?")
    crashes=0
    [ $rc -ne 0 ] && crashes=1 && failed=1 && tail -30 "$log" >&2
    echo "fuzz $t: executions $execs crashes $crashes"
done
exit $failed
