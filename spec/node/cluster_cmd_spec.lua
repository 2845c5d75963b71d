-- `luaraft cluster` from the outside (issue 4, item 1): the command started by PID with
-- a temporary --data directory and free ports, its stdout read from a file, the nodes
-- talked to with redis-cli. Every wait polls the output, RAFT.INFO or ps until a bounded
-- deadline; nothing sleeps to synchronize.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local quote = S.quote
local DEADLINE_S = 15

-- The time that starts every line the command prints of its own, and every node's line
-- (src/util/log.h): UTC with milliseconds.
local TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

local sh, read_file, pid_alive = S.sh, S.read_file, S.pid_alive

-- Clients on base..base+n-1, peers 1000 above, HTTP 2000 above, as luaraft cluster lays
-- them out.
local function pick_base(n)
    for _ = 1, 20 do
        local base = S.free_ports(n, 0, 1000)
        local free = true
        for i = 0, n - 1 do
            free = free and S.port_free(base + 2000 + i)
        end
        if free then
            return base
        end
    end
    error("no free ports")
end

-- The luaraft node processes whose command line names this data directory.
local function node_pids(dir)
    local pids = {}
    for pid in sh("pgrep -f -- " .. quote("node --id [0-9]+ --data " .. dir .. "/n")):gmatch("%d+") do
        pids[#pids + 1] = tonumber(pid)
    end
    return pids
end

local Run = {}
Run.__index = Run

-- Starts `luaraft cluster` on a data directory; extra = a list of more arguments.
local function start(dir, base, n, extra)
    local r = setmetatable({ dir = dir, base = base, n = n }, Run)
    local id = sh("mktemp -u /tmp/luaraft-clout.XXXXXX"):gsub("%s+$", "")
    r.out, r.err = id .. ".out", id .. ".err"
    local args = { quote(S.luaraft), "cluster", "--nodes", n, "--data", quote(dir), "--base-port",
        base }
    for _, a in ipairs(extra or {}) do
        args[#args + 1] = quote(a)
    end
    args[#args + 1] = quote(S.kv)
    local cmd = "echo $$; exec " .. table.concat(args, " ") .. " >" .. quote(r.out) .. " 2>"
        .. quote(r.err)
    r.proc = assert(io.popen("sh -c " .. quote(cmd), "r"))
    r.pid = assert(tonumber(r.proc:read("l")), "no pid for luaraft cluster")
    return r
end

function Run:output()
    return read_file(self.out)
end

-- Waits for a line of the command's stdout matching pattern; returns its captures.
function Run:wait_output(pattern, what)
    return S.wait(DEADLINE_S, what, function()
        local caps = { self:output():match(pattern) }
        return caps[1] and caps
    end)
end

function Run:rc(i, ...)
    local args = { "timeout 5 redis-cli -p", self.base + i - 1 }
    for _, a in ipairs({ ... }) do
        args[#args + 1] = quote(a)
    end
    return (sh(table.concat(args, " ") .. " 2>&1"):gsub("\n$", ""))
end

function Run:role(i)
    return self:rc(i, "RAFT.INFO"):match("role:(%a+)")
end

-- Waits until the command has exited; returns its exit code.
function Run:wait_exit()
    S.wait(DEADLINE_S, "luaraft cluster exit", function()
        return not pid_alive(self.pid)
    end)
    local _, how, code = self.proc:close()
    self.proc = nil
    assert.equal("exit", how)
    return code
end

-- Stops the command (SIGTERM) and returns its exit code.
function Run:stop()
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    return self:wait_exit()
end

-- For after_each: whatever a failed test left running is stopped, forcibly if need be.
function Run:cleanup()
    if self.proc then
        if not pcall(Run.stop, self) then
            os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
            pcall(self.proc.close, self.proc)
            self.proc = nil
        end
    end
    for _, pid in ipairs(node_pids(self.dir)) do
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    if os.getenv("LUARAFT_SPEC_KEEP") then
        io.stderr:write("kept " .. self.out .. " " .. self.err .. "\n")
    else
        os.remove(self.out)
        os.remove(self.err)
    end
end

-- Writes key=value through node i once a leader accepts it.
function Run:set(i, key, value)
    S.wait(DEADLINE_S, "SET " .. key .. " through node " .. i, function()
        return self:rc(i, "SET", key, value) == "OK"
    end)
end

describe("luaraft cluster", function()
    local dir, base, runs

    before_each(function()
        dir = sh("mktemp -d /tmp/luaraft-clspec.XXXXXX"):gsub("%s+$", "")
        base = pick_base(3)
        runs = {}
    end)

    after_each(function()
        for _, r in ipairs(runs) do
            r:cleanup()
        end
        if not os.getenv("LUARAFT_SPEC_KEEP") then
            os.execute("rm -rf " .. quote(dir))
        end
    end)

    local function run(n, extra)
        local r = start(dir, base, n or 3, extra)
        runs[#runs + 1] = r
        return r
    end

    it("exits 2 on bad usage without starting anything", function()
        local function rc(args)
            local _, _, code = os.execute(quote(S.luaraft) .. " cluster " .. args
                .. " >/dev/null 2>&1")
            return code
        end
        assert.equal(2, rc("--data " .. quote(dir) .. " " .. quote(dir .. "/missing.lua")))
        assert.equal(2, rc("--data " .. quote(dir) .. " --nodes 10 " .. quote(S.kv)))
        assert.equal(2, rc("--data " .. quote(dir) .. " --base-port x " .. quote(S.kv)))
        assert.equal(2, rc("--data " .. quote(dir) .. " " .. quote(S.kv) .. " -- --id 4"))
        assert.equal(2, rc("--data " .. quote(dir)))
        assert.equal("", sh("ls -A " .. quote(dir)))
        local _, _, code = os.execute(quote(S.luaraft) .. " cluster --help >/dev/null")
        assert.equal(0, code)
    end)

    it("starts 3 nodes, prints their addresses and the leader, and replicates", function()
        local r = run(3)
        for i = 1, 3 do
            r:wait_output("%f[^\n]" .. TIME .. " luaraft cluster: node " .. i .. "  client 127%.0%.0%.1:"
                .. (base + i - 1) .. "  peer 127%.0%.0%.1:" .. (base + 999 + i) .. "  http 127%.0%.0%.1:"
                .. (base + 1999 + i) .. "  pid %d+\n", "node " .. i .. "'s address and PID")
        end
        -- The status page's URL lists every node's HTTP address, and the page answers.
        local page = "http://127.0.0.1:" .. (base + 2000) .. "/?nodes=127.0.0.1:" .. (base + 2000)
            .. ",127.0.0.1:" .. (base + 2001) .. ",127.0.0.1:" .. (base + 2002) .. "\n"
        assert.truthy(r:output():find("Status page:   " .. page, 1, true))
        S.wait(DEADLINE_S, "node 3's /health", function()
            local tcp = require("socket").tcp()
            tcp:settimeout(5)
            if not tcp:connect("127.0.0.1", base + 2002) then
                tcp:close()
                return false
            end
            tcp:send("GET /health HTTP/1.0\r\n\r\n")
            local status = tcp:receive("*l")
            tcp:close()
            return status and status:match("^HTTP/1%.1 [25]0[03] ")
        end)
        -- The nodes prove themselves to each other with DIR/peer-secret, made for them:
        -- 32 bytes that only the owner may read.
        assert.equal("32 600", sh("stat -c '%s %a' " .. quote(dir .. "/peer-secret")):gsub("%s+$", ""))
        assert.equal(3, #node_pids(dir))
        for _, pid in ipairs(node_pids(dir)) do
            assert.truthy(read_file("/proc/" .. pid .. "/cmdline"):find(
                "--peer-secret-file\0" .. dir .. "/peer-secret\0", 1, true), "node pid " .. pid)
        end
        assert.truthy(r:output():find("redis-cli -p " .. base, 1, true))
        assert.truthy(r:output():find("Ctrl-C stops the cluster", 1, true))
        assert.truthy(r:output():find(dir, 1, true))
        local leader = tonumber(r:wait_output("%f[^\n]" .. TIME
            .. " luaraft cluster: leader is now node (%d) %(term %d+%)\n", "leader")[1])
        S.wait(DEADLINE_S, "node " .. leader .. " to say it leads", function()
            return r:role(leader) == "leader"
        end)
        r:set(1, "greeting", "hello")
        assert.equal("hello", r:rc(3, "GET", "greeting"))
        assert.equal("hello", r:rc(2, "GET", "greeting"))
        -- The nodes' log lines are in DIR/n<i>.log, every one in the log's format with
        -- the node's id.
        S.wait(DEADLINE_S, "the leader's log line", function()
            return read_file(dir .. "/n" .. leader .. ".log"):find("election won", 1, true)
        end)
        for line in read_file(dir .. "/n" .. leader .. ".log"):gmatch("[^\n]+") do
            assert.truthy(line:match("^" .. TIME .. " luaraft%[" .. leader .. "%][ :]"), line)
        end
    end)

    it("reports kill -9 of the leader, and the others elect a new one and take writes",
        function()
            local r = run(3)
            local old = tonumber(r:wait_output("leader is now node (%d)", "leader")[1])
            r:set(old, "before", "1")
            local pid = tonumber(r:output():match("node " .. old .. "  client [%d.:]+  peer [%d.:]+  http [%d.:]+  pid (%d+)"))
            assert.is_number(pid)
            os.execute("kill -9 " .. pid)
            r:wait_output("node " .. old .. " exited %(signal 9%); the others go on", "the exit report")
            local new = S.wait(DEADLINE_S, "a new leader", function()
                for i = 1, 3 do
                    if i ~= old and r:role(i) == "leader" then
                        return i
                    end
                end
            end)
            r:wait_output("leader is now node " .. new, "the new leader's report")
            local other = 6 - old - new
            r:set(other, "after", "2")
            assert.equal("1", r:rc(new, "GET", "before"))
            assert.equal("2", r:rc(new, "GET", "after"))
            assert.is_true(pid_alive(r.pid))
            assert.equal(0, r:stop())
        end)

    it("stops every node on SIGTERM and exits 0", function()
        local r = run(3)
        r:wait_output("leader is now node (%d)", "leader")
        assert.equal(3, #node_pids(dir))
        assert.equal(0, r:stop())
        assert.same({}, node_pids(dir))
        local out = r:output()
        for i = 1, 3 do
            assert.truthy(out:find("node " .. i .. " stopped", 1, true))
        end
    end)

    it("keeps the data across a restart, and --fresh empties it", function()
        local r = run(3)
        r:wait_output("leader is now node", "leader")
        r:set(1, "kept", "yes")
        assert.equal(0, r:stop())

        local f = assert(io.open(dir .. "/not-ours.txt", "w"))
        f:write("x")
        f:close()

        r = run(3)
        S.wait(DEADLINE_S, "the key after a restart", function()
            return r:rc(2, "GET", "kept") == "yes"
        end)
        assert.equal(0, r:stop())

        r = run(3, { "--fresh" })
        r:wait_output("leader is now node", "leader")
        r:set(1, "probe", "1") -- a leader serves reads; the old key is gone
        assert.equal("", r:rc(2, "GET", "kept"))
        assert.equal(0, r:stop())
        assert.equal("x", read_file(dir .. "/not-ours.txt"))
    end)

    -- `luaraft cluster add|remove|restart` from another process, against the running one.
    local function ctl(...)
        local args = { quote(S.luaraft), "cluster", ... }
        table.insert(args, 4, "--data " .. quote(dir) .. " --base-port " .. base)
        local out = sh("timeout 90 " .. table.concat(args, " ") .. " 2>&1; echo rc=$?")
        return out, tonumber(out:match("rc=(%d+)"))
    end

    local function voters(r, i)
        local ids = {}
        for id in r:rc(i, "RAFT.MEMBERS"):gmatch("member:(%d+) voter") do
            ids[#ids + 1] = tonumber(id)
        end
        return table.concat(ids, ",")
    end

    it("adds, removes and restarts nodes of the running cluster", function()
        base = pick_base(5)
        local r = run(3)
        r:wait_output("leader is now node", "leader")
        r:set(1, "before", "1")
        local out, code = ctl("add")
        assert.equal(0, code, out)
        assert.is_truthy(out:find("node 4 is a voter"), out)
        r:wait_output("node 4 started to join through", "node 4's start")
        assert.equal("1", r:rc(4, "GET", "before"))
        assert.equal("1,2,3,4", voters(r, 1))
        out, code = ctl("remove", "1")
        assert.equal(0, code, out)
        assert.equal("2,3,4", voters(r, 2))
        r:wait_output("node 1 exited", "node 1's stop")
        local pid = tonumber(r:output():match("node 4 started[^\n]*pid (%d+)"))
        out, code = ctl("restart", "4")
        assert.equal(0, code, out)
        local new = tonumber(out:match("node 4 restarted: pid (%d+)"))
        assert.is_truthy(new and new ~= pid, out)
        r:set(4, "after", "2")
        assert.equal("2", r:rc(3, "GET", "after"))
        assert.equal("2,3,4", voters(r, 4))
        out, code = ctl("remove", "7")
        assert.equal(1, code, out)
        assert.is_truthy(out:find("node 7 is not a member of the cluster"), out)
        assert.equal(0, r:stop())
    end)
end)
