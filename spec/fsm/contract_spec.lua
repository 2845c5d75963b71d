-- The module's contract, checked when the script loads (src/fsm/fsm.c, check_module): a
-- script must define M.apply(cmd, ctx), M.snapshot(w) and M.restore(r); M.query and
-- M.reads are optional, but M.reads needs M.query. A script that breaks it is refused by
-- fsm.open with a message naming what is missing or mistyped and what it must be, and no
-- machine is made (before this check, a script without M.snapshot loaded and made the node
-- fork a full-size child on every apply batch: issue 7).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local REQUIRED = "a script must define M.apply(cmd, ctx), M.snapshot(w) and M.restore(r) "
    .. "(see README.md, Writing a state machine)"

-- A module source: the three required functions, with fields replaced (a value given as
-- false leaves the field out) or added (extra: Lua source of more fields).
local function module(fields)
    local parts = {}
    local defaults = {
        apply = "function(cmd) return 1 end",
        snapshot = "function(w) w:write('x') end",
        restore = "function(r) r:read() end",
    }
    for _, name in ipairs({ "apply", "snapshot", "restore", "query", "reads" }) do
        local v = fields[name]
        if v == nil then
            v = defaults[name]
        end
        if v then
            parts[#parts + 1] = name .. " = " .. v
        end
    end
    return "return { " .. table.concat(parts, ", ") .. " }"
end

-- fsm.open's message for source, asserting that it refuses the script.
local function refusal(source)
    local path = S.script(source)
    local m, err = fsm.open(path)
    assert.is_nil(m)
    assert.is_string(err)
    -- the message names the file it refuses, and carries no traceback: the script's code
    -- did not fail, its module is incomplete
    assert.are.equal(path .. ": ", err:sub(1, #path + 2))
    assert.is_nil(err:find("stack traceback", 1, true))
    return err:sub(#path + 3):gsub(" %(the script could not be loaded%)$", "")
end

describe("the module contract", function()
    teardown(S.cleanup)

    it("loads every example", function()
        for _, name in ipairs({ "bank", "counter", "kv", "lock", "queue" }) do
            local m, err = fsm.open(S.root .. "/examples/" .. name .. ".lua")
            assert.is_not_nil(m, err)
            m:close()
        end
    end)

    it("loads a script with only the required functions, and one with all fields", function()
        S.open(module({})):close()
        local m = S.open(module({ query = "function(cmd) return 2 end", reads = "{ GET = true }" }))
        assert.is_true(m:is_read("get"))
        m:close()
        -- a NAME = false entry names nothing, so it needs no M.query
        S.open(module({ reads = "{ GET = false }" })):close()
        S.open(module({ reads = "{}" })):close()
    end)

    describe("refuses a script", function()
        for _, name in ipairs({ "apply", "snapshot", "restore" }) do
            it("without M." .. name, function()
                assert.are.equal("M." .. name .. " is missing: " .. REQUIRED,
                    refusal(module({ [name] = false })))
            end)

            it("whose M." .. name .. " is not a function", function()
                assert.are.equal("M." .. name .. " is a string, not a function: " .. REQUIRED,
                    refusal(module({ [name] = "'x'" })))
                assert.are.equal("M." .. name .. " is a table, not a function: " .. REQUIRED,
                    refusal(module({ [name] = "{}" })))
            end)
        end

        it("naming every required field that is wrong, in one message", function()
            assert.are.equal("M.apply is missing; M.snapshot is missing; M.restore is missing: "
                .. REQUIRED, refusal("return {}"))
            assert.are.equal("M.snapshot is a number, not a function; M.restore is missing: "
                .. REQUIRED, refusal(module({ snapshot = "1", restore = false })))
        end)

        it("that returns no table", function()
            assert.are.equal("the script must return its module table (it returned a number): "
                .. REQUIRED, refusal("return 42"))
            assert.are.equal("the script must return its module table (it returned nil): "
                .. REQUIRED, refusal("local M = {}"))
        end)

        it("whose M.query is not a function", function()
            assert.are.equal("M.query is a string, not a function: M.query(cmd, ctx) is optional, "
                .. "but when present it must be a function (see README.md, Writing a state "
                .. "machine)", refusal(module({ query = "'GET'" })))
        end)

        local READS = "M.reads is optional; when present it is a table naming the commands "
            .. "M.query serves, { GET = true } or { \"GET\", ... } (see README.md, Writing a "
            .. "state machine)"

        it("whose M.reads is not a table", function()
            assert.are.equal("M.reads is a string, not a table: " .. READS,
                refusal(module({ query = "function() end", reads = "'GET'" })))
            assert.are.equal("M.reads is a boolean, not a table: " .. READS,
                refusal(module({ query = "function() end", reads = "true" })))
        end)

        it("whose M.reads has an entry that names no command", function()
            assert.are.equal("M.reads has a number key with a table value: " .. READS,
                refusal(module({ query = "function() end", reads = "{ {} }" })))
            assert.are.equal("M.reads has a boolean key with a boolean value: " .. READS,
                refusal(module({ query = "function() end", reads = "{ [true] = true }" })))
        end)

        it("whose M.reads names commands but which has no M.query", function()
            assert.are.equal("M.reads names GET but M.query is missing: the commands in M.reads "
                .. "are served by M.query(cmd, ctx), so a script with M.reads must define it (see "
                .. "README.md, Writing a state machine)",
                refusal(module({ reads = "{ 'mget', get = true }" })))
        end)
    end)

    it("still reports a script that fails while loading with the Lua error", function()
        local m, err = fsm.open(S.script("error('bad init')"))
        assert.is_nil(m)
        assert.matches(":1: bad init", err)
        assert.matches("stack traceback", err)
    end)
end)
