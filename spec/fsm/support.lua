-- Shared by the spec/fsm specs (loaded with dofile, so busted does not run it as a spec).
local S = {}

S.fsm = require("luaraft.fsm")

-- The project root, from this file's path.
S.root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/fsm/[^/]*$") or "."

-- Writes source to a temporary file and returns its path; S.cleanup() removes them all.
local paths = {}
function S.script(source)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(source)
    f:close()
    paths[#paths + 1] = path
    return path
end

function S.cleanup()
    for _, path in ipairs(paths) do
        os.remove(path)
    end
    paths = {}
end

-- Opens source as a machine (asserting it loads).
function S.open(source, limits)
    local m, err = S.fsm.open(S.script(source), limits)
    assert(m, err)
    return m
end

-- Applies cmd and decodes the reply.
function S.apply(m, cmd, ctx)
    return S.fsm.decode(m:apply(cmd, ctx or { index = 1, term = 1, time_ms = 0, seed = 1 }))
end

-- The head of a module whose apply runs cmd[2] as a Lua chunk that sees M, cmd and ctx:
-- each test sends its own code through the log, as an attacker with a script would.
S.EVAL_HEAD = [[
local M = { state = {} }
local eval_load = load
function M.apply(cmd, ctx)
    local chunk = assert(eval_load("local M, cmd, ctx = ...\n" .. cmd[2], "=eval"))
    return chunk(M, cmd, ctx)
end
]]

-- A whole module of that kind whose snapshot is luaraft.encode(M.state): what each test
-- leaves in M.state survives snapshots and restores.
-- (S.STATE_IO: the snapshot and restore of M.state, for other modules of that kind.)
S.STATE_IO = [[
function M.snapshot(w) w:write(luaraft.encode(M.state)) end
function M.restore(r)
    local parts = {}
    for chunk in function() return r:read() end do parts[#parts + 1] = chunk end
    M.state = luaraft.decode(table.concat(parts))
end
]]
S.EVAL_STATE = S.EVAL_HEAD .. S.STATE_IO .. "return M\n"

return S
