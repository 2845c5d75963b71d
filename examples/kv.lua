-- kv.lua: a Redis-like key-value store as a luaraft state machine.
--
-- What it shows: the Lua contract (M.apply for writes, M.query for reads, M.reads,
-- M.snapshot/M.restore streaming a canonical encoding), Redis's reply types and error
-- texts, state kept in upvalues of the module, never in globals (the sandbox locks them
-- after load), and time: keys expire by the log's clock.
--
-- Commands (replies as redis-cli shows them):
--   GET key                          -> bulk string, or nil
--   SET key value [EX s | PX ms] [NX | XX]
--                                    -> OK; nil when NX/XX says no. A SET without EX/PX
--                                       removes any expiry, as in Redis
--   DEL key [key ...]                -> integer, keys deleted
--   EXISTS key [key ...]             -> integer, keys that exist (repeats counted)
--   INCR key                         -> integer, the new value (keeps the key's expiry)
--   MGET key [key ...]               -> array of bulk strings and nils
--   DBSIZE                           -> integer, number of keys
--   CAS key expected new             -> integer 1 when key was expected and is now new
--                                       (keeps the expiry), 0 when not
--   EXPIRE key s / PEXPIRE key ms    -> integer 1 when key exists (s <= 0 deletes it), 0
--                                       when not
--   PERSIST key                      -> integer 1 when an expiry was removed, 0 when not
--   TTL key / PTTL key               -> integer seconds (rounded) / ms left; -1 when key has
--                                       no expiry, -2 when it does not exist
--   KEYS pattern                     -> array of the matching keys, in byte order. Glob
--                                       style: * any run, ? one byte, [abc] [a-z] [^a]
--                                       sets, \x a literal x
--   SCAN cursor [MATCH pattern] [COUNT n]
--                                    -> array {next cursor, array of keys}: pages through
--                                       the keys in byte order (see SCAN below)
-- GET, EXISTS, MGET, DBSIZE, TTL, PTTL, KEYS and SCAN are reads.
--
-- Try it: start a local cluster with scripts/cluster.sh (it runs this script), then
--
--   redis-cli -p 6001 SET greeting hello        -> OK
--   redis-cli -p 6002 GET greeting              -> "hello"   (any node answers)
--   redis-cli -p 6003 CAS greeting hello world  -> (integer) 1
--   redis-cli -p 6001 INCR greeting             -> (error) ERR value is not an integer or
--                                                  out of range
--   redis-cli -p 6001 SET session abc EX 60     -> OK
--   redis-cli -p 6002 TTL session               -> (integer) 60
--   redis-cli -p 6003 KEYS 'g*'                 -> 1) "greeting"
--   redis-cli -p 6001 SCAN 0 COUNT 1            -> 1) "6772656574696e67"  2) 1) "greeting"
--
-- Expiry by the log's clock: a key set with EX/PX or EXPIRE gets a deadline of the
-- applying entry's ctx.time_ms plus the TTL. Every apply first deletes the keys whose
-- deadline is <= its ctx.time_ms, so a key is gone from the first entry stamped at or after
-- its deadline, on every replica alike. Reads use the time of the last applied entry,
-- which is saved in the snapshot: a node's own clock differs between replicas and a read
-- must answer the same on every node and after a restore. So a key whose deadline has
-- passed in real time stays readable until the next write is applied (on a busy cluster,
-- milliseconds; an idle one keeps it until a write comes). The log's clock never runs
-- backwards here: a new leader's clock may be a little behind, and max() keeps time
-- monotonic so a deleted key cannot reappear or a TTL grow.
--
-- SCAN: the cursor is "0" to start; the reply's cursor is "0" when the scan is done,
-- otherwise the hex encoding of the last key examined, and the next call returns keys
-- after it in byte order. So a key that exists for the whole scan is returned exactly
-- once, however the other keys change in between (Redis promises "at least once"). COUNT
-- (default 10) is how many keys one call examines; with MATCH, fewer may come back, even
-- none, while the cursor moves on. redis-cli --scan expects numeric cursors: page by hand.
--
-- spec/fsm/kv_spec.lua and spec/examples/kv_spec.lua test it in-process.
--
-- Snapshot format (big-endian, canonical: the same state always gives the same bytes):
--   "luaraft-kv 2\n", the log's time in ms as i64, the key count as u64, then per key in
--   byte order of the keys: u32 key length, key, u32 value length, value, i64 deadline in
--   ms (0: no expiry). Restore also reads version 1 ("luaraft-kv 1\n", no time, no
--   deadlines).

local M = {}

local data = {}    -- key -> value (strings)
local count = 0    -- number of keys in data
local expires = {} -- key -> deadline in ms (log time), only for keys with an expiry
local soonest = nil -- the smallest deadline in expires, or nil when there is none
local now = 0      -- time_ms of the last applied entry

local INT64_MIN = math.mininteger
local INT64_MAX = math.maxinteger
local MAGIC = "luaraft-kv 2\n"
local MAGIC_V1 = "luaraft-kv 1\n"
local CHUNK_BYTES = 64 * 1024
local SCAN_COUNT = 10

