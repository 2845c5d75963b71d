-- eval.lua: a state machine for spec/node/hostile_spec.lua that runs the code it is sent,
-- as a script author's bug or an attacker with a script would: EVAL code (a write: the
-- chunk runs in M.apply with M, cmd and ctx) and QEVAL code (a read: the same in M.query,
-- where the state is read-only). The state is M.state, snapshotted with luaraft.encode.
local M = { state = {}, reads = { QEVAL = true } }
local compile = load

local function run(cmd, ctx)
    local chunk = assert(compile("local M, cmd, ctx = ...\n" .. cmd[2], "=eval"))
    return chunk(M, cmd, ctx)
end

function M.apply(cmd, ctx)
    return run(cmd, ctx)
end

function M.query(cmd, ctx)
    return run(cmd, ctx)
end

function M.snapshot(w)
    w:write(luaraft.encode(M.state))
end

function M.restore(r)
    local parts = {}
    for chunk in function() return r:read() end do
        parts[#parts + 1] = chunk
    end
    M.state = luaraft.decode(table.concat(parts))
end

return M
