-- examples/kv.lua through luaraft.harness: what it grew beyond spec/fsm/kv_spec.lua
-- (expiry by the log's clock, KEYS, SCAN), and a snapshot that keeps deadlines and time.
local harness = require("luaraft.harness")

local null = harness.null

describe("examples/kv.lua", function()
    local m
    before_each(function()
        -- A frozen clock: time moves only by m:advance, so deadlines are exact.
        m = harness.load("examples/kv.lua", { step_ms = 0 })
    end)
    after_each(function()
        m:close()
    end)

    describe("expiry", function()
        it("SET EX/PX sets a deadline; a key is gone from the first entry at or after it",
            function()
            assert.are.same({ ok = "OK" }, m:apply({ "SET", "s", "v", "EX", "10" }))
            assert.are.same({ ok = "OK" }, m:apply({ "SET", "p", "v", "px", "1500" }))
            assert.are.equal(10, m:query({ "TTL", "s" }))
            assert.are.equal(10000, m:query({ "PTTL", "s" }))
            assert.are.equal(2, m:query({ "TTL", "p" })) -- 1.5 s rounds to 2, as in Redis
            m:advance(1499)
            m:apply({ "SET", "tick", "1" })
            assert.are.equal(1, m:query({ "PTTL", "p" }))
            m:advance(1)
            -- Reads use the last applied entry's time: p lives until an entry at its deadline.
            assert.are.equal("v", m:query({ "GET", "p" }))
            m:apply({ "SET", "tick", "2" })
            assert.are.equal(null, m:query({ "GET", "p" }))
            assert.are.equal(-2, m:query({ "TTL", "p" }))
            assert.are.equal(0, m:query({ "EXISTS", "p" }))
            assert.are.equal(2, m:query({ "DBSIZE" }))
            m:advance(8500)
            assert.are.equal(null, m:apply({ "GET", "s" }))
            assert.are.equal(1, m:query({ "DBSIZE" }))
        end)

        it("TTL says -1 without an expiry and -2 for a missing key", function()
            m:apply({ "SET", "k", "v" })
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            assert.are.equal(-1, m:query({ "PTTL", "k" }))
            assert.are.equal(-2, m:query({ "TTL", "missing" }))
        end)

        it("EXPIRE, PEXPIRE and PERSIST", function()
            m:apply({ "SET", "k", "v" })
            assert.are.equal(1, m:apply({ "EXPIRE", "k", "5" }))
            assert.are.equal(5, m:query({ "TTL", "k" }))
            assert.are.equal(1, m:apply({ "PEXPIRE", "k", "200" }))
            assert.are.equal(200, m:query({ "PTTL", "k" }))
            assert.are.equal(1, m:apply({ "PERSIST", "k" }))
            assert.are.equal(0, m:apply({ "PERSIST", "k" }))
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            assert.are.equal(0, m:apply({ "EXPIRE", "missing", "5" }))
            assert.are.equal(0, m:apply({ "PERSIST", "missing" }))
            m:advance(100000)
            assert.are.equal("v", m:apply({ "GET", "k" }))
            -- A deadline already past deletes the key at once.
            assert.are.equal(1, m:apply({ "EXPIRE", "k", "0" }))
            assert.are.equal(null, m:query({ "GET", "k" }))
            m:apply({ "SET", "k", "v" })
            assert.are.equal(1, m:apply({ "EXPIRE", "k", tostring(math.mininteger) }))
            assert.are.equal(0, m:query({ "DBSIZE" }))
        end)

        it("a plain SET clears the expiry; INCR and CAS keep it; DEL forgets it", function()
            m:apply({ "SET", "k", "1", "EX", "10" })
            assert.are.equal(2, m:apply({ "INCR", "k" }))
            assert.are.equal(10, m:query({ "TTL", "k" }))
            assert.are.equal(1, m:apply({ "CAS", "k", "2", "x" }))
            assert.are.equal(10, m:query({ "TTL", "k" }))
            m:apply({ "SET", "k", "y" })
            assert.are.equal(-1, m:query({ "TTL", "k" }))
            m:apply({ "SET", "d", "1", "EX", "1" })
            assert.are.equal(1, m:apply({ "DEL", "d" }))
            m:apply({ "SET", "d", "2" })
            m:advance(5000)
            assert.are.equal("2", m:apply({ "GET", "d" }))
        end)

        it("SET NX and XX", function()
            assert.are.equal(null, m:apply({ "SET", "k", "v", "XX" }))
            assert.are.same({ ok = "OK" }, m:apply({ "SET", "k", "v", "NX", "EX", "5" }))
            assert.are.equal(null, m:apply({ "SET", "k", "w", "NX" }))
            assert.are.same({ ok = "OK" }, m:apply({ "SET", "k", "w", "XX" }))
            assert.are.equal("w", m:query({ "GET", "k" }))
        end)

        it("refuses bad expiry arguments with Redis's texts", function()
            local cases = {
                { { "SET", "k", "v", "EX", "0" }, "ERR invalid expire time in 'set' command" },
                { { "SET", "k", "v", "PX", "-1" }, "ERR invalid expire time in 'set' command" },
                { { "SET", "k", "v", "EX", "x" }, "ERR value is not an integer or out of range" },
                { { "SET", "k", "v", "EX", tostring(math.maxinteger) },
                    "ERR invalid expire time in 'set' command" },
                { { "SET", "k", "v", "EX", "1", "PX", "1" }, "ERR syntax error" },
                { { "SET", "k", "v", "NX", "XX" }, "ERR syntax error" },
                { { "SET", "k", "v", "KEEPTTL" }, "ERR syntax error" },
                { { "EXPIRE", "k", "1.5" }, "ERR value is not an integer or out of range" },
                { { "EXPIRE", "k" }, "ERR wrong number of arguments for 'expire' command" },
            }
            for _, case in ipairs(cases) do
                assert.are.same({ err = case[2] }, m:apply(case[1]))
            end
            assert.are.equal(0, m:query({ "DBSIZE" }))
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
    end)

    describe("KEYS", function()
        before_each(function()
            for _, k in ipairs({ "hello", "hallo", "hxllo", "hllo", "heeeello", "a.b", "a%b",
                "b[c", "x*y", "" }) do
                m:apply({ "SET", k, "1" })
            end
        end)

        local function keys(p)
            return m:query({ "KEYS", p })
        end

        it("matches globs like Redis, in byte order", function()
            assert.are.same({ "", "a%b", "a.b", "b[c", "hallo", "heeeello", "hello", "hllo",
                "hxllo", "x*y" }, keys("*"))
            assert.are.same({ "hallo", "hello", "hxllo" }, keys("h?llo"))
            assert.are.same({ "hallo", "heeeello", "hello", "hllo", "hxllo" }, keys("h*llo"))
            assert.are.same({ "hallo", "hello" }, keys("h[ae]llo"))
            assert.are.same({ "hallo", "hxllo" }, keys("h[^e]llo"))
            assert.are.same({ "hallo", "hxllo" }, keys("h[!e]llo"))
            assert.are.same({ "hallo", "hello" }, keys("h[a-e]llo"))
            assert.are.same({ "hallo", "hello" }, keys("h[e-a]llo"))
            assert.are.same({ "" }, keys(""))
            assert.are.same({ "heeeello" }, keys("*e*e*e*"))
        end)

        it("takes Lua's magic characters literally", function()
            assert.are.same({ "a.b" }, keys("a.b"))
            assert.are.same({ "a%b" }, keys("a%b"))
            assert.are.same({ "a%b", "a.b" }, keys("a?b"))
            assert.are.same({ "b[c" }, keys("b\\[c"))
            assert.are.same({ "b[c" }, keys("b[c")) -- an unclosed [ is literal
            assert.are.same({ "x*y" }, keys("x\\*y"))
            assert.are.same({ "a%b" }, keys("a[%]b"))
            assert.are.same({}, keys("^h.*"))
            assert.are.same({}, keys("h[]llo"))
        end)

        it("stays fast on a pattern that makes backtracking matchers crawl", function()
            m:apply({ "SET", ("a"):rep(5000), "1" })
            assert.are.same({}, keys(("*a"):rep(30) .. "b"))
        end)
    end)

    describe("SCAN", function()
        local function all(count, match)
            local out, cursor, calls = {}, "0", 0
            repeat
                local cmd = { "SCAN", cursor, "COUNT", tostring(count) }
                if match then
                    cmd[#cmd + 1] = "MATCH"
                    cmd[#cmd + 1] = match
                end
                local reply = m:query(cmd)
                assert.is_true(#reply[2] <= count)
                for _, k in ipairs(reply[2]) do
                    out[#out + 1] = k
                end
                cursor, calls = reply[1], calls + 1
            until cursor == "0"
            return out, calls
        end

        it("pages through the keys in byte order", function()
            local want = {}
            for i = 1, 25 do
                m:apply({ "SET", string.format("key:%02d", i), "v" })
                want[i] = string.format("key:%02d", i)
            end
            local got, calls = all(10)
            assert.are.same(want, got)
            assert.are.equal(3, calls)
            assert.are.same({ "6b65793a3031", { "key:01" } }, -- hex of key:01
                m:query({ "SCAN", "0", "COUNT", "1" }))
            assert.are.same({ "0", {} }, m:query({ "SCAN", "6b65793a3235" })) -- after key:25
            assert.are.same({ "key:05", "key:15", "key:25" }, all(3, "*5"))
            assert.are.same({ "key:10", "key:11", "key:12", "key:13", "key:14", "key:15",
                "key:16", "key:17", "key:18", "key:19" }, (m:query({ "SCAN", "0", "COUNT", "100",
                "MATCH", "key:1?" }))[2])
        end)

        it("returns every key that stays, once, while others come and go", function()
            for i = 1, 30 do
                m:apply({ "SET", string.format("k%02d", i), "v" })
            end
            local seen, cursor = {}, "0"
            repeat
                local reply = m:query({ "SCAN", cursor, "COUNT", "4" })
                for _, k in ipairs(reply[2]) do
                    assert.is_nil(seen[k], k)
                    seen[k] = true
                end
                cursor = reply[1]
                -- Between pages: delete odd keys, add new ones on either side.
                m:apply({ "DEL", string.format("k%02d", 2 * (#reply[2]) + 1) })
                m:apply({ "SET", "a" .. cursor, "v" })
                m:apply({ "SET", "z" .. cursor, "v" })
            until cursor == "0"
            for i = 2, 30, 2 do
                assert.is_true(seen[string.format("k%02d", i)], i)
            end
        end)

        it("refuses bad arguments", function()
            assert.are.same({ err = "ERR invalid cursor" }, m:query({ "SCAN", "xyz" }))
            assert.are.same({ err = "ERR invalid cursor" }, m:query({ "SCAN", "616" }))
            assert.are.same({ err = "ERR syntax error" }, m:query({ "SCAN", "0", "COUNT", "0" }))
            assert.are.same({ err = "ERR syntax error" }, m:query({ "SCAN", "0", "MATCH" }))
            assert.are.same({ err = "ERR value is not an integer or out of range" },
                m:query({ "SCAN", "0", "COUNT", "x" }))
        end)
    end)

    it("restores keys, deadlines and the log's time from a snapshot", function()
        for i = 1, 300 do
            local cmd = { "SET", "key:" .. i, "value " .. i }
            if i % 3 == 0 then
                cmd[#cmd + 1] = "PX"
                cmd[#cmd + 1] = tostring(10 * i)
            end
            m:apply(cmd)
            m:advance(3)
        end
        m:apply({ "PERSIST", "key:30" })
        local queries = { { "DBSIZE" }, { "KEYS", "*" }, { "SCAN", "0", "COUNT", "50" } }
        for i = 0, 301 do
            queries[#queries + 1] = { "GET", "key:" .. i }
            queries[#queries + 1] = { "PTTL", "key:" .. i }
        end
        assert.is_true(m:query({ "DBSIZE" }) < 300) -- some have expired
        local copy = m:check_snapshot(queries)
        -- Both expire the same keys as time goes on.
        for _ = 1, 10 do
            m:advance(200)
            copy:advance(200)
            assert.are.equal(m:apply({ "DBSIZE" }), copy:apply({ "DBSIZE" }))
        end
        m:replay_matches(queries)
        copy:close()
    end)

    it("reads version 1 snapshots", function()
        local v1 = "luaraft-kv 1\n" .. string.pack(">I8", 2) .. string.pack(">s4s4", "a", "1")
            .. string.pack(">s4s4", "b", "2")
        local fresh = m:fresh()
        fresh.m:restore(v1)
        assert.are.same({ "1", "2" }, fresh:query({ "MGET", "a", "b" }))
        assert.are.equal(-1, fresh:query({ "TTL", "a" }))
        fresh:close()
    end)
end)
