-- A node whose data directory was damaged while it was stopped (bytes of a stored log
-- entry flipped in data.mdb) refuses to start and says so, instead of serving the
-- altered value (issue 11: it used to serve it silently); the others serve the value as
-- written. The flip is made after a kill -9, in every copy of the entry's bytes the file
-- holds (LMDB's copy-on-write leaves stale copies of a page behind), so the page the node
-- reads is damaged whichever it is. What this cannot see: damage to LMDB's own page
-- structure, which LMDB does not checksum (spec/store/checksum_spec.lua covers the
-- records; a damaged B-tree may still crash LMDB).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local ELECTION_S = 10

local function flip_all(path, marker)
    local f = assert(io.open(path, "r+b"))
    local s = f:read("a")
    local n = 0
    local from = 1
    while true do
        local at = s:find(marker, from, true)
        if at == nil then
            break
        end
        -- The middle of the marker: inside the payload whichever record layout holds it.
        local off = at - 1 + #marker // 2
        f:seek("set", off)
        f:write(string.char(s:byte(off + 1) ~ 0x20))
        n = n + 1
        from = at + #marker
    end
    f:close()
    return n
end

describe("a damaged data directory", function()
    local c
    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("makes the node refuse to start, naming the damage; the others serve the value", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        local value = "damage-marker-" .. string.rep("0123456789", 300)
        assert.are.equal("OK", c:rc(leader, "SET", "k", value))
        local f = leader % 3 + 1
        S.wait(ELECTION_S, "node " .. f .. " applied the SET", function()
            return c:rc(f, "GET", "k") == value
        end)
        c:kill(f)
        local copies = flip_all(c.dir .. "/n" .. f .. "/data.mdb", value)
        assert.is_true(copies >= 1, "the value is not in node " .. f .. "'s data.mdb")
        c:start(f)
        S.wait(ELECTION_S, "node " .. f .. " exits", function()
            return not c:alive(f)
        end)
        c.pids[f] = nil
        local log = S.read_file(c:log(f))
        assert.matches("fails its checksum", log)
        assert.matches("the data directory is damaged", log)
        for i = 1, 3 do
            if i ~= f then
                assert.are.equal(value, c:rc(i, "GET", "k"), "node " .. i)
            end
        end
    end)

    -- A snapshot file damaged while the node was stopped, the log compacted up to it: the
    -- node cannot start, and says which file is damaged rather than only that the log
    -- does not reach back far enough.
    it("with a damaged snapshot file makes the node refuse to start, naming the file", function()
        c = S.cluster({ n = 3, flags = { "--snapshot-trailing", "0" } })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        for k = 1, 20 do
            assert.are.equal("OK", c:rc(leader, "SET", "k" .. k, "v" .. k))
        end
        local f = leader % 3 + 1
        S.wait(ELECTION_S, "node " .. f .. " applied the SETs", function()
            return c:rc(f, "GET", "k20") == "v20"
        end)
        assert.truthy(c:rc(f, "RAFT.SNAPSHOT"):find("^OK snapshot at index %d+"))
        c:kill(f)
        local dir = c.dir .. "/n" .. f
        local name = S.sh("ls " .. S.quote(dir) .. " | grep '^snap-.*\\.lrs$'"):gsub("%s+$", "")
        assert.truthy(name:find("^snap%-"), "no snapshot file in " .. dir)
        local path = dir .. "/" .. name
        local fh = assert(io.open(path, "r+b"))
        fh:seek("set", 40)
        local b = fh:read(1):byte()
        fh:seek("set", 40)
        fh:write(string.char(b ~ 0x01))
        fh:close()
        c:start(f)
        S.wait(ELECTION_S, "node " .. f .. " exits", function()
            return not c:alive(f)
        end)
        c.pids[f] = nil
        local log = S.read_file(c:log(f))
        assert.truthy(log:find("snapshot file " .. path .. " is damaged", 1, true), log)
        assert.matches("cannot be started from", log)
        assert.are.equal("v20", c:rc(leader, "GET", "k20"))
    end)
end)
