-- examples/kv.lua through the Lua host: replies and error texts of the basic commands,
-- its command table, and a snapshot that rebuilds a machine answering every query the same.
-- (spec/examples/kv_redis_spec.lua compares every command with a real Redis.)
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local KV = S.root .. "/examples/kv.lua"
local limits = { instructions_max = 1000000, memory_bytes_max = 64 * 1024 * 1024 }

local function open_kv()
    return assert(fsm.open(KV, limits))
end

describe("examples/kv.lua", function()
    local m, index
    before_each(function()
        m = open_kv()
        index = 0
    end)
    after_each(function()
        m:close()
    end)

    local function apply(...)
        index = index + 1
        return fsm.decode(m:apply({ ... }, { index = index, term = 1, time_ms = 0, seed = index }))
    end

    it("SET and GET", function()
        assert.are.same({ ok = "OK" }, apply("SET", "k", "v"))
        assert.are.equal("v", apply("GET", "k"))
        assert.are.equal(fsm.null, apply("GET", "missing"))
        assert.are.same({ ok = "OK" }, apply("set", "k", "w"))
        assert.are.equal("w", apply("get", "k"))
        assert.are.same({ err = "ERR syntax error" }, apply("SET", "k", "v", "EX"))
    end)

    it("gives Redis's arity errors", function()
        assert.are.same({ err = "ERR wrong number of arguments for 'get' command" }, apply("GET"))
        assert.are.same({ err = "ERR wrong number of arguments for 'get' command" },
            apply("GET", "a", "b"))
        assert.are.same({ err = "ERR wrong number of arguments for 'set' command" },
            apply("SET", "k"))
        assert.are.same({ err = "ERR wrong number of arguments for 'del' command" }, apply("DEL"))
        assert.are.same({ err = "ERR wrong number of arguments for 'cas' command" },
            apply("CAS", "k", "v"))
        assert.are.same({ err = "ERR wrong number of arguments for 'dbsize' command" },
            apply("DBSIZE", "x"))
        assert.are.same({ err = "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' " },
            apply("NOPE", "a", "b"))
    end)

    it("DEL and EXISTS count keys", function()
        apply("SET", "a", "1")
        apply("SET", "b", "2")
        assert.are.equal(3, apply("EXISTS", "a", "b", "a", "c"))
        assert.are.equal(2, apply("DEL", "a", "b", "c"))
        assert.are.equal(0, apply("EXISTS", "a", "b"))
        assert.are.equal(0, apply("DBSIZE"))
    end)

    it("INCR", function()
        assert.are.equal(1, apply("INCR", "n"))
        assert.are.equal(2, apply("INCR", "n"))
        assert.are.equal("2", apply("GET", "n"))
        apply("SET", "s", "abc")
        assert.are.same({ err = "ERR value is not an integer or out of range" }, apply("INCR", "s"))
        for _, bad in ipairs({ "", " 1", "01", "+1", "1.5", "99999999999999999999", "-0" }) do
            apply("SET", "s", bad)
            assert.are.same({ err = "ERR value is not an integer or out of range" },
                apply("INCR", "s"), bad)
        end
        apply("SET", "neg", "-5")
        assert.are.equal(-4, apply("INCR", "neg"))
        apply("SET", "max", tostring(math.maxinteger))
        assert.are.same({ err = "ERR increment or decrement would overflow" }, apply("INCR", "max"))
    end)

    it("MGET keeps missing keys as nulls, DBSIZE counts", function()
        apply("SET", "a", "1")
        apply("SET", "c", "3")
        assert.are.same({ "1", fsm.null, "3" }, apply("MGET", "a", "b", "c"))
        assert.are.equal(2, apply("DBSIZE"))
        apply("SET", "a", "again")
        assert.are.equal(2, apply("DBSIZE"))
    end)

    it("CAS swaps only on the expected value", function()
        assert.are.equal(0, apply("CAS", "k", "x", "y"))
        assert.are.equal(fsm.null, apply("GET", "k"))
        apply("SET", "k", "x")
        assert.are.equal(0, apply("CAS", "k", "other", "y"))
        assert.are.equal("x", apply("GET", "k"))
        assert.are.equal(1, apply("CAS", "k", "x", "y"))
        assert.are.equal("y", apply("GET", "k"))
    end)

    it("marks its reads in the command table, and queries refuse writes", function()
        for _, name in ipairs({ "GET", "get", "Exists", "MGET", "dbsize", "SCAN", "HGETALL",
            "LRANGE", "SMEMBERS", "ZRANGE", "XRANGE", "SRANDMEMBER", "RANDOMKEY" }) do
            assert.is_true(m:is_read(name), name)
        end
        for _, name in ipairs({ "SET", "DEL", "INCR", "CAS", "GETEX", "SPOP", "ZPOPMIN", "XADD",
            "NOPE", "" }) do
            assert.is_false(m:is_read(name), name)
        end
        local info, keys = m:check({ "MSET", "a", "1", "b", "2" })
        assert.are.equal("mset", info.name)
        assert.are.same({ "a", "b" }, keys)
        assert.is_nil((m:check({ "HSET", "h", "f" })))
        apply("SET", "k", "v")
        assert.are.equal("v", fsm.decode(m:query({ "GET", "k" })))
        assert.are.same({ err = "ERR 'set' is not a read command" },
            fsm.decode(m:query({ "SET", "k", "w" })))
        assert.are.equal("v", fsm.decode(m:query({ "GET", "k" })))
    end)

    it("restores from a snapshot into a machine that answers every query the same", function()
        -- 1040 keys, some overwritten, counted up or deleted, so the history differs from
        -- the restored machine's single rebuild.
        for i = 1, 1200 do
            apply("SET", "key:" .. i, ("value %d "):format(i):rep(i % 7))
        end
        for i = 1, 1200, 6 do
            apply("DEL", "key:" .. i)
        end
        for i = 2, 1200, 5 do
            apply("SET", "key:" .. i, tostring(i))
            apply("INCR", "key:" .. i)
        end
        local size = fsm.decode(m:query({ "DBSIZE" }))
        assert.are.equal(1040, size) -- 200 deleted, 40 of them set again

        local snap, writes = m:snapshot()
        assert.is_true(#snap > 0)
        assert.is_true(writes >= 1)
        local copy = open_kv()
        copy:restore(snap, 1000) -- in 1000-byte chunks
        for i = 0, 1201 do
            for _, cmd in ipairs({ { "GET", "key:" .. i }, { "EXISTS", "key:" .. i } }) do
                assert.are.equal(m:query(cmd), copy:query(cmd))
            end
        end
        assert.are.equal(m:query({ "DBSIZE" }), copy:query({ "DBSIZE" }))
        local keys = { "MGET" }
        for i = 1, 1200 do
            keys[#keys + 1] = "key:" .. i
        end
        assert.are.equal(m:query(keys), copy:query(keys))
        -- The encoding is canonical: the copy snapshots to the same bytes.
        assert.are.equal(snap, (copy:snapshot()))
        -- And both machines go on identically.
        local ctx = { index = 9999, term = 2, time_ms = 0, seed = 1 }
        assert.are.equal(m:apply({ "INCR", "key:7" }, ctx), copy:apply({ "INCR", "key:7" }, ctx))
        copy:close()
    end)

    it("snapshots and restores a state that fills the memory cap", function()
        -- The cap fails commands, never the host's snapshot or restore.
        local small = { instructions_max = 1000000, memory_bytes_max = 1024 * 1024 }
        local full = assert(fsm.open(KV, small))
        local ctx = { index = 1, term = 1, time_ms = 0, seed = 1 }
        local n = 0
        while true do
            local reply = fsm.decode(full:apply({ "SET", "k" .. n, ("v"):rep(1000) }, ctx))
            if reply.err then
                assert.are.equal("ERR script exceeded the state's memory limit", reply.err)
                break
            end
            n = n + 1
        end
        assert.is_true(n > 100)
        local snap = full:snapshot()
        local copy = assert(fsm.open(KV, small))
        copy:restore(snap)
        assert.are.equal(n, fsm.decode(copy:query({ "DBSIZE" })))
        assert.are.equal(full:query({ "GET", "k0" }), copy:query({ "GET", "k0" }))
        full:close()
        copy:close()
    end)

    it("refuses a truncated snapshot", function()
        apply("SET", "a", "1")
        local snap = m:snapshot()
        local copy = open_kv()
        assert.has_error(function() copy:restore(snap:sub(1, #snap - 1)) end)
        assert.has_error(function() copy:restore(snap .. "x") end)
        copy:close()
    end)
end)
