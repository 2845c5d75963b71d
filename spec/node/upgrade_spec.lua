-- RAFT.LOAD as real processes (issue 9, item 3; src/node/load.c, src/fsm/fsm_upgrade.c):
-- three nodes of examples/kv.lua on loopback under a steady write load (load_writer.lua)
-- through every node, upgraded to a second and a third version of the script, each a
-- copy of kv.lua with a command KVVERSION, an M.version and an M.upgrade that records the
-- version it upgraded from under the key upgraded_from.
--
-- What it catches: replicas that switch at different indexes (each node logs the index
-- it switched at, and RAFT.INFO's script_since says it); state lost across the switch
-- (every acknowledged write is read back from every node, and RAFT.CHECK finds the
-- states equal); M.upgrade not run, or given the wrong old version; a script that does
-- not load, or lacks the contract, logged instead of refused at the leader; an M.upgrade
-- that fails on some replicas and not others; a follower that does not forward RAFT.LOAD;
-- a snapshot taken after the upgrade that does not carry the script (a node restarted
-- with the original --script, and a node that joins, must run the upgraded one).
--
-- What it cannot catch: a missing fsync (kill -9 keeps the page cache); the loop thread's
-- classification of a command that arrives while the switch is in flight (it uses the
-- command table in force when the command arrived, which no client can tell apart from
-- an earlier arrival).
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

-- kv.lua with a KVVERSION command, M.version = version and an M.upgrade, written into
-- the cluster's directory as name; returns its path.
local function version_of_kv(c, name, version)
    local text = S.read_file(S.kv)
    local extra = string.format([[
M.version = %q
def("KVVERSION", { read = true, arity = 1, flags = FAST }, function()
    return %q
end)
function M.upgrade(old, ctx)
    assert(ctx.index > 0)
    run({ "SET", "upgraded_from", old or "none" }, false)
end
return M
]], version, version)
    local patched, n = text:gsub("\nreturn M%s*$", "\n" .. extra)
    assert(n == 1, "kv.lua does not end in 'return M'")
    local path = c.dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(patched)
    f:close()
    return path
end

-- The index node i logged switching to script name at (nil until it did).
local function switched_at(c, i, name)
    return tonumber(S.read_file(c:log(i)):match("script upgraded %(RAFT.LOAD%): this node runs script "
        .. name:gsub("%p", "%%%0") .. " %(content %x+%.%.%.%) from index (%d+)"))
end

-- RAFT.INFO's script fields of node i.
local function script_of(c, i)
    local info = c:rc(i, "RAFT.INFO")
    return info:match("script:([^\r\n]+)"), tonumber(info:match("script_since:(%d+)"))
end

-- Waits until every node of ids switched to name, and checks they did at one index, which
-- it returns.
local function assert_switched(c, ids, name)
    local at = {}
    for _, i in ipairs(ids) do
        S.wait(30, "node " .. i .. " switches to " .. name, function()
            at[i] = switched_at(c, i, name)
            return at[i] ~= nil
        end)
    end
    for _, i in ipairs(ids) do
        assert.equal(at[ids[1]], at[i], "node " .. i .. " switched at another index")
        local script, since = script_of(c, i)
        assert.equal(name, script)
        assert.equal(at[i], since)
    end
    return at[ids[1]]
end

local function assert_consistent(c, leader)
    local out = c:rc(leader, "RAFT.CHECK")
    assert.is_truthy(out:find("^consistent at index"), out)
end

describe("RAFT.LOAD", function()
    local c, w

    after_each(function()
        T.teardown(c, w)
        c, w = nil, nil
    end)

    it("switches every replica at one index under load, keeping the state", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = T.settled_leader(c, 20)
        w = T.writer(c, { 1, 2, 3 })
        w.wait_acks(200)
        local v2 = version_of_kv(c, "kv2.lua", "kv-2")
        local follower = leader % 3 + 1
        local asked = S.now()
        -- Through a follower, which forwards it to the leader, which reads the file.
        assert.equal("OK", rc(c, follower, "RAFT.LOAD", "FILE", v2))
        local answered = S.now()
        w.wait_acks(200, answered)
        local at2 = assert_switched(c, { 1, 2, 3 }, "kv2.lua")
        for i = 1, 3 do
            assert.equal("kv-2", rc(c, i, "KVVERSION"))
            assert.equal("none", rc(c, i, "GET", "upgraded_from")) -- kv.lua has no M.version
        end
        -- A second upgrade, given as text: M.upgrade gets the old M.version.
        local v3 = version_of_kv(c, "kv3.lua", "kv-3")
        leader = T.settled_leader(c, 20)
        assert.equal("OK", rc(c, leader, "RAFT.LOAD", "SCRIPT", "kv3.lua", S.read_file(v3)))
        local at3 = assert_switched(c, { 1, 2, 3 }, "kv3.lua")
        assert(at3 > at2)
        w.wait_acks(100, S.now())
        w.stop()
        local acks = w.acks()
        T.assert_none_lost(c, { 1, 2, 3 }, acks)
        for i = 1, 3 do
            assert.equal("kv-3", rc(c, i, "KVVERSION"))
            assert.equal("kv-2", rc(c, i, "GET", "upgraded_from"))
        end
        assert_consistent(c, T.settled_leader(c, 20))
        print(string.format("upgrade under load: %d acknowledged writes, none lost; switched at "
            .. "index %d and %d on every node; RAFT.LOAD answered in %.3f s", #acks, at2, at3,
            answered - asked))
    end)

    it("refuses at the leader a script that does not load or breaks the contract", function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = T.settled_leader(c, 20)
        local follower = leader % 3 + 1
        local cases = {
            { "bad.lua", "return {", "the script is refused: bad.lua:" },
            { "empty.lua", "return {}", "M.apply is missing" },
            { "boom.lua", "error('no')", "the script is refused: boom.lua: boom.lua:1: no" },
            { "loop.lua", "while true do end", "budget" },
        }
        for _, case in ipairs(cases) do
            local reply = rc(c, follower, "RAFT.LOAD", "SCRIPT", case[1], case[2])
            assert.is_truthy(reply:find("^ERR RAFT.LOAD: "), reply)
            assert.is_truthy(reply:find(case[3], 1, true), reply)
        end
        assert.is_truthy(rc(c, leader, "RAFT.LOAD", "FILE", c.dir .. "/none.lua")
            :find("^ERR RAFT.LOAD: cannot read " .. c.dir:gsub("%p", "%%%0") .. "/none.lua"))
        assert.is_truthy(rc(c, leader, "RAFT.LOAD", "SCRIPT", "a/b.lua", "return 1")
            :find("must be a file name"))
        assert.is_truthy(rc(c, leader, "RAFT.LOAD", "SCRIPT", "x.lua"):find("^ERR syntax error"))
        assert.is_truthy(rc(c, leader, "RAFT.LOAD", "FILE"):find("wrong number of arguments"))
        -- Nothing was logged: every node still runs kv.lua, from the start.
        assert.equal("OK", rc(c, leader, "SET", "after", "1"))
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " applies the SET", function()
                return rc(c, i, "GET", "after") == "1"
            end)
            assert.same({ "kv.lua", 0 }, { script_of(c, i) })
            assert.is_falsy(S.read_file(c:log(i)):find("script upgraded", 1, true))
        end
        -- A script that loads but whose M.upgrade fails is logged, and every replica
        -- refuses it alike: the caller gets the error, every node keeps kv.lua.
        local text = S.read_file(S.kv):gsub("\nreturn M%s*$",
            "\nfunction M.upgrade() error('cannot upgrade') end\nreturn M\n")
        local reply = rc(c, follower, "RAFT.LOAD", "SCRIPT", "kvfail.lua", text)
        assert.is_truthy(reply:find("^ERR RAFT.LOAD: M.upgrade failed: .*cannot upgrade"), reply)
        assert.equal("OK", rc(c, leader, "SET", "after", "2"))
        for i = 1, 3 do
            S.wait(10, "node " .. i .. " applies the SET", function()
                return rc(c, i, "GET", "after") == "2"
            end)
            assert.same({ "kv.lua", 0 }, { script_of(c, i) })
        end
        assert_consistent(c, leader)
    end)

    it("carries the upgraded script in snapshots: restarted and joining nodes run it", function()
        c = S.cluster({ n = 3, spare = 1, flags = { "--snapshot-trailing", "0" } })
        c:start_all()
        local leader = T.settled_leader(c, 20)
        for i = 1, 20 do
            assert.equal("OK", rc(c, leader, "SET", "k" .. i, "v" .. i))
        end
        local v2 = version_of_kv(c, "kv2.lua", "kv-2")
        assert.equal("OK", rc(c, leader, "RAFT.LOAD", "FILE", v2))
        local at = assert_switched(c, { 1, 2, 3 }, "kv2.lua")
        for i = 1, 3 do
            assert.is_truthy(rc(c, i, "RAFT.SNAPSHOT"):find("^OK"))
        end
        -- Restarted with the original --script: the snapshot brings kv2.lua.
        local follower = leader % 3 + 1
        c:kill(follower)
        c:start(follower)
        S.wait(20, "node " .. follower .. " serves again", function()
            return rc(c, follower, "PING") == "PONG"
        end)
        assert.same({ "kv2.lua", at }, { script_of(c, follower) })
        assert.is_truthy(S.read_file(c:log(follower)):find("holds the state of script kv2.lua", 1,
            true))
        S.wait(20, "node " .. follower .. " serves reads", function()
            return rc(c, follower, "KVVERSION") == "kv-2"
        end)
        assert.equal("v20", rc(c, follower, "GET", "k20"))
        -- Restarted with the upgraded script as --script: its snapshot holds the upgrade.
        c:kill(follower)
        local base = c.script
        c.script = v2
        c:start(follower)
        c.script = base
        S.wait(20, "node " .. follower .. " serves again", function()
            return rc(c, follower, "PING") == "PONG"
        end)
        assert.same({ "kv2.lua", at }, { script_of(c, follower) })
        -- A node that joins with the original --script gets the leader's snapshot.
        leader = T.settled_leader(c, 20)
        c:start_join(4, leader)
        S.wait(20, "node 4 serving", function()
            return rc(c, 4, "PING") == "PONG"
        end)
        assert.equal("OK", rc(c, leader, "RAFT.ADD", "4", "127.0.0.1:" .. c:peer_port(4),
            "127.0.0.1:" .. c:client_port(4)))
        S.wait(30, "node 4 runs kv2.lua", function()
            return script_of(c, 4) == "kv2.lua"
        end)
        assert.same({ "kv2.lua", at }, { script_of(c, 4) })
        S.wait(10, "node 4 has the data", function()
            return rc(c, 4, "GET", "k20") == "v20"
        end)
        assert.equal("kv-2", rc(c, 4, "KVVERSION"))
        assert.is_truthy(S.read_file(c:log(4)):find("restored a snapshot of an upgraded script: "
            .. "this node runs script kv2.lua", 1, true), "node 4 did not get kv2.lua by snapshot")
        assert_consistent(c, T.settled_leader(c, 20))
    end)
end)
