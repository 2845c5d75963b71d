-- Work done inside one C call is charged (issue 10): every function of the sandboxed
-- libraries is listed below with what it is charged for, and each charged one is shown
-- to run out of budget where, uncharged, a few VM instructions did unbounded work. Also:
-- a reply that shares or contains itself ends in bounded time; M.query cannot change
-- state; a metatable cannot become weak or gain a finalizer after setmetatable.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local EVAL = S.EVAL_HEAD .. [[
function M.query(cmd, ctx) return M.apply(cmd, ctx) end
function M.snapshot(w) w:write(luaraft.encode(M.state)) end
function M.restore(r) end
return M
]]

local budget = { err = "ERR script exceeded its instruction budget" }
local memory = { err = "ERR script exceeded its memory budget" }
local small = { instructions_max = 1000000, memory_bytes_max = 1024 * 1024 * 1024 }
local big = {
    instructions_max = 100000000,
    memory_bytes_max = 4 * 1024 * 1024 * 1024,
    command_memory_bytes_max = 256 * 1024 * 1024,
}

local function eval(m, code)
    return S.apply(m, { "EVAL", code })
end

local function query(m, code)
    return fsm.decode(m:query({ "EVAL", code }))
end

-- What each function of the sandbox costs beyond the VM instruction that calls it. Every
-- name the sandbox offers is in exactly one of the two lists (checked below), so a function
-- added later cannot go unlisted. `bomb` is a chunk that costs a few thousand VM
-- instructions and, uncharged, hundreds of millions of units of work inside C: under a
-- budget of a million instructions it must stop with the budget's error.
local CHARGED = {
    { "table.move", "each element moved, before moving", [[
        local t = {} for i = 1, 1000 do t[i] = i end
        for _ = 1, 2000 do table.move(t, 1, 1000, 2) end]] },
    { "table.insert", "each element shifted, before shifting", [[
        local t = {} for i = 1, 20000 do t[i] = i end
        for i = 1, 1000 do table.insert(t, 1, i) end]] },
    { "table.remove", "each element shifted, before shifting", [[
        local t = {} for i = 1, 20000 do t[i] = i end
        for _ = 1, 1000 do table.remove(t, 1) end]] },
    { "table.unpack", "each value pushed, before pushing", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do table.unpack(t) end]] },
    { "table.concat", "each piece, and its bytes", [[
        local t = {} for i = 1, 10000 do t[i] = 'x' end
        for _ = 1, 1000 do table.concat(t) end]] },
    { "table.pack", "each value", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local function f(...) for _ = 1, 1000 do table.pack(...) end end
        f(table.unpack(t, 1, 5000))]] },
    { "table.sort", "written in Lua: counted by the hook", [[
        local t = {} for i = 1, 100000 do t[i] = -i end
        table.sort(t)]] },
    { "select", "each value it returns", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local function f(...) for _ = 1, 2000 do select(2, ...) end end
        f(table.unpack(t, 1, 1000))]] },
    { "assert", "each value it returns", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local function f(...) for _ = 1, 2000 do assert(...) end end
        f(table.unpack(t, 1, 1000))]] },
    { "math.max", "each argument", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local function f(...) for _ = 1, 2000 do math.max(...) end end
        f(table.unpack(t, 1, 1000))]] },
    { "math.min", "each argument", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local function f(...) for _ = 1, 2000 do math.min(...) end end
        f(table.unpack(t, 1, 1000))]] },
    { "string.byte", "each value it returns, before", [[
        local s = ('x'):rep(10000)
        for _ = 1, 1000 do string.byte(s, 1, -1) end]] },
    { "string.char", "each argument", [[
        local t = {} for i = 1, 1000 do t[i] = 65 end
        local function f(...) for _ = 1, 2000 do string.char(...) end end
        f(table.unpack(t))]] },
    { "string.format", "its format, each conversion by its width, precision and digits, and its output", [[
        for _ = 1, 3000 do string.format('%99.99f', 1e300) end]] },
    { "string.rep", "its output, before building it", [[
        for _ = 1, 100 do string.rep('x', 1000000) end]] },
    { "string.upper", "its input and output (sandbox.c)", [[
        local s = ('x'):rep(100000) for _ = 1, 1000 do s:upper() end]] },
    { "string.lower", "its input and output (sandbox.c)", [[
        local s = ('x'):rep(100000) for _ = 1, 1000 do s:lower() end]] },
    { "string.reverse", "its input and output (sandbox.c)", [[
        local s = ('x'):rep(100000) for _ = 1, 1000 do s:reverse() end]] },
    { "string.sub", "its output, as a new string (sandbox_limits.c)", [[
        local s = ('x'):rep(1000000) for _ = 1, 100 do s:sub(2) end]] },
    { "string.pack", "its format, before, and its output (a new string)", [[
        local f = ('<'):rep(100000) for _ = 1, 1000 do string.pack(f) end]] },
    { "string.unpack", "its format and with 'z' the bytes it may scan, before", [[
        local f = ('<'):rep(100000) for _ = 1, 1000 do string.unpack(f, '') end]] },
    { "string.packsize", "its format", [[
        local f = ('i'):rep(10000) for _ = 1, 1000 do string.packsize(f) end]] },
    { "tonumber", "its string's bytes", [[
        local s = (' '):rep(100000) .. '1' for _ = 1, 1000 do tonumber(s) end]] },
    { "load", "the bytes it compiles", [[
        local s = 'return ' .. ('1+'):rep(50000) .. '1' for _ = 1, 20 do load(s) end]] },
    { "utf8.char", "each argument", [[
        local t = {} for i = 1, 1000 do t[i] = 65 end
        local function f(...) for _ = 1, 2000 do utf8.char(...) end end
        f(table.unpack(t))]] },
    { "utf8.len", "the bytes it decodes, before", [[
        local s = ('x'):rep(100000) for _ = 1, 1000 do utf8.len(s) end]] },
    { "utf8.codepoint", "the bytes it decodes, before", [[
        local s = ('x'):rep(10000) for _ = 1, 1000 do utf8.codepoint(s, 1, -1) end]] },
    { "utf8.offset", "the bytes it walks", [[
        local s = ('x'):rep(100000) for _ = 1, 1000 do utf8.offset(s, 100000) end]] },
    { "utf8.codes", "its iterator: the bytes each step skips", [[
        local s = ('\x80'):rep(100000)
        local f = utf8.codes('a' .. s)
        for _ = 1, 1000 do f(s, 0) end]] },
    { "pairs", "the table's size (sandbox_order.c)", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do pairs(t) end]] },
    { "next", "the table's size (sandbox_order.c)", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do next(t) end]] },
    { "luaraft.keys", "the table's size (sandbox_order.c)", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do luaraft.keys(t) end]] },
    { "luaraft.encode", "each entry and its output (encode.c)", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do luaraft.encode(t) end]] },
    { "luaraft.decode", "its input and each entry (decode.c)", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        local s = luaraft.encode(t)
        for _ = 1, 1000 do luaraft.decode(s) end]] },
    { "luaraft.sorted_pairs", "the table's size: it is pairs", [[
        local t = {} for i = 1, 10000 do t[i] = i end
        for _ = 1, 1000 do luaraft.sorted_pairs(t) end]] },
    { "xpcall", "its handler runs as counted code (sandbox.c)", [[
        xpcall(error, function() while true do end end)]] },
}

