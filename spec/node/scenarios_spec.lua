-- Scenarios of the catalogue (spec/raft/scenarios_spec.lua lists them all) that need real
-- processes: three luaraft nodes of examples/kv.lua on loopback, redis-cli as the client,
-- kill -9 and SIGSTOP/SIGCONT by PID. Each `it` is named after its scenario. Every wait
-- polls a reply or RAFT.INFO until a bounded deadline.
--
-- What they cannot show: a partition that drops packets (a stopped process still has its
-- sockets: the kernel takes the bytes sent to it), which the nemesis runner's specs do.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")

local WAIT_S = 20

-- The running node among ids that says it leads (RAFT.INFO), or nil.
local function leader_among(c, ids)
    for _, i in ipairs(ids) do
        if c:info(i).role == "leader" then
            return i
        end
    end
    return nil
end

-- Runs one redis-cli command against node i in the background; returns a function that,
-- once the command has ended, returns its output (nil while it runs).
local function background(c, i, ...)
    local out = os.tmpname()
    local args = { "timeout", WAIT_S, "redis-cli", "-p", c:client_port(i) }
    for _, a in ipairs({ ... }) do
        args[#args + 1] = S.quote(a)
    end
    local done = out .. ".done"
    local cmd = table.concat(args, " ") .. " >" .. S.quote(out) .. " 2>&1; touch " .. S.quote(done)
    os.execute("sh -c " .. S.quote(cmd) .. " >/dev/null 2>&1 &")
    return function()
        local f = io.open(done)
        if f == nil then
            return nil
        end
        f:close()
        local text = S.read_file(out):gsub("\n$", "")
        os.remove(out)
        os.remove(done)
        return text
    end
end

-- True once some connection to node i's client port holds bytes the node has not read
-- (rx_queue in /proc/net/tcp, Linux's proc(5)): a command sent to a stopped node waits there.
local function queued(c, i)
    local port = string.format("%04X", c:client_port(i))
    for line in S.read_file("/proc/net/tcp"):gmatch("[^\n]+") do
        -- sl local_address rem_address st tx_queue:rx_queue ...; st 01 is ESTABLISHED
        local lport, st, rxq = line:match("^%s*%d+: %x+:(%x+) %x+:%x+ (%x+) %x+:(%x+)")
        if lport == port and st == "01" and tonumber(rxq, 16) > 0 then
            return true
        end
    end
    return false
end

describe("scenario", function()
    local c, w
    local stopped -- a node (or a list of them) under SIGSTOP, resumed whatever happens

    after_each(function()
        if stopped and c then
            for _, i in ipairs(type(stopped) == "table" and stopped or { stopped }) do
                T.signal(c, i, "CONT")
            end
        end
        stopped = nil
        if w then
            w.stop()
            w = nil
        end
        if c then
            c:stop()
            c = nil
        end
    end)

    it("S1/S2: a leader stopped past its election timeout serves no stale read on resuming",
        function()
            -- Each round: the leader is stopped (SIGSTOP); the others elect a leader and
            -- commit a new value; a GET is sent to the stopped node after that commit
            -- (the kernel keeps it), and only then is the node resumed. It still believes
            -- it leads when it reads the GET; a read served from its own state, or on a
            -- lease, would return the value before. ReadIndex answers the new value or
            -- -TRYAGAIN.
            c = S.cluster({ n = 3 })
            c:start_all()
            local l = T.settled_leader(c, WAIT_S)
            assert.equal("OK", c:rc(l, "SET", "x", "v0"))
            for round = 1, 3 do
                stopped = l
                T.signal(c, l, "STOP")
                local new = S.wait(WAIT_S, "a leader other than " .. l, function()
                    return leader_among(c, c:others(l))
                end)
                local value = "v" .. round
                S.wait(WAIT_S, "the new leader's write", function()
                    return c:rc(new, "SET", "x", value) == "OK"
                end)
                local reply = background(c, l, "GET", "x")
                S.wait(WAIT_S, "the GET waiting in the stopped node's socket", function()
                    return queued(c, l)
                end)
                T.signal(c, l, "CONT")
                stopped = nil
                local got = S.wait(WAIT_S, "the GET's answer", reply)
                assert.is_true(got == value or got:match("^TRYAGAIN") ~= nil,
                    "round " .. round .. ": the resumed leader answered '" .. got .. "'")
                S.wait(WAIT_S, "the old leader following", function()
                    return c:rc(l, "GET", "x") == value
                end)
                l = T.settled_leader(c, WAIT_S)
            end
        end)

    it("S5: INCRs forwarded by followers through a leader kill are applied at most once",
        function()
            -- luaraft has no client request ids: a follower forwards a write once and
            -- never re-sends it (src/node/writes.c). So the counter ends between the
            -- INCRs acknowledged and those plus the ones whose outcome was unknown.
            c = S.cluster({ n = 3 })
            c:start_all()
            local l = T.settled_leader(c, WAIT_S)
            local acked, unknown, refused = 0, 0, 0
            local down
            for k = 1, 240 do
                if k == 80 then
                    down = l
                    c:kill(l)
                elseif k == 160 then
                    c:start(down)
                    down = nil
                end
                if k % 20 == 0 or k == 81 then
                    l = leader_among(c, c:others(down)) or l
                end
                local via = c:others(down)[1] == l and c:others(down)[2] or c:others(down)[1]
                local r = c:rc(via, "INCR", "counter")
                if r:match("^%d+$") then
                    acked = acked + 1
                elseif r:match("^UNKNOWN ") or r:match("^TIMEOUT ") or r == "" then
                    unknown = unknown + 1 -- "" : redis-cli's own timeout, also unknown
                else
                    refused = refused + 1
                end
            end
            T.settled_leader(c, WAIT_S)
            local value = S.wait(WAIT_S, "the counter", function()
                return tonumber(c:rc(1, "GET", "counter"))
            end)
            print(string.format("S5: %d INCRs acknowledged, %d unknown, %d refused; counter %d",
                acked, unknown, refused, value))
            assert.is_true(acked >= 100, "only " .. acked .. " of 240 acknowledged")
            assert.is_true(value >= acked and value <= acked + unknown,
                "counter " .. value .. " for " .. acked .. " acknowledged and "
                .. unknown .. " unknown")
        end)

    it("S6: a refused write is never applied; one whose leader fell is answered as unknown",
        function()
            -- The node's own timeouts (elections after 500-1000 ms): the leader outlives its
            -- followers long enough to take a write.
            c = S.cluster({ n = 3, default_timeouts = true, flags = { "--write-timeout-ms", "5000" } })
            c:start_all()
            local l = T.settled_leader(c, WAIT_S)
            assert.equal("OK", c:rc(l, "SET", "before", "1"))
            -- Both followers die at once: the leader takes the write, cannot commit it, and
            -- loses its leadership (check-quorum) with the write in its log. Its answer
            -- must say the outcome is unknown: a later leader may still commit it.
            local pids = {}
            for _, i in ipairs(c:others(l)) do
                pids[#pids + 1] = c.pids[i]
            end
            os.execute("kill -9 " .. table.concat(pids, " "))
            local r = c:rc(l, "SET", "maybe", "1")
            for _, i in ipairs(c:others(l)) do
                S.wait(10, "node " .. i .. " exit", function()
                    return not c:alive(i)
                end)
                c.pids[i] = nil
            end
            assert.truthy(r:match("^UNKNOWN ") or r:match("^TIMEOUT "), "reply: " .. r)
            assert.truthy(r:find("outcome is unknown", 1, true), r)
            -- Now no leader: refused, definitely not applied.
            S.wait(WAIT_S, "the node knowing no leader", function()
                return c:info(l).role ~= "leader"
            end)
            r = c:rc(l, "SET", "refused", "1")
            assert.truthy(r:match("^TRYAGAIN "), "reply: " .. r)
            for _, i in ipairs(c:others(l)) do
                c:start(i)
            end
            local leader = T.settled_leader(c, WAIT_S)
            assert.equal("OK", c:rc(leader, "SET", "after", "1"))
            for i = 1, 3 do
                S.wait(WAIT_S, "node " .. i .. " serving the write after", function()
                    return c:rc(i, "GET", "after") == "1"
                end)
                assert.equal("0", c:rc(i, "EXISTS", "refused"), "node " .. i)
                assert.equal("1", c:rc(i, "GET", "before"))
            end
        end)

    it("S9: a restarted follower serves no read before the leader has confirmed it", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local l = T.settled_leader(c, WAIT_S)
        local f = c:others(l)[1]
        assert.equal("OK", c:rc(l, "SET", "x", "old"))
        S.wait(WAIT_S, "the follower holding the old value", function()
            return c:rc(f, "GET", "x") == "old"
        end)
        c:kill(f)
        assert.equal("OK", c:rc(l, "SET", "x", "new"))
        -- It restarts while the other two are stopped: it knows no leader, and its own
        -- state says "old". It must refuse reads (-TRYAGAIN) rather than serve that.
        local rest = c:others(f)
        for _, i in ipairs(rest) do
            T.signal(c, i, "STOP")
        end
        stopped = rest
        c:start(f)
        local refused = S.wait(WAIT_S, "the restarted follower answering", function()
            local x = c:rc(f, "GET", "x")
            return not x:match("^Could not connect") and x
        end)
        assert.truthy(refused:match("^TRYAGAIN "), "GET x before any leader: '" .. refused .. "'")
        for _, i in ipairs(rest) do
            T.signal(c, i, "CONT")
        end
        stopped = nil
        -- From then on it serves what the leader has confirmed: the new value or an error.
        S.wait(WAIT_S, "the restarted follower serving the new value", function()
            local x = c:rc(f, "GET", "x")
            assert.is_true(x == "new" or x:match("^TRYAGAIN") ~= nil, "GET x: '" .. x .. "'")
            return x == "new"
        end)
    end)

    it("S12: set workload through two kill -9 failovers: every acknowledged add is kept",
        function()
            c = S.cluster({ n = 3 })
            c:start_all()
            T.settled_leader(c, WAIT_S)
            w = T.writer(c, { 1, 2, 3 }, "sadd")
            for _ = 1, 2 do
                w.wait_acks(100, S.now(), WAIT_S)
                local l = T.settled_leader(c, WAIT_S)
                c:kill(l)
                w.wait_acks(50, S.now(), WAIT_S)
                c:start(l)
            end
            T.settled_leader(c, WAIT_S)
            w.wait_acks(50, S.now(), WAIT_S)
            w.stop()
            local acks = w.acks()
            for i = 1, 3 do
                local members = {}
                S.wait(WAIT_S, "node " .. i .. " answering SMEMBERS", function()
                    local r = c:rc(i, "SMEMBERS", "s")
                    if r:match("^TRYAGAIN") then
                        return false
                    end
                    for m in r:gmatch("[^\n]+") do
                        members[m] = true
                    end
                    return true
                end)
                local lost = {}
                for _, a in ipairs(acks) do
                    if not members[tostring(a.k)] then
                        lost[#lost + 1] = a.k
                    end
                end
                assert.equal(0, #lost, "node " .. i .. " lost " .. #lost .. " of " .. #acks
                    .. " acknowledged adds: " .. table.concat(lost, " ", 1, math.min(#lost, 10)))
            end
        end)
end)
