-- examples/queue.lua through luaraft.harness: at-least-once delivery with a visibility
-- timeout by the log's clock, acks, and a snapshot that keeps reservations.
local harness = require("luaraft.harness")

describe("examples/queue.lua", function()
    local m
    before_each(function()
        -- A frozen clock: time moves only by m:advance, so deadlines are exact.
        m = harness.load("examples/queue.lua", { step_ms = 0 })
    end)
    after_each(function()
        m:close()
    end)

    local function stats(q)
        return m:query({ "STATS", q })
    end

    it("delivers items oldest first and forgets acked ones", function()
        assert.are.equal(1, m:apply({ "PUSH", "jobs", "a" }))
        assert.are.equal(2, m:apply({ "PUSH", "other", "x" }))
        assert.are.equal(3, m:apply({ "PUSH", "jobs", "b" }))
        assert.are.equal(2, m:query({ "LEN", "jobs" }))
        assert.are.same({ 1, "a" }, m:apply({ "RESERVE", "jobs", "1000" }))
        assert.are.same({ 3, "b" }, m:apply({ "RESERVE", "jobs", "1000" }))
        assert.are.equal(harness.null, m:apply({ "RESERVE", "jobs", "1000" }))
        assert.are.equal(harness.null, m:apply({ "RESERVE", "none", "1000" }))
        assert.are.equal(0, m:query({ "LEN", "jobs" }))
        assert.are.same({ "ready", 0, "reserved", 2, "redelivered", 0 }, stats("jobs"))
        assert.are.equal(1, m:apply({ "ACK", "jobs", "1" }))
        assert.are.equal(0, m:apply({ "ACK", "jobs", "1" }))
        assert.are.equal(0, m:apply({ "ACK", "jobs", "2" })) -- in another queue
        assert.are.equal(1, m:apply({ "ACK", "jobs", "3" }))
        assert.are.same({ "ready", 0, "reserved", 0, "redelivered", 0 }, stats("jobs"))
        assert.are.equal(1, m:query({ "LEN", "other" }))
    end)

    it("redelivers an item whose visibility timeout passed", function()
        m:apply({ "PUSH", "jobs", "a" })
        m:apply({ "PUSH", "jobs", "b" })
        assert.are.same({ 1, "a" }, m:apply({ "RESERVE", "jobs", "500" }))
        m:advance(499)
        assert.are.same({ 2, "b" }, m:apply({ "RESERVE", "jobs", "5000" }))
        assert.are.equal(harness.null, m:apply({ "RESERVE", "jobs", "500" }))
        m:advance(1)
        -- Reads use the last applied entry's time: a is ready once an entry at 500 applies.
        assert.are.equal(0, m:query({ "LEN", "jobs" }))
        assert.are.same({ 1, "a" }, m:apply({ "RESERVE", "jobs", "500" })) -- again
        assert.are.same({ "ready", 0, "reserved", 2, "redelivered", 1 }, stats("jobs"))
        -- The first worker's late ACK still removes it: delivery is at least once.
        assert.are.equal(1, m:apply({ "ACK", "jobs", "1" }))
        m:advance(10000)
        m:apply({ "PUSH", "jobs", "c" })
        assert.are.equal(2, m:query({ "LEN", "jobs" }))
        assert.are.same({ 2, "b" }, m:apply({ "RESERVE", "jobs", "0" })) -- 0: visible at once
        assert.are.same({ 2, "b" }, m:apply({ "RESERVE", "jobs", "0" }))
    end)

    it("refuses bad arguments", function()
        assert.are.same({ err = "ERR visibility_ms must be a non-negative integer" },
            m:apply({ "RESERVE", "jobs", "-1" }))
        assert.are.same({ err = "ERR id must be a non-negative integer" },
            m:apply({ "ACK", "jobs", "x" }))
        assert.are.same({ err = "ERR wrong number of arguments for 'push' command" },
            m:apply({ "PUSH", "jobs" }))
        assert.are.same({ err = "ERR unknown command 'PUSH'" }, m:query({ "PUSH", "jobs", "a" }))
    end)

    it("restores items, reservations and counters from a snapshot", function()
        for i = 1, 60 do
            m:apply({ "PUSH", "q" .. (i % 4), "item " .. i })
        end
        for i = 1, 30 do
            m:apply({ "RESERVE", "q" .. (i % 4), tostring(100 * i) })
            m:advance(20)
        end
        for id = 1, 60, 7 do
            m:apply({ "ACK", "q" .. (id % 4), tostring(id) })
        end
        local queries = {}
        for i = 0, 4 do
            queries[#queries + 1] = { "LEN", "q" .. i }
            queries[#queries + 1] = { "STATS", "q" .. i }
        end
        local copy = m:check_snapshot(queries)
        -- Both go on alike: the same redeliveries, then the same next id.
        m:advance(1500)
        copy:advance(1500)
        for i = 1, 40 do
            local cmd = { "RESERVE", "q" .. (i % 4), "1000" }
            assert.are.same(m:apply(cmd), copy:apply(cmd))
        end
        assert.are.same(m:apply({ "PUSH", "q9", "z" }), copy:apply({ "PUSH", "q9", "z" }))
        m:replay_matches(queries)
        copy:close()
    end)
end)
