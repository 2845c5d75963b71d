-- The node as real processes: three luaraft nodes on loopback with examples/kv.lua, talked
-- to with redis-cli, killed with kill -9 and restarted. Each test proves one promise of
-- the node (issue 3) from the outside; every wait polls RAFT.INFO or a reply until a
-- bounded deadline.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

-- Election timeouts are 100-200 ms (10 ticks of 10 ms): "a few" of them is well under
-- these deadlines, which leave room for a loaded machine.
local ELECTION_S = 10

describe("a 3-node cluster", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("takes a write through any node and serves it on every node", function()
        -- Writes on a follower are forwarded to the leader; reads are linearizable on
        -- every node, so each one sees the write as soon as it is acknowledged.
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        local follower = c:others(leader)[1]
        assert.equal("OK", c:rc(leader, "SET", "a", "1"))
        assert.equal("OK", c:rc(follower, "SET", "b", "2"))
        for i = 1, 3 do
            assert.equal("1", c:rc(i, "GET", "a"))
            assert.equal("2", c:rc(i, "GET", "b"))
        end
        assert.equal("1", c:rc(follower, "CAS", "a", "1", "x"))
        assert.equal("0", c:rc(leader, "CAS", "a", "1", "y"))
        assert.equal("PONG", c:rc(follower, "PING"))
        local info = c:info(leader)
        assert.equal("leader", info.role)
        assert.equal(tostring(leader), info.leader_id)
        assert.equal("127.0.0.1:" .. c:client_port(leader), info.leader_addr)
        assert.equal("127.0.0.1:" .. c:client_port(leader), c:info(follower).leader_addr)
    end)

    it("S4: elects a new leader after kill -9 of the leader, and the old one catches up", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local old = c:wait_leader(ELECTION_S)
        assert.equal("OK", c:rc(old, "SET", "before", "1"))
        c:kill(old)
        local new = c:wait_leader(ELECTION_S)
        assert.are_not.equal(old, new)
        assert.equal("OK", c:rc(new, "SET", "after", "2"))
        for _, i in ipairs(c:others(old)) do
            assert.equal("1", c:rc(i, "GET", "before"))
            assert.equal("2", c:rc(i, "GET", "after"))
        end
        c:start(old)
        S.wait(ELECTION_S, "the old leader catching up", function()
            return c:rc(old, "GET", "after") == "2"
        end)
        assert.equal("1", c:rc(old, "GET", "before"))
    end)

    it("keeps every acknowledged write through kill -9 of all three nodes", function()
        -- The writes go through every node in turn while the cluster runs; then all three
        -- die at once and restart from their data directories.
        c = S.cluster({ n = 3, flags = { "--snapshot-entries", "50", "--snapshot-trailing", "10" } })
        c:start_all()
        c:wait_leader(ELECTION_S)
        local acked = {}
        for k = 1, 150 do
            if c:rc(k % 3 + 1, "SET", "k" .. k, tostring(k)) == "OK" then
                acked[#acked + 1] = k
            end
        end
        assert.is_true(#acked >= 100, "only " .. #acked .. " of 150 writes acknowledged")
        for i = 1, 3 do
            c:kill(i)
        end
        c:start_all()
        c:wait_leader(ELECTION_S)
        for i = 1, 3 do
            local lost = 0
            for _, k in ipairs(acked) do
                if c:rc(i, "GET", "k" .. k) ~= tostring(k) then
                    lost = lost + 1
                end
            end
            assert.equal(0, lost, "node " .. i .. " lost acknowledged writes")
        end
    end)

    it("keeps every acknowledged write when all three die in the middle of a stream", function()
        -- A shell loop writes through every node in turn and records a key only after its
        -- OK; the nodes die with kill -9 while it runs, so some writes are in flight.
        c = S.cluster({ n = 3, flags = { "--snapshot-entries", "200", "--snapshot-trailing", "20" } })
        c:start_all()
        c:wait_leader(ELECTION_S)
        local acked = c.dir .. "/acked"
        local loop = string.format(
            "for k in $(seq 1 100000); do p=$((%d + k %% 3 + 1)); "
                .. "r=$(timeout 2 redis-cli -p $p SET m$k $k 2>/dev/null); "
                .. "[ \"$r\" = OK ] && echo $k >> %s; done", c.base, S.quote(acked))
        local p = assert(io.popen("bash -c " .. S.quote(loop) .. " >/dev/null 2>&1 & echo $!"))
        local writer = assert(tonumber(p:read("a")))
        p:close()
        local function count()
            local f = io.open(acked)
            if not f then
                return 0
            end
            local n = select(2, f:read("a"):gsub("\n", ""))
            f:close()
            return n
        end
        S.wait(30, "300 acknowledged writes", function()
            return count() >= 300
        end)
        for i = 1, 3 do
            c:kill(i)
        end
        os.execute("kill -9 " .. writer .. " 2>/dev/null")
        local keys = {}
        for line in io.lines(acked) do
            keys[#keys + 1] = line
        end
        c:start_all()
        c:wait_leader(ELECTION_S)
        for i = 1, 3 do
            local lost = {}
            for _, k in ipairs(keys) do
                if c:rc(i, "GET", "m" .. k) ~= k then
                    lost[#lost + 1] = k
                end
            end
            assert.equal(0, #lost, "node " .. i .. " lost " .. #lost .. " of " .. #keys
                .. " acknowledged writes: " .. table.concat(lost, " ", 1, math.min(#lost, 10)))
        end
    end)

    it("brings a follower that missed several snapshots back through InstallSnapshot", function()
        c = S.cluster({ n = 3, flags = { "--snapshot-entries", "20", "--snapshot-trailing", "5" } })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        local down = c:others(leader)[1]
        c:kill(down)
        for k = 1, 100 do
            assert.equal("OK", c:rc(leader, "SET", "s" .. k, tostring(k)))
        end
        S.wait(ELECTION_S, "snapshots on the leader", function()
            return tonumber(c:info(leader).snapshot_index or "0") >= 60
        end)
        c:start(down)
        S.wait(ELECTION_S, "the follower installing a snapshot", function()
            return c:rc(down, "GET", "s100") == "100"
        end)
        assert.equal(c:rc(leader, "DBSIZE"), c:rc(down, "DBSIZE"))
        local log = assert(io.open(c:log(down))):read("a")
        assert.truthy(log:find("snapshot installed", 1, true))
    end)

    it("keeps its leader through an apply that runs longer than an election timeout", function()
        -- Lua runs on the fsm thread, so heartbeats and votes go on while every replica
        -- spins in the same apply: the term and the leader stay the same.
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([==[
local M = {}
function M.apply(cmd)
    if cmd[1]:upper() == "SLOW" then
        local x = 0
        for i = 1, 20000000 do x = x + i end
        return x
    end
    return { ok = "OK" }
end
function M.snapshot(w) end
function M.restore(r) end
return M
]==])
        f:close()
        -- Election timeouts of 50-100 ms: the apply below takes several of them.
        c = S.cluster({ n = 3, script = script, flags = { "--heartbeat-ticks", "1", "--election-ticks", "5" } })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        local term = c:info(leader).term
        local t0 = S.now()
        local slow = c:rc(leader, "SLOW")
        local took = S.now() - t0
        os.remove(script)
        assert.equal(tostring(20000000 * 20000001 // 2), slow)
        assert.is_true(took > 0.1, "the apply took only " .. took .. " s: make it longer")
        for i = 1, 3 do
            local info = c:info(i)
            assert.equal(term, info.term, "node " .. i .. " saw an election")
            assert.equal(tostring(leader), info.leader_id)
        end
    end)

    it("survives garbage on both ports and a Lua error in apply, replicas agreeing", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([==[
local M = {}
local data = {}
function M.apply(cmd)
    local name = cmd[1]:upper()
    if name == "SET" then data[cmd[2]] = cmd[3]; return { ok = "OK" } end
    if name == "BOOM" then data.half = "done"; error("boom") end
    return { err = "ERR unknown command" }
end
function M.query(cmd) return data[cmd[2]] end
M.reads = { GET = true }
function M.snapshot(w) w:write(luaraft.encode(data)) end
function M.restore(r)
    local parts = {}
    for chunk in r.read, r do parts[#parts + 1] = chunk end
    data = luaraft.decode(table.concat(parts))
end
return M
]==])
        f:close()
        c = S.cluster({ n = 3, script = script })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        for i = 1, 3 do
            S.send_raw(c:client_port(i), "*2\r\n$3\r\nGET\r\n$-7\r\n\0\255garbage\r\n")
            S.send_raw(c:peer_port(i), "\0\1\2\3 not a frame \255\254\253" .. string.rep("x", 5000))
        end
        local boom = c:rc(leader, "BOOM")
        assert.truthy(boom:find("boom", 1, true), boom)
        assert.equal("OK", c:rc(c:others(leader)[1], "SET", "k", "v"))
        for i = 1, 3 do
            assert.is_true(c:alive(i), "node " .. i .. " died")
            assert.equal("done", c:rc(i, "GET", "half"))
            assert.equal("v", c:rc(i, "GET", "k"))
        end
        os.remove(script)
    end)
end)
