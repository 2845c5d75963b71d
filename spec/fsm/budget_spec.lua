-- The per-command memory budget (issue 10): a command that allocates in a loop is stopped
-- by the bytes it asks for, not by the process's memory, at the same point on every
-- replica whatever its history, with the same partial changes; the machine goes on.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local EVAL = S.EVAL_STATE

local limits = {
    instructions_max = 100000000,
    memory_bytes_max = 1024 * 1024 * 1024,
    command_memory_bytes_max = 64 * 1024 * 1024,
}
local memory = { err = "ERR script exceeded its memory budget" }

describe("fsm per-command memory budget", function()
    teardown(S.cleanup)

    local function eval(m, code)
        return S.apply(m, { "EVAL", code })
    end

    -- the issue's bomb: 1 MB strings kept in the state until something stops it
    local BOMB = [[
        M.state.bomb = {}
        for i = 1, 1e6 do
            M.state.bomb[i] = string.rep("x", 1e6 - 1) .. i
            M.state.bomb_mb = i
        end]]

    it("stops the bomb by the bytes asked for and keeps serving", function()
        local m = S.open(EVAL, limits)
        assert.are.same(memory, eval(m, BOMB))
        -- 64 MiB of 1 MB strings: each costs its rep (prepaid) and its concatenation
        local n = eval(m, "return M.state.bomb_mb")
        assert.is_true(n >= 20 and n <= 64, tostring(n))
        assert.are.equal("after", eval(m, "return 'after'"))
        -- the next command has a budget of its own
        assert.are.equal(1000000, eval(m, "return #(string.rep('y', 1e6))"))
        m:close()
    end)

    it("aborts at the same point on replicas with different histories", function()
        local fresh = S.open(EVAL, limits)
        -- another replica: a long history of garbage, deletions and short strings, then
        -- restored from a snapshot of the same state
        local other = S.open(EVAL, limits)
        eval(other, [[
            local t = {}
            for i = 1, 20000 do t['k' .. i] = { i } end
            for i = 1, 20000, 2 do t['k' .. i] = nil end
            M.junk = t]])
        eval(fresh, "M.state.a = 1; M.state.s = 'hello'")
        eval(other, "M.state.a = 1; M.state.s = 'hello'; M.junk = nil")
        local restored = S.open(EVAL, limits)
        restored:restore(other:snapshot())
        local code = [[
            M.state.list = {}
            for i = 1, 1e7 do
                M.state.list[i] = { ('v'):rep(100) .. i, i }
                M.state.n = i
            end]]
        for _, m in ipairs({ fresh, other, restored }) do
            assert.are.same(memory, eval(m, code))
        end
        local n = eval(fresh, "return M.state.n")
        assert.is_true(n > 1000)
        assert.are.equal(n, eval(other, "return M.state.n"))
        assert.are.equal(n, eval(restored, "return M.state.n"))
        assert.are.equal(fresh:snapshot(), restored:snapshot())
        for _, m in ipairs({ fresh, other, restored }) do
            m:close()
        end
    end)

    it("cannot be swallowed by pcall", function()
        local m = S.open(EVAL, limits)
        assert.are.same(memory, eval(m, [[
            pcall(function() local t = {} for i = 1, 1e7 do t[i] = ('x'):rep(1000) .. i end end)
            M.state.escaped = true
            return 'escaped']]))
        assert.are.equal(S.fsm.null, eval(m, "return M.state.escaped"))
        m:close()
    end)

    it("refuses a huge string.rep before building it", function()
        local m = S.open(EVAL, limits)
        local t0 = os.clock()
        assert.are.same(memory, eval(m, "return #string.rep('x', 2^31 - 1)"))
        assert.is_true(os.clock() - t0 < 1)
        m:close()
    end)

    it("bounds concatenation bombs", function()
        local m = S.open(EVAL, limits)
        assert.are.same(memory, eval(m, "local s = 'x' for i = 1, 40 do s = s .. s end"))
        m:close()
    end)
end)
