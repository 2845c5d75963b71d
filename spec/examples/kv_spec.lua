-- examples/kv.lua through luaraft.harness: what only kv.lua can show, beside the
-- comparison with a real Redis in kv_redis_spec.lua: expiry by the log's clock (reads,
-- writes, the bounded removal per entry, ticks, INFO's keyspace), SCAN's guarantee under
-- concurrent writes, random choices that depend on the log only, snapshots of every type,
-- transactions, and the numbers INCRBYFLOAT prints.
local harness = require("luaraft.harness")

local null = harness.null

-- How often s occurs in bytes (plain).
local function occurrences(bytes, s)
    local n, pos = 0, 1
    while true do
        local i = bytes:find(s, pos, true)
        if i == nil then
            return n
        end
        n, pos = n + 1, i + #s
    end
end

-- Every key a whole SCAN-family iteration returns, asserting each comes once; between
-- two pages between(cursor) may write. cmd has "0" where the cursor goes.
local function iterate(m, cmd, between)
    local pos = cmd[1] == "SCAN" and 2 or 3
    local step = (cmd[1] == "HSCAN" or cmd[1] == "ZSCAN") and 2 or 1
    local seen, cursor, pages = {}, "0", 0
    repeat
        local c = { table.unpack(cmd) }
        c[pos] = cursor
        local reply = m:query(c)
        assert.is_string(reply[1])
        assert.truthy(reply[1]:match("^%d+$"), reply[1])
        for i = 1, #reply[2], step do
            local k = reply[2][i]
            assert.is_nil(seen[k], "returned twice: " .. k)
            seen[k] = true
        end
        cursor, pages = reply[1], pages + 1
        if between and cursor ~= "0" then
            between(cursor, pages)
        end
        assert.is_true(pages < 100000)
    until cursor == "0"
    return seen, pages
end

