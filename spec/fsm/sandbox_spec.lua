-- The determinism sandbox from the outside (README.md, Writing a state machine): script errors become
-- error replies and the machine keeps serving; the outside world is out of reach; the
-- instruction budget and the memory cap hold even against pcall; and whatever could
-- differ between replicas (iteration order, addresses, time, randomness) does not.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

-- A machine whose apply runs cmd[2] as a Lua chunk that sees M, cmd and ctx: each
-- test sends its own code through the log, as an attacker with a script would.
local EVAL = S.EVAL_HEAD .. [[
function M.query(cmd)
    return M.apply(cmd, { index = 0, term = 0, time_ms = 0, seed = 0 })
end
function M.snapshot(w) end
function M.restore(r) end
return M
]]

local limits = { instructions_max = 100000, memory_bytes_max = 32 * 1024 * 1024 }

describe("fsm sandbox", function()
    local m
    before_each(function()
        m = S.open(EVAL, limits)
    end)
    after_each(function()
        m:close()
    end)
    teardown(S.cleanup)

    local function eval(code, ctx)
        return S.apply(m, { "EVAL", code }, ctx)
    end

    describe("errors", function()
        it("turn a Lua error into an error reply and the next command works", function()
            assert.are.same({ err = "ERR boom" }, eval("error('boom')"))
            -- the host keeps the whole message with its traceback for the log
            assert.matches("eval:2: boom", m:last_error())
            assert.matches("stack traceback", m:last_error())
            assert.are.same({ err = "ERR attempt to index a nil value (local 'x')" },
                eval("local x; return x.y"))
            assert.are.same({ err = "WRONGTYPE custom" },
                eval("error({ err = 'WRONGTYPE custom' })"))
            assert.are.same({ err = "ERR 42" }, eval("error(42)"))
            assert.are.same({ err = "ERR (error object is a table value)" }, eval("error({})"))
            assert.are.equal("fine", eval("return 'fine'"))
        end)

        it("give the same reply whatever the script file is called", function()
            local source = "return { apply = function() local t = nil; return t.x end, "
                .. "snapshot = function(w) end, restore = function(r) end }"
            local a = S.open(source)
            local b = assert(fsm.open(S.script(source)))
            local ra, rb = a:apply({ "X" }), b:apply({ "X" })
            assert.are.equal("-ERR attempt to index a nil value (local 't')\r\n", ra)
            assert.are.equal(ra, rb)
            assert.matches("stack traceback", a:last_error())
            a:close()
            b:close()
        end)
    end)

    describe("refuses the outside world", function()
        it("has no io, package, require, debug, dofile, loadfile, print", function()
            for _, name in ipairs({ "io", "package", "require", "debug", "dofile", "loadfile",
                "print", "coroutine", "warn" }) do
                assert.are.equal(fsm.null,
                    eval("return " .. name .. " ~= nil and 'present' or nil"),
                    name)
            end
        end)

        it("keeps only os.time and os.clock", function()
            assert.are.same({ "clock", "time" }, eval([[
                local names = {}
                for k in pairs(os) do names[#names + 1] = k end
                return names]]))
            assert.matches("attempt to call a nil value", eval("return os.execute('true')").err)
            assert.matches("attempt to call a nil value", eval("return os.getenv('HOME')").err)
            assert.matches("os.time%(t%) is not available",
                eval("return os.time({year = 2000})").err)
        end)

        it("refuses binary chunks and string.dump", function()
            local binary = string.dump(function() return 1 end)
            local reply = S.apply(m, { "EVAL", "local f, e = load(cmd[3]); return e", binary })
            assert.matches("attempt to load a binary chunk", reply)
            reply = S.apply(m, { "EVAL", "local f, e = load(cmd[3], 'x', 'b'); return e", binary })
            assert.matches("attempt to load a binary chunk", reply)
            assert.are.equal(2, eval("return load('return 1 + 1')()"))
            assert.are.equal(fsm.null, eval("return string.dump"))
        end)

        it("locks the globals after load", function()
            assert.matches("assignment to undeclared global 'leak'", eval("leak = 1").err)
            assert.matches("globals table is locked", eval("rawset(_G, 'leak', 1)").err)
            assert.matches("cannot change a protected metatable",
                eval("setmetatable(_G, nil)").err)
            assert.are.equal(fsm.null, eval("return leak"))
            -- state in the module table is fine
            eval("M.state.n = 5")
            assert.are.equal(5, eval("return M.state.n"))
        end)

        it("protects the string metatable", function()
            assert.are.equal(fsm.null, eval("return getmetatable('')"))
            assert.are.equal("ABC", eval("return ('abc'):upper()"))
        end)
    end)

    describe("instruction budget", function()
        local budget = { err = "ERR script exceeded its instruction budget" }

        it("stops an endless loop and keeps serving", function()
            assert.are.same(budget, eval("while true do end"))
            assert.are.equal("after", eval("return 'after'"))
        end)

        it("cannot be swallowed by pcall or xpcall", function()
            assert.are.same(budget, eval([[
                while true do pcall(function() while true do end end) end]]))
            assert.are.same(budget, eval([[
                local ok = pcall(function() while true do end end)
                return 'escaped']]))
            assert.are.same(budget, eval([[
                for _ = 1, 1000 do
                    xpcall(function() while true do end end, function() return 'handled' end)
                end
                return 'escaped']]))
            assert.are.same(budget, eval([[
                local t = {}
                for i = 1, 1000 do t[i] = i end
                table.sort(t, function(a, b)
                    pcall(function() while true do end end)
                    return a < b
                end)
                return 'escaped']]))
            assert.are.equal("after", eval("return 'after'"))
        end)

        -- Lua runs xpcall's message handler where the error was raised, before unwinding;
        -- for the budget's error that is inside the count hook, where hooks are off, so a
        -- handler that looped there ran forever, uncounted, on every replica.
        it("counts xpcall's message handler too", function()
            assert.are.same(budget, eval([[
                xpcall(function() while true do end end, function() while true do end end)]]))
            assert.are.same(budget, eval([[
                xpcall(function() error('x') end, function() while true do end end)]]))
            assert.are.equal("after", eval("return 'after'"))
            -- xpcall itself still works: results, or false and what the handler makes of it
            local function shown(code)
                return eval("local r = table.pack(" .. code .. ") for i = 1, r.n do "
                    .. "r[i] = tostring(r[i]) end return table.concat(r, ' ')")
            end
            assert.are.equal("true 1 2", shown("xpcall(function(a) return a, 2 end, tostring, 1)"))
            assert.are.equal("false handled: boom", shown(
                "xpcall(function() error('boom', 0) end, function(e) return 'handled: ' .. e end)"))
            assert.are.equal("false error in error handling", shown(
                "xpcall(function() error('boom') end, function() error('again') end)"))
        end)

        it("trips at the same instruction on every replica", function()
            local code = "M.state.n = 0; while true do M.state.n = M.state.n + 1 end"
            local other = S.open(EVAL, limits)
            assert.are.same(budget, eval(code))
            assert.are.same(budget, S.apply(other, { "EVAL", code }))
            local n = eval("return M.state.n")
            assert.is_true(n > 1000)
            assert.are.equal(n, S.apply(other, { "EVAL", "return M.state.n" }))
            other:close()
        end)

        it("charges work done inside C functions", function()
            -- pairs over a big table and string.rep cost in proportion to their size
            assert.are.same(budget, eval([[
                local t = {}
                for i = 1, 1000 do t[i] = i end
                for _ = 1, 1000 do for _ in pairs(t) do break end end]]))
            assert.are.same(budget, eval("return #string.rep('x', 100000000)"))
            -- 1000 passes over 1 MB: few VM instructions, but 16 million charged
            assert.are.same(budget, eval([[
                local s = ('x'):rep(1024 * 1024)
                for _ = 1, 1000 do s:upper() end]]))
            assert.are.same(budget, eval([[
                local t = {}
                for i = 1, 100 do t[i] = ('x'):rep(10000) end
                for _ = 1, 1000 do table.concat(t) end]]))
            assert.are.equal(1024 * 1024, eval("return #(('x'):rep(1024 * 1024):upper())"))
        end)

        it("also bounds the script while it loads", function()
            local m2, err = fsm.open(S.script("while true do end"), limits)
            assert.is_nil(m2)
            assert.matches("instruction budget", err)
        end)
    end)

    describe("memory cap", function()
        local memory = { err = "ERR script exceeded the state's memory limit" }
        before_each(function()
            m:close()
            m = S.open(EVAL, { instructions_max = 100000000, memory_bytes_max = 32 * 1024 * 1024 })
        end)

        it("fails a command that allocates too much and keeps serving", function()
            assert.are.same(memory, eval([[
                local t = {}
                for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end]]))
            assert.are.equal("after", eval("return 'after'"))
            assert.are.same(memory, eval([[
                local s = ('x'):rep(1024 * 1024)
                local t = {}
                for i = 1, 100 do t[i] = s .. i end]]))
            assert.are.equal("after", eval("return 'after'"))
        end)

        it("also bounds the script while it loads", function()
            local m2, err = fsm.open(S.root .. "/examples/kv.lua", { memory_bytes_max = 10000 })
            assert.is_nil(m2)
            assert.matches("memory limit", err)
            m2, err = fsm.open(S.root .. "/examples/kv.lua", { memory_bytes_max = 100 })
            assert.is_nil(m2)
            assert.matches("out of memory", err)
        end)

        it("cannot be swallowed by pcall", function()
            assert.are.same(memory, eval([[
                local t = {}
                local ok = pcall(function()
                    for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end
                end)
                t = nil
                local u = {}
                for i = 1, 100 do u[i] = tostring(i) .. 'y' end
                return 'escaped']]))
            assert.are.equal("after", eval("return 'after'"))
        end)
    end)

    describe("determinism", function()
        it("iterates pairs in sorted key order", function()
            assert.are.same(
                { "-1", "1", "2.5", "3", "10", "A", "B", "a", "aa", "b", "false", "true" },
                eval([[
                local t = { b = 1, a = 1, aa = 1, B = 1, A = 1, [3] = 1, [1] = 1, [10] = 1,
                            [2.5] = 1, [-1] = 1, [true] = 1, [false] = 1 }
                local out = {}
                for k in pairs(t) do out[#out + 1] = tostring(k) end
                return out]]))
        end)

        it("gives next the same order, and allows clearing fields while iterating", function()
            assert.are.same({ "a", "b", "c" }, eval([[
                local t = { c = 1, a = 1, b = 1 }
                local out, k = {}, next(t)
                while k ~= nil do out[#out + 1] = k; k = next(t, k) end
                return out]]))
            assert.are.same({ "a", "c" }, eval([[
                local t = { c = 1, a = 1, b = 1 }
                local out = {}
                for k in pairs(t) do
                    out[#out + 1] = k
                    t.b = nil
                end
                return out]]))
            assert.are.equal(fsm.null, eval("return next({})"))
        end)

        it("refuses keys whose order would depend on addresses", function()
            assert.matches("non%-deterministic key type %(table%)",
                eval("for k in pairs({ [{}] = 1 }) do end").err)
            assert.matches("non%-deterministic key type %(function%)",
                eval("return next({ [tostring] = 1 })").err)
        end)

        it("shows no addresses", function()
            assert.are.same({ "table", "function", "function", "table", "named" }, eval([[
                return { tostring({}), tostring(tostring), string.format('%s', print or pairs),
                         ('%s'):format({}), tostring(setmetatable({}, { __name = 'named' })) }]]))
            assert.matches("%%p is not allowed", eval("return string.format('%p', {})").err)
            assert.matches("%%p is not allowed", eval("return ('%5p'):format({})").err)
            assert.are.equal("100%", eval("return string.format('%d%%', 100)"))
        end)

        it("refuses collectgarbage queries, __gc and __mode", function()
            assert.matches("not allowed", eval("return collectgarbage('count')").err)
            assert.are.equal(0, eval("return collectgarbage()"))
            assert.matches("__gc is not allowed",
                eval("setmetatable({}, { __gc = function() end })").err)
            assert.matches("__mode is not allowed", eval("setmetatable({}, { __mode = 'k' })").err)
            assert.are.equal("ok", eval("setmetatable({}, { __index = {} }); return 'ok'"))
        end)

        it("takes time and randomness from the entry", function()
            local ctx = { index = 5, term = 2, time_ms = 1700000000999, seed = 77 }
            assert.are.same({ 1700000000, 1700000000, 1700000000999, 5, 2, 77 }, eval([[
                return { os.time(), ctx.time, ctx.time_ms, ctx.index, ctx.term, ctx.seed }]], ctx))
            local code = "return { math.random(1, 1000000), math.random(1, 1000000) }"
            local first = eval(code, ctx)
            assert.are.same(first, eval(code, ctx))
            local other = S.open(EVAL, limits)
            assert.are.same(first, S.apply(other, { "EVAL", code }, ctx))
            other:close()
            ctx.seed = 78
            assert.are_not.same(first, eval(code, ctx))
            assert.matches("without a seed", eval("math.randomseed()").err)
        end)

        it("sorts stably with table.sort", function()
            assert.are.same({ "b1", "a1", "b2", "c2", "a3" }, eval([[
                local t = { { 'a', 3 }, { 'b', 1 }, { 'b', 2 }, { 'a', 1 }, { 'c', 2 } }
                table.sort(t, function(x, y) return x[2] < y[2] end)
                local out = {}
                for i, r in ipairs(t) do out[i] = r[1] .. r[2] end
                -- a1 and b1 tie: kept in input order (b1 came first)
                return out]]))
            assert.are.same({ 1, 2, 3, 5, 8 },
                eval("local t = { 5, 3, 8, 1, 2 }; table.sort(t); return t"))
        end)

        it("gives identical results in separate processes", function()
            -- String hashes are seeded per process and addresses differ with ASLR, so
            -- without the sandbox pairs order, tostring({}) and math.random would differ.
            local script = S.script([[
                local M = {}
                function M.apply(cmd, ctx)
                    local t = {}
                    for i = 1, 200 do t["key" .. i] = i end
                    for i = 1, 20 do t[i * 7 % 13 + 0.5] = i end
                    local out = {}
                    for k in pairs(t) do out[#out + 1] = tostring(k) end
                    out[#out + 1] = tostring({})
                    out[#out + 1] = tostring(M.apply)
                    for _ = 1, 10 do out[#out + 1] = math.random(1, 1000000) end
                    out[#out + 1] = os.time()
                    out[#out + 1] = next(t)
                    return out
                end
                function M.snapshot(w) end
                function M.restore(r) end
                return M
            ]])
            local child = S.script(string.format([[
                package.cpath = %q
                local fsm = require("luaraft.fsm")
                local m = assert(fsm.open(%q, { instructions_max = 10000000 }))
                io.write(m:apply({ "RUN" }, { index = 1, term = 1, time_ms = 1234567, seed = 42 }))
                m:close()
            ]], package.cpath, script))
            local outputs = {}
            for i = 1, 4 do
                local p = assert(io.popen("lua5.4 " .. child))
                outputs[i] = p:read("a")
                assert.is_true(p:close())
            end
            local reply = fsm.decode(outputs[1])
            -- 13 float keys (0.5 to 12.5), 200 string keys, then the other values
            assert.are.equal(13 + 200 + 14, #reply)
            assert.are.equal("0.5", reply[1])
            assert.are.equal("12.5", reply[13])
            assert.are.equal("key1", reply[14])
            assert.are.equal("key10", reply[15])
            assert.are.equal("key100", reply[16])
            assert.are.equal("table", reply[214])
            assert.are.equal("function", reply[215])
            assert.are.equal(1234, reply[226])
            assert.are.equal("0.5", reply[227])
            for i = 2, #outputs do
                assert.are.equal(outputs[1], outputs[i])
            end
        end)
    end)

    describe("loading", function()
        it("reports a syntax error with the Lua message", function()
            local m2, err = fsm.open(S.script("local M = {\nreturn M +"))
            assert.is_nil(m2)
            assert.matches("unexpected symbol near 'return'", err)
        end)

        it("reports an error raised while loading, with a traceback", function()
            local m2, err = fsm.open(S.script("local function f() error('bad init') end\nf()"))
            assert.is_nil(m2)
            assert.matches(":1: bad init", err)
            assert.matches("stack traceback", err)
        end)

        it("requires a module table with the contract's functions", function()
            local m2, err = fsm.open(S.script("return 42"))
            assert.is_nil(m2)
            assert.matches("must return its module table", err)
            m2, err = fsm.open(S.script("return { query = function() end }"))
            assert.is_nil(m2)
            assert.matches("M.apply is missing", err)
            m2, err = fsm.open("/nonexistent/script.lua")
            assert.is_nil(m2)
            assert.matches("cannot open", err)
        end)

        it("refuses a query when there is none, and snapshot once M.snapshot is gone", function()
            -- fsm.open refuses a module without M.snapshot; a script can still drop it later
            local m2 = S.open([[
                local M = {}
                function M.apply() M.snapshot = nil; return 1 end
                function M.snapshot(w) end
                function M.restore(r) end
                return M
            ]])
            assert.has_error(function() m2:query({ "GET" }) end)
            assert.are.equal(":1\r\n", m2:apply({ "X" }))
            assert.has_error(function() m2:snapshot() end)
            m2:close()
        end)

        it("allows globals while loading, reads M.reads in any case", function()
            local m2 = S.open([[
                helper = function() return 'helped' end
                return { apply = function() return helper() end, reads = { "get", Mget = true },
                         query = function() end, snapshot = function(w) end,
                         restore = function(r) end }
            ]])
            assert.are.equal("helped", S.apply(m2, { "X" }))
            assert.is_true(m2:is_read("GET"))
            assert.is_true(m2:is_read("mget"))
            assert.is_false(m2:is_read("SET"))
            m2:close()
        end)
    end)
end)
