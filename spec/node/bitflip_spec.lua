-- Bit flips in a stopped follower's data directory (issue 11, part 4), on a real 3-node
-- cluster of examples/kv.lua: (a) its newest snapshot file, (b) the bytes of a known value
-- in a stored log entry in data.mdb, (c) 8 and 200 random bit flips anywhere in data.mdb,
-- over several seeds. After the restart the follower must not crash, must never serve a
-- wrong value (every GET it answers while it recovers is the leader's value), must end up
-- serving every key as the leader does, and must say in its log what it found.
--
-- What it cannot see: a flip that lands in free space or in a stale page copy changes
-- nothing (the node then just starts); the specs count how many runs found damage.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local WAIT_S = 30
local KEYS = 30
local SEEDS = tonumber(os.getenv("LUARAFT_BITFLIP_SEEDS") or "4")

local function value_of(k)
    return "bitflip-" .. k .. "-" .. string.rep(string.char(65 + k % 26), 200)
end

-- Flips bit `bit` of the byte at offset (0-based) of the open file f.
local function flip_bit(f, offset, bit)
    f:seek("set", offset)
    local b = f:read(1):byte()
    f:seek("set", offset)
    f:write(string.char(b ~ (1 << bit)))
end

-- Flips a byte in the middle of every copy of marker in the file; returns the count.
local function flip_marker(path, marker)
    local f = assert(io.open(path, "r+b"))
    local s = f:read("a")
    local n, from = 0, 1
    while true do
        local at = s:find(marker, from, true)
        if at == nil then
            break
        end
        flip_bit(f, at - 1 + #marker // 2, 5)
        n = n + 1
        from = at + #marker
    end
    f:close()
    return n
end

local function flip_random(path, count, seed)
    local f = assert(io.open(path, "r+b"))
    local size = f:seek("end")
    local rng = seed * 7919 + count
    local function next_rand(m) -- a small LCG: the same flips for a seed on every machine
        rng = (rng * 1103515245 + 12345) % 2147483648
        return rng % m
    end
    for _ = 1, count do
        flip_bit(f, next_rand(size), next_rand(8))
    end
    f:close()
end

describe("bit flips in a follower's data directory", function()
    local c
    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    -- A cluster with KEYS keys written and applied on follower f, f's snapshot taken at
    -- KEYS entries (its log compacted up to it), then 10 more writes; f is then killed.
    local function prepared()
        c = S.cluster({ n = 3, flags = { "--snapshot-trailing", "0" } })
        c:start_all()
        local leader = c:wait_leader(WAIT_S)
        for k = 1, KEYS do
            assert.are.equal("OK", c:rc(leader, "SET", "k" .. k, value_of(k)))
        end
        local f = leader % 3 + 1
        S.wait(WAIT_S, "node " .. f .. " applied the SETs", function()
            return c:rc(f, "GET", "k" .. KEYS) == value_of(KEYS)
        end)
        assert.truthy(c:rc(f, "RAFT.SNAPSHOT"):find("^OK snapshot at index %d+"))
        for k = KEYS + 1, KEYS + 10 do
            assert.are.equal("OK", c:rc(leader, "SET", "k" .. k, value_of(k)))
        end
        S.wait(WAIT_S, "node " .. f .. " applied the later SETs", function()
            return c:rc(f, "GET", "k" .. KEYS + 10) == value_of(KEYS + 10)
        end)
        c:kill(f)
        return leader, f, c:data_dir(f)
    end

    -- The one refusal allowed (runtime_recover.c): a hard state that cannot be read.
    local REFUSAL = "the hard state (term and vote) in "

    -- f restarted: it never answers a GET with a wrong value, and ends up answering every
    -- key with the leader's value. Returns its log, and whether it refused to start
    -- instead (only when may_refuse, and only with REFUSAL in its log).
    local function recovers(leader, f, may_refuse)
        c:start(f)
        local all = KEYS + 10
        local refused = false
        S.wait(WAIT_S, "node " .. f .. " serving every key", function()
            if not c:alive(f) then
                local log = S.read_file(c:log(f))
                assert.truthy(may_refuse and log:find(REFUSAL, 1, true), "node " .. f
                    .. " died:\n" .. log)
                refused = true
                return true
            end
            local right = 0
            for k = 1, all do
                local got = c:rc(f, "GET", "k" .. k)
                if got == value_of(k) then
                    right = right + 1
                else
                    -- Refused while it recovers (an error, or no answer), never a wrong value.
                    assert.truthy(got == "" or got:find("^ERR") or got:find("^Could not connect")
                        or got:find("^LOADING") or got:find("^TRYAGAIN"),
                        "node " .. f .. " served a wrong value for k" .. k .. ": " .. got)
                end
            end
            return right == all
        end)
        for k = 1, all do
            assert.are.equal(value_of(k), c:rc(leader, "GET", "k" .. k))
        end
        if refused then
            c.pids[f] = nil
        else
            assert.is_true(c:alive(f))
        end
        return S.read_file(c:log(f)), refused
    end

    it("(a) a flipped snapshot file: named, moved aside, caught up from the leader", function()
        local leader, f, dir = prepared()
        local name = S.sh("ls " .. S.quote(dir) .. " | grep '^snap-.*\\.lrs$'"):gsub("%s+$", "")
        assert.truthy(name:find("^snap%-"), "no snapshot file in " .. dir)
        local fh = assert(io.open(dir .. "/" .. name, "r+b"))
        flip_bit(fh, 40, 0)
        fh:close()
        local log = recovers(leader, f)
        assert.truthy(log:find("snapshot file " .. dir .. "/" .. name .. " is damaged", 1, true), log)
        assert.truthy(log:find("recovering from the leader", 1, true), log)
        assert.are.equal("0", S.sh("ls " .. S.quote(dir) .. "/corrupt-*/" .. name
            .. " >/dev/null 2>&1; echo $?"):gsub("%s+$", ""))
    end)

    it("(b) a flipped value of a stored entry: named, never served, caught up", function()
        local leader, f, dir = prepared()
        local copies = flip_marker(dir .. "/data.mdb", value_of(KEYS + 5))
        assert.is_true(copies >= 1, "the value is not in node " .. f .. "'s data.mdb")
        local log = recovers(leader, f)
        assert.matches("fails its checksum", log)
        assert.truthy(log:find("recovering from the leader", 1, true), log)
    end)

    local function count_of(text, piece)
        local n, from = 0, 1
        while true do
            local at = text:find(piece, from, true)
            if at == nil then
                return n
            end
            n, from = n + 1, at + #piece
        end
    end

    -- The safety half (runtime_recover.c): while it recovers, the node must not vote, even
    -- across a restart, so that with the leader gone the other node cannot be elected by
    -- it; once a leader of a later term is elected and it holds that leader's log, it says
    -- so, removes its marker and votes again.
    it("(d) while recovering it neither votes nor campaigns, across a restart", function()
        local leader, f, dir = prepared()
        assert.is_true(flip_marker(dir .. "/data.mdb", value_of(KEYS + 5)) >= 1)
        recovers(leader, f)
        assert.truthy(io.open(dir .. "/recovering", "rb"), "no marker while recovering")
        local other = 6 - leader - f
        local REFUSED = "vote: refused a pre-vote to node " .. other
        local before = count_of(S.read_file(c:log(f)), REFUSED)
        c:kill(leader)
        local function refused_rounds(n)
            S.wait(WAIT_S, "node " .. f .. " refusing " .. n .. " pre-votes", function()
                return count_of(S.read_file(c:log(f)), REFUSED) >= before + n
            end)
            assert.is_nil(c:leader(), "a leader was elected without the lost node's leader")
            local since = S.read_file(c:log(f)):match(".*(is damaged.*)$")
            assert.is_nil(since:find("vote: granted", 1, true), since)
            assert.is_nil(since:find("election: became", 1, true), since)
        end
        refused_rounds(5)
        c:kill(f)
        c:start(f)
        S.wait(WAIT_S, "node " .. f .. " saying it still recovers", function()
            return S.read_file(c:log(f)):find("still recovering from the leader", 1, true)
        end)
        before = count_of(S.read_file(c:log(f)), REFUSED)
        refused_rounds(5)
        c:start(leader)
        c:wait_leader(WAIT_S)
        S.wait(WAIT_S, "node " .. f .. " recovered", function()
            return S.read_file(c:log(f)):find("recovered: this node holds the leader's log", 1,
                true)
        end)
        assert.is_nil(io.open(dir .. "/recovering", "rb"), "the marker is still there")
        local now = c:wait_leader(WAIT_S)
        assert.are.equal("OK", c:rc(now, "SET", "after", "recovery"))
        S.wait(WAIT_S, "node " .. f .. " serving the new write", function()
            return c:rc(f, "GET", "after") == "recovery"
        end)
        for k = 1, KEYS + 10 do
            assert.are.equal(value_of(k), c:rc(f, "GET", "k" .. k))
        end
    end)

    -- What README says ends a recovery under the same leader: a transfer to the other node
    -- (its term is later, and its log is soon the recovering node's).
    it("(f) RAFT.TRANSFER to another node ends the recovery", function()
        local leader, f, dir = prepared()
        assert.is_true(flip_marker(dir .. "/data.mdb", value_of(KEYS + 5)) >= 1)
        recovers(leader, f)
        assert.is_nil(S.read_file(c:log(f)):find("recovered: ", 1, true))
        local other = 6 - leader - f
        S.wait(WAIT_S, "node " .. other .. " leading", function()
            c:rc(leader, "RAFT.TRANSFER", tostring(other))
            return c:info(other).role == "leader"
        end)
        S.wait(WAIT_S, "node " .. f .. " recovered", function()
            return S.read_file(c:log(f)):find("recovered: this node holds the leader's log", 1,
                true)
        end)
        assert.is_nil(io.open(dir .. "/recovering", "rb"), "the marker is still there")
    end)

    -- The verification reads data.mdb without LMDB's lock and damage moves files, so a
    -- second process started on a running node's directory must stop before both.
    it("(e) a second process on a running node's directory stops, moving nothing", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = c:wait_leader(WAIT_S)
        assert.are.equal("OK", c:rc(leader, "SET", "k", "v"))
        local dir = c:data_dir(leader)
        local out = S.sh("timeout 10 " .. S.quote(S.luaraft) .. " node --id " .. leader
            .. " --data " .. S.quote(dir) .. " --listen 127.0.0.1:1 --raft 127.0.0.1:1 "
            .. S.quote(c.script) .. " 2>&1; echo status $?")
        assert.truthy(out:find("another process runs a node on it", 1, true), out)
        assert.truthy(out:find("status 1", 1, true), out)
        assert.are.equal("", S.sh("ls " .. S.quote(dir) .. " | grep -e corrupt- -e recovering"
            .. " || true"):gsub("%s+$", ""))
        assert.are.equal("v", c:rc(leader, "GET", "k"))
    end)

    for _, count in ipairs({ 8, 200 }) do
        it("(c) " .. count .. " random bit flips in data.mdb, over " .. SEEDS .. " seeds",
            function()
            local damaged = 0
            for seed = 1, SEEDS do
                local leader, f, dir = prepared()
                flip_random(dir .. "/data.mdb", count, seed)
                local log, refused = recovers(leader, f, true)
                local found = log:find("recovering from the leader", 1, true)
                if found or refused then
                    damaged = damaged + 1
                end
                local line = log:match("[^\n]*is damaged %(([^\n]-)%): its store") or
                    log:match("([^\n]*" .. REFUSAL .. ")")
                io.stderr:write(("[bitflip] %d flips, seed %d: %s%s\n"):format(count, seed,
                    refused and "refused to start (hard state unreadable)"
                        or found and "damage found, recovered" or "no damage seen",
                    line and (": " .. line:sub(1, 160)) or ""))
                c:stop()
                c = nil
            end
            -- 200 flips over a few hundred KiB always hit something the node reads.
            if count >= 200 then
                assert.is_true(damaged >= 1, "no run found damage")
            end
        end)
    end
end)
