-- Power loss on real processes: a 3-node cluster of examples/kv.lua, every node's data
-- directory on one faultfs mount (src/testing/faultfs.c), under a steady write load
-- (spec/node/load_writer.lua). Each cycle: the cluster settles and acknowledges writes;
-- then at one instant the mount takes back everything not made durable (faultfs
-- "powerloss"; from then on it fails every operation), every node is killed with -9, the
-- mount is dropped (and with it the kernel's page cache) and mounted again, and the nodes
-- restart and converge. Checked after every cycle and at the end:
--   - every write acknowledged is served back (by the leader after each cycle: the new ones
--     and a sample of the older ones; every one by every node at the end);
--   - no node's term went backwards: each start loads at least the term the node was
--     shown to hold durably before the loss (spec/power/support.lua, P.durable_term) and
--     the terms of its own durable votes;
--   - no node voted twice in a term: its durable votes (the "vote: granted" and "election
--     won" log lines, logged only once durable) and the votes its starts loaded agree.
-- With LUARAFT_TEST_NO_FSYNC=1 (the store opens LMDB with MDB_NOSYNC) the same cycles must
-- find lost writes or a term gone back: the second test asserts that they do.
--
-- What it can catch: a commit acknowledged before its fsync; an fsync missing for data or
-- for a new name (data.mdb, the data directory, a snapshot file renamed into place); a
-- vote or term sent before it is durable, when the loss lands in that window. What it
-- cannot: losses in windows the cycles never hit (the loss instant is wherever the load
-- is, not chosen); torn or reordered writes within one fsync (faultfs keeps every write it
-- was given until the loss, whole); a disk that lies about fsync; bugs of the page cache of
-- a real file system (faultfs's model is POSIX's promise, not ext4's behaviour).
--
-- Cycles: LUARAFT_POWER_CYCLES (default 100; LUARAFT_LONG=1: ten times as many).
local P = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local S, T = P.S, P.T

local CYCLES = tonumber(os.getenv("LUARAFT_POWER_CYCLES") or "")
    or (os.getenv("LUARAFT_LONG") == "1" and 1000 or 100)
-- S13 of the scenario catalogue: the same cycles on a single-node cluster, where the
-- node's own fsync is all that stands between an acknowledgment and a loss.
local SINGLE_CYCLES = math.max(CYCLES // 10, 1)
local SETTLE_S = 30
local ACKS_PER_CYCLE = 20
-- Older acknowledged writes read back after each cycle, besides the new ones.
local SAMPLE = 200
-- Each fsync takes 2 ms, with the file system going on meanwhile (faultfs fsync-us): a
-- disk's pace, so that a loss often lands while writes are on their way to being durable.
local FSYNC_US = 2000

-- The run: cluster, mount and writer, torn down whatever happens.
local run = {}

local function setup(env, n)
    local c = S.cluster({ n = n or 3 })
    c.data_dirs = {}
    local node_env = {}
    for i = 1, c.n do
        c.data_dirs[i] = c.dir .. "/mnt/n" .. i
        node_env[i] = env
    end
    c.env = env and node_env or nil
    run.c = c
    local m = P.mount(c.dir .. "/disk", c.dir .. "/mnt", c.dir .. "/faultfs.log", FSYNC_US)
    run.mounts = { m }
    T.start_all_watched(c)
    run.w = T.writer(c, c:others(nil))
    return c, m, run.w
end

local function teardown()
    P.teardown(run)
end

-- One cycle's settling: one leader followed by every node, and fresh acknowledgments.
local function settle(c, w)
    local since = S.now()
    local leader = T.settled_leader(c, SETTLE_S)
    w.wait_acks(ACKS_PER_CYCLE, since, SETTLE_S)
    return leader
end

-- Runs cycles until `cycles` are done or (stop_early) an anomaly is seen. Returns the
-- anomalies, the cycles run, the seconds per cycle, and the pages faultfs took back.
local function cycles_run(c, m, w, cycles, stop_early)
    local bounds = {}
    for i = 1, c.n do
        bounds[i] = {}
    end
    local anomalies, lost_pages, checked = {}, 0, 0
    local started = S.now()
    local done = 0
    for cycle = 1, cycles do
        local leader = settle(c, w)
        local term = P.durable_term(c, leader)
        for i = 1, c.n do
            bounds[i][cycle] = term or 0
        end
        -- A few more writes, so that the instant falls anywhere in the stream.
        w.wait_acks(math.random(1, 10), S.now(), SETTLE_S)
        P.command(m, "powerloss")
        lost_pages = lost_pages + (P.stats(m).lost_pages or 0)
        P.kill_all(c)
        P.unmount(m)
        P.remount(m)
        T.start_all_watched(c)
        settle(c, w)
        -- The writes acknowledged since the last check, and a sample of the older ones
        -- (the end reads every one back on every node).
        local acks, sample = w.acks(), {}
        for j = checked + 1, #acks do
            sample[#sample + 1] = acks[j]
        end
        for _ = 1, math.min(checked, SAMPLE) do
            sample[#sample + 1] = acks[math.random(1, checked)]
        end
        local missing = T.missing(c, T.settled_leader(c, SETTLE_S), sample)
        if #missing > 0 then
            anomalies[#anomalies + 1] = string.format("cycle %d: %d of %d acknowledged writes lost: %s",
                cycle, #missing, #sample, table.concat(missing, " ", 1, math.min(#missing, 5)))
        end
        checked = #acks
        for _, a in ipairs(P.log_anomalies(c, bounds)) do
            anomalies[#anomalies + 1] = "cycle " .. cycle .. ": " .. a
        end
        done = cycle
        if stop_early and #anomalies > 0 then
            break
        end
    end
    return anomalies, done, (S.now() - started) / math.max(done, 1), lost_pages
end

describe("power loss of a whole 3-node cluster", function()
    after_each(teardown)

    it("has a log checker that sees a term gone back, a lost vote and a double vote", function()
        local dir = S.sh("mktemp -d /tmp/luaraft-spec.XXXXXX"):gsub("%s+$", "")
        local c = { n = 1, log = function(_, i)
            return dir .. "/n" .. i .. ".log"
        end }
        local function check(lines, bounds)
            local f = assert(io.open(c:log(1), "w"))
            f:write(table.concat(lines, "\n") .. "\n")
            f:close()
            return P.log_anomalies(c, { bounds or {} })
        end
        local start = "luaraft[1] term %d: loaded state: vote %d, snapshot at index 0"
        local fine = { start:format(0, 0), "luaraft[1] term 3: vote: granted to node 2 in term 3",
            start:format(3, 2), "luaraft[1] term 4: election won: this node is the leader",
            start:format(4, 1), start:format(5, 0) }
        assert.same({}, check(fine, { 0, 3, 4 }))
        local back = { start:format(0, 0), "luaraft[1] term 3: vote: granted to node 2 in term 3",
            start:format(2, 0) }
        assert.equal(1, #check(back))
        assert.equal(1, #check({ start:format(0, 0), start:format(2, 0) }, { 5 }))
        local lost_vote = { start:format(0, 0),
            "luaraft[1] term 3: vote: granted to node 2 in term 3", start:format(3, 0) }
        assert.equal(1, #check(lost_vote))
        local twice = { start:format(0, 0), "luaraft[1] term 3: vote: granted to node 2 in term 3",
            start:format(3, 2), "luaraft[1] term 3: vote: granted to node 3 in term 3" }
        assert.equal(1, #check(twice))
        os.execute("rm -rf " .. S.quote(dir))
    end)

    it("loses no acknowledged write, no term and no vote, cycle after cycle", function()
        local c, m, w = setup(nil)
        local anomalies, done, per_cycle, lost_pages = cycles_run(c, m, w, CYCLES, true)
        w.stop()
        local acks = w.acks()
        print(string.format("power loss: %d cycles, %.2f s per cycle, %d acknowledged writes, "
            .. "%d unsynced pages taken back", done, per_cycle, #acks, lost_pages))
        assert.same({}, anomalies)
        assert.equal(CYCLES, done)
        T.assert_none_lost(c, { 1, 2, 3 }, acks)
        -- The loss has teeth: faultfs did take back unsynced pages (LMDB's dirty pages of
        -- transactions under way, the lock file), not only nothing.
        assert.is_true(lost_pages > 0, "no power loss took back anything")
    end)

    it("catches a missing fsync (LUARAFT_TEST_NO_FSYNC=1)", function()
        local c, m, w = setup("LUARAFT_TEST_NO_FSYNC=1")
        local anomalies, done = cycles_run(c, m, w, 5, true)
        print(string.format("power loss without fsync: caught after %d cycle(s): %s", done,
            anomalies[1] or "nothing"))
        assert.is_true(#anomalies > 0, "5 power losses without fsync went unnoticed")
        local warned = S.read_file(c:log(1)):find("LUARAFT_TEST_NO_FSYNC=1: TEST ONLY", 1, true)
        assert.truthy(warned, "the node does not say that its commits are not durable")
    end)

    it("S13: a single-node cluster loses no acknowledged write, cycle after cycle", function()
        local c, m, w = setup(nil, 1)
        local anomalies, done, per_cycle = cycles_run(c, m, w, SINGLE_CYCLES, true)
        w.stop()
        local acks = w.acks()
        print(string.format("power loss of a single node: %d cycles, %.2f s per cycle, "
            .. "%d acknowledged writes", done, per_cycle, #acks))
        assert.same({}, anomalies)
        assert.equal(SINGLE_CYCLES, done)
        T.assert_none_lost(c, { 1 }, acks)
    end)

    it("S13: catches a single node that acknowledges before its fsync (NO_FSYNC)", function()
        local c, m, w = setup("LUARAFT_TEST_NO_FSYNC=1", 1)
        local anomalies, done = cycles_run(c, m, w, 5, true)
        print(string.format("single node without fsync: caught after %d cycle(s): %s", done,
            anomalies[1] or "nothing"))
        assert.is_true(#anomalies > 0, "5 power losses of a node without fsync went unnoticed")
    end)
end)
