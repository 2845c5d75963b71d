-- Limits on writes, from the outside: a command too large to ever reach a follower is
-- refused before it is proposed, and a write that is not applied in time is answered
-- with -TIMEOUT (its outcome is unknown), not with a lost leadership that did not happen.
--
-- What it catches: an oversized command that is proposed (every later write would wait
-- behind it), a pending write that waits forever, a deadline reported as a leadership
-- loss, an election caused by a slow apply. What it cannot: the exact deadline (it is on
-- the node's clock; only the error is checked).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local SLOW = S.root .. "/spec/node/slow_apply.lua"

-- A file of n bytes of "x", for redis-cli -x.
local function payload(n)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    local chunk = string.rep("x", 1 << 20)
    for _ = 1, n // #chunk do
        f:write(chunk)
    end
    f:write(string.rep("x", n % #chunk))
    f:close()
    return path
end

describe("writes", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("above the command limit are refused before they are proposed", function()
        -- kv.lua without its TICKs, so that the log grows by the spec's writes alone.
        local src = S.read_file(S.kv)
        local quiet = os.tmpname() .. ".lua"
        local f = assert(io.open(quiet, "w"))
        local n
        src, n = src:gsub("\nM%.tick_ms = %d+\n", "\n")
        assert(n == 1, "kv.lua has no M.tick_ms line")
        f:write(src)
        f:close()
        c = S.cluster({ n = 3, script = quiet })
        c:start_all()
        local leader = c:wait_leader(10)
        local follower = leader % 3 + 1
        local path = payload(33 << 20)
        for _, i in ipairs({ leader, follower }) do
            local r = S.sh("timeout 60 redis-cli -p " .. c:client_port(i) .. " -x SET big <"
                .. S.quote(path) .. " 2>&1")
            assert.truthy(r:match("ERR the command takes %d+ bytes, more than the limit"),
                "node " .. i .. ": " .. r)
        end
        os.remove(path)
        -- Nothing was proposed: the log did not grow, and the next write goes through.
        local before = tonumber(c:info(leader).last_log_index)
        assert.equal("OK", c:rc(leader, "SET", "small", "1"))
        assert.equal(before + 1, tonumber(c:info(leader).last_log_index))
        assert.equal("0", c:rc(leader, "EXISTS", "big"))
        os.remove(quiet)
    end)

    it("not applied in time get -TIMEOUT, through a follower too, with no election", function()
        c = S.cluster({ n = 3, script = SLOW, flags = { "--write-timeout-ms", "20" } })
        c:start_all()
        local leader = c:wait_leader(10)
        local follower = leader % 3 + 1
        local term = c:info(leader).term
        -- About 0.1-0.3 s of Lua (and well inside the instruction budget): several times
        -- the 20 ms deadline, which the node checks every tick (10 ms).
        local rounds = "20000000"
        local r = c:rc(leader, "SPIN", rounds)
        assert.truthy(r:match("^TIMEOUT "), "on the leader: " .. r)
        r = c:rc(follower, "SPIN", rounds)
        assert.truthy(r:match("^TIMEOUT "), "through a follower: " .. r)
        assert.falsy(r:find("leadership", 1, true), r)
        -- Both were applied after all (the outcome was unknown, not a failure), and the
        -- slow applies cost no election: Lua runs on its own thread.
        S.wait(10, "both SPINs applied", function()
            return c:rc(leader, "COUNT") == "2"
        end)
        for i = 1, 3 do
            assert.equal(term, c:info(i).term, "node " .. i .. "'s term moved")
        end
    end)
end)
