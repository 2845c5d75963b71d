-- Runtime membership as real processes (issue 9, item 1; src/node/members.c and
-- members_change.c): RAFT.ADD, RAFT.REMOVE, `luaraft node --join`, nodes of
-- examples/kv.lua on loopback under a steady write load (load_writer.lua) through every
-- node, and every acknowledged write read back afterwards from the nodes that remain.
--
-- What it catches: a joiner that does not learn the cluster (its id, its peers) or is not
-- connected to once added; a learner never promoted, or promoted while far behind (its
-- RAFT.MEMBERS must say "learner" first; the leader logs the match it promoted at); a
-- configuration that nodes do not follow (RAFT.MEMBERS of every remaining node); an
-- acknowledged write lost while the cluster grows, shrinks or is replaced; a configuration
-- or its addresses lost across a restart or carried wrong in a snapshot (the replacement
-- runs with snapshots every 200 entries, so the new nodes catch up from snapshots and one of
-- them restarts from its own); a removed leader that does not step down or leaves its
-- clients hanging; a removed node that disturbs the others (their terms must not move
-- while it runs); the error texts.
--
-- What it cannot catch: a missing fsync (kill -9 keeps the page cache); the races of two
-- changes proposed at once (the simulator's random runs cover the core's rules).
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

-- RAFT.MEMBERS of node i: {[id] = "voter" or "learner"}, and its cluster id.
local function members(c, i)
    local m = {}
    local text = c:rc(i, "RAFT.MEMBERS")
    for id, role in text:gmatch("member:(%d+) (%a+)") do
        m[tonumber(id)] = role
    end
    return m, text:match("cluster_id:(%x+)")
end

local function settled(c, ids)
    return T.settled_leader(c, 20, ids)
end

