-- Disk faults on real processes: a 3-node cluster of examples/kv.lua under a steady write
-- load, each node's data directory on a faultfs mount of its own (src/testing/faultfs.c),
-- so that one node's disk can fill up or fail an fsync while the others' do not.
--   - a full disk (ENOSPC) on one node, the leader: its log says the disk is full, it
--     stops (fail-stop: role failed, no votes, no serving) instead of going on with
--     unknown state, the others go on taking writes; once space is freed and it is
--     restarted it catches up and serves every acknowledged write;
--   - a full disk on every node: writes fail with an error that says the disk is full,
--     nothing acknowledged is lost, and after freeing space and restarting the cluster
--     takes writes again;
--   - an I/O error on one fsync of a follower: it stops, restarts, and catches up.
-- A full LMDB map (the other way a node's store fills up) is spec/node/map_full_spec.lua.
local P = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local S, T = P.S, P.T

local WAIT_S = 30

local run = {}

local function setup()
    local c = S.cluster({ n = 3 })
    c.data_dirs, run.mounts = {}, {}
    run.c = c
    for i = 1, 3 do
        run.mounts[i] = P.mount(c.dir .. "/disk" .. i, c.dir .. "/mnt" .. i,
            c.dir .. "/faultfs" .. i .. ".log")
        c.data_dirs[i] = c.dir .. "/mnt" .. i .. "/n" .. i
    end
    T.start_all_watched(c)
    run.w = T.writer(c, { 1, 2, 3 })
    local leader = T.settled_leader(c, WAIT_S)
    run.w.wait_acks(20, 0, WAIT_S)
    return c, run.mounts, run.w, leader
end

local function teardown()
    P.teardown(run)
end

local function failed(c, i)
    return c:info(i).store_failed == "yes"
end

-- The first line of node i's log that has every one of the given pieces, or nil.
local function log_line(c, i, ...)
    local pieces = { ... }
    for line in S.read_file(c:log(i)):gmatch("[^\n]+") do
        local all = true
        for _, p in ipairs(pieces) do
            all = all and line:find(p, 1, true) ~= nil
        end
        if all then
            return line
        end
    end
    return nil
end

-- Node i (killed if it runs) started again; waits until it serves every acknowledged
-- write (a GET on a follower is a linearizable read of its own applied state).
local function restart_and_catch_up(c, w, i)
    if c.pids[i] then
        c:kill(i)
    end
    T.start_watched(c, i)
    local acks = w.acks()
    S.wait(WAIT_S, "node " .. i .. " serving every acknowledged write", function()
        local ok, missing = pcall(T.missing, c, i, acks) -- refused until it listens
        return ok and #missing == 0
    end)
    assert.equal("no", c:info(i).store_failed)
end

describe("disk faults under a 3-node cluster", function()
    after_each(teardown)

    it("S19: a full disk on the leader: it says so and stops, the others serve, it catches up",
        function()
        local c, m, w, leader = setup()
        P.command(m[leader], "full +0") -- no byte more than its files hold now
        S.wait(WAIT_S, "the leader's store failing", function()
            return failed(c, leader)
        end)
        local t_failed = S.now()
        assert.truthy(P.stats(m[leader]).enospc > 0, "no write met the full disk")
        local line = log_line(c, leader, "the disk is full", "this node stops")
        assert.truthy(line, "the leader's log does not name the full disk")
        assert.truthy(line:find("free space", 1, true), line)
        assert.equal("failed", c:info(leader).role)
        local reply = c:rc(leader, "SET", "x", "1")
        assert.truthy(reply:match("^ERR this node's store failed %(the disk is full"), reply)
        -- The others elect a leader between them and go on acknowledging writes.
        T.settled_leader(c, WAIT_S, c:others(leader))
        w.wait_acks(20, t_failed, WAIT_S)
        assert.is_true(c:alive(leader), "the node with the full disk died")

        P.command(m[leader], "clear") -- space freed
        restart_and_catch_up(c, w, leader)
        w.stop()
        T.assert_none_lost(c, { 1, 2, 3 }, w.acks())
    end)

    it("S19: a full disk on every node: writes fail saying so, nothing acknowledged is lost",
        function()
        local c, m, w = setup()
        for i = 1, 3 do
            P.command(m[i], "full +0")
        end
        -- Every node refuses writes: a node whose store failed says the disk is full, one
        -- whose store did not fail has no leader to forward to.
        local replies = S.wait(WAIT_S, "every node refusing writes", function()
            local out = {}
            for i = 1, 3 do
                local r = c:rc(i, "SET", "refused", "1")
                if r == "OK" then
                    return nil
                end
                out[i] = r
            end
            return out
        end)
        local full = 0
        for i = 1, 3 do
            if replies[i]:match("^ERR this node's store failed %(the disk is full") then
                full = full + 1
                assert.truthy(log_line(c, i, "the disk is full", "this node stops"),
                    "node " .. i .. " does not log the full disk")
            end
        end
        assert.is_true(full >= 1, "no reply names the full disk: " .. table.concat(replies, " | "))

        local before = w.acks()
        for i = 1, 3 do
            P.command(m[i], "clear")
        end
        P.kill_all(c)
        local t_restart = S.now()
        T.start_all_watched(c)
        T.settled_leader(c, WAIT_S)
        w.wait_acks(20, t_restart, WAIT_S)
        w.stop()
        assert.is_true(#w.acks() > #before)
        T.assert_none_lost(c, { 1, 2, 3 }, w.acks())
    end)

    it("an I/O error on a follower's fsync: it stops, restarts and catches up", function()
        local c, m, w, leader = setup()
        local victim = c:others(leader)[1]
        P.command(m[victim], "fail-fsync 1")
        S.wait(WAIT_S, "the follower's store failing", function()
            return failed(c, victim)
        end)
        assert.equal(1, P.stats(m[victim]).fsyncs_failed)
        local line = log_line(c, victim, "this node stops")
        assert.truthy(line and line:find("I/O error", 1, true), line or "no fail-stop line")
        assert.truthy(line:find("check the disk", 1, true), line)
        local t_failed = S.now()
        w.wait_acks(20, t_failed, WAIT_S) -- the leader and the other follower go on
        restart_and_catch_up(c, w, victim)
        w.stop()
        T.assert_none_lost(c, { 1, 2, 3 }, w.acks())
    end)
end)
