-- The command line contract of `luaraft node`: --help explains every flag and exits 0, bad
-- usage exits 2 with a hint, and a script that fails to load stops start-up with the Lua
-- error and exit code 1, before any port is opened.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local function run(args)
    local p = assert(io.popen(S.quote(S.luaraft) .. " " .. args .. " 2>&1; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)%s*$"))
    return rc, out
end

describe("luaraft node's command line", function()
    it("explains every flag with --help", function()
        local rc, out = run("node --help")
        assert.equal(0, rc)
        for _, flag in ipairs({ "--id", "--data", "--listen", "--raft", "--cluster", "--tick-ms",
            "--heartbeat-ticks", "--election-ticks", "--snapshot-entries",
            "--snapshot-trailing", "--map-size" }) do
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

    it("prints the Lua error and exits 1 when the script does not load", function()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write("local M = {}\nreturn M +\n")
        f:close()
        local dir = os.tmpname()
        os.remove(dir)
        local rc, out = run("node --id 1 --data " .. S.quote(dir)
            .. " --listen 127.0.0.1:1 --raft 127.0.0.1:2 --cluster 1=127.0.0.1:2 "
            .. S.quote(script))
        os.remove(script)
        os.execute("rm -rf " .. S.quote(dir))
        assert.equal(1, rc)
        assert.truthy(out:find("unexpected symbol", 1, true), out)
    end)
end)
