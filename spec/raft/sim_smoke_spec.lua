-- Smoke tests of the simulator itself: that it elects, replicates, crashes and restarts
-- nodes, ships snapshots, replays a seed exactly, and that its checker stops a run whose
-- safety is broken. Each test would fail if the feature it names stopped working.
local sim = require("luaraft.sim")

local t = require("luaraft.test.cluster")
local elect, count_leaders, all_applied, values = t.elect, t.count_leaders, t.all_applied, t.values

describe("the simulator", function()
  it("elects exactly one leader in a 3-node cluster, and keeps it", function()
    -- After the election every node agrees on the leader and its term; a second leader at
    -- any point would be reported by the checker, and would show in the role count.
    local c = sim.cluster{nodes = 3, seed = 1}
    local leader = elect(c)
    local term = c:term(leader)
    for _ = 1, 20 do
      c:run(50)
      assert.equals(1, count_leaders(c))
      assert.equals(leader, c:leader())
    end
    for id = 1, 3 do
      assert.equals(term, c:term(id))
      assert.equals(leader, c:known_leader(id))
    end
    assert.equals(1, c:stats().leaders)
  end)

  it("commits and applies proposals on every node, in order", function()
    -- Every node's log holds the proposed values in proposal order, every node applies
    -- them all, and the state hashes agree.
    local c = sim.cluster{nodes = 3, seed = 2}
    local leader = elect(c)
    local proposed, last = {}, nil
    for v = 101, 130 do
      last = assert(c:propose(leader, v))
      proposed[#proposed + 1] = v
    end
    local first = assert(c:propose_many(leader, 20, 1001))
    assert.equals(last + 1, first)
    for v = 1001, 1020 do proposed[#proposed + 1] = v end
    last = first + 19
    assert.is_true(c:run_until(all_applied(c, last), 2000), "not applied everywhere")
    for id = 1, 3 do
      assert.same(proposed, values(c:log(id)))
      assert.equals(last, c:commit(id))
      assert.equals(c:fsm_hash(leader), c:fsm_hash(id))
    end
    -- A follower refuses proposals.
    local index, err = c:propose(leader % 3 + 1, 1)
    assert.is_nil(index)
    assert.equals("ENOTLEADER", err)
  end)

  it("commits steadily when nothing goes wrong", function()
    -- A healthy cluster under a steady load commits in every 100 ms window, with one
    -- leader throughout and every node applying everything in the end.
    local c = sim.cluster{nodes = 5, seed = 8}
    local leader = elect(c)
    local v, last = 0, nil
    for window = 1, 20 do
      local before = c:commit(leader)
      for _ = 1, 10 do
        v = v + 1
        last = assert(c:propose(leader, v))
        c:run(10)
      end
      assert.is_true(c:commit(leader) > before, "nothing committed in window " .. window)
    end
    assert.is_true(c:run_until(all_applied(c, last), 1000))
    assert.equals(1, c:stats().leaders)
    assert.equals(0, c:stats().msgs_dropped)
  end)

  it("restarts a crashed follower from its disk and lets it catch up", function()
    -- The follower keeps what was durable when it crashed (term, vote, log), misses what
    -- commits while it is down, and catches up by replication after the restart.
    local c = sim.cluster{nodes = 3, seed = 3}
    local leader = elect(c)
    local f = leader % 3 + 1
    local last
    for v = 1, 10 do last = assert(c:propose(leader, v)) end
    assert.is_true(c:run_until(all_applied(c, last), 2000))
    c:crash(f)
    assert.equals("down", c:role(f))
    assert.is_nil(c:applied(f))
    for v = 11, 40 do last = assert(c:propose(leader, v)) end
    assert.is_true(c:run_until(function() return c:commit(leader) >= last end, 2000))
    assert.is_true(c:restart(f))
    assert.equals(c:term(leader), c:term(f))  -- the term survived the crash
    assert.is_true(c:last_index(f) >= 11)     -- so did the durable log
    assert.is_true(c:last_index(f) < last)
    assert.is_true(c:run_until(all_applied(c, last), 2000), "restarted node did not catch up")
    assert.same(values(c:log(leader)), values(c:log(f)))
    assert.equals(c:fsm_hash(leader), c:fsm_hash(f))
    assert.equals(1, c:stats().crashes)
    assert.equals(1, c:stats().restarts)
  end)

  it("brings a node that missed compacted entries up to date with a snapshot", function()
    -- With a snapshot every 20 entries the leader compacts its log while the node is
    -- down; the node can then only catch up through InstallSnapshot, after which its
    -- state machine matches the leader's.
    local c = sim.cluster{nodes = 3, seed = 4, snapshot_threshold = 20, snapshot_trailing = 5}
    local leader = elect(c)
    local lagging = leader % 3 + 1
    c:crash(lagging)
    local last
    for v = 1, 150 do
      last = assert(c:propose(leader, v))
      if v % 25 == 0 then c:run(30) end
    end
    assert.is_true(c:run_until(function() return c:applied(leader) >= last end, 5000))
    assert.is_true(c:snapshot_index(leader) >= 100)
    assert.is_true(c:first_index(leader) > 2, "the leader did not compact its log")
    local st = c:stats()
    assert.equals(0, st.snapshots_installed)
    assert.is_true(st.snapshots_taken >= 5)
    c:restart(lagging)
    assert.is_true(c:run_until(all_applied(c, last), 5000), "lagging node did not catch up")
    st = c:stats()
    assert.is_true(st.snapshots_sent >= 1)
    assert.is_true(st.snapshots_installed >= 1)
    assert.is_true(c:snapshot_index(lagging) > 0)
    assert.equals(c:fsm_hash(leader), c:fsm_hash(lagging))
  end)

  it("serves a ReadIndex read at an index covering every committed write", function()
    local c = sim.cluster{nodes = 3, seed = 5}
    local leader = elect(c)
    local index = assert(c:propose(leader, 9))
    assert.is_true(c:run_until(function() return c:commit(leader) >= index end, 1000))
    local id = c:read_index(leader % 3 + 1)
    assert.equals("pending", c:read_result(id))
    assert.is_true(c:run_until(function() return c:read_result(id) ~= "pending" end, 1000))
    local at, applied = c:read_result(id)
    assert.is_true(at >= index)
    assert.is_true(applied >= at)
    assert.equals(1, c:stats().reads_served)
  end)

  it("replays a seed exactly", function()
    -- Same seed, same faults: the same trace, event for event. Another seed differs.
    local function story(seed)
      local c = sim.cluster{nodes = 5, seed = seed, snapshot_threshold = 10}
      c:faults{loss = 0.1, dup = 0.2, delay_max_ms = 20}
      local leader = elect(c)
      for v = 1, 30 do c:propose(leader, v) end
      c:crash(leader)
      c:run(1000)
      c:heal_all()
      c:run(1000)
      return c:trace(1024), c:stats()
    end
    local t1, s1 = story(77)
    local t2, s2 = story(77)
    local t3 = story(78)
    assert.equals(t1, t2)
    assert.same(s1, s2)
    assert.are_not.equal(t1, t3)
    assert.is_true(s1.msgs_dropped > 0 and s1.msgs_duplicated > 0)
  end)

  it("holds a paused node's events and delivers them on resume", function()
    -- A paused leader neither ticks nor hears anything: the others elect a new leader.
    -- Once resumed it receives what was held, learns the newer term and steps down.
    local c = sim.cluster{nodes = 3, seed = 6}
    local old = elect(c)
    assert.is_true(c:pause(old))
    assert.is_true(c:paused(old))
    local index, err = c:propose(old, 1)
    assert.is_nil(index)
    assert.equals("EPAUSED", err)
    assert.is_true(c:run_until(function()
      local l = c:leader(); return l ~= nil and l ~= old end, 3000))
    assert.equals("leader", c:role(old)) -- frozen in its old belief
    assert.is_true(c:resume(old))
    assert.is_true(c:run_until(function() return c:role(old) == "follower" end, 1000))
    assert.equals(c:term(c:leader()), c:term(old))
  end)

  it("stops a run whose safety is broken, naming the rule and the trace", function()
    -- Amnesia breaks Raft: node A acknowledged committed entries, then loses its disk.
    -- With the leader gone, A and the stale node B can elect a leader that lacks the
    -- committed entries. The checker must stop the run and say which rule broke.
    local c = sim.cluster{nodes = 3, seed = 7}
    local leader, a, b, last = t.committed_without(c, 10)
    c:crash(leader)
    c:wipe(a)
    c:restart(a)
    c:heal()
    local ok, msg = pcall(c.run_until, c, function() return false end, 5000)
    assert.is_false(ok)
    msg = tostring(msg)
    assert.matches("violation: leader completeness", msg, 1, true)
    assert.matches("seed 7", msg, 1, true)
    assert.matches("trace (last", msg, 1, true)
    assert.matches("WIPE", msg, 1, true)
    -- The run stays stopped: every stepping call raises the same violation.
    local again_ok, again = pcall(c.step, c)
    assert.is_false(again_ok)
    assert.matches("leader completeness", tostring(again), 1, true)
    assert.is_string(c:failure())
  end)

  it("passes 50 random runs with faults, and each did real work", function()
    local r = sim.random_runs{first = 1, count = 50, steps = 2000}
    assert.equals(0, r.failures, r.message)
    assert.equals(50, r.runs)
    assert.is_true(r.stats.leaders >= 50)
    assert.is_true(r.stats.commits >= 50 * 20)
    assert.is_true(r.stats.crashes > 0)
    assert.is_true(r.stats.snapshots_installed > 0)
    local ok, stats = sim.random_run{seed = 1, steps = 2000}
    assert.is_true(ok)
    assert.is_true(stats.steps >= 2000)
  end)
end)
