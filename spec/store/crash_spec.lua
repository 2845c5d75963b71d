-- Crash safety: a child process writes to a store and prints each index once its write
-- is acknowledged (the callback ran: the transaction committed). The parent kills the
-- child with SIGKILL mid-stream, reopens the directory, and finds every acknowledged
-- entry with its term, and the hard state of the last acknowledged write or a later one.
-- (kill -9 keeps what reached the page cache; power loss is a different test.)
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local store = S.store

local CHILD = [[
package.cpath = %q
local store = require("luaraft.store")
local st = assert(store.open(%q, { map_bytes = 64 * 1024 * 1024 }))
local i = 0
while true do
    i = i + 1
    local term = i // 7 + 1
    assert(st:submit({
        hard_state = { term = term, vote = 1 },
        entries = { first = i, { term = term, type = 1, data = string.rep("d", i %% 300) } },
    }))
    local statuses = st:run()
    assert(statuses[1] == 0)
    io.stdout:write(i, "\n")
    io.stdout:flush()
end
]]

describe("store crash safety", function()
    after_each(function()
        S.cleanup()
    end)

    it("keeps every acknowledged write across kill -9", function()
        local dir = S.tmpdir()
        local script = dir .. "/child.lua"
        local f = assert(io.open(script, "w"))
        f:write(string.format(CHILD, package.cpath, dir .. "/data"))
        f:close()

        local child = assert(io.popen("sh -c 'echo $$; exec lua5.4 " .. script .. "'", "r"))
        local pid = assert(tonumber(child:read("l")))
        local acked = 0
        -- Bounded: the child acknowledges far more than this unless it fails, and a failed
        -- child closes the pipe, which ends the loop.
        while acked < 300 do
            local line = child:read("l")
            if line == nil then
                break
            end
            acked = assert(tonumber(line))
        end
        assert.is_true(os.execute("kill -9 " .. pid))
        -- Whatever it printed before dying was acknowledged too.
        for line in child:lines() do
            acked = assert(tonumber(line))
        end
        -- popen's own shell may stand between us and the child: it reports 128 + 9.
        local ok, how, code = child:close()
        assert.is_nil(ok)
        assert.is_true((how == "signal" and code == 9) or (how == "exit" and code == 137),
            "the child ended on its own (" .. tostring(how) .. " " .. tostring(code) .. ")")
        assert.is_true(acked >= 300)

        local st = assert(store.open(dir .. "/data", { map_bytes = 64 * 1024 * 1024 }))
        local s = assert(st:load())
        assert.is_true(s.last_index >= acked)
        assert.is_true(s.term >= acked // 7 + 1)
        local list = assert(st:read(1, acked))
        for i = 1, acked do
            assert.are.equal(i, list[i].index)
            assert.are.equal(i // 7 + 1, list[i].term)
            assert.are.equal(string.rep("d", i % 300), list[i].data)
        end
        st:close()
    end)
end)
