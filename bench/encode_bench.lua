-- luaraft.encode/decode on a million-key table: a benchmark, not a test (ctest does not
-- run it). From the project root, after building:
--
--   lua5.4 bench/encode_bench.lua [build_dir] [keys]
--
-- Builds {["key<i>"] = "value<i>"} inside a machine, then times M.snapshot (one
-- luaraft.encode of the whole table) and M.restore (one luaraft.decode), both without
-- limits as fsm_snapshot and fsm_restore run them. Times are CPU seconds (os.clock).
local build = arg[1] or "build"
local count = tonumber(arg[2]) or 1000000
package.cpath = build .. "/lua/?.so;" .. package.cpath
local fsm = require("luaraft.fsm")

local path = os.tmpname()
local f = assert(io.open(path, "w"))
f:write([[
local M = { state = {} }
function M.apply(cmd)
    local n = tonumber(cmd[2])
    local state = {}
    for i = 1, n do state["key" .. i] = "value" .. i end
    M.state = state
    return n
end
function M.snapshot(w) w:write(luaraft.encode(M.state)) end
function M.restore(r)
    local parts = {}
    for chunk in r.read, r do parts[#parts + 1] = chunk end
    M.state = luaraft.decode(table.concat(parts))
end
return M
]])
f:close()

local m = assert(fsm.open(path))
os.remove(path)
m:apply({ "FILL", tostring(count) })

local t0 = os.clock()
local bytes = m:snapshot()
local t1 = os.clock()
m:restore(bytes, #bytes)
local t2 = os.clock()
assert(m:snapshot() == bytes, "restore(snapshot()) changed the bytes")
print(string.format("%d keys: encode %.3f s (%d bytes, %.1f MB/s), decode %.3f s", count,
    t1 - t0, #bytes, #bytes / (t1 - t0) / 1e6, t2 - t1))
m:close()
