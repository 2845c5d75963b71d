-- examples/lock.lua through luaraft.harness: leases by the log's clock, fencing tokens that
-- only grow, and a snapshot that keeps both.
local harness = require("luaraft.harness")

describe("examples/lock.lua", function()
    local m
    before_each(function()
        -- A frozen clock: time moves only by m:advance, so deadlines are exact.
        m = harness.load("examples/lock.lua", { step_ms = 0 })
    end)
    after_each(function()
        m:close()
    end)

    it("grants a free lock with a token and refuses another owner", function()
        assert.are.equal(1, m:apply({ "ACQUIRE", "db", "alice", "1000" }))
        assert.are.equal(harness.null, m:apply({ "ACQUIRE", "db", "bob", "1000" }))
        assert.are.equal("alice", m:query({ "HOLDER", "db" }))
        assert.are.equal(1, m:query({ "TOKEN", "db" }))
        assert.are.equal(2, m:apply({ "ACQUIRE", "cache", "bob", "1000" }))
        assert.are.equal(harness.null, m:query({ "HOLDER", "nothing" }))
    end)

    it("expires a lease by the log's time, and the next grant has a larger token", function()
        assert.are.equal(1, m:apply({ "ACQUIRE", "db", "alice", "1000" }))
        m:advance(999)
        assert.are.equal(harness.null, m:apply({ "ACQUIRE", "db", "bob", "1000" }))
        m:advance(1)
        -- Reads use the last applied entry's time: still held until an entry at 1000.
        assert.are.equal("alice", m:query({ "HOLDER", "db" }))
        assert.are.equal(2, m:apply({ "ACQUIRE", "db", "bob", "1000" }))
        assert.are.equal("bob", m:query({ "HOLDER", "db" }))
        -- alice's late calls fail: her lease is gone.
        assert.are.equal(0, m:apply({ "RENEW", "db", "alice", "1000" }))
        assert.are.equal(0, m:apply({ "RELEASE", "db", "alice" }))
    end)

    it("renews a live lease with the same token and releases it", function()
        m:apply({ "ACQUIRE", "db", "alice", "1000" })
        m:advance(900)
        assert.are.equal(1, m:apply({ "RENEW", "db", "alice", "1000" }))
        m:advance(900)
        assert.are.equal(harness.null, m:apply({ "ACQUIRE", "db", "bob", "1000" }))
        assert.are.equal(1, m:query({ "TOKEN", "db" }))
        assert.are.equal(0, m:apply({ "RENEW", "db", "bob", "1000" }))
        assert.are.equal(0, m:apply({ "RELEASE", "db", "bob" }))
        assert.are.equal(1, m:apply({ "RELEASE", "db", "alice" }))
        assert.are.equal(0, m:apply({ "RELEASE", "db", "alice" }))
        assert.are.equal(harness.null, m:query({ "HOLDER", "db" }))
        -- Tokens are never reused, even after a release.
        assert.are.equal(2, m:apply({ "ACQUIRE", "db", "bob", "1000" }))
        assert.are.equal(3, m:apply({ "ACQUIRE", "db", "bob", "1000" })) -- re-grant: new token
    end)

    it("never runs the clock backwards", function()
        m:apply({ "ACQUIRE", "db", "alice", "100" })
        m:advance(100)
        m:apply({ "RENEW", "other", "x", "1" }) -- any entry: the log's time is now 100
        -- An entry stamped earlier (a new leader's slower clock) does not revive alice.
        m.time_ms = m.time_ms - 50
        assert.are.equal(2, m:apply({ "ACQUIRE", "db", "bob", "100" }))
    end)

    it("refuses bad arguments", function()
        for _, bad in ipairs({ "0", "-5", "1.5", "x", "" }) do
            assert.are.same({ err = "ERR ttl_ms must be a positive integer" },
                m:apply({ "ACQUIRE", "db", "alice", bad }), bad)
        end
        assert.are.same({ err = "ERR wrong number of arguments for 'acquire' command" },
            m:apply({ "ACQUIRE", "db", "alice" }))
        assert.are.same({ err = "ERR unknown command 'NOPE'" }, m:apply({ "NOPE" }))
        assert.are.same({ err = "ERR unknown command 'ACQUIRE'" },
            m:query({ "ACQUIRE", "db", "a", "1" }))
        assert.are.equal(harness.null, m:query({ "HOLDER", "db" }))
    end)

    it("restores leases, deadlines and the token counter from a snapshot", function()
        for i = 1, 40 do
            m:apply({ "ACQUIRE", "lock" .. i, "owner" .. (i % 3), tostring(100 * i) })
            m:advance(50)
        end
        m:apply({ "RELEASE", "lock40", "owner1" })
        local queries = {}
        for i = 0, 41 do
            queries[#queries + 1] = { "HOLDER", "lock" .. i }
            queries[#queries + 1] = { "TOKEN", "lock" .. i }
        end
        local copy = m:check_snapshot(queries)
        -- Both go on alike: the same expiries and the same next token.
        m:advance(1000)
        copy:advance(1000)
        for i = 1, 40 do
            local cmd = { "ACQUIRE", "lock" .. i, "new", "1000" }
            assert.are.same(m:apply(cmd), copy:apply(cmd))
        end
        m:replay_matches(queries)
        copy:close()
    end)
end)
