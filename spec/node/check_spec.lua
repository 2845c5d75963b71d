-- RAFT.CHECK as real processes: every replica of a 3-node cluster of examples/kv.lua hashes
-- its state at the CHECK entry's index, and the leader reports each node's hash with a
-- verdict. A replica made to drift (the test-only LUARAFT_TEST_DIVERGE_KEY: it does not
-- apply writes to one key) must be named, and the mismatch logged loudly on every node.
--
-- What it catches: hashes taken at different indexes (equal states would then differ
-- under writes); a hash that does not cover the state (the drifting key would go
-- unnoticed); a mismatch reported as consistent, or not logged; a check from a follower
-- taken as done; a member that never answers making the check hang.
--
-- What it cannot catch: two different states with equal snapshots (M.snapshot is the
-- script's: a script that leaves part of its state out of it hides that part here too).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local function lines(s)
    local t = {}
    for l in s:gmatch("[^\n]+") do
        t[#t + 1] = l
    end
    return t
end

-- Starts the cluster with env (node index -> its environment).
local function started(env)
    local c = S.cluster { n = 3, env = env }
    c:start_all()
    return c, c:wait_leader(20)
end

describe("RAFT.CHECK", function()
    it("finds every replica's state equal at one index, under writes", function()
        local c, leader = started({})
        for i = 1, 50 do
            assert.equals("OK", c:rc(leader, "SET", "k" .. i, "v" .. i))
        end
        local out = lines(c:rc(leader, "RAFT.CHECK"))
        assert.equals(4, #out, table.concat(out, "\n"))
        local index = tonumber(out[1]:match("^consistent at index (%d+)$"))
        assert(index, out[1])
        local hashes = {}
        for i = 2, 4 do
            local id, h = out[i]:match("^node (%d+): (%x+)$")
            assert(id and #h == 64, out[i])
            hashes[#hashes + 1] = h
        end
        assert.equals(hashes[1], hashes[2])
        assert.equals(hashes[1], hashes[3])
        -- Every node logged its own hash at that index.
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " logs the check", function()
                return S.read_file(c:log(i)):find("consistency check at index " .. index ..
                    ": state hash " .. hashes[1], 1, true)
            end)
        end
        -- The state moves, the hash with it.
        assert.equals("OK", c:rc(leader, "SET", "k1", "changed"))
        local again = lines(c:rc(leader, "RAFT.CHECK"))
        assert.truthy(again[1]:find("^consistent at index"), again[1])
        assert.is_not.equal(hashes[1], again[2]:match(": (%x+)$"))
        -- On a follower: not a check, and it says where the leader is.
        local follower = leader % 3 + 1
        assert.truthy(c:rc(follower, "RAFT.CHECK"):find("runs on the leader, at 127.0.0.1:", 1, true))
        c:stop()
    end)

    it("names the replica whose state drifted, and every node logs it", function()
        -- Node 3 drifts, whether it leads or not: its hash is the one apart.
        local c, leader = started({ [3] = "LUARAFT_TEST_DIVERGE_KEY=drift" })
        assert.equals("OK", c:rc(leader, "SET", "fine", "1"))
        assert.equals("OK", c:rc(leader, "SET", "drift", "1"))
        local out = lines(c:rc(leader, "RAFT.CHECK"))
        local index = tonumber(out[1]:match("^MISMATCH at index (%d+)$"))
        assert(index, table.concat(out, "\n"))
        local by = {}
        for i = 2, 4 do
            local id, h = out[i]:match("^node (%d+): (%x+)$")
            by[tonumber(id)] = h
        end
        assert.equals(by[1], by[2])
        assert.is_not.equal(by[1], by[3])
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " logs the mismatch", function()
                return S.read_file(c:log(i)):find("CONSISTENCY CHECK FAILED at index " .. index,
                    1, true)
            end)
        end
        c:stop()
    end)
end)
