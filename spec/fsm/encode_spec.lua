-- The helpers scripts see in the global table luaraft (src/fsm/encode.c): encode/decode
-- round trip every value, give the same bytes for the same state whatever the insertion
-- order or the process, decode refuses anything encode would not produce, and both are
-- charged to the instruction budget.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

-- Like sandbox_spec's EVAL: apply runs cmd[2] as a chunk that sees M, cmd and ctx, plus
-- helpers: hex(s), same(a, b) (deep equality that tells -0.0 from 0 and 1 from 1.0).
local EVAL = [[
local M = { state = {} }
local eval_load = load
local H = {}
function H.hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
function H.unhex(h)
    return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end
function H.same(a, b)
    if type(a) ~= type(b) then return false end
    if type(a) == "number" then
        if math.type(a) ~= math.type(b) then return false end
        if a ~= a then return b ~= b end
        return a == b and (a ~= 0 or 1 / a == 1 / b)
    end
    if type(a) ~= "table" then return a == b end
    for k, v in pairs(a) do
        if not H.same(v, rawget(b, k)) then return false end
    end
    for k in pairs(b) do
        if rawget(a, k) == nil then return false end
    end
    return true
end
function M.apply(cmd, ctx)
    local chunk = assert(eval_load("local M, H, cmd, ctx = ...\n" .. cmd[2], "=eval"))
    return chunk(M, H, cmd, ctx)
end
function M.snapshot(w) w:write(luaraft.encode(M.state)) end
function M.restore(r)
    local parts = {}
    for chunk in r.read, r do parts[#parts + 1] = chunk end
    M.state = luaraft.decode(table.concat(parts))
end
return M
]]

local limits = { instructions_max = 20000000, memory_bytes_max = 256 * 1024 * 1024 }

-- Values that exercise every tag and every length boundary.
local VALUES = [[
local big = {}
for i = 1, 70000 do big[i] = i % 3 == 0 and ("s" .. i) or i end
local wide = {}
for i = 1, 300 do wide["k" .. i] = { i, -i, i + 0.5 } end
return {
    0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296,
    math.maxinteger, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649,
    math.mininteger, 0.0, -0.0, 1.0, -1.5, 1e300, -1e-300, 2 ^ 63, math.huge, -math.huge,
    "", "a", string.rep("x", 31), string.rep("x", 32), string.rep("x", 255),
    string.rep("x", 256), string.rep("y", 65535), string.rep("y", 65536), "\0\1\255 bytes",
    true, false, {}, { 1 }, { 1, 2, 3 }, { "a", { "b", { "c" } } }, big, wide,
    { [1] = "one", [3] = "three" }, { [0] = 0, 1 }, { [-1] = true, [2.5] = false },
    { [true] = 1, [false] = 0, x = {}, [2 ^ 70] = "float key" },
    { a = { b = { c = { d = { e = "deep" } } } } },
}
]]

describe("luaraft encode/decode", function()
    local m
    before_each(function()
        m = S.open(EVAL, limits)
    end)
    after_each(function()
        m:close()
    end)
    teardown(S.cleanup)

    local function eval(code, ...)
        return S.apply(m, { "EVAL", code, ... })
    end

    it("is a global table with encode, decode, keys, sorted_pairs", function()
        assert.are.same({ "decode", "encode", "encode_depth_max", "keys", "sorted_pairs" },
            eval("return luaraft.keys(luaraft)"))
        assert.are.equal(64, eval("return luaraft.encode_depth_max"))
        assert.are.equal("yes", eval("return luaraft.sorted_pairs == pairs and 'yes'"))
    end)

    it("round trips every type, boundary and nesting", function()
        local reply = eval([[
            local values = load(cmd[3])()
            local out = {}
            for i, v in ipairs(values) do
                local s = luaraft.encode(v)
                local back = luaraft.decode(s)
                out[i] = H.same(v, back) and luaraft.encode(back) == s and "ok" or ("bad " .. i)
            end
            -- nil and NaN at the top level
            out[#out + 1] = luaraft.decode(luaraft.encode(nil)) == nil and "ok" or "bad nil"
            local nan = luaraft.decode(luaraft.encode(0 / 0))
            out[#out + 1] = nan ~= nan and "ok" or "bad nan"
            return out
        ]], VALUES, "x")
        for i, r in ipairs(reply) do
            assert.are.equal("ok", r, i)
        end
        assert.is_true(#reply > 50)
    end)

    it("has the documented bytes (canonical MessagePack)", function()
        local cases = {
            { "nil", "c0" }, { "false", "c2" }, { "true", "c3" },
            { "0", "00" }, { "127", "7f" }, { "128", "cc80" }, { "256", "cd0100" },
            { "65536", "ce00010000" }, { "4294967296", "cf0000000100000000" },
            { "-1", "ff" }, { "-32", "e0" }, { "-33", "d0df" }, { "-129", "d1ff7f" },
            { "-32769", "d2ffff7fff" }, { "math.mininteger", "d38000000000000000" },
            { "1.0", "cb3ff0000000000000" }, { "-0.0", "cb8000000000000000" },
            { "0/0", "cb7ff8000000000000" }, { "-(0/0)", "cb7ff8000000000000" },
            { "''", "a0" }, { "'ab'", "a26162" }, { "string.rep('z', 32)", "d920" .. ("7a"):rep(32) },
            { "{}", "80" }, { "{ 'a', true }", "92a161c3" },
            { "{ b = 1, a = 2, [3] = 0, [1.5] = 0, [true] = 0, [false] = 0 }",
                "86cb3ff8000000000000000300a16102a16201c200c300" },
            { "{ [2] = 'x' }", "8102a178" },
        }
        for _, c in ipairs(cases) do
            assert.are.equal(c[2], eval("return H.hex(luaraft.encode(" .. c[1] .. "))"), c[1])
        end
    end)

    it("gives the same bytes whatever order the keys were inserted in", function()
        local reply = eval([[
            local a, b = {}, {}
            for i = 1, 500 do a["k" .. i] = i; a[i * 3] = { i } end
            for i = 500, 1, -1 do b[i * 3] = { i }; b["k" .. i] = i end
            -- b also went through deletions and rehashing
            for i = 1, 1000 do b["tmp" .. i] = true end
            for i = 1, 1000 do b["tmp" .. i] = nil end
            local c = {}
            for i = 1, 10 do c[i] = i end
            local d = {}
            for i = 10, 1, -1 do d[i] = i end
            return { luaraft.encode(a) == luaraft.encode(b) and "same" or "differ",
                     luaraft.encode(c) == luaraft.encode(d) and "same" or "differ",
                     H.hex(luaraft.encode(d)):sub(1, 2) }
        ]])
        assert.are.same({ "same", "same", "9a" }, reply)
    end)

    it("gives the same bytes in every process", function()
        local script = S.script([[
            return { apply = function()
                local t = {}
                for i = 1, 2000 do t["key" .. (i * 7919 % 2000)] = { i, i + 0.25, i % 2 == 0 } end
                for i = 1, 50 do t[i * 1.5] = "f" .. i end
                t[true] = {}
                return luaraft.encode(t)
            end, snapshot = function(w) end, restore = function(r) end }
        ]])
        local child = S.script(string.format([[
            package.cpath = %q
            local fsm = require("luaraft.fsm")
            local m = assert(fsm.open(%q))
            io.write(m:apply({ "RUN" }))
            m:close()
        ]], package.cpath, script))
        local outputs = {}
        for i = 1, 3 do
            local p = assert(io.popen("lua5.4 " .. child))
            outputs[i] = p:read("a")
            assert.is_true(p:close())
        end
        assert.is_true(#outputs[1] > 2000 * 10)
        assert.are.equal(outputs[1], outputs[2])
        assert.are.equal(outputs[1], outputs[3])
        -- and the same as in this process
        local m2 = assert(fsm.open(script))
        assert.are.equal(outputs[1], m2:apply({ "RUN" }))
        m2:close()
    end)

    describe("decode", function()
        local function decode_hex(h)
            return eval([[
                local ok, err = pcall(luaraft.decode, H.unhex(cmd[3]))
                if ok then return { "ok" } end
                return { "error", err }
            ]], h)
        end

        it("refuses every truncation of valid input", function()
            local reply = eval([[
                local values = load(cmd[3])()
                local s = luaraft.encode({ values[1], values[11], values[28], values[33],
                    values[36], values[42], values[44], values[48], values[51] })
                local bad = {}
                for len = 0, #s - 1 do
                    local ok, err = pcall(luaraft.decode, s:sub(1, len))
                    if ok or not err:find("truncated input", 1, true) then
                        bad[#bad + 1] = len .. ": " .. tostring(err)
                    end
                end
                return { #s, #bad, bad[1] or "" }
            ]], VALUES)
            assert.is_true(reply[1] > 300, reply[1])
            assert.are.same({ 0, "" }, { reply[2], reply[3] })
        end)

        it("refuses bad tags, trailing bytes and non-canonical forms", function()
            local bad = {
                { "c1", "bad tag" }, { "c4", "bad tag" }, { "ca00000000", "bad tag" },
                { "c7", "bad tag" }, { "d4", "bad tag" }, { "d8", "bad tag" },
                { "0000", "trailing bytes" }, { "80c0", "trailing bytes" },
                { "cc05", "non-canonical" }, { "cd00ff", "non-canonical" },
                { "cf8000000000000000", "out of range" }, { "d0ff", "non-canonical" },
                { "d30000000000000001", "non-canonical" }, { "d901", "non-canonical" },
                { "dc0001c0", "non-canonical" }, { "90", "non-canonical empty array" },
                { "cb7ff0000000000001", "non-canonical NaN" },
                { "82a162c3a161c3", "out of order" }, { "82a161c3a161c2", "out of order" },
                { "820101" .. "0202", "non-canonical map" }, { "81c0c3", "nil key" },
                { "81a161c0", "nil value" }, { "91c0", "nil in an array" },
                { "818001", "table as a key" },
                { "81cb3ff000000000000001", "integral float key" },
                { "81cb7ff800000000000001", "NaN" },
                { "dfffffffff", "truncated input" }, { "ddffffffff", "truncated input" },
                { "dbffffffff", "truncated input" },
            }
            for _, c in ipairs(bad) do
                local r = decode_hex(c[1])
                assert.are.equal("error", r[1], c[1])
                assert.matches(c[2], r[2], 1, true)
            end
            assert.are.same({ "ok" }, decode_hex("81cb3ff800000000000001")) -- 1.5 key
            assert.are.same({ "ok" }, decode_hex("81cb43f000000000000001")) -- 2^64 key
        end)

        it("refuses nesting deeper than the limit, in both directions", function()
            local reply = eval([[
                local function nest(n)
                    local t = {}
                    for _ = 2, n do t = { t } end
                    return t
                end
                local ok64 = pcall(luaraft.encode, nest(64))
                local ok65, err65 = pcall(luaraft.encode, nest(65))
                local deep = string.rep("\145", 64) .. "\128" -- 64 arrays around {}: 65 tables
                local okd, errd = pcall(luaraft.decode, deep)
                local okd64 = pcall(luaraft.decode, deep:sub(2))
                return { tostring(ok64), tostring(ok65), err65, tostring(okd), errd,
                    tostring(okd64) }
            ]])
            assert.are.equal("true", reply[1])
            assert.are.equal("false", reply[2])
            assert.matches("nested deeper than 64", reply[3], 1, true)
            assert.are.equal("false", reply[4])
            assert.matches("nested too deep", reply[5], 1, true)
            assert.are.equal("true", reply[6])
        end)

        it("survives random corruption: whatever it accepts re-encodes to the same bytes",
            function()
                local reply = eval([[
                    math.randomseed(7)
                    local s = luaraft.encode({ 1, "two", { three = 3.5, [4] = { true } },
                        -70000, string.rep("q", 40) })
                    local accepted, refused = 0, 0
                    for _ = 1, 3000 do
                        local b = { s:byte(1, -1) }
                        for _ = 1, math.random(1, 3) do
                            b[math.random(1, #b)] = math.random(0, 255)
                        end
                        local x = string.char(table.unpack(b))
                        local ok, v = pcall(luaraft.decode, x)
                        if ok then
                            assert(luaraft.encode(v) == x, "not canonical: " .. H.hex(x))
                            accepted = accepted + 1
                        else
                            refused = refused + 1
                        end
                    end
                    return { accepted, refused }
                ]])
                assert.is_true(reply[1] > 0)
                assert.is_true(reply[2] > 0)
            end)
    end)

    it("refuses cycles, functions and other values, and such keys", function()
        local cases = {
            { "local t = {}; t.self = t; return t", "cycle" },
            { "local t = { {} }; t[1][1] = t; return t", "cycle" },
            { "return { f = print or tostring }", "cannot encode a function" },
            { "return tostring", "cannot encode a function" },
            { "return { [{}] = 1 }", "cannot encode a table key" },
            { "return { [tostring] = 1 }", "cannot encode a function key" },
            { "return { 1, 2, tostring }", "cannot encode a function" },
        }
        for _, c in ipairs(cases) do
            local r = eval([[
                local ok, err = pcall(luaraft.encode, load(cmd[3])())
                return { tostring(ok), err }
            ]], c[1])
            assert.are.equal("false", r[1], c[1])
            assert.matches(c[2], r[2], 1, true)
        end
        -- a table reached twice without a cycle is fine, and written twice
        assert.are.equal("92" .. "9101" .. "9101",
            eval("local x = { 1 }; return H.hex(luaraft.encode({ x, x }))"))
    end)

    it("lists keys in the sandbox's order; pairs is already that order", function()
        local reply = eval([[
            local t = { [true] = 1, b = 1, a = 1, [10] = 1, [2.5] = 1, [-3] = 1, [false] = 1,
                ab = 1, [""] = 1 }
            local keys = luaraft.keys(t)
            local via = {}
            for k in luaraft.sorted_pairs(t) do via[#via + 1] = k end
            local out = {}
            for i, k in ipairs(keys) do out[i] = tostring(k) .. ":" .. tostring(via[i] == k) end
            return out
        ]])
        assert.are.same({ "-3:true", "2.5:true", "10:true", ":true", "a:true", "ab:true",
            "b:true", "false:true", "true:true" }, reply)
    end)

    it("charges encode and decode to the instruction budget", function()
        local small = S.open(EVAL, { instructions_max = 20000 })
        -- building the table fits; encoding its 12.8 MB (200,000 charged) does not
        assert.are.same({ err = "ERR script exceeded its instruction budget" },
            S.apply(small, { "EVAL", [[
                local s, t = string.rep("x", 6400), {}
                for i = 1, 2000 do t[i] = s end
                return #luaraft.encode(t)
            ]] }))
        -- 100,000 array entries (and 100 KB) to decode
        assert.are.same({ err = "ERR script exceeded its instruction budget" },
            S.apply(small, { "EVAL", [[
                return luaraft.decode("\221" .. string.pack(">I4", 100000) ..
                    string.rep("\0", 100000)) and 1
            ]] }))
        -- and the same work fits a budget that allows it
        local large = S.open(EVAL, { instructions_max = 500000 })
        assert.are.equal(100000, S.apply(large, { "EVAL", [[
            return #luaraft.decode("\221" .. string.pack(">I4", 100000) ..
                string.rep("\0", 100000))
        ]] }))
        large:close()
        assert.are.equal(2, S.apply(small, { "EVAL", "return #luaraft.encode({})" } ) + 1)
        small:close()
    end)

    it("round trips a state through snapshot and restore", function()
        eval([[
            for i = 1, 3000 do
                M.state["user:" .. i] = { name = "n" .. i, balance = i * 1.25, tags = { "a", i } }
            end
            M.state.flags = { [true] = "yes", [false] = "no" }
            return 1
        ]])
        local snap = m:snapshot()
        local copy = S.open(EVAL, limits)
        copy:restore(snap, 777)
        assert.are.equal(snap, (copy:snapshot()))
        assert.are.equal("n2999 3748.75 yes",
            S.apply(copy, { "EVAL", [[
                local u = M.state["user:2999"]
                return u.name .. " " .. u.balance .. " " .. M.state.flags[true]
            ]] }))
        copy:close()
    end)
end)
