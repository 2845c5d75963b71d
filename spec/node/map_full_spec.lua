-- A full LMDB map, from the outside: a full map never crashes the node; a write gets a
-- clear error; the node whose store failed stops (fail-stop: no votes, no leading, no
-- serving until restarted) and the log says what to do. Three luaraft nodes on loopback
-- with examples/kv.lua and the smallest map --map-size accepts (1M) take 4 KiB values
-- until a write is refused; then every node must still run, every write must get an error
-- reply at once, and the log must name the fix, which must work.
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

    it("S19: refuses writes with a clear error, stops the failed nodes, and says what to do", function()
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

        -- A node whose store failed is fail-stop: it cannot know what its disk holds, so
        -- it no longer votes, leads or serves until restarted, and says so to every
        -- command but PING and RAFT.INFO. A node whose store did not fail serves what was
        -- acknowledged. The leader's store failed (its write was refused).
        local function info(i)
            local t = {}
            for k, v in c:rc(i, "RAFT.INFO"):gmatch("([%w_]+):([^\r\n]*)") do
                t[k] = v
            end
            return t
        end
        assert.equal("yes", info(leader).store_failed)
        assert.equal("failed", info(leader).role)
        local failed_terms = {}
        for i = 1, 3 do
            assert.equal("PONG", c:rc(i, "PING"))
            local inf = info(i)
            local get = c:rc(i, "GET", "k1")
            local set = c:rc(i, "SET", "later", "1")
            assert.truthy(set:match("^ERR ") or set:match("^TRYAGAIN "),
                "node " .. i .. " SET after the refusal: '" .. set .. "'")
            if inf.store_failed == "yes" then
                failed_terms[i] = inf.term
                assert.truthy(get:match("^ERR .*store failed"), "node " .. i .. " GET: " .. get)
            else
                assert.equal(VALUE, get, "node " .. i .. " GET k1")
            end
        end
        -- Observing an absence takes time: over 20 election timeouts (--election-ticks 10
        -- of 10 ms each), no failed node's term moves (it starts no election).
        os.execute("sleep 2")
        for i, term in pairs(failed_terms) do
            assert.equal(term, info(i).term, "node " .. i .. " campaigned after its store failed")
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
        c.flags[#c.flags] = "4M" -- the value of --map-size, the last flag
        c:start_all()
        leader = c:wait_leader(ELECTION_S)
        -- A leader needs two nodes; the third may still be starting.
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " serving", function()
                return c:rc(i, "PING") == "PONG"
            end)
        end
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
