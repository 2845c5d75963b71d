-- ioredis against a real 3-node cluster of examples/kv.lua, with the client's default
-- options (RESP3 with HELLO 3, the INFO ready check): each test runs one check of
-- ioredis.js and passes when the check printed "ok CHECK".
--
-- What it catches: a connection that never becomes ready; replies ioredis cannot parse
-- (pipelines, MULTI/EXEC, a WATCH abort, SCAN); a CLUSTER SLOTS or CLUSTER INFO that
-- Redis.Cluster cannot use; writes that stop for good after kill -9 of the leader.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local F = dofile(S.clients_dir .. "/failover.lua")

S.client_tests({ describe = describe, it = it, setup = setup, teardown = teardown }, "ioredis",
    "ioredis", {
        { "becomes ready and runs commands, on the leader and on a follower", "basic",
            { "leader", "follower" } },
        { "runs a pipeline", "pipeline", { "follower" } },
        { "runs multi/exec, and a WATCH abort returns null", "multi", { "follower" } },
        { "iterates scanStream over every key", "scan", { "follower" } },
        { "works as Redis.Cluster against the three nodes", "cluster", { "all" } },
    })

describe("ioredis Redis.Cluster", function()
    it("goes on writing after kill -9 of the leader", function()
        F.run("ioredis")
    end)
end)
