-- Shared by the spec/clients specs (loaded with dofile, so busted does not run it as a
-- spec): spec/node/support.lua's real clusters, plus running the client drivers of this
-- directory (redis_py.py with Debian's /usr/bin/python3 and its python3-redis; ioredis.js
-- and node_redis.js with node and the packages scripts/client-deps.sh installs into
-- BUILD/npm/node_modules). Every wait polls with a bounded deadline.
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/")
local S = dofile(here .. "/../node/support.lua")

S.clients_dir = here

-- ps can deadlock with the sanitizer build's ASan runtime preloaded (CMakeLists.txt gives
-- the spec directories that load no C module no LD_PRELOAD for that reason): ask it
-- without. The cluster's methods (kill, alive) look S.pid_alive up when they run.
function S.pid_alive(pid)
    local state = S.sh("env -u LD_PRELOAD ps -o stat= -p " .. pid .. " 2>/dev/null")
    return state ~= "" and not state:match("^Z")
end
local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = S.root .. "/build"
end
S.node_path = build .. "/npm/node_modules"
S.python = "/usr/bin/python3"

local quote = S.quote

-- The command line of a driver: "py", "ioredis" or "node_redis", a check and its ports.
local function driver_cmd(driver, check, ports)
    local args
    if driver == "py" then
        args = { "env -u LD_PRELOAD", S.python, quote(here .. "/redis_py.py"), quote(check) }
    else
        args = { "env -u LD_PRELOAD", "NODE_PATH=" .. quote(S.node_path), "node", quote(here .. "/" .. driver .. ".js"),
            quote(check) }
    end
    for _, p in ipairs(ports) do
        args[#args + 1] = tostring(p)
    end
    return table.concat(args, " ")
end

-- Runs a shell command with a time limit; returns its output (stdout and stderr) and
-- whether it exited 0.
function S.run(cmd, seconds)
    local p = assert(io.popen("timeout -k 5 " .. (seconds or 60) .. " " .. cmd .. " 2>&1", "r"))
    local out = p:read("a")
    local ok = p:close()
    return out, ok == true
end

-- The drivers run without the sanitizer build's LD_PRELOAD: they are clients, not ours.

-- Runs driver's check against ports (a list); returns its output and whether it printed
-- "ok CHECK" and exited 0.
function S.drive(driver, check, ports, seconds)
    local out, ok = S.run(driver_cmd(driver, check, ports), seconds or 60)
    return out, ok and out:find("ok " .. check, 1, true) ~= nil
end

-- Asserts that the check passed, showing the driver's output when it did not.
function S.assert_drive(driver, check, ports, seconds)
    local out, ok = S.drive(driver, check, ports, seconds)
    assert(ok, driver .. " " .. check .. " failed:\n" .. out)
    return out
end

-- Starts driver's check in the background with env (a table); its output goes to a file.
-- Returns an object with :output(), :running(), :exit_code() and :stop().
function S.background(driver, check, ports, env, seconds)
    local dir = S.sh("mktemp -d /tmp/luaraft-client.XXXXXX"):gsub("%s+$", "")
    local out = dir .. "/out"
    local vars = {}
    for k, v in pairs(env or {}) do
        vars[#vars + 1] = k .. "=" .. quote(v)
    end
    local inner = "env " .. table.concat(vars, " ") .. " timeout -k 5 " .. (seconds or 90) .. " "
        .. driver_cmd(driver, check, ports) .. " >" .. quote(out) .. " 2>&1; echo EXIT:$? >>"
        .. quote(out)
    local pid = assert(tonumber(S.sh("bash -c " .. quote(inner) .. " >/dev/null 2>&1 & echo $!")))
    local b = { pid = pid, dir = dir }
    function b.output()
        return S.read_file(out)
    end
    function b.exit_code()
        return tonumber(b.output():match("EXIT:(%d+)"))
    end
    function b.running()
        return b.exit_code() == nil
    end
    function b.stop()
        if b.running() then
            os.execute("kill " .. pid .. " 2>/dev/null")
        end
        os.execute("rm -rf " .. quote(dir))
    end
    return b
end

-- The client ports of a cluster's running nodes.
function S.ports(c)
    local out = {}
    for i = 1, c.n do
        if c.pids[i] then
            out[#out + 1] = c:client_port(i)
        end
    end
    return out
end

-- A running node other than the leader.
function S.follower(c, leader)
    for i = 1, c.n do
        if i ~= leader and c.pids[i] then
            return i
        end
    end
    error("no follower")
end

-- Starts a 3-node cluster of examples/kv.lua and waits until a leader is known and every
-- node knows it (so that any node serves commands).
function S.started_cluster(opts)
    local c = S.cluster(opts or { n = 3 })
    c:start_all()
    local leader = c:wait_leader(20)
    S.wait(20, "every node knows the leader", function()
        for i = 1, c.n do
            if c:info(i).leader_id ~= tostring(leader) then
                return false
            end
        end
        return true
    end)
    return c, leader
end

-- Inside a describe: one cluster (S.started_cluster) for all its tests, started by busted's
-- setup and stopped by its teardown (pass them: they are the spec's, not globals here).
-- Returns a table whose c, leader and follower fields are set once it runs.
function S.shared_cluster(setup, teardown)
    local env = {}
    setup(function()
        env.c, env.leader = S.started_cluster()
        env.follower = S.follower(env.c, env.leader)
    end)
    teardown(function()
        if env.c then
            env.c:stop()
        end
    end)
    return env
end

-- The ports a driver's check gets for a target: "leader" (then a follower), "follower"
-- (then the leader) or "all".
local function target_ports(env, target)
    local c = env.c
    if target == "leader" then
        return { c:client_port(env.leader), c:client_port(env.follower) }
    elseif target == "follower" then
        return { c:client_port(env.follower), c:client_port(env.leader) }
    end
    assert(target == "all", "unknown target " .. tostring(target))
    return S.ports(c)
end

-- The tests of one client library (driver) on one shared cluster: busted's describe, it,
-- setup and teardown, then a name and a list of {test name, check, targets}, each test
-- running the check against each of its targets in turn.
function S.client_tests(b, name, driver, tests)
    b.describe(name, function()
        local env = S.shared_cluster(b.setup, b.teardown)
        for _, t in ipairs(tests) do
            b.it(t[1], function()
                for _, target in ipairs(t[3]) do
                    S.assert_drive(driver, t[2], target_ports(env, target))
                end
            end)
        end
    end)
end

-- Runs redis-cli against port with args (a list) and stdin (a string or nil); returns
-- its output and whether it exited 0.
function S.redis_cli(port, args, stdin, seconds)
    local cmd = { "redis-cli", "-p", tostring(port) }
    for _, a in ipairs(args) do
        cmd[#cmd + 1] = quote(a)
    end
    local line = table.concat(cmd, " ")
    if stdin then
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        f:write(stdin)
        f:close()
        local out, ok = S.run(line .. " <" .. quote(path), seconds or 60)
        os.remove(path)
        return out, ok
    end
    return S.run(line, seconds or 60)
end

return S
