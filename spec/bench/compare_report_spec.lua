-- bench/compare_report.lua: the table and the target ratios of bench/compare.sh, from
-- hand-written raw lines whose ratios are known, so a wrong pick of a case (the peak, the
-- 800-in-flight row of each system) or a wrong formula shows as a wrong number.

local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/bench/[^/]*$") or "."

local RAW = [[
machine nproc=2 cpu="Test CPU @ 1GHz" kernel=6.1 date=2026-12-04T20:00Z quick=0 build_type=RelWithDebInfo
load_before 1.00 2.00 3.00
probe fdatasync_4k_append ops_per_s=5000 p50_us=150.0 p99_us=300.0 p999_us=400.0
probe fdatasync_4k_overwrite ops_per_s=9000 p50_us=90.0 p99_us=150.0 p999_us=200.0
probe lmdb_commit ops_per_s=3000 p50_us=300.0 p99_us=500.0 p999_us=700.0
probe loopback_rtt ops_per_s=20000 p50_us=50.0 p99_us=80.0 p999_us=100.0
luaraft rss keys=1000000 rss_before_kb=10000 rss_after_kb=300000 mb_per_million=283.2
luaraft set_c1 inflight=1 ops=5000 ops_per_s=2000 p50_ms=0.450 p99_ms=1.2 p999_ms=3.0 cpu_s=1.00
luaraft set_c50 inflight=50 ops=100000 ops_per_s=30000 p50_ms=1.5 p99_ms=4 p999_ms=9 cpu_s=5.00
luaraft set_c50_p16 inflight=800 ops=500000 ops_per_s=100000 p50_ms=8 p99_ms=20 p999_ms=40 cpu_s=10.00
luaraft set_c50_p64 inflight=3200 ops=500000 ops_per_s=120000 p50_ms=30 p99_ms=60 p999_ms=80 cpu_s=9.00
luaraft set1k_c50_p16 inflight=800 ops=200000 ops_per_s=900000 p50_ms=9 p99_ms=20 p999_ms=30 cpu_s=4.00
luaraft get_leader_c50_p16 inflight=800 ops=1000000 ops_per_s=400000 p50_ms=2 p99_ms=4 p999_ms=6 cpu_s=3.00
luaraft get_follower_c50_p16 inflight=800 ops=1000000 ops_per_s=250000 p50_ms=3 p99_ms=6 p999_ms=9 cpu_s=3.00
redis rss keys=1000000 rss_before_kb=5000 rss_after_kb=100000 mb_per_million=92.8
redis set_c50_p16 inflight=800 ops=500000 ops_per_s=400000 p50_ms=1.7 p99_ms=2.6 p999_ms=3 cpu_s=2.00
etcd set_c256 inflight=256 ops=100000 errors=0 ops_per_s=12000 p50_ms=20 p99_ms=40 p999_ms=60 cpu_s=30.00
etcd set_c800 inflight=800 ops=100000 errors=3 ops_per_s=8000 p50_ms=90 p99_ms=200 p999_ms=300 cpu_s=30.00
raft set_w256 inflight=256 bytes=8 ops=200000 errors=0 ops_per_s=40000 p50_ms=6 p99_ms=30 p999_ms=50 cpu_s=4.00
raft set1k_w800 inflight=800 bytes=1024 ops=100000 errors=0 ops_per_s=990000 p50_ms=1 p99_ms=2 p999_ms=3 cpu_s=2.00
scale rss keys=1000001 errors=0 rss_before_kb=5000 rss_after_kb=400000 mb_per_million=385.7
scale snapshot_idle keys=1000000 snapshot_s=1.500
scale steady ops=100000 p50_ms=2.0 p99_ms=8.0 p999_ms=20.0 max_ms=30.0 errors=0 ops_per_s=20000
scale during ops=30000 p50_ms=3.0 p99_ms=20.0 p999_ms=40.0 max_ms=50.0 snapshot_s=1.800
scale restart keys=1000000 entries_replayed=43610 serving_s=1.250
scale join keys=1000000 serving_s=4.000
load_after 4.00 5.00 6.00
]]

