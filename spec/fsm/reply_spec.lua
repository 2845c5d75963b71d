-- The reply mapping: each Lua value a script returns becomes the RESP bytes README.md
-- promises, byte for byte (checked on the raw bytes, not through fsm.decode): RESP2, and
-- RESP3's map, set and double (Redis 7.0's formatting) where the script asks for them, and
-- the hints that give a RESP2 connection Redis's shapes (pairs, null arrays).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local source = [==[
local M = {}
local values = {
    str = function() return "hello" end,
    empty = function() return "" end,
    binary = function() return "a\r\nb\0c" end,
    int = function() return 42 end,
    neg = function() return -7 end,
    maxint = function() return math.maxinteger end,
    float_integral = function() return 3.0 end,
    float = function() return 0.1 end,
    huge = function() return 1e300 end,
    inf = function() return math.huge end,
    none = function() return nil end,
    no_value = function() end,
    f = function() return false end,
    t = function() return true end,
    array = function() return { "a", 1, false, true } end,
    empty_array = function() return {} end,
    nested = function() return { "x", { 1, { "y" } } } end,
    holes = function() return { 1, 2, nil, 4 } end,
    ok = function() return { ok = "OK" } end,
    err = function() return { err = "WRONGTYPE bad" } end,
    err_crlf = function() return { err = "ERR a\r\nb" } end,
    deep = function()
        local t = {}
        for _ = 1, 40 do t = { t } end
        return t
    end,
    cyclic = function() local t = {}; t[1] = t; return t end,
    map = function() return { map = { "a", 1, "b", { "x", "y" } } } end,
    empty_map = function() return { map = {} } end,
    odd_map = function() return { map = { "a", 1, "b" } } end,
    bad_map = function() return { map = "a" } end,
    nested_map = function() return { map = { "m", { map = { "k", { set = { 1 } } } } } } end,
    map_in_array = function() return { 1, { map = { "k", nil } } } end,
    set = function() return { set = { "x", "y", 3 } } end,
    empty_set = function() return { set = {} } end,
    double = function() return { double = 1.5 } end,
    double_int = function() return { double = 3 } end,
    double_third = function() return { double = 1 / 3 } end,
    double_neg_zero = function() return { double = -0.0 } end,
    double_big = function() return { double = 1e300 } end,
    double_inf = function() return { double = math.huge } end,
    double_neg_inf = function() return { double = -math.huge } end,
    double_nan = function() return { double = 0 / 0 } end,
    double_neg_nan = function() return { double = -(0 / 0) } end,
    bad_double = function() return { double = "1.5" } end,
    pairs = function() return { pairs = { "a", { double = 1.5 }, "b", 2 } } end,
    empty_pairs = function() return { pairs = {} } end,
    odd_pairs = function() return { pairs = { "a", 1, "b" } } end,
    null_array = function() return { null_array = true } end,
    bad_null_array = function() return { null_array = 1 } end,
    map_over_array = function() return { 1, 2, map = { "k", "v" } } end,
    err_over_map = function() return { err = "E x", map = { "k", "v" } } end,
    deep_map = function()
        local t = {}
        for _ = 1, 40 do t = { map = { "k", t } } end
        return t
    end,
}
function M.apply(cmd) return values[cmd[1]]() end
function M.snapshot(w) end
function M.restore(r) end
return M
]==]

