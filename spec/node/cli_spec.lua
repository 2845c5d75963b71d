-- The command line contract of `luaraft`: --help explains every flag and exits 0, bad
-- usage (an unknown command or option) exits 2 and says what was wrong, --version names
-- the build and its libraries, a script that fails to load stops start-up with the Lua
-- error and exit code 1, before any port is opened; host names work where addresses go,
-- and one that does not resolve stops start-up naming it. Log lines are in the format of
-- src/util/log.h. Real processes on 127.0.0.1, started and stopped by PID.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local quote = S.quote

-- The time at the start of every log line (src/util/log.h): UTC with milliseconds.
local TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

-- A name that getaddrinfo refuses without asking any DNS server ('!' is no host name
-- character), so the spec stays on this machine.
local UNRESOLVABLE = "no!such!host"

local function run(args)
    local p = assert(io.popen(quote(S.luaraft) .. " " .. args .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, out
end

-- Seconds between a line's time and now, by the clock of this machine.
local function age_s(stamp)
    local t = tonumber(S.sh("date -u -d " .. quote(stamp) .. " +%s.%N"))
    assert(t, "date cannot read " .. stamp)
    return S.now() - t
end

-- Asserts that line is a log line of node id, at about the present time; returns its
-- message.
local function assert_log_line(line, id)
    local stamp, tag, msg = line:match("^(" .. TIME .. ") luaraft(%[?%d*%]?[^:]*): (.*)$")
    assert.truthy(stamp, "not in the log's format: " .. line)
    assert.truthy(tag == "[" .. id .. "]" or tag:match("^%[" .. id .. "%] term %d+$"),
        "not tagged with node " .. id .. ": " .. line)
    local age = age_s(stamp)
    assert.truthy(age > -5 and age < 120, "the time is " .. age .. " s off: " .. line)
    return msg
end

-- The first line of node i's log that contains text, or nil.
local function log_line(c, i, text)
    for line in S.read_file(c:log(i)):gmatch("[^\n]+") do
        if line:find(text, 1, true) then
            return line
        end
    end
end

describe("luaraft's command line", function()
    it("explains every flag with --help", function()
        local rc, out = run("node --help")
        assert.equal(0, rc)
        for _, flag in ipairs({ "--id", "--data", "--listen", "--raft", "--cluster", "--tick-ms",
            "--heartbeat-ticks", "--election-ticks", "--snapshot-entries",
            "--snapshot-trailing", "--map-size", "--peer-secret-file" }) do
            assert.truthy(out:find(flag, 1, true), flag .. " is not explained")
        end
    end)

    it("exits 2 on bad usage", function()
        assert.equal(2, (run("")))
        assert.equal(2, (run("node --id x --data /tmp/x --listen 127.0.0.1:1 --raft 127.0.0.1:2 s.lua")))
        assert.equal(2, (run("node --id 1 --data /tmp/x --listen nowhere --raft 127.0.0.1:2 s.lua")))
        assert.equal(2, (run("node --id 1 --data /tmp/x --listen 127.0.0.1:1 --raft 127.0.0.1:2")))
        assert.equal(2, (run("node --id 1 --data /tmp/x --listen 127.0.0.1:1 --raft 127.0.0.1:2 "
            .. "--cluster 1=bad s.lua")))
        assert.equal(2, (run("node --bogus")))
    end)

    it("names an unknown command, lists the commands and exits 2", function()
        local rc, out = run("foo")
        assert.equal(2, rc)
        assert.truthy(out:find("luaraft: unknown command 'foo'\n", 1, true), out)
        for _, cmd in ipairs({ "luaraft node", "luaraft cluster", "luaraft version" }) do
            assert.truthy(out:find(cmd, 1, true), cmd .. " is not listed: " .. out)
        end
    end)

    it("names the option it does not know, or that lacks its argument", function()
        local cases = {
            { "node --bogus", "luaraft: unknown option '--bogus'\n" },
            { "node --bogus=3 --id 1", "luaraft: unknown option '--bogus'\n" },
            { "node -x", "luaraft: unknown option '-x'\n" },
            { "node --data /tmp/x --id", "luaraft: option '--id' needs an argument\n" },
            { "node --snap 1", "luaraft: ambiguous option '--snap': it could be "
                .. "--snapshot-entries, --snapshot-trailing, --snapshot-bytes\n" },
        }
        for _, case in ipairs(cases) do
            local rc, out = run(case[1])
            assert.equal(2, rc, case[1])
            assert.truthy(out:find(case[2], 1, true), case[1] .. ": " .. out)
            assert.truthy(out:find("Try 'luaraft node --help'.", 1, true), out)
        end
    end)

    it("prints its version and the Lua, libuv and LMDB versions it was built with", function()
        local cmake = S.read_file(S.root .. "/CMakeLists.txt")
        local version = cmake:match("project%(luaraft VERSION ([%d.]+)")
        assert.truthy(version, "no VERSION in CMakeLists.txt's project()")
        for _, args in ipairs({ "--version", "version" }) do
            local rc, out = run(args)
            assert.equal(0, rc, out)
            assert.equal("luaraft " .. version, out:match("^([^\n]*)\n"))
            local built = out:match("\nbuilt with ([^\n]*)\n")
            assert.truthy(built, out)
            assert.truthy(built:match("^Lua 5%.4%.%d+, libuv %d+%.%d+%.%d+, LMDB %d+%.%d+%.%d+$"),
                built)
        end
    end)

    it("prints the Lua error and exits 1 when the script does not load", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write("local M = {}\nreturn M +\n")
        f:close()
        local dir = os.tmpname()
        os.remove(dir)
        local rc, out = run("node --id 1 --data " .. quote(dir)
            .. " --listen 127.0.0.1:1 --raft 127.0.0.1:2 --cluster 1=127.0.0.1:2 "
            .. quote(script))
        os.remove(script)
        os.execute("rm -rf " .. quote(dir))
        assert.equal(1, rc)
        assert.truthy(out:find("unexpected symbol", 1, true), out)
    end)
end)

describe("host names in addresses", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    -- Node i of c started with "localhost" in --listen, --raft and --cluster, its data in
    -- DIR/more/n<i>: DIR/more does not exist, and the node creates it too.
    local function start_named(i)
        local args = {
            quote(S.luaraft), "node", "--id", i, "--data", quote(c.dir .. "/more/n" .. i),
            "--listen", "localhost:" .. c:client_port(i), "--raft",
            "localhost:" .. c:peer_port(i), "--cluster", quote(c.members), quote(S.kv),
        }
        local cmd = table.concat(args, " ") .. " >>" .. quote(c:log(i)) .. " 2>&1 & echo $!"
        c.pids[i] = assert(tonumber(S.sh(cmd)), "no pid for node " .. i)
    end

    it("a 3-node cluster named by localhost elects a leader and serves SET and GET",
        function()
            c = S.cluster({ n = 3 })
            local members = {}
            for i = 1, 3 do
                members[i] = i .. "=localhost:" .. c:peer_port(i)
            end
            c.members = table.concat(members, ",")
            for i = 1, 3 do
                start_named(i)
            end
            local leader = c:wait_leader(15)
            -- The names were resolved at start-up: the node shows the numeric address.
            assert.equal("127.0.0.1:" .. c:client_port(leader), c:info(leader).leader_addr)
            local follower = leader % 3 + 1
            S.wait(10, "a SET through node " .. follower, function()
                return c:rc(follower, "SET", "greeting", "hello") == "OK"
            end)
            for i = 1, 3 do
                assert.equal("hello", c:rc(i, "GET", "greeting"))
            -- Every line a node wrote so far is in the log's format, with its id.
            for i = 1, 3 do
                for line in S.read_file(c:log(i)):gmatch("[^\n]+") do
                    assert_log_line(line, i)
                end
            end
                assert.truthy(S.read_file(c.dir .. "/more/n" .. i .. "/cluster"):find("localhost"))
            end

            -- A node that goes away: the others' transports log it, in the log's format
            -- and tagged with their own ids.
            c:kill(follower)
            for i = 1, 3 do
                if i ~= follower then
                    local line = S.wait(10, "node " .. i .. " logging the lost link", function()
                        return log_line(c, i, "connection to node " .. follower .. " lost")
                    end)
                    local msg = assert_log_line(line, i)
                    assert.truthy(msg:find("^[%a ]*connection to node " .. follower .. " lost: "),
                        line)
                end
            end
        end)

    it("stops start-up with a clear message when a name does not resolve", function()
        c = S.cluster({ n = 1 })
        local listen = UNRESOLVABLE .. ":" .. c:client_port(1)
        local rc, out = run("node --id 1 --data " .. quote(c.dir .. "/n1") .. " --listen "
            .. quote(listen) .. " --raft 127.0.0.1:" .. c:peer_port(1) .. " --cluster "
            .. quote(c.members) .. " " .. quote(S.kv))
        assert.equal(1, rc, out)
        local line = out:match("[^\n]*cannot resolve[^\n]*")
        assert.truthy(line, out)
        assert.equal("cannot start: --listen " .. listen .. ": cannot resolve host name '"
            .. UNRESOLVABLE .. "': ", assert_log_line(line, 1):match("^.*': "))

        -- A member of --cluster that does not resolve: named too, and no port opened.
        local members = "1=127.0.0.1:" .. c:peer_port(1) .. ",2=" .. UNRESOLVABLE .. ":7002"
        rc, out = run("node --id 1 --data " .. quote(c.dir .. "/n1") .. " --listen 127.0.0.1:"
            .. c:client_port(1) .. " --raft 127.0.0.1:" .. c:peer_port(1) .. " --cluster "
            .. quote(members) .. " " .. quote(S.kv))
        assert.equal(1, rc, out)
        line = out:match("[^\n]*cannot resolve[^\n]*")
        assert.truthy(line, out)
        assert.truthy(assert_log_line(line, 1):find("member 2: cannot resolve host name '"
            .. UNRESOLVABLE .. "'", 1, true), line)
        assert.truthy(S.port_free(c:client_port(1)) and S.port_free(c:peer_port(1)))
    end)
end)
