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
--     hold durably (spec/power/support.lua, P.durable_term, measured before each
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
local SNAPSHOT_ENTRIES, TRAILING = 50, 10
local SETTLE_S, DEATH_S = 30, 60
-- The armed node changes every ROTATE injections (the one that died restarts unarmed).
local ROTATE = 4
local CHECK_EVERY = 25

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
local function wait_compacted(c, beyond)
    S.wait(SETTLE_S, "the leader's log compacted past " .. beyond, function()
        local l = c:leader()
        local si = l and tonumber(c:info(l).snapshot_index or "")
        return si and si > beyond + TRAILING
    end)
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

-- One injection: arm a node with point p, wait for it to die there.
local VERBOSE = os.getenv("LUARAFT_SPEC_VERBOSE")
local function stage(what)
    if VERBOSE then
        io.stderr:write(string.format("  %.2f %s\n", S.now(), what))
    end
end

local function inject(c, st, k, p)
    stage("begin")
    local want = p.role or (k % 2 == 0 and "leader" or "follower")
    local leader = T.settled_leader(c, SETTLE_S)
    stage("settled")
    note_durable(c, st, leader)
    stage("durable")
    local victim = st.dead
    if victim == nil or k % ROTATE == 0 then
        if victim then
            start(c, st, victim, nil)
            leader = T.settled_leader(c, SETTLE_S)
            note_durable(c, st, leader)
        end
        victim = victim and victim % c.n + 1 or 1
        kill(c, victim)
        st.plain_kills = st.plain_kills + 1
    end
    if p.lag then
        local l = T.settled_leader(c, SETTLE_S)
        wait_compacted(c, tonumber(c:info(l).last_log_index) + 10)
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
    local status = S.wait(DEATH_S, "node " .. victim .. " dying at " .. p.name .. ":" .. hit,
        function()
            assert_others_alive(c, victim)
            local s = T.exit_status(c, victim)
            if s == nil and p.election and S.now() > again then
                role = provoke(c, p, victim, want) -- another election, for a later hit
                again = S.now() + 1
            end
            return s
        end)
    c.pids[victim] = nil
    assert(status == 137 and fired(c, victim, p.name) == before + 1,
        "node " .. victim .. " armed with " .. p.name .. ":" .. hit .. " exited with " .. status
            .. " without that crash point:\n" .. log_tail(c, victim))
    st.dead = victim
    if os.getenv("LUARAFT_SPEC_VERBOSE") then
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

local function setup(flags)
    local c = S.cluster({ n = 3, flags = flags })
    c.env = {}
    run.c = c
    T.start_all_watched(c)
    preload(c)
    run.w = T.writer(c, { 1, 2, 3 })
    local st = { seen = { 0, 0, 0 }, bounds = { {}, {}, {} }, tally = {}, plain_kills = 0 }
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

describe("crash points under load on a 3-node cluster", function()
    after_each(teardown)

    it("loses no acknowledged write, no term and no vote at any crash point", function()
        local c, w, st = setup(FLAGS)
        local started, checked = S.now(), 0
        for k = 1, INJECTIONS do
            inject(c, st, k, POINTS[(k - 1) % #POINTS + 1])
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
        local acks = final_checks(c, w, st)
        local parts = {}
        for _, p in ipairs(POINTS) do
            local t = st.tally[p.name]
            parts[#parts + 1] = string.format("%s %d+%d", p.name, t.leader, t.follower)
        end
        print(string.format("crash points: %d injections in %.0f s (%d plain kills to arm), "
            .. "%d acknowledged writes, none lost; per point (as leader + as follower): %s",
            INJECTIONS, S.now() - started, st.plain_kills, #acks, table.concat(parts, ", ")))
    end)
end)
