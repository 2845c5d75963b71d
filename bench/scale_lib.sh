# bench/scale_lib.sh: the "scale" run of bench/compare.sh (issue 12, part 3), sourced by
# it after compare_lib.sh. Three nodes of examples/kv.lua holding a million small keys
# (the memory run's, key:NNNNNNNNNNNN = "abc"), snapshots only on RAFT.SNAPSHOT so each is
# taken when it is measured, then:
#   snapshot_idle  RAFT.SNAPSHOT's round trip on a follower with no load
#   steady/during  write latency of 50 clients (one SET in flight each) before and while
#                  the leader takes a snapshot (bench/scale.c latency)
#   restart        a follower killed (-9) and started again: from its start until it
#                  answers a GET of a write made just before the kill, having restored
#                  its snapshot and replayed the log written after it
#   join           a new node (--join, RAFT.ADD): from RAFT.ADD until it answers the same
#                  GET, the state having come to it by InstallSnapshot
# Lines "scale CASE key=value ...", read by compare_report.lua.

# now_ns: CLOCK_REALTIME in nanoseconds, what `scale wait` measures from.
now_ns() { date +%s%N; }

# One command to node PORT, retried while it answers TRYAGAIN (a change under way, a
# leader not settled); prints the last answer.
retry_tryagain() {
    local port=$1 reply try
    shift
    for ((try = 0; try < 300; try++)); do
        reply=$(redis-cli -p "$port" "$@" 2>&1)
        case "$reply" in TRYAGAIN*) sleep 0.1 ;; *) break ;; esac
    done
    echo "$reply"
}

run_scale() {
    local status=0
    lr_args=(--snapshot-entries 0 --snapshot-bytes 0)
    port_free $((base + 4)) $((base + 14)) || status=2
    [ $status != 0 ] || start_luaraft scale || status=$?
    [ $status != 0 ] || scale_steps || status=$?
    lr_args=()
    return $status
}

scale_steps() {
    local dir=$data/scale keys lport f fport t0 mark out secs=5 info replay reply line
    keys=$(n keys)
    [ "$quick" = 1 ] && secs=2
    lport=$((base + lr_leader))
    f=$((lr_leader % 3 + 1))
    fport=$((base + f))
    echo "  loading $keys keys"
    mem_run scale "$lport" "${lr_pids[lr_leader - 1]}" || return 1

    t0=$(now_ns)
    reply=$(redis-cli -p "$fport" RAFT.SNAPSHOT)
    case "$reply" in "OK snapshot"*) ;; *) echo "compare.sh: RAFT.SNAPSHOT: $reply" >&2; return 1 ;; esac
    emit scale snapshot_idle keys="$keys" "snapshot_s=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"

    "$bench/scale" latency "$lport" 50 "$secs" "$keys" >"$dir/latency.out" || return 1
    while read -r line; do emit scale $line; done <"$dir/latency.out"

    # The write the restarted and the new node must serve, made after everything else.
    mark=$(now_ns)
    [ "$(redis-cli -p "$lport" SET scale:mark "$mark")" = OK ] || return 1
    until [ "$(redis-cli -p "$fport" RAFT.INFO | tr -d '\r' | sed -n 's/^applied_index://p')" -ge \
        "$(redis-cli -p "$lport" RAFT.INFO | tr -d '\r' | sed -n 's/^commit_index://p')" ]; do
        sleep 0.05
    done
    info=$(redis-cli -p "$fport" RAFT.INFO | tr -d '\r')
    replay=$(($(sed -n 's/^applied_index://p' <<<"$info") - $(sed -n 's/^snapshot_index://p' <<<"$info")))
    kill -KILL "${lr_pids[f - 1]}"
    wait "${lr_pids[f - 1]}" 2>/dev/null || true
    t0=$(now_ns)
    start_node "$f" "$dir"
    out=$("$bench/scale" wait "$fport" scale:mark "$mark" "$t0" 120) || return 1
    emit scale restart keys="$keys" entries_replayed=$replay "$out"

    start_node 4 "$dir" --join 127.0.0.1:$lport
    wait_port $((base + 4)) 30 "${lr_pids[3]}" || return 1
    t0=$(now_ns)
    reply=$(retry_tryagain "$lport" RAFT.ADD 4 127.0.0.1:$((base + 14)) 127.0.0.1:$((base + 4)))
    [ "$reply" = OK ] || { echo "compare.sh: RAFT.ADD 4: $reply" >&2; return 1; }
    out=$("$bench/scale" wait $((base + 4)) scale:mark "$mark" "$t0" 300) || return 1
    emit scale join keys="$keys" "$out"
}