describe("examples/kv.lua", function()
    local m
    before_each(function()
        -- A frozen clock: time moves only by m:advance, so deadlines are exact.
        m = harness.load("examples/kv.lua", { step_ms = 0 })
    end)
    after_each(function()
        m:close()
    end)

    describe("expiry by the log's clock", function()
        it("a key is absent for every command from its deadline on", function()
            m:apply({ "SET", "s", "v", "PX", "1500" })
            m:apply({ "HSET", "h", "f", "v" })
            m:apply({ "PEXPIRE", "h", "1500" })
            m:apply({ "SET", "keep", "1" })
            assert.are.equal(2, m:query({ "TTL", "s" })) -- 1.5 s rounds to 2, as in Redis
            m:advance(1499)
            assert.are.equal(1, m:query({ "PTTL", "s" }))
            assert.are.equal(3, m:query({ "DBSIZE" }))
            m:advance(1)
            -- No entry was applied since: a read decides by its own clock all the same.
            for _, q in ipairs({ { "GET", "s" }, { "HGET", "h", "f" }, { "HGETALL", "h" },
                { "GETRANGE", "s", "0", "-1" }, { "MGET", "s", "h" } }) do
                local r = m:query(q)
                assert.is_true(r == null or r == "" or (type(r) == "table" and (#r == 0
                    or (r[1] == null and r[2] == null)) or (r.map and #r.map == 0)), q[1])
            end
            assert.are.equal(-2, m:query({ "TTL", "s" }))
            assert.are.equal(-2, m:query({ "PEXPIRETIME", "h" }))
            assert.are.equal(0, m:query({ "EXISTS", "s", "h" }))
            assert.are.same({ ok = "none" }, m:query({ "TYPE", "h" }))
            assert.are.equal(1, m:query({ "DBSIZE" }))
            assert.are.same({ "keep" }, m:query({ "KEYS", "*" }))
            assert.are.same({ "0", { "keep" } }, m:query({ "SCAN", "0" }))
            assert.are.equal("keep", m:query({ "RANDOMKEY" }))
            -- INFO's keyspace is a read at the last applied entry's time: [keys, expires].
            assert.are.same({ 3, 2 }, m:keyspace())
            m:tick()
            assert.are.same({ 1, 0 }, m:keyspace())
            -- Writes see it absent too.
            assert.are.same({ ok = "OK" }, m:apply({ "SET", "s", "new", "NX" }))
            assert.are.equal(-1, m:query({ "TTL", "s" }))
            assert.are.equal(1, m:apply({ "HSETNX", "h", "g", "1" }))
            assert.are.same({ map = { "g", "1" } }, m:query({ "HGETALL", "h" }))
        end)

        it("EXPIRE with options, TTL, PTTL, EXPIRETIME and PERSIST", function()
            m:apply({ "SET", "k", "v" })
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            assert.are.equal(-1, m:query({ "EXPIRETIME", "k" }))
            assert.are.equal(0, m:apply({ "EXPIRE", "k", "5", "XX" }))
            assert.are.equal(1, m:apply({ "EXPIRE", "k", "5", "NX" }))
            assert.are.equal(5000, m:query({ "PTTL", "k" }))
            assert.are.equal(0, m:apply({ "EXPIRE", "k", "4", "GT" }))
            assert.are.equal(1, m:apply({ "EXPIRE", "k", "6", "GT" }))
            assert.are.equal(1, m:apply({ "PEXPIRE", "k", "200", "LT" }))
            assert.are.equal(m.time_ms + 200, m:query({ "PEXPIRETIME", "k" }))
            assert.are.equal((m.time_ms + 200 + 500) // 1000, m:query({ "EXPIRETIME", "k" }))
            assert.are.equal(1, m:apply({ "PERSIST", "k" }))
            assert.are.equal(0, m:apply({ "PERSIST", "k" }))
            assert.are.equal(1, m:apply({ "EXPIREAT", "k", tostring(m.time_ms // 1000 - 1) }))
            assert.are.equal(0, m:query({ "EXISTS", "k" })) -- a deadline in the past deletes
        end)

        it("a plain SET clears the expiry; INCR, APPEND, SETRANGE, CAS and KEEPTTL keep it",
            function()
            m:apply({ "SET", "k", "1", "EX", "10" })
            for _, c in ipairs({ { "INCR", "k" }, { "INCRBYFLOAT", "k", "1.5" },
                { "APPEND", "k", "0" }, { "SETRANGE", "k", "0", "4" }, { "CAS", "k", "4.50", "x" },
                { "SET", "k", "y", "KEEPTTL" }, { "HSET", "other", "f", "v" } }) do
                m:apply(c)
                assert.are.equal(10, m:query({ "TTL", "k" }), c[1])
            end
            assert.are.equal("y", m:query({ "GET", "k" }))
            m:apply({ "SET", "k", "z" })
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            m:apply({ "SET", "k", "1", "EX", "10" })
            m:apply({ "GETSET", "k", "2" })
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            m:apply({ "SET", "a", "1", "EX", "10" })
            m:apply({ "RENAME", "a", "b" })
            assert.are.equal(10, m:query({ "TTL", "b" }))
            m:apply({ "COPY", "b", "c" })
            assert.are.equal(10, m:query({ "TTL", "c" }))
        end)

        it("each entry removes at most 20 expired keys, a tick up to 1000", function()
            assert.are.equal(100, m:tick_ms())
            for i = 1, 100 do
                m:apply({ "SET", string.format("exp:%03d", i), "v", "PX", "10" })
            end
            m:apply({ "SET", "live", "1" })
            m:advance(10)
            -- Each key is in the snapshot twice (its value, its deadline) until removed.
            assert.are.equal(200, occurrences(m:snapshot(), "exp:"))
            m:apply({ "SET", "other", "1" })
            assert.are.equal(160, occurrences(m:snapshot(), "exp:"))
            m:apply({ "GET", "exp:100" }) -- 20 more go, even by a read given as an entry
            m:apply({ "SET", "exp:099", "back" }) -- and 20 more; exp:099 is live again
            assert.are.equal(2 * 39 + 1, occurrences(m:snapshot(), "exp:"))
            assert.are.equal(3, m:query({ "DBSIZE" }))
            m:tick()
            assert.are.equal(1, occurrences(m:snapshot(), "exp:")) -- only exp:099 is left
            assert.are.same({ 3, 0 }, m:keyspace())
            m:replay_matches({ { "DBSIZE" }, { "KEYS", "*" } })
        end)

        it("counts keys with an expiry for INFO", function()
            m:apply({ "MSET", "a", "1", "b", "2", "c", "3" })
            m:apply({ "EXPIRE", "a", "10" })
            m:apply({ "PEXPIRE", "b", "5" })
            assert.are.same({ 3, 2 }, m:keyspace())
            m:advance(5)
            m:apply({ "SET", "d", "4" }) -- (b is expired, and removed by this entry)
            assert.are.same({ 3, 1 }, m:keyspace())
        end)

        it("never runs the clock backwards", function()
            m:apply({ "SET", "k", "v", "PX", "100" })
            m:advance(100)
            m:apply({ "SET", "other", "1" })
            m.time_ms = m.time_ms - 50 -- a new leader with a slower clock
            assert.are.equal(null, m:apply({ "GET", "k" }))
            m:apply({ "SET", "j", "v", "PX", "100" })
            assert.are.equal(100, m:query({ "PTTL", "j" }))
        end)

        it("stream ids come from the log's clock", function()
            local t = m.time_ms
            assert.are.equal(t .. "-0", m:apply({ "XADD", "s", "*", "f", "v" }))
            assert.are.equal(t .. "-1", m:apply({ "XADD", "s", "*", "f", "v" }))
            m:advance(7)
            assert.are.equal((t + 7) .. "-0", m:apply({ "XADD", "s", "*", "f", "v" }))
            m.time_ms = t -- behind the stream's last id: the sequence goes on
            assert.are.equal((t + 7) .. "-1", m:apply({ "XADD", "s", "*", "f", "v" }))
        end)
    end)

    describe("SCAN", function()
        it("pages with numeric cursors; a full iteration returns every key once", function()
            for i = 1, 3000 do
                m:apply({ "SET", "key:" .. i, "v" })
            end
            local seen, pages = iterate(m, { "SCAN", "0" })
            local n = 0
            for _ in pairs(seen) do
                n = n + 1
            end
            assert.are.equal(3000, n)
            assert.is_true(pages > 100) -- about COUNT (10) keys a page
            local some = iterate(m, { "SCAN", "0", "COUNT", "1000", "MATCH", "key:1??" })
            local want = {}
            for i = 100, 199 do
                want["key:" .. i] = true
            end
            assert.are.same(want, some)
        end)

        it("returns every key present throughout, once, while others come and go", function()
            for i = 1, 2000 do
                m:apply({ "SET", "stay:" .. i, "v" })
                m:apply({ "SET", "go:" .. i, "v" })
            end
            local added = 0
            local seen = iterate(m, { "SCAN", "0", "COUNT", "25" }, function(_, page)
                -- Between pages: delete some keys, add many (the trie splits and merges).
                for j = 1, 20 do
                    m:apply({ "DEL", "go:" .. ((page * 20 + j) % 2000 + 1) })
                end
                for j = 1, 60 do
                    added = added + 1
                    m:apply({ "SET", "new:" .. added, "v" })
                end
            end)
            for i = 1, 2000 do
                assert.is_true(seen["stay:" .. i], "stay:" .. i)
            end
        end)

        it("HSCAN, SSCAN and ZSCAN page large collections with the same guarantee", function()
            for i = 1, 1000 do
                m:apply({ "HSET", "h", "f" .. i, "v" })
                m:apply({ "SADD", "s", "m" .. i })
                m:apply({ "ZADD", "z", tostring(i), "m" .. i })
            end
            for _, c in ipairs({ { "HSCAN", "h", "0" }, { "SSCAN", "s", "0" }, { "ZSCAN", "z", "0" } }) do
                local k = c[2]
                local seen, pages = iterate(m, c, function(_, page)
                    m:apply({ k == "h" and "HDEL" or k == "s" and "SREM" or "ZREM", k,
                        (k == "h" and "f" or "m") .. (500 + page) })
                end)
                assert.is_true(pages > 20, c[1])
                for i = 1, 500 do
                    assert.is_true(seen[(k == "h" and "f" or "m") .. i], c[1] .. " " .. i)
                end
            end
            -- A small one comes back whole, as Redis's small encodings do.
            m:apply({ "SADD", "small", "a", "b", "c" })
            assert.are.same({ "0", { "a", "b", "c" } }, m:query({ "SSCAN", "small", "0", "COUNT", "1" }))
        end)

        it("answers the same on a restored replica", function()
            for i = 1, 500 do
                m:apply({ "SET", "key:" .. i, "v" })
                m:apply({ "SADD", "s", "m" .. i })
            end
            for i = 1, 500, 3 do
                m:apply({ "DEL", "key:" .. i })
                m:apply({ "SREM", "s", "m" .. i })
            end
            local queries = {}
            local cursor = "0"
            repeat
                queries[#queries + 1] = { "SCAN", cursor, "COUNT", "7" }
                cursor = m:query(queries[#queries])[1]
            until cursor == "0"
            cursor = "0"
            repeat
                queries[#queries + 1] = { "SSCAN", "s", cursor }
                cursor = m:query(queries[#queries])[1]
            until cursor == "0"
            m:check_snapshot(queries):close()
            m:replay_matches(queries)
        end)

        it("refuses bad cursors and options with Redis's texts", function()
            assert.are.same({ err = "ERR invalid cursor" }, m:query({ "SCAN", "xyz" }))
            assert.are.same({ err = "ERR invalid cursor" }, m:query({ "SCAN", " 1" }))
            assert.are.same({ err = "ERR syntax error" }, m:query({ "SCAN", "0", "COUNT", "0" }))
            assert.are.same({ err = "ERR syntax error" }, m:query({ "SCAN", "0", "MATCH" }))
            assert.are.same({ err = "ERR value is not an integer or out of range" },
                m:query({ "SCAN", "0", "COUNT", "x" }))
            assert.are.same({ "0", {} }, m:query({ "SCAN", "99999999999" })) -- past the end
        end)
    end)

    describe("KEYS", function()
        it("matches globs as Redis does, in byte order", function()
            for _, k in ipairs({ "hello", "hallo", "hxllo", "hllo", "heeeello", "a.b", "a%b",
                "b[c", "bc", "x*y", "" }) do
                m:apply({ "SET", k, "1" })
            end
            local function keys(p)
                return m:query({ "KEYS", p })
            end
            assert.are.same({ "", "a%b", "a.b", "b[c", "bc", "hallo", "heeeello", "hello", "hllo",
                "hxllo", "x*y" }, keys("*"))
            assert.are.same({ "a%b", "a.b", "b[c", "bc", "hallo", "heeeello", "hello", "hllo",
                "hxllo", "x*y" }, keys("**")) -- "" matches "*" alone, as in Redis
            assert.are.same({ "hallo", "hello", "hxllo" }, keys("h?llo"))
            assert.are.same({ "hallo", "heeeello", "hello", "hllo", "hxllo" }, keys("h*llo"))
            assert.are.same({ "hallo", "hello" }, keys("h[ae]llo"))
            assert.are.same({ "hallo", "hxllo" }, keys("h[^e]llo"))
            assert.are.same({ "hallo", "hello" }, keys("h[e-a]llo"))
            assert.are.same({ "a.b" }, keys("a.b"))
            assert.are.same({ "a%b", "a.b" }, keys("a?b"))
            assert.are.same({ "b[c" }, keys("b\\[c"))
            assert.are.same({ "bc" }, keys("b[c")) -- an unclosed [ is a set of the rest
            assert.are.same({ "x*y" }, keys("x\\*y"))
            assert.are.same({ "" }, keys(""))
            assert.are.same({ "heeeello" }, keys("*e*e*e*"))
        end)

        it("stays fast on a pattern that makes backtracking matchers crawl", function()
            m:apply({ "SET", ("a"):rep(5000), "1" })
            assert.are.same({}, m:query({ "KEYS", ("*a"):rep(30) .. "b" }))
        end)
    end)

    describe("random choices", function()
        it("depend on the log only, and a read changes nothing", function()
            for i = 1, 300 do
                m:apply({ "SADD", "big", "m" .. i })
                m:apply({ "SET", "k" .. i, "v" })
            end
            m:apply({ "SADD", "small", "a", "b", "c", "d", "e" })
            local before = m:snapshot()
            local reads = { { "SRANDMEMBER", "big" }, { "SRANDMEMBER", "big", "5" },
                { "SRANDMEMBER", "small", "-10" }, { "RANDOMKEY" } }
            local first = {}
            for i, q in ipairs(reads) do
                first[i] = m:query(q)
                assert.are.same(first[i], m:query(q)) -- the same until the next entry
            end
            assert.are.equal(before, m:snapshot())
            -- Different picks as the log moves on, the same on every replica.
            local picks = {}
            for _ = 1, 10 do
                picks[m:apply({ "SPOP", "big" })] = true
                m:apply({ "SPOP", "small", "1" })
            end
            local n = 0
            for _ in pairs(picks) do
                n = n + 1
            end
            assert.are.equal(10, n)
            assert.are.equal(290, m:query({ "SCARD", "big" }))
            m:replay_matches({ { "SMEMBERS", "big" }, { "SMEMBERS", "small" } })
            -- A restored replica picks what the original picks.
            local copy = m:check_snapshot(reads)
            for _, c in ipairs({ { "SPOP", "big", "7" }, { "SPOP", "big" }, { "SPOP", "small" } }) do
                assert.are.same(m:apply(c), copy:apply(c))
            end
            copy:close()
        end)
    end)

    it("snapshots every type, and a restored or replayed machine answers the same", function()
        for i = 1, 200 do
            m:apply({ "SET", "str:" .. i, "v" .. i, "PX", tostring(10 * i) })
            m:apply({ "HSET", "hash", "f" .. i, tostring(i) })
            m:apply({ i % 2 == 0 and "LPUSH" or "RPUSH", "list", "e" .. i })
            m:apply({ "SADD", "set", "m" .. (i % 150) })
            m:apply({ "ZADD", "zset", tostring(i % 13 + 0.5), "m" .. i })
            m:apply({ "XADD", "stream", "*", "n", tostring(i) })
            m:advance(3)
        end
        m:apply({ "LPOP", "list", "5" })
        m:apply({ "ZREM", "zset", "m7" })
        m:apply({ "HDEL", "hash", "f9" })
        local queries = { { "DBSIZE" }, { "KEYS", "*" }, { "HGETALL", "hash" },
            { "LRANGE", "list", "0", "-1" }, { "SMEMBERS", "set" },
            { "ZRANGE", "zset", "0", "-1", "WITHSCORES" }, { "XRANGE", "stream", "-", "+" },
            { "SSCAN", "set", "0" }, { "ZRANGEBYLEX", "zset", "-", "+" } }
        for i = 0, 201 do
            queries[#queries + 1] = { "PTTL", "str:" .. i }
        end
        assert.is_true(m:query({ "DBSIZE" }) < 205) -- some have expired
        local copy = m:check_snapshot(queries)
        m:replay_matches(queries)
        -- Both go on alike as time passes and entries come.
        for _ = 1, 10 do
            m:advance(200)
            copy:advance(200)
            for _, c in ipairs({ { "DBSIZE" }, { "LPOP", "list" }, { "ZPOPMIN", "zset" },
                { "SPOP", "set" }, { "HINCRBY", "hash", "f1", "1" } }) do
                assert.are.same(m:apply(c), copy:apply(c))
            end
        end
        m:check_snapshot(queries):close()
        copy:close()
    end)

    it("MULTI/EXEC: a transaction's reads and writes, random ones from the entry's seed", function()
        m:apply({ "SADD", "s", "a", "b", "c", "d" })
        local replies = m:exec({ { "INCR", "n" }, { "GET", "n" }, { "SPOP", "s" },
            { "SRANDMEMBER", "s", "-2" }, { "LPUSH", "n", "x" }, { "SCARD", "s" } })
        assert.are.equal(1, replies[1])
        assert.are.equal("1", replies[2])
        assert.is_string(replies[3])
        assert.are.equal(2, #replies[4])
        assert.are.same({ err = "WRONGTYPE Operation against a key holding the wrong kind of value" },
            replies[5])
        assert.are.equal(3, replies[6])
        m:replay_matches({ { "SMEMBERS", "s" }, { "GET", "n" } })
    end)

    it("CAS swaps only on the expected string", function()
        assert.are.equal(0, m:apply({ "CAS", "k", "x", "y" }))
        assert.are.equal(null, m:query({ "GET", "k" }))
        m:apply({ "SET", "k", "x" })
        assert.are.equal(0, m:apply({ "CAS", "k", "other", "y" }))
        assert.are.equal(1, m:apply({ "CAS", "k", "x", "y" }))
        assert.are.equal("y", m:query({ "GET", "k" }))
        m:apply({ "RPUSH", "l", "x" })
        assert.are.equal(0, m:apply({ "CAS", "l", "x", "y" }))
    end)

    it("prints INCRBYFLOAT results as Redis does where a double holds them", function()
        local cases = {
            { "0.1", "0.2", "0.3" }, { "10.5", "0.1", "10.6" }, { "3", "1.5e-10", "3.00000000015" },
            { "1e20", "0", "100000000000000000000" }, { "-0.5", "0.5", "0" },
            { "0", "1e-20", "0" }, { "5.0", "0", "5" }, { "0", "-1.25", "-1.25" },
            { "1", "0x10", "17" }, { "2.5", "1e2", "102.5" }, { "0", "123456789.12345679", "123456789.12345679" },
        }
        for _, c in ipairs(cases) do
            m:apply({ "SET", "f", c[1] })
            assert.are.equal(c[3], m:apply({ "INCRBYFLOAT", "f", c[2] }), c[1] .. " + " .. c[2])
        end
        assert.are.same({ err = "ERR increment would produce NaN or Infinity" },
            m:apply({ "INCRBYFLOAT", "f", "inf" }))
        assert.are.same({ err = "ERR value is not a valid float" },
            m:apply({ "INCRBYFLOAT", "f", "1e400" }))
    end)

    it("routes by its command table, which replaces M.reads", function()
        local reads, writes = 0, 0
        for _, c in ipairs(m:commands()) do
            if c.read then
                reads = reads + 1
            else
                writes = writes + 1
            end
        end
        assert.is_true(reads > 50 and writes > 60)
        assert.are.same({ err = "ERR unknown command 'NOPE', with args beginning with: 'a' " },
            m:call({ "NOPE", "a" }))
        assert.are.same({ err = "ERR wrong number of arguments for 'get' command" }, m:call({ "GET" }))
        assert.are.same({ err = "ERR 'set' is not a read command" }, m:query({ "SET", "k", "v" }))
    end)

    it("keeps a list's ends O(1): a deque of 100,000 pushes and pops in budget", function()
        for i = 1, 100 do
            local batch = { "LPUSH", "q" }
            for j = 1, 1000 do
                batch[#batch + 1] = tostring(i * 1000 + j)
            end
            m:apply(batch)
        end
        assert.are.equal(100000, m:query({ "LLEN", "q" }))
        for _ = 1, 100 do
            assert.are.equal(1000, #m:apply({ "RPOP", "q", "1000" }))
        end
        assert.are.equal(0, m:query({ "EXISTS", "q" }))
    end)
end)
