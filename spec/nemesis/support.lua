-- Shared by spec/nemesis (loaded with dofile): a real luaraft cluster inside a network
-- namespace of its own, the faults the nemesis injects into it, and the run of
-- spec/nemesis/driver.lua's clients against it.
--
-- Node i listens on 127.0.0.i (clients on port 6379, peers on 7000); all of 127/8 is
-- loopback, and a node's outgoing peer connections leave from its --raft address
-- (src/peer/link.c binds them), so nftables rules by source and destination address drop
-- the real packets between two nodes. Rules match the peer port only: clients reach every
-- node, as in Jepsen's partitions. Deleting the namespace removes every rule; the nodes
-- are stopped by PID.
local N = {}
N.root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/nemesis/[^/]*$") or "."
local S = dofile(N.root .. "/spec/node/support.lua")
N.S = S
local quote, sh = S.quote, S.sh

N.CLIENT_PORT, N.PEER_PORT = 6379, 7000
-- The ASan runtime in the sanitizer build (ctest sets it), else "".
N.ASAN = os.getenv("LUARAFT_ASAN_PRELOAD") or ""

-- The environment that makes a node's clocks, CLOCK_MONOTONIC included, run `rate` times
-- as fast (libfaketime). A sanitizer build's node must load the ASan runtime first.
function N.fast_clock(rate)
    local lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
    local preload = N.ASAN ~= "" and (N.ASAN .. ":" .. lib) or lib
    return "LD_PRELOAD=" .. preload .. " FAKETIME='+0 x" .. rate .. "' FAKETIME_NO_CACHE=1"
end

local function run(cmd)
    local ok = os.execute(cmd)
    assert(ok, "failed: " .. cmd)
end

local Cluster = {}
Cluster.__index = Cluster

-- N.cluster{n = 3, name = "kill-leader", env = {[i] = "VAR=value ..."}} -> a cluster in a
-- fresh namespace, nodes started; c:teardown() stops it and deletes the namespace.
function N.cluster(opts)
    local c = setmetatable({ n = opts.n, env = opts.env or {}, pids = {}, paused = {},
        joins = {}, removed = {}, slots = opts.slots or opts.n, flags = opts.flags or {} },
        Cluster)
    c.dir = sh("mktemp -d /tmp/luaraft-nemesis.XXXXXX"):gsub("%s+$", "")
    c.ns = "luaraft-nem-" .. c.dir:match("%.(%w+)$")
    run("ip netns add " .. c.ns)
    run("ip -n " .. c.ns .. " link set lo up")
    -- Should this process die without its teardown (a ctest timeout), a watchdog ends
    -- every process in the namespace and deletes it; its one-second polls are cleanup,
    -- not synchronization.
    local me = sh("echo $PPID"):gsub("%s+$", "")
    c.watchdog = tonumber(sh(table.concat({ "sh -c", quote("while kill -0 " .. me .. " 2>/dev/null;"
        .. " do sleep 1; done; ip netns pids " .. c.ns .. " | xargs -r kill -9;"
        .. " ip netns del " .. c.ns), ">/dev/null 2>&1 & echo $!" }, " ")))
    c:nft("add table inet nemesis")
    c:nft("add chain inet nemesis out '{ type filter hook output priority 0; policy accept; }'")
    local members = {}
    for i = 1, c.n do
        members[#members + 1] = i .. "=" .. c:addr(i) .. ":" .. N.PEER_PORT
    end
    c.members = table.concat(members, ",")
    for i = 1, c.n do
        c:start(i)
    end
    return c
end

function Cluster:addr(i)
    return "127.0.0." .. i
end

function Cluster:exec(cmd)
    return "ip netns exec " .. self.ns .. " " .. cmd
end

function Cluster:nft(rule)
    run(self:exec("nft " .. rule))
end

function Cluster:start(i)
    assert(self.pids[i] == nil, "node " .. i .. " is running")
    local cmd = table.concat({
        self:exec("env"), self.env[i] or "", quote(S.luaraft), "node", "--id", i,
        "--data", quote(self.dir .. "/n" .. i),
        "--listen", self:addr(i) .. ":" .. N.CLIENT_PORT,
        "--raft", self:addr(i) .. ":" .. N.PEER_PORT,
        self.joins[i] and ("--join " .. self:addr(self.joins[i]) .. ":" .. N.CLIENT_PORT)
            or ("--cluster " .. self.members),
        "--heartbeat-ticks", "1", "--election-ticks", "10", table.concat(self.flags, " "),
        quote(S.kv),
        ">>" .. quote(self.dir .. "/n" .. i .. ".log"), "2>&1 & echo $!",
    }, " ")
    self.pids[i] = assert(tonumber(sh(cmd)), "no pid for node " .. i)
end

function Cluster:kill(i)
    os.execute("kill -9 " .. self.pids[i])
    S.wait(10, "node " .. i .. " exit", function()
        return not S.pid_alive(self.pids[i])
    end)
    self.pids[i], self.paused[i] = nil, nil
end

function Cluster:pause(i)
    run("kill -STOP " .. self.pids[i])
    self.paused[i] = true
end

function Cluster:resume(i)
    run("kill -CONT " .. self.pids[i])
    self.paused[i] = nil
end

-- Drops every peer packet from node a to node b (both directions of every connection
-- between them carry such packets, so TCP sees a one-way partition as loss on both).
function Cluster:drop(a, b)
    local m = "ip saddr " .. self:addr(a) .. " ip daddr " .. self:addr(b)
    self:nft("add rule inet nemesis out " .. m .. " tcp dport " .. N.PEER_PORT .. " drop")
    self:nft("add rule inet nemesis out " .. m .. " tcp sport " .. N.PEER_PORT .. " drop")
end

-- No peer packet crosses between the groups (lists of node ids), either way.
function Cluster:partition(groups)
    for gi, g in ipairs(groups) do
        for gj, h in ipairs(groups) do
            if gi ~= gj then
                for _, a in ipairs(g) do
                    for _, b in ipairs(h) do
                        self:drop(a, b)
                    end
                end
            end
        end
    end
end

-- Each peer packet is dropped with probability pct/100.
function Cluster:loss(pct)
    for _, dir in ipairs({ "dport", "sport" }) do
        self:nft("add rule inet nemesis out tcp " .. dir .. " " .. N.PEER_PORT
            .. " numgen random mod 100 lt " .. pct .. " counter drop")
    end
end

-- A slow, congested network: every packet on the namespace's loopback (peer and client
-- traffic alike) leaves through a token bucket of rate (tc tbf; this kernel has no netem),
-- so packets wait in its queue, up to 300 ms, and are dropped past that. The burst holds
-- one packet of loopback's 64 KiB MTU, or larger ones would never pass.
function Cluster:slow(rate)
    run(self:exec("tc qdisc replace dev lo root tbf rate " .. rate .. " burst 80kb latency 300ms"))
    self.slowed = true