local function ids_of(m)
    local ids = {}
    for id in pairs(m) do
        ids[#ids + 1] = id
    end
    table.sort(ids)
    return ids
end

local function same_set(m, ids)
    local n = 0
    for _ in pairs(m) do
        n = n + 1
    end
    for _, id in ipairs(ids) do
        if m[id] ~= "voter" then
            return false
        end
    end
    return n == #ids
end

-- A change sent to node via, retried while it answers -TRYAGAIN (a change under way, a
-- new leader's first entry not committed, no leader yet); its last reply.
local function change(c, via, ...)
    local args = { ... }
    local reply
    S.wait(30, table.concat(args, " ") .. " answered", function()
        reply = rc(c, via, table.unpack(args))
        return not reply:find("^TRYAGAIN")
    end)
    return reply
end

local function add(c, via, i)
    return change(c, via, "RAFT.ADD", tostring(i), "127.0.0.1:" .. c:peer_port(i),
        "127.0.0.1:" .. c:client_port(i))
end

-- Waits until every node in ids shows the configuration ids, all voters.
local function wait_config(c, ids, seconds)
    S.wait(seconds or 30, "configuration " .. table.concat(ids, ",") .. " on every member", function()
        for _, i in ipairs(ids) do
            if not same_set(members(c, i), ids) then
                return false
            end
        end
        return true
    end)
end

-- Starts node i with --join through node via, adds it (through node via), and waits until
-- it is a voter; returns the seconds from RAFT.ADD's +OK until then.
local function grow(c, i, via)
    c:start_join(i, via)
    S.wait(20, "node " .. i .. " serving", function()
        return rc(c, i, "PING") == "PONG"
    end)
    assert.equal("OK", add(c, via, i))
    local added = S.now()
    local seen_learner = false
    S.wait(60, "node " .. i .. " promoted to voter", function()
        local role = members(c, via)[i]
        seen_learner = seen_learner or role == "learner"
        return role == "voter"
    end)
    local took = S.now() - added
    local leader = settled(c, ids_of(members(c, via)))
    assert.is_truthy(S.read_file(c:log(leader)):find("learner " .. i .. " caught up")
        or seen_learner, "node " .. i .. " was never a learner")
    return took
end

local function shrink(c, i, via)
    assert.equal("OK", change(c, via, "RAFT.REMOVE", tostring(i)))
    S.wait(20, "node " .. i .. " gone from node " .. via .. "'s configuration", function()
        return members(c, via)[i] == nil
    end)
end

-- Asserts that the terms of the nodes ids do not move for `seconds`, polling throughout.
local function terms_hold(c, ids, seconds)
    local terms = {}
    for _, i in ipairs(ids) do
        terms[i] = T.counters(c, i).term
    end
    local until_t = S.now() + seconds
    while S.now() < until_t do
        for _, i in ipairs(ids) do
            assert.equal(terms[i], T.counters(c, i).term, "node " .. i .. "'s term")
        end
    end
end

-- Starts cluster c, and has a follower remove itself (RAFT.REMOVE sent to it, which
-- forwards it); returns its id and the ids that remain, once they all show the change.
local function remove_a_follower(c)
    c:start_all()
    local gone = c:others(T.settled_leader(c))[1]
    local rest = c:others(gone)
    assert.equal("OK", change(c, gone, "RAFT.REMOVE", tostring(gone)))
    wait_config(c, rest)
    return gone, rest
end

describe("runtime membership", function()
    local c, w

    after_each(function()
        T.teardown(c, w)
        c, w = nil, nil
    end)

    it("S7: grows a cluster 3 -> 5 and shrinks it 5 -> 3 under load, losing no acknowledged write",
        function()
            c = S.cluster({ n = 3, spare = 2 })
            c:start_all()
            T.settled_leader(c)
            local _, cid = members(c, 1)
            w = T.writer(c, { 1, 2, 3, 4, 5 })
            w.wait_acks(200)
            for _, i in ipairs({ 4, 5 }) do
                local took = grow(c, i, 1)
                print(string.format("node %d joined 3 -> %d: promoted %.2f s after RAFT.ADD", i,
                    i, took))
            end
            wait_config(c, { 1, 2, 3, 4, 5 })
            assert.equal(cid, select(2, members(c, 5)), "the joiner's cluster id")
            local grown = S.now()
            w.wait_acks(200, grown)
            for _, i in ipairs({ 1, 2 }) do
                shrink(c, i, 3)
            end
            wait_config(c, { 3, 4, 5 })
            w.wait_acks(200, S.now())
            w.stop()
            T.assert_none_lost(c, { 3, 4, 5 }, w.acks())
            assert.equal(cid, select(2, members(c, 3)), "the cluster id after the changes")
        end)

    it("replaces every original node one by one, catching up from snapshots, and restarts one",
        function()
            c = S.cluster({ n = 3, spare = 3, flags = { "--snapshot-entries", "200",
                "--snapshot-trailing", "20" } })
            c:start_all()
            T.settled_leader(c)
            w = T.writer(c, { 1, 2, 3, 4, 5, 6 })
            w.wait_acks(300)
            local ids = { 1, 2, 3 }
            for old = 1, 3 do
                local new = old + 3
                local via = ids[#ids]
                local took = grow(c, new, via)
                print(string.format("node %d replaces node %d: promoted %.2f s after RAFT.ADD",
                    new, old, took))
                shrink(c, old, new)
                table.remove(ids, 1)
                ids[#ids + 1] = new
                wait_config(c, ids)
                w.wait_acks(100, S.now())
            end
            local installed = 0
            for i = 4, 6 do
                installed = installed + (S.read_file(c:log(i)):find("installing snapshot") and 1 or 0)
            end
            assert.is_true(installed > 0, "no new node caught up from a snapshot")
            -- A new node restarts from its own data directory (its snapshot names the
            -- configuration and every address) and takes its part again.
            c:kill(5)
            c:start(5)
            S.wait(20, "node 5 following a leader again", function()
                local l = tonumber(c:info(5).leader_id or "")
                return l ~= nil and l ~= 0
            end)
            wait_config(c, { 4, 5, 6 })
            w.wait_acks(100, S.now())
            w.stop()
            T.assert_none_lost(c, { 4, 5, 6 }, w.acks())
        end)

    it("removes the leader: it commits the change, steps down, and its clients get -TRYAGAIN",
        function()
            c = S.cluster({ n = 3, spare = 1 })
            c:start_all()
            T.settled_leader(c)
            grow(c, 4, 1)
            local leader = T.settled_leader(c)
            local rest = c:others(leader)
            w = T.writer(c, rest)
            w.wait_acks(200)
            local asked = S.now()
            assert.equal("OK", change(c, rest[1], "RAFT.REMOVE", tostring(leader)))
            local new = settled(c, rest)
            assert.are_not.equal(leader, new)
            wait_config(c, rest)
            assert.is_truthy(rc(c, leader, "SET", "k", "v"):find("^TRYAGAIN"))
            w.wait_acks(200, asked)
            w.stop()
            T.assert_none_lost(c, rest, w.acks())
            print(string.format("RAFT.REMOVE of the leader: longest pause between acknowledged "
                .. "writes %.1f ms", 1000 * T.longest_gap(w.acks(), asked, 1)))
        end)

    it("S16: a removed node that keeps running does not disturb the cluster", function()
        c = S.cluster({ n = 4 })
        local gone, rest = remove_a_follower(c)
        S.wait(20, "node " .. gone .. " dropping its peers", function()
            return S.read_file(c:log(gone)):find("no longer a member") ~= nil
        end)
        -- Two seconds are ten election timeouts or more: the removed node, alone, times
        -- out again and again meanwhile; none of it may reach the others.
        terms_hold(c, rest, 2)
        assert.is_true(c:alive(gone))
        assert.equal("OK", rc(c, rest[1], "SET", "after", "v"))
        assert.is_truthy(rc(c, gone, "SET", "k", "v"):find("^TRYAGAIN"))
    end)

    it("S18: a removed node restarted from its data disturbs no one; re-added, it catches up",
        function()
            -- The node's own timeouts (elections after 500-1000 ms), so that no election
            -- of a loaded machine passes for one the removed node caused.
            c = S.cluster({ n = 4, default_timeouts = true })
            local gone, rest = remove_a_follower(c)
            c:kill(gone)
            w = T.writer(c, rest)
            w.wait_acks(100)
            -- It restarts with the data directory of a member that was removed (killed
            -- before its copy of the removal was durable, it may believe it is still a
            -- member, and time out again and again): it must not campaign its way back
            -- in, nor exit with an assertion.
            c:start(gone)
            S.wait(20, "node " .. gone .. " answering", function()
                return rc(c, gone, "PING") == "PONG"
            end)
            terms_hold(c, rest, 4)
            assert.is_true(c:alive(gone), "the removed node died on restart")
            -- Added back, with its old data, it catches up and votes again.
            assert.equal("OK", add(c, rest[1], gone))
            local all = c:others(nil)
            wait_config(c, all, 60)
            w.wait_acks(100, S.now())
            w.stop()
            T.assert_none_lost(c, all, w.acks())
        end)

    -- A node that joins replays the log from the start, one APPEND of at most 1 MiB at
    -- a time: for a while the latest configuration in its log is an old one, which may
    -- leave out the leader it follows (here node 4, added after {1, 2} was logged). It
    -- dropped that leader as a peer and refused its connections ("handshake from an
    -- unknown node id"), stuck for good (seen by the nemesis runner's membership
    -- schedule). The leader it follows stays a peer (members.c, members_update_peers).
    it("a joining node keeps the leader it follows while an old configuration leaves it out",
        function()
            c = S.cluster({ n = 3, spare = 2, flags = { "--snapshot-entries", "0" } })
            local gone, rest = remove_a_follower(c)
            c:kill(gone)
            local leader = settled(c, rest)
            local R = dofile(S.root .. "/spec/node/resp_conn.lua")
            local conn = R.connect(c:client_port(leader))
            local value = ("x"):rep(1024)
            for batch = 1, 30 do -- 3 MiB of log after the configuration {1, 2}
                local cmds = {}
                for k = 1, 100 do
                    cmds[k] = { "SET", "k" .. batch .. "_" .. k, value }
                end
                conn:send(table.unpack(cmds))
                for _ = 1, 100 do
                    assert.equal("OK", conn:read().v)
                end
            end
            conn:close()
            grow(c, 4, leader)
            assert.equal("OK", rc(c, leader, "RAFT.TRANSFER", "4"))
            S.wait(20, "node 4 leading", function()
                return c:info(4).role == "leader"
            end)
            grow(c, 5, 4)
            assert.equal(value, rc(c, 5, "GET", "k30_100"))
            assert.is_nil(S.read_file(c:log(5)):find("peer 4 at [^\n]* removed"), "node 5 dropped its leader")
        end)

    it("answers bad changes with errors, on the leader and on a follower", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = T.settled_leader(c)
        local follower = c:others(leader)[1]
        for _, i in ipairs({ leader, follower }) do
            assert.equal("ERR RAFT.REMOVE failed: node 9 is not a member of the cluster",
                rc(c, i, "RAFT.REMOVE", "9"))
            assert.equal("ERR RAFT.ADD failed: the node id must be a positive integer",
                rc(c, i, "RAFT.ADD", "x", "127.0.0.1:1"))
            assert.is_truthy(rc(c, i, "RAFT.ADD", "7", "nowhere"):find("^ERR RAFT.ADD failed: "))
            assert.equal("ERR RAFT.ADD failed: node 2 is already a member at 127.0.0.1:"
                .. c:peer_port(2), rc(c, i, "RAFT.ADD", "2", "127.0.0.1:1"))
            assert.equal("OK", rc(c, i, "RAFT.ADD", "2", "127.0.0.1:" .. c:peer_port(2)))
            assert.equal("ERR wrong number of arguments for 'raft.remove' command",
                rc(c, i, "RAFT.REMOVE"))
            assert.equal("ERR wrong number of arguments for 'raft.add' command",
                rc(c, i, "RAFT.ADD", "4"))
        end
        -- A learner that never comes (nothing listens at its address) is never promoted;
        -- it can be removed again.
        assert.equal("OK", rc(c, follower, "RAFT.ADD", "8", "127.0.0.1:1"))
        assert.equal("learner", members(c, leader)[8])
        assert.equal("OK", change(c, follower, "RAFT.REMOVE", "8"))
        assert.is_nil(members(c, leader)[8])
    end)
end)
