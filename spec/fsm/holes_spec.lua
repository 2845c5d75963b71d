-- Tables with holes in the state (issue 10): a replica that applied `M.state.h = {1, nil,
-- 3}` and one restored from a snapshot hold the same keys in different layouts (the
-- constructor made a three-slot array; decode inserts 1 and 3 one by one), so Lua's `#`,
-- whose answer for a table with several borders depends on the layout (lua_rawlen, Lua
-- 5.4 manual §3.4.7), gives 3 on one and 1 on the other. The table library must not
-- follow it: table.insert, remove, unpack, concat and sort take the sandbox's border,
-- which depends on the keys alone (fsm.h, "Length"). `#` itself is defined on sequences
-- only, and luaraft.encode names, at snapshot time, a state table that is not one.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local CTX = { index = 2, term = 1, time_ms = 0, seed = 7 }
local fsm_false = S.fsm.null -- false comes back as a null bulk (fsm.h, replies)

-- The applied replica and one restored from its snapshot, both holding `setup`'s state.
local function replicas(setup)
    local a = S.open(S.EVAL_STATE)
    a:apply({ "EVAL", setup }, { index = 1, term = 1, time_ms = 0, seed = 1 })
    local c = S.open(S.EVAL_STATE)
    c:restore(a:snapshot())
    return a, c
end

-- The same command on both: replies and states must be equal.
local function both(a, c, code)
    local ra = a:apply({ "EVAL", code }, CTX)
    local rc = c:apply({ "EVAL", code }, CTX)
    assert.are.equal(ra, rc, code)
    assert(a:snapshot() == c:snapshot(), "states differ after: " .. code)
    return S.fsm.decode(ra)
end

