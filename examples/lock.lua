-- lock.lua: a lock service with leases and fencing tokens, as a luaraft state machine.
--
-- What it shows: time in a state machine. A lease expires by the log's clock (ctx.time_ms
-- of the entry being applied, which the leader stamped), never by a node's own clock, so
-- every replica agrees on who holds a lock at every index. The fencing token is a counter
-- in the replicated state: it increases on every grant and is never reused, so a storage
-- service can refuse writes that carry a token older than one it has seen (a client whose
-- lease ran out while it was paused cannot do harm).
--
-- Commands:
--   ACQUIRE name owner ttl_ms -> integer fencing token, or nil when another owner holds a
--                                live lease. Re-acquiring a lock you hold is a new grant
--                                with a new token and a fresh lease.
--   RENEW name owner ttl_ms   -> integer 1 when owner holds a live lease (extended to now +
--                                ttl_ms, same token), 0 otherwise (expired or not yours:
--                                ACQUIRE again, and get a new token).
--   RELEASE name owner        -> integer 1 when owner held a live lease, 0 otherwise.
--   HOLDER name               -> owner's name, or nil when free or expired (a read).
--   TOKEN name                -> the live lease's token, or nil (a read).
-- ttl_ms is a positive integer; errors are error replies.
--
-- Try it: scripts/cluster.sh examples/lock.lua, then
--   redis-cli -p 6001 ACQUIRE db alice 10000   -> (integer) 1
--   redis-cli -p 6002 ACQUIRE db bob 10000     -> (nil)        (alice holds it)
--   redis-cli -p 6003 HOLDER db                -> "alice"
--   ... 10 s later (the ACQUIRE's own entry is stamped after alice's deadline):
--   redis-cli -p 6001 ACQUIRE db bob 10000     -> (integer) 2
--
-- Reads use the time of the last applied entry: it is the same on every replica and is
-- saved in the snapshot, while a node's wall clock is neither. So a lease whose deadline
-- has passed in real time shows as held until the next write is applied.
--
-- Snapshot: the whole state through luaraft.encode, the runtime's canonical encoding
-- (maps in sorted key order), so every replica writes the same bytes for the same state.
local M = {}

local locks = {}    -- name -> {owner =, deadline =, token =}
local now = 0       -- time_ms of the last applied entry
local last_token = 0

local function ttl(s)
    local n = s:match("^%d+$") and math.tointeger(tonumber(s))
    if not n or n <= 0 or n > math.maxinteger - now then
        error("ttl_ms must be a positive integer")
    end
    return n
end

-- The live lease on name, or nil. An expired one is dropped (in apply only: a read
-- must not change the state).
local function live(name, drop)
    local l = locks[name]
    if l and now >= l.deadline then
        if drop then
            locks[name] = nil
        end
        return nil
    end
    return l
end

local commands = {
    ACQUIRE = { 4, function(cmd)
        local name, owner, ms = cmd[2], cmd[3], ttl(cmd[4])
        local l = live(name, true)
        if l and l.owner ~= owner then
            return nil
        end
        last_token = last_token + 1
        locks[name] = { owner = owner, deadline = now + ms, token = last_token }
        return last_token
    end },
    RENEW = { 4, function(cmd)
        local ms = ttl(cmd[4])
        local l = live(cmd[2], true)
        if not l or l.owner ~= cmd[3] then
            return 0
        end
        l.deadline = now + ms
        return 1
    end },
    RELEASE = { 3, function(cmd)
        local l = live(cmd[2], true)
        if not l or l.owner ~= cmd[3] then
            return 0
        end
        locks[cmd[2]] = nil
        return 1
    end },
    HOLDER = { 2, function(cmd)
        local l = live(cmd[2], false)
        return l and l.owner
    end },
    TOKEN = { 2, function(cmd)
        local l = live(cmd[2], false)
        return l and l.token
    end },
}

-- The command table the node checks every command against before it is logged (arity
-- counts the name; keys = {first, last, step}, as in Redis's command table).
M.commands = {
    ACQUIRE = { arity = 4, keys = { 1, 1, 1 } },
    RENEW = { arity = 4, keys = { 1, 1, 1 } },
    RELEASE = { arity = 3, keys = { 1, 1, 1 } },
    HOLDER = { read = true, arity = 2, keys = { 1, 1, 1 } },
    TOKEN = { read = true, arity = 2, keys = { 1, 1, 1 } },
}

local function run(cmd, reads_only)
    local name = cmd[1]:upper()
    local c = commands[name]
    if not c or (reads_only and not M.commands[name].read) then
        error("unknown command '" .. cmd[1] .. "'")
    end
    if #cmd ~= c[1] then
        error("wrong number of arguments for '" .. name:lower() .. "' command")
    end
    return c[2](cmd)
end

function M.apply(cmd, ctx)
    -- max: a new leader's clock may be a little behind the old one's; the log's time
    -- must never run backwards, or a released lease could come back to life.
    now = math.max(now, ctx.time_ms)
    return run(cmd, false)
end

function M.query(cmd)
    return run(cmd, true)
end

function M.snapshot(w)
    w:write(luaraft.encode({ version = 1, now = now, last_token = last_token, locks = locks }))
end

-- Reads the whole snapshot into memory: fine for a lock table (kv.lua shows streaming).
local function read_all(r)
    local chunks = {}
    for chunk in function() return r:read() end do
        chunks[#chunks + 1] = chunk
    end
    return table.concat(chunks)
end

function M.restore(r)
    local state = luaraft.decode(read_all(r))
    if type(state) ~= "table" or state.version ~= 1 then
        error("not a lock snapshot")
    end
    locks, now, last_token = state.locks, state.now, state.last_token
end

return M
