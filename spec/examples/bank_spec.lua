-- examples/bank.lua through luaraft.harness: transfers are all or nothing, and no sequence
-- of them creates or destroys money.
local harness = require("luaraft.harness")

describe("examples/bank.lua", function()
    local m
    before_each(function()
        m = harness.load("examples/bank.lua")
    end)
    after_each(function()
        m:close()
    end)

    it("opens accounts and transfers between them", function()
        assert.are.same({ ok = "OK" }, m:apply({ "OPEN", "alice", "100" }))
        assert.are.same({ ok = "OK" }, m:apply({ "open", "bob", "0" }))
        assert.are.same({ ok = "OK" }, m:apply({ "TRANSFER", "alice", "bob", "30" }))
        assert.are.equal(70, m:query({ "BALANCE", "alice" }))
        assert.are.equal(30, m:query({ "BALANCE", "bob" }))
        assert.are.equal(harness.null, m:query({ "BALANCE", "carol" }))
        assert.are.equal(100, m:query({ "TOTAL" }))
        assert.are.equal(2, m:query({ "ACCOUNTS" }))
        assert.are.same({ ok = "OK" }, m:apply({ "TRANSFER", "bob", "alice", "30" }))
        assert.are.equal(0, m:query({ "BALANCE", "bob" }))
    end)

    it("refuses bad transfers and changes nothing", function()
        m:apply({ "OPEN", "alice", "100" })
        m:apply({ "OPEN", "bob", "5" })
        local refused = {
            { { "TRANSFER", "bob", "alice", "6" }, "ERR insufficient funds" },
            { { "TRANSFER", "alice", "carol", "1" }, "ERR no such account 'carol'" },
            { { "TRANSFER", "carol", "alice", "1" }, "ERR no such account 'carol'" },
            { { "TRANSFER", "alice", "bob", "0" }, "ERR amount must be positive" },
            { { "TRANSFER", "alice", "bob", "-1" }, "ERR amount must be a non-negative integer" },
            { { "TRANSFER", "alice", "bob", "1e2" }, "ERR amount must be a non-negative integer" },
            { { "TRANSFER", "alice", "bob" },
                "ERR wrong number of arguments for 'transfer' command" },
            { { "OPEN", "alice", "1" }, "ERR account exists" },
            { { "OPEN", "rich", tostring(math.maxinteger) }, "ERR total would overflow" },
            { { "WITHDRAW", "alice", "1" }, "ERR unknown command 'WITHDRAW'" },
        }
        for _, case in ipairs(refused) do
            assert.are.same({ err = case[2] }, m:apply(case[1]))
        end
        assert.are.same({ err = "ERR unknown command 'OPEN'" }, m:query({ "OPEN", "x", "1" }))
        assert.are.equal(100, m:query({ "BALANCE", "alice" }))
        assert.are.equal(5, m:query({ "BALANCE", "bob" }))
        assert.are.equal(105, m:query({ "TOTAL" }))
        assert.are.equal(2, m:query({ "ACCOUNTS" }))
    end)

    it("keeps TOTAL constant through a seeded random run of transfers", function()
        -- The spec's own generator (a fixed seed), so a failure replays exactly.
        local state = 12345
        local function rand(n)
            state = (state * 6364136223846793005 + 1442695040888963407) & 0x7FFFFFFFFFFFFFFF
            return (state >> 33) % n + 1
        end
        local n, total = 12, 0
        for i = 1, n do
            m:apply({ "OPEN", "acct" .. i, tostring(i * 100) })
            total = total + i * 100
        end
        local ok, refused = 0, 0
        for _ = 1, 3000 do
            -- Amounts up to 1500 and accounts picked twice over, so some transfers
            -- overdraw, some name an unknown account and some go from an account to itself.
            local from, to = "acct" .. rand(n + 1), "acct" .. rand(n + 1)
            local reply = m:apply({ "TRANSFER", from, to, tostring(rand(1500) - 1) })
            if reply.ok then
                ok = ok + 1
            else
                refused = refused + 1
            end
            assert.are.equal(total, m:query({ "TOTAL" }))
        end
        assert.is_true(ok > 500 and refused > 500, ok .. " ok, " .. refused .. " refused")
        local sum = 0
        for i = 1, n do
            local balance = m:query({ "BALANCE", "acct" .. i })
            assert.is_true(balance >= 0)
            sum = sum + balance
        end
        assert.are.equal(total, sum)
        local queries = { { "TOTAL" }, { "ACCOUNTS" } }
        for i = 0, n + 1 do
            queries[#queries + 1] = { "BALANCE", "acct" .. i }
        end
        m:check_snapshot(queries):close()
        m:replay_matches(queries)
    end)
end)
