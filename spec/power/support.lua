-- Shared by the spec/power specs (loaded with dofile): faultfs mounts (src/testing/faultfs.c,
-- built into the build directory) under real clusters, the power loss of a whole mount,
-- and the checks that read the nodes' logs for what they said was durable.
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/")
local T = dofile(here .. "/../node/transfer_support.lua")
local S = T.S
local P = { T = T, S = S }

local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = S.root .. "/build"
end
P.faultfs = build .. "/faultfs"

-- The PID of this Lua process (the shell's parent): faultfs --watch ends with it, so a
-- spec killed in the middle leaves no mount behind.
local my_pid = S.sh("echo $PPID"):match("%d+")

-- Whether dir is a mount point, from /proc/self/mounts (a stat would fail on a dead
-- faultfs, and mountpoint(1) would then say no).
local function mounted(dir)
    for line in S.read_file("/proc/self/mounts"):gmatch("[^\n]+") do
        local point = line:match("^%S+ (%S+) ")
        if point == dir then
            return true
        end
    end
    return false
end
P.mounted = mounted

-- Mounts faultfs over backing at mnt (both created); returns the mount {backing, mnt, pid,
-- log, fsync_us}. Its log lines go to log. fsync_us: how long each fsync takes (faultfs's
-- fsync-us), on this mount and every remount.
function P.mount(backing, mnt, log, fsync_us)
    assert(io.open(P.faultfs) ~= nil, P.faultfs .. " is missing: build with libfuse3-dev")
    os.execute("mkdir -p " .. S.quote(backing) .. " " .. S.quote(mnt))
    assert(not mounted(mnt), mnt .. " is already a mount point")
    local cmd = S.quote(P.faultfs) .. " --watch " .. my_pid .. " " .. S.quote(backing) .. " "
        .. S.quote(mnt) .. " >>" .. S.quote(log) .. " 2>&1 & echo $!"
    local m = { backing = backing, mnt = mnt, log = log }
    m.pid = assert(tonumber(S.sh(cmd)), "no pid for faultfs")
    S.wait(10, "faultfs mounted on " .. mnt, function()
        return mounted(mnt)
    end)
    m.fsync_us = fsync_us
    if fsync_us then
        P.command(m, "fsync-us " .. fsync_us)
    end
    return m
end

-- Sends a command to the mount's control file (faultfs.c lists them).
function P.command(m, text)
    local f = assert(io.open(m.mnt .. "/.faultfs", "w"))
    assert(f:write(text))
    assert(f:close())
end

-- The mount's counters, as numbers.
function P.stats(m)
    local t = {}
    for k, v in S.read_file(m.mnt .. "/.faultfs"):gmatch("(%S+) (%-?%d+)") do
        t[k] = tonumber(v)
    end
    return t
end

-- Unmounts (lazily: a process that still holds a file, a snapshot child, cannot keep the
-- mount) and waits for faultfs to end.
function P.unmount(m)
    os.execute("fusermount3 -u -z " .. S.quote(m.mnt) .. " 2>/dev/null")
    local ok = pcall(S.wait, 10, "faultfs ending", function()
        return T.pid_gone(m.pid)
    end)
    if not ok then
        os.execute("kill -9 " .. m.pid .. " 2>/dev/null")
    end
    -- A faultfs that ended leaves its mount to the auto_unmount helper, which may not
    -- have removed it yet (the directory then fails with ENOTCONN): unmount until it is
    -- a plain directory again.
    S.wait(10, m.mnt .. " unmounted", function()
        if not mounted(m.mnt) and os.execute("test -d " .. S.quote(m.mnt)) == true then
            return true
        end
        os.execute("fusermount3 -u -z " .. S.quote(m.mnt) .. " 2>/dev/null")
        return false
    end)
end

-- Mounts the same backing directory again, after an unmount.
function P.remount(m)
    local again = P.mount(m.backing, m.mnt, m.log, m.fsync_us)
    m.pid = again.pid
end

-- kill -9 of every running node of the cluster (one after the other: after a power loss
-- their file system already fails everything, so the order does not matter).
function P.kill_all(c)
    for i = 1, c.n do
        if c.pids[i] then
            c:kill(i)
        end
    end
end

-- What the nodes' logs say they made durable, and what they loaded at each start, checked
-- against each other. For node i, reading its whole log in order:
--   "vote: granted to node C in term T" is logged only once that vote is durable, and
--   "election won" in term T only after votes came back for a term and self-vote that
--   were durable (raft/update.c holds every message of a term not yet durable);
--   "loaded state: vote V" in term T is what a start found on disk.
-- Returns a list of anomalies (strings): a start that loaded a term below one the node
-- had made durable (bounds[i], or a vote or win of its own), or that lost or changed a
-- durable vote of the term it loaded, or two different votes of one node in one term.
function P.log_anomalies(c, bounds)
    local out = {}
    for i = 1, c.n do
        local votes, durable, starts = {}, bounds[i] or {}, 0
        local floor = 0
        local function vote(term, for_id, why)
            if votes[term] and votes[term] ~= for_id then
                out[#out + 1] = string.format("node %d voted for %d and %d in term %d (%s)", i,
                    votes[term], for_id, term, why)
            end
            votes[term] = for_id
            floor = math.max(floor, term)
        end
        for line in S.read_file(c:log(i)):gmatch("[^\n]+") do
            local t, v = line:match("term (%d+): loaded state: vote (%d+),")
            local gt_to, gt_term = line:match("vote: granted to node (%d+) in term (%d+)")
            local won = line:match("term (%d+): election won")
            if t then
                t, v = tonumber(t), tonumber(v)
                starts = starts + 1
                local bound = math.max(floor, durable[starts - 1] or 0)
                if t < bound then
                    out[#out + 1] = string.format(
                        "node %d start %d loaded term %d, below its durable term %d", i, starts, t,
                        bound)
                end
                if votes[t] and votes[t] ~= v then
                    out[#out + 1] = string.format(
                        "node %d start %d loaded vote %d in term %d, having voted for %d", i,
                        starts, v, t, votes[t])
                end
                if v ~= 0 then
                    vote(t, v, "loaded")
                end
                floor = math.max(floor, t)
            elseif gt_to then
                vote(tonumber(gt_term), tonumber(gt_to), "granted")
            elseif won then
                vote(tonumber(won), i, "won")
            end
        end
    end
    return out
end

-- A term every running node holds durably now: the leader's, once each follower's match (learned
-- from acknowledgments, sent only after the follower's fsync) has reached the leader's last
-- index at that moment, an entry of the leader's term. Returns term, or nil if the
-- followers did not catch up within the wait or the leadership changed meanwhile.
function P.durable_term(c, leader)
    local info = c:info(leader)
    local term, last = tonumber(info.term), tonumber(info.last_log_index)
    if info.role ~= "leader" or term == nil then
        return nil
    end
    local ok = pcall(S.wait, 10, "followers durable up to " .. last, function()
        local now = c:info(leader)
        if now.role ~= "leader" or tonumber(now.term) ~= term then
            error("leadership changed")
        end
        for _, j in ipairs(c:others(leader)) do
            -- A node that is down holds nothing new (crash_points_spec.lua measures with
            -- one node down; the power-loss spec with every node up).
            local match = tonumber((now["peer_" .. j] or ""):match("match=(%d+)"))
            if c.pids[j] and (match == nil or match < last) then
                return false
            end
        end
        return true
    end)
    return ok and term or nil
end

-- A spec's after_each: the writer and the nodes killed, every mount of run.mounts
-- unmounted, the cluster's directory removed; run is emptied.
function P.teardown(run)
    if run.w then
        run.w.stop()
    end
    if run.c then
        P.kill_all(run.c)
    end
    for _, m in ipairs(run.mounts or {}) do
        P.unmount(m)
    end
    if run.c then
        run.c:stop()
    end
    for k in pairs(run) do
        run[k] = nil
    end
end

return P
