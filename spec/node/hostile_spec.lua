-- A three-node cluster against the hostile commands of issue 10, as real processes: a
-- script that runs the code it is sent (spec/node/eval.lua: EVAL writes, QEVAL reads)
-- takes each command the issue found wedging, exhausting or splitting replicas. Every
-- command must end, with an error reply that says what happened (never an unknown
-- outcome), and then every node must still serve, answer a read of the state
-- identically, and stay below a memory figure; the leader must keep its term throughout
-- (no command stalls a node into an election), and RAFT.CHECK must find the states equal.
--
-- What it catches: a budget that a C function, a message handler, a pattern, a reply
-- encoder or an allocation escapes (the command would hang past the client's timeout, or
-- the node's memory pass the figure); a command whose partial changes differ between
-- replicas (the reads and RAFT.CHECK would differ); a query that changes state on the node
-- that served it; a Lua thread blocked long enough to cost the leader its term. What it
-- cannot catch: replicas on different machines or builds (all three run this binary), and
-- a memory peak between two samples of /proc (it reads VmHWM, the peak, which covers that).
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

local EVAL = S.root .. "/spec/node/eval.lua"
local HWM_MAX_KB = 512 * 1024 -- every node's peak resident memory stays below 512 MiB

-- Each: code sent with EVAL, and what its error reply must say.
local HOSTILE = {
    { "xpcall(function() while true do end end, function() while true do end end)", "instruction budget" },
    { "M.state.bomb = {}; for i = 1, 1e6 do M.state.bomb[i] = string.rep('x', 1e6 - 1) .. i; "
        .. "M.state.bomb_mb = i end", "memory budget" },
    { "return string.find(('a'):rep(40), ('a*'):rep(40) .. 'b')", "instruction budget" },
    { "return #string.rep('x', 2^31 - 1)", "memory budget" },
    { "local t = {1, 2, 3}; table.move(t, 1, 1 << 27, 2); return #t", "instruction budget" },
    { "local s = 'xy'; for i = 1, 40 do s = s .. s end; return #s", "memory budget" },
    { "local t = {}; for i = 1, 1e5 do t[i] = i end; for i = 1, 1e6 do table.insert(t, 1, i) end",
        "instruction budget" },
    { "local t = {}; for i = 1, 50 do t[i] = t end; return t", "cycle" },
    { "local t = { 'x' }; for level = 1, 5 do local u = {}; for i = 1, 50 do u[i] = t end; t = u end; "
        .. "return t", "budget" },
    { "local mt = {}; M.state.weak = setmetatable({}, mt); mt.__mode = 'k'", "__mode" },
    { "error(setmetatable({}, { __tostring = function() while true do end end }))", "error object" },
}

local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

local function hwm_kb(pid)
    local f = io.open("/proc/" .. pid .. "/status")
    if f == nil then
        return nil
    end
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)"))
end

-- What every node reads of the state: its keys and their kinds, canonically.
local DIGEST = "local out = {}; for k, v in pairs(M.state) do out[#out + 1] = k .. '=' .. type(v) "
    .. ".. (type(v) == 'table' and '' or tostring(v)) end; return table.concat(out, ',')"

describe("a cluster under hostile commands", function()
    local c

    after_each(function()
        T.teardown(c)
        c = nil
    end)

    it("ends each with an error, the same state everywhere, and keeps its leader", function()
        -- The node's own timeouts (500-1000 ms elections), not the specs' short ones: a
        -- command's allocations compete with the loop thread for the machine (much more
        -- under the sanitizers' allocator), and what this asserts is that a real
        -- deployment keeps its leader.
        c = S.cluster({ n = 3, script = EVAL, default_timeouts = true,
                        flags = { "--lua-command-memory", "64M", "--lua-memory", "512M" } })
        c:start_all()
        local leader = T.settled_leader(c, 30)
        local term = c:info(leader).term
        local peak = 0
        assert.equal("OK", rc(c, leader, "EVAL", "M.state.base = 'ok'; return { ok = 'OK' }"))
        for n, h in ipairs(HOSTILE) do
            local t0 = S.now()
            local reply = rc(c, leader, "EVAL", h[1])
            assert.is_truthy(reply:find("^ERR"), ("command %d answered %q"):format(n, reply:sub(1, 200)))
            assert.is_truthy(reply:find(h[2], 1, true), ("command %d: %q"):format(n, reply:sub(1, 200)))
            local digest
            for i = 1, 3 do
                local d
                S.wait(20, "node " .. i .. " reads the state after command " .. n, function()
                    d = rc(c, i, "QEVAL", DIGEST)
                    return not d:find("^TRYAGAIN")
                end)
                digest = digest or d
                assert.equal(digest, d, ("node %d after command %d"):format(i, n))
                local kb = hwm_kb(c.pids[i])
                assert(kb and kb < HWM_MAX_KB, ("node %d peaked at %s kB"):format(i, tostring(kb)))
                peak = math.max(peak, kb)
            end
            print(("hostile command %d: %.2f s, %s"):format(n, S.now() - t0, reply:sub(1, 70)))
        end
        -- A read that writes is refused on the node that serves it, and changes nothing.
        local follower = leader % 3 + 1
        local q = rc(c, follower, "QEVAL", "M.state.base = 'changed'")
        assert.is_truthy(q:find("must not change state", 1, true), q)
        assert.equal("ok", rc(c, follower, "QEVAL", "return M.state.base"))
        for i = 1, 3 do
            assert.equal("PONG", rc(c, i, "PING"))
            assert.equal(term, c:info(i).term, "node " .. i .. "'s term moved")
        end
        assert.equal(leader, T.settled_leader(c, 20))
        local check = c:rc(leader, "RAFT.CHECK")
        assert.is_truthy(check:find("^consistent at index"), check)
        print(("hostile commands: the nodes' peak resident memory %.0f MiB (bound %d MiB)")
            :format(peak / 1024, HWM_MAX_KB // 1024))
    end)
end)
