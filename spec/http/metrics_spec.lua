-- /metrics, /health and /status of real 3-node clusters started with --http.
--
-- Can catch: an exposition that breaks the Prometheus text format (the strict parser in
-- support.lua: HELP/TYPE, names, labels, values, histograms whose buckets are not
-- monotone or whose +Inf bucket differs from _count); a role gauge that does not say
-- leader on exactly one node; indexes, proposal, apply, read, error and snapshot
-- counters that do not move when writes, reads, failing writes and reads and RAFT.SNAPSHOT
-- happen; fsync and commit latency histograms that nothing feeds; per-peer match and
-- lag missing on the leader; /health answering 200 without a leader or 503 with one;
-- /status that is not JSON, lacks CORS or says something RAFT.INFO contradicts.
-- Cannot catch: whether the latencies measured are the true ones (only that commits and
-- fsyncs are timed and the mean commit latency is plausible), nor a missing fsync
-- (kill -9 keeps the page cache).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/support.lua")

describe("--http", function()
    local c

    before_each(function()
        c = S.http_cluster{ n = 3 }
        c:start_all()
        c:wait_leader(20)
        S.wait(20, "every node's /status", function()
            for i = 1, 3 do
                if S.status(c:http_port(i)) == nil then
                    return false
                end
            end
            return true
        end)
    end)

    after_each(function()
        c:stop()
    end)

    local function all_metrics()
        local m = {}
        for i = 1, 3 do
            m[i] = S.metrics(c:http_port(i))
        end
        return m
    end

    it("serves Prometheus text whose numbers follow what the cluster does", function()
        local leader = c:wait_leader(10)
        local follower = leader % 3 + 1
        -- The role gauge says leader on exactly one node, the one RAFT.INFO names.
        local before = S.wait(10, "one leader in the metrics", function()
            local m = all_metrics()
            local leaders = 0
            for i = 1, 3 do
                leaders = leaders + S.sample(m[i], "luaraft_role", { role = "leader" })
            end
            return leaders == 1 and S.sample(m[leader], "luaraft_role", { role = "leader" }) == 1
                and m
        end)
        for i = 1, 3 do
            assert.are.equal(1, S.sample(before[i], "luaraft_info",
                { node_id = tostring(i), version = "0.1.0", script = "kv.lua" }))
            assert.are.equal(1, S.sample(before[i], "luaraft_role",
                { role = i == leader and "leader" or "follower" }))
        end
        local m0 = before[leader]

        for k = 1, 20 do
            assert.are.equal("OK", c:rc(follower, "SET", "k" .. k, "v"))
        end
        assert.are.equal("v", c:rc(follower, "GET", "k1"))
        assert.are.equal("v", c:rc(follower, "GET", "k2"))
        -- INCR of a value that is not an integer: an error reply, applied on every replica.
        assert.truthy(c:rc(follower, "INCR", "k3"):match("not an integer"))
        -- GET of a hash: a read whose reply is an error.
        assert.are.equal("1", c:rc(follower, "HSET", "h", "f", "v"))
        assert.truthy(c:rc(follower, "GET", "h"):match("^WRONGTYPE"))
        assert.truthy(c:rc(follower, "RAFT.SNAPSHOT"):match("^OK"))

        local m1 = S.metrics(c:http_port(leader))
        local function grew(name, by, m_before, m_after)
            local a, b = S.sample(m_before, name), S.sample(m_after, name)
            assert.is_true(b - a >= by, name .. " went from " .. a .. " to " .. b)
        end
        grew("luaraft_commit_index", 22, m0, m1)
        grew("luaraft_applied_index", 22, m0, m1)
        grew("luaraft_proposals_total", 22, m0, m1)
        grew("luaraft_applied_entries_total", 22, m0, m1)
        grew("luaraft_apply_errors_total", 1, m0, m1)
        local function hist(m, name)
            for _, f in pairs(m.families) do
                if f.name == name then
                    return f
                end
            end
            error("no histogram " .. name)
        end
        -- Every proposal batch the leader made is timed to its commit; every store
        -- transaction to its fsync.
        assert.is_true(hist(m1, "luaraft_commit_latency_seconds").count
            - hist(m0, "luaraft_commit_latency_seconds").count >= 1)
        assert.is_true(hist(m1, "luaraft_fsync_seconds").count
            > hist(m0, "luaraft_fsync_seconds").count)
        local commit = hist(m1, "luaraft_commit_latency_seconds")
        assert.is_true(commit.sum > 0 and commit.sum / commit.count < 5)
        -- Per-peer progress on the leader: both followers, their lag what match says.
        local last = S.sample(m1, "luaraft_last_log_index")
        for i = 1, 3 do
            if i ~= leader then
                local match = S.sample(m1, "luaraft_peer_match_index", { peer = tostring(i) })
                local lag = S.sample(m1, "luaraft_peer_lag_entries", { peer = tostring(i) })
                assert.is_true(match > S.sample(m0, "luaraft_peer_match_index", { peer = tostring(i) }))
                assert.are.equal(last - match, lag)
                assert.are.equal(1, S.sample(m1, "luaraft_peer_connected", { peer = tostring(i) }))
            end
        end

        -- The follower served the reads and took the snapshot; its error counter moved too
        -- (the failing INCR was applied there as everywhere).
        local f1 = S.metrics(c:http_port(follower))
        grew("luaraft_reads_total", 2, before[follower], f1)
        grew("luaraft_read_index_rounds_total", 1, before[follower], f1)
        grew("luaraft_read_errors_total", 1, before[follower], f1)
        grew("luaraft_apply_errors_total", 1, before[follower], f1)
        grew("luaraft_client_connections_total", 26, before[follower], f1)
        assert.are.equal(0, S.sample(f1, "luaraft_proposals_total"))
        assert.is_true(hist(f1, "luaraft_snapshot_duration_seconds").count >= 1)
        assert.is_true(hist(f1, "luaraft_snapshot_size_bytes").count >= 1)
        assert.is_true(hist(f1, "luaraft_snapshot_size_bytes").sum > 0)
        assert.is_true(S.sample(f1, "luaraft_snapshot_index") > 0)
        -- No peer progress on a follower: it would be stale.
        assert.is_nil(S.sample(f1, "luaraft_peer_match_index", { peer = tostring(leader) }))
    end)

    it("answers /health and /status as the cluster stands, 503 once no leader is known", function()
        local leader = c:wait_leader(10)
        for i = 1, 3 do
            local h = assert(S.get(c:http_port(i), "/health"))
            assert.are.equal(200, h.status)
            assert.are.equal("ok\n", h.body)
            local r = assert(S.get(c:http_port(i), "/status"))
            assert.are.equal("*", r.headers["access-control-allow-origin"])
            assert.are.equal("application/json", r.headers["content-type"])
            local st = assert(S.json.decode(r.body))
            local info = c:info(i)
            assert.are.equal(i, st.node_id)
            assert.are.equal(info.role, st.role)
            assert.are.equal(leader, st.leader_id)
            assert.are.equal("127.0.0.1:" .. c:client_port(leader), st.leader_addr)
            assert.are.equal("127.0.0.1:" .. c:http_port(i), st.http_addr)
            assert.is_true(st.healthy)
            assert.are.equal(2, #st.peers)
            for _, p in ipairs(st.peers) do
                assert.are.equal("127.0.0.1:" .. c:peer_port(p.id), p.raft_addr)
                assert.are.equal(i == leader, p.match ~= nil)
            end
        end
        -- HEAD: GET's headers, no body.
        local head = assert(S.get(c:http_port(1), "/status", "HEAD"))
        assert.are.equal(200, head.status)
        assert.are.equal("", head.body)
        assert.is_true(tonumber(head.headers["content-length"]) > 0)

        -- Two nodes gone: the last one cannot know a leader.
        local survivor = leader % 3 + 1
        for i = 1, 3 do
            if i ~= survivor then
                c:kill(i)
            end
        end
        local h = S.wait(20, "503 from the survivor", function()
            local r = S.get(c:http_port(survivor), "/health")
            return r and r.status == 503 and r
        end)
        assert.truthy(h.body:match("^no leader known"))
        local st = S.status(c:http_port(survivor))
        assert.is_false(st.healthy)
        assert.are.equal(0, st.leader_id)
        local m = S.metrics(c:http_port(survivor))
        assert.are.equal(0, S.sample(m, "luaraft_leader_id"))
        assert.are.equal(0, S.sample(m, "luaraft_role", { role = "leader" }))
        for i = 1, 3 do
            if i ~= survivor then
                assert.are.equal(0, S.sample(m, "luaraft_peer_connected", { peer = tostring(i) }))
            end
        end
    end)
end)

-- The parser the specs above rely on must refuse what Prometheus would: else they could
-- pass on a broken exposition.
describe("the exposition parser of these specs", function()
    local good = "# HELP a_seconds A.\n# TYPE a_seconds histogram\n"
        .. "a_seconds_bucket{le=\"0.1\"} 1\na_seconds_bucket{le=\"+Inf\"} 2\n"
        .. "a_seconds_sum 0.3\na_seconds_count 2\n# HELP b B.\n# TYPE b gauge\nb{x=\"q\\\"\"} 1\n"

    it("takes a well-formed exposition", function()
        local m = S.parse_metrics(good)
        assert.are.equal(1, S.sample(m, "b", { x = "q\"" }))
        assert.are.equal(2, m.families.a_seconds.count)
    end)

    it("refuses each kind of breakage", function()
        for what, text in pairs({
            ["+Inf bucket other than _count"] = good:gsub("a_seconds_count 2", "a_seconds_count 3"),
            ["decreasing buckets"] = good:gsub("le=\"0.1\"} 1", "le=\"0.1\"} 5"),
            ["a sample outside its family"] = good .. "c 1\n",
            ["TYPE without HELP"] = good .. "# TYPE d gauge\nd 1\n",
            ["a bad value"] = good:gsub("b{x=\"q\\\"\"} 1", "b{x=\"q\\\"\"} one"),
            ["a bad label"] = good:gsub("x=", "1x="),
            ["a bad escape"] = good:gsub("q\\\"", "q\\t"),
            ["no newline at the end"] = good:sub(1, -2),
            ["a family twice"] = good .. "# HELP b B.\n# TYPE b gauge\nb 2\n",
            ["a missing _sum"] = good:gsub("a_seconds_sum 0.3\n", ""),
        }) do
            assert.is_false(pcall(S.parse_metrics, text), what)
        end
    end)
end)
