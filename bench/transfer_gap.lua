-- The unavailability of a leader change, measured from a client: the longest pause
-- between acknowledged writes of a steady load (spec/node/load_writer.lua, one write at a
-- time through every node in turn) around the moment the leader of a 3-node cluster of
-- examples/kv.lua is stopped, with SIGTERM (it hands its leadership over first) and, for
-- comparison in the same run, with kill -9 (the others elect by timeout).
--
--   lua5.4 bench/transfer_gap.lua [runs]        (default 5 runs of each; from the root)
--
-- LUARAFT_BUILD_DIR selects the build (default build/). Prints each run's pause and the
-- minimum, median and maximum of each kind, in milliseconds.
local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/bench/[^/]*$") or "."
local T = dofile(root .. "/spec/node/transfer_support.lua")
local S = T.S

local runs = tonumber(arg[1] or "5")

-- One run: the pause around stopping the leader with `how` ("TERM" or "KILL").
local function run(how)
    local c = S.cluster({ n = 3 })
    local w
    local ok, gap = pcall(function()
        T.start_all_watched(c)
        local leader = T.settled_leader(c)
        w = T.writer(c, { 1, 2, 3 })
        w.wait_acks(300)
        local t = S.now()
        T.signal(c, leader, how)
        T.wait_exit(c, leader)
        w.wait_acks(300, t)
        w.stop()
        return T.longest_gap(w.acks(), t, 2)
    end)
    if w then
        w.stop()
    end
    c:stop()
    assert(ok, gap)
    return gap * 1000
end

local function summary(name, list)
    table.sort(list)
    print(string.format("%-8s runs %d: min %.1f ms, median %.1f ms, max %.1f ms", name, #list,
        list[1], list[(#list + 1) // 2], list[#list]))
end

local term, kill = {}, {}
for r = 1, runs do
    term[#term + 1] = run("TERM")
    kill[#kill + 1] = run("KILL")
    print(string.format("run %d: SIGTERM %.1f ms, kill -9 %.1f ms", r, term[#term], kill[#kill]))
end
summary("SIGTERM", term)
summary("kill -9", kill)
