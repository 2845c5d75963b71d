-- Crash points on real processes (src/util/crash_point.h lists them and what each
-- models): a 3-node cluster of examples/kv.lua under a steady write load
-- (spec/node/load_writer.lua), small snapshots (--snapshot-entries 50) so that snapshots
-- are taken and sent all the time, and a state of about 1.5 MiB so that a snapshot sent to
-- a follower takes two chunks. Each injection arms one node (LUARAFT_CRASH_POINT=NAME:N,
-- N drawn at random, started with it), makes it the leader or a follower with
-- RAFT.TRANSFER, provokes what the point needs (an election for the hard-state point; for
-- the InstallSnapshot points the node starts only once the leader compacted its log past
-- it, so it must be sent a snapshot), and waits for the process to exit. It must die of
-- SIGKILL having logged that crash point; the next injection restarts it (armed again, or
-- unarmed while another node takes its turn). The cluster runs across all injections.
-- Checked during the run and at the end:
--   - every write acknowledged is served back (through the leader every 25 injections; at
--     the end every one by every node);
--   - no node's term went backwards: each start loads at least the term it was shown to
--     hold durably (spec/power/support.lua, P.durable_term, measured before every third
--     injection) and the terms of its own durable votes;
--   - no node voted twice in a term (P.log_anomalies: "vote: granted", "election won" and
--     the votes its starts loaded);
--   - no node but the armed one ever exits.
--
-- What it can catch: ordering and atomicity bugs at each point: a torn snapshot file taken
-- for a whole one, a renamed file the store does not know of, a log compacted before its
-- snapshot was recorded, a half-received or received-but-not-installed snapshot, a vote
-- or an acknowledgment sent before its state was written, a reply before the apply, a
-- membership change lost half-way. What it cannot: a missing fsync. A kill -9 keeps the
-- page cache, so every write(2) made before the point survives; that is the power-loss
-- spec's to catch (power_loss_spec.lua). The second test below combines the two for the
-- points where it matters most: the node's own faultfs mount loses what was not synced at
-- the instant of the crash.
--
-- Injections: LUARAFT_CRASH_INJECTIONS (default 300; LUARAFT_LONG=1: ten times as many;
-- the sanitizer build, which ctest runs with ASAN_OPTIONS set, a third as many).
local P = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local S, T = P.S, P.T
local R = T.R

local LONG = os.getenv("LUARAFT_LONG") == "1"
local SANITIZED = os.getenv("ASAN_OPTIONS") ~= nil
local INJECTIONS = tonumber(os.getenv("LUARAFT_CRASH_INJECTIONS") or "")
    or math.floor((LONG and 3000 or 300) / (SANITIZED and 3 or 1))
local MEMBER_INJECTIONS = tonumber(os.getenv("LUARAFT_CRASH_MEMBER_INJECTIONS") or "")
    or math.floor((LONG and 200 or 20) / (SANITIZED and 3 or 1))
-- 100 entries kept behind each snapshot: fewer, and a follower a moment behind on a slow
-- (sanitizer) build is sent one snapshot after another and never takes its own.
local SNAPSHOT_ENTRIES, TRAILING = 50, 100
local SETTLE_S, DEATH_S = 30, 60
-- The armed node changes every ROTATE injections (the one that died restarts unarmed).
local ROTATE = 4
local CHECK_EVERY = 25
-- The durable term is measured (P.durable_term) before every DURABLE_EVERY-th injection.
local DURABLE_EVERY = 3

-- Each point: the largest hit count drawn (1..hits, plus lead when the victim is to lead),
-- and what the victim must be.
-- role: "leader" or "follower" (else alternating); election: an election is provoked;
-- lag: the victim starts behind the leader's compacted log, so it is sent a snapshot.
local POINTS = {
    { name = "store.before_commit", hits = 40, lead = 300 },
    { name = "store.after_commit", hits = 40, lead = 300 },
    { name = "apply.before_reply", hits = 40, lead = 150, role = "leader" },
    { name = "node.after_hard_state", hits = 2, election = true },
    { name = "snapshot.mid_write", hits = 6 },
    { name = "snapshot.after_rename", hits = 2 },
    { name = "snapshot.before_compact", hits = 2 },
    { name = "recv.mid_chunk", hits = 1, role = "follower", lag = true },
    { name = "recv.before_install", hits = 1, role = "follower", lag = true },
    { name = "recv.after_rename", hits = 1, role = "follower", lag = true },
}