-- O(1) work, or work that is Lua code the hook counts (a metamethod, a function called);
-- string.find, match, gmatch and gsub are the pattern matcher's (spec/fsm/pattern_spec.lua).
local CONSTANT = {
    "collectgarbage", "error", "getmetatable", "ipairs", "pcall", "rawequal", "rawget",
    "rawlen", "rawset", "setmetatable", "tostring", "type",
    "math.abs", "math.acos", "math.asin", "math.atan", "math.atan2", "math.ceil", "math.cos",
    "math.cosh", "math.deg", "math.exp", "math.floor", "math.fmod", "math.frexp", "math.ldexp",
    "math.log", "math.log10", "math.modf", "math.pow", "math.rad", "math.random",
    "math.randomseed", "math.sin", "math.sinh", "math.sqrt", "math.tan", "math.tanh",
    "math.tointeger", "math.type", "math.ult",
    "string.len", "string.find", "string.match", "string.gmatch", "string.gsub",
    "os.time", "os.clock",
}

-- Shows a value the same way in plain Lua and in the sandbox (keys in tostring order).
local SHOW = [[
local function show(v, depth)
    depth = depth or 0
    if type(v) == 'function' then return 'function' end
    if type(v) ~= 'table' then return type(v) .. ':' .. tostring(v) end
    if depth > 3 then return '...' end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local out = {}
    for i, k in ipairs(keys) do out[i] = tostring(k) .. '=' .. show(v[k], depth + 1) end
    return '{' .. table.concat(out, ',') .. '}'
end
]]

