-- INFO (src/node/info.c) and CLUSTER (src/node/cluster_view.c) over the wire, with
-- redis-cli, on a real 3-node cluster of examples/kv.lua.
--
-- What it catches: a CLUSTER view that names the wrong master, misses a follower or
-- differs between nodes; node ids that are not the ones MYID gives; KEYSLOT values that
-- are not Redis's; Redis's errors for bad subcommands; INFO sections in the wrong order or
-- selected unlike Redis; Replication fields that do not follow the Raft leader; a node
-- that knows no leader but still offers one.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local function lines(text)
    local out = {}
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
        out[#out + 1] = (l:gsub("\r$", ""))
    end
    while out[#out] == "" do
        out[#out] = nil
    end
    return out
end

-- A reply as redis-cli prints it, without the trailing newlines (it adds one to errors).
local function rc(c, i, ...)
    return (c:rc(i, ...):gsub("%s+$", ""))
end

-- INFO's fields (and "#" headers, in order, under the key "#") as a table.
local function info(c, i, ...)
    local t = { ["#"] = {} }
    for _, l in ipairs(lines(c:rc(i, "INFO", ...))) do
        local h = l:match("^# (.+)$")
        if h then
            table.insert(t["#"], h)
        else
            local k, v = l:match("^([%w_]+):(.*)$")
            if k then
                t[k] = v
            end
        end
    end
    return t
end

describe("CLUSTER and INFO", function()
    local env = S.shared_cluster(setup, teardown)

    local function ids(c)
        local out = {}
        for i = 1, c.n do
            out[i] = c:rc(i, "CLUSTER", "MYID")
            assert.truthy(out[i]:match("^%x+$") and #out[i] == 40, out[i])
        end
        return out
    end

    it("CLUSTER SLOTS: one range, the leader first, then the followers, on every node", function()
        local c, leader = env.c, env.leader
        local id = ids(c)
        for i = 1, c.n do
            local l = lines(c:rc(i, "CLUSTER", "SLOTS"))
            assert.same({ "0", "16383", "127.0.0.1", tostring(c:client_port(leader)),
                id[leader] }, { l[1], l[2], l[3], l[4], l[5] })
            local replicas = {}
            for k = 6, #l do
                if l[k] == "127.0.0.1" then
                    replicas[#replicas + 1] = l[k + 1] .. " " .. l[k + 2]
                end
            end
            table.sort(replicas)
            local want = {}
            for j = 1, c.n do
                if j ~= leader then
                    want[#want + 1] = c:client_port(j) .. " " .. id[j]
                end
            end
            table.sort(want)
            assert.same(want, replicas)
        end
    end)

    it("CLUSTER SHARDS and NODES show the same master and replicas", function()
        local c, leader, follower = env.c, env.leader, env.follower
        local id = ids(c)
        local shards = c:rc(follower, "CLUSTER", "SHARDS")
        assert.truthy(shards:find("slots\n0\n16383\nnodes\n", 1, true), shards)
        assert.truthy(shards:find("id\n" .. id[leader] .. "\nport\n" .. c:client_port(leader)
            .. "\nip\n127.0.0.1\nendpoint\n127.0.0.1\nrole\nmaster\n", 1, true), shards)
        assert.equal(2, select(2, shards:gsub("role\nreplica\n", "")), shards)
        local nodes = lines(c:rc(follower, "CLUSTER", "NODES"))
        assert.equal(3, #nodes)
        for _, l in ipairs(nodes) do
            local nid, port, bus, flags, master, slots = l:match(
                "^(%x+) 127%.0%.0%.1:(%d+)@(%d+) (%S+) (%S+) 0 0 %d+ connected ?(.*)$")
            assert.truthy(nid, l)
            local j = tonumber(port) - env.c.base
            assert.equal(id[j], nid)
            assert.equal(c:peer_port(j), tonumber(bus))
            assert.equal(j == follower, flags:find("myself", 1, true) ~= nil, l)
            if j == leader then
                assert.truthy(flags:match("master$"), l)
                assert.same({ "-", "0-16383" }, { master, slots })
            else
                assert.truthy(flags:match("slave$"), l)
                assert.same({ id[leader], "" }, { master, slots })
            end
        end
        assert.equal(2, #lines(c:rc(follower, "CLUSTER", "REPLICAS", id[leader])))
    end)

    it("CLUSTER INFO, KEYSLOT and Redis's errors", function()
        local c, follower = env.c, env.follower
        local ci = c:rc(follower, "CLUSTER", "INFO")
        assert.truthy(ci:find("cluster_state:ok\r?\n"), ci)
        assert.truthy(ci:find("cluster_known_nodes:3\r?\n"), ci)
        assert.truthy(ci:find("cluster_size:1\r?\n"), ci)
        -- Redis 7.0's own answers for these keys: the CRC16 and the hash tag rules.
        for key, slot in pairs({ foo = 12182, ["{user1}.a"] = 8106, ["{}a"] = 10875,
            ["{a"] = 10276, ["a}b{c}"] = 7365, ["{{x}}"] = 11068 }) do
            assert.equal(tostring(slot), c:rc(follower, "CLUSTER", "KEYSLOT", key), key)
        end
        assert.equal("ERR unknown subcommand 'BOGUS'. Try CLUSTER HELP.",
            rc(c, follower, "CLUSTER", "BOGUS"))
        assert.equal("ERR wrong number of arguments for 'cluster|keyslot' command",
            rc(c, follower, "CLUSTER", "KEYSLOT"))
        assert.equal("ERR The specified node is not a master",
            rc(c, follower, "CLUSTER", "REPLICAS", c:rc(follower, "CLUSTER", "MYID")))
        assert.equal("ERR Unknown node " .. ("0"):rep(40),
            rc(c, follower, "CLUSTER", "REPLICAS", ("0"):rep(40)))
    end)

    it("INFO: Redis's sections in order, selected like Redis", function()
        local c, follower = env.c, env.follower
        local all = { "Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
            "CPU", "Modules", "Errorstats", "Cluster", "Keyspace", "Raft" }
        assert.same(all, info(c, follower)["#"])
        assert.same(all, info(c, follower, "default")["#"])
        assert.same({ "Replication" }, info(c, follower, "rEpLiCaTiOn")["#"])
        assert.equal("", c:rc(follower, "INFO", "bogus"))
        local everything = info(c, follower, "everything")["#"]
        assert.equal(14, #everything)
        local t = info(c, follower)
        assert.equal("7.0.0", t.redis_version)
        assert.equal("0", t.loading)
        assert.equal("1", t.cluster_enabled)
        assert.equal(tostring(c:client_port(follower)), t.tcp_port)
        assert.equal(tostring(c.pids[follower]), t.process_id)
        assert.equal("follower", t.raft_role)
        assert.truthy(tonumber(t.used_memory) > 0, t.used_memory)
    end)

    it("INFO replication: the leader is the master, the followers its slaves", function()
        local c, leader, follower = env.c, env.leader, env.follower
        local m = info(c, leader, "replication")
        assert.equal("master", m.role)
        assert.equal("2", m.connected_slaves)
        local ports = {}
        for k = 0, 1 do
            local line = assert(m["slave" .. k], "slave" .. k)
            ports[#ports + 1] = line:match("^ip=127%.0%.0%.1,port=(%d+),state=online,offset=%d+,lag=0$")
        end
        table.sort(ports)
        local want = {}
        for j = 1, c.n do
            if j ~= leader then
                want[#want + 1] = tostring(c:client_port(j))
            end
        end
        assert.same(want, ports)
        local s = info(c, follower, "replication")
        assert.equal("slave", s.role)
        assert.equal("127.0.0.1", s.master_host)
        assert.equal(tostring(c:client_port(leader)), s.master_port)
        assert.equal("up", s.master_link_status)
    end)
end)

describe("CLUSTER on a node that knows no leader", function()
    it("answers CLUSTERDOWN, cluster_state:fail and master_link_status:down", function()
        local c, leader = S.started_cluster()
        local ok, err = pcall(function()
            local last = S.follower(c, leader)
            for i = 1, c.n do
                if i ~= last then
                    c:kill(i)
                end
            end
            S.wait(20, "node " .. last .. " knows no leader", function()
                return c:info(last).leader_id == "0"
            end)
            assert.equal("CLUSTERDOWN The cluster is down", rc(c, last, "CLUSTER", "SLOTS"))
            assert.equal("CLUSTERDOWN The cluster is down", rc(c, last, "CLUSTER", "NODES"))
            assert.truthy(c:rc(last, "CLUSTER", "INFO"):find("cluster_state:fail", 1, true))
            local r = info(c, last, "replication")
            assert.same({ "slave", "down" }, { r.role, r.master_link_status })
        end)
        c:stop()
        assert(ok, err)
    end)
end)
