# bench/compare_lib.sh: what bench/compare.sh runs for each system (sourced by it; it
# uses its $root, $build, $bench, $data, $results, $raw, $quick, $perf_wanted and n()).
# Every result is one line of $raw: "SYSTEM CASE key=value ...".

# --- Processes -------------------------------------------------------------------------
started=()
track() { started+=("$1"); }

# Stops every process this run started, by its pid: SIGTERM, up to 10 s to exit (a
# luaraft leader hands over first, within its bound), then SIGKILL.
stop_all() {
    local pid i
    [ ${#started[@]} -gt 0 ] || return 0
    for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in "${started[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${started[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
    started=()
}

emit() { # SYSTEM CASE KEY=VALUE...
    echo "$*" >>"$raw"
    echo "  $*"
}

# utime + stime of the processes and of their waited-for children (the snapshot child
# a luaraft node forks), fields 14 to 17 of /proc/PID/stat, in clock ticks.
cpu_ticks() {
    local sum=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        sum=$((sum + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 + $14 + $15 }')))
    done
    echo $sum
}
ticks_per_s=$(getconf CLK_TCK)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Ports: $base (47500, else the next block of 100 in 47000-47999) plus an offset a
# system: probes 90, luaraft 1-3 and 11-13, redis 20, etcd 31-33 and 41-43, canonical
# raft 51-53, Tarantool 61-63. They lie in Linux's ephemeral range (32768-60999), so a
# client connection may hold one for a while: a system that cannot listen returns 2 and
# compare.sh starts it again on the next block.
port_free() {
    local port
    for port in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "compare.sh: port $port on 127.0.0.1 is in use" >&2
            return 1
        fi
    done
}
wait_port() { # PORT SECONDS PID: 1 once PID has exited without listening
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "compare.sh: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# --- redis-benchmark -------------------------------------------------------------------
# rb SYSTEM CASE PORT "PIDS" REDIS-BENCHMARK-ARGS...: one run, with the CPU the server
# processes PIDS spent over it. p50 and p99 are redis-benchmark's summary; p999 is the
# first step of its percentile list at or past 99.9 % (its steps halve: 99.902 %).
rb() {
    local system=$1 case=$2 port=$3 pids=$4
    shift 4
    local c=1 p=1 args=("$@") k out c0 c1
    for ((k = 0; k + 1 < ${#args[@]}; k++)); do
        case "${args[k]}" in -c) c=${args[k + 1]} ;; -P) p=${args[k + 1]} ;; esac
    done
    c0=$(cpu_ticks $pids)
    out=$(redis-benchmark -h 127.0.0.1 -p "$port" "$@" 2>"$data/rb.err" | tr '\r' '\n') || {
        echo "compare.sh: redis-benchmark failed on $system: $(head -c 500 "$data/rb.err")" >&2
        return 1
    }
    c1=$(cpu_ticks $pids)
    emit "$system" "$case" "inflight=$((c * p))" "$(awk -v cpu="$(((c1 - c0)))" -v tck="$ticks_per_s" '
        /^[0-9.]+% <= / && !p999 && $1 + 0 >= 99.9 { p999 = $3 }
        /throughput summary:/ { rps = $3 }
        /^ +avg +min +p50/ { getline; p50 = $3; p99 = $5 }
        /requests completed in/ { ops = $1 }
        END { printf "ops=%d ops_per_s=%.0f p50_ms=%s p99_ms=%s p999_ms=%s cpu_s=%.2f",
              ops, rps, p50, p99, p999, cpu / tck }' <<<"$out")"
}

# The same SET runs for luaraft's leader and redis-server: 1 client, 50, 50 with -P 16,
# a sweep around it, 1 KiB values. rb_writes SYSTEM PORT "PIDS"
rb_writes() {
    local s=$1 port=$2 pids=$3 set=(-t set -r 100000 -d 3)
    rb "$s" set_c1 "$port" "$pids" "${set[@]}" -c 1 -P 1 -n "$(n c1)" &&
        rb "$s" set_c50 "$port" "$pids" "${set[@]}" -c 50 -P 1 -n "$(n c50)" &&
        rb "$s" set_c50_p16 "$port" "$pids" "${set[@]}" -c 50 -P 16 -n "$(n p16)" &&
        rb "$s" set_c50_p4 "$port" "$pids" "${set[@]}" -c 50 -P 4 -n "$(n p16)" &&
        rb "$s" set_c50_p64 "$port" "$pids" "${set[@]}" -c 50 -P 64 -n "$(n p16)" &&
        { [ "$quick" = 1 ] || rb "$s" set_c200_p16 "$port" "$pids" "${set[@]}" -c 200 -P 16 -n "$(n p16)"; } &&
        rb "$s" set1k_c50_p16 "$port" "$pids" -t set -r 100000 -d 1024 -c 50 -P 16 -n "$(n kib)"
}

# Resident memory per million keys: the server's VmRSS before and after loading distinct
# small keys (key:NNNNNNNNNNNN = "abc", redis-benchmark's key shape) through one
# pipelined connection. mem_run SYSTEM PORT PID
mem_run() {
    local s=$1 port=$2 pid=$3 keys before after dbsize
    local chunk=10000 from errors=0
    keys=$(n keys)
    before=$(rss_kb "$pid")
    # In pipes of 10,000 SETs: with the machine's load average at 10, one pipe of a
    # million (45 MB) saw the leader's loop thread stall for seconds and lose its
    # leadership, which left the pipe's writes -UNKNOWN (see bench/README.md).
    for ((from = 0; from < keys; from += chunk)); do
        awk -v a=$from -v b=$((from + chunk)) 'BEGIN { for (i = a; i < b; i++)
            printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nabc\r\n", i }' |
            redis-cli -h 127.0.0.1 -p "$port" --pipe >"$data/pipe.out" 2>&1 || return 1
        errors=$((errors + $(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$data/pipe.out" | tail -1)))
    done
    dbsize=$(redis-cli -h 127.0.0.1 -p "$port" DBSIZE)
    after=$(rss_kb "$pid")
    emit "$s" rss keys="$dbsize" errors=$errors rss_before_kb="$before" rss_after_kb="$after" \
        "mb_per_million=$(awk -v a="$after" -v b="$before" -v k="$dbsize" 'BEGIN { printf "%.1f", (a - b) / 1024 * 1e6 / k }')"
}

# --- The machine's limits --------------------------------------------------------------
run_probes() {
    local count=2000 line
    [ "$quick" = 1 ] && count=300
    mkdir -p "$data/probes"
    {
        "$bench/probes" fsync "$data/probes" $count
        "$bench/probes" lmdb "$data/probes/lmdb" $count
        "$bench/probes" rtt $((base + 90)) $((count * 10))
    } >"$data/probes/out"
    while read -r name line; do
        emit probe "${name#probe.}" $line
    done <"$data/probes/out"
}

# --- luaraft ---------------------------------------------------------------------------
# Starts 3 nodes of examples/kv.lua with the defaults that ship; sets lr_pids (node i's
# pid at i - 1) and lr_leader (the id of the node elected).
# lr_args: more options for every node (the scale run's), none by default.
lr_args=()
# start_node I DIR (--cluster MEMBERS | --join ADDR): node I, its data in DIR/nI; its pid
# goes to lr_pids[I - 1]. The log is appended to, so a restart keeps the earlier lines.
start_node() {
    local i=$1 dir=$2
    shift 2
    "$build/luaraft" node --id "$i" --data "$dir/n$i" --listen 127.0.0.1:$((base + i)) \
        --raft 127.0.0.1:$((base + 10 + i)) "$@" ${lr_args[@]+"${lr_args[@]}"} \
        "$root/examples/kv.lua" 2>>"$dir/n$i.log" &
    lr_pids[i - 1]=$!
    track $!
}

start_luaraft() { # NAME: its data and logs in $data/NAME
    local i members="" try dir=$data/$1
    lr_pids=() lr_leader=""
    port_free $((base + 1)) $((base + 2)) $((base + 3)) $((base + 11)) $((base + 12)) $((base + 13)) ||
        return 2
    for i in 1 2 3; do members+="${members:+,}$i=127.0.0.1:$((base + 10 + i))"; done
    rm -rf "$dir" && mkdir -p "$dir"
    for i in 1 2 3; do start_node $i "$dir" --cluster "$members"; done
    for i in 1 2 3; do wait_port $((base + i)) 30 "${lr_pids[i - 1]}" || return 2; done
    for ((try = 0; try < 300; try++)); do
        for i in 1 2 3; do
            redis-cli -p $((base + i)) --raw RAFT.INFO 2>/dev/null | grep -q '^role:leader' && lr_leader=$i
        done
        [ -z "$lr_leader" ] || break
        sleep 0.1
    done
    [ -n "$lr_leader" ] || { echo "compare.sh: no luaraft leader in 30 s" >&2; return 1; }
    until [ "$(redis-cli -p $((base + lr_leader)) SET warm up 2>/dev/null)" = OK ]; do sleep 0.1; done
}

run_luaraft() {
    start_luaraft luaraft || return $?
    local lport=$((base + lr_leader)) fport=$((base + lr_leader % 3 + 1)) all="${lr_pids[*]}"
    rb_writes luaraft $lport "$all" || return 1
    rb luaraft get_leader_c50_p16 $lport "$all" -t get -r 100000 -c 50 -P 16 -n "$(n get)" || return 1
    rb luaraft get_follower_c50_p16 $fport "$all" -t get -r 100000 -c 50 -P 16 -n "$(n get)" ||
        return 1
    [ "$perf_wanted" = 0 ] || profile_leader $lport "${lr_pids[lr_leader - 1]}"
    # Memory on a new cluster: what the keys cost, not what the runs above left behind
    # (freed Lua objects, the log kept in memory).
    stop_all
    start_luaraft luaraft-memory || return $?
    mem_run luaraft $((base + lr_leader)) "${lr_pids[lr_leader - 1]}"
}

# perf record -g of the leader for 5 s of SET at 50 clients -P 16; the top entries by
# thread and by function (self time) go to perf-top.txt.
profile_leader() {
    local port=$1 pid=$2 load
    command -v perf >/dev/null && perf --version >/dev/null 2>&1 || {
        echo "  (no usable perf: no profile)"
        return 0
    }
    redis-benchmark -h 127.0.0.1 -p "$port" -t set -r 100000 -d 3 -c 50 -P 16 -n 100000000 \
        >/dev/null 2>&1 &
    load=$!
    track $load
    sleep 1
    perf record -q -g -p "$pid" -o "$data/perf.data" -- sleep 5 2>"$data/perf.err" || true
    kill "$load" 2>/dev/null || true
    {
        echo "# perf record -g -p LEADER for 5 s of redis-benchmark -t set -c 50 -P 16"
        echo "# the node's threads: $(ls "/proc/$pid/task" | tr '\n' ' ')(any other id is a"
        echo "# forked snapshot child); liblua5.4 has no symbols in Debian, so its entries are addresses"
        echo "## by thread"
        perf report -i "$data/perf.data" --stdio --no-children --sort pid -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -12
        echo "## by function (self)"
        perf report -i "$data/perf.data" --stdio --no-children --sort pid,dso,sym -g none \
            --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
    } >"$results/perf-top.txt"
    perf_done=1
    echo "  profile: $results/perf-top.txt"
}

# --- redis-server ----------------------------------------------------------------------
start_redis() { # sets redis_pid
    port_free $((base + 20)) || return 2
    rm -rf "$data/redis" && mkdir -p "$data/redis"
    redis-server --port $((base + 20)) --bind 127.0.0.1 --dir "$data/redis" --save "" \
        --appendonly yes --appendfsync always --daemonize no --logfile "$data/redis/redis.log" &
    redis_pid=$!
    track $redis_pid
    wait_port $((base + 20)) 30 $redis_pid || return 2
}

run_redis() {
    start_redis || return $?
    rb_writes redis $((base + 20)) $redis_pid || return 1
    rb redis get_c50_p16 $((base + 20)) $redis_pid -t get -r 100000 -c 50 -P 16 -n "$(n get)" ||
        return 1
    stop_all
    start_redis || return $?
    mem_run redis $((base + 20)) $redis_pid
}

# --- etcd ------------------------------------------------------------------------------
run_etcd() {
    local i members="" pids=() eps="" leader="" phases line e=$(n etcd)
    port_free $((base + 31)) $((base + 32)) $((base + 33)) $((base + 41)) $((base + 42)) $((base + 43)) || return 2
    for i in 1 2 3; do members+="${members:+,}m$i=http://127.0.0.1:$((base + 40 + i))"; done
    rm -rf "$data/etcd" && mkdir -p "$data/etcd"
    for i in 1 2 3; do
        etcd --name m$i --data-dir "$data/etcd/m$i" \
            --listen-client-urls http://127.0.0.1:$((base + 30 + i)) \
            --advertise-client-urls http://127.0.0.1:$((base + 30 + i)) \
            --listen-peer-urls http://127.0.0.1:$((base + 40 + i)) \
            --initial-advertise-peer-urls http://127.0.0.1:$((base + 40 + i)) \
            --initial-cluster "$members" --initial-cluster-state new \
            --initial-cluster-token luaraft-bench --logger zap --log-outputs "$data/etcd/m$i.log" >/dev/null 2>&1 &
        pids+=($!)
        track $!
        eps+="${eps:+,}127.0.0.1:$((base + 30 + i))"
    done
    for i in 1 2 3; do wait_port $((base + 30 + i)) 30 "${pids[i - 1]}" || return 2; done
    local try
    for ((try = 0; try < 100; try++)); do
        # endpoint status, simple form: ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, ...
        leader=$(ETCDCTL_API=3 etcdctl --endpoints="$eps" endpoint status 2>/dev/null |
            awk -F', ' '$5 == "true" { print $1 }')
        [ -z "$leader" ] || break
        sleep 0.2
    done
    [ -n "$leader" ] || { echo "compare.sh: no etcd leader" >&2; return 1; }
    # 1, 50, 800 clients (luaraft's 50 clients -P 16), and 256 and 2000 for its peak.
    phases="1:$((e / 10)),50:$e,800:$((e * 2)),256:$((e * 2)),2000:$((e * 2))"
    "$bench/etcd_load" -endpoint "$leader" -pids "$(IFS=,; echo "${pids[*]}")" -phases "$phases" \
        >"$data/etcd/load.out" || { echo "compare.sh: etcd_load failed" >&2; return 1; }
    while read -r line; do
        set -- $line
        emit etcd "set_c${1#inflight=}" "$@"
    done <"$data/etcd/load.out"
}

# --- canonical raft --------------------------------------------------------------------
run_raft() {
    local i out=$data/raft/out r=$(n raft) line pids=() pid
    port_free $((base + 51)) $((base + 52)) $((base + 53)) || return 2
    rm -rf "$data/raft" && mkdir -p "$data/raft"/{1,2,3}
    # window:count:bytes; 1, 50, 800 in flight as the redis-benchmark runs, a sweep for
    # its peak, and 1 KiB entries at 800.
    local phases=(1:$((r / 40)):8 50:$((r / 2)):8 800:$r:8 256:$r:8 2048:$r:8 800:$((r / 2)):1024)
    for i in 1 2 3; do
        "$bench/raft_harness" $i 3 $((base + 50)) "$data/raft" "$out" "${phases[@]}" 2>"$data/raft/log$i" &
        pids+=($!)
        track $!
    done
    for ((i = 0; i < 1800; i++)); do
        grep -qx done "$out" 2>/dev/null && break
        # A server that exits before the leader is done could not listen (or crashed);
        # the leader itself exits once it has written "done".
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2>/dev/null || grep -qx done "$out" || return 2
        done
        sleep 0.1
    done
    grep -qx done "$out" 2>/dev/null || { echo "compare.sh: canonical raft did not finish" >&2; return 1; }
    while read -r line; do
        [ "$line" = done ] && continue
        set -- $line
        local cs=set
        [ "$2" = bytes=1024 ] && cs=set1k
        emit raft "${cs}_w${1#inflight=}" "$@"
    done <"$out"
}

# --- Tarantool -------------------------------------------------------------------------
run_tarantool() {
    local i pids=() t=$(n tnt) line space=${BENCH_TARANTOOL_SPACE:-async}
    port_free $((base + 61)) $((base + 62)) $((base + 63)) || return 2
    rm -rf "$data/tnt"
    for i in 1 2 3; do
        mkdir -p "$data/tnt/i$i"
        tarantool "$root/bench/tarantool/node.lua" $i 3 $((base + 60)) "$data/tnt/i$i" \
            >"$data/tnt/i$i/stdout" 2>&1 &
        pids+=($!)
        track $!
    done
    for i in 1 2 3; do wait_port $((base + 60 + i)) 60 "${pids[i - 1]}" || return 2; done
    local ready=0
    for ((i = 0; i < 150 && ready == 0; i++)); do
        tarantool -e "
            local c = require('net.box').connect('127.0.0.1:$((base + 61))')
            local ok = c:is_connected() and c:eval([[
                if box.space.sync == nil then return false end
                local following = 0
                for _, r in pairs(box.info.replication) do
                    if r.downstream and r.downstream.status == 'follow' then
                        following = following + 1
                    end
                end
                return following >= 2 ]])
            os.exit(ok and 0 or 1)" 2>/dev/null && ready=1 || sleep 0.2
    done
    [ $ready = 1 ] || { echo "compare.sh: the Tarantool replica set did not form" >&2; return 1; }
    timeout 600 tarantool "$root/bench/tarantool/load.lua" 127.0.0.1:$((base + 61)) "$space" \
        "$(IFS=,; echo "${pids[*]}")" 1:$((t / 30)) 50:$t 800:$t 256:$t 1600:$t >"$data/tnt/load.out" ||
        { echo "compare.sh: the Tarantool load failed (space $space)" >&2; return 1; }
    while read -r line; do
        set -- $line
        emit tarantool "set_c${1#inflight=}" "$@" space="$space"
    done <"$data/tnt/load.out"
}
