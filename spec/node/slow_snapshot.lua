-- slow_snapshot.lua: a state machine for spec/node/snapshot_child_spec.lua whose
-- M.snapshot runs as long as it is told to, so that the snapshot child stays alive while
-- the spec looks at it. Commands: SET v -> OK; SPIN n -> n (rounds the next snapshot
-- spins); GARBAGE n -> n (MiB of garbage the next snapshot makes before it spins);
-- GET -> v (a read).
local M = { reads = { GET = true } }
local value, spin, garbage = "", 0, 0

function M.apply(cmd)
    local name = cmd[1]:upper()
    if name == "SET" and #cmd == 2 then
        value = cmd[2]
        return { ok = "OK" }
    elseif name == "SPIN" and #cmd == 2 then
        spin = math.tointeger(tonumber(cmd[2])) or error("SPIN wants an integer")
        return spin
    elseif name == "GARBAGE" and #cmd == 2 then
        garbage = math.tointeger(tonumber(cmd[2])) or error("GARBAGE wants an integer")
        return garbage
    end
    error("usage: SET v | SPIN n | GARBAGE n | GET")
end

function M.query(cmd)
    return value
end

-- The value, then one byte per million rounds: the child spins in Lua without filling
-- the disk (no instruction budget applies to M.snapshot).
function M.snapshot(w)
    w:write(string.pack(">s4", value))
    for i = 1, garbage do
        local _ = ("x"):rep((1 << 20) - 8) .. ("%08d"):format(i) -- 1 MiB, garbage at once
    end
    if garbage > 0 then
        w:write(("g"):rep(1 << 20)) -- reaches the file: the spec sees the loop is over
    end
    for i = 1, spin do
        if i % 1000000 == 0 then
            w:write("x")
        end
    end
end

function M.restore(r)
    local parts = {}
    for chunk in r.read, r do
        parts[#parts + 1] = chunk
    end
    value = string.unpack(">s4", table.concat(parts))
end

return M
