-- node-redis (npm "redis") against a real 3-node cluster of examples/kv.lua, with the
-- client's default options (RESP3 with HELLO 3): each test runs one check of
-- node_redis.js and passes when the check printed "ok CHECK".
--
-- What it catches: a HELLO 3 or handshake reply that fails createClient().connect();
-- replies node-redis cannot parse (MULTI/EXEC, execAsPipeline, a WATCH abort, SCAN); a
-- CLUSTER SLOTS createCluster cannot use; writes that stop for good after kill -9 of the
-- leader.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local F = dofile(S.clients_dir .. "/failover.lua")

S.client_tests({ describe = describe, it = it, setup = setup, teardown = teardown },
    "node-redis", "node_redis", {
        { "connects and runs commands, on the leader and on a follower", "basic",
            { "leader", "follower" } },
        { "runs multi/exec and execAsPipeline, and a WATCH abort raises WatchError", "multi",
            { "follower" } },
        { "iterates scanIterator over every key", "scan", { "follower" } },
        { "works as createCluster against the three nodes", "cluster", { "all" } },
    })

describe("node-redis createCluster", function()
    it("goes on writing after kill -9 of the leader", function()
        F.run("node_redis")
    end)
end)
