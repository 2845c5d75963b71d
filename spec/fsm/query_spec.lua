-- M.query(cmd, ctx): a read gets the ctx of the last applied entry (index, term, time_ms,
-- time; no seed), so that a script expires keys for readers by the log's clock.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local source = [[
local M = {}
function M.apply(cmd, ctx) return "ok" end
function M.query(cmd, ctx)
    return { ctx.index, ctx.term, ctx.time_ms, ctx.time, ctx.seed == nil, os.time() }
end
function M.snapshot(w) end
function M.restore(r) end
return M
]]

describe("M.query's ctx", function()
    teardown(S.cleanup)

    it("is the last applied entry's, and all 0 before any", function()
        local m = S.open(source)
        assert.are.same({ 0, 0, 0, 0, 1, 0 }, fsm.decode(m:query({ "T" })))
        m:apply({ "SET" }, { index = 7, term = 3, time_ms = 12345, seed = 9 })
        assert.are.same({ 7, 3, 12345, 12, 1, 12 }, fsm.decode(m:query({ "T" })))
        m:close()
    end)

    it("can be given, for a test or a transaction's read, without moving the clock", function()
        local m = S.open(source)
        m:apply({ "SET" }, { index = 2, term = 1, time_ms = 1000, seed = 1 })
        assert.are.same({ 5, 4, 99999, 99, 1, 99 },
            fsm.decode(m:query({ "T" }, { index = 5, term = 4, time_ms = 99999 })))
        assert.are.same({ 2, 1, 1000, 1, 1, 1 }, fsm.decode(m:query({ "T" })))
        m:close()
    end)
end)
