-- examples/counter.lua through luaraft.harness: the commands, their errors, and a snapshot
-- that restores to the same count.
local harness = require("luaraft.harness")

describe("examples/counter.lua", function()
    local m
    before_each(function()
        m = harness.load("examples/counter.lua")
    end)
    after_each(function()
        m:close()
    end)

    it("counts with INCR and INCRBY, reads with GET", function()
        assert.are.equal(0, m:query({ "GET" }))
        assert.are.equal(1, m:apply({ "INCR" }))
        assert.are.equal(42, m:apply({ "incrby", "41" }))
        assert.are.equal(40, m:apply({ "INCRBY", "-2" }))
        assert.are.equal(40, m:query({ "GET" }))
        assert.is_true(m.m:is_read("get"))
        assert.is_false(m.m:is_read("INCR"))
    end)

    it("refuses bad commands and leaves the count alone", function()
        m:apply({ "INCR" })
        assert.are.same({ err = "ERR value is not an integer or out of range" },
            m:apply({ "INCRBY", "1.5" }))
        assert.are.same({ err = "ERR usage: INCR | INCRBY n | GET" }, m:apply({ "INCR", "x" }))
        assert.are.same({ err = "ERR usage: INCR | INCRBY n | GET" }, m:apply({ "DECR" }))
        assert.are.same({ err = "ERR usage: GET" }, m:query({ "INCR" }))
        assert.are.equal(1, m:query({ "GET" }))
    end)

    it("restores from a snapshot and replays to the same state", function()
        for i = 1, 50 do
            m:apply({ "INCRBY", tostring(i * 7) })
        end
        local copy = m:check_snapshot({ { "GET" } })
        assert.are.equal(m:apply({ "INCR" }), copy:apply({ "INCR" }))
        m:replay_matches({ { "GET" } })
        copy:close()
    end)
end)
