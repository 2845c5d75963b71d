-- The command table (M.commands, src/fsm/fsm_contract.c and fsm_commands.c): what the
-- node sees of it (fsm_command_at), Redis 7.0's checks before a command runs with their
-- exact error texts, the key arguments, and the contract's refusals of a malformed table.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local function script(commands, extra)
    return "local M = {}\n"
        .. (commands and ("M.commands = " .. commands .. "\n") or "")
        .. (extra or "function M.query(cmd, ctx) return 'q' end\n")
        .. "function M.apply(cmd, ctx) return 'a' end\n"
        .. "function M.snapshot(w) end\nfunction M.restore(r) end\nreturn M\n"
end

local TABLE = [[{
    GET    = { read = true, arity = 2, keys = {1, 1, 1} },
    SET    = { arity = -3, keys = {1, 1, 1} },
    MSET   = { arity = -3, keys = {1, -1, 2}, flags = {"denyoom"} },
    DBSIZE = { read = true, arity = 1 },
    mixedCase = { arity = -1, keys = {1, -2, 1}, flags = {"write", "fast"} },
}]]

-- fsm.open's message for a script, asserting that it refuses it (without the path).
local function refusal(source)
    local path = S.script(source)
    local m, err = fsm.open(path)
    assert.is_nil(m)
    assert.is_nil(err:find("stack traceback", 1, true))
    return err:sub(#path + 3):gsub(" %(the script could not be loaded%)$", "")
end

local EXPLAIN = "M.commands is optional; when present it maps each command name to {arity = N "
    .. "(N: exactly N words counting the name, -N: at least N), keys = {first, last, step} "
    .. "(optional, as Redis's COMMAND gives them: last -1 is the last argument), read = true "
    .. "for a command M.query serves (optional), flags = {\"denyoom\", ...} (optional)} "
    .. "(see README.md, Writing a state machine)"

describe("M.commands", function()
    teardown(S.cleanup)

    it("is given to the node sorted by lowercase name, with the default flag first", function()
        local m = S.open(script(TABLE))
        assert.are.same({
            { name = "dbsize", arity = 1, first_key = 0, last_key = 0, step = 0, read = true,
                flags = { "readonly" } },
            { name = "get", arity = 2, first_key = 1, last_key = 1, step = 1, read = true,
                flags = { "readonly" } },
            { name = "mixedcase", arity = -1, first_key = 1, last_key = -2, step = 1,
                read = false, flags = { "write", "fast" } },
            { name = "mset", arity = -3, first_key = 1, last_key = -1, step = 2, read = false,
                flags = { "write", "denyoom" } },
            { name = "set", arity = -3, first_key = 1, last_key = 1, step = 1, read = false,
                flags = { "write" } },
        }, m:commands())
        -- reads come from the table, case-insensitively
        assert.is_true(m:is_read("get"))
        assert.is_true(m:is_read("DbSize"))
        assert.is_false(m:is_read("SET"))
        assert.is_false(m:is_read("NOPE"))
        m:close()
    end)

    it("without a table: no table, anything goes, M.reads names the reads", function()
        local m = S.open(script(nil, "M.reads = { GET = true }\nfunction M.query() end\n"))
        assert.is_nil(m:commands())
        assert.are.same({ nil, "" }, { m:check({ "WHATEVER", "x" }) })
        assert.is_true(m:is_read("get"))
        assert.is_false(m:is_read("set"))
        m:close()
    end)

    describe("checks a command as Redis does", function()
        local m
        setup(function() m = S.open(script(TABLE)) end)
        teardown(function() m:close() end)

        local function err(cmd)
            local info, text = m:check(cmd)
            assert.is_nil(info)
            return text
        end

        it("knows names case-insensitively", function()
            assert.are.equal("get", (m:check({ "GeT", "k" })).name)
            assert.are.equal("mixedcase", (m:check({ "MIXEDCASE" })).name)
        end)

        it("answers an unknown command with Redis's text, quoting up to 128 bytes", function()
            assert.are.equal("ERR unknown command 'foo', with args beginning with: 'a' 'b' ",
                err({ "foo", "a", "b" }))
            assert.are.equal("ERR unknown command 'FOO', with args beginning with: ",
                err({ "FOO" }))
            -- the name and the arguments are cut at 128 bytes; arguments are quoted while
            -- the text of them (quotes and spaces included) is under 128 bytes, each cut to
            -- what is left of the 128
            local long = string.rep("n", 200)
            assert.are.equal("ERR unknown command '" .. string.rep("n", 128)
                .. "', with args beginning with: ", err({ long }))
            assert.are.equal("ERR unknown command 'x', with args beginning with: '"
                .. string.rep("a", 100) .. "' '" .. string.rep("b", 25) .. "' ",
                err({ "x", string.rep("a", 100), string.rep("b", 50), "c" }))
            assert.are.equal("ERR unknown command 'x', with args beginning with: '"
                .. string.rep("a", 127) .. "' ",
                err({ "x", string.rep("a", 127), "bbb", "c" }))
            -- C strings in Redis: a NUL byte ends a name or an argument
            assert.are.equal("ERR unknown command 'ab', with args beginning with: 'c' ",
                err({ "ab\0z", "c\0d" }))
            -- CR and LF become spaces, so the error stays one line
            assert.are.equal("ERR unknown command 'a  b', with args beginning with: 'c d' ",
                err({ "a\r\nb", "c\nd" }))
            -- the longest text fits the node's buffer
            local text = err({ long, long, long })
            assert.are.equal(4 + 17 + 128 + 29 + 131, #text)
        end)

        it("enforces an exact arity, counting the name", function()
            assert.is_not_nil(m:check({ "GET", "k" }))
            assert.are.equal("ERR wrong number of arguments for 'get' command", err({ "GET" }))
            assert.are.equal("ERR wrong number of arguments for 'get' command",
                err({ "get", "a", "b" }))
            assert.is_not_nil(m:check({ "DBSIZE" }))
            assert.are.equal("ERR wrong number of arguments for 'dbsize' command",
                err({ "DBSIZE", "x" }))
        end)

        it("enforces an at-least arity", function()
            assert.are.equal("ERR wrong number of arguments for 'set' command", err({ "SET", "k" }))
            assert.is_not_nil(m:check({ "SET", "k", "v" }))
            assert.is_not_nil(m:check({ "SET", "k", "v", "EX", "10" }))
            assert.is_not_nil(m:check({ "mixedcase" }))
        end)
    end)

    describe("names the key arguments", function()
        local m
        setup(function() m = S.open(script(TABLE)) end)
        teardown(function() m:close() end)

        local function keys(cmd)
            local info, k = m:check(cmd)
            assert.is_not_nil(info)
            return k
        end

        it("first = last", function()
            assert.are.same({ "k" }, keys({ "GET", "k" }))
            assert.are.same({ "k" }, keys({ "SET", "k", "v", "EX", "1" }))
        end)

        it("none for a command without keys", function()
            assert.are.same({}, keys({ "DBSIZE" }))
        end)

        it("last -1 with step 2: every other argument to the end", function()
            assert.are.same({ "a" }, keys({ "MSET", "a", "1" }))
            assert.are.same({ "a", "b", "c" }, keys({ "MSET", "a", "1", "b", "2", "c", "3" }))
            -- an odd count (the command's own error, as in Redis) still names what is there
            assert.are.same({ "a", "b" }, keys({ "MSET", "a", "1", "b" }))
        end)

        it("last -2: up to the one before the last", function()
            assert.are.same({ "a", "b" }, keys({ "MIXEDCASE", "a", "b", "c" }))
            assert.are.same({}, keys({ "MIXEDCASE", "a" }))
            assert.are.same({}, keys({ "MIXEDCASE" }))
        end)

        it("none when the arguments are too few for the last key (unchecked arity)", function()
            assert.are.same({}, m:keys({ "GET" }))
            assert.are.same({ "k" }, m:keys({ "GET", "k" }))
            assert.are.same({}, m:keys({ "NOPE", "k" }))
        end)
    end)

    describe("refuses a script whose table", function()
        local cases = {
            { "is not a table", "'GET'", "M.commands is a string, not a table" },
            { "is empty", "{}", "M.commands names no command" },
            { "has a number key", "{ 'GET' }", "M.commands has a number key (command names are strings)" },
            { "has a bad name", "{ ['A B'] = { arity = 1 } }",
                "M.commands has a bad command name 'A B' (1 to 63 letters, digits and _ . : -)" },
            { "has a name over 63 bytes", "{ [string.rep('a', 64)] = { arity = 1 } }",
                "M.commands has a bad command name '" .. string.rep("a", 64)
                    .. "' (1 to 63 letters, digits and _ . : -)" },
            { "names a command twice", "{ GET = { arity = 2 }, get = { arity = 2 } }",
                "M.commands names get twice (command names are case-insensitive)" },
            { "has an entry that is not a table", "{ GET = 2 }", "M.commands.GET is a number, not a table" },
            { "has an unknown field", "{ GET = { arity = 2, reads = true } }",
                "M.commands.GET has an unknown field 'reads'" },
            { "has a non-boolean read", "{ GET = { arity = 2, read = 1 } }",
                "M.commands.GET.read is a number, not a boolean" },
            { "has no arity", "{ GET = {} }", "M.commands.GET.arity is missing" },
            { "has arity 0", "{ GET = { arity = 0 } }",
                "M.commands.GET.arity must be an integer other than 0 (N: exactly N words counting the name, -N: at least N)" },
            { "has a float arity", "{ GET = { arity = 2.5 } }",
                "M.commands.GET.arity must be an integer other than 0 (N: exactly N words counting the name, -N: at least N)" },
            { "has a string arity", "{ GET = { arity = '2' } }",
                "M.commands.GET.arity must be an integer other than 0 (N: exactly N words counting the name, -N: at least N)" },
            { "has keys of another type", "{ GET = { arity = 2, keys = 1 } }",
                "M.commands.GET.keys is a number, not a table" },
            { "has two keys numbers", "{ GET = { arity = 2, keys = {1, 1} } }",
                "M.commands.GET.keys must be {first, last, step}, three integers" },
            { "has four keys numbers", "{ GET = { arity = 2, keys = {1, 1, 1, 1} } }",
                "M.commands.GET.keys must be {first, last, step}, three integers" },
            { "has a float in keys", "{ GET = { arity = 2, keys = {1, 1.5, 1} } }",
                "M.commands.GET.keys must be {first, last, step}, three integers" },
            { "has extra fields in keys", "{ GET = { arity = 2, keys = {1, 1, 1, x = 1} } }",
                "M.commands.GET.keys must be {first, last, step}, three integers" },
            { "has first key 0", "{ GET = { arity = 2, keys = {0, 0, 0} } }",
                "M.commands.GET.keys: first must be at least 1 (leave keys out for a command without key arguments)" },
            { "has step 0", "{ GET = { arity = 2, keys = {1, 1, 0} } }",
                "M.commands.GET.keys: step must be at least 1" },
            { "has last before first", "{ GET = { arity = -3, keys = {2, 1, 1} } }",
                "M.commands.GET.keys: last must be at least first, or negative (-1 is the last argument)" },
            { "has keys beyond an exact arity", "{ GET = { arity = 2, keys = {1, 2, 1} } }",
                "M.commands.GET.keys {1, 2, 1} names arguments that a call of arity 2 need not have" },
            { "has keys beyond an at-least arity", "{ SET = { arity = -2, keys = {2, 2, 1} } }",
                "M.commands.SET.keys {2, 2, 1} names arguments that a call of arity -2 need not have" },
            { "counts back past the first key of a fixed arity", "{ X = { arity = 3, keys = {2, -3, 1} } }",
                "M.commands.X.keys {2, -3, 1} names arguments that a call of arity 3 need not have" },
            { "has keys for a command without arguments", "{ X = { arity = 1, keys = {1, -1, 1} } }",
                "M.commands.X.keys {1, -1, 1} names arguments that a call of arity 1 need not have" },
            { "has a first key no call reaches", "{ X = { arity = -2, keys = {2000000, -1, 1} } }",
                "M.commands.X.keys {2000000, -1, 1} names arguments that a call of arity -2 need not have" },
            { "counts back further than any call", "{ X = { arity = -2, keys = {1, -2000000, 1} } }",
                "M.commands.X.keys {1, -2000000, 1} names arguments that a call of arity -2 need not have" },
            { "has flags of another type", "{ GET = { arity = 2, flags = 'fast' } }",
                "M.commands.GET.flags is a string, not a table" },
            { "has flags that are not a list", "{ GET = { arity = 2, flags = { fast = true } } }",
                "M.commands.GET.flags must be a list of at most 16 strings" },
            { "has a bad flag", "{ GET = { arity = 2, flags = { 'Fast' } } }",
                "M.commands.GET.flags[1] must be a flag name: lowercase letters, digits and _ (at most 32)" },
            { "has a flag twice", "{ GET = { arity = 2, flags = { 'fast', 'fast' } } }",
                "M.commands.GET.flags lists fast twice" },
            { "flags a write readonly", "{ SET = { arity = 3, flags = { 'readonly' } } }",
                "M.commands.SET.flags says readonly, but the command is a write (no read = true)" },
            { "flags a read write", "{ GET = { arity = 2, read = true, flags = { 'write' } } }",
                "M.commands.GET.flags says write, but the command is a read (read = true)" },
        }
        for _, case in ipairs(cases) do
            it(case[1], function()
                assert.are.equal(case[3] .. ": " .. EXPLAIN, refusal(script(case[2])))
            end)
        end

        it("comes with M.reads too", function()
            assert.are.equal("M.commands and M.reads are both given: give one or the other: "
                .. "mark the reads in M.commands with read = true and remove M.reads (see "
                .. "README.md, Writing a state machine)",
                refusal(script("{ GET = { arity = 2, read = true } }",
                    "M.reads = { GET = true }\nfunction M.query() end\n")))
        end)

        it("marks a read without M.query", function()
            assert.are.equal("M.commands marks get as a read but M.query is missing: the "
                .. "commands marked read = true in M.commands are served by M.query(cmd, ctx), "
                .. "so the script must define it (see README.md, Writing a state machine)",
                refusal(script("{ SET = { arity = 3 }, GET = { arity = 2, read = true } }", "")))
            -- a table of writes only needs no M.query
            S.open(script("{ SET = { arity = 3 } }", "")):close()
        end)
    end)
end)