describe("fsm charges C functions by their work", function()
    teardown(S.cleanup)

    it("lists every function the sandbox offers", function()
        local m = S.open(EVAL, small)
        local names = eval(m, [[
            local out = {}
            for k, v in pairs(_G) do
                if type(v) == 'function' then out[#out + 1] = k end
                if type(v) == 'table' and k ~= '_G' then
                    for k2, v2 in pairs(v) do
                        if type(v2) == 'function' then out[#out + 1] = k .. '.' .. k2 end
                    end
                end
            end
            return out]])
        local listed = {}
        for _, c in ipairs(CHARGED) do
            assert.is_nil(listed[c[1]], c[1])
            listed[c[1]] = true
        end
        for _, name in ipairs(CONSTANT) do
            assert.is_nil(listed[name], name)
            listed[name] = true
        end
        for _, name in ipairs(names) do
            assert.is_true(listed[name] ~= nil, name .. " is in neither list")
        end
        m:close()
    end)

    for _, c in ipairs(CHARGED) do
        it(c[1] .. ": " .. c[2], function()
            local m = S.open(EVAL, small)
            local t0 = os.clock()
            assert.are.same(budget, eval(m, c[3]))
            assert.is_true(os.clock() - t0 < 2, c[1] .. " took " .. (os.clock() - t0) .. " s")
            assert.are.equal("after", eval(m, "return 'after'"))
            m:close()
        end)
    end

    it("refuses a huge move at once, before moving anything", function()
        local m = S.open(EVAL, big)
        local t0 = os.clock()
        assert.are.same(budget, eval(m, "local t = {1, 2, 3}; table.move(t, 1, 1 << 27, 2)"))
        assert.are.same(budget, eval(m, [[
            local t = setmetatable({}, { __len = function() return 1 << 40 end,
                __index = function() return 0 end, __newindex = function() end })
            table.insert(t, 1, 'x')]]))
        assert.is_true(os.clock() - t0 < 0.2, tostring(os.clock() - t0))
        m:close()
    end)

    it("stops a concatenation bomb by its bytes, in bounded time", function()
        local m = S.open(EVAL, big)
        local t0 = os.clock()
        -- 27 doublings build 128 MiB, 256 MiB asked in all: over the budget by the headers
        assert.are.same(memory, eval(m, "local s = 'x' for i = 1, 28 do s = s .. s end"))
        assert.is_true(os.clock() - t0 < 2, tostring(os.clock() - t0))
        -- and the bytes are work: 2^26 bytes built cost a million instructions
        local m2 = S.open(EVAL, { instructions_max = 1000000 })
        assert.are.same(budget, eval(m2, "local s = 'x' for i = 1, 26 do s = s .. s end"))
        m:close()
        m2:close()
    end)

    it("keeps the stock results and errors of the functions it replaces", function()
        local m = S.open(EVAL, big)
        -- each line runs in the sandbox and in plain lua5.4; results and errors must match
        local cases = {
            "local t = {1, 2, 3}; table.insert(t, 'x'); return t",
            "local t = {1, 2, 3}; table.insert(t, 1, 'x'); return t",
            "local t = {1, 2, 3}; table.insert(t, 4, 'x'); return t",
            "local t = {1, 2, 3}; table.insert(t, 5, 'x'); return t",
            "local t = {1, 2, 3}; table.insert(t, 0, 'x'); return t",
            "local t = {1, 2, 3}; table.insert(t, 1, 2, 3); return t",
            "local t = {1, 2, 3}; table.insert(t); return t",
            "table.insert(nil, 1)",
            "table.insert({}, 'a', 1)",
            "local t = {1, 2, 3}; return { table.remove(t), t }",
            "local t = {1, 2, 3}; return { table.remove(t, 1), t }",
            "local t = {1, 2, 3}; return { table.remove(t, 4), t }",
            "local t = {1, 2, 3}; return { table.remove(t, 5), t }",
            "local t = {}; return { table.remove(t), table.remove(t, 0), t }",
            "local t = {}; return { table.remove(t, 1) }",
            "return { table.remove({}, -1) }",
            "local t = {1, 2, 3, 4, 5}; table.move(t, 2, 4, 1); return t",
            "local t = {1, 2, 3, 4, 5}; table.move(t, 1, 3, 3); return t",
            "local t = {1, 2, 3}; return table.move(t, 1, 3, 1, {})",
            "local t = {1, 2, 3}; return table.move(t, 3, 1, 1, {9})",
            "return table.move({}, -1, math.maxinteger, 1)",
            "return table.move({1}, 1, 1, math.maxinteger)",
            "return table.move({1}, 1, 2, math.maxinteger)",
            "return table.move({1}, 'x', 2, 1)",
            "return { table.unpack({1, 2, 3}) }",
            "return { table.unpack({1, 2, 3}, 2) }",
            "return { table.unpack({1, 2, 3}, 2, 5) }",
            "return { table.unpack({1, 2, 3}, 3, 2) }",
            "return { table.unpack({1, 2, 3}, -1, 1) }",
            "return { select('#', table.unpack({}, 1, 1e7)) }",
            "return { table.unpack({}, math.mininteger, math.maxinteger) }",
            "return table.concat({1, 2, 'x'}, ', ')",
            "return table.concat({1, 2, 3}, '-', 2)",
            "return table.concat({1, 2, 3}, '-', 2, 3)",
            "return table.concat({1, 2, 3}, '-', 3, 2)",
            "return table.concat({1, {}, 3})",
            "return table.concat({1, 2}, '', 1, 3)",
            "return table.concat({})",
            "return table.concat(nil)",
            "return { table.pack(1, nil, 3).n, table.pack().n }",
            "return { select(2, 'a', 'b', 'c') }",
            "return { select(-1, 'a', 'b', 'c') }",
            "return { select('#', 'a', nil, 'c') }",
            "return { select(5, 'a') }",
            "return { select(0, 'a') }",
            "return { select(-5, 'a') }",
            "return { select('x', 'a') }",
            "return { assert(1, 2, 3) }",
            "assert(false, 'msg')",
            "assert(nil)",
            "assert()",
            "return { math.max(3, 1, 2), math.min(3, 1, 2), math.max(1.5, 2) }",
            "return math.max()",
            "return { string.byte('abc'), string.byte('abc', 1, -1), string.byte('abc', 10) }",
            "return { string.byte('abc', -10, 10) }",
            "return { string.char(72, 105), string.char() }",
            "return string.char(256)",
            "return { utf8.char(72, 0x10FFFF, 0x7FFFFFFF) }",
            "return { utf8.len('h\\xc3\\xa9llo'), utf8.len('\\xff'), utf8.len('abc', 2) }",
            "return { utf8.len('abc', 5) }",
            "return { utf8.codepoint('h\\xc3\\xa9', 1, -1) }",
            "return { utf8.codepoint('\\xff') }",
            "return { utf8.offset('h\\xc3\\xa9llo', 3), utf8.offset('abc', -1), utf8.offset('abc', 5) }",
            "local out = {} for p, c in utf8.codes('h\\xc3\\xa9') do out[#out + 1] = p .. ':' .. c end return out",
            "for p, c in utf8.codes('a\\xff') do end",
            "return { tonumber('  10  '), tonumber('0x10'), tonumber('z', 36), tonumber('1e1'), tonumber('x') }",
            "return { tonumber(' 12 ', 10), tonumber('12', 2) }",
            "return { string.pack('i4z', 7, 'ab'):byte(1, -1) }",
            "return { string.unpack('i4z', string.pack('i4z', 7, 'ab')) }",
            "return string.packsize('i4i8')",
            "return string.format('%5.2f|%d|%s|%q|%x', 3.14159, 42, 'x', 'a\\nb', 255)",
            "return string.format('%.0f', 1e300)",
            "return string.format('%5d', 'x')",
            "return { load('return 1 + 1')() }",
            "return { load(function() return nil end) }",
            "local n = 0 return { load(function() n = n + 1 if n == 1 then return 'return 7' end end)() }",
            "return { load('syntax error here') }",
        }
        for _, code in ipairs(cases) do
            local wrapped = SHOW .. "return show(table.pack((function() " .. code .. " end)()))"
            local ok, want = pcall(assert(load(wrapped, "=eval")))
            local got = S.apply(m, { "EVAL", wrapped })
            if ok then
                assert.are.equal(want, got, code)
            else
                assert.are.same({ err = "ERR " .. want:gsub("^eval:%d+: ", "") }, got, code)
            end
        end
        m:close()
    end)
end)

describe("fsm reply encoding", function()
    teardown(S.cleanup)

    it("refuses a reply that contains itself, at once", function()
        local m = S.open(EVAL, big)
        local t0 = os.clock()
        local cycle = { err = "ERR reply contains itself (a cycle)" }
        assert.are.same(cycle, eval(m, "local t = {} for i = 1, 50 do t[i] = t end return t"))
        assert.are.same(cycle, eval(m, "local t = {} t[1] = { map = { 'k', t } } return t"))
        assert.is_true(os.clock() - t0 < 0.1, tostring(os.clock() - t0))
        -- a table twice in a reply, but not inside itself, is fine
        assert.are.same({ { 1 }, { 1 } }, eval(m, "local a = { 1 } return { a, a }"))
        m:close()
    end)

    it("charges each element, so widely shared subtables end in bounded time", function()
        -- 50^5 leaves: 312 million elements to encode, from a few hundred instructions
        local code = [[
            local t = {}
            for _ = 1, 5 do local u = {} for i = 1, 50 do u[i] = t end t = u end
            return t]]
        local a, b = S.open(EVAL, big), S.open(EVAL, big)
        local t0 = os.clock()
        assert.are.same(budget, eval(a, code))
        assert.is_true(os.clock() - t0 < 5, tostring(os.clock() - t0))
        assert.are.same(budget, eval(b, code))
        a:close()
        b:close()
    end)

    it("counts the reply's bytes against the memory budget", function()
        local m = S.open(EVAL, { instructions_max = 100000000, command_memory_bytes_max = 1 << 20 })
        -- 200 references to one 100 KB string: 20 MB of reply from 100 KB of objects
        assert.are.same(memory, eval(m, [[
            local s = ('x'):rep(100000) local t = {} for i = 1, 200 do t[i] = s end return t]]))
        assert.are.equal(100, #eval(m, "return { ('x'):rep(100) }")[1])
        m:close()
    end)
end)

describe("fsm M.query is read-only", function()
    teardown(S.cleanup)
    local readonly = "M.query must not change state"
    local m
    before_each(function()
        m = S.open(EVAL, big)
        eval(m, [[
            M.state.n = 1
            M.state.list = { 1, 2, 3 }
            M.state.nested = { deep = { v = 'x' } }
            M.state.obj = setmetatable({ v = 5 }, {
                __index = function(t, k) return k .. '!' end,
                __tostring = function(t) return 'obj' .. rawget(t, 'v') end,
                __eq = function(a, b) return true end,
                __lt = function(a, b) return rawget(a, 'v') < rawget(b, 'v') end,
                __concat = function(a, b) return 'cat' end,
                __call = function(self, x) return x * 2 end,
                __len = function() return 42 end,
            })
            M.state.mt = { __index = { inherited = 'yes' } }
            M.state.child = setmetatable({}, M.state.mt)
            M.counter = { bump = function(self) self.n = (self.n or 0) + 1 end }
            M.iter = pairs(M.state)]])
    end)
    after_each(function()
        m:close()
    end)

    local function refused(code)
        local before = m:snapshot()
        local reply = query(m, code)
        assert.is_table(reply, code)
        assert.is_string(reply.err, code)
        assert.matches(readonly, reply.err, 1, true)
        assert.are.equal(before, m:snapshot(), code)
    end

    it("refuses a write into the state by any route, and leaves it unchanged", function()
        refused("M.state.n = 2")
        refused("M.state.new = 1")
        refused("M.state.list[1] = 9")
        refused("M.state.nested.deep.v = 'y'")
        refused("M.state = {}")
        refused("rawset(M.state, 'n', 3)")
        refused("rawset(M.state.nested, 'x', 3)")
        refused("table.insert(M.state.list, 4)")
        refused("table.remove(M.state.list)")
        refused("table.move({ 7 }, 1, 1, 1, M.state.list)")
        refused("table.sort(M.state.list, function(a, b) return a > b end)")
        refused("setmetatable(M.state.list, {})")
        refused("M.counter:bump()")
        refused("local _, child = M.iter() child.x = 1")
        refused("local s = M.state; local function f() s.n = 5 end; f()")
        refused("load('M.state.n = 7', 'x', 't', { M = M })()")
        refused("string.myfield = 1")
        refused("M.state.child.inherited = 'no'")
        refused("getmetatable(M.state.child).__index.inherited = 'no'")
        refused("local t = M.state.list; pcall(function() t[1] = 0 end); M.state.x = 1")
    end)

    it("gives back their values to the variables a query assigned", function()
        local src = [[
            local count, store = 0, { a = 1 }
            local M = {}
            local function bump() count = count + 1 end
            function M.apply(cmd) store.a = store.a + 1; return store.a end
            function M.query(cmd)
                if cmd[1] == 'BUMP' then bump() return count end
                if cmd[1] == 'SWAP' then store = { a = 100 } return store.a end
                if cmd[1] == 'SWALLOW' then pcall(function() store.a = 50 end) return store.a end
                return { count, store.a }
            end
            function M.snapshot(w) end
            function M.restore(r) end
            return M]]
        local q = S.open(src, big)
        -- the query sees its own assignment; the next one sees the value from before
        assert.are.equal(1, fsm.decode(q:query({ "BUMP" })))
        assert.are.equal(1, fsm.decode(q:query({ "BUMP" })))
        assert.are.equal(100, fsm.decode(q:query({ "SWAP" })))
        -- a swallowed write changed nothing
        assert.are.equal(1, fsm.decode(q:query({ "SWALLOW" })))
        assert.are.same({ 0, 1 }, fsm.decode(q:query({ "GET" })))
        assert.are.equal(2, fsm.decode(q:apply({ "SET" })))
        assert.are.same({ 0, 2 }, fsm.decode(q:query({ "GET" })))
        q:close()
    end)

    it("still reads the state in every way", function()
        assert.are.same({ 1, 3, 3, 1, 'x' }, query(m, [[
            return { M.state.n, #M.state.list, rawlen(M.state.list), rawget(M.state.list, 1),
                     M.state.nested.deep.v }]]))
        assert.are.same({ 'list', 'mt', 'n', 'nested' }, query(m, [[
            local out = {}
            for k in pairs(M.state) do
                if k ~= 'obj' and k ~= 'child' then out[#out + 1] = k end
            end
            return out]]))
        assert.are.same({ 1, 2, 3, 6, '1,2,3', 'list' }, query(m, [[
            local out, sum = {}, 0
            for _, v in ipairs(M.state.list) do out[#out + 1] = v; sum = sum + v end
            out[#out + 1] = sum
            out[#out + 1] = table.concat(M.state.list, ',')
            out[#out + 1] = next(M.state, 'child')
            return out]]))
        assert.are.same({ 1, 2, 3 }, query(m, "return M.state.list"))
        assert.are.same({ 1, 2, 3 }, query(m, "return { table.unpack(M.state.list) }"))
        assert.are.same({ 1, 2, 3 }, query(m, "return luaraft.decode(luaraft.encode(M.state.list))"))
        assert.are.same({ 'mt', 'n', 'nested' }, query(m, [[
            local k = luaraft.keys(M.state) return { k[3], k[4], k[5] }]]))
        assert.are.same({ 5, 'other!', 'obj5', 1, 1, 'cat', 42, 14, 'yes' }, query(m, [[
            local o = M.state.obj
            return { o.v, o.other, tostring(o), o == M.state.list, not (o < o),
                     o .. 'x', #o, o(7), M.state.child.inherited }]]))
        assert.are.same({ 1, 1, 1 }, query(m, [[
            local a, b = M.state.list, M.state.list
            local t = { [a] = 1 }
            return { a == b and 1 or 0, rawequal(a, b) and 1 or 0, t[M.state.list] }]]))
        assert.are.equal(1, query(m, "return getmetatable(M.state.child) == M.state.mt and 1 or 0"))
        -- a query's own tables and locals are its own
        assert.are.same({ 1, 2 }, query(m, [[
            local out = {}
            local function add(x) out[#out + 1] = x end
            add(1) add(2)
            return out]]))
        -- and the next write goes through
        eval(m, "M.state.n = 2")
        assert.are.equal(2, query(m, "return M.state.n"))
    end)
end)

describe("fsm metatables never become weak or finalized later", function()
    teardown(S.cleanup)
    local m
    before_each(function()
        m = S.open(EVAL, small)
    end)
    after_each(function()
        m:close()
    end)

    it("refuses __mode and __gc assigned to a metatable in use", function()
        for _, key in ipairs({ "__mode", "__gc" }) do
            local value = key == "__mode" and "'k'" or "function() end"
            for _, code in ipairs({
                "local mt = {} setmetatable({}, mt) mt.%s = %s",
                "local mt = {} setmetatable({}, mt) rawset(mt, '%s', %s)",
                "local mt = {} setmetatable({}, mt) load('%s = ...', 'x', 't', mt)(%s)",
                "local mt = { __index = {} } setmetatable({}, mt) mt.%s = nil mt.%s = %s",
            }) do
                local c = code:format(key, value, value)
                if select(2, code:gsub("%%s", "")) == 3 then c = code:format(key, key, value) end
                local reply = eval(m, c .. " return 'weak'")
                assert.is_table(reply, c)
                assert.matches(key .. " is not allowed", reply.err, 1, true)
            end
        end
    end)

    it("keeps a weak table from forming: entries stay after a collection", function()
        assert.matches("__mode is not allowed", eval(m, [[
            M.state.cache = {}
            local mt = {}
            setmetatable(M.state.cache, mt)
            mt.__mode = 'v']]).err)
        assert.are.equal(1, eval(m, [[
            M.state.cache.x = {}
            for _ = 1, 20000 do local _ = {} end
            return M.state.cache.x ~= nil and 1 or 0]]))
    end)

    it("leaves metatables otherwise as they were", function()
        assert.are.same({ "a", 1, "nil" }, eval(m, [[
            local mt = {}
            local t = setmetatable({}, mt)
            mt.__index = { x = 'a' }
            rawset(mt, 'extra', 1)
            return { t.x, mt.extra, tostring(getmetatable(mt)) }]]))
        assert.matches("metatable of its own", eval(m, [[
            local mt = {} setmetatable({}, mt) setmetatable(mt, {})]]).err)
        assert.matches("metatable of its own", eval(m, [[
            local mt = setmetatable({}, {}) setmetatable({}, mt)]]).err)
        -- inheritance through an __index table's own metatable still works
        assert.are.equal("base", eval(m, [[
            local Base = { hello = function() return 'base' end }
            local Methods = setmetatable({}, { __index = Base })
            local obj = setmetatable({}, { __index = Methods })
            return obj.hello()]]))
    end)
end)
