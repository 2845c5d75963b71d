-- The scenario catalogue S1..S20 that issue 11 asks to keep as named regression specs: each
-- bug shape that Jepsen or a field report found in some Raft-based system, played against
-- the protocol core in the simulator, with the checker's safety rules (src/sim/sim_check.c)
-- after every step. Each `it` is named after its scenario and asserts what the catalogue
-- says the test asserts; each is seeded and runs in virtual time.
--
-- Where a scenario is also marked R (a real-process test), the real one is named with the
-- same id in the spec listed here; "helpers" means another branch's work (the nemesis
-- runner, the crash points), not yet in this tree.
--
-- | id  | simulator (this file)             | real processes                                 |
-- |-----|-----------------------------------|------------------------------------------------|
-- | S1  | S1; leadership_spec (ReadIndex)   | spec/node/scenarios_spec.lua "S1/S2" (SIGSTOP) |
-- |     |                                   | partitions: helpers (spec/nemesis)             |
-- | S2  | S2 (no lease reads offered)       | spec/node/scenarios_spec.lua "S1/S2"; clocks:  |
-- |     |                                   | helpers (spec/nemesis, libfaketime)            |
-- | S3  | S3 (two); figure8_spec            | -                                              |
-- | S4  | S4                                | spec/node/cluster_spec.lua "S4: ..."           |
-- | S5  | S5 (no client request ids)        | spec/node/scenarios_spec.lua "S5: ..."         |
-- | S6  | S6                                | spec/node/scenarios_spec.lua "S6: ..."         |
-- | S7  | S7; membership_spec (Ongaro 2015) | spec/node/membership_spec.lua "S7: ..." (no    |
-- |     |                                   | partition); partitions: helpers (spec/nemesis) |
-- | S8  | S8                                | helpers: spec/power/crash_points_spec.lua      |
-- | S9  | S9                                | spec/node/scenarios_spec.lua "S9: ..."         |
-- | S10 | S10                               | -                                              |
-- | S11 | S11; bad_peer_spec                | -                                              |
-- | S12 | S12                               | spec/node/scenarios_spec.lua "S12: ..."        |
-- | S13 | S13; replication_spec             | spec/power/power_loss_spec.lua "S13: ..." (two)|
-- | S14 | S14                               | helpers: spec/power/crash_points_spec.lua      |
-- | S15 | S15                               | helpers: spec/nemesis (one-way, bridge)        |
-- | S16 | S16; membership_spec              | spec/node/membership_spec.lua "S16: ..."       |
-- | S17 | S17; membership_spec (leader)     | -                                              |
-- | S18 | S18                               | spec/node/membership_spec.lua "S18: ..."       |
-- | S19 | none: the simulated disk never    | spec/power/disk_fault_spec.lua "S19: ..." (two)|
-- |     | fails a write                     | spec/node/map_full_spec.lua "S19: ..."         |
-- | S20 | S20; replication_spec             | -                                              |
--
-- Each scenario fails if the rule it guards is broken: scripts/mutants.sh with
-- LUARAFT_MUTANT_SPEC=spec/raft/scenarios_spec.lua runs this file against each mutant of
-- the core and names the scenarios that caught it.
local sim = require("luaraft.sim")
local t = require("luaraft.test.cluster")

-- Runs until the read asked as reqid is no longer pending; returns its result.
local function settle_read(c, reqid, max_ms)
  t.wait(c, function() return c:read_result(reqid) ~= "pending" end, max_ms or 3000,
         "the answer to read " .. reqid)
  return c:read_result(reqid)
end

-- A read asked on node id and waited for: the index it was served at, or nil, err.
local function read_on(c, id, max_ms)
  local reqid, err = c:read_index(id)
  if not reqid then return nil, err end
  return settle_read(c, reqid, max_ms)
end

-- Asks node id for reads until one is served (a node that knows no leader refuses them);
-- returns the index it was served at and what the node had applied then.
local function read_served(c, id)
  for _ = 1, 50 do
    local index, applied = read_on(c, id)
    if index then return index, applied end
    c:run(20)
  end
  error("no read served on n" .. id)
