-- Messages no correct peer sends: the core drops them with RAFT_EINVAL instead of letting
-- them reach an assertion, and the cluster goes on committing. Each case hands one node
-- a crafted message (c:inject bypasses the network) and then checks that nothing moved.
local sim = require("luaraft.sim")
local t = require("luaraft.test.cluster")

local HUGE = 1 << 62
local MAX = -1 -- 2^64 - 1 once converted to the core's unsigned fields

local function setup(seed)
  local c = sim.cluster{nodes = 3, seed = seed}
  local leader = t.elect(c)
  t.commit_value(c, leader, 1)
  local follower = t.others(c, leader)[1]
  return c, leader, follower
end

local function still_works(c)
  local leader = t.elect(c)
  local index = t.commit_value(c, leader, 99)
  t.wait(c, t.all_applied(c, index), 2000, "apply everywhere")
end

describe("a malformed peer message", function()
  local cases = {
    {"a term near 2^64", function(l, term)
      return {type = "APPEND", from = l, term = MAX} end},
    {"a term past 2^62", function(l, term)
      return {type = "HEARTBEAT", from = l, term = HUGE} end},
    {"entries whose terms decrease", function(l, term)
      return {type = "APPEND", from = l, term = term, prev_index = 0, prev_term = 0,
              entries = {{term = term, type = 1}, {term = term - 1, type = 1}}} end},
    {"an entry of term 0", function(l, term)
      return {type = "APPEND", from = l, term = term, prev_index = 0, prev_term = 0,
              entries = {{term = 0, type = 1}}} end},
    {"an entry from a future term", function(l, term)
      return {type = "APPEND", from = l, term = term, prev_index = 0, prev_term = 0,
              entries = {{term = term + 1, type = 1}}} end},
    {"an index that would wrap", function(l, term)
      return {type = "APPEND", from = l, term = term, prev_index = MAX, prev_term = term} end},
    {"a snapshot of term 0", function(l, term)
      return {type = "SNAPSHOT", from = l, term = term, index = 1000, snapshot_term = 0} end},
    {"a snapshot at an index near 2^64", function(l, term)
      return {type = "SNAPSHOT", from = l, term = term, index = MAX, snapshot_term = term} end},
    {"a sender of id 0", function(l, term)
      return {type = "HEARTBEAT", from = 0, term = term} end},
  }
  for _, case in ipairs(cases) do
    it("is dropped: " .. case[1], function()
      local c, leader, follower = setup(21)
      local term, last = c:term(follower), c:last_index(follower)
      local ok, err = c:inject(follower, case[2](leader, term))
      assert.is_nil(ok)
      assert.equals("EINVAL", err)
      assert.equals(term, c:term(follower))
      assert.equals(last, c:last_index(follower))
      still_works(c)
    end)
  end

  -- Servers take requests without consulting their configuration (thesis 4.1): a new
  -- leader may come from one they have not received yet. What keeps an outsider (a
  -- removed server, say) from disrupting is the leader lease, as for anyone.
  it("from a sender outside the configuration is handled as any other", function()
    local c, leader, follower = setup(23)
    local term = c:term(follower)
    assert.is_true(c:inject(follower, {type = "VOTE", from = 99, term = term + 1,
                                       last_index = 100, last_term = term}))
    assert.equals(term, c:term(follower)) -- within the lease: ignored
    assert.is_true(c:inject(leader, {type = "APPEND_RESP", from = 99, term = term,
                                     success = true, index = 1}))
    assert.equals("leader", c:role(leader)) -- an answer from nobody it tracks: ignored
    still_works(c)
  end)

  it("claiming the leader's own term is ignored by the leader", function()
    local c, leader, follower = setup(22)
    local term = c:term(leader)
    assert.is_true(c:inject(leader, {type = "APPEND", from = follower, term = term,
                                     prev_index = 0, prev_term = 0}))
    assert.equals("leader", c:role(leader))
    still_works(c)
  end)

  it("TIMEOUT_NOW from a node that is not the leader starts no election", function()
    local c, leader, follower = setup(23)
    local other = t.others(c, leader, follower)[1]
    local term = c:term(follower)
    assert.is_true(c:inject(follower, {type = "TIMEOUT_NOW", from = other, term = term}))
    assert.equals("follower", c:role(follower))
    assert.equals(term, c:term(follower))
    still_works(c)
  end)

  it("contradicting a committed entry is dropped", function()
    local c, leader, follower = setup(24)
    local term, commit = c:term(follower), c:commit(follower)
    assert.is_true(c:inject(follower, {type = "APPEND", from = leader, term = term,
                                       prev_index = commit, prev_term = term - 1}))
    assert.equals(commit, c:commit(follower))
    still_works(c)
  end)
end)
