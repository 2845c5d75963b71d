-- Helpers for scenario specs over luaraft.sim: the waits and predicates every scenario
-- needs, so that a spec reads as its story. Each wait fails the spec (an error naming
-- what did not happen) rather than returning false.
local M = {}

-- Runs until some node leads, and returns its id.
function M.elect(c, max_ms)
  if not c:run_until(function() return c:leader() ~= nil end, max_ms or 5000) then
    error("no leader elected within " .. (max_ms or 5000) .. " ms", 2)
  end
  return c:leader()
end

-- Runs until pred() holds, or fails the spec with what.
function M.wait(c, pred, max_ms, what)
  if not c:run_until(pred, max_ms or 5000) then
    error((what or "condition") .. " did not happen within " .. (max_ms or 5000) .. " ms", 2)
  end
end

-- The node ids 1..c:nodes() other than those given.
function M.others(c, ...)
  local skip, out = {}, {}
  for _, id in ipairs({...}) do skip[id] = true end
  for id = 1, c:nodes() do
    if not skip[id] then out[#out + 1] = id end
  end
  return out
end

-- A predicate: every node up has applied up to index.
function M.all_applied(c, index)
  return function()
    for id = 1, c:nodes() do
      local a = c:applied(id)
      if a == nil or a < index then return false end
    end
    return true
  end
end

-- Proposes value on the leader and runs until the leader has committed it; returns its index.
function M.commit_value(c, leader, value, max_ms)
  local index = assert(c:propose(leader, value))
  M.wait(c, function() return c:commit(leader) >= index end, max_ms, "commit of " .. value)
  return index
end

-- How many nodes believe they lead.
function M.count_leaders(c)
  local n = 0
  for id = 1, c:nodes() do
    if c:role(id) == "leader" then n = n + 1 end
  end
  return n
end

-- The values of the NORMAL entries of a log, in order.
function M.values(log)
  local out = {}
  for _, e in ipairs(log) do
    if not e.noop then out[#out + 1] = e.value end
  end
  return out
end

-- The scenario that Raft's loss of a disk breaks: a leader elected, node a (the one after
-- it) acknowledges n entries that commit while node b (the one after a) is cut off.
-- Returns leader, a, b and the last entry's index; b is still isolated.
function M.committed_without(c, n)
  local leader = M.elect(c)
  local a = leader % 3 + 1
  local b = a % 3 + 1
  c:isolate(b)
  local last
  for v = 1, n do last = assert(c:propose(leader, v)) end
  assert(c:run_until(function() return c:commit(leader) >= last end, 2000), "no commit")
  return leader, a, b, last
end

return M
