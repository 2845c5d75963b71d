-- The Raft paper's Figure 8, scripted: a leader must not count replicas of an entry from
-- an earlier term towards commitment, because a later leader may still overwrite it.
--
-- Elections are forced (no node times out by itself: election timeouts are 10 virtual
-- seconds) and links are cut by hand, so every step happens as in the figure. With each
-- new leader's no-op the indexes are one higher than in the paper; the story is the same.
-- APPENDs carry one entry each, so that an old entry can reach a node without the new
-- leader's no-op behind it.
local sim = require("luaraft.sim")

local N = 5

local function links(c, pairs_up)
  for a = 1, N do
    for b = 1, N do
      if a ~= b then c:cut(a, b) end
    end
  end
  for _, p in ipairs(pairs_up) do
    c:connect(p[1], p[2])
    c:connect(p[2], p[1])
  end
end

local function make_leader(c, id)
  -- A forced campaign may meet a voter that already voted in that term; try again with
  -- the next term, as a timed-out candidate would.
  for _ = 1, 5 do
    c:campaign(id, true)
    if c:run_until(function() return c:role(id) == "leader" end, 300) then return end
  end
  error("node " .. id .. " did not become leader")
end

describe("Figure 8", function()
  it("a leader does not commit an entry of an earlier term by counting its replicas", function()
    local c = sim.cluster{nodes = N, seed = 1, election_ticks = 1000, append_entries_max = 1}

    -- (a) S1 leads, its no-op reaches everyone; entry A (index 2) reaches only S2.
    make_leader(c, 1)
    assert.is_true(c:run_until(function()
      for id = 1, N do if c:commit(id) < 1 then return false end end
      return true
    end, 1000))
    links(c, {{1, 2}})
    local a = assert(c:propose(1, 0xA))
    assert.equals(2, a)
    assert.is_true(c:run_until(function() return c:last_index(2) == 2 end, 1000))
    local term_a = c:term_at(1, 2)

    -- (b) S1 crashes. S5 wins with the votes of S3 and S4, appends its no-op at index 2,
    -- and is cut off before it can replicate it.
    c:crash(1)
    links(c, {{5, 3}, {5, 4}})
    c:campaign(5, true)
    assert.is_true(c:run_until(function()
      return c:voted_for(3) == 5 and c:voted_for(4) == 5 end, 1000))
    c:cut(5, 3)
    c:cut(5, 4)
    assert.is_true(c:run_until(function() return c:role(5) == "leader" end, 1000))
    local term_b = c:term_at(5, 2)
    assert.is_true(term_b > term_a)
    c:run(100)
    assert.equals(1, c:last_index(3))
    assert.equals(1, c:last_index(4))

    -- (c) S5 crashes; S1 restarts and leads again. It brings S2 fully up to date and gives
    -- S3 entry A only: A is then on a majority (S1, S2, S3) but is of an earlier term, so
    -- it must stay uncommitted.
    c:crash(5)
    c:restart(1)
    links(c, {{1, 2}, {1, 3}})
    make_leader(c, 1)
    assert.is_true(c:run_until(function() return c:last_index(3) == 2 end, 1000))
    c:cut(1, 3)
    assert.is_true(c:run_until(function() return c:last_index(2) == 3 end, 1000))
    c:run(500)
    assert.equals(term_a, c:term_at(3, 2))
    assert.is_true(c:commit(1) < a, "an earlier term's entry was committed by counting")

    -- (d) S1 crashes; S5 restarts and wins with S3 and S4 (its last term beats theirs),
    -- and overwrites A. That is only safe because A was never committed.
    c:crash(1)
    c:restart(5)
    links(c, {{5, 2}, {5, 3}, {5, 4}})
    make_leader(c, 5)
    assert.is_true(c:run_until(function() return c:commit(3) >= 3 end, 2000))
    assert.equals(term_b, c:term_at(3, 2))
    for _, e in ipairs(c:log(3)) do assert.are_not.equal(0xA, e.value) end
  end)
end)
