-- The keyspace query for INFO (FSM_QUERY_KEYSPACE, src/fsm/job.c and fsm_keyspace): the
-- script's M.keyspace(ctx) -> {keys = n, expires = m} as the RESP array [n, m], or a RESP
-- null when the script cannot say (no M.keyspace, an error, another value).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local function script(keyspace)
    return [[
local M = {}
local n, seen = 0, nil
function M.apply(cmd, ctx) n = n + 1; return n end
function M.snapshot(w) w:write(tostring(n)) end
function M.restore(r) n = math.tointeger(r:read() or "0") end
]] .. (keyspace and ("function M.keyspace(ctx) " .. keyspace .. " end\n") or "") .. "return M\n"
end

describe("the keyspace query", function()
    teardown(S.cleanup)

    it("answers [keys, expires] from M.keyspace, with a query's ctx", function()
        local m = S.open(script("return { keys = n, expires = ctx.time_ms }"))
        assert.are.equal("*2\r\n:0\r\n:0\r\n", m:keyspace())
        m:apply({ "X" }, { index = 1, term = 1, time_ms = 7 })
        m:apply({ "X" }, { index = 2, term = 1, time_ms = 9 })
        assert.are.equal("*2\r\n:2\r\n:9\r\n", m:keyspace())
        -- a restored machine counts the same keys
        local copy = S.open(script("return { keys = n, expires = 0 }"))
        copy:restore((m:snapshot()))
        assert.are.equal("*2\r\n:2\r\n:0\r\n", copy:keyspace())
        m:close()
        copy:close()
    end)

    it("answers null when the script cannot say", function()
        local cases = {
            false,                                   -- no M.keyspace
            "error('no')",                           -- an error
            "while true do end",                     -- a spent budget
            "return 5",                              -- not a table
            "return { keys = 1 }",                   -- a field missing
            "return { keys = 1, expires = -1 }",     -- negative
            "return { keys = 1.5, expires = 0 }",    -- not an integer
            "return { keys = '1', expires = 0 }",    -- a string
        }
        for _, body in ipairs(cases) do
            local m = S.open(script(body or nil), { instructions_max = 10000 })
            assert.are.equal("$-1\r\n", m:keyspace(), tostring(body))
            -- and the machine stays usable
            assert.are.equal(":1\r\n", m:apply({ "X" }))
            m:close()
        end
    end)
end)
