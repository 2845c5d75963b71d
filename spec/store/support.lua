-- Shared by the spec/store specs (loaded with dofile, so busted does not run it as a spec).
local S = {}

S.store = require("luaraft.store")

-- A fresh empty directory under /tmp; S.cleanup() removes every one made so far.
local dirs = {}
function S.read_all(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("a")
    f:close()
    return data
end

function S.write_all(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

function S.tmpdir()
    local path = os.tmpname() -- creates an empty file: replace it with a directory
    assert(os.remove(path))
    assert(os.execute("mkdir -m 700 '" .. path .. "'"))
    dirs[#dirs + 1] = path
    return path
end

function S.cleanup()
    for _, dir in ipairs(dirs) do
        assert(os.execute("rm -rf '" .. dir .. "'"))
    end
    dirs = {}
end

function S.exists(path)
    local f = io.open(path, "rb")
    if f then
        f:close()
        return true
    end
    return false
end

-- Submits each request in order, runs the loop once, and returns the statuses.
function S.persist(st, ...)
    for _, req in ipairs({ ... }) do
        assert(st:submit(req))
    end
    return st:run()
end

-- The entries table of a request: n entries from first on, each with the given term.
function S.entries(first, n, term, prefix)
    local t = { first = first }
    for i = 0, n - 1 do
        t[#t + 1] = { term = term, type = 1, data = (prefix or "e") .. (first + i) }
    end
    return t
end

return S
