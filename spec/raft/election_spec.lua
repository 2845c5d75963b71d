-- Elections: who may win, and who must not disturb a working leader. Each scenario runs
-- on the simulator's virtual clock (10 ms ticks, election timeouts of 100-200 ms) with
-- the safety checker after every step.
local sim = require("luaraft.sim")

local ELECTION_MAX_MS = 200 -- 2 * election_ticks * tick_ms

local t = require("luaraft.test.cluster")
local elect, commit_value = t.elect, t.commit_value

describe("elections", function()
  it("elect exactly one leader in a healthy cluster, and keep it", function()
    local c = sim.cluster{nodes = 5, seed = 7}
    local leader = elect(c)
    local term = c:term(leader)
    c:run(3000)
    assert.equals(leader, c:leader())
    assert.equals(term, c:term(leader))
    local leaders = 0
    for id = 1, 5 do if c:role(id) == "leader" then leaders = leaders + 1 end end
    assert.equals(1, leaders)
  end)

  it("never let a candidate with a stale log win, however the votes fall", function()
    -- Node s misses committed entries; then the leader dies, and s is left with one
    -- up-to-date peer f. s may time out first, as often as it likes: f must refuse it,
    -- and only f can become leader. Forty seeds vary who times out first and the delays.
    for seed = 1, 40 do
      local c = sim.cluster{nodes = 3, seed = seed}
      local leader = elect(c)
      local f, s = table.unpack(t.others(c, leader))
      commit_value(c, leader, 1)
      c:isolate(s)
      local last
      for v = 2, 6 do last = commit_value(c, leader, v) end
      assert.is_true(c:last_index(s) < last)
      c:crash(leader)
      c:heal()
      local ok = c:run_until(function()
        assert.are_not.equal("leader", c:role(s), "stale node won (seed " .. seed .. ")")
        return c:leader() ~= nil
      end, 20 * ELECTION_MAX_MS)
      assert.is_true(ok, "no leader elected (seed " .. seed .. ")")
      assert.equals(f, c:leader())
      assert.is_true(c:last_index(f) >= last)
    end
  end)

  it("make a cut-off leader step down, and its return not disturb the new leader", function()
    local c = sim.cluster{nodes = 3, seed = 11}
    local old = elect(c)
    local term0 = c:term(old)
    commit_value(c, old, 1)
    c:isolate(old)
    -- Check-quorum: no majority heard within an election timeout, so it steps down.
    local stepped = c:run_until(function() return c:role(old) ~= "leader" end,
                                2 * ELECTION_MAX_MS + 50)
    assert.is_true(stepped, "cut-off leader did not step down")
    assert.is_true(c:run_until(function()
      local l = c:leader(); return l ~= nil and l ~= old end, 20 * ELECTION_MAX_MS))
    local new = c:leader()
    local term1 = c:term(new)
    c:run(2000)
    -- Pre-vote: alone, the old leader never raised its term.
    assert.equals(term0, c:term(old))
    c:heal()
    c:run(3000)
    assert.equals(new, c:leader())
    assert.equals(term1, c:term(new))
    assert.equals("follower", c:role(old))
    assert.equals(term1, c:term(old))
  end)

  it("do not let a follower returning from a partition depose the leader", function()
    local c = sim.cluster{nodes = 3, seed = 5}
    local leader = elect(c)
    local term = c:term(leader)
    local f = t.others(c, leader)[1]
    c:isolate(f)
    c:run(5000) -- many election timeouts alone: pre-vote keeps its term
    assert.equals(term, c:term(f))
    c:heal()
    c:run(3000)
    assert.equals(leader, c:leader())
    assert.equals(term, c:term(leader))
    local index = commit_value(c, leader, 42)
    assert.is_true(c:run_until(function() return c:applied(f) >= index end, 2000))
  end)

  it("ignore a disruptive candidate while the leader is alive", function()
    -- A node that campaigns by itself (as after a long pause) gets no pre-votes: the
    -- others have heard from the leader within an election timeout.
    local c = sim.cluster{nodes = 3, seed = 3}
    local leader = elect(c)
    local term = c:term(leader)
    local f = t.others(c, leader)[1]
    c:campaign(f)
    c:run(1000)
    assert.equals(leader, c:leader())
    assert.equals(term, c:term(leader))
  end)

  -- Found by the random runs once configurations could shrink to one voter: a lone voter
  -- needs nobody's answer, so nothing made it wait for its own vote to be durable; it led
  -- and appended in a term that a crash then took back, and led that term again with
  -- other entries. Its own vote now counts only once durable, as anyone's does.
  it("a lone voter leads only once its vote for itself is durable", function()
    local c = sim.cluster{nodes = 1, learners = 1, seed = 41}
    local leader = elect(c)
    local term = c:term(leader)
    assert(c:crash(1))
    assert(c:restart(1))
    c:hold_disk(1)
    c:run(500) -- election timeouts pass: it campaigns, but cannot count its vote
    assert.equals("candidate", c:role(1))
    assert.is_true(c:term(1) > term)
    c:release_disk(1)
    assert.is_true(c:run_until(function() return c:role(1) == "leader" end, 200))
    -- Its APPENDs carry a durable term: the learner follows it.
    local index = assert(c:propose(1, 7))
    assert.is_true(c:run_until(function() return (c:applied(2) or 0) >= index end, 1000))
  end)
end)
