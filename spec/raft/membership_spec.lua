-- Membership changes, one server at a time (thesis chapter 4): named scenarios over the
-- simulator, with the checker's safety rules after every step. The random runs
-- (random_spec.lua) do the same under faults; these pin down each rule on its own.
local sim = require("luaraft.sim")
local t = require("luaraft.test.cluster")

local function sorted(list)
  local out = {table.unpack(list)}
  table.sort(out)
  return out
end

local function voters(c, id)
  return sorted(c:members(id).voters)
end

local function learners(c, id)
  return sorted(c:members(id).learners)
end

-- Runs until every node in ids holds the configuration committed at index.
local function wait_members(c, ids, index)
  t.wait(c, function()
    for _, id in ipairs(ids) do
      local m = c:members(id)
      if m == nil or m.index < index or (c:commit(id) or 0) < index then return false end
    end
    return true
  end, 5000, "the change at " .. index .. " everywhere")
end

describe("membership changes", function()
  it("add a server as a learner, let it catch up from a snapshot, then make it a voter", function()
    local c = sim.cluster{nodes = 3, spares = 1, seed = 31, snapshot_threshold = 20,
                          snapshot_trailing = 2}
    local leader = t.elect(c)
    assert.same({}, c:members(4).voters) -- a spare boots knowing no configuration
    for v = 1, 60 do assert(c:propose(leader, v)) end
    t.commit_value(c, leader, 61)
    local added = assert(c:change(leader, "add", 4))
    wait_members(c, {1, 2, 3, 4}, added)
    assert.same({4}, learners(c, leader))
    -- The log it missed was compacted: it caught up through a snapshot, which carried the
    -- configuration it is in.
    t.wait(c, function() return (c:applied(4) or 0) >= added end, 5000, "learner catches up")
    assert.is_true(c:stats().snapshots_installed > 0)
    local promoted = assert(c:change(leader, "promote", 4))
    wait_members(c, {1, 2, 3, 4}, promoted)
    assert.same({1, 2, 3, 4}, voters(c, 4))
    -- Four voters: a majority is three, so two down stop commits and one does not.
    local index = t.commit_value(c, leader, 100)
    t.wait(c, t.all_applied(c, index), 2000, "apply on all four")
  end)

  it("refuses a second change until the first is committed", function()
    local c = sim.cluster{nodes = 3, spares = 2, seed = 32}
    local leader = t.elect(c)
    t.commit_value(c, leader, 1)
    local first = assert(c:change(leader, "add", 4))
    local index, err = c:change(leader, "add", 5)
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    wait_members(c, {leader}, first)
    assert(c:change(leader, "add", 5))
  end)

  it("refuses a change from a new leader until it has committed an entry of its term", function()
    local c = sim.cluster{nodes = 3, spares = 1, seed = 33}
    local old = t.elect(c)
    t.commit_value(c, old, 1)
    local new = t.others(c, old)[1]
    assert(c:campaign(new, true))
    t.wait(c, function() return c:leader() == new end, 2000, "the new leader")
    -- Its no-op is on its way; cut off, it cannot commit it, nor anything of its term.
    c:isolate(new)
    local index, err = c:change(new, "add", 4)
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    c:heal()
    t.wait(c, function() return c:commit(new) >= c:last_index(new) end, 2000, "no-op committed")
    assert(c:change(new, "add", 4))
  end)

  it("removes a follower, which then never disrupts the cluster", function()
    local c = sim.cluster{nodes = 3, seed = 34}
    local leader = t.elect(c)
    t.commit_value(c, leader, 1)
    local gone = t.others(c, leader)[1]
    local removed = assert(c:change(leader, "remove", gone))
    wait_members(c, t.others(c, gone), removed)
    local term = c:term(leader)
    -- The removed server keeps running and keeps timing out, but its pre-votes find every
    -- voter hearing from its leader: no term moves, the leader stays.
    c:run(5000)
    assert.equals(leader, c:leader())
    assert.equals(term, c:term(leader))
    local index = t.commit_value(c, leader, 2)
    assert.is_true(c:commit(t.others(c, leader, gone)[1]) >= index - 1)
  end)

  it("removes the leader: it commits the change, steps down, and hands over at once", function()
    local c = sim.cluster{nodes = 3, seed = 35}
    local leader = t.elect(c)
    t.commit_value(c, leader, 1)
    local term, start = c:term(leader), c:now()
    local removed = assert(c:change(leader, "remove", leader))
    t.wait(c, function()
      local l = c:leader(); return l ~= nil and l ~= leader
    end, 2000, "a new leader")
    local new = c:leader()
    assert.is_true(c:commit(new) >= removed)
    -- Leadership went by TIMEOUT_NOW: one term, and sooner than the shortest election
    -- timeout (10 ticks of 10 ms; virtual time, so this is exact).
    assert.equals(term + 1, c:term(new))
    assert.is_true(c:now() - start < 100, "took " .. (c:now() - start) .. " ms")
    assert.same(sorted(t.others(c, leader)), voters(c, new))
    t.commit_value(c, new, 2)
  end)

  it("a change that a truncation takes back is no longer in force", function()
    local c = sim.cluster{nodes = 3, spares = 1, seed = 36}
    local old = t.elect(c)
    t.commit_value(c, old, 1)
    -- The leader, cut off, appends a change only it holds.
    c:isolate(old)
    local added = assert(c:change(old, "add", 4))
    assert.same({4}, learners(c, old))
    -- The others elect a leader that never saw it, and commit over it.
    local new
    t.wait(c, function()
      local l = c:leader(); new = l; return l ~= nil and l ~= old
    end, 5000, "a leader on the majority side")
    t.commit_value(c, new, 2)
    t.commit_value(c, new, 3)
    c:heal()
    t.wait(c, function() return c:role(old) == "follower" and c:members(old).index < added end,
           5000, "the old leader's change taken back")
    assert.same({}, learners(c, old))
    assert.same({1, 2, 3}, voters(c, old))
  end)

  -- The counterexample to single-server changes without the new leader's-term rule
  -- (Ongaro, raft-dev, 2015), played with the rule: nothing committed is lost.
  it("keeps every committed entry in the scenario that breaks without the term rule", function()
    local c = sim.cluster{nodes = 4, learners = 1, seed = 37}
    local l = t.elect(c)
    t.commit_value(c, l, 1)
    local others = t.others(c, l, 5)
    local s, a, b = others[1], others[2], others[3]
    c:partition({l, 5}, {s, a, b})
    assert(c:change(l, "promote", 5)) -- C1: only l and 5 hold it
    assert(c:campaign(s, true))
    t.wait(c, function() return c:leader() == s end, 2000, "s leads")
    c:partition({l, 5, b}, {s, a})
    -- C2 would remove l; it must wait for s's no-op, which needs b or l.
    local index, err = c:change(s, "remove", l)
    assert.is_nil(index)
    assert.equals("ECHANGE", err)
    c:run(3000)
    c:heal()
    local leader = t.elect(c)
    local v = t.commit_value(c, leader, 2)
    t.wait(c, t.all_applied(c, v), 3000, "apply everywhere")
  end)
end)
