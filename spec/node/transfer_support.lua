-- Shared by transfer_spec.lua and sigterm_spec.lua (loaded with dofile): nodes whose exit
-- status is recorded, a steady write load in a process of its own (load_writer.lua), its
-- acknowledged writes read back, the pauses between them, and RAFT.INFO's counters of the
-- elections each node began.
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/")
local S = dofile(here .. "/support.lua")
local R = dofile(here .. "/resp_conn.lua")
local T = { S = S, R = R }

-- ps without the sanitizer build's preloaded ASan runtime, which it can deadlock with.
function T.pid_gone(pid)
    local state = S.sh("env -u LD_PRELOAD ps -o stat= -p " .. pid .. " 2>/dev/null")
    return state == "" or state:match("^Z") ~= nil
end

-- Starts node i under a shell that writes the node's PID, then its exit status once it
-- ends ($? of wait: the code, or 128 + the signal that ended it), to files of the cluster.
function T.start_watched(c, i)
    assert(c.pids[i] == nil, "node " .. i .. " is running")
    local pidf, exitf = c.dir .. "/n" .. i .. ".pid", c.dir .. "/n" .. i .. ".exit"
    os.remove(pidf)
    os.remove(exitf)
    local script = c:node_command(i) .. " & echo $! >" .. S.quote(pidf) .. "; wait $!; echo $? >"
        .. S.quote(exitf)
    os.execute("sh -c " .. S.quote(script) .. " >/dev/null 2>&1 &")
    c.pids[i] = S.wait(10, "node " .. i .. "'s pid", function()
        return tonumber(S.read_file(pidf):match("%d+"))
    end)
end

function T.start_all_watched(c)
    for i = 1, c.n do
        T.start_watched(c, i)
    end
end

-- Node i's exit status once it has exited, else nil.
function T.exit_status(c, i)
    return tonumber(S.read_file(c.dir .. "/n" .. i .. ".exit"):match("%d+"))
end

-- Waits for node i to exit and returns its status; the cluster forgets its PID.
function T.wait_exit(c, i, seconds)
    local status = S.wait(seconds or 20, "node " .. i .. " exiting", function()
        return T.exit_status(c, i)
    end)
    c.pids[i] = nil
    return status
end

function T.signal(c, i, name)
    os.execute("kill -" .. name .. " " .. assert(c.pids[i], "node " .. i .. " is not running"))
end

-- Every node running (or every node of the list ids) knows the same leader, one of them
-- (so that followers forward to it); returns it.
function T.settled_leader(c, seconds, ids)
    local only = {}
    for _, i in ipairs(ids or {}) do
        only[i] = true
    end
    return S.wait(seconds or 20, "every node following one leader", function()
        local leader
        for i = 1, c.n do
            if c.pids[i] and (ids == nil or only[i]) then
                local l = tonumber(c:info(i).leader_id or "")
                if l == nil or l == 0 or (leader and l ~= leader) then
                    return nil
                end
                leader = l
            end
        end
        return leader and c.pids[leader] and (ids == nil or only[leader]) and leader
    end)
end

-- RAFT.INFO's numbers of node i that the specs compare before and after.
function T.counters(c, i)
    local info = c:info(i)
    return {
        term = tonumber(info.term),
        timeout = tonumber(info.elections_timeout),
        transfer = tonumber(info.elections_transfer),
        role = info.role,
    }
end

-- The write load on the given nodes' ports: an object with acks() (each {k, t}, in order),
-- count_after(t) and stop(). op "sadd" makes it a set workload (load_writer.lua).
function T.writer(c, nodes, op)
    local out = c.dir .. "/writes.log"
    local ports = {}
    for _, i in ipairs(nodes) do
        ports[#ports + 1] = c:client_port(i)
    end
    local opt = op == "sadd" and "LUARAFT_WRITER_OP=sadd " or ""
    local cmd = "env -u LD_PRELOAD " .. opt .. "lua5.4 " .. S.quote(here .. "/load_writer.lua") .. " "
        .. S.quote(out) .. " " .. table.concat(ports, " ") .. " >>" .. S.quote(out .. ".err")
        .. " 2>&1 & echo $!"
    local pid = assert(tonumber(S.sh(cmd)), "no pid for the writer")
    local w = { pid = pid, out = out }
    function w.acks()
        local list = {}
        for k, t in S.read_file(out):gmatch("ack (%d+) ([%d.]+)\n") do
            list[#list + 1] = { k = tonumber(k), t = tonumber(t) }
        end
        return list
    end
    function w.count_after(t)
        local n = 0
        for _, a in ipairs(w.acks()) do
            n = n + (a.t > t and 1 or 0)
        end
        return n
    end
    function w.wait_acks(n, after, seconds)
        S.wait(seconds or 30, n .. " acknowledged writes", function()
            return w.count_after(after or 0) >= n
        end)
    end
    function w.stop()
        if w.pid then
            os.execute("kill -9 " .. w.pid .. " 2>/dev/null")
            S.wait(10, "the writer's end", function()
                return T.pid_gone(w.pid)
            end)
            w.pid = nil
        end
    end
    return w
end

-- The acknowledged writes that node i does not serve back (pipelined GETs, a linearizable
-- read each), as a list of keys.
function T.missing(c, i, acks)
    local conn = R.connect(c:client_port(i))
    local missing = {}
    local batch = 500
    for first = 1, #acks, batch do
        local cmds = {}
        for j = first, math.min(first + batch - 1, #acks) do
            cmds[#cmds + 1] = { "GET", "w" .. acks[j].k }
        end
        conn:send(table.unpack(cmds))
        for j = first, first + #cmds - 1 do
            local r = conn:read()
            if r.t ~= "bulk" or r.v ~= tostring(acks[j].k) then
                missing[#missing + 1] = acks[j].k .. "=" .. R.show(r)
            end
        end
    end
    conn:close()
    return missing
end

-- Asserts that every acknowledged write is served back by each of the given nodes.
function T.assert_none_lost(c, nodes, acks)
    for _, i in ipairs(nodes) do
        local missing = T.missing(c, i, acks)
        assert(#missing == 0, "node " .. i .. " lost " .. #missing .. " of " .. #acks
            .. " acknowledged writes: " .. table.concat(missing, " ", 1, math.min(#missing, 10)))
    end
end

-- The longest pause between two acknowledgments that spans the moment t (the first after
-- t against the last before it, and every pause after t until the next `within` seconds).
function T.longest_gap(acks, t, within)
    local longest = 0
    for j = 2, #acks do
        local a, b = acks[j - 1], acks[j]
        if b.t >= t and a.t <= t + within and b.t - a.t > longest then
            longest = b.t - a.t
        end
    end
    return longest
end

-- A spec's after_each: the writer killed, stopped nodes continued, the cluster stopped.
function T.teardown(c, w)
    if w then
        w.stop()
    end
    if c then
        for i = 1, c.n do
            if c.pids[i] then
                os.execute("kill -CONT " .. c.pids[i] .. " 2>/dev/null")
            end
        end
        c:stop()
    end
end

return T
