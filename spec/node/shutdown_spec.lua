-- A node's start-up and stop as real processes (issue 7): the temporaries a crash left
-- in the data directory are removed at start-up (src/node/runtime.c, remove_temporaries;
-- the names are in src/store/snapfile.h), and a failed snapshot child is reported with
-- what its exit status or signal means (try_reap; the statuses are fsm/worker.c's
-- child_exit_*).
--
-- What it catches: leftovers kept (they were never removed: issue 7), files that are not
-- temporaries removed with them, a start-up that says nothing about what it removed; a
-- failed snapshot logged without its cause.
--
-- What it cannot catch: the exit statuses no script can provoke on purpose (a file that
-- cannot be created, a failed fsync or rename, an orphaned child); a leftover that a
-- live second process on the same directory is still writing (snapfile_cleanup's
-- contract forbids that setup, and nothing enforces it).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

-- Writes a small script to a temporary file and returns its path.
local function script_file(text)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

local function write_file(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

describe("a node starting", function()
    local c, script

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
        if script then
            os.remove(script)
            script = nil
        end
    end)

    it("removes the temporaries a crash left, and only those", function()
        c = S.cluster({ n = 1 })
        local dir = c.dir .. "/n1"
        os.execute("mkdir -p " .. S.quote(dir))
        local leftovers = { "snap-7-1.lrs.tmp", "incoming-2-3.part" }
        for _, name in ipairs(leftovers) do
            write_file(dir .. "/" .. name, "torn")
        end
        write_file(dir .. "/notes.txt", "not the node's")
        c:start(1)
        c:wait_leader(10)
        for _, name in ipairs(leftovers) do
            assert.equal("", S.read_file(dir .. "/" .. name), name .. " is still there")
        end
        assert.equal("not the node's", S.read_file(dir .. "/notes.txt"))
        assert.truthy(S.read_file(c:log(1)):find(
            "removed 2 temporary snapshot file(s) a crash left in " .. dir, 1, true))
    end)

    it("says why a snapshot child failed: its exit status, or the signal that ended it",
        function()
            script = script_file([==[
local M = { reads = { GET = true } }
local v, spin = "", 0
function M.apply(cmd)
    if cmd[1]:upper() == "SPIN" then spin = math.tointeger(tonumber(cmd[2])) end
    v = cmd[2] or ""
    return { ok = "OK" }
end
function M.query() return v end
function M.snapshot(w)
    if spin < 0 then error("this snapshot fails") end
    for i = 1, spin do if i % 1000000 == 0 then w:write("x") end end
end
function M.restore(r) end
return M
]==])
            c = S.cluster({ n = 1, script = script, flags = { "--snapshot-entries", "0" } })
            c:start(1)
            c:wait_leader(10)
            assert.equal("OK", c:rc(1, "SPIN", "-1"))
            assert.truthy(c:rc(1, "RAFT.SNAPSHOT"):find("snapshot failed", 1, true))
            assert.truthy(S.read_file(c:log(1)):find(
                "failed: the child exited with status 2: M.snapshot raised an error", 1, true))

            -- A child that spins for minutes, killed from outside.
            assert.equal("OK", c:rc(1, "SPIN", "100000000000"))
            os.execute("timeout 60 redis-cli -p " .. c:client_port(1)
                .. " RAFT.SNAPSHOT >/dev/null 2>&1 &")
            local child = S.wait(10, "the node forking its snapshot child", function()
                return tonumber(S.sh("ps -o pid= --ppid " .. c.pids[1]):match("%d+"))
            end)
            os.execute("kill -9 " .. child)
            S.wait(10, "the node reporting the killed child", function()
                return S.read_file(c:log(1)):find("failed: the child was killed by signal 9",
                    1, true)
            end)
        end)
end)
