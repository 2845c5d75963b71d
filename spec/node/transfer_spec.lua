-- RAFT.TRANSFER as real processes (issue 9, item 2; src/node/transfer.c): three nodes of
-- examples/kv.lua on loopback, a steady write load (load_writer.lua) through every node,
-- and every acknowledged write read back from every node afterwards.
--
-- What it catches: a reply before the target leads (RAFT.INFO of the target is read right
-- after the +OK), a transfer that is an ordinary election (the target's elections_transfer
-- does not move, or some node's elections_timeout does, or the term moves by more than
-- one), a follower that does not forward it, a target chosen that is not another voter,
-- acknowledged writes lost across the change, a wrong id taken for a transfer, writes
-- accepted while a transfer is under way (one SET during it must get -TRYAGAIN), a failed
-- transfer that does not say why, or does not give the writes back, and a node that knows
-- no leader answering anything but -TRYAGAIN.
--
-- What it cannot catch: "not a voter" (every member is a voter until runtime membership
-- exists); a target that gets the leader's TIMEOUT_NOW late, after the transfer was
-- answered as failed (it then campaigns, as etcd's would); the most caught-up choice among
-- followers that are equally caught up (only that some other node leads); a missing fsync.
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

-- Checks that node `new` leads in the term after `term`, elected by a transfer: no node
-- began an election by timeout (before: T.counters of every node).
local function assert_transferred(c, before, term, new)
    for i = 1, c.n do
        local after = T.counters(c, i)
        assert.equal(term + 1, after.term, "node " .. i .. "'s term")
        assert.equal(before[i].timeout, after.timeout, "node " .. i .. " began an election by timeout")
        assert.equal(before[i].transfer + (i == new and 1 or 0), after.transfer,
            "node " .. i .. "'s elections begun by a transfer")
    end
    assert.equal("leader", T.counters(c, new).role)
end

-- redis-cli's reply without the blank line it prints after an error.
local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

local function all_counters(c)
    local t = {}
    for i = 1, c.n do
        t[i] = T.counters(c, i)
    end
    return t
end

describe("RAFT.TRANSFER", function()
    local c, w

    after_each(function()
        T.teardown(c, w)
        c, w = nil, nil
    end)

    -- A cluster under the write load: its leader, and every node's counters.
    local function loaded_cluster()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = T.settled_leader(c)
        w = T.writer(c, { 1, 2, 3 })
        w.wait_acks(300)
        return leader, all_counters(c)
    end

    it("hands leadership to the node named, under load, with no acknowledged write lost",
        function()
            local old, before = loaded_cluster()
            local target = c:others(old)[2]
            local asked = S.now()
            assert.equal("OK", rc(c, old, "RAFT.TRANSFER", tostring(target)))
            assert.equal("leader", c:info(target).role, "the target right after the +OK")
            assert_transferred(c, before, before[old].term, target)
            w.wait_acks(300, asked)
            w.stop()
            local acks = w.acks()
            T.assert_none_lost(c, { 1, 2, 3 }, acks)
            print(string.format("RAFT.TRANSFER %d: longest pause between acknowledged writes "
                .. "%.1f ms", target, 1000 * T.longest_gap(acks, asked, 1)))
        end)

    it("without an id, sent to a follower, hands leadership to another voter, under load",
        function()
            local old, before = loaded_cluster()
            local follower = c:others(old)[1]
            local asked = S.now()
            assert.equal("OK", rc(c, follower, "RAFT.TRANSFER"))
            local new = T.settled_leader(c)
            assert.are_not.equal(old, new)
            assert_transferred(c, before, before[old].term, new)
            assert.equal("1", c:info(old).transfers_done)
            w.wait_acks(300, asked)
            w.stop()
            T.assert_none_lost(c, { 1, 2, 3 }, w.acks())
            -- Asked of the leader for itself, it changes nothing.
            local term = T.counters(c, new).term
            assert.equal("OK", rc(c, follower, "RAFT.TRANSFER", tostring(new)))
            assert.equal(term, T.counters(c, new).term)
            assert.equal("leader", T.counters(c, new).role)
        end)

    it("answers a bad id with an error, on the leader and on a follower", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = T.settled_leader(c)
        local follower = c:others(leader)[1]
        local term = T.counters(c, leader).term
        for _, i in ipairs({ leader, follower }) do
            assert.equal("ERR RAFT.TRANSFER failed: node 9 is not a member of the cluster",
                rc(c, i, "RAFT.TRANSFER", "9"))
            for _, bad in ipairs({ "0", "-1", "two", "1.5", "" }) do
                assert.equal("ERR RAFT.TRANSFER failed: the node id must be a positive integer",
                    rc(c, i, "RAFT.TRANSFER", bad))
            end
            assert.equal("ERR wrong number of arguments for 'raft.transfer' command",
                rc(c, i, "RAFT.TRANSFER", "1", "2"))
        end
        assert.equal(term, T.counters(c, leader).term)
        assert.equal("leader", T.counters(c, leader).role)
        assert.equal("0", c:info(leader).transfers_failed)
    end)

    it("fails, saying why, when the target cannot catch up, and takes writes again", function()
        -- Election timeouts of 1 s: the transfer waits that long for the target, which is
        -- stopped (SIGSTOP) and behind by the writes made since.
        c = S.cluster({ n = 3, flags = { "--election-ticks", "100" } })
        c:start_all()
        local leader = T.settled_leader(c, 30)
        local target = c:others(leader)[1]
        T.signal(c, target, "STOP")
        for k = 1, 20 do
            assert.equal("OK", rc(c, leader, "SET", "behind" .. k, "v"))
        end
        local out = c.dir .. "/transfer.out"
        os.execute("timeout 30 redis-cli -p " .. c:client_port(leader) .. " RAFT.TRANSFER " .. target
            .. " >" .. S.quote(out) .. " 2>&1 &")
        -- Under way, it refuses writes, so that the target could catch up.
        S.wait(10, "a write refused while the transfer is under way", function()
            local r = rc(c, leader, "SET", "during", "v")
            assert.is_truthy(r == "OK" or r:find("^TRYAGAIN"), r)
            return r == "TRYAGAIN a leadership transfer is in progress; retry"
        end)
        local reply = S.wait(10, "the transfer's reply", function()
            local text = S.read_file(out)
            return text:find("\n$") and text
        end)
        assert.is_truthy(reply:find("^ERR RAFT.TRANSFER to node " .. target .. " failed: it did "
            .. "not catch up with the log within an election timeout"), reply)
        assert.equal("leader", T.counters(c, leader).role)
        assert.equal("1", c:info(leader).transfers_failed)
        assert.equal("OK", rc(c, leader, "SET", "after", "v"))
    end)

    it("answers -TRYAGAIN on a node that knows no leader", function()
        c = S.cluster({ n = 3 })
        c:start(1)
        S.wait(10, "node 1 serving", function()
            return rc(c, 1, "PING") == "PONG"
        end)
        assert.equal("TRYAGAIN no leader; retry", rc(c, 1, "RAFT.TRANSFER"))
        assert.equal("TRYAGAIN no leader; retry", rc(c, 1, "RAFT.TRANSFER", "2"))
    end)
end)
