-- The node's connection commands, transactions and per-connection order, from outside: a
-- real 3-node cluster of examples/kv.lua on loopback, driven over raw RESP connections.
--
-- What it catches: a handshake a client library sends that fails or is logged; replies
-- that differ from Redis's shapes (RESP2 and RESP3); MULTI/EXEC that applies part of a
-- transaction, applies it twice or ignores EXECABORT; a WATCH that misses a write on
-- another node; a GET pipelined after a SET on one connection that does not see it. What
-- it cannot: how often a race between connections would break WATCH (one interleaving
-- per test; node_sim exercises transactions under faults).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local R = dofile(S.root .. "/spec/node/resp_conn.lua")

local function field(map, name)
    for i = 1, #map.v, 2 do
        if map.v[i].v == name then
            return map.v[i + 1]
        end
    end
    return nil
end

describe("a client connection", function()
    local c, leader, follower

    setup(function()
        c = S.cluster({ n = 3 })
        c:start_all()
        leader = c:wait_leader(10)
        follower = leader % 3 + 1
        -- The follower knows the leader once it answers a write.
        S.wait(10, "a write through the follower", function()
            return c:rc(follower, "SET", "warm", "1") == "OK"
        end)
    end)

    teardown(function()
        if c then
            c:stop()
        end
    end)

    it("says HELLO in RESP3 and RESP2, as Redis does", function()
        local conn = R.connect(c:client_port(follower))
        local r = conn:call("HELLO", "3")
        assert.are.equal("map", r.t, R.show(r))
        assert.are.equal("redis", field(r, "server").v)
        assert.are.equal(3, field(r, "proto").v)
        assert.are.equal("int", field(r, "id").t)
        assert.are.equal("replica", field(r, "role").v)
        -- A RESP3 connection gets RESP3 replies: CONFIG GET is a map.
        local cfg = conn:call("CONFIG", "GET", "save")
        assert.are.equal("map", cfg.t)
        assert.are.equal("save", cfg.v[1].v)
        r = conn:call("HELLO", "2")
        assert.are.equal("array", r.t, R.show(r))
        assert.are.equal("server", r.v[1].v)
        assert.are.equal("array", conn:call("CONFIG", "GET", "save").t)
        r = conn:call("HELLO", "4")
        assert.are.equal("NOPROTO unsupported protocol version", r.v)
        r = conn:call("HELLO", "3", "AUTH", "default", "anything", "SETNAME", "me")
        assert.are.equal("map", r.t, R.show(r))
        assert.are.equal("me", conn:call("CLIENT", "GETNAME").v)
        conn:close()
    end)

    it("answers CLIENT, SELECT, ECHO, PING, TIME, AUTH and COMMAND", function()
        local conn = R.connect(c:client_port(leader))
        assert.are.equal("null", conn:call("CLIENT", "GETNAME").t)
        assert.are.equal("OK", conn:call("CLIENT", "SETNAME", "spec").v)
        assert.are.equal("spec", conn:call("CLIENT", "GETNAME").v)
        assert.are.equal("int", conn:call("CLIENT", "ID").t)
        assert.are.equal("OK", conn:call("CLIENT", "SETINFO", "LIB-NAME", "x").v)
        assert.matches("name=spec", conn:call("CLIENT", "INFO").v)
        assert.matches("lib%-name=x", conn:call("CLIENT", "LIST").v)
        assert.are.equal("OK", conn:call("CLIENT", "NO-EVICT", "on").v)
        assert.are.equal("OK", conn:call("SELECT", "0").v)
        assert.are.equal("ERR DB index is out of range", conn:call("SELECT", "1").v)
        assert.are.equal("a\0b", conn:call("ECHO", "a\0b").v)
        assert.are.equal("PONG", conn:call("PING").v)
        -- INFO asks the script for its keyspace (kv.lua's M.keyspace).
        assert.matches("\r\ndb0:keys=%d+,expires=%d+,avg_ttl=0\r\n", conn:call("INFO", "keyspace").v)
        local t = conn:call("TIME")
        assert.are.equal(2, #t.v)
        assert.truthy(math.abs(tonumber(t.v[1].v) - os.time()) < 60)
        assert.matches("^ERR AUTH <password> called without any password configured",
            conn:call("AUTH", "pw").v)
        assert.are.equal("OK", conn:call("AUTH", "default", "pw").v)
        assert.matches("^WRONGPASS", conn:call("AUTH", "bob", "pw").v)
        local n = conn:call("COMMAND", "COUNT")
        assert.truthy(n.v > 10)
        local info = conn:call("COMMAND", "INFO", "get", "nosuch")
        assert.are.equal("get", info.v[1].v[1].v)
        assert.are.equal(2, info.v[1].v[2].v)
        assert.are.equal("null", info.v[2].t)
        assert.are.equal("ERR unknown command 'NOSUCH', with args beginning with: 'a' ",
            conn:call("NOSUCH", "a").v)
        assert.are.equal("ERR wrong number of arguments for 'get' command",
            conn:call("GET").v)
        conn:close()
    end)

    it("logs none of the connection commands and refusals", function()
        local before = tonumber(c:info(leader).last_log_index)
        local conn = R.connect(c:client_port(follower))
        -- 60 of each: any one kind logged would add 60 entries, more than the bound.
        for _ = 1, 60 do
            conn:call("HELLO", "3")
            conn:call("CLIENT", "SETINFO", "LIB-VER", "1.0")
            conn:call("INFO")
            conn:call("CONFIG", "GET", "*")
            conn:call("NOSUCH")
            conn:call("SET", "only-a-key")
        end
        conn:close()
        -- The cluster logs TICKs while idle (kv.lua's M.tick_ms): ten a second at most.
        local after = tonumber(c:info(leader).last_log_index)
        assert.truthy(after - before < 40, "log grew from " .. before .. " to " .. after)
    end)

    it("closes after QUIT's reply, and RESET forgets the connection's state", function()
        local conn = R.connect(c:client_port(follower))
        assert.are.equal("map", conn:call("HELLO", "3").t)
        assert.are.equal("OK", conn:call("MULTI").v)
        assert.are.equal("RESET", conn:call("RESET").v)
        assert.are.equal("ERR EXEC without MULTI", conn:call("EXEC").v)
        assert.are.equal("array", conn:call("CONFIG", "GET", "save").t) -- RESP2 again
        conn:send({ "QUIT" }, { "PING" })
        assert.are.equal("OK", conn:read().v)
        assert.is_true(conn:closed())
        conn:close()
    end)

    it("applies MULTI/EXEC as one, with Redis's errors", function()
        for _, node in ipairs({ leader, follower }) do
            local conn = R.connect(c:client_port(node))
            conn:send({ "MULTI" }, { "SET", "tx-a", "x" }, { "INCR", "tx-a" },
                { "SET", "tx-b", "y" }, { "EXEC" })
            assert.are.equal("OK", conn:read().v)
            for _ = 1, 3 do
                assert.are.equal("QUEUED", conn:read().v)
            end
            local r = conn:read()
            assert.are.equal("array", r.t, R.show(r))
            assert.are.equal("OK", r.v[1].v)
            assert.are.equal("error", r.v[2].t) -- INCR of "x": its error, the rest applies
            assert.are.equal("OK", r.v[3].v)
            assert.are.equal("y", conn:call("GET", "tx-b").v)
            -- A command refused while queued aborts the whole transaction.
            conn:send({ "MULTI" }, { "SET", "tx-c", "1" }, { "SET" }, { "EXEC" })
            assert.are.equal("OK", conn:read().v)
            assert.are.equal("QUEUED", conn:read().v)
            assert.are.equal("error", conn:read().t)
            assert.are.equal("EXECABORT Transaction discarded because of previous errors.",
                conn:read().v)
            assert.are.equal("null", conn:call("GET", "tx-c").t)
            assert.are.equal("OK", conn:call("MULTI").v)
            assert.are.equal("QUEUED", conn:call("SET", "tx-c", "2").v)
            assert.are.equal("OK", conn:call("DISCARD").v)
            assert.are.equal("null", conn:call("GET", "tx-c").t)
            assert.are.equal("ERR DISCARD without MULTI", conn:call("DISCARD").v)
            conn:close()
        end
    end)

    it("fails EXEC when a watched key was written since WATCH, on any node", function()
        local a = R.connect(c:client_port(follower))
        local b = R.connect(c:client_port(leader))
        assert.are.equal("OK", a:call("SET", "w", "0").v)
        assert.are.equal("OK", a:call("WATCH", "w").v)
        assert.are.equal("OK", b:call("SET", "w", "other").v)
        a:send({ "MULTI" }, { "SET", "w", "mine" }, { "EXEC" })
        assert.are.equal("OK", a:read().v)
        assert.are.equal("QUEUED", a:read().v)
        assert.are.equal("null", a:read().t)
        assert.are.equal("other", a:call("GET", "w").v)
        -- Without a conflict it applies; a write of another key does not conflict.
        assert.are.equal("OK", a:call("WATCH", "w").v)
        assert.are.equal("OK", b:call("SET", "unrelated", "1").v)
        a:send({ "MULTI" }, { "SET", "w", "mine" }, { "EXEC" })
        a:read()
        a:read()
        local r = a:read()
        assert.are.equal("array", r.t, R.show(r))
        assert.are.equal("mine", b:call("GET", "w").v)
        -- The connection's own write before WATCH does not conflict.
        a:send({ "SET", "w", "own" }, { "WATCH", "w" }, { "MULTI" }, { "SET", "w", "again" },
            { "EXEC" })
        for _ = 1, 4 do
            a:read()
        end
        assert.are.equal("array", a:read().t)
        assert.are.equal("again", b:call("GET", "w").v)
        a:close()
        b:close()
    end)

    it("redirects writes with -MOVED after RAFT.REDIRECT ON, on that connection only", function()
        local conn = R.connect(c:client_port(follower))
        assert.are.equal("OK", conn:call("RAFT.REDIRECT", "ON").v)
        local slot = conn:call("CLUSTER", "KEYSLOT", "moved-key").v
        local r = conn:call("SET", "moved-key", "x")
        assert.are.equal("MOVED " .. slot .. " 127.0.0.1:" .. c:client_port(leader), r.v)
        assert.are.equal("null", conn:call("GET", "moved-key").t) -- reads are served here
        assert.are.equal("OK", conn:call("RAFT.REDIRECT", "OFF").v)
        assert.are.equal("OK", conn:call("SET", "moved-key", "x").v)
        conn:close()
    end)

    it("runs a connection's commands in the order sent, on a follower too", function()
        local conn = R.connect(c:client_port(follower))
        for i = 1, 200 do
            conn:send({ "SET", "order", "v" .. i }, { "GET", "order" })
            assert.are.equal("OK", conn:read().v)
            local r = conn:read()
            assert.are.equal("v" .. i, r.v, "try " .. i .. ": " .. R.show(r))
        end
        -- A long pipeline of one kind still works, in order.
        local cmds = {}
        for i = 1, 500 do
            cmds[#cmds + 1] = { "RPUSH", "order-list", tostring(i) }
        end
        cmds[#cmds + 1] = { "LLEN", "order-list" }
        conn:send(table.unpack(cmds))
        for i = 1, 500 do
            assert.are.equal(i, conn:read().v)
        end
        assert.are.equal(500, conn:read().v)
        conn:close()
    end)
end)
