-- Backups as real processes, as the README's walk-through does them: RAFT.BACKUP on the
-- leader of a 3-node cluster of examples/kv.lua, `luaraft restore` of that one file into
-- the data directory of every node of a new cluster, and the new cluster serving the
-- state as of the backup.
--
-- What it catches: a backup that misses writes acknowledged before the command, or holds
-- writes made after it; a backup that cannot be restored, or restores elsewhere in the log
-- than its index (the restored nodes must agree with each other and take new writes);
-- restore into a directory that is not empty; a corrupt backup restored, or leaving a
-- snapshot behind; a restored backup started with another script; a bad path that
-- stops the node from serving.
--
-- What it cannot catch: a backup that is not durable (nothing here loses power: the page
-- cache survives a kill); a copy that races a snapshot prune (the copies here are fast).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

-- Runs a shell command; returns its output and whether it exited 0.
local function run(cmd)
    local p = assert(io.popen(cmd .. " 2>&1", "r"))
    local out = p:read("a")
    local ok = p:close()
    return out, ok == true
end

local function restore(backup, dir)
    return run(S.quote(S.luaraft) .. " restore " .. S.quote(backup) .. " --data " .. S.quote(dir))
end

-- Sends the commands (one per line) through one redis-cli; returns its output.
local function batch(port, lines)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local out = run("timeout 20 redis-cli -p " .. port .. " < " .. S.quote(path))
    os.remove(path)
    return out
end

local function started(n)
    local c = S.cluster { n = n or 3 }
    c:start_all()
    local leader = c:wait_leader(20)
    return c, leader
end

describe("RAFT.BACKUP and luaraft restore", function()
    it("restore into a new cluster the state as of the backup, on every node", function()
        local c, leader = started()
        local lines = { "HSET h a 1 b 2", "RPUSH l x y z", "ZADD z 1 one 2 two" }
        for i = 1, 200 do
            lines[#lines + 1] = "SET k" .. i .. " v" .. i
        end
        batch(c:client_port(leader), lines)
        local backup = c.dir .. "/backup.lrb"
        local out = c:rc(leader, "RAFT.BACKUP", backup)
        local index = tonumber(out:match("^OK backup of index (%d+) %(term %d+%), %d+ bytes, in "))
        assert(index, out)
        -- After the backup: not in it.
        assert.equals("OK", c:rc(leader, "SET", "after", "1"))
        -- Every node of the new cluster from the same file.
        local d = S.cluster { n = 3 }
        for i = 1, 3 do
            local said, ok = restore(backup, d.dir .. "/n" .. i)
            assert(ok, said)
            assert.truthy(said:find("restored index " .. index, 1, true), said)
        end
        local said, ok = restore(backup, d.dir .. "/n1")
        assert.is_false(ok)
        assert.truthy(said:find("is not empty", 1, true), said)
        c:stop()

        d:start_all()
        local l2 = d:wait_leader(20)
        for i = 1, 3 do
            S.wait(20, "node " .. i .. " serves the restored state", function()
                return d:rc(i, "GET", "k200") == "v200"
            end)
            assert.equals("203", d:rc(i, "DBSIZE"))
            assert.equals("v1", d:rc(i, "GET", "k1"))
            assert.equals("", d:rc(i, "GET", "after"))
            assert.equals("a\n1\nb\n2", d:rc(i, "HGETALL", "h"))
            assert.equals("x\ny\nz", d:rc(i, "LRANGE", "l", "0", "-1"))
            assert.equals("one\ntwo", d:rc(i, "ZRANGE", "z", "0", "-1"))
            assert.truthy(tonumber(d:info(i).commit_index) >= index)
        end
        -- It goes on from there: a new write reaches every node.
        assert.equals("OK", d:rc(l2, "SET", "new", "yes"))
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " has the new write", function()
                return d:rc(i, "GET", "new") == "yes"
            end)
        end
        d:stop()
    end)

    it("refuses a corrupt backup, a bad path, and another script", function()
        local c, leader = started()
        assert.equals("OK", c:rc(leader, "SET", "k", "v"))
        assert.truthy(c:rc(leader, "RAFT.BACKUP", ""):find("needs the path", 1, true))
        assert.truthy(c:rc(leader, "RAFT.BACKUP", c.dir .. "/no/such/dir/b"):find(
            "^ERR backup failed: cannot create"))
        assert.equals("v", c:rc(leader, "GET", "k")) -- the node goes on serving
        local backup = c.dir .. "/b.lrb"
        assert.truthy(c:rc(leader, "RAFT.BACKUP", backup):find("^OK backup of index"))
        -- A byte flipped in the middle of the snapshot it holds.
        local f = assert(io.open(backup, "r+b"))
        local size = f:seek("end")
        f:seek("set", size // 2)
        local byte = f:read(1)
        f:seek("set", size // 2)
        f:write(string.char((byte:byte() + 1) % 256))
        f:close()
        local dir = c.dir .. "/restored"
        local said, ok = restore(backup, dir)
        assert.is_false(ok)
        assert.truthy(said:find("corrupt", 1, true), said)
        assert.equals("", (run("ls -A " .. S.quote(dir)))) -- nothing left behind
        -- A good backup started with another script: refused, saying which.
        local d = S.cluster { n = 1, script = S.root .. "/examples/counter.lua" }
        local good = d.dir .. "/good.lrb"
        assert.truthy(c:rc(leader, "RAFT.BACKUP", good):find("^OK backup of index"))
        c:stop()
        local said2, ok2 = restore(good, d.dir .. "/n1")
        assert(ok2, said2)
        d:start(1)
        S.wait(10, "the node refuses the restored directory", function()
            return not d:alive(1)
        end)
        d.pids[1] = nil
        assert.truthy(S.read_file(d:log(1)):find("holds a snapshot of script kv.lua", 1, true))
        d:stop()
    end)
end)
