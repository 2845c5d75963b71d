-- LOAD entries (RAFT.LOAD; src/fsm/fsm_upgrade.c, the LOAD case of src/fsm/job.c): the
-- running script's state moves into the new one through M.snapshot and M.restore, the new
-- one's M.upgrade(old_version, ctx) runs with the entry's ctx under the budget, and from
-- then on the new script serves every command; any failure is an error reply that leaves
-- the old script running, the same wherever the entry is applied.
--
-- What it catches: state lost or reshaped wrongly across the switch; M.upgrade not run,
-- run with the wrong old version or ctx, or outside the budget; a failed upgrade that
-- leaves a half-switched machine; two machines with the same history ending in different
-- states; a malformed LOAD payload that decodes. What it cannot catch: the node's side
-- (the log, replicas, snapshots that carry the script): spec/node/upgrade_spec.lua.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

-- A counter store, version v: INCR k, GET k; VERSION says which version serves it; its
-- M.upgrade (when upgrade is given, its body) sees old and ctx.
local function counter(v, upgrade)
    return string.format([==[
local M = {}
M.version = %q
M.commands = {
    INCR = { arity = 2, keys = {1, 1, 1} },
    VERSION = { arity = 1 },
    GET = { read = true, arity = 2, keys = {1, 1, 1} },
}
local data = {}
function M.apply(cmd, ctx)
    if cmd[1] == "INCR" then
        data[cmd[2]] = (data[cmd[2]] or 0) + 1
        return data[cmd[2]]
    end
    return M.version
end
function M.query(cmd) return data[cmd[2]] end
function M.snapshot(w) w:write(luaraft.encode(data)) end
function M.restore(r)
    local parts = {}
    for chunk in r.read, r do parts[#parts + 1] = chunk end
    data = luaraft.decode(table.concat(parts))
end
%s
return M
]==], v, upgrade and ("function M.upgrade(old, ctx)\n" .. upgrade .. "\nend") or "")
end

local function entry(m, payload, index)
    return fsm.decode(m:apply_entry(payload, { index = index, term = 2 }))
end

local function incr(m, key, index)
    return entry(m, fsm.payload("command", { "INCR", key }, 1000), index)
end

local function load(m, name, text, index)
    return entry(m, fsm.payload("load", name, text, 5000), index)
end

describe("a LOAD entry", function()
    after_each(S.cleanup)

    it("moves the state into the new script and runs its M.upgrade there", function()
        local m = S.open(counter("1"))
        assert.equal(1, incr(m, "a", 1))
        assert.equal(2, incr(m, "a", 2))
        local v2 = counter("2", "data.upgraded = old .. '@' .. ctx.index .. '/' .. ctx.time_ms")
        assert.same({ ok = "OK" }, load(m, "counter2.lua", v2, 3))
        assert.equal("2", entry(m, fsm.payload("command", { "VERSION" }), 4))
        assert.equal(3, incr(m, "a", 5))
        assert.equal("1@3/5000", fsm.decode(m:query({ "GET", "upgraded" })))
        -- The new command table is in force: a command the old script did not have.
        local v3 = counter("3"):gsub("VERSION = { arity = 1 },",
            "VERSION = { arity = 1 },\n    DOUBLE = { arity = 2 },")
        assert.same({ ok = "OK" }, load(m, "counter3.lua", v3, 6))
        assert.truthy(m:check({ "DOUBLE", "x" }))
        assert.equal("3", entry(m, fsm.payload("command", { "VERSION" }), 7))
    end)

    it("gives the same state on machines with the same history", function()
        local v2 = counter("2", "for k, v in pairs(data) do data[k] = v * 10 end")
        local snaps = {}
        for i = 1, 2 do
            local m = S.open(counter("1"))
            for k = 1, 50 do
                incr(m, "k" .. (k % 7), k)
            end
            assert.same({ ok = "OK" }, load(m, "counter2.lua", v2, 51))
            incr(m, "k1", 52)
            snaps[i] = m:snapshot()
        end
        assert.equal(snaps[1], snaps[2])
        local m = S.open(counter("1"))
        m:restore(snaps[1])
        assert.equal(81, fsm.decode(m:query({ "GET", "k1" }))) -- 8 increments, x10, +1
    end)

    it("keeps the old script when the new one fails, with the same error every time", function()
        local cases = {
            { "syntax.lua", "return {", "the new script does not load: syntax.lua:" },
            { "contract.lua", "return {}", "M.apply is missing" },
            { "restore.lua", counter("2"):gsub("function M.restore%(r%)",
                "function M.restore(r) error('no restore') end\nlocal function unused(r)"),
                "M.restore of the new script failed: " },
            { "upgrade.lua", counter("2", "error('refused')"), "M.upgrade failed: " },
            { "spin.lua", counter("2", "while true do end"), "M.upgrade failed: " },
        }
        for _, case in ipairs(cases) do
            local replies = {}
            for i = 1, 2 do
                local m = S.open(counter("1"), { instructions_max = 100000 })
                incr(m, "a", 1)
                replies[i] = load(m, case[1], case[2], 2)
                -- Still the old script, with its state.
                assert.equal("1", entry(m, fsm.payload("command", { "VERSION" }), 3))
                assert.equal(2, incr(m, "a", 4))
            end
            assert.equal("table", type(replies[1]), case[1])
            assert.truthy(replies[1].err:find("^ERR RAFT.LOAD: "), replies[1].err)
            assert.truthy(replies[1].err:find(case[3], 1, true), replies[1].err)
            assert.same(replies[1], replies[2])
        end
    end)

    it("is a payload kind of its own, refused when malformed", function()
        local p = fsm.payload("load", "x.lua", "return 1", 7)
        assert.same({ kind = "load", time_ms = 7 }, fsm.payload_decode(p))
        assert.is_nil(fsm.payload("load", "", "return 1"))
        assert.is_nil(fsm.payload("load", "a\0b", "return 1"))
        assert.is_nil(fsm.payload("load", ("n"):rep(256), "return 1"))
        -- A name length past the end of the payload.
        assert.is_nil(fsm.payload_decode(p:sub(1, 10) .. "\200" .. p:sub(12)))
    end)
end)
