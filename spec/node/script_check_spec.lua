-- Every member runs the same script (issue 10; src/node/script_check.c): a node whose data
-- directory was made by another script than the cluster's is refused by the others,
-- which drop its votes, entries, snapshots and forwarded writes, and it drops theirs; each
-- side logs it. Here node 3 of a 3-node cluster starts with examples/counter.lua while
-- nodes 1 and 2 run examples/kv.lua.
--
-- What it catches: a misconfigured node that takes the cluster's entries and applies them
-- with its own script (before the check, node 3 took the log: its last_log_index followed
-- the leader's), one that votes (nodes 1 and 2 alone must elect, and node 3 must never
-- lead), one that takes even a heartbeat of the foreign leader, and a check that refuses
-- a node started right (nodes 1 and 2 must elect and serve). It does not show a leader
-- dropping a foreign node's forwarded write: node 3 never learns a leader to send one to. What it cannot catch: a member whose data directory was made with the cluster's
-- first script but which is later restarted with another --script (runtime_identity.c
-- refuses that start), and two clusters that share nothing but a peer address.
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

describe("a member of another script", function()
    local c

    after_each(function()
        T.teardown(c)
        c = nil
    end)

    it("is refused by the others and cannot move the cluster", function()
        c = S.cluster({ n = 3 })
        c:start(1)
        c:start(2)
        local kv = c.script
        c.script = S.root .. "/examples/counter.lua"
        c:start(3)
        c.script = kv
        -- Both sides say so, each naming the other's script.
        S.wait(20, "node 1 refusing node 3", function()
            return S.read_file(c:log(1)):find("REFUSED node 3: its data directory was made by "
                .. "script counter.lua", 1, true)
        end)
        S.wait(20, "node 3 refusing node 1", function()
            return S.read_file(c:log(3)):find("REFUSED node 1: its data directory was made by "
                .. "script kv.lua", 1, true)
        end)
        local leader = T.settled_leader(c, 20, { 1, 2 })
        for i = 1, 20 do
            assert.equal("OK", rc(c, leader, "SET", "k" .. i, "v" .. i))
        end
        -- A write forwarded by node 3 is not taken: node 3 knows no leader it accepts.
        local forwarded = rc(c, 3, "INCR", "x")
        assert.is_falsy(forwarded:match("^%d+$"), forwarded)
        -- Node 3 has none of the cluster's entries and leads nothing; the others' terms
        -- were not moved by its elections.
        local i1, i3 = c:info(leader), c:info(3)
        assert.is_true(tonumber(i1.last_log_index) >= 21)
        assert.equal("0", i3.last_log_index)
        assert.is_not.equal("leader", i3.role)
        -- Not even a heartbeat got through, the first ones included (they may arrive
        -- before the peer's frame: they wait for it).
        assert.is_nil(S.read_file(c:log(3)):find("leader changed", 1, true))
        local term = tonumber(i1.term)
        assert.equal(term, tonumber(c:info(leader).term))
        assert.equal("v20", rc(c, 3 == leader and 1 or leader, "GET", "k20"))
    end)
end)
