-- The script's identity (issue 7) as real processes: a data directory records the script
-- that made it (file name and BLAKE2b-256 of its content, src/store/snapfile.h), and so
-- does every snapshot file; a node started with another script refuses the directory,
-- or a snapshot in it, with a message that says what to do, and a node whose leader runs
-- another script refuses it, installs nothing of it and keeps running.
--
-- What it catches: a directory replayed silently into another script; a refusal that
-- writes to the directory it refuses (the right script must still start on it and find
-- its data); a refusal that does not name both scripts or what to do; a snapshot of
-- another script restored at start-up or installed from a leader; an identity that
-- RAFT.INFO shows wrong (the hash is checked against coreutils' b2sum -l 256).
--
-- What it cannot catch: a script edited between its load and its hashing (start-up reads
-- the file twice, a window of microseconds); nodes of one cluster that run different
-- scripts from the start (spec/node/script_check_spec.lua has that); a data directory made
-- before identities were recorded, which is adopted by whichever script starts on it
-- first.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local COUNTER = S.root .. "/examples/counter.lua"
local ELECTION_S = 10
local TOLD = "start with the script that made it, or use a new --data directory"

local function b2sum(path)
    return (S.sh("b2sum -l 256 " .. S.quote(path)):match("^(%x+)"))
end

-- "kv.lua (content 3f2a...)", as the node names a script in its messages.
local function named(path)
    return path:match("[^/]+$") .. " (content " .. b2sum(path):sub(1, 16) .. "...)"
end

-- Runs node i of c in the foreground with script on data directory dir (default: its
-- own); returns its exit status and everything it printed. A node that starts would run
-- until the timeout: the callers expect it to refuse at once.
local function run_refused(c, i, script, dir)
    local args = {
        "timeout 30", S.quote(S.luaraft), "node", "--id", i, "--data",
        S.quote(dir or (c.dir .. "/n" .. i)), "--listen", "127.0.0.1:" .. c:client_port(i),
        "--raft", "127.0.0.1:" .. c:peer_port(i), "--cluster", c.members, S.quote(script),
    }
    local out = S.sh(table.concat(args, " ") .. " 2>&1; echo \"exit:$?\"")
    local status = tonumber(out:match("exit:(%d+)%s*$"))
    return status, out
end

-- SIGTERM to node i, and its exit.
local function terminate(c, i)
    os.execute("kill -TERM " .. c.pids[i])
    S.wait(10, "node " .. i .. " stopping", function()
        return not c:alive(i)
    end)
    c.pids[i] = nil
end

local function files(dir, pattern)
    local out = {}
    for name in S.sh("ls -1 " .. S.quote(dir) .. " 2>/dev/null"):gmatch("[^\n]+") do
        if name:find(pattern) then
            out[#out + 1] = name
        end
    end
    return out
end

describe("the script's identity", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("refuses a data directory made by another script, which its own script still opens",
        function()
            c = S.cluster({ n = 1, script = S.kv })
            c:start(1)
            c:wait_leader(ELECTION_S)
            -- A snapshot and a log after it: both go back into kv.lua at the end.
            assert.equal("OK", c:rc(1, "SET", "a", "1"))
            assert.truthy(c:rc(1, "RAFT.SNAPSHOT"):find("^OK snapshot at index %d+"))
            assert.equal("OK", c:rc(1, "SET", "b", "2"))
            local info = c:info(1)
            assert.equal("kv.lua", info.script)
            assert.equal(b2sum(S.kv), info.script_hash)
            terminate(c, 1)

            local status, out = run_refused(c, 1, COUNTER)
            assert.equal(1, status, out)
            local want = "luaraft[1]: " .. c.dir .. "/n1 was made by script " .. named(S.kv)
                .. ", not by " .. named(COUNTER) .. ": " .. TOLD
            assert.truthy(out:find(want, 1, true), "wanted\n" .. want .. "\ngot\n" .. out)

            c:start(1)
            c:wait_leader(ELECTION_S)
            assert.equal("1", c:rc(1, "GET", "a"))
            assert.equal("2", c:rc(1, "GET", "b"))
            assert.equal("kv.lua", c:info(1).script)
        end)

    it("refuses a snapshot of another script that a data directory holds", function()
        c = S.cluster({ n = 1, script = S.kv })
        c:start(1)
        c:wait_leader(ELECTION_S)
        assert.equal("OK", c:rc(1, "SET", "a", "1"))
        assert.equal("OK", c:rc(1, "SET", "b", "2"))
        assert.truthy(c:rc(1, "RAFT.SNAPSHOT"):find("^OK snapshot at index %d+"))
        terminate(c, 1)
        -- A directory that holds the snapshot and nothing else: no store records a
        -- script, so only the snapshot's header can tell.
        local snaps = files(c.dir .. "/n1", "^snap%-%d+%-%d+%.lrs$")
        assert.equal(1, #snaps)
        local copy = c.dir .. "/copy"
        os.execute("mkdir " .. S.quote(copy) .. " && cp " .. S.quote(c.dir .. "/n1/" .. snaps[1])
            .. " " .. S.quote(copy))

        local status, out = run_refused(c, 1, COUNTER, copy)
        assert.equal(1, status, out)
        local want = "luaraft[1]: " .. copy .. " holds a snapshot of script " .. named(S.kv) .. " ("
            .. copy .. "/" .. snaps[1] .. "), not of " .. named(COUNTER) .. ": " .. TOLD
        assert.truthy(out:find(want, 1, true), "wanted\n" .. want .. "\ngot\n" .. out)

        -- Refused before anything was recorded: the next start, with the script that made
        -- the snapshot, finds no script in the store and records its own.
        os.execute("rm -rf " .. S.quote(c.dir .. "/n1") .. " && mv " .. S.quote(copy) .. " "
            .. S.quote(c.dir .. "/n1"))
        c:start(1)
        local log = S.wait(10, "kv.lua recording itself", function()
            local text = S.read_file(c:log(1))
            local at = text:find("stopped\n", 1, true) -- the first run's last line
            return text:find("recording script " .. named(S.kv), at, true) and text:sub(at)
        end)
        assert.is_nil(log:find("of script", 1, true), log)
    end)

    it("refuses a leader of another script, takes nothing from it and keeps running", function()
        -- The leader compacts its whole log behind each snapshot, so a fresh follower could
        -- only catch up through InstallSnapshot; a node of another script takes neither
        -- that nor entries: the members compare the scripts their directories were made
        -- with (src/node/script_check.c) and drop each other's messages. (The snapshot's
        -- own identity check, runtime_snapshot_ours, stays behind it.)
        c = S.cluster({ n = 3, script = S.kv,
                        flags = { "--snapshot-entries", "20", "--snapshot-trailing", "0" } })
        c:start(1)
        c:start(2)
        local leader = c:wait_leader(ELECTION_S)
        for k = 1, 50 do
            assert.equal("OK", c:rc(leader, "SET", "k" .. k, tostring(k)))
        end
        S.wait(ELECTION_S, "a snapshot on the leader", function()
            return tonumber(c:info(leader).snapshot_index or "0") >= 40
        end)
        c.script = COUNTER -- a misconfigured node 3
        c:start(3)
        local line = S.wait(ELECTION_S, "node 3 refusing the leader", function()
            return S.read_file(c:log(3)):match("[^\n]*REFUSED node " .. leader .. "[^\n]*")
        end)
        assert.truthy(line:find("made by script kv.lua (content " .. b2sum(S.kv):sub(1, 16)
            .. "...), this node's by counter.lua", 1, true), line)
        S.wait(ELECTION_S, "the leader refusing node 3", function()
            return S.read_file(c:log(leader)):find("REFUSED node 3: its data directory was made "
                .. "by script counter.lua", 1, true)
        end)
        local log = S.read_file(c:log(3))
        assert.is_nil(log:find("snapshot installed", 1, true))
        -- Refused each time it hears from them, logged once per interval (10 s): at most
        -- one more line in 2 s.
        local before = select(2, log:gsub("REFUSED node " .. leader, ""))
        os.execute("sleep 2")
        log = S.read_file(c:log(3))
        assert.is_true(select(2, log:gsub("REFUSED node " .. leader, "")) <= before + 1, log)
        assert.is_nil(log:find("leader changed: node " .. leader, 1, true), log)

        assert.is_true(c:alive(3))
        local info = c:info(3)
        assert.equal("counter.lua", info.script)
        assert.equal("0", info.snapshot_index)
        assert.equal("0", info.applied_index)
        assert.same({}, files(c.dir .. "/n3", "%.lrs"))
        assert.same({}, files(c.dir .. "/n3", "%.part$")) -- nothing streamed to it
        assert.equal("OK", c:rc(leader, "SET", "after", "1")) -- the cluster goes on
    end)
end)