end

-- Ends every fault: the rules go, paused nodes continue, killed nodes start again.
function Cluster:heal()
    self:nft("flush chain inet nemesis out")
    if self.slowed then
        run(self:exec("tc qdisc del dev lo root"))
        self.slowed = nil
    end
    for i = 1, self.n do
        if self.paused[i] then
            self:resume(i)
        end
        if self.pids[i] == nil and not self.removed[i] then
            self:start(i)
        end
    end
end

-- The ids of the members (the nodes not removed).
function Cluster:members_now()
    local t = {}
    for i = 1, self.n do
        if not self.removed[i] then
            t[#t + 1] = i
        end
    end
    return t
end

-- Sends a membership change through the nodes of via_list until it is answered +OK
-- (-TRYAGAIN: one change at a time, or no leader yet); returns the answer. After an
-- answer that leaves the outcome open (-UNKNOWN, none within redis-cli's 5 s), a RAFT.REMOVE
-- answered "not a member" had taken effect (a RAFT.ADD asked again answers +OK).
function Cluster:change(via_list, ...)
    local args, answers, open = { ... }, {}, false
    return S.wait(30, table.concat(args, " "), function()
        for _, via in ipairs(via_list) do
            if self.pids[via] and not self.paused[via] then
                local last = self:rc(via, table.unpack(args))
                answers[#answers + 1] = via .. ": " .. last
                if last == "OK" or (open and last:match("is not a member")) then
                    return last
                end
                open = open or last:match("UNKNOWN") or last == ""
                assert(last:match("TRYAGAIN") or last:match("UNKNOWN") or last == "",
                    table.concat(args, " ") .. ", answers: " .. table.concat(answers, "; "))
            end
        end
        return false
    end)
end

-- The client addresses of the members, for the clients (driver.lua reads the file for
-- each connection it opens).
function Cluster:write_hosts()
    local f = assert(io.open(self.dir .. "/hosts.new", "w"))
    for _, i in ipairs(self:members_now()) do
        f:write(self:addr(i), ":", N.CLIENT_PORT, "\n")
    end
    f:close()
    assert(os.rename(self.dir .. "/hosts.new", self.dir .. "/hosts"))
end

-- Replaces member old by a new node (the next id, empty, started with --join): RAFT.REMOVE
-- old, kill -9 it, start the new one and RAFT.ADD it. Returns the new id.
function Cluster:replace(old)
    local others = {}
    for _, i in ipairs(self:members_now()) do
        if i ~= old then
            others[#others + 1] = i
        end
    end
    self:change(others, "RAFT.REMOVE", tostring(old))
    self:kill(old)
    self.removed[old] = true
    self:write_hosts()
    local new = self.n + 1
    assert(new <= self.slots, "no address left for a new node")
    self.n, self.joins[new] = new, others[1]
    self:start(new)
    self:change(others, "RAFT.ADD", tostring(new), self:addr(new) .. ":" .. N.PEER_PORT,
        self:addr(new) .. ":" .. N.CLIENT_PORT)
    self:write_hosts()
    return new
end

function Cluster:rc(i, ...)
    local args = { self:exec("timeout 5 redis-cli -h " .. self:addr(i) .. " -p " .. N.CLIENT_PORT) }
    for _, a in ipairs({ ... }) do
        args[#args + 1] = quote(a)
    end
    return (sh(table.concat(args, " ") .. " 2>&1"):gsub("\n$", ""))
end

-- RAFT.INFO of node i (empty when it is down or paused).
function Cluster:info(i)
    if self.pids[i] == nil or self.paused[i] then
        return {}
    end
    return S.parse_info(self:rc(i, "RAFT.INFO"))
end

-- The node that says it leads in the highest term, or nil.
function Cluster:leader()
    local best, term = nil, -1
    for i = 1, self.n do
        local info = self:info(i)
        if info.role == "leader" and tonumber(info.term) > term then
            best, term = i, tonumber(info.term)
        end
    end
    return best
end

-- After heal(): every node applies the same index, and RAFT.CHECK finds their states'
-- hashes equal there. Returns that index.
function Cluster:converge(seconds)
    local leader = S.wait(seconds, "a leader after healing", function()
        return self:leader()
    end)
    local verdict = S.wait(seconds, "a consistency check", function()
        local v = self:rc(leader, "RAFT.CHECK")
        return v:match("consistent at index %d+") or v:match("MISMATCH[^\n]*")
    end)
    assert(verdict:match("^consistent"), "RAFT.CHECK: " .. verdict)
    local want = tonumber(self:info(leader).commit_index)
    S.wait(seconds, "every node applying index " .. want, function()
        for _, i in ipairs(self:members_now()) do
            if (tonumber(self:info(i).applied_index) or -1) < want then
                return false
            end
        end
        return true
    end)
    return want
end

-- What went wrong on its own: a member that died although it was not killed, and the
-- sanitizers' reports (ASan, UBSan) or failed assertions in any node's log.
function Cluster:problems()
    local out = {}
    for _, i in ipairs(self:members_now()) do
        if not S.pid_alive(self.pids[i]) then
            out[#out + 1] = "node " .. i .. " died"
        end
    end
    for i = 1, self.n do
        local log = S.read_file(self.dir .. "/n" .. i .. ".log")
        local bad = log:match("[^\n]*AddressSanitizer[^\n]*") or log:match("[^\n]*runtime error:[^\n]*")
            or log:match("[^\n]*[Aa]ssertion[^\n]*failed[^\n]*")
        if bad then
            out[#out + 1] = "node " .. i .. ": " .. bad
        end
    end
    return out
end

-- Stops every node (a paused one is killed as it is), deletes the namespace (and with it
-- every rule), and removes the data unless keep.
function Cluster:teardown(keep)
    -- Every process in the namespace is this cluster's: its nodes and its clients.
    local pids = {}
    for pid in sh("ip netns pids " .. self.ns .. " 2>/dev/null"):gmatch("%d+") do
        pids[#pids + 1] = pid
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    for _, pid in ipairs(pids) do
        pcall(S.wait, 10, "process " .. pid .. " exit", function()
            return not S.pid_alive(pid)
        end)
    end
    self.pids, self.paused = {}, {}
    if self.driver then
        self.driver:close()
        self.driver = nil
    end
    os.execute("ip netns del " .. self.ns .. " 2>/dev/null")
    os.execute("kill " .. self.watchdog .. " 2>/dev/null")
    if not keep then
        os.execute("rm -rf " .. quote(self.dir))
    end
end

-- Starts the clients (spec/nemesis/driver.lua) in the cluster's namespace; returns an
-- object whose :next() gives each progress line as a table, and the verdict line last.
function Cluster:clients(opts)
    self:write_hosts()
    -- The sanitizer build's lincheck module needs the ASan runtime loaded first (ctest
    -- passes its path; spec/nemesis runs without LD_PRELOAD, see CMakeLists.txt).
    local env = N.ASAN ~= "" and ("LD_PRELOAD=" .. quote(N.ASAN) .. " ASAN_OPTIONS=detect_leaks=0")
        or ""
    local build = S.luaraft:match("^(.*)/[^/]*$")
    local cmd = self:exec(table.concat({
        "env", env, opts.env or "", "LUARAFT_BUILD_DIR=" .. quote(build), "lua5.4",
        quote(N.root .. "/spec/nemesis/driver.lua"), quote("@" .. self.dir .. "/hosts"), opts.clients,
        opts.keys, opts.ops, opts.seed, opts.timeout_ms, opts.think_ms or 0,
        quote(self.dir .. "/history.txt"), "2>>" .. quote(self.dir .. "/driver.err"),
    }, " "))
    local p = assert(io.popen(cmd, "r"))
    self.driver = p
    local d = { report = {} }
    function d.next()
        local line = p:read("l")
        if line == nil then
            return nil
        end
        local t = { line = line }
        for k, v in line:gmatch("([%w_]+)=(%S*)") do
            t[k] = tonumber(v) or v
        end
        t.verdict = line:match("^verdict (%S+)")
        if t.verdict then
            t.report = p:read("a")
        end
        return t
    end
    return d
end

return N
