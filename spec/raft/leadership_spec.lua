-- Leadership transfer and ReadIndex reads.
local sim = require("luaraft.sim")

local elect = require("luaraft.test.cluster").elect

local function other(leader, n)
  return leader % n + 1
end

describe("leadership transfer", function()
  it("hands leadership to a lagging target once it has caught up", function()
    local c = sim.cluster{nodes = 3, seed = 8}
    local leader = elect(c)
    local term = c:term(leader)
    local target = other(leader, 3)
    c:isolate(target)
    local last
    for v = 1, 50 do last = assert(c:propose(leader, v)) end
    c:run(100)
    c:heal()
    assert.is_true(c:transfer(leader, target))
    -- Proposals are refused while the transfer is under way.
    local index, err = c:propose(leader, 99)
    assert.is_nil(index)
    assert.is_string(err)
    assert.is_true(c:run_until(function() return c:leader() == target end, 1000))
    assert.equals(term + 1, c:term(target))
    assert.is_true(c:last_index(target) >= last)
    assert.equals("follower", c:role(leader))
  end)
end)

describe("ReadIndex", function()
  it("serves a read at an index that covers every committed write", function()
    local c = sim.cluster{nodes = 3, seed = 12}
    local leader = elect(c)
    local index = assert(c:propose(leader, 5))
    assert.is_true(c:run_until(function() return c:commit(leader) >= index end, 1000))
    for _, node in ipairs({leader, other(leader, 3)}) do -- on the leader and a follower
      local id = c:read_index(node)
      assert.is_true(c:run_until(function() return c:read_result(id) ~= "pending" end, 1000))
      local at = c:read_result(id)
      assert.is_number(at)
      assert.is_true(at >= index)
    end
  end)

  it("is never served by a deposed leader", function()
    local c = sim.cluster{nodes = 3, seed = 13}
    local old = elect(c)
    local index = assert(c:propose(old, 1))
    assert.is_true(c:run_until(function() return c:commit(old) >= index end, 1000))
    local a, b = other(old, 3), other(other(old, 3), 3)
    c:partition({old}, {a, b})
    local id = c:read_index(old) -- it still believes it leads
    assert.is_true(c:run_until(function()
      local l = c:leader(); return l ~= nil and l ~= old end, 5000))
    local new = c:leader()
    local written = assert(c:propose(new, 2))
    assert.is_true(c:run_until(function() return c:commit(new) >= written end, 1000))
    assert.is_true(c:run_until(function() return c:read_result(id) ~= "pending" end, 2000))
    local at, err = c:read_result(id)
    assert.is_nil(at)
    assert.is_string(err)
  end)
end)
