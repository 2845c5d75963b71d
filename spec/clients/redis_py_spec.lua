-- redis-py (Debian's python3-redis 4.3.4) against a real 3-node cluster of
-- examples/kv.lua, with the client's default options: each test runs one check of
-- redis_py.py and passes when the check printed "ok CHECK".
--
-- What it catches: a reply shape or handshake redis-py cannot parse (INFO, EXECABORT, a
-- WATCH abort, SCAN cursors, CLIENT SETNAME, the cluster discovery redis-py's RedisCluster
-- does with INFO, CLUSTER SLOTS and COMMAND, and its rediscovery after kill -9 of the
-- leader); a follower that answers a GET pipelined behind a SET on the same connection
-- with the old value.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local F = dofile(S.clients_dir .. "/failover.lua")

S.client_tests({ describe = describe, it = it, setup = setup, teardown = teardown },
    "redis-py", "py", {
        { "runs basic commands, INCR and INCRBY, on the leader and on a follower", "basic",
            { "leader", "follower" } },
        { "runs pipeline() (MULTI/EXEC) and pipeline(transaction=False)", "pipeline",
            { "leader", "follower" } },
        { "gets EXECABORT for a MULTI with a refused command, and nothing runs", "execabort",
            { "follower" } },
        { "retries a WATCH transaction whose key another connection changed", "watch",
            { "follower" } },
        { "iterates scan_iter over every key", "scan", { "follower" } },
        { "connects with client_name= and db=0", "options", { "follower" } },
        { "parses info()", "info", { "leader", "follower" } },
        { "reads its own writes through a follower: SET then GET pipelined, 200 tries",
            "follower_reads", { "follower" } },
        { "works as RedisCluster", "cluster", { "follower" } },
    })

describe("redis-py RedisCluster", function()
    it("goes on writing after kill -9 of the leader", function()
        F.run("py")
    end)
end)
