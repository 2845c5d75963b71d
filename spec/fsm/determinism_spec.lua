-- The determinism proof (issue 10, part 3): generated hostile commands applied to three
-- replicas with different histories give identical replies, identical abort points and
-- identical states. Replica A applies the log fresh; B is "restarted": a machine that
-- applied half the log and was thrown away, then a new one that replays it all from the
-- start (another Lua state, another heap, the same log); C restores a snapshot taken at
-- the half by a fourth machine whose history also held garbage that was deleted, then
-- applies the rest. Each command's reply must be the same on every replica that applies
-- it, and the states (their snapshots, byte for byte) the same at every checkpoint.
--
-- The commands are drawn from a seeded generator (LUARAFT_SEEDS sets how many seeds; the
-- default runs 1,200 commands per seed): endless loops, loops in message handlers and in
-- error objects' __tostring, string.rep and concatenation bombs, table.move and
-- table.insert over large tables, deep recursion, pcall swallowing the budget error,
-- metatable tricks (__index, __newindex, __len, __gc and __mode refused), pairs over
-- 10,000 string keys, tables with holes built inside a command and kept in the state
-- (table.insert, remove, unpack, concat and sort on them), the clock, math.random
-- and tostring, allocation bombs stopped by the memory budget, pattern backtracking
-- (find, gsub with a function that writes the state, gmatch, %b), and plain writes and
-- deletes of the state, interleaved.
--
-- What it catches: a budget or a limit that aborts at a different point depending on the
-- heap (allocation history, string addresses, table layouts), an iteration order or a
-- value derived from addresses or time, partial changes of an aborted command that
-- differ, a snapshot that does not restore the state exactly. What it cannot catch: a
-- difference that only other builds or machines show (every replica here is this
-- process), and `#` on a table with holes that lives in the state across a snapshot
-- (its border depends on the table's layout, which a restore does not reproduce: `#` is
-- defined on sequences only, fsm.h "Length"; the generator applies `#` to such tables
-- only inside a command, and the table library, which uses the sandbox's border, to
-- tables kept in the state too; spec/fsm/holes_spec.lua shows `#` differing).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local EVAL = S.EVAL_STATE

local LIMITS = {
    instructions_max = 200000,
    memory_bytes_max = 512 * 1024 * 1024,
    command_memory_bytes_max = 8 * 1024 * 1024,
}

