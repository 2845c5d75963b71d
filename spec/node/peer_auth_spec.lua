-- Peer authentication on real nodes (--peer-secret-file): a stranger who can reach the peer
-- port forges the frames a member sends, with spec/node/peer_wire.lua (the wire in plain
-- Lua, the proof through openssl): a handshake naming the leader with another client
-- address, a TIMEOUT_NOW in the leader's term, a FORWARD of a write to the leader. Without
-- authentication (wire version 2, before this) each of them worked: the write was
-- committed on every node, the follower held an election at once and showed 6.6.6.6:666 as
-- its leader's address.
--
-- What it catches: any of those attacks getting through with a wrong secret, without one,
-- or in the old wire; a node with another secret, or none, taken into the cluster; a
-- refusal that does not say why in the logs of both sides; refused connections flooding the
-- log; a secret file that is short, missing or readable by others taken; the warning for a
-- peer port off loopback without a secret missing. Its positive control: the same forger
-- with the cluster's secret gets its FORWARD committed, so the refusals are the proof's
-- doing and not a broken forger's.
-- What it cannot catch: attacks on an established connection. The frames after the
-- handshake carry no MAC and are not encrypted, so whoever is on the network path can read
-- them, or inject into the TCP stream of a member's connection; TLS would be needed for
-- that, and is not built. The client port (--requirepass-file) and the HTTP port are
-- other specs' business.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local W = dofile(S.root .. "/spec/node/peer_wire.lua")

local function log_has(c, i, text)
    return S.read_file(c:log(i)):find(text, 1, true) ~= nil
end

local function count(text, plain)
    local n = 0
    for _ in text:gmatch(plain:gsub("%p", "%%%0")) do
        n = n + 1
    end
    return n
end

-- A fresh secret file of n random bytes with the given mode; returns its path and bytes.
local function secret_file(dir, name, n, mode)
    local path = dir .. "/" .. name
    os.execute("head -c " .. (n or 32) .. " /dev/urandom > " .. S.quote(path) .. " && chmod "
        .. (mode or "600") .. " " .. S.quote(path))
    return path, S.read_file(path)
end

local DIFFER = "handshake proof does not verify: the two nodes' peer secrets (--peer-secret-file) differ"

