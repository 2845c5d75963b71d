-- A write in flight across a truncation. A deposed leader's unreplicated entries are
-- deleted by the new leader while the old leader's disk is still writing them; when that
-- old write completes, it vouches for entries that are gone. The core must not count the
-- entries that replaced them as durable (raft.h: a persist token's generation is "bumped
-- whenever the log loses a suffix"; raft.c's persisted() ignores a token of an older
-- generation), and must not acknowledge them before their own write is done.
--
-- Node 1 leads. Its disk is held (no write of it completes until released) and its
-- outgoing links are cut, so it goes on appending alone. Node 2 is forced to campaign and
-- wins with node 3's vote; its first APPEND reaches node 1, which steps down and replaces
-- its entries with node 2's no-op. Then node 1's completions are let go one at a time,
-- oldest first, as a real disk would finish them.
local sim = require("luaraft.sim")

local function make_leader(c, id)
  -- A forced campaign may meet a voter that already voted in that term; try again with
  -- the next term, as a timed-out candidate would.
  for _ = 1, 5 do
    c:campaign(id, true)
    if c:run_until(function() return c:role(id) == "leader" end, 300) then return end
  end
  error("node " .. id .. " did not become leader")
end

local function settled(c, n)
  for id = 1, n do
    local writes = c:disk_pending(id)
    if c:commit(id) < c:last_index(1) or writes > 0 then return false end
  end
  return true
end

describe("a write in flight across a truncation", function()
  it("does not make the entries that replaced it durable, nor acknowledge them", function()
    -- No node times out by itself (elections of 10 virtual seconds): every election here
    -- is forced.
    local c = sim.cluster{nodes = 3, seed = 7, election_ticks = 1000}
    make_leader(c, 1)
    assert.is_true(c:run_until(function() return settled(c, 3) end, 1000))
    local base = c:last_index(1)
    assert.equals(base, c:stable_index(1))

    -- Node 1 appends three entries alone; its disk keeps them in flight.
    c:hold_disk(1)
    c:cut(1, 2)
    c:cut(1, 3)
    local first = assert(c:propose_many(1, 3, 100))
    assert.equals(base + 1, first)
    local old_term = c:term(1)
    assert.equals(base, c:stable_index(1))

    -- Node 2 takes over; its no-op deletes node 1's three entries.
    make_leader(c, 2)
    local new_term = c:term(2)
    assert.is_true(new_term > old_term)
    assert.is_true(c:run_until(function() return c:term_at(1, base + 1) == new_term end, 1000))
    assert.equals("follower", c:role(1))
    assert.equals(base + 1, c:last_index(1))
    c:connect(1, 2)
    c:connect(1, 3)
    c:run(50)
    local writes, held = c:disk_pending(1)
    assert.is_true(writes >= 2, "the old write and the truncation are both in flight")
    assert.equals(writes, held)
    assert.equals(base, c:stable_index(1))
    assert.is_true(c:peer(2, 1).match <= base)

    -- The writes made before the truncation complete, one at a time: each vouches for
    -- the deleted entries, not for node 2's no-op now at base + 1.
    local stale_before = c:stats().persisted_after_truncation
    for _ = 1, writes - 1 do
      assert.equals(1, c:release_disk(1, 1))
      c:run(20)
      assert.equals(base, c:stable_index(1), "a stale completion made base + 1 durable")
      assert.is_true(c:peer(2, 1).match <= base, "node 1 acknowledged an entry not durable")
    end
    assert.is_true(c:stats().persisted_after_truncation > stale_before)

    -- The truncation's own write completes: now node 1 holds node 2's no-op durably, says
    -- so, and the old entries are gone for good.
    c:release_disk(1)
    assert.is_true(c:run_until(function() return c:peer(2, 1).match == base + 1 end, 1000))
    assert.equals(base + 1, c:stable_index(1))
    assert.is_true(c:run_until(function() return c:commit(1) == base + 1 end, 1000))
    for id = 1, 3 do
      for _, e in ipairs(c:log(id)) do
        assert.is_true(e.value == nil or e.value < 100, "an entry of the deposed leader survived")
      end
    end
    -- A crash of node 1 now loses nothing it claimed.
    c:crash(1)
    c:restart(1)
    assert.equals(base + 1, c:last_index(1))
    assert.equals(new_term, c:term_at(1, base + 1))
  end)
end)
