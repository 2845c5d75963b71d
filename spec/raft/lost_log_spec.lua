-- A node that lost its log but kept its term and vote (a damaged store moved aside:
-- src/node/runtime_recover.c), booted with raft_boot.recover_term (raft.h). The same
-- scenario as the simulator's amnesia test (spec/raft/sim_smoke_spec.lua): node A
-- acknowledged committed entries and loses them, the leader is gone, and the stale node B
-- could win an election with A's vote and lose the committed entries. With recover_term
-- A refuses its vote, so no leader is elected until the old leader returns, and nothing
-- committed is lost; once a leader of a later term has given A its log, A votes again.
local sim = require("luaraft.sim")

local t = require("luaraft.test.cluster")

describe("a node that lost its log", function()
  for _, seed in ipairs({ 7, 8, 9, 10, 11 }) do
    it("does not help elect a leader that lacks what it acknowledged (seed " .. seed .. ")",
      function()
      local c = sim.cluster{nodes = 3, seed = seed}
      local leader, a, b, last = t.committed_without(c, 10)
      local committed_term = c:term_at(leader, last)
      c:crash(leader)
      c:lose_log(a)
      c:restart(a)
      assert.equals(0, c:last_index(a))
      c:heal()
      -- With the leader down, only A's vote could elect B: the checker (leader
      -- completeness) would stop the run if it did, and no one may lead.
      assert.is_false(c:run_until(function() return c:leader() ~= nil end, 5000))
      assert.equals(0, c:last_index(a))
      c:restart(leader)
      assert.is_true(c:run_until(function()
        local l = c:leader()
        return l ~= nil and c:commit(l) >= last and c:commit(a) >= last
      end, 5000))
      assert.equals(committed_term, c:term_at(a, last))
      -- A votes again: with the leader down once more, A and B elect one of themselves.
      local l = c:leader()
      c:crash(l)
      assert.is_true(c:run_until(function()
        local n = c:leader()
        return n ~= nil and n ~= l
      end, 5000))
    end)
  end
end)
