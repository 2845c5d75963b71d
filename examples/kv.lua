-- kv.lua: a Redis-like key-value store as a luaraft state machine.
--
-- What it shows: the Lua contract (M.apply for writes, M.query for reads, M.reads,
-- M.snapshot/M.restore streaming a canonical encoding), Redis's reply types and error
-- texts, and state kept in upvalues of the module, never in globals (the sandbox locks
-- them after load).
--
-- Commands: GET key, SET key value, DEL key [key ...], EXISTS key [key ...], INCR key,
-- MGET key [key ...], DBSIZE, and CAS key expected new (sets key to new when its value is
-- expected: replies 1 when it swapped, 0 when not). GET, EXISTS, MGET and DBSIZE are
-- reads.
--
-- Try it: start a local cluster with scripts/cluster.sh (it runs this script), then
--
--   redis-cli -p 6001 SET greeting hello        -> OK
--   redis-cli -p 6002 GET greeting              -> "hello"   (any node answers)
--   redis-cli -p 6003 CAS greeting hello world  -> (integer) 1
--   redis-cli -p 6001 INCR greeting             -> (error) ERR value is not an integer or
--                                                  out of range
--
-- spec/fsm/kv_spec.lua tests it in-process through luaraft.fsm.
--
-- Snapshot format (big-endian, canonical: the same state always gives the same bytes):
--   "luaraft-kv 1\n", the key count as u64, then per key in byte order of the keys:
--   u32 key length, key, u32 value length, value.

local M = {}

local data = {} -- key -> value (strings)
local count = 0 -- number of keys in data

local INT64_MIN = math.mininteger
local INT64_MAX = math.maxinteger
local MAGIC = "luaraft-kv 1\n"
local CHUNK_BYTES = 64 * 1024

local function wrong_args(name)
    return { err = "ERR wrong number of arguments for '" .. name:lower() .. "' command" }
end

-- Redis's string2ll: an optional '-', then digits without leading zeros, in int64 range.
local function parse_int(s)
    if not s:match("^%-?%d+$") or #s > 20 then
        return nil
    end
    if s:match("^%-?0%d") or s == "-0" then
        return nil
    end
    local n = math.tointeger(tonumber(s))
    if n == nil or tostring(n) ~= s then -- tonumber overflows to a float out of range
        return nil
    end
    return n
end

-- Stores first, counts after: a command can fail at any allocation (the memory cap), and
-- its effects up to there stay, so the count must never run ahead of the data.
local function set(key, value)
    local new = data[key] == nil
    data[key] = value
    if new then
        count = count + 1
    end
end

local commands = {}

-- Each command: arity as Redis gives it (n: exactly n arguments including the name; -n:
-- at least n), and a function of the command table.
commands.GET = {
    arity = 2,
    fn = function(cmd)
        return data[cmd[2]]
    end,
}

commands.SET = {
    arity = -3,
    fn = function(cmd)
        if #cmd > 3 then
            return { err = "ERR syntax error" }
        end
        set(cmd[2], cmd[3])
        return { ok = "OK" }
    end,
}

commands.DEL = {
    arity = -2,
    fn = function(cmd)
        local deleted = 0
        for i = 2, #cmd do
            if data[cmd[i]] ~= nil then
                data[cmd[i]] = nil
                count = count - 1
                deleted = deleted + 1
            end
        end
        return deleted
    end,
}

commands.EXISTS = {
    arity = -2,
    fn = function(cmd)
        local n = 0
        for i = 2, #cmd do
            if data[cmd[i]] ~= nil then
                n = n + 1
            end
        end
        return n
    end,
}

commands.INCR = {
    arity = 2,
    fn = function(cmd)
        local old = data[cmd[2]]
        local n = 0
        if old ~= nil then
            n = parse_int(old)
            if n == nil then
                return { err = "ERR value is not an integer or out of range" }
            end
        end
        if n == INT64_MAX then
            return { err = "ERR increment or decrement would overflow" }
        end
        n = n + 1
        set(cmd[2], tostring(n))
        return n
    end,
}

commands.MGET = {
    arity = -2,
    fn = function(cmd)
        local values = {}
        for i = 2, #cmd do
            -- false, not nil, so that the array does not end at a missing key
            local v = data[cmd[i]]
            if v == nil then
                v = false
            end
            values[i - 1] = v
        end
        return values
    end,
}

commands.DBSIZE = {
    arity = 1,
    fn = function()
        return count
    end,
}

commands.CAS = {
    arity = 4,
    fn = function(cmd)
        if data[cmd[2]] ~= cmd[3] then
            return 0
        end
        set(cmd[2], cmd[4])
        return 1
    end,
}

M.reads = { GET = true, EXISTS = true, MGET = true, DBSIZE = true }

local function run(cmd, reads_only)
    local name = cmd[1]:upper()
    local command = commands[name]
    if command == nil then
        -- Redis's text: each argument quoted and followed by a space, up to 128 bytes.
        local args = {}
        local size = 0
        for i = 2, #cmd do
            if size >= 128 then
                break
            end
            args[#args + 1] = "'" .. cmd[i] .. "' "
            size = size + #cmd[i] + 3
        end
        return {
            err = "ERR unknown command '" .. cmd[1] .. "', with args beginning with: "
                .. table.concat(args),
        }
    end
    if reads_only and not M.reads[name] then
        return { err = "ERR '" .. name:lower() .. "' is not a read command" }
    end
    local arity = command.arity
    if (arity > 0 and #cmd ~= arity) or (arity < 0 and #cmd < -arity) then
        return wrong_args(name)
    end
    return command.fn(cmd)
end

function M.apply(cmd, ctx)
    return run(cmd, false)
end

function M.query(cmd)
    return run(cmd, true)
end

-- pairs visits keys in byte order under the sandbox, so the snapshot is canonical.
function M.snapshot(w)
    local n = 0
    for _ in pairs(data) do
        n = n + 1
    end
    local parts, size = { MAGIC, string.pack(">I8", n) }, 0
    for key, value in pairs(data) do
        local record = string.pack(">s4s4", key, value)
        parts[#parts + 1] = record
        size = size + #record
        if size >= CHUNK_BYTES then
            w:write(table.concat(parts))
            parts, size = {}, 0
        end
    end
    w:write(table.concat(parts))
end

function M.restore(r)
    local buf, pos = "", 1
    -- Makes sure n bytes from pos are buffered.
    local function need(n)
        while #buf - pos + 1 < n do
            local chunk = r:read()
            if chunk == nil then
                error("truncated snapshot")
            end
            buf = buf:sub(pos) .. chunk
            pos = 1
        end
    end
    local function take(n)
        need(n)
        local s = buf:sub(pos, pos + n - 1)
        pos = pos + n
        return s
    end
    local function take_string()
        return take((string.unpack(">I4", take(4))))
    end
    if take(#MAGIC) ~= MAGIC then
        error("not a kv snapshot")
    end
    local n = string.unpack(">I8", take(8))
    local new = {}
    for _ = 1, n do
        local key = take_string()
        new[key] = take_string()
    end
    if pos <= #buf or r:read() ~= nil then
        error("trailing bytes after the snapshot")
    end
    data, count = new, n
end

return M