describe("tables with holes across a restore", function()
    teardown(S.cleanup)

    it("shows the layout hole itself: # differs, so it stays undefined off sequences", function()
        local a, c = replicas("M.state.h = { 1, nil, 3 }")
        local code = "return #M.state.h"
        -- If this ever gives equal answers, the note in fsm.h ("Length") can be relaxed.
        assert.are_not.equal(a:apply({ "EVAL", code }, CTX), c:apply({ "EVAL", code }, CTX))
        a:close()
        c:close()
    end)

    local CASES = {
        "return { select('#', table.unpack(M.state.h)) }",
        "return table.concat(M.state.h, ',')",
        "table.insert(M.state.h, 'x'); return luaraft.keys(M.state.h)",
        "table.insert(M.state.h, 1, 'y'); return luaraft.keys(M.state.h)",
        "return { table.remove(M.state.h), luaraft.keys(M.state.h) }",
        "return { table.remove(M.state.h, 1), luaraft.keys(M.state.h) }",
        "return { pcall(table.sort, M.state.h) }",
        "table.sort(M.state.h, function(x, y) return tostring(x) < tostring(y) end); return luaraft.keys(M.state.h)",
    }
    for _, code in ipairs(CASES) do
        it("gives one answer to " .. code, function()
            local a, c = replicas("M.state.h = { 1, nil, 3, nil, nil, 6, 7, 8 }")
            both(a, c, code)
            a:close()
            c:close()
        end)
    end

    it("answers with the keys alone: the border of {1, nil, 3} is 1", function()
        local a, c = replicas("M.state.h = { 1, nil, 3 }")
        local r = both(a, c, "return { select('#', table.unpack(M.state.h)), table.concat(M.state.h, ',') }")
        assert.are.same({ 1, "1" }, r)
        a:close()
        c:close()
    end)

    it("gives a query, which sees the state through read-only proxies, the same border", function()
        local source = S.EVAL_HEAD .. "function M.query(cmd, ctx) return M.apply(cmd, ctx) end\n"
            .. S.STATE_IO .. "return M\n"
        local a = S.open(source)
        a:apply({ "EVAL", "M.state.h = { 1, nil, 3 }" }, CTX)
        local c = S.open(source)
        c:restore(a:snapshot())
        local code = "return { select('#', table.unpack(M.state.h)), table.concat(M.state.h, ','), pcall(table.insert, M.state.h, 9) }"
        local ra, rc = a:query({ "EVAL", code }), c:query({ "EVAL", code })
        assert.are.equal(ra, rc)
        local r = S.fsm.decode(ra)
        assert.are.same({ 1, "1", fsm_false }, { r[1], r[2], r[3] })
        assert.matches("must not change state", r[4])
        a:close()
        c:close()
    end)

    it("keeps a sequence's length, and honours __len", function()
        local a, c = replicas("M.state.s = { 'a', 'b', 'c', 'd', 'e' }")
        assert.are.same({ 5, "a-b-c-d-e" },
            both(a, c, "return { select('#', table.unpack(M.state.s)), table.concat(M.state.s, '-') }"))
        assert.are.same({ 2, "p,q" }, both(a, c, [[
            local t = setmetatable({ 'p', 'q', 'r' }, { __len = function() return 2 end })
            return { select('#', table.unpack(t)), table.concat(t, ',') }]]))
        a:close()
        c:close()
    end)

    it("charges the border's probes against the instruction budget", function()
        -- keys 1, 2, 4, ..., 2^62: each search doubles 63 times, then bisects 62 times,
        -- about 250 units; 2,000 of them cannot fit in 200,000 (uncharged: ~12,000)
        local m = S.open(S.EVAL_STATE, { instructions_max = 200000 })
        local code = [[
            local t = {}
            for i = 0, 62 do t[1 << i] = true end
            for _ = 1, %d do table.concat(t, '', 1, 0) end
            return 'done']]
        assert.are.equal("done", S.apply(m, { "EVAL", code:format(20) }))
        assert.are.same({ err = "ERR script exceeded its instruction budget" },
            S.apply(m, { "EVAL", code:format(2000) }))
        m:close()
    end)

    it("names, at snapshot time, the state tables that are not sequences", function()
        local m = S.open(S.EVAL_STATE)
        S.apply(m, { "EVAL", [[
            M.state.seq = { 'a', 'b', 'c' }
            M.state.names = { x = 1, y = { 1, 2 } }
            M.state.empty = {}
            M.state.users = { alice = { tags = { 'a', nil, 'c' } }, bob = { [2] = 'only' } }]] })
        local snap = m:snapshot()
        assert.are.same({ 2, "users.alice.tags" }, { m:holes() })
        -- the snapshot is whole all the same: compaction does not stall on a warning
        local c = S.open(S.EVAL_STATE)
        c:restore(snap)
        assert(c:snapshot() == snap)
        S.apply(m, { "EVAL", "M.state.users = nil" })
        m:snapshot()
        assert.are.same({ 0, "" }, { m:holes() })
        -- an encode inside a command is not a snapshot: nothing is noted
        S.apply(m, { "EVAL", "return luaraft.encode({ 1, nil, 3 })" })
        assert.are.same({ 0, "" }, { m:holes() })
        m:close()
        c:close()
    end)

    -- Random insert and remove sequences on holed state tables, each step applied to the
    -- replica that built the table and to one restored from its snapshot.
    it("agrees over 300 random table-library sequences on holed tables", function()
        local rng = 12345
        local function draw(n)
            rng = (rng * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
            return (rng >> 17) % n
        end
        local OPS = {
            function() return "table.insert(M.state.h, " .. draw(100) .. ")" end,
            function() return "table.insert(M.state.h, 1, " .. draw(100) .. ")" end,
            function() return "M.state.out = table.remove(M.state.h)" end,
            function() return "M.state.out = table.remove(M.state.h, 1)" end,
            function() return "M.state.h[" .. (draw(12) + 1) .. "] = nil" end,
            function() return "M.state.h[" .. (draw(12) + 1) .. "] = " .. draw(9) end,
            function() return "M.state.out = table.concat(M.state.h, ':')" end,
            function() return "M.state.out = select('#', table.unpack(M.state.h))" end,
            function() return "pcall(table.sort, M.state.h)" end,
        }
        local cases = 0
        for _ = 1, 300 do
            local keys = {}
            for k = 1, 10 do
                if draw(3) > 0 then keys[#keys + 1] = ("[%d] = %d"):format(k, k) end
            end
            local a, c = replicas("M.state.h = { " .. table.concat(keys, ", ") .. " }")
            for _ = 1, 8 do
                both(a, c, OPS[draw(#OPS) + 1]() .. "; return luaraft.encode(M.state)")
            end
            a:close()
            c:close()
            cases = cases + 1
        end
        assert.are.equal(300, cases)
    end)
end)