describe("peer authentication", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("a stranger of the peer port cannot write, force an election or move leader_addr", function()
        c = S.cluster({ n = 3 })
        local path, secret = secret_file(c.dir, "secret")
        local _, wrong = secret_file(c.dir, "wrong")
        for _, f in ipairs({ "--peer-secret-file", path }) do
            c.flags[#c.flags + 1] = f
        end
        c:start_all()
        local leader = c:wait_leader(10)
        local follower = c:others(leader)[1]
        -- Served as usual: a write through a follower (FORWARD on the bulk lane), read back
        -- (once the follower has heard from the leader: until then it says TRYAGAIN).
        S.wait(10, "a write through node " .. follower, function()
            return c:rc(follower, "SET", "a", "1") == "OK"
        end)
        assert.equal("1", c:rc(c:others(leader)[2], "GET", "a"))
        local info = c:info(follower)
        local term = tonumber(info.term)
        local cid = S.read_file(c.dir .. "/n" .. follower .. "/cluster-id"):gsub("%s+$", "")
        -- Opens a forged connection to node `to` as node `as`: version 3 with proof made of
        -- `key` (or none), then the frames; returns the node's verdict.
        local function forge(to, as, key, addr, ...)
            local f = W.connect(c:peer_port(to))
            local ch = assert(f:challenge(), "no challenge from node " .. to)
            assert.is_true(ch.required)
            local hs = { node_id = as, cluster_id = cid, client_addr = addr, answer = ch.nonce,
                acceptor_id = to }
            hs.proof = key and W.proof(key, hs) or nil
            f:send(W.handshake(hs), ...)
            local verdict = f:verdict()
            if verdict ~= "ACCEPTED" then
                assert.is_true(f:wait_closed(5), "node " .. to .. " keeps the connection")
            end
            f:close()
            return verdict
        end
        -- Each attack: the node attacked, the node it claims to be, the client address it
        -- claims, and its frame in the wire of a version.
        local attacks = {
            { follower, leader, "6.6.6.6:666", function(v) return W.timeout_now(leader, follower, term, v) end },
            { leader, follower, "", function(v) return W.forward(1, { "SET", "pwned", "evil" }, v) end },
        }
        for _, a in ipairs(attacks) do
            local to, as, addr, frame = table.unpack(a)
            assert.equal("REFUSED: " .. DIFFER, forge(to, as, wrong, addr, frame(3)))
            assert.equal("REFUSED: handshake without a proof of the peer secret: the connecting "
                .. "node has no --peer-secret-file and the accepting node has one",
                forge(to, as, nil, addr, frame(3)))
            -- The attack as it was made before authentication, in the old wire.
            local old = W.connect(c:peer_port(to))
            old:send(W.frame(W.HANDSHAKE, string.pack(">I8s2s2", as, cid, addr), 2), frame(2))
            assert.is_true(old:wait_closed(5))
            old:close()
        end
        -- Nothing got in: every frame above came before this write, on connections the
        -- nodes closed before it.
        assert.equal("OK", c:rc(leader, "SET", "b", "2"))
        for i = 1, 3 do
            assert.equal("", c:rc(i, "GET", "pwned"), "node " .. i)
        end
        assert.equal("127.0.0.1:" .. c:client_port(leader), c:info(follower).leader_addr)
        assert.is_false(log_has(c, follower, "the leader handed over its leadership"))
        assert.is_true(log_has(c, leader, "closed: " .. DIFFER))
        assert.is_true(log_has(c, follower, "closed: unsupported version"))
        -- Positive control: the same forger holding the cluster's secret is a member.
        assert.equal("ACCEPTED", forge(leader, follower, secret, "", W.forward(2, { "SET", "ctl", "in" })))
        S.wait(10, "the control's write", function()
            return c:rc(leader, "GET", "ctl") == "in"
        end)
        -- A flood of refused connections: a burst of 10 lines, then one per 6 s, and a later
        -- line counts what was left out.
        local before = count(S.read_file(c:log(leader)), "closed: handshake")
        for _ = 1, 30 do
            local f = W.connect(c:peer_port(leader))
            local ch = assert(f:challenge())
            f:send(W.handshake({ node_id = follower, cluster_id = cid, answer = ch.nonce,
                proof = string.rep("x", 32) }))
            f:verdict()
            f:close()
        end
        local flood = count(S.read_file(c:log(leader)), "closed: handshake") - before
        assert.is_true(flood >= 1 and flood <= 11, flood .. " lines for 30 refusals")
        S.wait(20, "a line counting the refusals left out", function()
            local f = W.connect(c:peer_port(leader))
            f:send(W.handshake({ node_id = follower, cluster_id = cid, answer = string.rep("\0", 32) }))
            f:wait_closed(5)
            f:close()
            return S.read_file(c:log(leader)):match("more refused before this one, not logged")
        end)
    end)

    it("refuses a node with another secret or none, says so on both sides, and takes it with the right one",
        function()
            c = S.cluster({ n = 3 })
            local good = secret_file(c.dir, "good")
            local other = secret_file(c.dir, "other")
            local base = #c.flags
            local function with(path)
                for k = #c.flags, base + 1, -1 do
                    c.flags[k] = nil
                end
                if path then
                    c.flags[base + 1], c.flags[base + 2] = "--peer-secret-file", path
                end
            end
            with(good)
            c:start(1)
            c:start(2)
            with(other)
            c:start(3)
            local leader = c:wait_leader(10)
            assert.equal("OK", c:rc(leader, "SET", "k", "v"))
            -- Node 3 dials 1 and 2, which refuse it and tell it why; they dial node 3, which
            -- refuses them. Each side's log says the secrets differ.
            S.wait(10, "node 3's refusals", function()
                return log_has(c, 3, "connection to node " .. leader .. " refused: " .. DIFFER)
                    and log_has(c, 3, "closed: " .. DIFFER)
            end)
            for i = 1, 2 do
                S.wait(10, "node " .. i .. "'s refusal", function()
                    return log_has(c, i, "closed: " .. DIFFER)
                end)
            end
            assert.equal("", c:info(3).leader_addr)
            assert.equal("0", c:info(3).leader_id)
            -- Without a secret: refused too, and the lines say which side has none.
            c:kill(3)
            with(nil)
            c:start(3)
            S.wait(10, "node 3's refusals without a secret", function()
                return log_has(c, 3, "refused: handshake without a proof of the peer secret: the "
                    .. "connecting node has no --peer-secret-file and the accepting node has one")
                    and log_has(c, 3, "closed: handshake with a proof of a peer secret: the "
                        .. "connecting node has a --peer-secret-file and the accepting node has none")
            end)
            assert.equal("0", c:info(3).leader_id)
            -- With the cluster's secret it is a member again and catches up.
            c:kill(3)
            with(good)
            c:start(3)
            S.wait(15, "node 3 to catch up", function()
                return c:rc(3, "GET", "k") == "v"
            end)
            assert.equal(tostring(leader), c:info(3).leader_id)
        end)

    it("refuses to start with a secret file that is short, missing or readable by others", function()
        local dir = S.sh("mktemp -d /tmp/luaraft-spec.XXXXXX"):gsub("%s+$", "")
        local base = S.free_ports(1, 1, 100)
        local function start(path)
            local out = S.sh("timeout 10 " .. S.quote(S.luaraft) .. " node --id 1 --data " .. dir
                .. "/n1 --listen 127.0.0.1:" .. (base + 1) .. " --raft 127.0.0.1:" .. (base + 101)
                .. " --cluster 1=127.0.0.1:" .. (base + 101) .. " --peer-secret-file " .. path
                .. " " .. S.quote(S.kv) .. " 2>&1; echo rc=$?")
            return out
        end
        local short = secret_file(dir, "short", 31)
        local open = secret_file(dir, "open", 32, "640")
        for _, case in ipairs({
            { short, "it holds 31 bytes; a peer secret takes 32 to 65536" },
            { open, "group or others may read or change it (mode 640)" },
            { dir .. "/missing", "cannot read it: No such file or directory" },
            { dir, "it is not a regular file" },
        }) do
            local out = start(case[1])
            assert.truthy(out:find("cannot start: --peer-secret-file " .. case[1] .. ": " .. case[2], 1,
                true), out)
            assert.truthy(out:find("rc=1\n", 1, true), out)
        end
        os.execute("rm -rf " .. S.quote(dir))
    end)

    it("warns when it serves peers off loopback without a secret", function()
        c = S.cluster({ n = 1 })
        local cmd = c:node_command(1):gsub("%-%-raft 127%.0%.0%.1:", "--raft 0.0.0.0:")
        c.pids[1] = assert(tonumber(S.sh(cmd .. " & echo $!")))
        S.wait(10, "the warning", function()
            return log_has(c, 1, "WARNING: serving peers on 0.0.0.0:" .. c:peer_port(1)
                .. " with no peer secret: anyone who can reach it can join as a member")
        end)
        c:wait_leader(10)
    end)
end)
