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
