-- A snapshot that keeps failing, from the outside: the node backs off (1 s, doubling)
-- instead of forking a full-size child on every apply batch, says so in its log, and goes
-- on serving; once snapshots work again, the next one is taken.
--
-- What it catches: a retry per apply batch (hundreds of failed children in a second), a
-- node that stops serving after a failed snapshot, a back-off that never ends. What it
-- cannot: the exact back-off times (they are on the node's clock).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local SLOW = S.root .. "/spec/node/slow_apply.lua"

local function count_lines(path, text)
    local f = assert(io.open(path))
    local k = 0
    for line in f:lines() do
        if line:find(text, 1, true) then
            k = k + 1
        end
    end
    f:close()
    return k
end

describe("a snapshot that keeps failing", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("is retried with a back-off, and the node goes on serving", function()
        c = S.cluster({ n = 1, script = SLOW, flags = { "--snapshot-entries", "1" } })
        c:start_all()
        c:wait_leader(10)
        assert.equal("OK", c:rc(1, "FAILSNAP", "1"))
        -- 200 writes, each one past the snapshot threshold.
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        for _ = 1, 200 do
            f:write("SPIN 1\n")
        end
        f:close()
        S.sh("timeout 30 redis-cli -p " .. c:client_port(1) .. " <" .. S.quote(script))
        os.remove(script)
        assert.equal("200", c:rc(1, "COUNT"))
        local failed = S.wait(5, "a failed snapshot in the log", function()
            local k = count_lines(c:log(1), "snapshot failed; the next automatic one in")
            return k > 0 and k
        end)
        -- The writes took well under the first back-off's doubling: a handful of tries.
        assert.is_true(failed <= 3, failed .. " failed snapshots for 200 writes")
        assert.equal("200", c:rc(1, "COUNT"))
        -- Working again: the next try (after the back-off) succeeds.
        assert.equal("OK", c:rc(1, "FAILSNAP", "0"))
        S.wait(10, "a snapshot taken after the back-off", function()
            return count_lines(c:log(1), "snapshot taken at index") > 0
        end)
    end)
end)