end

-- Asserts that a read on node id, once one is served, sees index `written`.
local function assert_reads_see(c, id, written)
  local index, applied = read_served(c, id)
  assert.is_true(index >= written and applied >= written,
                 "n" .. id .. " served a read at " .. index .. ", before " .. written)
end

-- A predicate: the nodes ids have applied up to index.
local function applied_on(c, ids, index)
  return function()
    for _, id in ipairs(ids) do
      if (c:applied(id) or 0) < index then return false end
    end
    return true
  end
end

-- The values a log holds, each with how often it appears.
local function value_counts(log)
  local n = {}
  for _, v in ipairs(t.values(log)) do n[v] = (n[v] or 0) + 1 end
  return n
end

-- Forces id to lead; a forced campaign may meet a voter that already voted in that term,
-- so it tries again with the next term, as a timed-out candidate would.
local function make_leader(c, id)
  for _ = 1, 5 do
    c:campaign(id, true)
    if c:run_until(function() return c:role(id) == "leader" end, 300) then return id end
  end
  error("node " .. id .. " did not become leader")
end

-- A cluster of opts with a leader that has committed the value 1 (node `forced`, when
-- given, made leader by a forced campaign): returns the cluster, the leader and that
-- value's index.
local function started(opts, forced)
  local c = sim.cluster(opts)
  local leader = forced and make_leader(c, forced) or t.elect(c)
  return c, leader, t.commit_value(c, leader, 1)
end

-- Runs until a leader other than `old` (which may be nil) leads; returns it.
local function new_leader(c, old, max_ms)
  local l
  t.wait(c, function()
    l = c:leader(); return l ~= nil and l ~= old
  end, max_ms or 5000, "a leader other than " .. tostring(old))
  return l
end

