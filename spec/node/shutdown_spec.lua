-- A node's start-up and stop as real processes (issue 7): the temporaries a crash left
-- in the data directory are removed at start-up (src/node/runtime.c, remove_temporaries;
-- the names are in src/store/snapfile.h); a failed snapshot child is reported with what
-- its exit status or signal means (try_reap; the statuses are fsm/worker.c's
-- child_exit_*); and a node stopped while its fsm thread runs a read answers that read
-- with its result (stop and fsm_worker_stop drain the fsm thread first: "shutdown drops
-- finished query results without answering").
--
-- What it catches: leftovers kept (they were never removed), files that are not
-- temporaries removed with them, a start-up that says nothing about what it removed; a
-- failed snapshot logged without its cause; a stop that frees the results the fsm
-- thread finished while the loop waited for it (the client's connection was closed
-- unanswered), or answers them with the node's "going away" error instead.
--
-- What it cannot catch: the exit statuses no script can provoke on purpose (a file that
-- cannot be created, a failed fsync or rename, an orphaned child); a leftover that a
-- live second process on the same directory is still writing (snapfile_cleanup's
-- contract forbids that setup, and nothing enforces it); a read that ends in the instant
-- between the SIGTERM and the drain (its result goes the normal way; the spec checks
-- that the reply came after the SIGTERM, so such a run fails loudly instead of passing
-- by luck); reads that the drain's last applies make servable (they run in
-- fsm_worker_stop too, but no outside timing reaches that window on purpose).
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

-- SLOW n spins n rounds that each build a 128 KiB string (about half a millisecond, and
-- a handful of instructions, far below the instruction budget), then answers with the
-- value: a read that keeps the fsm thread busy for seconds.
local SCRIPT = [==[
local M = { reads = { SLOW = true, GET = true } }
local value = ""
function M.apply(cmd)
    if cmd[1]:upper() == "SET" and #cmd == 2 then
        value = cmd[2]
        return { ok = "OK" }
    end
    error("usage: SET v | GET | SLOW n")
end
function M.query(cmd)
    if cmd[1]:upper() == "SLOW" then
        for _ = 1, math.tointeger(tonumber(cmd[2])) do
            local _ = string.rep("x", 1 << 17)
        end
        return "slow " .. value
    end
    return value
end
function M.snapshot(w) w:write(value) end
function M.restore(r) value = r:read() or "" end
return M
]==]
local ROUNDS = 6000

describe("a node stopping", function()
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

    it("answers a read the fsm thread is running when SIGTERM arrives with its result", function()
        script = script_file(SCRIPT)
        -- SLOW asks for ROUNDS x 128 KiB of strings in all (garbage at once, but the
        -- per-command memory budget counts bytes asked for): room for them.
        c = S.cluster({ n = 1, script = script, flags = { "--lua-command-memory", "2G" } })
        c:start(1)
        c:wait_leader(10)
        assert.equal("OK", c:rc(1, "SET", "v1"))

        -- The slow read in the background; its reply and the time it came go to a file.
        local out = c.dir .. "/slow.out"
        os.execute("(timeout 60 redis-cli -p " .. c:client_port(1) .. " SLOW " .. ROUNDS
            .. " >" .. S.quote(out) .. " 2>&1; date +%s.%N >>" .. S.quote(out) .. ") &")
        -- The fsm thread is busy with it once a quick read queued behind it gets no answer.
        S.wait(10, "the slow read running", function()
            return S.sh("timeout 0.5 redis-cli -p " .. c:client_port(1) .. " GET 2>&1") == ""
        end)
        local killed_at = S.now()
        os.execute("kill -TERM " .. c.pids[1])
        S.wait(60, "the node stopping", function()
            return not c:alive(1)
        end)
        c.pids[1] = nil

        local text = S.wait(10, "the slow read's client ending", function()
            local t = S.read_file(out)
            return t:find("^.*\n%d+%.%d+\n$") and t
        end)
        local reply, answered_at = text:match("^(.*)\n(%d+%.%d+)\n$")
        assert.equal("slow v1", reply, "the node's log:\n" .. S.read_file(c:log(1)))
        assert.is_true(tonumber(answered_at) > killed_at,
            "the read was answered before the SIGTERM: make SLOW take longer than "
                .. ROUNDS .. " rounds")
        assert.truthy(S.read_file(c:log(1)):find("stopped", 1, true))
    end)
end)