local function wrong_args(name)
    return { err = "ERR wrong number of arguments for '" .. name:lower() .. "' command" }
end

local NOT_INT = { err = "ERR value is not an integer or out of range" }

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
-- its effects up to there stay, so the count must never run ahead of the data. Keeps
-- the key's expiry (INCR and CAS change the value, not the lifetime).
local function set(key, value)
    local new = data[key] == nil
    data[key] = value
    if new then
        count = count + 1
    end
end

local function expire_at(key, deadline)
    expires[key] = deadline
    if soonest == nil or deadline < soonest then
        soonest = deadline
    end
end

local function delete(key)
    if data[key] ~= nil then
        data[key] = nil
        count = count - 1
        expires[key] = nil -- soonest may now be early: purge only rescans, harmlessly
        return true
    end
    return false
end

-- Deletes every key whose deadline is <= now. Runs at the start of each apply, and scans
-- only when the soonest deadline has come, so most commands pay nothing. (A scan over
-- every key with an expiry; a heap would make it O(log n) per expiry, at more code.)
local function purge()
    if soonest == nil or now < soonest then
        return
    end
    local next_soonest = nil
    for key, deadline in pairs(expires) do
        if deadline <= now then
            delete(key)
        elseif next_soonest == nil or deadline < next_soonest then
            next_soonest = deadline
        end
    end
    soonest = next_soonest
end

-- A TTL argument as a deadline: now + n * unit ms, or nil, err.
local function deadline_of(s, unit, name)
    local n = parse_int(s)
    if n == nil then
        return nil, NOT_INT
    end
    if n <= 0 then
        return now -- already past: the caller deletes (EXPIRE) or refuses (SET)
    end
    if n > (INT64_MAX - now) // unit then
        return nil, { err = "ERR invalid expire time in '" .. name .. "' command" }
    end
    return now + n * unit
end

-- Glob matching, Redis-style, without Lua's backtracking: the glob is cut at its stars
-- into segments that each match a fixed number of bytes (a literal, ?, or a [set]), and
-- each segment becomes a Lua pattern with every byte escaped. Then the first segment must
-- match at the start, the last at the end, and the middle ones leftmost in order, which
-- is exactly when the glob matches, in time linear in the key per segment.
local function escape(c)
    return c:match("^%w$") and c or "%" .. c
end

