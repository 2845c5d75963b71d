-- The reply mapping: each Lua value a script returns becomes the RESP2 bytes README.md
-- promises, byte for byte (checked on the raw bytes, not through fsm.decode).
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
        { "cyclic", "-ERR reply nested more than 32 levels deep\r\n" },
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
        assert.has_error(function() fsm.decode("$5\r\nab\r\n") end)
        assert.has_error(function() fsm.decode(":1\r\n:2\r\n") end)
    end)
end)
