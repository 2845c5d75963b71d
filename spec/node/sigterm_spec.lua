-- SIGTERM and SIGINT as real processes (issue 9, item 2): a leader hands its leadership
-- over before it exits, a follower just exits, a second signal exits at once, and the
-- graceful part is bounded (src/node/runtime.c begin_shutdown, src/node/transfer.c).
-- Three nodes of examples/kv.lua on loopback under a steady write load
-- (load_writer.lua), every acknowledged write read back afterwards.
--
-- What it catches: a leader that exits without handing over (the survivors then elect by
-- timeout: a precandidate round shows in RAFT.INFO's elections_timeout, and the new
-- leader's elections_transfer does not move), a handover that takes more than one
-- election (the term moves by more than one), an acknowledged write lost across the stop,
-- a stop that exits non-zero, a follower's stop that disturbs the leader (its term
-- changes), SIGINT treated differently from SIGTERM, a second signal that waits for the
-- graceful part (the exit status is then 0, not the 143 of SIGTERM's default action), a
-- graceful part that never ends when no transfer can succeed.
--
-- What it cannot catch: a missing fsync (the page cache survives the process); a write
-- whose reply was lost in the stop (such a write is not acknowledged, so it is not read
-- back; the writer only counts what it got); the unavailability as a bound: the spec
-- prints the longest pause between acknowledged writes around the SIGTERM but asserts
-- nothing about it (bench/transfer_gap.lua reports it over several runs).
local T = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/transfer_support.lua")
local S = T.S

describe("a node of a 3-node cluster stopped by a signal", function()
    local c, w

    after_each(function()
        T.teardown(c, w)
        c, w = nil, nil
    end)

    for _, sig in ipairs({ "TERM", "INT" }) do
        it("SIG" .. sig .. " of the leader under load: the leadership is handed over, no "
            .. "acknowledged write is lost", function()
            c = S.cluster({ n = 3 })
            T.start_all_watched(c)
            local old = T.settled_leader(c)
            w = T.writer(c, { 1, 2, 3 })
            w.wait_acks(300)
            local survivors = c:others(old)
            local before = {}
            for _, i in ipairs(survivors) do
                before[i] = T.counters(c, i)
            end
            local term = T.counters(c, old).term
            local signalled = S.now()
            T.signal(c, old, sig)
            assert.equal(0, T.wait_exit(c, old), "the old leader's exit status")
            w.wait_acks(300, signalled)
            w.stop()

            local log = S.read_file(c:log(old))
            local new = T.settled_leader(c)
            assert.is_truthy(log:find("leadership transfer: node " .. new .. " is the leader",
                1, true), "the old leader's log:\n" .. log)
            assert.is_truthy(log:find("stopped", 1, true))
            -- Elected by the handover, in one election: the next term, begun by
            -- TIMEOUT_NOW on the new leader, and no survivor's election timeout passed.
            for _, i in ipairs(survivors) do
                local after = T.counters(c, i)
                assert.equal(term + 1, after.term, "node " .. i .. "'s term")
                assert.equal(before[i].timeout, after.timeout,
                    "node " .. i .. " began an election by timeout")
                assert.equal(before[i].transfer + (i == new and 1 or 0), after.transfer,
                    "node " .. i .. "'s elections begun by a transfer")
            end
            local acks = w.acks()
            T.assert_none_lost(c, survivors, acks)
            print(string.format("SIG%s of the leader: longest pause between acknowledged writes "
                .. "%.1f ms (%d writes acknowledged)", sig,
                1000 * T.longest_gap(acks, signalled, 1), #acks))
        end)

        it("SIG" .. sig .. " of a follower under load: it exits 0 and the cluster goes on",
            function()
                c = S.cluster({ n = 3 })
                T.start_all_watched(c)
                local leader = T.settled_leader(c)
                local follower = c:others(leader)[1]
                w = T.writer(c, { 1, 2, 3 })
                w.wait_acks(200)
                local before = T.counters(c, leader)
                T.signal(c, follower, sig)
                assert.equal(0, T.wait_exit(c, follower), "the follower's exit status")
                local stopped = S.now()
                w.wait_acks(200, stopped)
                w.stop()
                local log = S.read_file(c:log(follower))
                assert.is_truthy(log:find("stopped", 1, true), log)
                assert.is_falsy(log:find("leadership transfer", 1, true), log)
                local after = T.counters(c, leader)
                assert.equal("leader", after.role)
                assert.equal(before.term, after.term, "the leader's term moved")
                T.assert_none_lost(c, c:others(follower), w.acks())
            end)
    end

    -- Election timeouts of 1 s, and both followers stopped (SIGSTOP): the leader's
    -- handover cannot succeed. Returns the leader.
    local function leader_alone()
        c = S.cluster({ n = 3, flags = { "--election-ticks", "100" } })
        T.start_all_watched(c)
        local leader = T.settled_leader(c, 30)
        for _, i in ipairs(c:others(leader)) do
            T.signal(c, i, "STOP")
        end
        return leader
    end

    it("exits at once on a second SIGTERM, while the first waits for a transfer", function()
        local leader = leader_alone()
        T.signal(c, leader, "TERM")
        S.wait(10, "the leader beginning its shutdown", function()
            return S.read_file(c:log(leader)):find("SIGTERM: shutting down", 1, true)
        end)
        T.signal(c, leader, "TERM")
        -- 143 = 128 + SIGTERM: the signal's default action ended it, not the graceful stop.
        assert.equal(143, T.wait_exit(c, leader))
        assert.is_falsy(S.read_file(c:log(leader)):find("stopped", 1, true))
    end)

    it("stops after its bound when no transfer can succeed", function()
        local leader = leader_alone()
        local t0 = S.now()
        T.signal(c, leader, "INT")
        assert.equal(0, T.wait_exit(c, leader, 30))
        local log = S.read_file(c:log(leader))
        assert.is_truthy(log:find("leadership transfer to node %d+ failed") or
            log:find("did not end within 2000 ms: stopping anyway", 1, true), log)
        assert.is_truthy(log:find("stopped", 1, true), log)
        print(string.format("SIGINT with no follower answering: exited after %.2f s (bound: "
            .. "two election timeouts, 2 s)", S.now() - t0))
    end)
end)
