-- The log cache bounded in bytes, from the outside: with --log-cache-bytes 4K the leader
-- keeps only the newest payloads in memory, and a follower that was stopped while
-- hundreds of writes went by catches up from payloads the leader reads back from LMDB.
--
-- What it catches: a leader that cannot serve a lagging follower once payloads left
-- memory (the follower would never see the values), payloads read back wrong, a cache
-- that is not bounded (RAFT.INFO's log_cache_bytes). What it cannot: how long the reads
-- take on the loop thread (a benchmark's question).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

describe("a log cache bounded in bytes", function()
    local c

    after_each(function()
        if c then
            os.execute("kill -CONT " .. table.concat(c.pids, " ") .. " 2>/dev/null")
            c:stop()
            c = nil
        end
    end)

    it("takes a snapshot once the log passes --snapshot-bytes", function()
        c = S.cluster({ n = 1, flags = { "--snapshot-entries", "0", "--snapshot-bytes", "64K",
            "--snapshot-trailing", "10" } })
        c:start_all()
        c:wait_leader(10)
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        for i = 1, 100 do
            f:write("SET k" .. i .. " " .. string.rep("v", 1000) .. "\n")
        end
        f:close()
        S.sh("timeout 30 redis-cli -p " .. c:client_port(1) .. " <" .. S.quote(script))
        os.remove(script)
        -- 100 KB of values passed 64K: one snapshot was taken by bytes (entries are off),
        -- and the log behind it compacted but for 10 trailing entries, which do not count
        -- toward the next one (or one would follow every apply).
        S.wait(10, "a snapshot by log bytes", function()
            return tonumber(c:info(1).snapshot_index) > 0
        end)
        assert.is_true(tonumber(c:info(1).log_bytes) < 65536, c:info(1).log_bytes)
        assert.equal(1, select(2, S.read_file(c:log(1)):gsub("snapshot taken at index", "")))
        assert.equal(string.rep("v", 1000), c:rc(1, "GET", "k1"))
    end)

    it("serves a lagging follower from the store", function()
        c = S.cluster({ n = 3, flags = { "--log-cache-bytes", "4K", "--snapshot-entries", "0",
            "--snapshot-bytes", "0" } })
        c:start_all()
        local leader = c:wait_leader(10)
        local lagging = leader % 3 + 1
        os.execute("kill -STOP " .. c.pids[lagging])
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        for i = 1, 300 do
            f:write("SET k" .. i .. " " .. string.rep(string.char(97 + i % 26), 100) .. i .. "\n")
        end
        f:close()
        S.sh("timeout 30 redis-cli -p " .. c:client_port(leader) .. " <" .. S.quote(script))
        os.remove(script)
        local info = c:info(leader)
        assert.is_true(tonumber(info.log_cache_bytes) <= 4096, info.log_cache_bytes)
        assert.is_true(tonumber(info.log_bytes) > 30000, info.log_bytes)
        os.execute("kill -CONT " .. c.pids[lagging])
        S.wait(20, "the lagging follower catching up", function()
            return c:info(lagging).applied_index == c:info(leader).applied_index
        end)
        for _, i in ipairs({ 1, 150, 300 }) do
            local want = string.rep(string.char(97 + i % 26), 100) .. i
            assert.equal(want, c:rc(lagging, "GET", "k" .. i), "k" .. i .. " on the follower")
        end
    end)
end)
