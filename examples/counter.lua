-- counter.lua: the smallest luaraft state machine, one replicated integer.
-- Commands: INCR -> integer, INCRBY n -> integer (the new value), GET -> integer (a read).
-- Try it: scripts/cluster.sh examples/counter.lua, then redis-cli -p 6001 INCR -> (integer) 1,
-- redis-cli -p 6002 INCRBY 41 -> (integer) 42, redis-cli -p 6003 GET -> (integer) 42.
local M = {}
-- The command table: the node refuses any other command, or a wrong number of arguments,
-- before it is logged; GET is a read (M.query), the others writes (M.apply).
M.commands = {
    INCR = { arity = 1 },
    INCRBY = { arity = 2 },
    GET = { read = true, arity = 1 },
}
local n = 0 -- the state lives in an upvalue: globals are locked after load

function M.apply(cmd)
    local name, by = cmd[1]:upper(), 1
    if name == "INCRBY" and #cmd == 2 then
        by = cmd[2]:match("^%-?%d+$") and math.tointeger(tonumber(cmd[2]))
        if not by then error("value is not an integer or out of range") end
    elseif name ~= "INCR" or #cmd ~= 1 then
        error("usage: INCR | INCRBY n | GET")
    end
    n = n + by -- wraps around at 2^63, the same on every replica
    return n
end

function M.query(cmd) return cmd[1]:upper() == "GET" and n or error("usage: GET") end
function M.snapshot(w) w:write(string.pack(">i8", n)) end
function M.restore(r) n = string.unpack(">i8", (r:read())) end -- 8 bytes: one chunk
return M
