-- Random runs: thousands of seeds, each a cluster under random faults (loss, duplication,
-- delay and reordering, partitions of every shape, crashes losing unsynced writes,
-- pauses, skewed clocks, slow and stalled disks, leaders deposed right after a burst of
-- proposals, membership changes) with the checker after every step, then a heal and a
-- liveness check. The loop runs in C; a failing seed prints the one command that replays
-- it.
--
-- LUARAFT_SEEDS=N runs N seeds (default 2000), LUARAFT_FIRST_SEED the first (default 1),
-- LUARAFT_STEPS the steps per run (default 2000), LUARAFT_SEED=S replays seed S alone.
local sim = require("luaraft.sim")

local function env_number(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return assert(tonumber(v), name .. " must be a number")
end

describe("random runs", function()
  it("keep every safety rule, and elect a leader and commit once faults heal", function()
    local seed = env_number("LUARAFT_SEED", nil)
    local first = seed or env_number("LUARAFT_FIRST_SEED", 1)
    local count = seed and 1 or env_number("LUARAFT_SEEDS", 2000)
    local steps = env_number("LUARAFT_STEPS", 2000)
    local result = sim.random_runs{first = first, count = count, steps = steps,
                                   stop_at_first = os.getenv("LUARAFT_STOP_AT_FIRST") ~= nil}
    if result.failures > 0 then
      error(string.format(
        "%d of %d seeds failed; replay the first with:\n" ..
        "  LUARAFT_SEED=%d LUARAFT_STEPS=%d lua5.4 /usr/bin/busted --helper=spec/helper.lua " ..
        "spec/raft/random_spec.lua\n%s",
        result.failures, result.runs, result.first_failed, steps, result.message), 0)
    end
    assert.equals(count, result.runs)
    -- The runs did real work: the faults happened and the cluster got through them.
    local st = result.stats
    assert.is_true(st.commits > count * 10, "too few commits: " .. st.commits)
    assert.is_true(st.crashes > count / 4, "too few crashes: " .. st.crashes)
    assert.is_true(st.leaders > count, "too few elections won: " .. st.leaders)
    if count >= 100 then
      assert.is_true(st.snapshots_installed > 0, "no snapshot was ever installed")
      assert.is_true(st.reads_served > 0, "no read was ever served")
      -- Membership changed under the faults: servers added, promoted, demoted, removed.
      assert.is_true(st.changes > count, "too few membership changes: " .. st.changes)
      assert.is_true(st.msgs_duplicated > 0, "no message was ever duplicated")
      -- A write still in flight when a later request truncated its entries completed: the
      -- core must then not count the new entries as durable (truncation_spec.lua).
      assert.is_true(st.persisted_after_truncation > 0,
                     "no write ever completed after a truncation of its entries")
    end
  end)
end)
