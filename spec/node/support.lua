-- Shared by the spec/node specs (loaded with dofile, so busted does not run it as a spec):
-- real luaraft processes on loopback, started and stopped by PID, with temporary data
-- directories, free ports picked here, and redis-cli as the client. Every wait polls a
-- predicate until a bounded deadline; nothing sleeps to synchronize.
local S = {}

S.root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/node/[^/]*$") or "."

local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = S.root .. "/build"
end
S.luaraft = build .. "/luaraft"
S.kv = S.root .. "/examples/kv.lua"

local function sh(cmd)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    return out
end

local function quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
S.quote = quote

-- Wall-clock seconds with sub-second resolution (os.time() has whole seconds only).
function S.now()
    return tonumber(sh("date +%s.%N")) or os.time()
end

-- Polls pred() until it returns a true value or `seconds` pass; returns that value or
-- raises an error naming what did not happen. A short pause between polls keeps the
-- nodes' CPU free; it is not synchronization, the predicate is.
function S.wait(seconds, what, pred)
    local deadline = S.now() + seconds
    repeat
        local v = pred()
        if v then
            return v
        end
        os.execute("sleep 0.05")
    until S.now() > deadline
    error(what .. " did not happen within " .. seconds .. " s", 2)
end

local function port_free(port)
    -- A connect that fails means nothing listens there.
    return os.execute("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "' 2>/dev/null") ~= true
end

-- A base port b with b+first..b+first+n-1 (clients) and the same shifted by peer_offset
-- (peers) all free.
function S.free_ports(n, first, peer_offset)
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
    for _ = 1, 50 do
        -- Below Linux's ephemeral range (32768 and up), so no outgoing connection of a
        -- node can hold a port a later node of the run must listen on.
        local base = 10000 + math.random(0, 200) * 100
        local ok = true
        for i = first, first + n - 1 do
            ok = ok and port_free(base + i) and port_free(base + peer_offset + i)
        end
        if ok then
            return base
        end
    end
    error("no free ports")
end

-- A block of free ports: clients base+1..base+n, peers base+101..base+100+n.
local function pick_ports(n)
    return S.free_ports(n, 1, 100)
end

S.sh = sh
S.port_free = port_free

-- True while the process runs (a zombie still answers kill -0; ask ps for its state). ps
-- runs without the sanitizer build's preloaded ASan runtime, which it can deadlock with
-- (a spec_node run hung for 15 minutes in `ps -o stat=` under LD_PRELOAD).
function S.pid_alive(pid)
    local state = sh("env -u LD_PRELOAD ps -o stat= -p " .. pid .. " 2>/dev/null")
    return state ~= "" and not state:match("^Z")
end

-- A whole file, or "" when it does not exist.
function S.read_file(path)
    local f = io.open(path, "rb")
    if f == nil then
        return ""
    end
    local text = f:read("a")
    f:close()
    return text
end

local Cluster = {}
Cluster.__index = Cluster

-- S.cluster{n = 3, script = path, flags = {...}, env = {[i] = "VAR=value ..."}, spare = k,
-- password = "...", default_timeouts = true} -> a cluster object, nodes not started (env: the environment node i
-- starts with; spare: the ports of k more nodes are free too, for nodes that join with
-- Cluster:start_join; password: what c:rc and c:info authenticate with, given to the
-- nodes by the spec's own flags).
function S.cluster(opts)
    local c = setmetatable({}, Cluster)
    c.n = opts.n or 3
    c.script = opts.script or S.kv
    c.flags = {}
    -- Specs run on short timeouts (10 ms heartbeats, 100-200 ms elections) so that their
    -- failovers take a fraction of the node's defaults (50 ms, 500-1000 ms); a spec that
    -- names --election-ticks, or asks for default_timeouts, gets what it asks for.
    local own_timing = opts.default_timeouts
    for _, f in ipairs(opts.flags or {}) do
        own_timing = own_timing or f == "--election-ticks"
    end
    if not own_timing then
        c.flags = { "--heartbeat-ticks", "1", "--election-ticks", "10" }
    end
    for _, f in ipairs(opts.flags or {}) do
        c.flags[#c.flags + 1] = f
    end
    c.env = opts.env
    c.password = opts.password
    c.joins = {}
    c.base = pick_ports(c.n + (opts.spare or 0))
    c.dir = sh("mktemp -d /tmp/luaraft-spec.XXXXXX"):gsub("%s+$", "")
    c.pids = {}
    local members = {}
    for i = 1, c.n do
        members[#members + 1] = i .. "=127.0.0.1:" .. c:peer_port(i)
    end
    c.members = table.concat(members, ",")
    return c
end

function Cluster:client_port(i)
    return self.base + i
end

function Cluster:peer_port(i)
    return self.base + 100 + i
end

-- Node i's data directory: DIR/n<i>, or c.data_dirs[i] when a spec sets it (spec/power/
-- puts them on faultfs).
function Cluster:data_dir(i)
    return self.data_dirs and self.data_dirs[i] or self.dir .. "/n" .. i
end

function Cluster:log(i)
    return self.dir .. "/n" .. i .. ".log"
end

-- The shell command that runs node i, its output appended to its log.
function Cluster:node_command(i)
    local args = {
        self.env and self.env[i] and ("env " .. self.env[i]) or "",
        quote(S.luaraft), "node", "--id", i, "--data", quote(self:data_dir(i)),
        "--listen", "127.0.0.1:" .. self:client_port(i), "--raft",
        "127.0.0.1:" .. self:peer_port(i),
    }
    if self.joins[i] then
        args[#args + 1] = "--join 127.0.0.1:" .. self:client_port(self.joins[i])
    else
        args[#args + 1] = "--cluster " .. self.members
    end
    for _, f in ipairs(self.flags) do
        args[#args + 1] = quote(f)
    end
    args[#args + 1] = quote(self.script)
    return table.concat(args, " ") .. " >>" .. quote(self:log(i)) .. " 2>&1"
end

function Cluster:start(i)
    assert(self.pids[i] == nil, "node " .. i .. " is running")
    self.pids[i] = assert(tonumber(sh(self:node_command(i) .. " & echo $!")), "no pid for node " .. i)
end

-- Starts node i (one of the spare ones, or one started so before) with --join through
-- node via's client port instead of --cluster; the cluster counts it from then on.
function Cluster:start_join(i, via)
    self.joins[i] = via
    self.n = math.max(self.n, i)
    self:start(i)
end

-- The ids of the nodes other than skip.
function Cluster:others(skip)
    local out = {}
    for i = 1, self.n do
        if i ~= skip then
            out[#out + 1] = i
        end
    end
    return out
end

function Cluster:start_all()
    for i = 1, self.n do
        self:start(i)
    end
end

function Cluster:alive(i)
    local pid = self.pids[i]
    if pid == nil then
        return false
    end
    return S.pid_alive(pid)
end

-- kill -9 node i and reap it.
function Cluster:kill(i)
    local pid = assert(self.pids[i], "node " .. i .. " is not running")
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    S.wait(10, "node " .. i .. " exit", function()
        return not self:alive(i)
    end)
    self.pids[i] = nil
end

-- Stops every node (SIGTERM, then SIGKILL after a deadline) and removes the data.
function Cluster:stop()
    for i = 1, self.n do
        if self.pids[i] then
            os.execute("kill -TERM " .. self.pids[i] .. " 2>/dev/null")
        end
    end
    for i = 1, self.n do
        if self.pids[i] then
            local ok = pcall(S.wait, 10, "node " .. i .. " stop", function()
                return not self:alive(i)
            end)
            if not ok then
                os.execute("kill -9 " .. self.pids[i] .. " 2>/dev/null")
            end
            self.pids[i] = nil
        end
    end
    if os.getenv("LUARAFT_SPEC_KEEP") then
        io.stderr:write("kept " .. self.dir .. "\n")
    else
        os.execute("rm -rf " .. quote(self.dir))
    end
end

-- Runs one command with redis-cli against node i; returns its output without the
-- trailing newline.
function Cluster:rc(i, ...)
    local args = { "timeout 5 redis-cli -p", self:client_port(i) }
    if self.password then
        table.insert(args, 1, "REDISCLI_AUTH=" .. quote(self.password))
    end
    for _, a in ipairs({ ... }) do
        args[#args + 1] = quote(a)
    end
    return (sh(table.concat(args, " ") .. " 2>&1"):gsub("\n$", ""))
end

-- RAFT.INFO's text as a table of its fields.
function S.parse_info(text)
    local t = {}
    for line in text:gmatch("[^\r\n]+") do
        local k, v = line:match("^([%w_]+):(.*)$")
        if k then
            t[k] = v
        end
    end
    return t
end

-- RAFT.INFO of node i as a table (empty when it does not answer).
function Cluster:info(i)
    return S.parse_info(self:rc(i, "RAFT.INFO"))
end

-- The id of the running node that says it leads, or nil.
function Cluster:leader()
    for i = 1, self.n do
        if self.pids[i] and self:info(i).role == "leader" then
            return i
        end
    end
    return nil
end

function Cluster:wait_leader(seconds)
    return S.wait(seconds or 10, "a leader", function()
        return self:leader()
    end)
end

-- Sends raw bytes to a port and closes the connection.
function S.send_raw(port, bytes)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(bytes)
    f:close()
    os.execute("timeout 2 bash -c 'cat " .. quote(path) .. " >/dev/tcp/127.0.0.1/" .. port
        .. "' 2>/dev/null")
    os.remove(path)
end

return S
