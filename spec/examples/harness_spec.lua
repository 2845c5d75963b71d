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
        -- the seed m:ctx() announces is the one the entry gets: the node's (src/fsm/job.c)
        local next_seed = m:ctx().seed
        assert.are.equal(next_seed, m:apply({ "X" })[5])
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

    -- A store with a command table, expiry by the log's clock, M.tick and M.keyspace.
    local store = script([==[
local M = {}
M.commands = {
    GET = { read = true, arity = 2, keys = {1, 1, 1} },
    SET = { arity = -3, keys = {1, 1, 1} },
    MSET = { arity = -3, keys = {1, -1, 2}, flags = { "denyoom" } },
    FAIL = { arity = 1 },
    INFO2 = { read = true, arity = 1 },
}
M.tick_ms = 100
local data, deadline, ticks = {}, {}, 0
local function expire(now)
    for k, t in pairs(deadline) do
        if t <= now then data[k], deadline[k] = nil, nil end
    end
end
function M.apply(cmd, ctx)
    expire(ctx.time_ms)
    local op = cmd[1]:upper() -- the table's names are case-insensitive; cmd[1] is as sent
    if op == "SET" then
        data[cmd[2]] = cmd[3]
        if cmd[4] == "PX" then deadline[cmd[2]] = ctx.time_ms + math.tointeger(cmd[5]) end
        return { ok = "OK" }
    elseif op == "MSET" then
        for i = 2, #cmd, 2 do data[cmd[i]] = cmd[i + 1] end
        return { ok = "OK" }
    end
    error("failed")
end
function M.query(cmd, ctx)
    if cmd[1]:upper() == "INFO2" then return { map = { "ticks", ticks, "pi", { double = 3.5 } } } end
    local t = deadline[cmd[2]]
    if t and t <= ctx.time_ms then return nil end
    return data[cmd[2]]
end
function M.tick(ctx) ticks = ticks + 1; expire(ctx.time_ms) end
function M.keyspace(ctx)
    local n, e = 0, 0
    for k in pairs(data) do n = n + 1; if deadline[k] then e = e + 1 end end
    return { keys = n, expires = e }
end
function M.snapshot(w) w:write(luaraft.encode({ data, deadline, ticks })) end
function M.restore(r)
    local t = luaraft.decode(r:read())
    data, deadline, ticks = t[1], t[2], t[3]
end
return M
]==])

    it("routes m:call like the node: refusals with its text, reads to query, writes to apply", function()
        local m = harness.load(store, { time_ms = 1000, step_ms = 0 })
        assert.are.same({ err = "ERR unknown command 'nope', with args beginning with: 'a' " },
            m:call({ "nope", "a" }))
        assert.are.same({ err = "ERR wrong number of arguments for 'get' command" }, m:call({ "GET" }))
        assert.are.equal(0, m.index) -- a refusal applies nothing
        assert.are.same({ ok = "OK" }, m:call({ "set", "k", "v" }))
        assert.are.equal(1, m.index)
        assert.are.equal("v", m:call({ "GET", "k" }))
        assert.are.equal(1, m.index) -- a read is not logged
        assert.are.same({ map = { "ticks", 0, "pi", { double = 3.5 } } }, m:call({ "INFO2" }))
        assert.are.equal('{"ticks": 0, "pi": (double) 3.5}', harness.show(m:call({ "INFO2" })))
        assert.are.same({ err = "ERR failed" }, m:call({ "FAIL" }))
        m:close()
    end)

    it("shows the command table as the node sees it", function()
        local m = harness.load(store)
        local names = {}
        for i, c in ipairs(m:commands()) do
            names[i] = c.name
        end
        assert.are.same({ "fail", "get", "info2", "mset", "set" }, names)
        assert.are.same({ name = "mset", arity = -3, first_key = 1, last_key = -1, step = 2,
            read = false, flags = { "write", "denyoom" } }, m:commands()[4])
        assert.are.equal(100, m:tick_ms())
        m:close()
        assert.is_nil(harness.load(counter("")):commands())
    end)

    it("applies a transaction as one entry, a failing command's error its own reply", function()
        local m = harness.load(store, { time_ms = 1000, step_ms = 0 })
        assert.are.same({ { ok = "OK" }, { err = "ERR failed" }, "1", { ok = "OK" } },
            m:exec({ { "SET", "a", "1" }, { "FAIL" }, { "GET", "a" }, { "MSET", "b", "2", "c", "3" } }))
        assert.are.equal(1, m.index)
        assert.are.same({}, m:exec({}))
        assert.are.equal("2", m:query({ "GET", "b" }))
        m:close()
    end)

    it("ticks: the clock moves while idle, M.tick runs, readers see keys expire", function()
        local m = harness.load(store, { time_ms = 1000, step_ms = 0 })
        m:apply({ "SET", "s", "x", "PX", "500" })
        m:apply({ "SET", "p", "y" })
        assert.are.same({ 2, 1 }, m:keyspace())
        m:advance(600)
        -- readers expire it by the clock already; the state still holds it until an entry
        assert.are.equal(harness.null, m:query({ "GET", "s" }))
        assert.are.same({ 2, 1 }, m:keyspace())
        m:tick()
        assert.are.same({ 1, 0 }, m:keyspace())
        assert.are.same({ map = { "ticks", 1, "pi", { double = 3.5 } } }, m:query({ "INFO2" }))
        assert.are.equal(3, m.index)
        -- a restored and a replayed machine answer the same, the snapshot bytes included
        local queries = { { "GET", "s" }, { "GET", "p" }, { "INFO2" } }
        m:check_snapshot(queries):close()
        m:replay_matches(queries)
        m:close()
        assert.are.equal(harness.null, harness.load(counter("")):keyspace())
    end)

    it("raises when a script does not load", function()
        assert.has_error(function() harness.load(script("return 1")) end)
    end)
end)
