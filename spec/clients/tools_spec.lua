-- redis-benchmark and redis-cli's bulk modes against a real 3-node cluster of
-- examples/kv.lua, and expiry that happens with no writes to carry it.
--
-- What it catches: a redis-benchmark run that stalls or ends early (a reply it waits
-- for and never gets); redis-cli --pipe errors or a lost ECHO; --scan missing keys; a key
-- with a deadline that stays readable on some node when nothing else is written.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

-- The lines of redis-benchmark 7.0's default suite (with -q).
local BENCH_TESTS = {
    "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP", "RPOP",
    "SADD", "HSET", "SPOP", "ZADD", "ZPOPMIN", "LPUSH (needed to benchmark LRANGE)",
    "LRANGE_100 (first 100 elements)", "LRANGE_300 (first 300 elements)",
    "LRANGE_500 (first 500 elements)", "LRANGE_600 (first 600 elements)", "MSET (10 keys)",
}

describe("Redis tools", function()
    local env = S.shared_cluster(setup, teardown)

    it("redis-benchmark runs its whole default suite to the end", function()
        local c, leader, follower = env.c, env.leader, env.follower
        for _, node in ipairs({ leader, follower }) do
            local out, ok = S.run("redis-benchmark -p " .. c:client_port(node)
                .. " -n 20 -c 2 -q", 240)
            assert(ok, "redis-benchmark failed:\n" .. out)
            for _, name in ipairs(BENCH_TESTS) do
                local line = out:gsub("\r", "\n"):match("\n ?" .. name:gsub("%p", "%%%0")
                    .. ": [%w.]+ requests per second")
                    or out:match("^" .. name:gsub("%p", "%%%0") .. ": [%w.]+ requests per second")
                assert(line, "no line for " .. name .. " in:\n" .. out)
            end
        end
    end)

    it("redis-cli --pipe sends everything with no errors", function()
        local c, leader, follower = env.c, env.leader, env.follower
        local lines = {}
        for i = 1, 500 do
            lines[#lines + 1] = ("*3\r\n$3\r\nSET\r\n$%d\r\npipe:%d\r\n$%d\r\n%d\r\n"):format(
                #("pipe:" .. i), i, #tostring(i), i)
        end
        local out, ok = S.redis_cli(c:client_port(follower), { "--pipe" }, table.concat(lines))
        assert(ok, "redis-cli --pipe failed:\n" .. out)
        assert.truthy(out:find("errors: 0, replies: 500", 1, true), out)
        assert.equal("250", c:rc(leader, "GET", "pipe:250"))
    end)

    it("redis-cli --scan lists every key", function()
        local c, leader, follower = env.c, env.leader, env.follower
        local want = {}
        for i = 1, 60 do
            local k = "scan:" .. i
            want[#want + 1] = k
            assert.equal("OK", c:rc(leader, "SET", k, "x"))
        end
        table.sort(want)
        local out, ok = S.redis_cli(c:client_port(follower), { "--scan", "--pattern", "scan:*" })
        assert(ok, out)
        local got = {}
        for k in out:gmatch("[^\n]+") do
            got[#got + 1] = k
        end
        table.sort(got)
        assert.same(want, got)
    end)

    it("redis-cli --bigkeys and --stat read the keyspace and INFO", function()
        local c, follower = env.c, env.follower
        assert.equal("OK", c:rc(env.leader, "SET", "big:k", ("x"):rep(1000)))
        local out, ok = S.redis_cli(c:client_port(follower), { "--bigkeys" })
        assert(ok, "redis-cli --bigkeys failed:\n" .. out)
        assert.truthy(out:find("Biggest string found '\"big:k\"' has 1000 bytes", 1, true), out)
        -- --stat runs until stopped: samples, then the time limit ends it (line-buffered,
        -- so that what it printed is not lost with it).
        out = S.run("stdbuf -oL redis-cli -p " .. c:client_port(follower) .. " --stat -i 0.5", 2)
        assert.truthy(out:find("keys       mem      clients blocked requests", 1, true), out)
        local keys, clients = out:match("\n(%d+)%s+%S+%s+(%d+)%s+0%s+%d+")
        assert(keys and tonumber(keys) > 0 and tonumber(clients) >= 1, out)
    end)

    it("expires a key on every node with no other writes", function()
        local c, leader = env.c, env.leader
        assert.equal("OK", c:rc(leader, "SET", "ex:k", "v", "PX", "300"))
        for i = 1, c.n do
            S.wait(5, "ex:k gone on node " .. i, function()
                return c:rc(i, "GET", "ex:k") == ""
            end)
            assert.equal("-2", c:rc(i, "TTL", "ex:k"))
        end
    end)
end)