describe("scenario", function()
  it("S1: an old leader cut off from the majority serves no read once a new leader commits",
     function()
    local c, old, before = started{nodes = 5, seed = 101}
    c:partition({old}, t.others(c, old))
    -- It still believes it leads: it takes the reads, but a ReadIndex read needs a round
    -- of heartbeats answered by a majority in its term, which it cannot get.
    local early = assert(c:read_index(old))
    c:run(30) -- three heartbeats; a lease would have answered by now
    assert.equals("pending", c:read_result(early))
    local new = new_leader(c, old)
    local written = t.commit_value(c, new, 2)
    assert.is_true(written > before)
    local late = c:read_index(old) -- asked after the new write committed
    local at = settle_read(c, early)
    assert.is_nil(at, "the cut-off leader served a read at " .. tostring(at))
    if late then assert.is_nil(settle_read(c, late)) end
    -- Healed, it follows, and its reads see the new write.
    c:heal()
    t.wait(c, function() return c:known_leader(old) == new end, 3000, "the old leader follows")
    assert_reads_see(c, old, written)
  end)

  it("S2: a leader paused past its election timeout, clocks skewed, serves nothing stale",
     function()
    local c, old, base = started{nodes = 3, seed = 102}
    -- No lease: even a leader whose followers answered a heartbeat a moment ago asks them
    -- again for each read (src/node/reads.c: every read goes through ReadIndex).
    for _, id in ipairs(t.others(c, old)) do c:cut(id, old) end
    local reqid = assert(c:read_index(old))
    c:run(50)
    assert.equals("pending", c:read_result(reqid))
    c:heal()
    assert.is_true(settle_read(c, reqid) >= base)
    -- The leader's clock runs fast and the others' slow: no rule may depend on them.
    c:clock_rate(old, 2)
    for _, id in ipairs(t.others(c, old)) do c:clock_rate(id, 0.5) end
    c:pause(old)
    local new = new_leader(c, old)
    local written = t.commit_value(c, new, 2)
    c:resume(old)
    -- Resumed, it may still think it leads for a moment: what it takes now is not
    -- acknowledged, and a read it takes is served after the new write or not at all.
    assert.equals("leader", c:role(old))
    local read = assert(c:read_index(old))
    local stale = assert(c:propose(old, 3))
    local at = settle_read(c, read)
    assert.is_true(at == nil or at >= written, "stale read at " .. tostring(at))
    c:run(2000)
    assert.equals(new, c:leader())
    -- Taken in its old term, that write was never committed, and is gone everywhere.
    assert.is_true(stale <= c:last_index(new))
    for id = 1, 3 do assert.is_nil(value_counts(c:log(id))[3], "write kept on n" .. id) end
    assert_reads_see(c, old, written)
  end)

  it("S3: a new leader serves no read and takes no change before its own no-op commits",
     function()
    local c, old, before = started{nodes = 3, spares = 1, seed = 103}
    local new = t.others(c, old)[1]
    assert(c:campaign(new, true))
    t.wait(c, function() return c:leader() == new end, 2000, "the new leader")
    c:isolate(new) -- its no-op cannot reach anyone
    local noop = c:last_index(new)
    assert.is_true(c:log(new)[noop].noop)
    local reqid = assert(c:read_index(new))
    local index, err = c:change(new, "add", 4)
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    c:run(50)
    assert.equals("pending", c:read_result(reqid))
    assert.is_true(c:commit(new) < noop)
    c:heal()
    -- The read is answered only at or after the no-op, so it covers every earlier commit.
    local at = settle_read(c, reqid)
    assert.is_true(at >= noop and at > before)
    assert.equals(new, c:leader())
    assert(c:change(new, "add", 4))
  end)

  it("S3: a new leader commits its predecessor's tail only through its own no-op", function()
    -- One entry an APPEND, and n3's disk held: n3 can make the old tail durable, and
    -- answer for it, while the new leader's no-op behind it waits on n3's disk.
    local c = sim.cluster{nodes = 3, seed = 203, election_ticks = 1000, append_entries_max = 1}
    make_leader(c, 1)
    t.commit_value(c, 1, 1)
    c:cut(2, 1)
    c:cut(1, 3)
    local tail = assert(c:propose(1, 50)) -- reaches n2 only, and is never acknowledged
    t.wait(c, function() return c:stable_index(2) >= tail end, 1000, "the tail on n2")
    c:isolate(1)
    make_leader(c, 2)
    assert(c:hold_disk(3))
    local noop = c:last_index(2)
    assert.is_true(noop > tail and c:log(2)[noop].noop)
    -- n3's writes complete one at a time until it has answered for the tail.
    t.wait(c, function()
      if c:peer(2, 3).match >= tail then return true end
      c:release_disk(3, 1)
      return false
    end, 2000, "n3 holds the tail")
    c:run(50)
    assert.is_true(c:peer(2, 3).match < noop)
    -- The tail is on a majority (n2, n3) but of an earlier term: it stays uncommitted
    -- until the no-op is, so no read or change can see an index the term has not earned.
    assert.is_true(c:commit(2) < tail, "the tail was committed by counting its replicas")
    c:release_disk(3)
    t.wait(c, function() return c:commit(2) >= noop end, 1000, "the no-op commits")
  end)

  it("S4: after each of five leader failovers every committed write is still there",
     function()
    local c = sim.cluster{nodes = 3, seed = 104, election_ticks = 1000}
    local leader = make_leader(c, 1)
    local committed = {}
    for round = 1, 5 do
      -- One follower misses the round's writes; a vote for it would lose them.
      local behind, other = table.unpack(t.others(c, leader))
      c:isolate(behind)
      for k = 1, 5 do committed[#committed + 1] = round * 100 + k end
      local last
      for k = #committed - 4, #committed do last = assert(c:propose(leader, committed[k])) end
      t.wait(c, function() return c:commit(leader) >= last end, 2000, "round " .. round)
      local crashed = leader
      c:crash(crashed)
      c:heal()
      c:campaign(behind, true) -- it cannot win: the other voter's log is ahead
      c:run(300)
      assert.are_not.equal("leader", c:role(behind))
      leader = make_leader(c, other)
      local counts = value_counts(c:log(leader))
      for _, v in ipairs(committed) do assert.equals(1, counts[v], "lost write " .. v) end
      local at = read_on(c, leader)
      assert.is_true(at >= last)
      assert(c:restart(crashed))
    end
    t.wait(c, t.all_applied(c, c:commit(leader)), 3000, "every node applied")
    for id = 1, 3 do assert.same(c:log(leader), c:log(id)) end
  end)

  -- luaraft gives clients no request ids: a follower forwards a client's write to the
  -- leader once and never re-sends it (src/node/writes.c, writes_forward()), and a client
  -- that retries after an unknown outcome sends a new command. What the core must hold is
  -- that one proposal is one entry, however often the network repeats its messages.
  it("S5: a proposal is applied at most once across duplicated messages and leader changes",
     function()
    local c = sim.cluster{nodes = 3, seed = 105}
    c:faults{dup = 0.3, loss = 0.05}
    local leader = t.elect(c)
    local proposed = {}
    for v = 1, 120 do
      local index = c:propose(leader, v)
      if index then proposed[#proposed + 1] = v end
      c:run(3)
      if v % 40 == 0 then -- a leader change, with entries in flight
        local old = leader
        c:crash(old)
        leader = new_leader(c, old)
        assert(c:restart(old))
      end
    end
    c:faults{}
    local last = t.commit_value(c, leader, 1000)
    t.wait(c, t.all_applied(c, last), 3000, "every node applied")
    assert.is_true(c:stats().msgs_duplicated > 0)
    assert.is_true(#proposed >= 100)
    for id = 1, 3 do
      for v, n in pairs(value_counts(c:log(id))) do
        assert.equals(1, n, "value " .. v .. " appears " .. n .. " times on n" .. id)
      end
    end
  end)

  it("S6: a refused proposal is never applied; an accepted one whose leader fell may be",
     function()
    local c, leader = started({nodes = 3, seed = 106, election_ticks = 1000}, 1)
    -- Refused (not the leader): definitely not applied, which is what -TRYAGAIN and
    -- -ERR say to a client.
    local index, err = c:propose(2, 66)
    assert.is_nil(index)
    assert.equals("ENOTLEADER", err)
    -- Accepted, then leadership lost before the leader saw it commit: the outcome is
    -- unknown (node_unknown_reply), because the next leader can still commit it.
    c:cut(2, 1)
    c:cut(3, 1) -- the followers receive, but their answers never arrive
    local accepted = assert(c:propose(leader, 77))
    t.wait(c, function() return c:last_index(2) >= accepted end, 1000, "replication to n2")
    assert.is_true(c:commit(leader) < accepted)
    c:crash(leader)
    local new = make_leader(c, 2)
    t.wait(c, function() return c:commit(new) >= accepted end, 2000, "the new leader commits")
    t.wait(c, function() return c:applied(3) >= accepted end, 3000, "n3 applies")
    for id = 2, 3 do
      local counts = value_counts(c:log(id))
      assert.equals(1, counts[77])
      assert.is_nil(counts[66])
    end
  end)

  -- Never two leaders in one term is the checker's election-safety rule, after every step.
  it("S7: a partition during a membership change loses nothing; one change at a time",
     function()
    local c, l = started{nodes = 3, spares = 2, seed = 107}
    local added = assert(c:change(l, "add", 4))
    local index, err = c:change(l, "add", 5) -- a second change while the first is in flight
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    t.wait(c, function() return (c:applied(4) or 0) >= added end, 3000, "the learner catches up")
    -- The leader is cut off just after it appended the promotion: only it holds it.
    local promoted = assert(c:change(l, "promote", 4))
    c:partition({l}, t.others(c, l))
    index, err = c:change(l, "add", 5)
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    local new = new_leader(c, l)
    local written = t.commit_value(c, new, 2)
    c:heal()
    t.wait(c, function()
      return c:known_leader(l) == new and c:members(l).index < promoted
    end, 5000, "the old leader takes back the promotion")
    t.wait(c, applied_on(c, {1, 2, 3, 4}, written), 3000, "every node applied")
    assert.same({1, 2, 3}, (function()
      local v = {table.unpack(c:members(l).voters)}; table.sort(v); return v
    end)())
    -- Then the change goes through the new leader, and the cluster of four commits.
    local again = assert(c:change(new, "promote", 4))
    t.wait(c, function() return c:commit(new) >= again end, 3000, "the promotion commits")
    local last = t.commit_value(c, new, 3)
    t.wait(c, applied_on(c, {1, 2, 3, 4}, last), 3000, "every node applied")
    for id = 1, 4 do
      local counts = value_counts(c:log(id))
      for v = 1, 3 do assert.equals(1, counts[v], "value " .. v .. " on n" .. id) end
    end
  end)

  it("S8: a crash around a snapshot always restarts from a consistent snapshot and log",
     function()
    local c = sim.cluster{nodes = 3, seed = 108, snapshot_threshold = 10, snapshot_trailing = 2,
                          disk_delay_min_ms = 2, disk_delay_max_ms = 8}
    local leader = t.elect(c)
    local lagging, other = table.unpack(t.others(c, leader))
    local function consistent(id)
      local snap, first = c:snapshot_index(id), c:first_index(id)
      assert.is_true(first <= snap + 1, "n" .. id .. ": log starts at " .. first ..
                     ", after the snapshot at " .. snap)
      assert.is_true(c:last_index(id) >= snap and c:applied(id) >= snap)
    end
    c:crash(lagging)
    local last
    for v = 1, 60 do
      last = assert(c:propose(leader, v))
      if v % 10 == 0 then c:run(20) end
    end
    t.wait(c, function() return c:applied(other) >= last end, 3000, "the follower applies")
    -- Crashes right after a snapshot, with the log's writes still in flight.
    for round = 1, 5 do
      last = assert(c:propose(leader, 100 + round))
      c:run(round)
      c:snapshot(other)
      assert(c:crash(other))
      assert(c:restart(other))
      consistent(other)
    end
    assert.is_true(c:snapshot_index(other) > 0)
    -- A follower far behind crashes while the snapshot it was sent is being made durable.
    assert(c:restart(lagging))
    assert(c:hold_disk(lagging))
    local installs = c:stats().snapshots_installed
    -- The install has begun (the count moves when it starts; its write completes later).
    t.wait(c, function() return c:stats().snapshots_installed > installs end, 2000,
           "an install in flight")
    assert.is_true(c:disk_pending(lagging) > 0)
    assert(c:crash(lagging))
    assert(c:restart(lagging))
    consistent(lagging)
    c:release_disk(lagging)
    t.wait(c, t.all_applied(c, last), 3000, "every node applied")
    assert.is_true(c:stats().snapshots_installed > installs + 1, "no second install")
    for id = 1, 3 do consistent(id) end
  end)

  it("S9: a restarted node serves a read only once the leader has confirmed its index",
     function()
    local c = sim.cluster{nodes = 3, seed = 109}
    local leader = t.elect(c)
    local f = t.others(c, leader)[1]
    t.commit_value(c, leader, 1)
    c:crash(f)
    local written
    for v = 2, 10 do written = t.commit_value(c, leader, v) end
    -- Restarted cut off, it knows neither the leader nor the commits it missed.
    assert(c:restart(f))
    c:isolate(f)
    assert.is_true(c:commit(f) < written)
    local reqid, err = c:read_index(f)
    if reqid then assert.is_nil(settle_read(c, reqid)) else assert.equals("ENOTLEADER", err) end
    c:run(500)
    assert.is_true((c:applied(f) or 0) < written)
    -- Restarted with its links up, a read asked at once is served after the commits.
    c:heal()
    assert(c:crash(f))
    assert(c:restart(f))
    assert_reads_see(c, f, written)
  end)

  it("S10: an entry past the commit index is never applied, before or after a restart",
     function()
    local c, old = started{nodes = 3, seed = 110}
    c:isolate(old)
    local v = assert(c:propose(old, 99)) -- it holds it alone
    t.wait(c, function() return c:stable_index(old) >= v end, 1000, "durable on the leader")
    c:run(50)
    assert.is_true(c:commit(old) < v and c:applied(old) < v)
    assert(c:crash(old))
    assert(c:restart(old))
    assert.is_true(c:last_index(old) >= v, "the entry was on its disk")
    assert.is_true(c:commit(old) < v and c:applied(old) < v)
    local reqid, err = c:read_index(old)
    if reqid then assert.is_nil(settle_read(c, reqid)) else assert.equals("ENOTLEADER", err) end
    local new = new_leader(c, old)
    local written = t.commit_value(c, new, 2)
    c:heal()
    t.wait(c, t.all_applied(c, written), 3000, "every node applied")
    for id = 1, 3 do assert.is_nil(value_counts(c:log(id))[99], "kept on n" .. id) end
  end)

  it("S11: messages of an older leader are rejected; its tail is resolved before new writes",
     function()
    local c, old = started({nodes = 3, seed = 111, election_ticks = 1000}, 1)
    local old_term = c:term(old)
    -- The old leader's tail: on n2, its acknowledgment lost, not committed.
    c:cut(2, 1)
    c:cut(3, 1)
    c:cut(1, 3)
    local tail = assert(c:propose(old, 50))
    t.wait(c, function() return c:last_index(2) >= tail end, 1000, "the tail reaches n2")
    c:isolate(old) -- deposed, and still running
    local new = make_leader(c, 2)
    local written = assert(c:propose(new, 51))
    assert.is_true(written > tail, "a new write took the place of the predecessor's tail")
    t.wait(c, function() return c:commit(new) >= written end, 2000, "the new write commits")
    assert.equals(old_term, c:term_at(new, tail)) -- the tail, kept and committed first
    -- An APPEND of the old term that would overwrite the tail on n3 is rejected.
    local term, last = c:term(3), c:last_index(3)
    assert(c:inject(3, {type = "APPEND", from = old, term = old_term, prev_index = tail - 1,
                        prev_term = old_term, commit = tail, entries = {{term = old_term,
                        type = 1}}}))
    assert.equals(term, c:term(3))
    assert.equals(last, c:last_index(3))
    assert.equals(c:term(new), c:term_at(3, written))
    -- Healed, the old leader's own messages change nothing: it follows.
    c:heal()
    t.wait(c, function() return c:known_leader(old) == new end, 2000, "the old leader follows")
    assert.equals(new, c:leader())
    t.wait(c, t.all_applied(c, written), 2000, "every node applied")
    for id = 1, 3 do
      local counts = value_counts(c:log(id))
      assert.is_true(counts[50] == 1 and counts[51] == 1)
    end
  end)

  it("S12: set workload under crashes, partitions and loss: every acknowledged add is kept",
     function()
    local c = sim.cluster{nodes = 5, seed = 112}
    c:faults{loss = 0.02, dup = 0.02}
    local pending, acked, v, down = {}, {}, 0, {}
    for round = 1, 60 do
      local l = c:leader()
      for _ = 1, l and 3 or 0 do
        v = v + 1
        local index = c:propose(l, v)
        if index then pending[#pending + 1] = {node = l, index = index, term = c:term(l), v = v} end
      end
      c:run(25)
      -- An add is acknowledged once the node that took it has committed it in its term.
      local open = {}
      for _, p in ipairs(pending) do
        local commit, term = c:commit(p.node), c:term_at(p.node, p.index)
        if commit and commit >= p.index and term == p.term then
          acked[#acked + 1] = p.v
        elseif commit == nil or commit < p.index then
          open[#open + 1] = p
        end
      end
      pending = open
      local phase = round % 10
      if phase == 2 and l then c:crash(l); down[#down + 1] = l end
      if phase == 4 then
        for _, id in ipairs(down) do c:restart(id) end
        down = {}
      end
      if phase == 6 and l then c:partition({l, l % 5 + 1}, t.others(c, l, l % 5 + 1)) end
      if phase == 8 then c:heal() end
    end
    c:heal_all()
    c:faults{}
    local leader = t.elect(c)
    local last = t.commit_value(c, leader, 100000)
    t.wait(c, t.all_applied(c, last), 5000, "every node applied")
    assert.is_true(#acked >= 60, "only " .. #acked .. " adds acknowledged")
    for id = 1, 5 do
      local counts = value_counts(c:log(id))
      for _, x in ipairs(acked) do assert.equals(1, counts[x], "add " .. x .. " on n" .. id) end
    end
  end)

  it("S13: a single-node cluster crashed after an acknowledgment never loses the write",
     function()
    local c = sim.cluster{nodes = 1, seed = 113, disk_delay_min_ms = 5, disk_delay_max_ms = 15}
    local acked, lost, v = {}, 0, 0
    for round = 1, 20 do
      local l = t.elect(c)
      local taken = {}
      for _ = 1, 5 do
        v = v + 1
        taken[#taken + 1] = {assert(c:propose(l, v)), v}
        c:run(round % 7)
      end
      for _, p in ipairs(taken) do
        if c:commit(l) >= p[1] then acked[#acked + 1] = p[2] else lost = lost + 1 end
      end
      assert(c:crash(l))
      assert(c:restart(l))
      local counts = value_counts(c:log(l))
      for _, x in ipairs(acked) do assert.equals(1, counts[x], "acknowledged " .. x .. " lost") end
    end
    assert.is_true(#acked >= 20 and lost >= 10, #acked .. " acknowledged, " .. lost .. " not")
  end)

  it("S14: a crash of every node after each disk completion loses nothing acknowledged",
     function()
    local seen = {} -- how many writes were acknowledged before the crash, over the k
    for k = 0, 12 do
      local c = sim.cluster{nodes = 3, seed = 1140 + k}
      local leader = t.elect(c)
      local base = t.commit_value(c, leader, 1)
      t.wait(c, function() return c:disk_pending(leader) == 0 end, 1000, "writes settle")
      for id = 1, 3 do assert(c:hold_disk(id)) end
      local taken = {}
      for v = 2, 4 do taken[#taken + 1] = {assert(c:propose(leader, v)), v} end
      c:run(10)
      -- Each node's disk finishes its k oldest writes (appends, hard state), then all crash.
      for id = 1, 3 do c:release_disk(id, k) end
      c:run(10)
      local acked = {1}
      for _, p in ipairs(taken) do
        if c:commit(leader) >= p[1] then acked[#acked + 1] = p[2] end
      end
      seen[#acked] = true
      for id = 1, 3 do assert(c:crash(id)) end
      c:heal_all()
      local l = t.elect(c)
      local last = t.commit_value(c, l, 99)
      t.wait(c, t.all_applied(c, last), 3000, "every node applied, k = " .. k)
      assert.is_true(last > base)
      local counts = value_counts(c:log(l))
      for _, x in ipairs(acked) do assert.equals(1, counts[x], "k = " .. k .. ": lost " .. x) end
    end
    assert.is_true(seen[1] and seen[4], "the crashes did not fall both before and after acks")
  end)

  it("S15: a bridge keeps its leader; a leader that hears nobody is replaced in bounded time",
     function()
    local c, l = started{nodes = 3, seed = 115}
    local a, b = table.unpack(t.others(c, l))
    -- b bridges l and a, which cannot reach each other. a's pre-votes find b hearing
    -- from l: no term moves, l leads on with b.
    c:cut(l, a)
    c:cut(a, l)
    local term = c:term(l)
    c:run(3000)
    assert.equals(l, c:leader())
    assert.equals(term, c:term(l))
    assert.equals(term, c:term(b))
    t.commit_value(c, l, 2)
    c:heal()
    -- One way: l's heartbeats arrive, no answer returns. Check-quorum makes it step down,
    -- and a and b elect one of them within a bound (an election timeout is 100-200 ms).
    c:cut(a, l)
    c:cut(b, l)
    local start = c:now()
    local new = new_leader(c, l, 2000)
    assert.is_true(c:now() - start <= 1000, "took " .. (c:now() - start) .. " ms")
    t.commit_value(c, new, 3)
  end)

  it("S16: a removed node that keeps running, with a higher term, never deposes the leader",
     function()
    local c, l = started{nodes = 4, seed = 116}
    local gone = t.others(c, l)[1]
    local removed = assert(c:change(l, "remove", gone))
    t.wait(c, applied_on(c, t.others(c, gone), removed), 2000, "the removal applied")
    local term = c:term(l)
    c:isolate(gone) -- alone, it times out again and again
    c:run(2000)
    c:campaign(gone, true) -- and once forced: its term passes the cluster's
    c:run(100)
    assert.is_true(c:term(gone) > term)
    c:heal()
    c:run(3000)
    assert.equals(l, c:leader())
    assert.equals(term, c:term(l))
    local index = t.commit_value(c, l, 2)
    t.wait(c, applied_on(c, t.others(c, gone), index), 2000, "the others apply")
  end)

  it("S17: a follower whose uncommitted change is truncated returns to the previous one",
     function()
    local c, l = started{nodes = 5, spares = 1, seed = 117}
    local f = t.others(c, l)[1]
    for _, id in ipairs(t.others(c, l, f)) do c:cut(l, id) end -- the change reaches f only
    local added = assert(c:change(l, "add", 6))
    t.wait(c, function() return c:members(f).index == added end, 1000, "f holds the change")
    assert.same({6}, c:members(f).learners)
    c:isolate(l)
    c:isolate(f)
    local new = new_leader(c, l)
    assert.are_not.equal(f, new)
    local written = t.commit_value(c, new, 2)
    c:heal()
    t.wait(c, function() return c:members(f).index < added and c:applied(f) >= written end,
           3000, "f takes the change back")
    assert.same({}, c:members(f).learners)
    local voters = {table.unpack(c:members(f).voters)}
    table.sort(voters)
    assert.same({1, 2, 3, 4, 5}, voters)
  end)

  it("S18: a removed node restarts without disturbing anyone, and catches up when re-added",
     function()
    local c, l = started{nodes = 3, seed = 118, snapshot_threshold = 20, snapshot_trailing = 2}
    local gone = t.others(c, l)[1]
    local removed = assert(c:change(l, "remove", gone))
    t.wait(c, applied_on(c, t.others(c, gone), removed), 2000, "the removal applied")
    assert(c:crash(gone))
    for v = 2, 40 do t.commit_value(c, l, v) end
    assert(c:restart(gone))
    local term = c:term(l)
    c:run(3000)
    assert.equals(l, c:leader())
    assert.equals(term, c:term(l))
    assert.are_not.equal("leader", c:role(gone))
    local added = assert(c:change(l, "add", gone))
    t.wait(c, function() return (c:applied(gone) or 0) >= added end, 3000, "it catches up")
    local promoted = assert(c:change(l, "promote", gone))
    t.wait(c, function() return c:commit(l) >= promoted end, 2000, "the promotion commits")
    local last = t.commit_value(c, l, 100)
    t.wait(c, t.all_applied(c, last), 3000, "every node applied")
    assert.equals(1, value_counts(c:log(gone))[100])
  end)

  -- S19 (disk full, map full) has no simulator scenario: the simulated disk never fails a
  -- write. spec/power/disk_fault_spec.lua and spec/node/map_full_spec.lua play it on real
  -- processes, named "S19: ...".

  it("S20: a leader counts itself toward a commit only once its own write is durable",
     function()
    local c, l = started({nodes = 3, seed = 120, election_ticks = 1000}, 1)
    t.wait(c, function() return c:disk_pending(l) == 0 end, 1000, "writes settle")
    assert(c:hold_disk(l))
    c:cut(1, 3) -- n2 is the only follower that gets the entry
    local index = assert(c:propose(l, 5))
    t.wait(c, function() return c:stable_index(2) >= index end, 1000, "durable on n2")
    c:run(100)
    assert.is_true(c:commit(l) < index, "the leader counted its own unsynced copy")
    -- It crashes before its write is done: the entry is on n2 alone, and n2 can lead.
    assert(c:crash(l))
    c:heal()
    local new = make_leader(c, 2)
    t.wait(c, function() return c:commit(new) >= index end, 2000, "n2 commits it")
    assert(c:restart(l))
    c:release_disk(l)
    t.wait(c, t.all_applied(c, index), 3000, "every node applied")
    for id = 1, 3 do assert.equals(1, value_counts(c:log(id))[5]) end
  end)
end)
