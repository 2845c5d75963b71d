-- Replication: commit, crashes with unsynced writes, catch-up through snapshots.
local sim = require("luaraft.sim")

local t = require("luaraft.test.cluster")
local elect, all_applied = t.elect, t.all_applied

describe("replication", function()
  it("commits and applies proposals on every node", function()
    local c = sim.cluster{nodes = 5, seed = 2}
    local leader = elect(c)
    local last
    for v = 1, 100 do last = assert(c:propose(leader, v)) end
    assert.is_true(c:run_until(all_applied(c, last), 5000))
    local log = c:log(leader)
    local values = {}
    for _, e in ipairs(log) do if e.value then values[#values + 1] = e.value end end
    assert.same(100, #values)
    for id = 1, 5 do assert.same(log, c:log(id)) end
  end)

  it("survives a leader crashing with entries it had not yet made durable", function()
    -- The leader sends its entries while its own write is in flight, then crashes before
    -- the write completes. The followers have them: the next leader commits them, and
    -- the old leader comes back without them and catches up.
    local c = sim.cluster{nodes = 3, seed = 9, disk_delay_min_ms = 20, disk_delay_max_ms = 30}
    local leader = elect(c)
    c:run(500)
    local before = c:last_index(leader)
    local last
    for v = 1, 5 do last = assert(c:propose(leader, v)) end
    c:run(5) -- the APPENDs arrive; no write is durable yet
    c:crash(leader)
    c:restart(leader)
    assert.equals(before, c:last_index(leader)) -- unsynced entries are gone
    assert.is_true(c:run_until(all_applied(c, last), 5000))
    assert.are_not.equal(nil, c:leader())
    for id = 1, 3 do assert.same(c:log(c:leader()), c:log(id)) end
  end)

  it("never commits on a single node what is not durable", function()
    local c = sim.cluster{nodes = 1, seed = 4, disk_delay_min_ms = 20, disk_delay_max_ms = 30}
    local leader = elect(c)
    c:run(200)
    local index = assert(c:propose(leader, 7))
    c:run(5)
    assert.is_true(c:commit(leader) < index)
    c:crash(leader)
    c:restart(leader)
    assert.is_true(c:last_index(leader) < index)
    assert.is_true(c:applied(leader) < index)
  end)

  it("brings a follower far behind up to date through a snapshot", function()
    local c = sim.cluster{nodes = 3, seed = 6, snapshot_threshold = 20, snapshot_trailing = 5}
    local leader = elect(c)
    local lagging = t.others(c, leader)[1]
    c:crash(lagging)
    local last
    for v = 1, 200 do
      last = assert(c:propose(leader, v))
      if v % 10 == 0 then c:run(20) end
    end
    assert.is_true(c:run_until(function() return c:applied(leader) >= last end, 5000))
    assert.is_true(c:first_index(leader) > 1, "the leader did not compact its log")
    local installed = c:stats().snapshots_installed
    c:restart(lagging)
    assert.is_true(c:run_until(function() return c:applied(lagging) >= last end, 5000))
    assert.is_true(c:stats().snapshots_installed > installed, "no snapshot was installed")
    assert.is_true(c:snapshot_index(lagging) > 0)
  end)
end)

describe("a full log", function()
  it("refuses proposals until a snapshot compacts it, then takes them again", function()
    local c = sim.cluster{nodes = 3, seed = 31, log_entries_max = 16, snapshot_trailing = 0}
    local leader = elect(c)
    local last, err
    for v = 1, 40 do
      local index, e = c:propose(leader, v)
      if not index then err = e; break end
      last = index
    end
    assert.equals("ELOGFULL", err)
    assert.is_true(last < 16)
    assert.is_true(c:run_until(all_applied(c, last), 2000))
    for id = 1, 3 do assert.is_true(c:snapshot(id)) end
    local index = assert(c:propose(leader, 100))
    assert.is_true(c:run_until(all_applied(c, index), 2000))
  end)

  it("still lets a new leader commit its no-op, and so compact", function()
    -- Every node's log is as full as proposals may make it; then the leader dies. The
    -- slot kept free for a no-op lets the next leader commit in its term; without it,
    -- nothing older could commit (Figure 8) and nothing could ever be compacted.
    local c = sim.cluster{nodes = 3, seed = 32, log_entries_max = 16, snapshot_trailing = 0}
    local leader = elect(c)
    c:run(100)
    local commit = c:commit(leader)
    for n = 16, 1, -1 do -- one batch, so that it travels in one APPEND
      if c:propose_many(leader, n) then break end
    end
    assert.is_nil(c:propose(leader, 7))
    local full = c:last_index(leader)
    c:crash(leader) -- its APPENDs are on the wire; nothing new is committed yet
    assert.is_true(c:run_until(function()
      for _, id in ipairs(t.others(c, leader)) do
        if c:last_index(id) ~= full then return false end
      end
      return true
    end, 1000))
    for _, id in ipairs(t.others(c, leader)) do assert.equals(commit, c:commit(id)) end
    local new
    assert.is_true(c:run_until(function()
      new = c:leader(); return new ~= nil and new ~= leader end, 5000))
    assert.is_true(c:run_until(function()
      return c:commit(new) == c:last_index(new) end, 2000), "the new leader did not commit")
    assert.is_true(c:snapshot(new))
    c:restart(leader)
    local index = assert(c:propose(new, 8))
    assert.is_true(c:run_until(function() return c:commit(new) >= index end, 2000))
  end)
end)