describe("fsm replies", function()
    local m
    setup(function()
        m = S.open(source)
    end)
    teardown(function()
        m:close()
        S.cleanup()
    end)

    local cases = {
        { "str", "$5\r\nhello\r\n" },
        { "empty", "$0\r\n\r\n" },
        { "binary", "$6\r\na\r\nb\0c\r\n" },
        { "int", ":42\r\n" },
        { "neg", ":-7\r\n" },
        { "maxint", ":9223372036854775807\r\n" },
        { "float_integral", ":3\r\n" },
        { "float", "$19\r\n0.10000000000000001\r\n" },
        { "huge", "$23\r\n1.0000000000000001e+300\r\n" },
        { "inf", "$3\r\ninf\r\n" },
        { "none", "$-1\r\n" },
        { "no_value", "$-1\r\n" },
        { "f", "$-1\r\n" },
        { "t", ":1\r\n" },
        { "array", "*4\r\n$1\r\na\r\n:1\r\n$-1\r\n:1\r\n" },
        { "empty_array", "*0\r\n" },
        { "nested", "*2\r\n$1\r\nx\r\n*2\r\n:1\r\n*1\r\n$1\r\ny\r\n" },
        { "holes", "*2\r\n:1\r\n:2\r\n" },
        { "ok", "+OK\r\n" },
        { "err", "-WRONGTYPE bad\r\n" },
        { "err_crlf", "-ERR a  b\r\n" },
        { "deep", "-ERR reply nested more than 32 levels deep\r\n" },
        { "cyclic", "-ERR reply contains itself (a cycle)\r\n" },
        -- RESP3 forms, for the node to pass on (or turn into RESP2 at a RESP2 connection)
        { "map", "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n" },
        { "empty_map", "%0\r\n" },
        { "odd_map", "-ERR a map reply needs a value after each key: {map = {k1, v1, ...}}\r\n" },
        { "bad_map", "-ERR a map reply holds a string, not a table\r\n" },
        { "nested_map", "%1\r\n$1\r\nm\r\n%1\r\n$1\r\nk\r\n~1\r\n:1\r\n" },
        { "map_in_array", "-ERR a map reply needs a value after each key: {map = {k1, v1, ...}}\r\n" },
        { "set", "~3\r\n$1\r\nx\r\n$1\r\ny\r\n:3\r\n" },
        { "empty_set", "~0\r\n" },
        { "double", ",1.5\r\n" },
        { "double_int", ",3\r\n" },
        { "double_third", ",0.33333333333333331\r\n" },
        { "double_neg_zero", ",-0\r\n" },
        { "double_big", ",1.0000000000000001e+300\r\n" },
        { "double_inf", ",inf\r\n" },
        { "double_neg_inf", ",-inf\r\n" },
        { "double_nan", ",nan\r\n" },
        -- the hints for a RESP2 connection (client/resp3.h), then the RESP3 form
        { "pairs", "|1\r\n+luaraft:pairs\r\n#t\r\n*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n:2\r\n" },
        { "empty_pairs", "|1\r\n+luaraft:pairs\r\n#t\r\n*0\r\n" },
        { "odd_pairs", "-ERR a pairs reply needs a second value in each pair: {pairs = {a1, b1, ...}}\r\n" },
        { "null_array", "|1\r\n+luaraft:null-array\r\n#t\r\n_\r\n" },
        { "bad_null_array", "-ERR a null_array reply holds a number, not true\r\n" },
        { "double_neg_nan", ",nan\r\n" },
        { "bad_double", "-ERR a double reply holds a string, not a number\r\n" },
        { "map_over_array", "%1\r\n$1\r\nk\r\n$1\r\nv\r\n" },
        { "err_over_map", "-E x\r\n" },
        { "deep_map", "-ERR reply nested more than 32 levels deep\r\n" },
    }
    for _, case in ipairs(cases) do
        it("encodes " .. case[1], function()
            assert.are.equal(case[2], m:apply({ case[1] }))
        end)
    end

    it("refuses a function value with an error reply", function()
        local f = S.open("return { apply = function() return tostring end, "
            .. "snapshot = function(w) end, restore = function(r) end }")
        assert.are.equal("-ERR script returned a function value, which has no RESP form\r\n",
            f:apply({ "x" }))
        f:close()
    end)

    it("fsm.decode maps RESP back to Lua values", function()
        local fsm = S.fsm
        assert.are.same({ ok = "OK" }, fsm.decode("+OK\r\n"))
        assert.are.same({ err = "ERR x" }, fsm.decode("-ERR x\r\n"))
        assert.are.equal(-3, fsm.decode(":-3\r\n"))
        assert.are.equal("ab", fsm.decode("$2\r\nab\r\n"))
        assert.are.equal(fsm.null, fsm.decode("$-1\r\n"))
        assert.are.equal(fsm.null, fsm.decode("*-1\r\n"))
        assert.are.same({ "a", fsm.null, 1 }, fsm.decode("*3\r\n$1\r\na\r\n$-1\r\n:1\r\n"))
        -- the RESP3 forms come back as the script writes them
        assert.are.same({ map = { "a", 1, "b", { set = { "x" } } } },
            fsm.decode("%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n~1\r\n$1\r\nx\r\n"))
        assert.are.same({ map = {} }, fsm.decode("%0\r\n"))
        assert.are.same({ double = 1.5 }, fsm.decode(",1.5\r\n"))
        assert.are.same({ double = math.huge }, fsm.decode(",inf\r\n"))
        assert.are.same({ double = -math.huge }, fsm.decode(",-inf\r\n"))
        local nan = fsm.decode(",nan\r\n").double
        assert.is_true(nan ~= nan)
        assert.are.equal(fsm.null, fsm.decode("_\r\n"))
        -- and so do the hinted ones
        assert.are.same({ pairs = { "a", { double = 1.5 }, "b", 2 } },
            fsm.decode(m:apply({ "pairs" })))
        assert.are.same({ null_array = true }, fsm.decode(m:apply({ "null_array" })))
        assert.has_error(function() fsm.decode(",1.5x\r\n") end)
        assert.has_error(function() fsm.decode("%1\r\n:1\r\n") end)
        assert.has_error(function() fsm.decode("$5\r\nab\r\n") end)
        assert.has_error(function() fsm.decode(":1\r\n:2\r\n") end)
        assert.has_error(function() fsm.decode("?\r\n") end, "fsm.decode: unknown type byte 63")
    end)
end)