-- The points combined with a power loss of the crashed node's own disk: those where what
-- was written but not yet synced matters (a rename before its directory's fsync, a
-- half-written file, a commit just made durable, a new term or vote).
local POWER_POINTS = {}
for _, p in ipairs(POINTS) do
    if p.name ~= "apply.before_reply" and p.name ~= "snapshot.before_compact" then
        POWER_POINTS[#POWER_POINTS + 1] = p
    end
end
local POWER_INJECTIONS = tonumber(os.getenv("LUARAFT_CRASH_POWER_INJECTIONS") or "")
    or math.floor((LONG and 400 or 40) / (SANITIZED and 4 or 1))

local run = {}

-- kill -9 of node i, and its watcher's exit status awaited: a status written after the
-- next start removed the old file would pass for the new process's.
local function kill(c, i)
    os.execute("kill -9 " .. c.pids[i] .. " 2>/dev/null")
    S.wait(10, "node " .. i .. "'s exit status", function()
        return T.exit_status(c, i)
    end)
    c.pids[i] = nil
end

local function teardown()
    if run.w then
        run.w.stop()
    end
    for i = 1, run.c and run.c.n or 0 do
        if run.c.pids[i] then
            kill(run.c, i)
        end
    end
    P.teardown(run)
end

-- How many times node i's log says it died at crash point name.
local function fired(c, i, name)
    local n = 0
    local pat = "crash point " .. name:gsub("%.", "%%.") .. ": hit %d+, killing the node"
    for _ in S.read_file(c:log(i)):gmatch(pat) do
        n = n + 1
    end
    return n
end

-- The last lines of node i's log, for a failure message.
local function log_tail(c, i)
    local lines = {}
    for line in S.read_file(c:log(i)):gmatch("[^\n]+") do
        lines[#lines + 1] = line
    end
    return table.concat(lines, "\n", math.max(1, #lines - 15))
end

-- No node but the armed one (victim) may have exited.
local function assert_others_alive(c, victim)
    for j = 1, c.n do
        if j ~= victim and c.pids[j] and T.exit_status(c, j) then
            error("node " .. j .. " exited with status " .. T.exit_status(c, j) .. ":\n"
                .. log_tail(c, j))
        end
    end
end

-- Polls pred() like S.wait, but gives up (returning "dead") as soon as node victim exits.
local function wait_or_dead(c, victim, seconds, what, pred)
    return S.wait(seconds, what, function()
        if T.exit_status(c, victim) then
            return "dead"
        end
        return pred()
    end)
end

-- Settled leader of the running nodes, or "dead" if the victim dies meanwhile.
local function leader_or_dead(c, victim)
    return wait_or_dead(c, victim, SETTLE_S, "a leader followed by every node", function()
        local ok, l = pcall(T.settled_leader, c, 0.2)
        return ok and l or nil
    end)
end

-- The durable-term bounds (P.log_anomalies): st.seen[i], the highest term node i was
-- shown to hold durably while it ran; before its next start (its k-th "loaded state" line
-- so far), st.bounds[i][k] becomes that.
local function note_durable(c, st, leader)
    local term = P.durable_term(c, leader)
    if term then
        for i = 1, c.n do
            if c.pids[i] then
                st.seen[i] = math.max(st.seen[i], term)
            end
        end
    end
end

local function starts_of(c, i)
    local n = 0
    for _ in S.read_file(c:log(i)):gmatch("loaded state: vote") do
        n = n + 1
    end
    return n
end

-- Starts node i (dead) with env (nil: unarmed), recording its durable-term bound first.
local function start(c, st, i, env)
    local k = starts_of(c, i)
    st.bounds[i][k] = math.max(st.bounds[i][k] or 0, st.seen[i])
    c.env[i] = env
    T.start_watched(c, i)
    c.env[i] = nil
end

-- Waits until the leader's snapshot covers `beyond` plus the trailing entries, so that a
-- node whose log ends at or before `beyond` must be sent a snapshot.
local function wait_compacted(c, leader, beyond)
    local ok, err = pcall(S.wait, 2 * SETTLE_S, "compacted", function()
        local info = c:info(leader)
        if info.role ~= "leader" then
            leader = c:leader() or leader -- an election meanwhile
            return false
        end
        local si = tonumber(info.snapshot_index or "")
        return si and si > beyond + TRAILING
    end)
    if not ok then
        local info = c:info(leader)
        error(string.format("the leader's log was not compacted past %d within %d s (%s): "
            .. "node %d: role %s, last_log_index %s, snapshot_index %s; its log:\n%s", beyond,
            2 * SETTLE_S, err, leader, tostring(info.role), tostring(info.last_log_index),
            tostring(info.snapshot_index), log_tail(c, leader)))
    end
end

-- Asks the leader to hand leadership to target (answered once done, or failed: either
-- way the spec then looks at who leads).
local function transfer(c, leader, target)
    c:rc(leader, "RAFT.TRANSFER", tostring(target))
end

-- Puts the armed victim into its role, provokes the point, and returns the role it held
-- when last seen alive ("leader" or "follower").
local function provoke(c, p, victim, want)
    if want == "follower" and not p.election then
        return "follower" -- a node just restarted follows (an election would be another's)
    end
    local leader = leader_or_dead(c, victim)
    if leader == "dead" then
        return "follower" -- it died catching up, before any leader was seen by all
    end
    if p.election then
        -- An election writes a new term (and a vote) on every node: to the victim to be
        -- leader, else to the third node, for which the victim votes.
        local target = victim
        if want == "follower" or leader == victim then
            for _, j in ipairs(c:others(victim)) do
                if j ~= leader then
                    target = j
                end
            end
        end
        transfer(c, leader, target)
        return target == victim and "leader" or "follower"
    end
    if want == "leader" and leader ~= victim then
        transfer(c, leader, victim)
    elseif want == "follower" and leader == victim then
        transfer(c, leader, c:others(victim)[math.random(1, 2)])
    end
    local l = leader_or_dead(c, victim)
    return l == victim and "leader" or "follower"
end

-- The node to arm for injection k, dead on return: the one that died last, or every
-- ROTATE injections the next one (the one that died restarts unarmed, the next is killed).
local function next_victim(c, st, k)
    local victim = st.dead
    if victim == nil or k % ROTATE == 0 then
        if victim then
            start(c, st, victim, nil)
            T.settled_leader(c, SETTLE_S)
        end
        victim = victim and victim % c.n + 1 or 1
        kill(c, victim)
        st.plain_kills = st.plain_kills + 1
    end
    return victim
end

local VERBOSE = os.getenv("LUARAFT_SPEC_VERBOSE")
local function stage(what)
    if VERBOSE then
        io.stderr:write(string.format("  %.2f %s\n", S.now(), what))
    end
end

-- Injection k (of round `round`): arm a node with point p, wait for it to die there.
local function inject(c, st, k, p, round)
    stage("begin")
    -- Alternating by round, not by injection: with an even number of points, the
    -- injection's parity would give each point always the same role.
    local want = p.role or (round % 2 == 0 and "leader" or "follower")
    local leader = T.settled_leader(c, SETTLE_S)
    stage("settled")
    if k % DURABLE_EVERY == 0 then
        note_durable(c, st, leader)
    end
    stage("durable")
    local victim = next_victim(c, st, k)
    if p.lag then
        local l = T.settled_leader(c, SETTLE_S)
        wait_compacted(c, l, tonumber(c:info(l).last_log_index) + 10)
    end
    -- A node restarted to lead first catches up as a follower: a larger count lets the
    -- hits at the points it passes on every write land after it took over.
    local hit = math.random(1, p.hits) + (want == "leader" and p.lead or 0)
    stage("armed-ready")
    local before = fired(c, victim, p.name)
    start(c, st, victim, "LUARAFT_CRASH_POINT=" .. p.name .. ":" .. hit)
    local role = provoke(c, p, victim, want)
    stage("provoked")
    local again = S.now() + 1
    local ok, status = pcall(S.wait, DEATH_S, "death", function()
        assert_others_alive(c, victim)
        local s = T.exit_status(c, victim)
        if s == nil and (p.election or want == "leader") and S.now() > again then
            -- Another election for a later hit; or the lead again, if a transfer failed
            -- or an election took it away.
            role = provoke(c, p, victim, want)
            again = S.now() + (p.election and 1 or 2)
        end
        return s
    end)
    if not ok then
        error(string.format("waiting up to %d s for node %d to die at %s:%d (last seen as %s): "
            .. "%s; its log:\n%s", DEATH_S, victim, p.name, hit, role, status, log_tail(c, victim)))
    end
    c.pids[victim] = nil
    if st.mounts then
        -- The victim's machine loses power at the instant of the crash: its disk takes
        -- back what was not made durable (faultfs), before anything else happens there.
        local m = st.mounts[victim]
        P.command(m, "powerloss")
        local lost = P.stats(m)
        st.lost_pages = st.lost_pages + (lost.lost_pages or 0)
        st.lost_names = st.lost_names + (lost.lost_files or 0) + (lost.lost_entries or 0)
        P.unmount(m)
        P.remount(m)
    end
    assert(status == 137 and fired(c, victim, p.name) == before + 1,
        "node " .. victim .. " armed with " .. p.name .. ":" .. hit .. " exited with " .. status
            .. " without that crash point:\n" .. log_tail(c, victim))
    st.dead = victim
    if VERBOSE then
        io.stderr:write(string.format("%.2f injection %d: %s:%d on node %d (%s)\n", S.now(), k,
            p.name, hit, victim, role))
    end
    local t = st.tally[p.name] or { leader = 0, follower = 0 }
    t[role] = t[role] + 1
    st.tally[p.name] = t
end

-- A state of about 1.5 MiB (24 values of 64 KiB), so that a snapshot takes two chunks
-- (peer/snapshot_send.c sends 1 MiB ones).
local function preload(c)
    local conn = R.connect(c:client_port(c:wait_leader(SETTLE_S)))
    local value = string.rep("x", 64 * 1024)
    for j = 1, 24 do
        local r = conn:call("SET", "big" .. j, value)
        assert(r.t == "status" and r.v == "OK", "preload: " .. R.show(r))
    end
    conn:close()
end

-- with_mounts: each node's data directory on a faultfs mount of its own.
local function setup(flags, with_mounts)
    local c = S.cluster({ n = 3, flags = flags })
    c.env = {}
    run.c = c
    local mounts
    if with_mounts then
        c.data_dirs, mounts = {}, {}
        run.mounts = mounts
        for i = 1, 3 do
            mounts[i] = P.mount(c.dir .. "/disk" .. i, c.dir .. "/mnt" .. i,
                c.dir .. "/faultfs" .. i .. ".log")
            c.data_dirs[i] = c.dir .. "/mnt" .. i .. "/n" .. i
        end
    end
    T.start_all_watched(c)
    preload(c)
    run.w = T.writer(c, { 1, 2, 3 })
    local st = { seen = { 0, 0, 0 }, bounds = { {}, {}, {} }, tally = {}, plain_kills = 0,
        mounts = mounts, lost_pages = 0, lost_names = 0 }
    return c, run.w, st
end

local FLAGS = { "--snapshot-entries", tostring(SNAPSHOT_ENTRIES), "--snapshot-trailing",
    tostring(TRAILING) }

-- Every acknowledged write read back from every node, and the logs' terms and votes.
local function final_checks(c, w, st)
    if st.dead then
        start(c, st, st.dead, nil)
    end
    T.settled_leader(c, SETTLE_S)
    w.stop()
    local acks = w.acks()
    T.assert_none_lost(c, { 1, 2, 3 }, acks)
    assert.same({}, P.log_anomalies(c, st.bounds))
    return acks
end

-- Runs n injections, cycling through points, reading back the writes acknowledged since
-- the last check every CHECK_EVERY injections.
local function injections(c, w, st, points, n)
    local checked = 0
    for k = 1, n do
        inject(c, st, k, points[(k - 1) % #points + 1], (k - 1) // #points)
        if k % CHECK_EVERY == 0 then
            local acks = w.acks()
            local fresh = {}
            for j = checked + 1, #acks do
                fresh[#fresh + 1] = acks[j]
            end
            local missing = T.missing(c, T.settled_leader(c, SETTLE_S), fresh)
            assert(#missing == 0, "after injection " .. k .. ": " .. #missing
                .. " acknowledged writes lost: " .. table.concat(missing, " ", 1,
                    math.min(#missing, 5)))
            checked = #acks
        end
    end
end

-- "name leader+follower, ..." of the deaths at each point.
local function tally_text(st, points)
    local parts = {}
    for _, p in ipairs(points) do
        local t = st.tally[p.name] or { leader = 0, follower = 0 }
        parts[#parts + 1] = string.format("%s %d+%d", p.name, t.leader, t.follower)
    end
    return table.concat(parts, ", ")
end

-- Node i's configuration: "index committed ids" (ids sorted, a learner marked "l").
local function config_of(c, i)
    local text = c:rc(i, "RAFT.MEMBERS")
    local ids = {}
    for id, role in text:gmatch("member:(%d+) (%a+)") do
        ids[#ids + 1] = id .. (role == "learner" and "l" or "")
    end
    table.sort(ids)
    local index, committed = text:match("config_index:(%d+)%s+config_committed:(%d)")
    return index and (index .. " " .. committed .. " " .. table.concat(ids, ",")), ids
end

-- Every running node shows one committed configuration; returns whether learner 8 is in it.
local function converged_config(c)
    local has8
    S.wait(SETTLE_S, "one committed configuration on every running node", function()
        local first, ids
        for i = 1, c.n do
            if c.pids[i] then
                local conf, its = config_of(c, i)
                if conf == nil or not conf:find("^%d+ 1 ") or (first and conf ~= first) then
                    return false
                end
                first, ids = conf, its
            end
        end
        has8 = false
        for _, id in ipairs(ids) do
            has8 = has8 or id == "8l"
        end
        return true
    end)
    return has8
end

-- One membership injection: the victim, armed with members.after_propose:N, is made the
-- leader, and asked (directly, so that its death closes the connection) to add or remove
-- learner 8 (an address nothing listens at, so it never counts toward a majority) until it
-- dies. A change answered +OK must hold afterwards; one cut short may go either way, but
-- every node must end in one committed configuration.
local function inject_members(c, st, k)
    local leader = T.settled_leader(c, SETTLE_S)
    note_durable(c, st, leader)
    local victim = next_victim(c, st, k)
    local hit = math.random(1, 2)
    start(c, st, victim, "LUARAFT_CRASH_POINT=members.after_propose:" .. hit)
    local status = S.wait(DEATH_S, "node " .. victim .. " dying at members.after_propose", function()
        assert_others_alive(c, victim)
        local s = T.exit_status(c, victim)
        if s then
            return s
        end
        local l = leader_or_dead(c, victim)
        if l ~= "dead" and l ~= victim then
            transfer(c, l, victim)
        elseif l == victim then
            local args = st.has8 and { "RAFT.REMOVE", "8" } or { "RAFT.ADD", "8", "127.0.0.1:1" }
            local reply = c:rc(victim, table.unpack(args))
            if reply == "OK" then
                st.has8 = not st.has8
                st.acked_changes = st.acked_changes + 1
            elseif not reply:find("^TRYAGAIN") then
                st.has8 = nil -- cut short: either way
            end
        end
        return T.exit_status(c, victim)
    end)
    c.pids[victim] = nil
    assert(status == 137 and fired(c, victim, "members.after_propose") >= 1,
        "node " .. victim .. " exited with " .. status .. ":\n" .. log_tail(c, victim))
    st.dead = victim
    local has8 = converged_config(c)
    if st.has8 ~= nil then
        assert(has8 == st.has8, "after injection " .. k .. ", an acknowledged "
            .. (st.has8 and "RAFT.ADD" or "RAFT.REMOVE") .. " of learner 8 was lost")
    end
    st.has8 = has8
end

describe("crash points under load on a 3-node cluster", function()
    after_each(teardown)

    it("loses no acknowledged write, no term and no vote at any crash point", function()
        local c, w, st = setup(FLAGS)
        local started = S.now()
        injections(c, w, st, POINTS, INJECTIONS)
        local acks = final_checks(c, w, st)
        print(string.format("crash points: %d injections in %.0f s (%d plain kills to arm), "
            .. "%d acknowledged writes, none lost; per point (as leader + as follower): %s",
            INJECTIONS, S.now() - started, st.plain_kills, #acks, tally_text(st, POINTS)))
    end)

    it("loses nothing when the crashed node's disk also loses its unsynced data", function()
        local c, w, st = setup(FLAGS, true)
        local started = S.now()
        injections(c, w, st, POWER_POINTS, POWER_INJECTIONS)
        local acks = final_checks(c, w, st)
        print(string.format("crash points with power loss: %d injections in %.0f s, %d "
            .. "unsynced pages and %d unsynced names (files, renames) taken back, %d "
            .. "acknowledged writes, none lost; per point: %s", POWER_INJECTIONS,
            S.now() - started, st.lost_pages, st.lost_names, #acks, tally_text(st, POWER_POINTS)))
        -- The loss has teeth: unsynced data or names were there to take back.
        assert.is_true(st.lost_pages + st.lost_names > 0, "no power loss took back anything")
    end)

    it("loses no acknowledged membership change at members.after_propose", function()
        local c, w, st = setup(FLAGS)
        st.has8, st.acked_changes = false, 0
        local started = S.now()
        for k = 1, MEMBER_INJECTIONS do
            inject_members(c, st, k)
        end
        local acks = final_checks(c, w, st)
        print(string.format("crash points: %d injections at members.after_propose in %.0f s, %d "
            .. "acknowledged membership changes, %d acknowledged writes, none lost",
            MEMBER_INJECTIONS, S.now() - started, st.acked_changes, #acks))
        assert.is_true(st.acked_changes > 0, "no membership change was acknowledged")
    end)
end)
