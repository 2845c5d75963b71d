-- Applying the payload kinds (src/fsm/job.c): a TRANSACTION runs its commands back to
-- back with the entry's ctx, each command's error its own reply (Redis's EXEC), each with
-- its own instruction budget; a TICK moves the clock and runs M.tick(ctx) with its reply
-- and errors dropped; M.tick_ms is declared and checked at load.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

-- A small store: SET/INCR/BOOM/SPIN write, GET/TIME read (M.commands), TICK counts ticks.
local STORE = [==[
local M = {}
M.commands = {
    SET = { arity = 3, keys = {1, 1, 1} },
    INCR = { arity = 2, keys = {1, 1, 1} },
    BOOM = { arity = -1 },
    SPIN = { arity = 1 },
    WORK = { arity = 1 },
    RAND = { arity = 1 },
    GET = { read = true, arity = 2, keys = {1, 1, 1} },
    TIME = { read = true, arity = 1 },
    TICKS = { read = true, arity = 1 },
    QRAND = { read = true, arity = 1 },
}
local data, ticks, last_tick = {}, 0, nil
function M.apply(cmd, ctx)
    local op = cmd[1]
    if op == "SET" then data[cmd[2]] = cmd[3]; return { ok = "OK" }
    elseif op == "INCR" then
        local n = math.tointeger(data[cmd[2]] or 0) + 1
        data[cmd[2]] = tostring(n)
        return n
    elseif op == "BOOM" then data.boomed = "yes"; error(cmd[2] or "boom")
    elseif op == "SPIN" then while true do end
    elseif op == "WORK" then local x = 0; for i = 1, 3000 do x = x + i end; return x
    elseif op == "RAND" then return { ctx.seed ~= nil, math.random(1 << 40) }
    end
end
function M.query(cmd, ctx)
    if cmd[1] == "GET" then return data[cmd[2]]
    elseif cmd[1] == "TIME" then return { ctx.index, ctx.term, ctx.time_ms, ctx.seed == nil }
    elseif cmd[1] == "TICKS" then return { ticks, last_tick and last_tick.time_ms or 0 }
    elseif cmd[1] == "QRAND" then return math.random(1 << 40) end
end
function M.tick(ctx)
    ticks = ticks + 1
    last_tick = ctx
    if data.tick_fails == "1" then data.tick_failed = "yes"; error("tick failed") end
    if data.tick_spins then while true do end end
    return "dropped"
end
function M.snapshot(w) w:write(luaraft.encode({ data, ticks })) end
function M.restore(r) local t = luaraft.decode(r:read()); data, ticks = t[1], t[2] end
return M
]==]

local function tx(m, cmds, index, time_ms)
    return m:apply_entry(fsm.payload("transaction", cmds, time_ms or 1000),
        { index = index or 1, term = 1 })
end

describe("a TRANSACTION entry", function()
    teardown(S.cleanup)

    it("applies its commands back to back and replies with the array of their replies", function()
        local m = S.open(STORE)
        assert.are.equal("*3\r\n+OK\r\n:1\r\n:2\r\n",
            tx(m, { { "SET", "a", "0" }, { "INCR", "a" }, { "INCR", "a" } }))
        assert.are.equal("$1\r\n2\r\n", m:query({ "GET", "a" }))
        assert.are.equal("*0\r\n", tx(m, {}, 2))
        m:close()
    end)

    it("runs reads through M.query with the entry's index and time, writes with its seed", function()
        local m = S.open(STORE)
        local reply = fsm.decode(tx(m, { { "SET", "a", "x" }, { "GET", "a" }, { "TIME" }, { "RAND" } },
            7, 5000))
        assert.are.equal("x", reply[2])
        assert.are.same({ 7, 1, 5000, 1 }, reply[3]) -- no seed in a read's ctx
        assert.are.equal(1, reply[4][1])
        -- the clock moved to the entry's time, as for any entry
        assert.are.same({ 7, 1, 5000, 1 }, fsm.decode(m:query({ "TIME" })))
        m:close()
    end)

    it("keeps going after a command's error, which is that command's reply", function()
        local m = S.open(STORE)
        assert.are.equal("*4\r\n+OK\r\n-ERR bad thing\r\n:2\r\n-ERR boom\r\n",
            tx(m, { { "SET", "a", "1" }, { "BOOM", "bad thing" }, { "INCR", "a" }, { "BOOM" } }))
        assert.are.equal("$1\r\n2\r\n", m:query({ "GET", "a" }))
        -- and the failing command's own effects up to its error are kept, as for an apply
        assert.are.equal("$3\r\nyes\r\n", m:query({ "GET", "boomed" }))
        m:close()
    end)

    it("gives each command a budget of its own", function()
        local m = S.open(STORE, { instructions_max = 20000 })
        -- each WORK fits the budget, the five together would not
        local work = fsm.decode(tx(m, { { "WORK" }, { "WORK" }, { "WORK" }, { "WORK" }, { "WORK" } }))
        assert.are.same({ 4501500, 4501500, 4501500, 4501500, 4501500 }, work)
        -- an endless command is stopped, and the next still runs
        assert.are.equal("*3\r\n-ERR script exceeded its instruction budget\r\n+OK\r\n:1\r\n",
            tx(m, { { "SPIN" }, { "SET", "b", "0" }, { "INCR", "b" } }, 2))
        m:close()
    end)

    it("routes by M.reads in a script without a command table", function()
        local m = S.open([[
local M = { reads = { GET = true } }
local v = "none"
function M.apply(cmd, ctx) v = cmd[2]; return "applied" end
function M.query(cmd, ctx) return "read " .. v .. " at " .. ctx.time_ms end
function M.snapshot(w) end
function M.restore(r) end
return M]])
        assert.are.equal("*3\r\n$7\r\napplied\r\n$12\r\nread x at 40\r\n$7\r\napplied\r\n",
            tx(m, { { "SET", "x" }, { "get" }, { "SET", "y" } }, 1, 40))
        m:close()
    end)

    it("answers the same on a replica that replays it and on one restored before it", function()
        local cmds = { { "SET", "a", "1" }, { "RAND" }, { "BOOM" }, { "INCR", "a" }, { "GET", "a" } }
        local a, b = S.open(STORE), S.open(STORE)
        tx(a, { { "SET", "z", "9" } }, 1)
        tx(b, { { "SET", "z", "9" } }, 1)
        local c = S.open(STORE)
        c:restore((a:snapshot()))
        local ra, rb, rc = tx(a, cmds, 2, 70), tx(b, cmds, 2, 70), tx(c, cmds, 2, 70)
        assert.are.equal(ra, rb)
        assert.are.equal(ra, rc)
        assert.are.equal((a:snapshot()), (c:snapshot()))
        a:close()
        b:close()
        c:close()
    end)
end)

describe("a TICK entry", function()
    teardown(S.cleanup)

    it("moves the clock and runs M.tick(ctx) like an apply, its reply dropped", function()
        local m = S.open(STORE)
        assert.are.same({ 0, 0 }, fsm.decode(m:query({ "TICKS" })))
        assert.are.equal("+OK\r\n", m:apply_entry(fsm.payload("tick", 9000), { index = 4, term = 2 }))
        assert.are.same({ 1, 9000 }, fsm.decode(m:query({ "TICKS" })))
        assert.are.same({ 4, 2, 9000, 1 }, fsm.decode(m:query({ "TIME" })))
        m:close()
    end)

    it("swallows M.tick's errors and spent budgets, the same on every replica", function()
        local m = S.open(STORE, { instructions_max = 20000 })
        m:apply({ "SET", "tick_fails", "1" }, { index = 1, term = 1, time_ms = 1 })
        assert.are.equal("+OK\r\n", m:apply_entry(fsm.payload("tick", 10), { index = 2, term = 1 }))
        assert.matches("tick failed", m:last_error())
        -- its effects up to the error are kept
        assert.are.equal("$3\r\nyes\r\n", m:query({ "GET", "tick_failed" }))
        m:apply({ "SET", "tick_spins", "1" }, { index = 3, term = 1, time_ms = 11 })
        m:apply({ "SET", "tick_fails", "0" }, { index = 4, term = 1, time_ms = 11 })
        assert.are.equal("+OK\r\n", m:apply_entry(fsm.payload("tick", 20), { index = 5, term = 1 }))
        assert.matches("instruction budget", m:last_error())
        assert.are.same({ 2, 20 }, fsm.decode(m:query({ "TICKS" })))
        -- the machine is still usable
        assert.are.equal("+OK\r\n", m:apply({ "SET", "a", "b" }, { index = 6, term = 1 }))
        m:close()
    end)

    it("only moves the clock when the script has no M.tick", function()
        local m = S.open([[
local M = {}
function M.apply(cmd, ctx) return 1 end
function M.query(cmd, ctx) return ctx.time_ms end
function M.snapshot(w) end
function M.restore(r) end
return M]])
        assert.are.equal("+OK\r\n", m:apply_entry(fsm.payload("tick", 123), { index = 1, term = 1 }))
        assert.are.equal(":123\r\n", m:query({ "T" }))
        assert.are.equal(0, m:tick_ms())
        m:close()
    end)
end)

describe("M.tick_ms, M.tick and M.keyspace in the contract", function()
    teardown(S.cleanup)

    local function source(fields)
        return "local M = {" .. fields .. "}\nfunction M.apply() end\n"
            .. "function M.snapshot(w) end\nfunction M.restore(r) end\nreturn M\n"
    end

    local function refusal(fields)
        local path = S.script(source(fields))
        local m, err = fsm.open(path)
        assert.is_nil(m)
        return err:sub(#path + 3):gsub(" %(the script could not be loaded%)$", "")
    end

    local TICK_MS = "M.tick_ms is optional; when present it is the milliseconds of idle log "
        .. "after which the leader logs a TICK entry, an integer from 1 to 86400000 (see "
        .. "README.md, Writing a state machine)"
    local OPTIONAL = "M.tick(ctx), M.keyspace(ctx) and M.upgrade(old_version, ctx) are optional, "
        .. "but when present they must be functions (see README.md, Writing a state machine)"

    it("gives the declared tick_ms to the node", function()
        local m = S.open(source("tick_ms = 250"))
        assert.are.equal(250, m:tick_ms())
        m:close()
        m = S.open(source("tick_ms = 86400000, tick = function() end, keyspace = function() end"))
        assert.are.equal(86400000, m:tick_ms())
        m:close()
    end)

    it("refuses a tick_ms that is not a positive integer of at most a day", function()
        for _, v in ipairs({ "0", "-5", "86400001", "1.5", "math.huge" }) do
            assert.are.equal("M.tick_ms is out of range: " .. TICK_MS, refusal("tick_ms = " .. v), v)
        end
        assert.are.equal("M.tick_ms is not a number: " .. TICK_MS, refusal("tick_ms = '100'"))
    end)

    it("refuses an M.tick or M.keyspace that is not a function", function()
        assert.are.equal("M.tick is a number, not a function: " .. OPTIONAL, refusal("tick = 5"))
        assert.are.equal("M.keyspace is a table, not a function: " .. OPTIONAL,
            refusal("keyspace = {}"))
        assert.are.equal("M.tick is a string, not a function; M.keyspace is a boolean, not a "
            .. "function: " .. OPTIONAL, refusal("tick = 'x', keyspace = true"))
    end)
end)
