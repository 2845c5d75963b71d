-- slow_apply.lua: a state machine for spec/node/write_limits_spec.lua whose writes take as
-- long as they are told to, and whose snapshots can be made to fail.
-- Commands: SPIN n -> the count of SPINs applied, after n rounds of a Lua loop;
-- FAILSNAP 0|1 -> OK (1: every later M.snapshot raises an error); COUNT -> the count
-- (a read).
local M = { reads = { COUNT = true } }
local count, failsnap = 0, false

function M.apply(cmd)
    local name = cmd[1]:upper()
    if name == "SPIN" and #cmd == 2 then
        local x = 0
        for i = 1, math.tointeger(tonumber(cmd[2])) or error("SPIN wants an integer") do
            x = x + i
        end
        count = count + 1
        return count
    elseif name == "FAILSNAP" and #cmd == 2 then
        failsnap = cmd[2] == "1"
        return { ok = "OK" }
    end
    error("usage: SPIN n | FAILSNAP 0|1 | COUNT")
end

function M.query(cmd)
    return count
end

function M.snapshot(w)
    if failsnap then
        error("this snapshot fails on purpose")
    end
    w:write(string.pack(">i8", count))
end

function M.restore(r)
    local parts = {}
    for chunk in r.read, r do
        parts[#parts + 1] = chunk
    end
    count = string.unpack(">i8", table.concat(parts))
end

return M