-- Each template turns a draw (an integer) into a command's Lua code.
local HOLES -- the index of the first of the templates on tables with holes in the state
local TEMPLATES = {
    function() return "while true do end" end,
    function(r) return ("local n = 0; while true do n = n + %d end"):format(r % 7 + 1) end,
    function(r) return ("return #string.rep('x', %d)"):format(({ 10, 1e4, 1e6, 1e8, 2 ^ 31 - 1 })[r % 5 + 1]) end,
    function(r) return ("local s = 'ab'; for i = 1, %d do s = s .. s end; return #s"):format(r % 40) end,
    function(r)
        return ("local t = {}; for i = 1, %d do t[i] = i end; table.move(t, 1, #t, 2); return #t")
            :format(({ 10, 1000, 100000 })[r % 3 + 1])
    end,
    function(r)
        return ("local t = { 1, 2, 3 }; table.move(t, 1, %d, 2); return #t"):format(({ 1 << 20, 1 << 27, 1 << 40 })[r % 3 + 1])
    end,
    function(r)
        return ("local t = {}; for i = 1, %d do table.insert(t, 1, i) end; return t[1]")
            :format(({ 10, 300, 3000 })[r % 3 + 1])
    end,
    function() return "local function f(n) return f(n + 1) + 1 end; return f(1)" end,
    function() return "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end; return f(150)" end,
    function(r)
        return ("M.state.swallowed = (M.state.swallowed or 0) + 1; "
            .. "local ok, e = pcall(function() while true do end end); M.state.after = %d; return tostring(ok)")
            :format(r)
    end,
    function() return "return { xpcall(function() error('x') end, function() while true do end end) }" end,
    function() return "error(setmetatable({}, { __tostring = function() while true do end end }))" end,
    function(r) return ("error({ code = %d })"):format(r % 100) end,
    function(r)
        return ("local t = setmetatable({}, { __index = function(_, k) return k * %d end }); return t[21]")
            :format(r % 9 + 1)
    end,
    function(r)
        return ("local t = setmetatable({}, { __newindex = function(_, k, v) M.state['ni' .. k] = v end }); "
            .. "t[%d] = 'set'; return M.state['ni%d']"):format(r % 50, r % 50)
    end,
    function() return "return #setmetatable({}, { __len = function() return 7 end })" end,
    function() return "setmetatable({}, { __gc = function() end })" end,
    function() return "setmetatable({}, { __mode = 'k' })" end,
    function(r)
        return ("local t = {}; for i = 1, 10000 do t['k' .. ((i * 7919 + %d) %% 10007)] = i end; "
            .. "local out, n = {}, 0; for k, v in pairs(t) do n = n + 1; if n %% 997 == 0 then out[#out + 1] = k end end; "
            .. "return out"):format(r % 1000)
    end,
    function(r)
        return ("M.state.big = M.state.big or {}; for i = 1, 200 do M.state.big['b' .. ((i * 31 + %d) %% 5000)] = i end; "
            .. "local out, n = {}, 0; for k in pairs(M.state.big) do n = n + 1; if n %% 101 == 0 then out[#out + 1] = k end end; "
            .. "return { n, out }"):format(r % 5000)
    end,
    function(r)
        return ("local t = { 1, nil, 3, nil, %d }; t[9] = 9; return { #t, select('#', table.unpack(t)), t[5] }")
            :format(r % 10)
    end,
    -- tables with holes that live in the state across the snapshot: the table library's
    -- answers (never `#`'s, which is defined on sequences only: fsm.h, "Length")
    function(r) return ("M.state.holes = { %d, nil, 3, nil, nil, nil, 7 }; return 'made'"):format(r % 5 + 1) end,
    function(r)
        return ("M.state.holes = M.state.holes or { 1, nil, 3, nil, nil, 6, 7 }; M.state.holes[%d] = %d; "
            .. "table.insert(M.state.holes, %d); "
            .. "return { select('#', table.unpack(M.state.holes)), pcall(table.concat, M.state.holes, ',') }")
            :format(r % 24 + 1, r % 7, r % 100)
    end,
    function(r)
        return ("local h = M.state.holes; if not h then return 'none' end; h[%d] = %s; "
            .. "return { table.remove(h, %d), table.remove(h), luaraft.keys(h) }")
            :format(r % 12 + 1, r % 3 == 0 and "nil" or tostring(r % 50), r % 2 + 1)
    end,
    function(r)
        return ("local h = M.state.holes; if not h then return 'none' end; table.insert(h, 1, %d); "
            .. "return { pcall(table.sort, h), luaraft.keys(h) }")
            :format(r % 10)
    end,
    function() return "return { os.time(), math.random(1 << 40), tostring({}) ~= nil, os.clock() }" end,
    function(r)
        return ("M.state.list = {}; for i = 1, 1e7 do M.state.list[i] = ('v'):rep(%d) .. i; M.state.n = i end")
            :format(r % 200 + 1)
    end,
    function(r) return ("M.state['k%d'] = string.rep('v', %d); return 'OK'"):format(r % 64, r % 300) end,
    function(r) return ("M.state['k%d'] = nil; return 'deleted'"):format(r % 64) end,
    function(r)
        return ("M.state.c = (M.state.c or 0) + %d; return M.state.c"):format(r % 10)
    end,
    function() return "M.state.list = nil; M.state.big = nil; return collectgarbage('count')" end,
    function() return "collectgarbage(); return 'collected'" end,
    -- patterns: backtracking that stock Lua never returns from, charged by its steps
    function(r)
        return ("return { string.find(('a'):rep(%d), ('a*'):rep(%d) .. 'b') }"):format(r % 40, r % 12 + 1)
    end,
    function(r)
        return ("M.state.g = 0; local a = ('a'):rep(%d); local s = (a .. 'b' .. a .. 'c'):rep(10); "
            .. "local out = s:gsub('(a*)(a*)(a*)b', function(x) M.state.g = M.state.g + 1; return #x end); "
            .. "return { #out, M.state.g }"):format(r % 60)
    end,
    function(r)
        return ("local n = 0; for w in (('ab  '):rep(%d)):gmatch('%%a+') do n = n + 1 end; "
            .. "return { n, pcall(string.match, ('('):rep(%d), '%%b()') }"):format(r % 5000, r % 3000)
    end,
}

for i, t in ipairs(TEMPLATES) do
    if HOLES == nil and t(0):find("M.state.holes = {", 1, true) then
        HOLES = i
    end
end

local function generate(seed, n)
    local rng = seed
    local function draw()
        rng = (rng * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
        return rng >> 17
    end
    local cmds = {}
    for i = 1, n do
        local t = TEMPLATES[draw() % #TEMPLATES + 1]
        cmds[i] = t(draw())
    end
    -- The snapshot at the half comes right after a constructor built a table with holes
    -- in the state, where a restore's layout differs most from the builder's, and the
    -- commands after it use the table library on that table.
    local made, insert, remove = HOLES, HOLES + 2, HOLES + 3
    cmds[n // 2] = TEMPLATES[made](draw())
    cmds[n // 2 + 1] = TEMPLATES[insert](draw())
    cmds[n // 2 + 2] = TEMPLATES[remove](draw())
    return cmds
end

local function ctx(i)
    return { index = i, term = 1, time_ms = 1000 * i, seed = i * 2654435761 }
end

local function run(m, cmds, first, last, replies)
    for i = first, last do
        replies[i] = m:apply({ "EVAL", cmds[i] }, ctx(i))
    end
end

describe("determinism across histories", function()
    teardown(S.cleanup)

    local seeds = tonumber(os.getenv("LUARAFT_SEEDS") or "") or 1
    seeds = math.max(1, math.min(seeds, 20))
    local n = 1200

    for seed = 1, seeds do
        it("gives equal replies and states on three replicas, seed " .. seed, function()
            local cmds = generate(seed, n)
            local half = n // 2
            local a_replies, b_replies, c_replies = {}, {}, {}

            local a = S.open(EVAL, LIMITS)
            local checkpoints = {}
            for first = 1, n, 100 do
                local last = math.min(first + 99, n)
                run(a, cmds, first, last, a_replies)
                checkpoints[last] = a:snapshot()
            end

            local b0 = S.open(EVAL, LIMITS)
            run(b0, cmds, 1, half, {})
            b0:close()
            local b = S.open(EVAL, LIMITS)
            for first = 1, n, 100 do
                local last = math.min(first + 99, n)
                run(b, cmds, first, last, b_replies)
                assert(b:snapshot() == checkpoints[last], "replayed state differs at " .. last)
            end

            local x = S.open(EVAL, LIMITS)
            x:apply({ "EVAL", [[
                M.junk = {}
                for i = 1, 20000 do M.junk['j' .. i] = { i, tostring(i) } end
                for i = 1, 20000, 3 do M.junk['j' .. i] = nil end]] }, ctx(0))
            x:apply({ "EVAL", "M.junk = nil; collectgarbage()" }, ctx(0))
            run(x, cmds, 1, half, {})
            local c = S.open(EVAL, LIMITS)
            c:restore(x:snapshot())
            x:close()
            for first = half + 1, n, 100 do
                local last = math.min(first + 99, n)
                run(c, cmds, first, last, c_replies)
                assert(c:snapshot() == checkpoints[last], "restored state differs at " .. last)
            end

            local aborts = 0
            for i = 1, n do
                assert(a_replies[i] == b_replies[i], ("command %d (%s): %q against %q after a restart")
                    :format(i, cmds[i], a_replies[i], b_replies[i]))
                if i > half then
                    assert(a_replies[i] == c_replies[i], ("command %d (%s): %q against %q after a restore")
                        :format(i, cmds[i], a_replies[i], c_replies[i]))
                end
                aborts = aborts + (a_replies[i]:find("exceeded", 1, true) and 1 or 0)
            end
            -- The generator reaches the budgets: a good share of commands abort.
            assert(aborts > n // 10, "only " .. aborts .. " commands hit a budget")
            for _, m in ipairs({ a, b, c }) do
                m:close()
            end
        end)
    end
end)
