-- luaraft.harness itself: the ctx it gives, and that its checks catch the mistakes they
-- exist for (a snapshot that forgets state, a read of the node's clock, a non-canonical
-- encoding).
local harness = require("luaraft.harness")

local paths = {}
local function script(source)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(source)
    f:close()
    paths[#paths + 1] = path
    return path
end

-- A counter whose snapshot is built by the given body (n is the state).
local function counter(snapshot_body, query_body)
    return script([[
local M = { reads = { GET = true, TIME = true } }
local n, last, snaps = 0, 0, 0
function M.apply(cmd, ctx) n = n + 1; last = ctx.time_ms; return n end
function M.query(cmd, ctx) ]] .. (query_body or "return n") .. [[ end
function M.snapshot(w) ]] .. snapshot_body .. [[ end
function M.restore(r)
    local s = r:read() or ""
    n, last = string.unpack(">i8i8", s .. string.rep("\0", 16 - #s))
end
return M
]])
end

describe("luaraft.harness", function()
    teardown(function()
        for _, p in ipairs(paths) do
            os.remove(p)
        end
    end)

    it("gives each entry a ctx: index + 1, term, time by step_ms, a seed per index", function()
        local m = harness.load(script([[
local M = {}
function M.apply(cmd, ctx) return { ctx.index, ctx.term, ctx.time_ms, ctx.time, ctx.seed } end
function M.snapshot(w) end
function M.restore(r) end
return M
]]), { time_ms = 5000, step_ms = 10, term = 3 })
        local a = m:apply({ "X" })
        assert.are.same({ 1, 3, 5000, 5 }, { a[1], a[2], a[3], a[4] })
        m:advance(990)
        local b = m:apply({ "X" })
        assert.are.same({ 2, 3, 6000, 6 }, { b[1], b[2], b[3], b[4] })
        assert.are_not.equal(a[5], b[5])
        assert.are.same({ index = 3, term = 3, time_ms = 6010, seed = m:ctx().seed }, m:ctx())
        m:close()
    end)

    it("passes a correct snapshot", function()
        local m = harness.load(counter([[w:write(string.pack(">i8i8", n, last))]]))
        m:apply({ "X" })
        m:check_snapshot({ { "GET" } }):close()
        m:replay_matches({ { "GET" } })
    end)

    it("fails a snapshot that forgets state, showing the differing replies", function()
        local m = harness.load(counter([[w:write(string.pack(">i8", 0))]]))
        m:apply({ "X" })
        local ok, err = pcall(m.check_snapshot, m, { { "GET" } })
        assert.is_false(ok)
        assert.matches("GET\n    original: 1\n    restored: 0", err, 1, true)
    end)

    it("fails a non-canonical snapshot", function()
        -- The same state, different bytes: here, how many snapshots the machine has taken.
        local m = harness.load(counter(
            [[snaps = snaps + 1; w:write(string.pack(">i8i8i8", n, last, snaps))]]))
        m:apply({ "X" })
        local ok, err = pcall(m.check_snapshot, m, { { "GET" } })
        assert.is_false(ok)
        assert.matches("snapshots to different bytes", err, 1, true)
    end)

    it("fails a read that uses something other than the state", function()
        -- math.random in a query continues from the last call's state, which a restore
        -- does not carry over: a read must depend on the state and its ctx only.
        local m = harness.load(counter([[w:write(string.pack(">i8i8", n, last))]],
            "return math.random(1 << 40)"), { time_ms = 1700000000000 })
        m:apply({ "X" })
        local ok, err = pcall(m.check_snapshot, m, { { "TIME" } })
        assert.is_false(ok)
        assert.matches("restored machine answers differently", err, 1, true)
    end)

    it("gives a query the ctx of where the machine is: its last index and its clock", function()
        local m = harness.load(counter([[w:write(string.pack(">i8i8", n, last))]],
            "return { ctx.index, ctx.term, ctx.time_ms, ctx.time, ctx.seed == nil, os.time() }"),
            { time_ms = 1700000000000, term = 2 })
        assert.are.same({ 0, 2, 1700000000000, 1700000000, 1, 1700000000 }, m:query({ "TIME" }))
        m:apply({ "X" })
        m:apply({ "X" })
        m:advance(5000)
        -- the clock moved by step_ms after each apply, then 5 s: as an idle node's reads see
        -- the log's clock move with its ticks
        assert.are.same({ 2, 2, 1700000005002, 1700000005, 1, 1700000005 }, m:query({ "TIME" }))
        -- and a restored or replayed machine, at the same place, answers the same
        m:check_snapshot({ { "TIME" } }):close()
        m:replay_matches({ { "TIME" } })
    end)

    it("raises when a script does not load", function()
        assert.has_error(function() harness.load(script("return 1")) end)
    end)
end)
