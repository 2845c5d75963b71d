-- Every example on a live local 3-node cluster (real `luaraft node` processes started by
-- spec/node/support.lua), driven with redis-cli as a user would, through any node. The
-- bank also loses its leader mid-run and must keep every account and its TOTAL.
local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/examples/[^/]*$") or "."
local S = dofile(root .. "/spec/node/support.lua")

local ELECTION_S = 10

-- In the sanitizer build ctest preloads the ASan runtime for this directory (its other
-- specs load the C module), and every command support.lua runs would inherit it; ps can
-- deadlock with it preloaded. So, while these specs run, each command goes through
-- `env -u LD_PRELOAD` (the luaraft binary there is instrumented itself).
local popen, execute = io.popen, os.execute
local function unpreloaded(cmd)
    return "env -u LD_PRELOAD sh -c " .. S.quote(cmd)
end

-- redis-cli prints a reply without a terminal as: bulk strings and integers bare, nil as an
-- empty line, arrays one element a line, errors as "ERR ..." (with one more newline, which
-- rc drops).
describe("the examples on a live 3-node cluster", function()
    local c

    setup(function()
        if (os.getenv("LD_PRELOAD") or "") ~= "" then
            io.popen = function(cmd, ...) return popen(unpreloaded(cmd), ...) end
            os.execute = function(cmd) return execute(cmd and unpreloaded(cmd)) end
        end
    end)

    teardown(function()
        io.popen, os.execute = popen, execute
    end)

    local function rc(i, ...)
        return (c:rc(i, ...):gsub("\n$", ""))
    end

    local function start(script)
        c = S.cluster({ n = 3, script = root .. "/examples/" .. script })
        c:start_all()
        return c:wait_leader(ELECTION_S)
    end

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("counter.lua", function()
        start("counter.lua")
        assert.equal("1", rc(1, "INCR"))
        assert.equal("42", rc(2, "INCRBY", "41"))
        for i = 1, 3 do
            assert.equal("42", rc(i, "GET"))
        end
        assert.equal("ERR value is not an integer or out of range", rc(3, "INCRBY", "x"))
    end)

    it("kv.lua: expiry without writes, KEYS and SCAN", function()
        start("kv.lua")
        assert.equal("OK", rc(1, "SET", "greeting", "hello"))
        assert.equal("OK", rc(2, "SET", "session", "abc", "EX", "60"))
        assert.equal("OK", rc(3, "SET", "short", "x", "PX", "300"))
        local ttl = tonumber(rc(1, "TTL", "session"))
        assert.is_true(ttl == 60 or ttl == 59, tostring(ttl))
        assert.equal("-1", rc(2, "TTL", "greeting"))
        assert.equal("greeting", rc(3, "KEYS", "g*"))
        -- SCAN's cursors are numbers, as Redis's: a whole iteration sees every key.
        local seen, cursor = {}, "0"
        repeat
            local out = rc(1, "SCAN", cursor, "COUNT", "1")
            cursor = out:match("^(%d+)")
            assert(cursor, out)
            for k in out:gmatch("\n([^\n]+)") do
                seen[#seen + 1] = k
            end
        until cursor == "0"
        table.sort(seen)
        assert.same({ "greeting", "session", "short" }, seen)
        -- short expires by the log's clock, which the leader's TICKs move with no write.
        S.wait(5, "short expiring", function()
            return rc(2, "EXISTS", "short") == "0"
        end)
        assert.equal("-2", rc(3, "TTL", "short"))
        assert.equal("hello", rc(3, "GET", "greeting"))
    end)

    it("lock.lua: tokens and lease expiry", function()
        start("lock.lua")
        assert.equal("1", rc(1, "ACQUIRE", "db", "alice", "500"))
        assert.equal("", rc(2, "ACQUIRE", "db", "bob", "500"))
        assert.equal("alice", rc(3, "HOLDER", "db"))
        assert.equal("1", rc(1, "RENEW", "db", "alice", "500"))
        -- bob gets it once alice's lease has run out by the log's clock, with a new token.
        local token = S.wait(5, "the lease expiring", function()
            local r = rc(2, "ACQUIRE", "db", "bob", "10000")
            return r ~= "" and r
        end)
        assert.is_true(tonumber(token) >= 2, token)
        assert.equal("bob", rc(1, "HOLDER", "db"))
        assert.equal("0", rc(3, "RELEASE", "db", "alice"))
        assert.equal("1", rc(3, "RELEASE", "db", "bob"))
    end)

    it("queue.lua: reserve, redelivery and ack", function()
        start("queue.lua")
        assert.equal("1", rc(1, "PUSH", "jobs", "resize-42"))
        assert.equal("2", rc(2, "PUSH", "jobs", "resize-43"))
        assert.equal("1\nresize-42", rc(3, "RESERVE", "jobs", "300"))
        assert.equal("2\nresize-43", rc(1, "RESERVE", "jobs", "60000"))
        assert.equal("0", rc(2, "LEN", "jobs"))
        -- The first worker never acks: its item comes back after 300 ms.
        S.wait(5, "redelivery", function()
            return rc(3, "RESERVE", "jobs", "60000") == "1\nresize-42"
        end)
        assert.equal("ready\n0\nreserved\n2\nredelivered\n1", rc(1, "STATS", "jobs"))
        assert.equal("1", rc(2, "ACK", "jobs", "1"))
        assert.equal("1", rc(3, "ACK", "jobs", "2"))
        assert.equal("0", rc(1, "ACK", "jobs", "2"))
        assert.equal("", rc(1, "RESERVE", "jobs", "1000"))
    end)

    it("bank.lua: transfers keep TOTAL, through kill -9 of the leader", function()
        local leader = start("bank.lua")
        for i = 1, 5 do
            assert.equal("OK", rc(i % 3 + 1, "OPEN", "acct" .. i, "1000"))
        end
        assert.equal("ERR insufficient funds", rc(1, "TRANSFER", "acct1", "acct2", "1001"))
        -- Ring transfers, so every balance is known: acct_i gives 10*i to acct_{i+1}.
        for i = 1, 5 do
            assert.equal("OK", rc(i % 3 + 1, "TRANSFER", "acct" .. i,
                "acct" .. (i % 5 + 1), tostring(10 * i)))
        end
        local want = { 1000 - 10 + 50, 1000 - 20 + 10, 1000 - 30 + 20, 1000 - 40 + 30,
            1000 - 50 + 40 }
        c:kill(leader)
        local new = c:wait_leader(ELECTION_S)
        assert.are_not.equal(leader, new)
        for i = 1, 3 do
            if i ~= leader then
                assert.equal("5000", rc(i, "TOTAL"))
                for a = 1, 5 do
                    assert.equal(tostring(want[a]), rc(i, "BALANCE", "acct" .. a))
                end
            end
        end
        assert.equal("OK", rc(new, "TRANSFER", "acct5", "acct1", "990"))
        c:start(leader)
        S.wait(ELECTION_S, "the old leader catching up", function()
            return rc(leader, "BALANCE", "acct5") == "0"
        end)
        for i = 1, 3 do
            assert.equal("5000", rc(i, "TOTAL"))
        end
    end)
end)
