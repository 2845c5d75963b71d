-- A full LMDB map, from the outside (issue 3): "A full map never crashes the node: writes
-- get a clear error, reads keep working, and the log says what to do." Three luaraft nodes
-- on loopback with examples/kv.lua and the smallest map --map-size accepts (1M) take 4 KiB
-- values until a write is refused; then every node must still run and answer reads, every
-- write must get an error reply at once, and the log must name the fix, which must work.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local ELECTION_S = 10
-- 1 MiB holds a few hundred 4 KiB entries at most: the loop ends long before this bound.
local MAX_WRITES = 1000
local VALUE = string.rep("v", 4096)

describe("a 3-node cluster whose LMDB map fills up", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("refuses writes with a clear error, keeps serving reads, and says what to do", function()
        c = S.cluster({ n = 3, flags = { "--map-size", "1M" } })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)

        -- Fill the map through the leader until a write is not acknowledged. redis-cli
        -- runs under `timeout 5`: a write that hangs comes back as "", a dropped connection
        -- as redis-cli's own "Error: ..." text; neither is the error reply the contract asks.
        local acked, refusal = 0, nil
        for k = 1, MAX_WRITES do
            local r = c:rc(leader, "SET", "k" .. k, VALUE)
            if r ~= "OK" then
                refusal = r
                break
            end
            acked = k
        end
        assert.is_not_nil(refusal, MAX_WRITES .. " writes of 4 KiB fit in a 1M map")
        assert.is_true(acked >= 10, "only " .. acked .. " writes fit before the refusal")
        assert.truthy(refusal:match("^ERR "), "not an error reply: '" .. refusal .. "'")
        assert.truthy(refusal:find("store", 1, true), refusal)

        for i = 1, 3 do
            assert.is_true(c:alive(i), "node " .. i .. " died")
        end

        -- Every node still answers reads of what was acknowledged, the leader included
        -- (whose log holds an entry it could not make durable), and refuses new writes
        -- with an error reply rather than a hang.
        -- The refused write's outcome is unknown (a majority of other stores might still
        -- take it), so the key count is acked or acked + 1, the same on every node.
        local keys = c:rc(leader, "DBSIZE")
        assert.truthy(keys == tostring(acked) or keys == tostring(acked + 1), keys)
        for i = 1, 3 do
            assert.equal("PONG", c:rc(i, "PING"))
            assert.equal(VALUE, c:rc(i, "GET", "k1"), "node " .. i .. " GET k1")
            assert.equal(VALUE, c:rc(i, "GET", "k" .. acked), "node " .. i .. " GET k" .. acked)
            assert.equal(keys, c:rc(i, "DBSIZE"), "node " .. i .. " DBSIZE")
            local r = c:rc(i, "SET", "later", "1")
            assert.truthy(r:match("^ERR "), "node " .. i .. " SET after the refusal: '" .. r .. "'")
        end
        for i = 1, 3 do
            assert.is_true(c:alive(i), "node " .. i .. " died after the refusal")
        end

        -- The leader refused because its own store is full: its log says so and names the
        -- fix. Any other node whose store filled says the same.
        local function log_of(i)
            local f = assert(io.open(c:log(i)))
            local s = f:read("a")
            f:close()
            return s
        end
        local advice = S.wait(5, "the leader logging the full map", function()
            for line in log_of(leader):gmatch("[^\n]+") do
                if line:find("full", 1, true) and line:find("--map-size", 1, true) then
                    return line
                end
            end
        end)
        assert.truthy(advice:find("restart", 1, true) or advice:find("snapshot", 1, true), advice)
        for i = 1, 3 do
            for line in log_of(i):gmatch("[^\n]+") do
                if line:find("map is full", 1, true) then
                    assert.truthy(line:find("--map-size", 1, true), "node " .. i .. ": " .. line)
                end
            end
        end

        -- Doing what the log says works: restarted with a larger map, the cluster takes
        -- writes again and has lost nothing acknowledged.
        for i = 1, 3 do
            c:kill(i)
        end
        c.flags = { "--map-size", "4M" }
        c:start_all()
        leader = c:wait_leader(ELECTION_S)
        assert.equal("OK", c:rc(leader, "SET", "later", "1"))
        keys = c:rc(leader, "DBSIZE")
        assert.truthy(keys == tostring(acked + 1) or keys == tostring(acked + 2), keys)
        for i = 1, 3 do
            assert.equal("1", c:rc(i, "GET", "later"), "node " .. i .. " GET later")
            assert.equal(VALUE, c:rc(i, "GET", "k1"), "node " .. i .. " GET k1")
            assert.equal(VALUE, c:rc(i, "GET", "k" .. acked), "node " .. i .. " GET k" .. acked)
            assert.equal(keys, c:rc(i, "DBSIZE"), "node " .. i .. " DBSIZE")
        end
    end)
end)