local function compile_glob(glob)
    local segments, current = {}, {}
    local i, n = 1, #glob
    while i <= n do
        local c = glob:sub(i, i)
        if c == "*" then
            segments[#segments + 1] = table.concat(current)
            current = {}
        elseif c == "?" then
            current[#current + 1] = "."
        elseif c == "\\" and i < n then
            i = i + 1
            current[#current + 1] = escape(glob:sub(i, i))
        elseif c == "[" and glob:find("]", i + 1, true) then
            local j, set = i + 1, {}
            local negate = glob:sub(j, j) == "^" or glob:sub(j, j) == "!"
            if negate then
                j = j + 1
            end
            while glob:sub(j, j) ~= "]" and j <= n do
                local a = glob:sub(j, j)
                if a == "\\" and j < n then
                    j = j + 1
                    a = glob:sub(j, j)
                end
                local range = glob:sub(j + 1, j + 1) == "-" and j + 2 <= n
                    and glob:sub(j + 2, j + 2) ~= "]"
                if range then
                    -- A range, spelled out byte by byte so no endpoint needs to be
                    -- alphanumeric; reversed ranges count, as in Redis.
                    local lo, hi = a:byte(), glob:byte(j + 2)
                    if lo > hi then
                        lo, hi = hi, lo
                    end
                    for b = lo, hi do
                        set[#set + 1] = escape(string.char(b))
                    end
                    j = j + 3
                else
                    set[#set + 1] = escape(a)
                    j = j + 1
                end
            end
            if #set == 0 then
                -- [] matches no byte, [^] any byte.
                current[#current + 1] = negate and "." or "[^\0-\255]"
            else
                current[#current + 1] = "[" .. (negate and "^" or "") .. table.concat(set) .. "]"
            end
            i = j
        else
            current[#current + 1] = escape(c)
        end
        i = i + 1
    end
    segments[#segments + 1] = table.concat(current)
    local first, last = "^" .. segments[1], segments[#segments] .. "$"
    if #segments == 1 then
        return function(s)
            return s:find(first .. "$") ~= nil
        end
    end
    return function(s)
        local _, e = s:find(first)
        if not e then
            return false
        end
        local pos = e + 1
        for k = 2, #segments - 1 do
            _, e = s:find(segments[k], pos)
            if not e then
                return false
            end
            pos = e + 1
        end
        return s:find(last, pos) ~= nil
    end
end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(s)
    if #s % 2 ~= 0 or s:find("[^%x]") then
        return nil
    end
    return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
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
        local deadline, cond, err = nil, nil, nil
        local i = 4
        while i <= #cmd do
            local opt = cmd[i]:upper()
            if (opt == "EX" or opt == "PX") and deadline == nil and i < #cmd then
                local n = parse_int(cmd[i + 1])
                if n == nil then
                    return NOT_INT
                end
                if n <= 0 then
                    return { err = "ERR invalid expire time in 'set' command" }
                end
                deadline, err = deadline_of(cmd[i + 1], opt == "EX" and 1000 or 1, "set")
                if deadline == nil then
                    return err
                end
                i = i + 2
            elseif (opt == "NX" or opt == "XX") and cond == nil then
                cond = opt
                i = i + 1
            else
                return { err = "ERR syntax error" }
            end
        end
        local exists = data[cmd[2]] ~= nil
        if (cond == "NX" and exists) or (cond == "XX" and not exists) then
            return nil
        end
        set(cmd[2], cmd[3])
        expires[cmd[2]] = nil
        if deadline then
            expire_at(cmd[2], deadline)
        end
        return { ok = "OK" }
    end,
}

commands.DEL = {
    arity = -2,
    fn = function(cmd)
        local deleted = 0
        for i = 2, #cmd do
            if delete(cmd[i]) then
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
                return NOT_INT
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

local function expire_command(name, unit)
    return {
        arity = 3,
        fn = function(cmd)
            local deadline, err = deadline_of(cmd[3], unit, name)
            if deadline == nil then
                return err
            end
            if data[cmd[2]] == nil then
                return 0
            end
            if deadline <= now then
                delete(cmd[2]) -- already past: Redis deletes at once
            else
                expire_at(cmd[2], deadline)
            end
            return 1
        end,
    }
end

commands.EXPIRE = expire_command("expire", 1000)
commands.PEXPIRE = expire_command("pexpire", 1)

commands.PERSIST = {
    arity = 2,
    fn = function(cmd)
        if expires[cmd[2]] == nil then
            return 0
        end
        expires[cmd[2]] = nil
        return 1
    end,
}

-- Every key in data is alive: apply purged the expired ones at the time reads use.
local function ttl_command(ms)
    return {
        arity = 2,
        fn = function(cmd)
            if data[cmd[2]] == nil then
                return -2
            end
            local deadline = expires[cmd[2]]
            if deadline == nil then
                return -1
            end
            local left = deadline - now
            return ms and left or (left + 500) // 1000
        end,
    }
end

commands.TTL = ttl_command(false)
commands.PTTL = ttl_command(true)

commands.KEYS = {
    arity = 2,
    fn = function(cmd)
        local match, keys = compile_glob(cmd[2]), {}
        for key in pairs(data) do -- byte order under the sandbox
            if match(key) then
                keys[#keys + 1] = key
            end
        end
        return keys
    end,
}

commands.SCAN = {
    arity = -2,
    fn = function(cmd)
        local after = nil
        if cmd[2] ~= "0" then
            after = unhex(cmd[2])
            if after == nil then
                return { err = "ERR invalid cursor" }
            end
        end
        local match, want = nil, SCAN_COUNT
        local i = 3
        while i <= #cmd do
            local opt = cmd[i]:upper()
            if opt == "MATCH" and i < #cmd then
                match = compile_glob(cmd[i + 1])
            elseif opt == "COUNT" and i < #cmd then
                want = parse_int(cmd[i + 1])
                if want == nil then
                    return NOT_INT
                end
                if want < 1 then
                    return { err = "ERR syntax error" }
                end
            else
                return { err = "ERR syntax error" }
            end
            i = i + 2
        end
        local keys, examined, last = {}, 0, nil
        for key in pairs(data) do -- byte order under the sandbox
            -- > on strings is strcoll: byte order in the C locale the node runs in,
            -- the same order as pairs.
            if after == nil or key > after then
                if examined == want then
                    return { hex(last), keys } -- there is more
                end
                examined = examined + 1
                last = key
                if match == nil or match(key) then
                    keys[#keys + 1] = key
                end
            end
        end
        return { "0", keys }
    end,
}

M.reads = {
    GET = true, EXISTS = true, MGET = true, DBSIZE = true, TTL = true, PTTL = true,
    KEYS = true, SCAN = true,
}

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
    now = math.max(now, ctx.time_ms) -- the log's clock, never backwards (see the header)
    purge()
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
    local parts, size = { MAGIC, string.pack(">i8I8", now, n) }, 0
    for key, value in pairs(data) do
        local record = string.pack(">s4s4i8", key, value, expires[key] or 0)
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
    local magic = take(#MAGIC)
    if magic ~= MAGIC and magic ~= MAGIC_V1 then
        error("not a kv snapshot")
    end
    local v1 = magic == MAGIC_V1
    local time = 0
    if not v1 then
        time = string.unpack(">i8", take(8))
    end
    local n = string.unpack(">I8", take(8))
    local new, new_expires, new_soonest = {}, {}, nil
    for _ = 1, n do
        local key = take_string()
        new[key] = take_string()
        local deadline = v1 and 0 or string.unpack(">i8", take(8))
        if deadline ~= 0 then
            new_expires[key] = deadline
            if new_soonest == nil or deadline < new_soonest then
                new_soonest = deadline
            end
        end
    end
    if pos <= #buf or r:read() ~= nil then
        error("trailing bytes after the snapshot")
    end
    data, count, expires, soonest, now = new, n, new_expires, new_soonest, time
end

return M
