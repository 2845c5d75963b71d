-- A node whose data directory was damaged while it was stopped. Damage it can recover
-- from (a stored log entry, LMDB's pages, a snapshot file) is spec/node/bitflip_spec.lua:
-- the node moves the damaged files aside and catches up from the leader. The one case it
-- refuses (src/node/runtime_recover.c): a hard state (term, vote) that fails its checksum,
-- since it could then vote twice in a term. The flip is made after a kill -9, in every
-- copy of the record the file holds (LMDB's copy-on-write leaves stale copies of a page
-- behind), so the page the node reads is damaged whichever it is; the directory must be
-- left as it was (nothing moved: the operator decides).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local ELECTION_S = 10

-- Flips the low byte of the term in every copy of the hard state record: LMDB keeps a
-- small value right after its key in the leaf page, and the value is a version byte, then
-- the term (8 bytes, big-endian). Returns the count.
local function flip_hard_states(path)
    local f = assert(io.open(path, "r+b"))
    local s = f:read("a")
    local n, from = 0, 1
    while true do
        local at = s:find("hard_state", from, true)
        if at == nil then
            break
        end
        local off = at - 1 + #"hard_state" + 8
        f:seek("set", off)
        f:write(string.char(s:byte(off + 1) ~ 0x04))
        n = n + 1
        from = at + 1
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

    it("with a damaged hard state makes the node refuse to start, saying why; nothing moved",
        function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = c:wait_leader(ELECTION_S)
        assert.are.equal("OK", c:rc(leader, "SET", "k", "v"))
        local f = leader % 3 + 1
        S.wait(ELECTION_S, "node " .. f .. " applied the SET", function()
            return c:rc(f, "GET", "k") == "v"
        end)
        c:kill(f)
        local dir = c:data_dir(f)
        assert.is_true(flip_hard_states(dir .. "/data.mdb") >= 1, "no hard state in data.mdb")
        c:start(f)
        S.wait(ELECTION_S, "node " .. f .. " exits", function()
            return not c:alive(f)
        end)
        c.pids[f] = nil
        local log = S.read_file(c:log(f))
        assert.truthy(log:find("meta record hard_state fails its checksum", 1, true), log)
        assert.truthy(log:find("the hard state (term and vote) in " .. dir
            .. " cannot be read, so this node cannot know which vote it gave", 1, true), log)
        assert.truthy(log:find("RAFT.REMOVE " .. f, 1, true), log)
        assert.are.equal("", S.sh("ls " .. S.quote(dir) .. " | grep -e corrupt- -e recovering"
            .. " || true"):gsub("%s+$", ""))
        assert.is_truthy(io.open(dir .. "/data.mdb", "rb"), "data.mdb was moved")
        for i = 1, 3 do
            if i ~= f then
                assert.are.equal("v", c:rc(i, "GET", "k"), "node " .. i)
            end
        end
    end)
end)