local function run_report(raw)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/raw.txt", "w"))
    f:write(raw)
    f:close()
    local p = assert(io.popen(string.format("lua5.4 %s/bench/compare_report.lua %s/raw.txt %s/plot.dat",
        root, dir, dir)))
    local md = p:read("a")
    assert(p:close(), "compare_report.lua failed")
    local dat = assert(io.open(dir .. "/plot.dat")):read("a")
    os.execute("rm -rf " .. dir)
    return md, dat
end

-- The target row whose text contains TEXT: its ratio and verdict.
local function target(md, text)
    for line in md:gmatch("[^\n]+") do
        if line:find(text, 1, true) then
            local ratio, met = line:match("| ([%d.?]+) | [^|]+ | ([^|]+) |$")
            return ratio, met
        end
    end
end

describe("bench/compare_report.lua", function()
    local md, dat = run_report(RAW)

    it("quotes the machine and the load so a reader knows how noisy the run was", function()
        assert.truthy(md:find("2 cores, Test CPU @ 1GHz, kernel 6.1", 1, true))
        assert.truthy(md:find("load average before 1.00 2.00 3.00, after 4.00 5.00 6.00", 1, true))
    end)

    it("takes each system's peak among its 3-byte SET runs only", function()
        -- luaraft's 800-in-flight 100,000 against etcd's best (256 clients, 12,000), not
        -- its 800-client row; and against canonical raft's 40,000, not its 1 KiB run.
        assert.same({ "8.33", "**no**" }, { target(md, "luaraft / etcd at its peak") })
        assert.same({ "2.50", "yes" }, { target(md, "luaraft / canonical raft at its peak") })
        assert.truthy(md:find("120,000/s<br>30 / 60 / 80 ms<br>at 3200", 1, true))
    end)

    it("computes every target of issue 12 from the same run", function()
        assert.same({ "0.25", "**no**" }, { target(md, "luaraft / redis-server") })
        -- 0.45 ms against 0.3 + 2 * 0.05 = 0.4 ms
        assert.same({ "1.12", "yes" }, { target(md, "SET 1 client: luaraft p50 / (LMDB commit + 2 round trips = 0.40 ms)") })
        assert.same({ "2.50", "yes" }, { target(md, "luaraft / etcd at 256 clients") })
        assert.same({ "4.00", "yes" }, { target(md, "GET / SET, leader") })
        assert.same({ "2.50", "**no**" }, { target(md, "GET / SET, a follower") })
        assert.same({ "3.05", "**no**" }, { target(md, "memory per 1M small keys: luaraft") })
    end)

    it("quotes the scale run: the snapshot's effect on p99, restart and join times", function()
        -- 20 ms during the snapshot against 8 steady
        assert.same({ "2.50", "**no**" }, { target(md, "SET p99 during a snapshot / steady") })
        assert.same({ "1.25", "yes" }, { target(md, "restart to serving, seconds") })
        assert.truthy(md:find("A state of 1,000,000 keys", 1, true))
        assert.truthy(md:find("| RAFT.SNAPSHOT on an idle follower | 1.50 s |", 1, true))
        assert.truthy(md:find("while the leader takes its snapshot | 3.00 / 20 / 40 ms (max 50), 30,000 writes |", 1, true))
        assert.truthy(md:find("43,610 entries replayed) | 1.25 s |", 1, true))
        assert.truthy(md:find("(InstallSnapshot) | 4.00 s |", 1, true))
    end)

    it("gives CPU per 1,000 writes and the errors a run had", function()
        assert.truthy(md:find("| server CPU s per 1,000 writes, 800 in flight | 0.020 | 0.004 | 0.300 |", 1, true))
        assert.truthy(md:find("8,000/s<br>90 / 200 / 300 ms<br>3 errors", 1, true))
    end)

    it("writes the plot's data: one row a workload, zero where a system has no run", function()
        assert.truthy(dat:find('\n"800 in flight" 100000 400000 8000 0 0\n', 1, true))
        assert.truthy(dat:find('\n"at its peak" 120000 400000 12000 40000 0\n', 1, true))
    end)

    it("leaves a question mark, not an error, where a system did not run", function()
        local only_luaraft = RAW:gsub("\n[ert][a-z]* [^\n]*", "")
        local md2 = run_report(only_luaraft)
        assert.same({ "?", "?" }, { target(md2, "luaraft / etcd at its peak") })
    end)
end)
