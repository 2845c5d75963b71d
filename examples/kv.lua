-- kv.lua: a subset of Redis 7.0's data model as a luaraft state machine.
--
-- Strings, hashes, lists, sets, sorted sets and a minimal stream, with Redis 7.0's
-- replies (RESP3 maps, sets and doubles where Redis gives them; a RESP2 client gets
-- Redis's RESP2 forms from the node) and its error texts. What it shows: the command
-- table (M.commands: arity, key positions, reads), M.apply for writes and M.query for
-- reads, expiry by the log's clock (M.tick for active expiry while idle), M.keyspace for
-- INFO, and a snapshot that is one luaraft.encode of the whole state.
--
-- Commands (each as Redis 7.0 has it, unless noted below):
--   strings  GET SET (NX XX GET EX PX EXAT PXAT KEEPTTL) SETNX SETEX PSETEX GETSET GETDEL
--            GETEX (EX PX EXAT PXAT PERSIST) MGET MSET MSETNX INCR DECR INCRBY DECRBY
--            INCRBYFLOAT APPEND STRLEN SETRANGE GETRANGE SUBSTR, and CAS (below)
--   keys     DEL UNLINK EXISTS TOUCH TYPE RENAME RENAMENX COPY EXPIRE PEXPIRE EXPIREAT
--            PEXPIREAT (NX XX GT LT) TTL PTTL EXPIRETIME PEXPIRETIME PERSIST SCAN (MATCH
--            COUNT TYPE) KEYS DBSIZE RANDOMKEY FLUSHALL FLUSHDB MEMORY USAGE
--   hashes   HSET HSETNX HMSET HGET HMGET HDEL HEXISTS HLEN HSTRLEN HGETALL HKEYS HVALS
--            HINCRBY HINCRBYFLOAT HSCAN
--   lists    LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP (count) LLEN LRANGE LINDEX LSET LREM
--            LTRIM LINSERT LPOS LMOVE RPOPLPUSH
--   sets     SADD SREM SISMEMBER SMISMEMBER SCARD SMEMBERS SPOP SRANDMEMBER SINTER
--            SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SMOVE SSCAN
--   zsets    ZADD (NX XX GT LT CH INCR) ZINCRBY ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT
--            ZRANK ZREVRANK ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES) ZRANGESTORE
--            ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZREM
--            ZPOPMIN ZPOPMAX ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZSCAN
--   streams  XADD (NOMKSTREAM, MAXLEN|MINID [=|~] n [LIMIT c], * or an id) XLEN XRANGE
--            XREVRANGE
-- The node itself answers PING, ECHO, HELLO, INFO, CONFIG GET, COMMAND, MULTI/EXEC, ...
--
-- CAS key expected new (not Redis): sets key to new when its value is the string
-- expected (keeping its expiry) and answers 1; otherwise 0 (also for a missing key or
-- one that is not a string).
--
-- Where it differs from Redis, and why:
--   - Time is the log's: an entry's ctx.time_ms when applied, the last applied entry's
--     in a read, never the machine's clock, so every replica expires a key at the same
--     entry. The log's clock never runs backwards here (a new leader's clock may be a
--     little behind): the largest time seen so far is "now".
--   - INCRBYFLOAT and HINCRBYFLOAT compute in double precision (Lua has no long double),
--     so their results match Redis's where a double holds them: the text is the
--     shortest decimal that is within two units in the last place of the result, in
--     plain notation (Redis prints 17 decimals of a long double; "0.1" plus "0.2" is
--     "0.3" in both, but Redis shows long double rounding noise for larger values, as in
--     "1000.29999999999999999", which this prints as "1000.3"); an operand beyond a
--     double's range (1e400) is not a valid float here.
--   - Random choices (SPOP, SRANDMEMBER, RANDOMKEY) come from the entry's ctx.seed, and
--     in a read from a fixed rule of the last applied index, so they are the same on
--     every replica, and a read repeated between two entries answers the same.
--   - SCAN, HSCAN, SSCAN and ZSCAN cursors are positions in a 32-bit hash of the keys
--     (below); a full iteration returns every key present throughout exactly once, but
--     the page boundaries and orders differ from Redis's. Collections of at most 128
--     members come back whole in one call, with cursor 0, as Redis's small encodings do.
--   - Orders that Redis leaves to its hash tables (KEYS, SMEMBERS, HGETALL, HKEYS, ...)
--     are byte order here.
--   - MEMORY USAGE is an estimate from the sizes of the key and the value's strings plus
--     a fixed overhead per element, not the allocator's count.
--   - Sorted sets keep their members in a sorted array: rank queries are O(log n), an
--     insert or a removal in the middle moves the array (in C, but O(n)).
--   - XADD's MAXLEN/MINID "~" trims whole hundreds of entries only (Redis trims whole
--     nodes, of at most 100 entries by default); stream ids are limited to
--     0..2^63-1 in both parts.
--   - A list index, a count or an offset is a 64-bit integer as in Redis, but a string
--     longer than the node's 32 MiB command limit cannot be built by one command.
--
-- Expiry. A key's deadline is in `expires` and in a binary heap ordered by (deadline,
-- key). A key whose deadline is <= now is absent for every command (reads check it), and
-- writes remove such keys: each entry first removes up to 20 of them (the ones first in
-- heap order, the same on every replica), M.tick (every M.tick_ms of an idle log, the
-- node logs a TICK entry) removes up to 1000, and a write that touches an expired key
-- removes it. DBSIZE, KEYS, SCAN, INFO's keyspace and RANDOMKEY count only live keys.
--
-- Cursors. Every key (and every member of a set, field of a hash or member of a sorted
-- set of more than 128) is filed in a trie by a 32-bit hash of its bytes, 4 bits a level,
-- leaves of up to 32 strings. A cursor is a hash value: a SCAN call returns what is filed
-- in the leaves from the cursor's on, until COUNT strings were looked at, and answers the
-- start of the next leaf ("0" once past the last). A key filed the whole time is in
-- exactly one leaf range the iteration passes through, however the trie splits or merges
-- meanwhile. Random picks take the first string at or after a random hash value, so they
-- depend on the content only, never on the trie's shape.
--
-- Try it: start a local cluster with scripts/cluster.sh (it runs this script), then
--
--   redis-cli -p 6001 SET greeting hello        -> OK
--   redis-cli -p 6002 GET greeting              -> "hello"   (any node answers)
--   redis-cli -p 6003 CAS greeting hello world  -> (integer) 1
--   redis-cli -p 6001 HSET user:1 name ada      -> (integer) 1
--   redis-cli -p 6001 ZADD board 10 ada 7 bob   -> (integer) 2
--   redis-cli -p 6002 ZRANGE board 0 -1 WITHSCORES
--   redis-cli -p 6001 SET session abc EX 60     -> OK
--   redis-cli -p 6002 TTL session               -> (integer) 60
--   redis-cli -p 6003 --scan                    -> every key
--   redis-benchmark -p 6001 -q                  -> its default suite
--
-- spec/fsm/kv_spec.lua and spec/examples/kv_spec.lua test it in-process;
-- spec/examples/kv_redis_spec.lua compares it with a real redis-server, command by
-- command.
--
-- Snapshot: "luaraft-kv 3\n" and then luaraft.encode({now =, data =, expires =}): the
-- log's time, every key's value (a string, or a table as described at "Values" below)
-- and every deadline. The heap, the tries and the sorted orders are rebuilt on restore.

local M = {}

local concat, sort, tinsert, tremove, tmove = table.concat, table.sort, table.insert,
    table.remove, table.move
local unpack, fmt, srep = string.unpack, string.format, string.rep
local tointeger, mtype, floor = math.tointeger, math.type, math.floor
local INT64_MAX, INT64_MIN = math.maxinteger, math.mininteger
local HUGE = math.huge

-- =======================================================================================
-- Replies and argument parsing
-- =======================================================================================

local OK = { ok = "OK" }
local NULL_ARRAY = { null_array = true } -- RESP2's *-1, RESP3's _
local function err(text)
    return { err = text }
end
local WRONGTYPE = err("WRONGTYPE Operation against a key holding the wrong kind of value")
local SYNTAX = err("ERR syntax error")
local NOT_INT = err("ERR value is not an integer or out of range")
local NOT_FLOAT = err("ERR value is not a valid float")
local POSITIVE = err("ERR value is out of range, must be positive")
local NO_KEY = err("ERR no such key")
local OUT_OF_RANGE = err("ERR index out of range")
local OVERFLOW = err("ERR increment or decrement would overflow")
local NAN_INF = err("ERR increment would produce NaN or Infinity")
local BAD_CURSOR = err("ERR invalid cursor")
local TOO_BIG = err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
local MIN_MAX_FLOAT = err("ERR min or max is not a float")
local MIN_MAX_LEX = err("ERR min or max not valid string range item")
local BAD_ID = err("ERR Invalid stream ID specified as stream command argument")
local ID_TOO_SMALL = err("ERR The ID specified in XADD is equal or smaller than the target "
    .. "stream top item")
local EMPTY_MAP = { map = {} }
local EMPTY_SET = { set = {} }
local EMPTY_SCAN = { "0", {} }
local STRING_MAX = 512 * 1024 * 1024 -- proto-max-bulk-len

local function wrong_args(name)
    return err("ERR wrong number of arguments for '" .. name:lower() .. "' command")
end

local function expire_error(name)
    return err("ERR invalid expire time in '" .. name .. "' command")
end

-- Redis's string2ll: an optional '-', then digits without leading zeros, in int64 range.
local function parse_int(s)
    if not s:find("^%-?[1-9]%d*$") then
        return s == "0" and 0 or nil
    end
    return tointeger(tonumber(s)) -- a float (so nil) when out of range
end

-- Redis's strtod/strtold checks (getDoubleFromObject, string2ld): the whole string is a
-- number, no white space, inf/infinity allowed, nan not, overflow and underflow to zero
-- refused. Always a float.
local function parse_float(s)
    local n = tonumber(s)
    if n == nil then
        local sign, word = s:lower():match("^([+-]?)(%a+)$")
        if word == "inf" or word == "infinity" then
            return sign == "-" and -HUGE or HUGE
        end
        return nil
    end
    if s:find("%s") then
        return nil
    end
    if mtype(n) == "integer" then
        if s:find("^[+-]?0[xX]") then
            n = tonumber(s .. "p0") -- a hex integer would wrap around; as a float it rounds
        end
        return n + 0.0
    end
    if n ~= n or n == HUGE or n == -HUGE then
        return nil
    end
    if n == 0 then -- underflow to zero, as strtod reports it, is refused
        local hex = s:match("^[+-]?0[xX]([%x.]*)")
        local mantissa = hex or s:match("^[+-]?([%d.]*)")
        if mantissa:find(hex and "[1-9a-fA-F]" or "[1-9]") then
            return nil
        end
    end
    return n
end

-- A sorted set range bound as zslParseRange reads it: strtod skips leading white space,
-- takes an empty string as 0 and overflow as infinity; only trailing garbage and nan are
-- refused. Returns value, exclusive or nil.
local function parse_score_bound(s)
    local exclusive = false
    if s:sub(1, 1) == "(" then
        exclusive, s = true, s:sub(2)
    end
    s = s:gsub("^%s+", "")
    if s == "" then
        return 0.0, exclusive
    end
    if s:find("%s$") then
        return nil
    end
    local n = tonumber(s)
    if n == nil then
        local sign, word = s:lower():match("^([+-]?)(%a+)$")
        if word ~= "inf" and word ~= "infinity" then
            return nil
        end
        n = sign == "-" and -HUGE or HUGE
    elseif mtype(n) == "integer" and s:find("^[+-]?0[xX]") then
        n = tonumber(s .. "p0")
    end
    n = n + 0.0
    if n ~= n then
        return nil
    end
    return n, exclusive
end

-- A double as Redis 7.0 prints it in replies ("%.17g", inf, -inf).
local function g17(x)
    if x == HUGE then
        return "inf"
    elseif x == -HUGE then
        return "-inf"
    end
    return fmt("%.17g", x)
end

-- The text of an INCRBYFLOAT result (see the header): 15 significant digits when they
-- are within two ulps of x (they hide the rounding noise of decimal arithmetic in
-- binary), else the shortest of 16 or 17 that reads back as x; in plain notation,
-- trailing zeros removed, at most 17 decimals (Redis's "%.17Lf"), "-0" as "0".
local function human_float(x)
    local text
    for digits = 15, 17 do
        text = fmt("%." .. (digits - 1) .. "e", x)
        local back = tonumber(text)
        if back == x or (digits == 15 and math.abs(back - x) <= math.abs(x) * 4.5e-16) then
            break
        end
    end
    local sign, int, frac, exp = text:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
    local ds = (int .. frac):gsub("0+$", "")
    exp = tointeger(tonumber(exp))
    local out
    if ds == "" then
        out = "0"
    elseif exp >= #ds - 1 then
        out = ds .. srep("0", exp - #ds + 1)
    elseif exp >= 0 then
        out = ds:sub(1, exp + 1) .. "." .. ds:sub(exp + 2)
    elseif -exp - 1 + #ds <= 17 then
        out = "0." .. srep("0", -exp - 1) .. ds
    else
        out = fmt("%.17f", math.abs(x)):gsub("0+$", ""):gsub("%.$", "")
    end
    if out == "0" then
        return "0"
    end
    return sign .. out
end

-- An integer argument, or nil and Redis's error.
local function int_arg(s)
    local n = parse_int(s)
    if n == nil then
        return nil, NOT_INT
    end
    return n
end

-- Redis's list range rule: negative indexes count from the end; returns the 0-based
-- start and stop, or nil when the range is empty.
local function list_range(len, start, stop)
    if start < 0 then
        start = len + start
    end
    if stop < 0 then
        stop = len + stop
    end
    if start < 0 then
        start = 0
    end
    if start > stop or start >= len then
        return nil
    end
    if stop >= len then
        stop = len - 1
    end
    return start, stop
end


-- Two integer arguments, or nil.
local function int_pair(a, b)
    local x, y = parse_int(a), parse_int(b)
    if x == nil or y == nil then
        return nil
    end
    return x, y
end

-- getPositiveLongFromObjectOrReply: one message for both a bad and a negative number.
local function positive_arg(s, message)
    local n = parse_int(s)
    if n == nil or n < 0 then
        return nil, message and err("ERR " .. message) or POSITIVE
    end
    return n
end

-- Whether n + by leaves the 64-bit range.
local function would_overflow(n, by)
    return (by < 0 and n < 0 and by < INT64_MIN - n) or (by > 0 and n > 0 and by > INT64_MAX - n)
end

-- The optional count of LPOP, SPOP, ZPOPMIN and the like: n, or nil when not given; or
-- false and the error (too_many when more arguments follow).
local function pop_count(cmd, argc, too_many)
    if argc > 3 then
        return false, too_many
    end
    if argc == 3 then
        local n, e = positive_arg(cmd[3])
        if n == nil then
            return false, e
        end
        return n
    end
    return nil
end

-- =======================================================================================
-- Hashing, and the trie that files strings by hash (for cursors and random picks)
-- =======================================================================================

local TAIL = {}
for i = 1, 7 do
    TAIL[i] = "<I" .. i
end

-- A 32-bit hash of a string's bytes, 8 at a time.
local function hash32(s)
    local n = #s
    local h = n * 0x9E3779B97F4A7C15
    local i = 1
    while i + 7 <= n do
        h = (h ~ unpack("<i8", s, i)) * 0xff51afd7ed558ccd
        h = h ~ (h >> 32)
        i = i + 8
    end
    if i <= n then
        h = (h ~ unpack(TAIL[n - i + 1], s, i)) * 0xff51afd7ed558ccd
    end
    h = (h ~ (h >> 33)) * 0xc4ceb9fe1a85ec53
    h = h ~ (h >> 29)
    return h >> 32
end

local HASH_END = 1 << 32 -- one past the last hash value
local LEAF_MAX = 32      -- strings a leaf holds

-- A trie node is a leaf {n =, k = {strings}, h = {their hashes}} or an inner node {n =,
-- c = {[0] .. [15] = children}}, n counting the strings below it. The root covers hashes
-- [0, 2^32); a child of a node at shift s (28 for the root) covers the 2^s hashes whose
-- bits above s are its index. A node is inner exactly when it holds more than LEAF_MAX
-- strings (a leaf at the deepest level, one hash value, may hold more), so the trie's
-- shape depends on its strings only, not on the order they came and went in: a restored
-- replica pages through SCAN exactly as the original does.
local function leaf()
    return { n = 0, k = {}, h = {} }
end

local function trie()
    return { root = leaf() }
end

local function leaf_add(node, s, h)
    local n = node.n + 1
    node.n, node.k[n], node.h[n] = n, s, h
end

local function split(node, shift)
    local children = {}
    for i = 0, 15 do
        children[i] = leaf()
    end
    local k, h = node.k, node.h
    for j = 1, node.n do
        leaf_add(children[(h[j] >> shift) & 15], k[j], h[j])
    end
    node.k, node.h, node.c = nil, nil, children
    if shift >= 4 then
        for i = 0, 15 do
            if children[i].n > LEAF_MAX then
                split(children[i], shift - 4)
            end
        end
    end
end

local function trie_add(t, s, h)
    local node, shift = t.root, 28
    while node.c do
        node.n = node.n + 1
        node = node.c[(h >> shift) & 15]
        shift = shift - 4
    end
    leaf_add(node, s, h)
    if node.n > LEAF_MAX and shift >= 0 then
        split(node, shift)
    end
end

-- Moves every string below node into the leaf into.
local function gather(node, into)
    if node.c then
        for i = 0, 15 do
            gather(node.c[i], into)
        end
    else
        for j = 1, node.n do
            leaf_add(into, node.k[j], node.h[j])
        end
    end
end

local function trie_remove(t, s, h)
    local node, shift, fold = t.root, 28, nil
    while node.c do
        node.n = node.n - 1
        if fold == nil and node.n <= LEAF_MAX then
            fold = node -- the topmost inner node that is now small enough to be a leaf
        end
        node = node.c[(h >> shift) & 15]
        shift = shift - 4
    end
    local k, hs, n = node.k, node.h, node.n
    for j = 1, n do
        if k[j] == s then
            k[j], hs[j] = k[n], hs[n]
            k[n], hs[n] = nil, nil
            node.n = n - 1
            break
        end
    end
    if fold then
        local merged = leaf()
        gather(fold, merged)
        fold.c, fold.k, fold.h = nil, merged.k, merged.h
    end
end

-- The leaf that holds hash c, and the first hash after its range.
local function leaf_at(t, c)
    local node, shift, lo = t.root, 28, 0
    while node.c do
        local i = (c >> shift) & 15
        lo = lo | (i << shift)
        node = node.c[i]
        shift = shift - 4
    end
    return node, lo + (1 << (shift + 4))
end

-- Calls fn(s) for the strings filed from hash cursor on, leaf by leaf and in (hash,
-- string) order within a leaf, until count were passed to fn or 10 * count leaves were
-- looked at; returns the next cursor (0: done). The same strings give the same pages.
local function trie_scan(t, cursor, count, fn)
    local c, seen, leaves = cursor, 0, 0
    local ks, hs = {}, {}
    repeat
        local node, stop = leaf_at(t, c)
        local k, h, m = node.k, node.h, 0
        for j = 1, node.n do -- insertion sort of the leaf's strings at or after c
            local hj, kj = h[j], k[j]
            if hj >= c then
                local i = m
                while i > 0 and (hs[i] > hj or (hs[i] == hj and ks[i] > kj)) do
                    hs[i + 1], ks[i + 1] = hs[i], ks[i]
                    i = i - 1
                end
                hs[i + 1], ks[i + 1] = hj, kj
                m = m + 1
            end
        end
        for j = 1, m do
            fn(ks[j])
        end
        seen = seen + m
        c, leaves = stop, leaves + 1
    until c >= HASH_END or seen >= count or leaves >= 10 * count
    return c >= HASH_END and 0 or c
end

-- The string with the smallest (hash, string) at or after hash x, wrapping around; nil
-- when the trie is empty.
local function trie_successor(t, x)
    if t.root.n == 0 then
        return nil
    end
    local c = x
    while true do
        local node, stop = leaf_at(t, c)
        local best, bh = nil, nil
        local k, h = node.k, node.h
        for j = 1, node.n do
            local hj = h[j]
            if hj >= c and (best == nil or hj < bh or (hj == bh and k[j] < best)) then
                best, bh = k[j], hj
            end
        end
        if best then
            return best
        end
        c = stop >= HASH_END and 0 or stop
    end
end

-- =======================================================================================
-- Random numbers: splitmix64 from a seed (ctx.seed in an entry; a read derives one)
-- =======================================================================================

local rng_state = 0

local function seed_rng(seed)
    rng_state = seed
end

local function rand64()
    rng_state = rng_state + 0x9E3779B97F4A7C15
    local z = rng_state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return z ~ (z >> 31)
end

-- A random integer in 1..n.
local function rand(n)
    return (rand64() >> 1) % n + 1
end

-- =======================================================================================
-- State
-- =======================================================================================

-- Values: a string, or a table with a type t:
--   {t = "hash", n = fields, m = {field = value}}
--   {t = "set",  n = members, m = {member = true}}
--   {t = "zset", n = members, m = {member = score (a float)}}
--   {t = "list", n = length, h = index of the head, v = {[h] .. [h + n - 1] = elements}}
--   {t = "stream", n = entries, h = index of the first, e = {[h] = {ms, seq, {field,
--    value, ...}}, ...}, ms =, seq = (the last id given out)}
local data = {}     -- key -> value
local count = 0     -- keys in data, the expired ones not yet removed included
local expires = {}  -- key -> deadline in ms (the log's time)
local nexpires = 0  -- keys in expires
local now = 0       -- the largest time_ms of an applied entry
local T = 0         -- the time the running command sees: now, or a read's clock

-- Derived (rebuilt by restore, never in a snapshot):
local keys_trie = trie() -- every key in data
local hd, hk, hpos, hn = {}, {}, {}, 0 -- the expiry heap: deadlines, keys, key -> slot
local members_trie = {}  -- a hash, set or zset value of more than 128 members -> trie
local zorder = {}        -- a zset value -> its members sorted by (score, member)

local BIG = 128          -- collections larger than this get a trie (SCAN pages)
local PURGE_ENTRY = 20   -- expired keys each entry removes
local PURGE_TICK = 1000  -- expired keys each tick removes

-- ---------------------------------------------------------------------------------------
-- The expiry heap: a binary min-heap of (deadline, key), with each key's slot in hpos.

local function heap_up(i)
    local d, k = hd[i], hk[i]
    while i > 1 do
        local p = i // 2
        local pd, pk = hd[p], hk[p]
        if pd < d or (pd == d and pk < k) then
            break
        end
        hd[i], hk[i], hpos[pk] = pd, pk, i
        i = p
    end
    hd[i], hk[i], hpos[k] = d, k, i
end

local function heap_down(i)
    local d, k = hd[i], hk[i]
    while true do
        local l = 2 * i
        if l > hn then
            break
        end
        local cd, ck = hd[l], hk[l]
        if l < hn then
            local rd, rk = hd[l + 1], hk[l + 1]
            if rd < cd or (rd == cd and rk < ck) then
                l, cd, ck = l + 1, rd, rk
            end
        end
        if d < cd or (d == cd and k < ck) then
            break
        end
        hd[i], hk[i], hpos[ck] = cd, ck, i
        i = l
    end
    hd[i], hk[i], hpos[k] = d, k, i
end

local function heap_fix(i)
    local p = i // 2
    if i > 1 and (hd[i] < hd[p] or (hd[i] == hd[p] and hk[i] < hk[p])) then
        heap_up(i)
    else
        heap_down(i)
    end
end

local function set_expire(key, deadline)
    local i = hpos[key]
    if i then
        hd[i] = deadline
        heap_fix(i)
    else
        nexpires = nexpires + 1
        hn = hn + 1
        hd[hn], hk[hn] = deadline, key
        heap_up(hn)
    end
    expires[key] = deadline
end

local function clear_expire(key)
    local i = hpos[key]
    if i == nil then
        return false
    end
    expires[key], hpos[key] = nil, nil
    nexpires = nexpires - 1
    if i < hn then
        hd[i], hk[i] = hd[hn], hk[hn]
        hd[hn], hk[hn] = nil, nil
        hn = hn - 1
        hpos[hk[i]] = i
        heap_fix(i)
    else
        hd[hn], hk[hn] = nil, nil
        hn = hn - 1
    end
    return true
end

-- How many keys have a deadline <= T (expired, not yet removed): the heap's nodes <= T
-- form a subtree at the root.
local function expired_count()
    if hn == 0 or hd[1] > T then
        return 0
    end
    local n, stack, sp = 0, { 1 }, 1
    while sp > 0 do
        local i = stack[sp]
        sp = sp - 1
        if hd[i] <= T then
            n = n + 1
            local l = 2 * i
            if l <= hn then
                stack[sp + 1] = l
                sp = sp + 1
                if l < hn then
                    stack[sp + 1] = l + 1
                    sp = sp + 1
                end
            end
        end
    end
    return n
end

-- ---------------------------------------------------------------------------------------
-- Keys

-- A collection's members table and whether it has a trie are kept in step here.
local function members_added(o, member)
    local t = members_trie[o]
    if t then
        trie_add(t, member, hash32(member))
    elseif o.n > BIG then
        t = trie()
        for m in pairs(o.m) do
            trie_add(t, m, hash32(m))
        end
        members_trie[o] = t
    end
end

local function members_removed(o, member)
    local t = members_trie[o]
    if t then
        if o.n <= BIG then
            members_trie[o] = nil
        else
            trie_remove(t, member, hash32(member))
        end
    end
end

local function forget(v)
    if type(v) == "table" then
        members_trie[v], zorder[v] = nil, nil
    end
end

-- Stores value at key (new or not), keeping the key's expiry.
local function put(key, value)
    local old = data[key]
    data[key] = value
    if old == nil then
        count = count + 1
        trie_add(keys_trie, key, hash32(key))
    elseif old ~= value then
        forget(old)
    end
end

-- Removes key, which is in data (live or expired).
local function remove(key)
    local old = data[key]
    data[key] = nil
    count = count - 1
    trie_remove(keys_trie, key, hash32(key))
    if hn > 0 then
        clear_expire(key)
    end
    forget(old)
end

-- Whether key (in data) has expired by T.
local function expired(key)
    local d = expires[key]
    return d ~= nil and d <= T
end

-- The live value at key, or nil: for reads.
local function lookup(key)
    local v = data[key]
    if v ~= nil and hn > 0 and hd[1] <= T and expired(key) then
        return nil
    end
    return v
end

-- The same for writes: an expired key is removed.
local function lookup_write(key)
    local v = data[key]
    if v ~= nil and hn > 0 and hd[1] <= T and expired(key) then
        remove(key)
        return nil
    end
    return v
end

-- Removes up to limit keys whose deadline has come, first in heap order.
local function purge(limit)
    local n = 0
    while hn > 0 and hd[1] <= now and n < limit do
        remove(hk[1])
        n = n + 1
    end
end

local function type_name(v)
    if type(v) == "string" then
        return "string"
    end
    return v.t
end

-- A collection value of type t at key, or nil when there is none, or false when the key
-- holds another type.
local function get(key, t, write)
    local v
    if write then
        v = lookup_write(key)
    else
        v = lookup(key)
    end
    if v == nil then
        return nil
    end
    if type(v) ~= "table" or v.t ~= t then
        return false
    end
    return v
end

-- A command on the value of type t at cmd[2]: fn(o, cmd, argc), or missing when there is
-- no key (a value, or a function of cmd and argc), or WRONGTYPE. For the commands that
-- look the key up before they read their other arguments, as Redis's do; write: an
-- expired key is removed.
local function on(t, missing, fn, write)
    return function(cmd, argc)
        local o = get(cmd[2], t, write)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            if type(missing) == "function" then
                return missing(cmd, argc)
            end
            return missing
        end
        return fn(o, cmd, argc)
    end
end

-- A reply of argc - 2 times v, for the commands that answer per argument on a missing key.
local function per_argument(v)
    return function(_, argc)
        local out = {}
        for i = 1, argc - 2 do
            out[i] = v
        end
        return out
    end
end

local function length(o)
    return o.n
end

-- Deletes a collection's key once it is empty, as Redis does.
local function drop_if_empty(key, o)
    if o.n == 0 then
        remove(key)
    end
end

-- =======================================================================================
-- Glob patterns (KEYS, SCAN MATCH), with Redis's stringmatchlen rules
-- =======================================================================================

local function escape(c)
    return c:match("^%w$") and c or "%" .. c
end

-- The pattern is cut at its stars into segments of one-byte tokens (a literal, ?, a
-- [set]), read exactly as Redis reads them (an unclosed [ takes the rest of the pattern
-- as its set, "a-]" inside a set is a range up to ']', a trailing \ is literal); each
-- segment becomes a Lua pattern. The first segment must match at the start, the last at
-- the end, the middle ones leftmost in order: exactly when the glob matches, in linear
-- time per segment. As in Redis, the empty string matches only the empty pattern.
local function compile_glob(glob)
    local segments, current = {}, {}
    local i, n = 1, #glob
    while i <= n do
        local c = glob:sub(i, i)
        if c == "*" then
            segments[#segments + 1] = concat(current)
            current = {}
            i = i + 1
        elseif c == "?" then
            current[#current + 1] = "."
            i = i + 1
        elseif c == "[" then
            i = i + 1
            local negate = glob:sub(i, i) == "^"
            if negate then
                i = i + 1
            end
            local set = {}
            while true do
                local a = glob:sub(i, i)
                if a == "\\" and n - i + 1 >= 2 then
                    i = i + 1
                    set[#set + 1] = escape(glob:sub(i, i))
                elseif a == "]" or i > n then
                    break
                elseif n - i + 1 >= 3 and glob:sub(i + 1, i + 1) == "-" then
                    local lo, hi = glob:byte(i), glob:byte(i + 2)
                    if lo > hi then
                        lo, hi = hi, lo
                    end
                    for b = lo, hi do
                        set[#set + 1] = escape(string.char(b))
                    end
                    i = i + 2
                else
                    set[#set + 1] = escape(a)
                end
                i = i + 1
            end
            i = i + 1
            if #set == 0 then
                current[#current + 1] = negate and "." or "[^\0-\255]"
            else
                current[#current + 1] = "[" .. (negate and "^" or "") .. concat(set) .. "]"
            end
        else
            if c == "\\" and i < n then
                i = i + 1
                c = glob:sub(i, i)
            end
            current[#current + 1] = escape(c)
            i = i + 1
        end
    end
    segments[#segments + 1] = concat(current)
    local first, last = "^" .. segments[1], segments[#segments] .. "$"
    if #segments == 1 then
        local whole = first .. "$"
        return function(s)
            return s:find(whole) ~= nil
        end
    end
    return function(s)
        if s == "" then
            return false
        end
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

-- =======================================================================================
-- The command table
-- =======================================================================================

local commands = {} -- NAME -> {fn = function(cmd, argc), read = bool}
M.commands = {}     -- what the node reads: arity, keys, read, flags

local K1 = { 1, 1, 1 }   -- the key is the first argument
local KALL = { 1, -1, 1 } -- every argument is a key
local K12 = { 1, 2, 1 }  -- source and destination

-- spec: {arity, keys, read, flags} as Redis 7.0's COMMAND INFO gives them.
local function def(name, spec, fn)
    commands[name] = { fn = fn, read = spec.read == true, arity = spec.arity }
    M.commands[name] = {
        arity = spec.arity, keys = spec.keys, read = spec.read, flags = spec.flags,
    }
end

local FAST, DENYOOM, DENYOOM_FAST = { "fast" }, { "denyoom" }, { "denyoom", "fast" }

-- =======================================================================================
-- Strings
-- =======================================================================================

-- SET's and GETEX's options, read as Redis's parseExtendedStringArgumentsOrReply does
-- (is_set: SET's NX XX GET KEEPTTL; else GETEX's PERSIST). Returns {nx, xx, get, keepttl,
-- persist, kind = "EX" | "PX" | "EXAT" | "PXAT", arg}, or nil and the error.
local function string_options(cmd, argc, first, is_set)
    local o = {}
    local i = first
    while i <= argc do
        local opt = cmd[i]:upper()
        local timed = o.kind ~= nil
        if opt == "NX" and is_set and not o.xx then
            o.nx = true
        elseif opt == "XX" and is_set and not o.nx then
            o.xx = true
        elseif opt == "GET" and is_set then
            o.get = true
        elseif opt == "KEEPTTL" and is_set and not timed then
            o.keepttl = true
        elseif opt == "PERSIST" and not is_set and not timed then
            o.persist = true
        elseif (opt == "EX" or opt == "PX" or opt == "EXAT" or opt == "PXAT")
            and not o.keepttl and not o.persist and (o.kind == nil or o.kind == opt)
            and i < argc then
            o.kind, o.arg = opt, cmd[i + 1]
            i = i + 1
        else
            return nil, SYNTAX
        end
        i = i + 1
    end
    return o
end

-- An EX/PX/EXAT/PXAT argument as a deadline in ms, or nil and the error.
local function deadline_of(arg, kind, name)
    local n = parse_int(arg)
    if n == nil then
        return nil, NOT_INT
    end
    local seconds = kind == "EX" or kind == "EXAT"
    if n <= 0 or (seconds and n > INT64_MAX // 1000) then
        return nil, expire_error(name)
    end
    if seconds then
        n = n * 1000
    end
    if kind == "EX" or kind == "PX" then
        if n > INT64_MAX - T then
            return nil, expire_error(name)
        end
        n = n + T
    end
    return n
end

-- SET and its variants, as setGenericCommand: ok and abort are the replies when the
-- value was set and when NX/XX said no (nil: null).
local function set_generic(name, key, value, o, ok, abort)
    local deadline, e
    if o.kind then
        deadline, e = deadline_of(o.arg, o.kind, name)
        if deadline == nil then
            return e
        end
    end
    local old = lookup_write(key)
    if o.get and old ~= nil and type(old) ~= "string" then
        return WRONGTYPE
    end
    if (o.nx and old ~= nil) or (o.xx and old == nil) then
        if o.get then
            return old
        end
        return abort
    end
    put(key, value)
    if deadline then
        set_expire(key, deadline)
    elseif not o.keepttl and hn > 0 then
        clear_expire(key)
    end
    if o.get then
        return old
    end
    return ok
end

-- The string at key for a read: the value, nil, or false for another type.
local function get_string(key)
    local v = lookup(key)
    if v ~= nil and type(v) ~= "string" then
        return false
    end
    return v
end

def("GET", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    local v = data[cmd[2]]
    if v == nil then
        return nil
    end
    if hn > 0 and hd[1] <= T and expired(cmd[2]) then
        return nil
    end
    if type(v) ~= "string" then
        return WRONGTYPE
    end
    return v
end)

def("SET", { arity = -3, keys = K1, flags = DENYOOM }, function(cmd, argc)
    local key = cmd[2]
    if argc == 3 then -- the hot path: no options
        if hn > 0 then
            clear_expire(key)
        end
        put(key, cmd[3])
        return OK
    end
    local o, e = string_options(cmd, argc, 4, true)
    if o == nil then
        return e
    end
    return set_generic("set", key, cmd[3], o, OK, nil)
end)

def("SETNX", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    return set_generic("setnx", cmd[2], cmd[3], { nx = true }, 1, 0)
end)

def("SETEX", { arity = 4, keys = K1, flags = DENYOOM }, function(cmd)
    return set_generic("setex", cmd[2], cmd[4], { kind = "EX", arg = cmd[3] }, OK, nil)
end)

def("PSETEX", { arity = 4, keys = K1, flags = DENYOOM }, function(cmd)
    return set_generic("psetex", cmd[2], cmd[4], { kind = "PX", arg = cmd[3] }, OK, nil)
end)

def("GETSET", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local old = lookup_write(cmd[2])
    if old ~= nil and type(old) ~= "string" then
        return WRONGTYPE
    end
    put(cmd[2], cmd[3])
    if hn > 0 then
        clear_expire(cmd[2])
    end
    return old
end)

def("GETDEL", { arity = 2, keys = K1, flags = FAST }, function(cmd)
    local v = lookup_write(cmd[2])
    if v == nil then
        return nil
    end
    if type(v) ~= "string" then
        return WRONGTYPE
    end
    remove(cmd[2])
    return v
end)

def("GETEX", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
    local o, e = string_options(cmd, argc, 3, false)
    if o == nil then
        return e
    end
    local key = cmd[2]
    local v = lookup_write(key)
    if v == nil then
        return nil
    end
    if type(v) ~= "string" then
        return WRONGTYPE
    end
    local deadline
    if o.kind then
        deadline, e = deadline_of(o.arg, o.kind, "getex")
        if deadline == nil then
            return e
        end
    end
    if deadline and deadline <= T then -- EXAT or PXAT in the past
        remove(key)
    elseif deadline then
        set_expire(key, deadline)
    elseif o.persist then
        clear_expire(key)
    end
    return v
end)

def("MGET", { read = true, arity = -2, keys = KALL, flags = FAST }, function(cmd, argc)
    local values = {}
    for i = 2, argc do
        -- false, not nil, so that the array does not end at a missing key
        local v = lookup(cmd[i])
        if type(v) ~= "string" then
            v = false
        end
        values[i - 1] = v
    end
    return values
end)

local function mset(cmd, argc, name)
    if argc % 2 == 0 then
        return wrong_args(name)
    end
    for i = 2, argc, 2 do
        put(cmd[i], cmd[i + 1])
        if hn > 0 then
            clear_expire(cmd[i])
        end
    end
end

def("MSET", { arity = -3, keys = { 1, -1, 2 }, flags = DENYOOM }, function(cmd, argc)
    return mset(cmd, argc, "mset") or OK
end)

def("MSETNX", { arity = -3, keys = { 1, -1, 2 }, flags = DENYOOM }, function(cmd, argc)
    if argc % 2 == 1 then
        for i = 2, argc, 2 do
            if lookup_write(cmd[i]) ~= nil then
                return 0
            end
        end
    end
    return mset(cmd, argc, "msetnx") or 1
end)

-- old (a string, or nil for 0) plus by, as INCRBY and HINCRBY count: the sum, or nil and
-- the error (bad when old is no integer).
local function add_int(old, by, bad)
    local n = 0
    if old ~= nil then
        n = parse_int(old)
        if n == nil then
            return nil, bad
        end
    end
    if would_overflow(n, by) then
        return nil, OVERFLOW
    end
    return n + by
end

-- The same for INCRBYFLOAT and HINCRBYFLOAT: the sum's text, or nil and the error.
local function add_float(old, by, bad)
    local value = 0.0
    if old ~= nil then
        value = parse_float(old)
        if value == nil then
            return nil, bad
        end
    end
    value = value + by
    if value ~= value or value == HUGE or value == -HUGE then
        return nil, NAN_INF
    end
    return human_float(value)
end

local function incr_by(key, by)
    local old = lookup_write(key)
    if old ~= nil and type(old) ~= "string" then
        return WRONGTYPE
    end
    local n, e = add_int(old, by, NOT_INT)
    if n == nil then
        return e
    end
    put(key, tostring(n))
    return n
end

def("INCR", { arity = 2, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    return incr_by(cmd[2], 1)
end)

def("DECR", { arity = 2, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    return incr_by(cmd[2], -1)
end)

def("INCRBY", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local by, e = int_arg(cmd[3])
    if by == nil then
        return e
    end
    return incr_by(cmd[2], by)
end)

def("DECRBY", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local by, e = int_arg(cmd[3])
    if by == nil then
        return e
    end
    if by == INT64_MIN then
        return err("ERR decrement would overflow")
    end
    return incr_by(cmd[2], -by)
end)

def("INCRBYFLOAT", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local key = cmd[2]
    local old = lookup_write(key)
    if old ~= nil and type(old) ~= "string" then
        return WRONGTYPE
    end
    local by = parse_float(cmd[3])
    if by == nil then
        return NOT_FLOAT
    end
    local text, e = add_float(old, by, NOT_FLOAT)
    if text == nil then
        return e
    end
    put(key, text)
    return text
end)

def("APPEND", { arity = 3, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local key, tail = cmd[2], cmd[3]
    local old = lookup_write(key)
    if old == nil then
        put(key, tail)
        return #tail
    end
    if type(old) ~= "string" then
        return WRONGTYPE
    end
    if #old + #tail > STRING_MAX then
        return TOO_BIG
    end
    local s = old .. tail
    put(key, s)
    return #s
end)

def("STRLEN", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    local v = get_string(cmd[2])
    if v == false then
        return WRONGTYPE
    end
    return v and #v or 0
end)

def("SETRANGE", { arity = 4, keys = K1, flags = DENYOOM }, function(cmd)
    local key, value = cmd[2], cmd[4]
    local offset, e = int_arg(cmd[3])
    if offset == nil then
        return e
    end
    if offset < 0 then
        return err("ERR offset is out of range")
    end
    local old = lookup_write(key)
    if old ~= nil and type(old) ~= "string" then
        return WRONGTYPE
    end
    if value == "" then
        return old and #old or 0
    end
    if offset > STRING_MAX or offset + #value > STRING_MAX then
        return TOO_BIG
    end
    old = old or ""
    local s
    if offset >= #old then
        s = old .. srep("\0", offset - #old) .. value
    else
        s = old:sub(1, offset) .. value .. old:sub(offset + #value + 1)
    end
    put(key, s)
    return #s
end)

local function getrange(cmd)
    local start, stop = int_pair(cmd[3], cmd[4])
    if start == nil then
        return NOT_INT
    end
    local s = get_string(cmd[2])
    if s == false then
        return WRONGTYPE
    end
    s = s or ""
    local len = #s
    if start < 0 and stop < 0 and start > stop then
        return ""
    end
    if start < 0 then
        start = len + start
    end
    if stop < 0 then
        stop = len + stop
    end
    if start < 0 then
        start = 0
    end
    if stop < 0 then
        stop = 0
    end
    if stop >= len then
        stop = len - 1
    end
    if start > stop or len == 0 then
        return ""
    end
    return s:sub(start + 1, stop + 1)
end

def("GETRANGE", { read = true, arity = 4, keys = K1 }, getrange)
def("SUBSTR", { read = true, arity = 4, keys = K1 }, getrange)

def("CAS", { arity = 4, keys = K1, flags = DENYOOM_FAST }, function(cmd)
    local v = lookup_write(cmd[2])
    if v ~= cmd[3] then
        return 0
    end
    put(cmd[2], cmd[4])
    return 1
end)

-- =======================================================================================
-- Keys
-- =======================================================================================

local function delete_keys(cmd, argc)
    local n = 0
    for i = 2, argc do
        if lookup_write(cmd[i]) ~= nil then
            remove(cmd[i])
            n = n + 1
        end
    end
    return n
end

def("DEL", { arity = -2, keys = KALL }, delete_keys)
def("UNLINK", { arity = -2, keys = KALL, flags = FAST }, delete_keys)

local function count_keys(cmd, argc)
    local n = 0
    for i = 2, argc do
        if lookup(cmd[i]) ~= nil then
            n = n + 1
        end
    end
    return n
end

def("EXISTS", { read = true, arity = -2, keys = KALL, flags = FAST }, count_keys)
def("TOUCH", { read = true, arity = -2, keys = KALL, flags = FAST }, count_keys)

local TYPE_REPLY = {}
for _, name in ipairs({ "string", "hash", "list", "set", "zset", "stream", "none" }) do
    TYPE_REPLY[name] = { ok = name }
end

def("TYPE", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    local v = lookup(cmd[2])
    return TYPE_REPLY[v == nil and "none" or type_name(v)]
end)

-- Moves key src's value (and expiry) to dst, which is absent.
local function move(src, dst, v)
    local deadline = expires[src]
    put(dst, v)
    if deadline then
        set_expire(dst, deadline)
    end
    data[src] = nil -- remove(src) without forgetting v's derived structures
    count = count - 1
    trie_remove(keys_trie, src, hash32(src))
    clear_expire(src)
end

local function rename(cmd, nx)
    local src, dst = cmd[2], cmd[3]
    local v = lookup_write(src)
    if v == nil then
        return NO_KEY
    end
    if src == dst then
        return nx and 0 or OK
    end
    if lookup_write(dst) ~= nil then
        if nx then
            return 0
        end
        remove(dst)
    end
    move(src, dst, v)
    return nx and 1 or OK
end

def("RENAME", { arity = 3, keys = K12 }, function(cmd)
    return rename(cmd, false)
end)

def("RENAMENX", { arity = 3, keys = K12, flags = FAST }, function(cmd)
    return rename(cmd, true)
end)

local copy_value -- (below, with the types)

def("COPY", { arity = -3, keys = K12, flags = DENYOOM }, function(cmd, argc)
    local src, dst = cmd[2], cmd[3]
    local replace = false
    local i = 4
    while i <= argc do
        local opt = cmd[i]:upper()
        if opt == "REPLACE" then
            replace = true
        elseif opt == "DB" and i < argc then
            local db = parse_int(cmd[i + 1])
            if db == nil then
                return NOT_INT
            end
            if db < -2147483648 or db > 2147483647 then
                return err("ERR value is out of range, value must between -2147483648 and "
                    .. "2147483647")
            end
            if db ~= 0 then
                return err("ERR DB index is out of range")
            end
            i = i + 1
        else
            return SYNTAX
        end
        i = i + 1
    end
    if src == dst then
        return err("ERR source and destination objects are the same")
    end
    local v = lookup(src)
    if v == nil then
        return 0
    end
    if lookup_write(dst) ~= nil then
        if not replace then
            return 0
        end
        remove(dst)
    end
    put(dst, copy_value(v))
    local deadline = expires[src]
    if deadline then
        set_expire(dst, deadline)
    end
    return 1
end)

local EXPIRE_MIN_S = -(INT64_MAX // 1000) -- C's LLONG_MIN / 1000, rounded towards zero

local function expire_generic(cmd, argc, name, base, unit)
    local nx, xx, gt, lt = false, false, false, false
    for i = 4, argc do
        local opt = cmd[i]:upper()
        if opt == "NX" then
            nx = true
        elseif opt == "XX" then
            xx = true
        elseif opt == "GT" then
            gt = true
        elseif opt == "LT" then
            lt = true
        else
            return err("ERR Unsupported option " .. cmd[i])
        end
    end
    if nx and (xx or gt or lt) then
        return err("ERR NX and XX, GT or LT options at the same time are not compatible")
    end
    if gt and lt then
        return err("ERR GT and LT options at the same time are not compatible")
    end
    local when = parse_int(cmd[3])
    if when == nil then
        return NOT_INT
    end
    if unit == 1000 then
        if when > INT64_MAX // 1000 or when < EXPIRE_MIN_S then
            return expire_error(name)
        end
        when = when * 1000
    end
    if when > INT64_MAX - base then
        return expire_error(name)
    end
    when = when + base
    local key = cmd[2]
    if lookup_write(key) == nil then
        return 0
    end
    local current = expires[key]
    if (nx and current) or (xx and not current) or (gt and (current == nil or when <= current))
        or (lt and current and when >= current) then
        return 0
    end
    if when <= T then
        remove(key)
    else
        set_expire(key, when)
    end
    return 1
end

def("EXPIRE", { arity = -3, keys = K1, flags = FAST }, function(cmd, argc)
    return expire_generic(cmd, argc, "expire", T, 1000)
end)

def("PEXPIRE", { arity = -3, keys = K1, flags = FAST }, function(cmd, argc)
    return expire_generic(cmd, argc, "pexpire", T, 1)
end)

def("EXPIREAT", { arity = -3, keys = K1, flags = FAST }, function(cmd, argc)
    return expire_generic(cmd, argc, "expireat", 0, 1000)
end)

def("PEXPIREAT", { arity = -3, keys = K1, flags = FAST }, function(cmd, argc)
    return expire_generic(cmd, argc, "pexpireat", 0, 1)
end)

local function ttl_generic(key, ms, absolute)
    if lookup(key) == nil then
        return -2
    end
    local deadline = expires[key]
    if deadline == nil then
        return -1
    end
    local ttl = absolute and deadline or deadline - T
    if ttl < 0 then
        ttl = 0
    end
    return ms and ttl or (ttl + 500) // 1000
end

def("TTL", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    return ttl_generic(cmd[2], false, false)
end)

def("PTTL", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    return ttl_generic(cmd[2], true, false)
end)

def("EXPIRETIME", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    return ttl_generic(cmd[2], false, true)
end)

def("PEXPIRETIME", { read = true, arity = 2, keys = K1, flags = FAST }, function(cmd)
    return ttl_generic(cmd[2], true, true)
end)

def("PERSIST", { arity = 2, keys = K1, flags = FAST }, function(cmd)
    if lookup_write(cmd[2]) == nil then
        return 0
    end
    return clear_expire(cmd[2]) and 1 or 0
end)

-- A cursor as Redis's strtoul reads it ("" is 0, a sign is allowed, -n wraps around),
-- clamped to HASH_END (past the last position); nil when it is not a number or exceeds
-- 64 bits.
local function parse_cursor(s)
    if s == "" then
        return 0
    end
    local sign, digits = s:match("^([+-]?)(%d+)$")
    if digits == nil then
        return nil
    end
    digits = digits:gsub("^0+", "")
    if #digits > 20 or (#digits == 20 and digits > "18446744073709551615") then
        return nil
    end
    if digits == "" then
        return 0
    end
    if sign == "-" or #digits > 10 then
        return HASH_END
    end
    return math.min(tointeger(tonumber(digits)), HASH_END)
end

-- SCAN's and its siblings' options: returns count, match (a function or nil), type name
-- (SCAN only), or nil and the error.
local function scan_options(cmd, argc, first, keyspace)
    local n, match, tname = 10, nil, nil
    local i = first
    while i <= argc do
        local opt = cmd[i]:upper()
        if opt == "COUNT" and i < argc then
            n = parse_int(cmd[i + 1])
            if n == nil then
                return nil, NOT_INT
            end
            if n < 1 then
                return nil, SYNTAX
            end
        elseif opt == "MATCH" and i < argc then
            match = cmd[i + 1] ~= "*" and compile_glob(cmd[i + 1]) or nil
        elseif opt == "TYPE" and keyspace and i < argc then
            tname = cmd[i + 1]:lower()
        else
            return nil, SYNTAX
        end
        i = i + 2
    end
    return n, match, tname
end

def("SCAN", { read = true, arity = -2 }, function(cmd, argc)
    local cursor = parse_cursor(cmd[2])
    if cursor == nil then
        return BAD_CURSOR
    end
    local n, match, tname = scan_options(cmd, argc, 3, true)
    if n == nil then
        return match
    end
    if cursor >= HASH_END then
        return EMPTY_SCAN
    end
    local keys = {}
    local next_cursor = trie_scan(keys_trie, cursor, n, function(key)
        if match == nil or match(key) then
            local v = lookup(key)
            if v ~= nil and (tname == nil or type_name(v) == tname) then
                keys[#keys + 1] = key
            end
        end
    end)
    return { tostring(next_cursor), keys }
end)

def("KEYS", { read = true, arity = 2 }, function(cmd)
    local match = cmd[2] ~= "*" and compile_glob(cmd[2]) or nil
    local keys = {}
    for key in pairs(data) do -- byte order under the sandbox
        if (match == nil or match(key)) and lookup(key) ~= nil then
            keys[#keys + 1] = key
        end
    end
    return keys
end)

def("DBSIZE", { read = true, arity = 1, flags = FAST }, function()
    return count - expired_count()
end)

def("RANDOMKEY", { read = true, arity = 1 }, function()
    if count == 0 then
        return nil
    end
    for _ = 1, 100 do
        local key = trie_successor(keys_trie, rand64() & 0xFFFFFFFF)
        if lookup(key) ~= nil then
            return key
        end
    end
    for key in pairs(data) do -- nearly every key has expired
        if lookup(key) ~= nil then
            return key
        end
    end
    return nil
end)

local function flush(cmd, argc)
    if argc > 2 or (argc == 2 and cmd[2]:upper() ~= "SYNC" and cmd[2]:upper() ~= "ASYNC") then
        return SYNTAX
    end
    data, count, expires, nexpires = {}, 0, {}, 0
    keys_trie, hd, hk, hpos, hn = trie(), {}, {}, {}, 0
    members_trie, zorder = {}, {}
    return OK
end

def("FLUSHALL", { arity = -1 }, flush)
def("FLUSHDB", { arity = -1 }, flush)

local memory_usage -- (below, with the types)

def("MEMORY", { read = true, arity = -2 }, function(cmd, argc)
    local sub = cmd[2]:upper()
    if sub == "USAGE" then
        if argc < 3 then
            return err("ERR wrong number of arguments for 'memory|usage' command")
        end
        local i = 4
        while i <= argc do
            if cmd[i]:upper() == "SAMPLES" and i < argc then
                local n = parse_int(cmd[i + 1])
                if n == nil then
                    return NOT_INT
                end
                if n < 0 then
                    return SYNTAX
                end
                i = i + 2
            else
                return SYNTAX
            end
        end
        local v = lookup(cmd[3])
        if v == nil then
            return nil
        end
        return memory_usage(cmd[3], v)
    elseif sub == "HELP" and argc == 2 then
        return {
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value (an estimate here).",
            "HELP",
            "    Print this help.",
        }
    end
    return err("ERR unknown subcommand '" .. cmd[2]:sub(1, 128) .. "'. Try MEMORY HELP.")
end)

-- =======================================================================================
-- Collections: SCAN over members, shared by hashes, sets and sorted sets
-- =======================================================================================

-- HSCAN, SSCAN and ZSCAN: cursor parsed first, then the key, then the options, as Redis
-- does. each(o, member, out) appends what one member contributes to the reply.
local function scan_members(cmd, argc, t, each)
    local cursor = parse_cursor(cmd[3])
    if cursor == nil then
        return BAD_CURSOR
    end
    local o = get(cmd[2], t)
    if o == nil then
        return EMPTY_SCAN
    end
    if o == false then
        return WRONGTYPE
    end
    local n, match = scan_options(cmd, argc, 4, false)
    if n == nil then
        return match
    end
    local out = {}
    local function emit(member)
        if match == nil or match(member) then
            each(o, member, out)
        end
    end
    local tr = members_trie[o]
    if tr == nil then -- a small one comes back whole, as Redis's small encodings do
        for member in pairs(o.m) do
            if cursor == 0 or hash32(member) >= cursor then
                emit(member)
            end
        end
        return { "0", out }
    end
    if cursor >= HASH_END then
        return EMPTY_SCAN
    end
    return { tostring(trie_scan(tr, cursor, n, emit)), out }
end

-- =======================================================================================
-- Hashes
-- =======================================================================================
do -- (a block, so that the hashes' helpers are no locals of the chunk)

    local function new_hash()
        return { t = "hash", n = 0, m = {} }
    end

    -- The hash at key for a write, created when missing; or false for another type.
    local function hash_for_write(key)
        local o = get(key, "hash", true)
        if o == nil then
            o = new_hash()
            put(key, o)
        end
        return o
    end

    local function hset_field(o, field, value)
        local m = o.m
        if m[field] == nil then
            m[field] = value
            o.n = o.n + 1
            members_added(o, field)
            return 1
        end
        m[field] = value
        return 0
    end

    local function hset(cmd, argc, name)
        if argc % 2 == 1 then
            return nil, wrong_args(name)
        end
        local o = hash_for_write(cmd[2])
        if o == false then
            return nil, WRONGTYPE
        end
        local added = 0
        for i = 3, argc, 2 do
            added = added + hset_field(o, cmd[i], cmd[i + 1])
        end
        return added
    end

    def("HSET", { arity = -4, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        local added, e = hset(cmd, argc, "hset")
        return added or e
    end)

    def("HMSET", { arity = -4, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        local added, e = hset(cmd, argc, "hmset")
        return added and OK or e
    end)

    def("HSETNX", { arity = 4, keys = K1, flags = DENYOOM_FAST }, function(cmd)
        local o = hash_for_write(cmd[2])
        if o == false then
            return WRONGTYPE
        end
        if o.m[cmd[3]] ~= nil then
            return 0
        end
        return hset_field(o, cmd[3], cmd[4])
    end)

    def("HGET", { read = true, arity = 3, keys = K1, flags = FAST },
        on("hash", nil, function(o, cmd)
            return o.m[cmd[3]]
        end))

    def("HMGET", { read = true, arity = -3, keys = K1, flags = FAST },
        on("hash", per_argument(false), function(o, cmd, argc)
            local out = {}
            for i = 3, argc do
                out[i - 2] = o.m[cmd[i]] or false
            end
            return out
        end))

    def("HDEL", { arity = -3, keys = K1, flags = FAST }, on("hash", 0, function(o, cmd, argc)
        local n, m = 0, o.m
        for i = 3, argc do
            local field = cmd[i]
            if m[field] ~= nil then
                m[field] = nil
                o.n = o.n - 1
                members_removed(o, field)
                n = n + 1
                if o.n == 0 then -- Redis stops once the hash is gone
                    break
                end
            end
        end
        drop_if_empty(cmd[2], o)
        return n
    end, true))

    def("HEXISTS", { read = true, arity = 3, keys = K1, flags = FAST },
        on("hash", 0, function(o, cmd)
            return o.m[cmd[3]] ~= nil and 1 or 0
        end))

    def("HLEN", { read = true, arity = 2, keys = K1, flags = FAST }, on("hash", 0, length))

    def("HSTRLEN", { read = true, arity = 3, keys = K1, flags = FAST },
        on("hash", 0, function(o, cmd)
            local v = o.m[cmd[3]]
            return v and #v or 0
        end))

    -- HGETALL, HKEYS, HVALS: fields and values as each(field, value, out) adds them.
    local function hash_all(cmd, empty, each)
        local o = get(cmd[2], "hash")
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return empty
        end
        local out = {}
        for field, value in pairs(o.m) do
            each(field, value, out)
        end
        return out
    end

    def("HGETALL", { read = true, arity = 2, keys = K1 }, function(cmd)
        local out = hash_all(cmd, EMPTY_MAP, function(f, v, out)
            out[#out + 1] = f
            out[#out + 1] = v
        end)
        if out == WRONGTYPE or out == EMPTY_MAP then
            return out
        end
        return { map = out }
    end)

    def("HKEYS", { read = true, arity = 2, keys = K1 }, function(cmd)
        return hash_all(cmd, {}, function(f, _, out)
            out[#out + 1] = f
        end)
    end)

    def("HVALS", { read = true, arity = 2, keys = K1 }, function(cmd)
        return hash_all(cmd, {}, function(_, v, out)
            out[#out + 1] = v
        end)
    end)

    def("HINCRBY", { arity = 4, keys = K1, flags = DENYOOM_FAST }, function(cmd)
        local by, e = int_arg(cmd[4])
        if by == nil then
            return e
        end
        local o = hash_for_write(cmd[2])
        if o == false then
            return WRONGTYPE
        end
        local n
        n, e = add_int(o.m[cmd[3]], by, err("ERR hash value is not an integer"))
        if n == nil then
            return e
        end
        hset_field(o, cmd[3], tostring(n))
        return n
    end)

    def("HINCRBYFLOAT", { arity = 4, keys = K1, flags = DENYOOM_FAST }, function(cmd)
        local by = parse_float(cmd[4])
        if by == nil then
            return NOT_FLOAT
        end
        if by == HUGE or by == -HUGE then
            return err("ERR value is NaN or Infinity")
        end
        local o = hash_for_write(cmd[2])
        if o == false then
            return WRONGTYPE
        end
        local text, e = add_float(o.m[cmd[3]], by, err("ERR hash value is not a float"))
        if text == nil then
            return e
        end
        hset_field(o, cmd[3], text)
        return text
    end)

    def("HSCAN", { read = true, arity = -3, keys = K1 }, function(cmd, argc)
        return scan_members(cmd, argc, "hash", function(o, field, out)
            out[#out + 1] = field
            out[#out + 1] = o.m[field]
        end)
    end)
end

-- =======================================================================================
-- Lists: elements v[h] .. v[h + n - 1], so that both ends are O(1)
-- =======================================================================================
do -- (a block, so that the lists' helpers are no locals of the chunk)

    local function new_list()
        return { t = "list", n = 0, h = 1, v = {} }
    end

    local function list_pop(o, left)
        local v, h, n = o.v, o.h, o.n
        local x
        if left then
            x = v[h]
            v[h] = nil
            o.h = h + 1
        else
            x = v[h + n - 1]
            v[h + n - 1] = nil
        end
        o.n = n - 1
        return x
    end

    local function list_push(o, x, left)
        if left then
            o.h = o.h - 1
            o.v[o.h] = x
        else
            o.v[o.h + o.n] = x
        end
        o.n = o.n + 1
    end


    local function push(cmd, argc, left, existing_only)
        local key = cmd[2]
        local o = get(key, "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            if existing_only then
                return 0
            end
            o = new_list()
            put(key, o)
        end
        for i = 3, argc do
            list_push(o, cmd[i], left)
        end
        return o.n
    end

    def("LPUSH", { arity = -3, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        return push(cmd, argc, true, false)
    end)

    def("RPUSH", { arity = -3, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        return push(cmd, argc, false, false)
    end)

    def("LPUSHX", { arity = -3, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        return push(cmd, argc, true, true)
    end)

    def("RPUSHX", { arity = -3, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        return push(cmd, argc, false, true)
    end)

    local function pop(cmd, argc, left)
        local n, e = pop_count(cmd, argc, wrong_args(cmd[1]))
        if n == false then
            return e
        end
        local key = cmd[2]
        local o = get(key, "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return n ~= nil and NULL_ARRAY or nil -- RESP2: *-1 with a count, as Redis
        end
        if n == nil then
            local x = list_pop(o, left)
            drop_if_empty(key, o)
            return x
        end
        local out = {}
        for i = 1, math.min(n, o.n) do
            out[i] = list_pop(o, left)
        end
        drop_if_empty(key, o)
        return out
    end

    def("LPOP", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
        return pop(cmd, argc, true)
    end)

    def("RPOP", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
        return pop(cmd, argc, false)
    end)

    def("LLEN", { read = true, arity = 2, keys = K1, flags = FAST }, on("list", 0, length))

    def("LRANGE", { read = true, arity = 4, keys = K1 }, function(cmd)
        local start, stop = int_pair(cmd[3], cmd[4])
        if start == nil then
            return NOT_INT
        end
        local o = get(cmd[2], "list")
        if o == false then
            return WRONGTYPE
        end
        local out = {}
        if o == nil then
            return out
        end
        start, stop = list_range(o.n, start, stop)
        if start then
            local v, base = o.v, o.h + start - 1
            for i = 1, stop - start + 1 do
                out[i] = v[base + i]
            end
        end
        return out
    end)

    -- A list index (negative from the end) as a 0-based one in range, or nil; or nil and the
    -- error of a malformed one.
    local function list_index(o, arg)
        local i = parse_int(arg)
        if i == nil then
            return nil, NOT_INT
        end
        if i < 0 then
            i = o.n + i
        end
        if i < 0 or i >= o.n then
            return nil
        end
        return i
    end

    def("LINDEX", { read = true, arity = 3, keys = K1 }, on("list", nil, function(o, cmd)
        local i, e = list_index(o, cmd[3])
        if i == nil then
            return e
        end
        return o.v[o.h + i]
    end))

    def("LSET", { arity = 4, keys = K1, flags = DENYOOM }, on("list", NO_KEY, function(o, cmd)
        local i, e = list_index(o, cmd[3])
        if i == nil then
            return e or OUT_OF_RANGE
        end
        o.v[o.h + i] = cmd[4]
        return OK
    end, true))

    def("LREM", { arity = 4, keys = K1 }, function(cmd)
        local limit, e = int_arg(cmd[3])
        if limit == nil then
            return e
        end
        local key, element = cmd[2], cmd[4]
        local o = get(key, "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return 0
        end
        local from_tail = limit < 0
        if limit == INT64_MIN then
            limit = INT64_MAX
        elseif from_tail then
            limit = -limit
        end
        local v, h, n = o.v, o.h, o.n
        local kept, removed = {}, 0
        for j = 0, n - 1 do
            local x = v[from_tail and h + n - 1 - j or h + j]
            if x == element and (limit == 0 or removed < limit) then
                removed = removed + 1
            else
                kept[#kept + 1] = x
            end
        end
        if removed == 0 then
            return 0
        end
        if from_tail then -- kept is tail first
            local k = #kept
            for j = 1, k // 2 do
                kept[j], kept[k + 1 - j] = kept[k + 1 - j], kept[j]
            end
        end
        o.v, o.h, o.n = kept, 1, #kept
        drop_if_empty(key, o)
        return removed
    end)

    def("LTRIM", { arity = 4, keys = K1 }, function(cmd)
        local start, stop = int_pair(cmd[3], cmd[4])
        if start == nil then
            return NOT_INT
        end
        local key = cmd[2]
        local o = get(key, "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return OK
        end
        local len = o.n
        start, stop = list_range(len, start, stop)
        local left, right = len, 0 -- how many to drop at each end
        if start then
            left, right = start, len - stop - 1
        end
        local v, h = o.v, o.h
        for j = h, h + left - 1 do
            v[j] = nil
        end
        for j = h + len - right, h + len - 1 do
            v[j] = nil
        end
        o.h, o.n = h + left, len - left - right
        drop_if_empty(key, o)
        return OK
    end)

    def("LINSERT", { arity = 5, keys = K1, flags = DENYOOM }, function(cmd)
        local where = cmd[3]:upper()
        if where ~= "BEFORE" and where ~= "AFTER" then
            return SYNTAX
        end
        local o = get(cmd[2], "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return 0
        end
        local v, h, n, pivot = o.v, o.h, o.n, cmd[4]
        for j = h, h + n - 1 do
            if v[j] == pivot then
                local at = where == "BEFORE" and j or j + 1
                tmove(v, at, h + n - 1, at + 1)
                v[at] = cmd[5]
                o.n = n + 1
                return n + 1
            end
        end
        return -1
    end)

    def("LPOS", { read = true, arity = -3, keys = K1 }, function(cmd, argc)
        local rank, limit, maxlen = 1, nil, 0
        local i = 4
        while i <= argc do
            local opt = cmd[i]:upper()
            local e
            if opt == "RANK" and i < argc then
                rank, e = int_arg(cmd[i + 1])
                if rank == nil then
                    return e
                end
                if rank == 0 then
                    return err("ERR RANK can't be zero: use 1 to start from the first match, 2 "
                        .. "from the second ... or use negative to start from the end of the list")
                end
            elseif opt == "COUNT" and i < argc then
                limit, e = positive_arg(cmd[i + 1], "COUNT can't be negative")
                if limit == nil then
                    return e
                end
            elseif opt == "MAXLEN" and i < argc then
                maxlen, e = positive_arg(cmd[i + 1], "MAXLEN can't be negative")
                if maxlen == nil then
                    return e
                end
            else
                return SYNTAX
            end
            i = i + 2
        end
        local from_tail = rank < 0
        if rank == INT64_MIN then
            rank = INT64_MAX
        elseif from_tail then
            rank = -rank
        end
        local o = get(cmd[2], "list")
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return limit and {} or nil
        end
        local v, h, n, element = o.v, o.h, o.n, cmd[3]
        local out, matches = {}, 0
        for j = 0, n - 1 do
            if maxlen ~= 0 and j >= maxlen then
                break
            end
            local at = from_tail and n - 1 - j or j
            if v[h + at] == element then
                matches = matches + 1
                if matches >= rank then
                    if limit == nil then
                        return at
                    end
                    out[#out + 1] = at
                    if limit ~= 0 and matches - rank + 1 >= limit then
                        break
                    end
                end
            end
        end
        if limit == nil then
            return nil
        end
        return out
    end)

    local function lmove(src, dst, from_left, to_left)
        local o = get(src, "list", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return nil
        end
        local d = get(dst, "list", true)
        if d == false then
            return WRONGTYPE
        end
        local x = list_pop(o, from_left)
        if d == nil then
            d = new_list()
            put(dst, d)
        end
        list_push(d, x, to_left)
        drop_if_empty(src, o)
        return x
    end

    local SIDES = { LEFT = true, RIGHT = false }

    def("LMOVE", { arity = 5, keys = K12, flags = DENYOOM }, function(cmd)
        local from, to = SIDES[cmd[4]:upper()], SIDES[cmd[5]:upper()]
        if from == nil or to == nil then
            return SYNTAX
        end
        return lmove(cmd[2], cmd[3], from, to)
    end)

    def("RPOPLPUSH", { arity = 3, keys = K12, flags = DENYOOM }, function(cmd)
        return lmove(cmd[2], cmd[3], false, true)
    end)
end

-- =======================================================================================
-- Sets
-- =======================================================================================
do -- (a block, so that the sets' helpers are no locals of the chunk)

    local function new_set()
        return { t = "set", n = 0, m = {} }
    end

    local function set_add(o, member)
        if o.m[member] then
            return 0
        end
        o.m[member] = true
        o.n = o.n + 1
        members_added(o, member)
        return 1
    end

    local function set_remove(o, member)
        if not o.m[member] then
            return 0
        end
        o.m[member] = nil
        o.n = o.n - 1
        members_removed(o, member)
        return 1
    end

    -- Members in byte order.
    local function set_members(o)
        return luaraft.keys(o.m)
    end

    -- A random member, chosen by the content only: the k-th in byte order of a small set,
    -- the successor of a random hash in a large one.
    local function random_member(o)
        local tr = members_trie[o]
        if tr then
            return trie_successor(tr, rand64() & 0xFFFFFFFF)
        end
        local all = set_members(o)
        return all[rand(#all)]
    end

    -- n distinct random members (n < o.n): a partial shuffle of the sorted members, or, for
    -- a few out of many, successors of random hashes until n differ.
    local function random_members(o, n)
        local tr = members_trie[o]
        if tr == nil or n * 3 > o.n then
            local all = set_members(o)
            local size = #all
            for i = 1, n do
                local j = i - 1 + rand(size - i + 1)
                all[i], all[j] = all[j], all[i]
            end
            for i = size, n + 1, -1 do
                all[i] = nil
            end
            return all
        end
        local out, seen = {}, {}
        while #out < n do
            local m = trie_successor(tr, rand64() & 0xFFFFFFFF)
            if not seen[m] then
                seen[m] = true
                out[#out + 1] = m
            end
        end
        return out
    end

    def("SADD", { arity = -3, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        local key = cmd[2]
        local o = get(key, "set", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            o = new_set()
            put(key, o)
        end
        local n = 0
        for i = 3, argc do
            n = n + set_add(o, cmd[i])
        end
        return n
    end)

    def("SREM", { arity = -3, keys = K1, flags = FAST }, on("set", 0, function(o, cmd, argc)
        local n = 0
        for i = 3, argc do
            n = n + set_remove(o, cmd[i])
            if o.n == 0 then
                break
            end
        end
        drop_if_empty(cmd[2], o)
        return n
    end, true))

    def("SISMEMBER", { read = true, arity = 3, keys = K1, flags = FAST },
        on("set", 0, function(o, cmd)
            return o.m[cmd[3]] and 1 or 0
        end))

    def("SMISMEMBER", { read = true, arity = -3, keys = K1, flags = FAST },
        on("set", per_argument(0), function(o, cmd, argc)
            local out = {}
            for i = 3, argc do
                out[i - 2] = o.m[cmd[i]] and 1 or 0
            end
            return out
        end))

    def("SCARD", { read = true, arity = 2, keys = K1, flags = FAST }, on("set", 0, length))

    def("SPOP", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
        local n, e = pop_count(cmd, argc, SYNTAX)
        if n == false then
            return e
        end
        local key = cmd[2]
        local o = get(key, "set", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return n and EMPTY_SET or nil
        end
        if n == nil then
            local m = random_member(o)
            set_remove(o, m)
            drop_if_empty(key, o)
            return m
        end
        if n == 0 then
            return EMPTY_SET
        end
        if n >= o.n then
            local all = set_members(o)
            remove(key)
            return { set = all }
        end
        local picked = random_members(o, n)
        for _, m in ipairs(picked) do
            set_remove(o, m)
        end
        return { set = picked }
    end)

    def("SRANDMEMBER", { read = true, arity = -2, keys = K1 }, function(cmd, argc)
        if argc > 3 then
            return SYNTAX
        end
        local o
        if argc == 2 then
            o = get(cmd[2], "set")
            if o == false then
                return WRONGTYPE
            end
            return o and random_member(o)
        end
        local n = parse_int(cmd[3])
        if n == nil then
            return NOT_INT
        end
        if n == INT64_MIN then
            return err("ERR value is out of range, value must between -9223372036854775807 and "
                .. "9223372036854775807")
        end
        o = get(cmd[2], "set")
        if o == false then
            return WRONGTYPE
        end
        if o == nil or n == 0 then
            return {}
        end
        if n < 0 or n == 1 then
            local out = {}
            for i = 1, math.abs(n) do
                out[i] = random_member(o)
            end
            return out
        end
        if n >= o.n then
            return set_members(o)
        end
        return random_members(o, n)
    end)

    def("SMEMBERS", { read = true, arity = 2, keys = K1 }, on("set", EMPTY_SET, function(o)
        return { set = set_members(o) }
    end))

    -- SINTER, SUNION, SDIFF and their STORE forms: the sets at cmd[first..argc] (nil for a
    -- missing key), every key checked for its type first as Redis does; returns the result
    -- as a {member = true} table, or nil and WRONGTYPE.
    local function set_operation(cmd, argc, first, op, write)
        local sets = {}
        for i = first, argc do
            local o = get(cmd[i], "set", write)
            if o == false then
                return nil, WRONGTYPE
            end
            sets[i - first + 1] = o or false
        end
        local result = {}
        if op == "inter" then
            local smallest = nil
            for _, o in ipairs(sets) do
                if o == false then
                    return result
                end
                if smallest == nil or o.n < smallest.n then
                    smallest = o
                end
            end
            for m in pairs(smallest.m) do
                local all = true
                for _, o in ipairs(sets) do
                    if not o.m[m] then
                        all = false
                        break
                    end
                end
                if all then
                    result[m] = true
                end
            end
        elseif op == "union" then
            for _, o in ipairs(sets) do
                if o then
                    for m in pairs(o.m) do
                        result[m] = true
                    end
                end
            end
        else -- diff
            if sets[1] then
                for m in pairs(sets[1].m) do
                    result[m] = true
                end
                for i = 2, #sets do
                    if sets[i] then
                        for m in pairs(sets[i].m) do
                            result[m] = nil
                        end
                    end
                end
            end
        end
        return result
    end

    local function set_op_command(op)
        return function(cmd, argc)
            local result, e = set_operation(cmd, argc, 2, op, false)
            if result == nil then
                return e
            end
            return { set = luaraft.keys(result) }
        end
    end

    local function set_store_command(op)
        return function(cmd, argc)
            local result, e = set_operation(cmd, argc, 3, op, true)
            if result == nil then
                return e
            end
            local dst = cmd[2]
            local members = luaraft.keys(result)
            if #members == 0 then
                if lookup_write(dst) ~= nil then
                    remove(dst)
                end
                return 0
            end
            local o = new_set()
            for _, m in ipairs(members) do
                set_add(o, m)
            end
            put(dst, o)
            if hn > 0 then
                clear_expire(dst)
            end
            return o.n
        end
    end

    def("SINTER", { read = true, arity = -2, keys = KALL }, set_op_command("inter"))
    def("SUNION", { read = true, arity = -2, keys = KALL }, set_op_command("union"))
    def("SDIFF", { read = true, arity = -2, keys = KALL }, set_op_command("diff"))
    def("SINTERSTORE", { arity = -3, keys = KALL, flags = DENYOOM }, set_store_command("inter"))
    def("SUNIONSTORE", { arity = -3, keys = KALL, flags = DENYOOM }, set_store_command("union"))
    def("SDIFFSTORE", { arity = -3, keys = KALL, flags = DENYOOM }, set_store_command("diff"))

    def("SMOVE", { arity = 4, keys = K12, flags = FAST }, function(cmd)
        local src, dst, member = cmd[2], cmd[3], cmd[4]
        local s = get(src, "set", true)
        local d = get(dst, "set", true)
        if s == nil then
            return 0
        end
        if s == false or d == false then
            return WRONGTYPE
        end
        if s == d then
            return s.m[member] and 1 or 0
        end
        if set_remove(s, member) == 0 then
            return 0
        end
        drop_if_empty(src, s)
        if d == nil then
            d = new_set()
            put(dst, d)
        end
        set_add(d, member)
        return 1
    end)

    def("SSCAN", { read = true, arity = -3, keys = K1 }, function(cmd, argc)
        return scan_members(cmd, argc, "set", function(_, member, out)
            out[#out + 1] = member
        end)
    end)
end

-- =======================================================================================
-- Sorted sets: scores in o.m, and zorder[o], the members sorted by (score, member)
-- =======================================================================================

-- The order is a list of blocks {b = {block, ...}}, each block a sorted array of at most
-- 2 * ZBLOCK members, none empty unless it is the only one. Finding a member's place is
-- two binary searches, inserting or removing one moves at most a block; a position (a
-- rank) sums the blocks before it, O(n / ZBLOCK).
local ZBLOCK = 256

local function zorder_of(sorted)
    local blocks = {}
    for i = 1, #sorted, ZBLOCK do
        blocks[#blocks + 1] = tmove(sorted, i, math.min(i + ZBLOCK - 1, #sorted), 1, {})
    end
    if #blocks == 0 then
        blocks[1] = {}
    end
    return { b = blocks }
end

local function new_zset()
    local o = { t = "zset", n = 0, m = {} }
    zorder[o] = zorder_of({})
    return o
end

-- The first position (1..n + 1) whose member satisfies pred, which holds for a suffix of
-- the order; as the block's index and the index in it.
local function zfirst(zo, pred)
    local blocks = zo.b
    local lo, hi = 1, #blocks
    while lo < hi do
        local mid = (lo + hi) // 2
        local blk = blocks[mid]
        if pred(blk[#blk]) then
            hi = mid
        else
            lo = mid + 1
        end
    end
    local blk = blocks[lo]
    local a, b = 1, #blk + 1
    while a < b do
        local mid = (a + b) // 2
        if pred(blk[mid]) then
            b = mid
        else
            a = mid + 1
        end
    end
    return lo, a
end

-- The position of block bi's j-th member.
local function zpos(zo, bi, j)
    local blocks = zo.b
    for i = 1, bi - 1 do
        j = j + #blocks[i]
    end
    return j
end

-- The first position whose member satisfies pred.
local function zlower(o, pred)
    local zo = zorder[o]
    return zpos(zo, zfirst(zo, pred))
end

-- Where (s, member) is or would go.
local function zlocate(o, s, member)
    local scores = o.m
    return zfirst(zorder[o], function(x)
        local xs = scores[x]
        return xs > s or (xs == s and x >= member)
    end)
end

-- The first position whose score is > x (above = true) or >= x.
local function zbound(o, x, above)
    local scores = o.m
    if above then
        return zlower(o, function(m)
            return scores[m] > x
        end)
    end
    return zlower(o, function(m)
        return scores[m] >= x
    end)
end

-- The members at positions first..last, in order.
local function zslice(o, first, last)
    local out = {}
    if first > last then
        return out
    end
    local blocks, bi, base = zorder[o].b, 1, 0
    while base + #blocks[bi] < first do
        base = base + #blocks[bi]
        bi = bi + 1
    end
    local blk, j = blocks[bi], first - base
    for i = 1, last - first + 1 do
        if j > #blk then
            bi = bi + 1
            blk, j = blocks[bi], 1
        end
        out[i] = blk[j]
        j = j + 1
    end
    return out
end

local function zfirst_member(o)
    return zorder[o].b[1][1]
end

local function zlast_member(o)
    local blocks = zorder[o].b
    local blk = blocks[#blocks]
    return blk[#blk]
end

local function zset_insert(o, member, score)
    local zo = zorder[o]
    local bi, j = zlocate(o, score, member)
    local blk = zo.b[bi]
    tinsert(blk, j, member)
    if #blk > 2 * ZBLOCK then
        local right = tmove(blk, ZBLOCK + 1, #blk, 1, {})
        for i = #blk, ZBLOCK + 1, -1 do
            blk[i] = nil
        end
        tinsert(zo.b, bi + 1, right)
    end
    o.m[member] = score
    o.n = o.n + 1
    members_added(o, member)
end

-- Drops block bi when it is empty (unless it is the only one), or joins it to the next
-- one when both are small.
local function zblock_shrunk(zo, bi)
    local blocks = zo.b
    local blk = blocks[bi]
    if #blk == 0 then
        if #blocks > 1 then
            tremove(blocks, bi)
        end
    elseif #blk < ZBLOCK // 4 and bi < #blocks and #blk + #blocks[bi + 1] <= ZBLOCK then
        tmove(blocks[bi + 1], 1, #blocks[bi + 1], #blk + 1, blk)
        tremove(blocks, bi + 1)
    end
end

local function zset_delete(o, member)
    local zo = zorder[o]
    local bi, j = zlocate(o, o.m[member], member)
    tremove(zo.b[bi], j)
    zblock_shrunk(zo, bi)
    o.m[member] = nil
    o.n = o.n - 1
    members_removed(o, member)
end

-- The 0-based rank of member, or nil.
local function zrank(o, member)
    local s = o.m[member]
    if s == nil then
        return nil
    end
    return zpos(zorder[o], zlocate(o, s, member)) - 1
end

local function score_reply(s)
    return { double = s }
end

-- ZADD's options and pairs, as zaddGenericCommand reads them (incr: ZINCRBY).
local function zadd(cmd, argc, incr)
    local nx, xx, gt, lt, ch = false, false, false, false, false
    local i = 3
    while i <= argc do
        local opt = cmd[i]:upper()
        if opt == "NX" then
            nx = true
        elseif opt == "XX" then
            xx = true
        elseif opt == "CH" then
            ch = true
        elseif opt == "INCR" then
            incr = true
        elseif opt == "GT" then
            gt = true
        elseif opt == "LT" then
            lt = true
        else
            break
        end
        i = i + 1
    end
    local pairs_n = argc - i + 1
    if pairs_n == 0 or pairs_n % 2 == 1 then
        return SYNTAX
    end
    pairs_n = pairs_n // 2
    if nx and xx then
        return err("ERR XX and NX options at the same time are not compatible")
    end
    if (gt and nx) or (lt and nx) or (gt and lt) then
        return err("ERR GT, LT, and/or NX options at the same time are not compatible")
    end
    if incr and pairs_n > 1 then
        return err("ERR INCR option supports a single increment-element pair")
    end
    local scores = {}
    for j = 1, pairs_n do
        scores[j] = parse_float(cmd[i + 2 * (j - 1)])
        if scores[j] == nil then
            return NOT_FLOAT
        end
    end
    local key = cmd[2]
    local o = get(key, "zset", true)
    if o == false then
        return WRONGTYPE
    end
    local added, updated, processed, score = 0, 0, 0, nil
    if o == nil then
        if xx then
            if incr then
                return nil
            end
            return 0
        end
        o = new_zset()
        put(key, o)
    end
    for j = 1, pairs_n do
        local member, s = cmd[i + 2 * j - 1], scores[j]
        local current = o.m[member]
        if current ~= nil then
            if not nx then
                if incr then
                    s = s + current
                    if s ~= s then
                        drop_if_empty(key, o)
                        return err("ERR resulting score is not a number (NaN)")
                    end
                end
                if not ((lt and s >= current) or (gt and s <= current)) then
                    processed, score = processed + 1, s
                    if s ~= current then
                        zset_delete(o, member)
                        zset_insert(o, member, s)
                        updated = updated + 1
                    end
                end
            end
        elseif not xx then
            zset_insert(o, member, s)
            added, processed, score = added + 1, processed + 1, s
        end
    end
    if incr then
        return processed > 0 and score_reply(score) or nil
    end
    return ch and added + updated or added
end

def("ZADD", { arity = -4, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
    return zadd(cmd, argc, false)
end)

def("ZINCRBY", { arity = 4, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
    return zadd(cmd, argc, true)
end)

def("ZSCORE", { read = true, arity = 3, keys = K1, flags = FAST }, on("zset", nil, function(o, cmd)
    local s = o.m[cmd[3]]
    return s and score_reply(s)
end))

def("ZMSCORE", { read = true, arity = -3, keys = K1, flags = FAST },
    on("zset", per_argument(false), function(o, cmd, argc)
        local out = {}
        for i = 3, argc do
            local s = o.m[cmd[i]]
            out[i - 2] = s and score_reply(s) or false
        end
        return out
    end))

def("ZCARD", { read = true, arity = 2, keys = K1, flags = FAST }, on("zset", 0, length))

-- A score range: {min, minex, max, maxex}, or nil.
local function score_range(a, b)
    local min, minex = parse_score_bound(a)
    local max, maxex = parse_score_bound(b)
    if min == nil or max == nil then
        return nil
    end
    return { min = min, minex = minex, max = max, maxex = maxex }
end

-- The positions first..last of the members whose scores are in range r.
local function score_span(o, r)
    return zbound(o, r.min, r.minex), zbound(o, r.max, not r.maxex) - 1
end

-- A lex range bound: {s = string} (ex: exclusive) or {inf = -1 | 1}, as
-- zslParseLexRangeItem reads "-", "+", "(x", "[x"; nil when malformed.
local function lex_bound(s)
    local c = s:sub(1, 1)
    if c == "+" and #s == 1 then
        return { inf = 1 }
    elseif c == "-" and #s == 1 then
        return { inf = -1 }
    elseif c == "(" then
        return { s = s:sub(2), ex = true }
    elseif c == "[" then
        return { s = s:sub(2), ex = false }
    end
    return nil
end

local function lex_range(a, b)
    local min, max = lex_bound(a), lex_bound(b)
    if min == nil or max == nil then
        return nil
    end
    return { min = min, max = max }
end

-- Bound comparison as sdscmplex: -inf < every string < +inf.
local function lex_cmp(a, b)
    local x = a.inf or 0
    local y = b.inf or 0
    if x ~= y then
        return x < y and -1 or 1
    end
    if x ~= 0 or a.s == b.s then
        return 0
    end
    return a.s < b.s and -1 or 1
end

local function gte_min(m, r)
    local b = r.min
    if b.inf then
        return b.inf < 0
    end
    return b.ex and m > b.s or (not b.ex and m >= b.s)
end

local function lte_max(m, r)
    local b = r.max
    if b.inf then
        return b.inf > 0
    end
    return b.ex and m < b.s or (not b.ex and m <= b.s)
end

-- The positions first..last of the members in lex range r, found as Redis does
-- (zslIsInLexRange, then the first member >= min, then while <= max): a linear walk for
-- a small zset, binary searches for a large one (its members should share one score).
local function lex_span(o, r)
    local c = lex_cmp(r.min, r.max)
    local n = o.n
    if c > 0 or (c == 0 and (r.min.ex or r.max.ex)) or n == 0
        or not gte_min(zlast_member(o), r) or not lte_max(zfirst_member(o), r) then
        return 1, 0
    end
    if n <= BIG then
        local arr = zslice(o, 1, n)
        local first = 1
        while first <= n and not gte_min(arr[first], r) do
            first = first + 1
        end
        local last = first - 1
        while last < n and lte_max(arr[last + 1], r) do
            last = last + 1
        end
        return first, last
    end
    local first = zlower(o, function(m)
        return gte_min(m, r)
    end)
    local after = zlower(o, function(m)
        return not lte_max(m, r)
    end)
    return first, after - 1
end

-- The same walking backwards from the end (ZREVRANGEBYLEX): the last member <= max,
-- then while >= min.
local function lex_span_rev(o, r)
    local first, last = lex_span(o, r)
    if first > last or o.n > BIG then
        return first, last
    end
    local arr = zslice(o, 1, o.n)
    last = o.n
    while last >= 1 and not lte_max(arr[last], r) do
        last = last - 1
    end
    first = last + 1
    while first > 1 and gte_min(arr[first - 1], r) do
        first = first - 1
    end
    return first, last
end

-- Removes the members at positions first..last, a block at a time.
local function zremove_span(o, first, last)
    if first > last then
        return 0
    end
    local gone = zslice(o, first, last)
    local scores = o.m
    for _, m in ipairs(gone) do
        scores[m] = nil
    end
    local zo = zorder[o]
    local blocks, bi, j = zo.b, 1, first
    while j > #blocks[bi] do
        j = j - #blocks[bi]
        bi = bi + 1
    end
    local start, left = bi, #gone
    while left > 0 do
        local blk = blocks[bi]
        local take = math.min(#blk - j + 1, left)
        tmove(blk, j + take, #blk + take, j) -- the nils past the end come along
        left = left - take
        if #blk == 0 and #blocks > 1 then
            tremove(blocks, bi)
        else
            bi = bi + 1
        end
        j = 1
    end
    if blocks[start] then
        zblock_shrunk(zo, start)
    end
    o.n = o.n - #gone
    for _, m in ipairs(gone) do
        members_removed(o, m)
    end
    return #gone
end

-- The range a..b of kind by ("rank", "score" or "lex"): {start, stop} indexes, or a
-- score or lex range; or nil and Redis's error for a malformed bound.
local function parse_range(by, a, b)
    if by == "rank" then
        local start, stop = int_pair(a, b)
        if start == nil then
            return nil, NOT_INT
        end
        return { start = start, stop = stop }
    elseif by == "score" then
        local r = score_range(a, b)
        if r == nil then
            return nil, MIN_MAX_FLOAT
        end
        return r
    end
    local r = lex_range(a, b)
    if r == nil then
        return nil, MIN_MAX_LEX
    end
    return r
end

-- The positions first..last that range r of kind by selects (forwards).
local function span(o, by, r)
    if by == "rank" then
        local start, stop = list_range(o.n, r.start, r.stop)
        if start == nil then
            return 1, 0
        end
        return start + 1, stop + 1
    elseif by == "score" then
        return score_span(o, r)
    end
    return lex_span(o, r)
end

-- ZCOUNT and ZLEXCOUNT (count), ZREMRANGEBYRANK, ...SCORE and ...LEX (remove): the range
-- is read first, then the key.
local function zspan_command(by, remove)
    return function(cmd)
        local r, e = parse_range(by, cmd[3], cmd[4])
        if r == nil then
            return e
        end
        local key = cmd[2]
        local o = get(key, "zset", remove)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            return 0
        end
        local first, last = span(o, by, r)
        if not remove then
            return math.max(0, last - first + 1)
        end
        local n = zremove_span(o, first, last)
        drop_if_empty(key, o)
        return n
    end
end

def("ZCOUNT", { read = true, arity = 4, keys = K1, flags = FAST }, zspan_command("score", false))
def("ZLEXCOUNT", { read = true, arity = 4, keys = K1, flags = FAST }, zspan_command("lex", false))

local function zrank_command(reverse)
    return on("zset", nil, function(o, cmd)
        local rank = zrank(o, cmd[3])
        if rank == nil then
            return nil
        end
        return reverse and o.n - 1 - rank or rank
    end)
end

def("ZRANK", { read = true, arity = 3, keys = K1, flags = FAST }, zrank_command(false))
def("ZREVRANK", { read = true, arity = 3, keys = K1, flags = FAST }, zrank_command(true))

-- The ZRANGE family (zrangeGenericCommand). by: "rank", "score", "lex" or nil (ZRANGE,
-- which reads BYSCORE/BYLEX); rev: true, false, or nil (ZRANGE, which reads REV); store:
-- ZRANGESTORE (the source key at cmd[3]). Returns the reply, or for store the members
-- and scores as a list {m1, s1, ...}.
local function zrange(cmd, argc, by, rev, store)
    local base = store and 3 or 2
    local withscores, offset, limit = false, 0, -1
    local i = base + 3
    while i <= argc do
        local opt = cmd[i]:upper()
        if not store and opt == "WITHSCORES" then
            withscores = true
        elseif opt == "LIMIT" and argc - i >= 2 then
            offset, limit = int_pair(cmd[i + 1], cmd[i + 2])
            if offset == nil then
                return NOT_INT
            end
            i = i + 2
        elseif rev == nil and opt == "REV" then
            rev = true
        elseif by == nil and opt == "BYLEX" then
            by = "lex"
        elseif by == nil and opt == "BYSCORE" then
            by = "score"
        else
            return SYNTAX
        end
        i = i + 1
    end
    rev, by = rev or false, by or "rank"
    if limit ~= -1 and by == "rank" then
        return err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE "
            .. "or BYLEX")
    end
    if withscores and by == "lex" then
        return err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    end
    local a, b = cmd[base + 1], cmd[base + 2]
    if rev and by ~= "rank" then
        a, b = b, a -- given as max, min
    end
    local range, e = parse_range(by, a, b)
    if range == nil then
        return e
    end
    local o = get(cmd[base], "zset")
    if o == nil then
        return {}
    end
    if o == false then
        return WRONGTYPE
    end
    -- The positions first..last, walked forwards or backwards.
    local n, first, last = o.n, 1, 0
    if by == "rank" then
        first, last = span(o, by, range)
        if rev then -- ranks counted from the end
            first, last = n + 1 - last, n + 1 - first
        end
    else
        if by == "lex" and rev then
            first, last = lex_span_rev(o, range)
        else
            first, last = span(o, by, range)
        end
        if offset < 0 or (offset > 0 and offset >= n) then
            first, last = 1, 0
        elseif rev then
            last = last - offset
            if limit >= 0 and last - limit + 1 > first then
                first = last - limit + 1
            end
        else
            first = first + offset
            if limit >= 0 and first + limit - 1 < last then
                last = first + limit - 1
            end
        end
    end
    local arr, scores, out = zslice(o, first, last), o.m, {}
    local from, to, step = 1, #arr, 1
    if rev then
        from, to, step = #arr, 1, -1
    end
    for j = from, to, step do
        local m = arr[j]
        if store then
            out[#out + 1] = m
            out[#out + 1] = scores[m]
        elseif withscores then
            out[#out + 1] = m
            out[#out + 1] = score_reply(scores[m])
        else
            out[#out + 1] = m
        end
    end
    return withscores and { pairs = out } or out -- RESP2 gets the pairs flat
end

def("ZRANGE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, nil, nil, false)
end)

def("ZREVRANGE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, "rank", true, false)
end)

def("ZRANGEBYSCORE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, "score", false, false)
end)

def("ZREVRANGEBYSCORE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, "score", true, false)
end)

def("ZRANGEBYLEX", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, "lex", false, false)
end)

def("ZREVRANGEBYLEX", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
    return zrange(cmd, argc, "lex", true, false)
end)

def("ZRANGESTORE", { arity = -5, keys = K12, flags = DENYOOM }, function(cmd, argc)
    local out = zrange(cmd, argc, nil, nil, true)
    if out.err then
        return out
    end
    local dst = cmd[2]
    if #out == 0 then
        if lookup_write(dst) ~= nil then
            remove(dst)
        end
        return 0
    end
    local o = new_zset()
    for j = 1, #out, 2 do
        zset_insert(o, out[j], out[j + 1])
    end
    if lookup_write(dst) ~= nil then
        remove(dst)
    end
    put(dst, o)
    return o.n
end)

def("ZREM", { arity = -3, keys = K1, flags = FAST }, on("zset", 0, function(o, cmd, argc)
    local n = 0
    for i = 3, argc do
        if o.m[cmd[i]] ~= nil then
            zset_delete(o, cmd[i])
            n = n + 1
            if o.n == 0 then
                break
            end
        end
    end
    drop_if_empty(cmd[2], o)
    return n
end, true))

local function zpop(cmd, argc, max)
    local n, e = pop_count(cmd, argc, SYNTAX)
    if n == false then
        return e
    end
    n = n or 1
    local key = cmd[2]
    local o = get(key, "zset", true)
    if o == false then
        return WRONGTYPE
    end
    if o == nil or n == 0 then
        return {}
    end
    local out = {}
    for _ = 1, math.min(n, o.n) do
        local m = max and zlast_member(o) or zfirst_member(o)
        local s = o.m[m]
        zset_delete(o, m)
        out[#out + 1] = m
        out[#out + 1] = score_reply(s)
    end
    drop_if_empty(key, o)
    return argc == 3 and { pairs = out } or out -- with a count: pairs, flat on RESP2
end

def("ZPOPMIN", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
    return zpop(cmd, argc, false)
end)

def("ZPOPMAX", { arity = -2, keys = K1, flags = FAST }, function(cmd, argc)
    return zpop(cmd, argc, true)
end)

def("ZREMRANGEBYRANK", { arity = 4, keys = K1 }, zspan_command("rank", true))
def("ZREMRANGEBYSCORE", { arity = 4, keys = K1 }, zspan_command("score", true))
def("ZREMRANGEBYLEX", { arity = 4, keys = K1 }, zspan_command("lex", true))

def("ZSCAN", { read = true, arity = -3, keys = K1 }, function(cmd, argc)
    return scan_members(cmd, argc, "zset", function(o, member, out)
        out[#out + 1] = member
        out[#out + 1] = g17(o.m[member])
    end)
end)

-- =======================================================================================
-- Streams (minimal): entries e[h .. h + n - 1] = {ms, seq, {field, value, ...}}
-- =======================================================================================
do -- (a block, so that the streams' helpers are no locals of the chunk)

    local ID_MAX = INT64_MAX -- stands for Redis's UINT64_MAX in both parts (see the header)

    local function id_text(ms, seq)
        return ms .. "-" .. seq
    end

    local function id_less(ams, aseq, bms, bseq)
        return ams < bms or (ams == bms and aseq < bseq)
    end

    -- An id as streamGenericParseIDOrReply reads it: "ms" (seq = missing), "ms-seq", and
    -- with strict = false also "-" and "+"; with auto, "ms-*" (seq nil). Returns ms, seq,
    -- or nil.
    local function parse_id(s, missing, strict, auto)
        if #s > 127 then
            return nil
        end
        if s == "-" or s == "+" then
            if strict then
                return nil
            end
            if s == "-" then
                return 0, 0
            end
            return ID_MAX, ID_MAX
        end
        local ms, seq = s:match("^(%d+)%-(.*)$")
        if ms == nil then
            ms, seq = s:match("^(%d+)$"), nil
            if ms == nil then
                return nil
            end
            seq = missing
        elseif auto and seq == "*" then
            seq = false
        else
            seq = seq:match("^%d+$") and tointeger(tonumber(seq))
            if not seq then
                return nil
            end
        end
        ms = tointeger(tonumber(ms))
        if ms == nil then
            return nil
        end
        return ms, seq or nil
    end

    local function new_stream()
        return { t = "stream", n = 0, h = 1, e = {}, ms = 0, seq = 0 }
    end

    -- Trims a stream to maxlen entries, or the entries below (min_ms, min_seq); approx: only
    -- whole hundreds, at most limit (0: no limit).
    local function stream_trim(o, maxlen, min_ms, min_seq, approx, limit)
        local drop = 0
        if maxlen then
            drop = math.max(0, o.n - maxlen)
        else
            local e = o.e
            while drop < o.n do
                local x = e[o.h + drop]
                if not id_less(x[1], x[2], min_ms, min_seq) then
                    break
                end
                drop = drop + 1
            end
        end
        if approx then
            if limit > 0 then
                drop = math.min(drop, limit)
            end
            drop = drop - drop % 100
        end
        for j = o.h, o.h + drop - 1 do
            o.e[j] = nil
        end
        o.h, o.n = o.h + drop, o.n - drop
    end

    def("XADD", { arity = -5, keys = K1, flags = DENYOOM_FAST }, function(cmd, argc)
        local nomkstream, strategy, approx, threshold, min_seq = false, nil, false, nil, nil
        local limit, limit_given, id_ms, id_seq, id_given = 0, false, nil, nil, false
        local i = 3
        while i <= argc do
            local opt = cmd[i]
            local more = argc - i
            local upper = opt:upper()
            if opt == "*" then
                break
            elseif (upper == "MAXLEN" or upper == "MINID") and more >= 1 then
                if strategy then
                    return err("ERR syntax error, MAXLEN and MINID options at the same time "
                        .. "are not compatible")
                end
                approx = false
                local nxt = cmd[i + 1]
                if more >= 2 and (nxt == "~" or nxt == "=") then
                    approx = nxt == "~"
                    i = i + 1
                end
                if upper == "MAXLEN" then
                    threshold = parse_int(cmd[i + 1])
                    if threshold == nil then
                        return NOT_INT
                    end
                    if threshold < 0 then
                        return err("ERR The MAXLEN argument must be >= 0.")
                    end
                else
                    threshold, min_seq = parse_id(cmd[i + 1], 0, true, false)
                    if threshold == nil then
                        return BAD_ID
                    end
                end
                strategy = upper
                i = i + 1
            elseif upper == "LIMIT" and more >= 1 then
                limit = parse_int(cmd[i + 1])
                if limit == nil then
                    return NOT_INT
                end
                if limit < 0 then
                    return err("ERR The LIMIT argument must be >= 0.")
                end
                limit_given = true
                i = i + 1
            elseif upper == "NOMKSTREAM" then
                nomkstream = true
            else
                id_ms, id_seq = parse_id(opt, 0, true, true)
                if id_ms == nil then
                    return BAD_ID
                end
                id_given = true
                break
            end
            i = i + 1
        end
        if limit ~= 0 and strategy == nil then
            return err("ERR syntax error, LIMIT cannot be used without specifying a trimming "
                .. "strategy")
        end
        if limit_given and not approx then
            return err("ERR syntax error, LIMIT cannot be used without the special ~ option")
        end
        if approx and not limit_given then
            limit = 10000
        end
        local fields = argc - i -- after the id at cmd[i]
        if fields < 2 or fields % 2 == 1 then
            return wrong_args("xadd")
        end
        if id_given and id_seq == 0 and id_ms == 0 then
            return err("ERR The ID specified in XADD must be greater than 0-0")
        end
        local key = cmd[2]
        local o = get(key, "stream", true)
        if o == false then
            return WRONGTYPE
        end
        if o == nil then
            if nomkstream then
                return nil
            end
            o = new_stream()
            put(key, o)
        end
        if o.ms == ID_MAX and o.seq == ID_MAX then
            return err("ERR The stream has exhausted the last possible ID, unable to add "
                .. "more items")
        end
        local ms, seq
        if not id_given then -- the log's clock, or the next id after the last
            if T > o.ms then
                ms, seq = T, 0
            elseif o.seq < ID_MAX then
                ms, seq = o.ms, o.seq + 1
            else
                ms, seq = o.ms + 1, 0
            end
        elseif id_seq == nil then -- ms-*
            if id_ms == o.ms then
                if o.seq == ID_MAX then
                    return ID_TOO_SMALL
                end
                ms, seq = id_ms, o.seq + 1
            else
                ms, seq = id_ms, 0
            end
        else
            ms, seq = id_ms, id_seq
        end
        if not id_less(o.ms, o.seq, ms, seq) then
            return ID_TOO_SMALL
        end
        local entry = {}
        for j = i + 1, argc do
            entry[#entry + 1] = cmd[j]
        end
        o.e[o.h + o.n] = { ms, seq, entry }
        o.n, o.ms, o.seq = o.n + 1, ms, seq
        if strategy == "MAXLEN" then
            stream_trim(o, threshold, nil, nil, approx, limit)
        elseif strategy == "MINID" then
            stream_trim(o, nil, threshold, min_seq, approx, limit)
        end
        return id_text(ms, seq)
    end)

    def("XLEN", { read = true, arity = 2, keys = K1, flags = FAST }, on("stream", 0, length))

    -- A range bound: "(" makes it exclusive (and strict); returns ms, seq or nil.
    local function interval_id(s, missing)
        if #s > 1 and s:sub(1, 1) == "(" then
            local ms, seq = parse_id(s:sub(2), missing, true, false)
            return ms, seq, true
        end
        return parse_id(s, missing, false, false)
    end

    local function xrange(cmd, argc, rev)
        local a, b = cmd[3], cmd[4]
        if rev then
            a, b = b, a
        end
        local sms, sseq, sex = interval_id(a, 0)
        if sms == nil then
            return BAD_ID
        end
        if sex then
            if sms == ID_MAX and sseq == ID_MAX then
                return err("ERR invalid start ID for the interval")
            end
            if sseq == ID_MAX then
                sms, sseq = sms + 1, 0
            else
                sseq = sseq + 1
            end
        end
        local ems, eseq, eex = interval_id(b, ID_MAX)
        if ems == nil then
            return BAD_ID
        end
        if eex then
            if ems == 0 and eseq == 0 then
                return err("ERR invalid end ID for the interval")
            end
            if eseq == 0 then
                ems, eseq = ems - 1, ID_MAX
            else
                eseq = eseq - 1
            end
        end
        local limit = -1
        local i = 5
        while i <= argc do
            if cmd[i]:upper() == "COUNT" and i < argc then
                limit = parse_int(cmd[i + 1])
                if limit == nil then
                    return NOT_INT
                end
                if limit < 0 then
                    limit = 0
                end
                i = i + 2
            else
                return SYNTAX
            end
        end
        local o = get(cmd[2], "stream")
        if o == nil then
            return {}
        end
        if o == false then
            return WRONGTYPE
        end
        if limit == 0 then
            return NULL_ARRAY -- as Redis (RESP2 *-1)
        end
        local out, e = {}, o.e
        local from, to, step = o.h, o.h + o.n - 1, 1
        if rev then
            from, to, step = to, from, -1
        end
        for j = from, to, step do
            local x = e[j]
            local ms, seq = x[1], x[2]
            local below = id_less(ms, seq, sms, sseq)
            local above = id_less(ems, eseq, ms, seq)
            if rev and below or (not rev and above) then
                break
            end
            if not below and not above then
                local fields = {}
                for k, f in ipairs(x[3]) do
                    fields[k] = f
                end
                out[#out + 1] = { id_text(ms, seq), fields }
                if #out == limit then
                    break
                end
            end
        end
        return out
    end

    def("XRANGE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
        return xrange(cmd, argc, false)
    end)

    def("XREVRANGE", { read = true, arity = -4, keys = K1 }, function(cmd, argc)
        return xrange(cmd, argc, true)
    end)
end

-- =======================================================================================
-- COPY and MEMORY USAGE, which know every type
-- =======================================================================================

local function copy_table(t)
    local c = {}
    for k, v in pairs(t) do
        c[k] = v
    end
    return c
end

function copy_value(v)
    if type(v) == "string" then
        return v
    end
    local c = copy_table(v)
    if v.t == "list" then
        c.v = copy_table(v.v)
    elseif v.t == "stream" then
        c.e = {}
        for j = v.h, v.h + v.n - 1 do
            local x = v.e[j]
            c.e[j] = { x[1], x[2], copy_table(x[3]) }
        end
    else
        c.m = copy_table(v.m)
        if v.t == "zset" then
            local blocks = {}
            for i, blk in ipairs(zorder[v].b) do
                blocks[i] = copy_table(blk)
            end
            zorder[c] = { b = blocks }
        end
        if members_trie[v] then
            local t = trie()
            for m in pairs(c.m) do
                trie_add(t, m, hash32(m))
            end
            members_trie[c] = t
        end
    end
    return c
end

-- An estimate (see the header): the key, the strings it holds, and a fixed overhead per
-- key and per element.
function memory_usage(key, v)
    local n = 48 + #key
    if type(v) == "string" then
        return n + 16 + #v
    end
    if v.t == "list" then
        for j = v.h, v.h + v.n - 1 do
            n = n + 16 + #v.v[j]
        end
    elseif v.t == "stream" then
        for j = v.h, v.h + v.n - 1 do
            n = n + 32
            for _, f in ipairs(v.e[j][3]) do
                n = n + 8 + #f
            end
        end
    else
        for m, x in pairs(v.m) do
            n = n + 32 + #m + (type(x) == "string" and #x or 8)
        end
    end
    return n
end

-- =======================================================================================
-- Dispatch, ticks, INFO, snapshots
-- =======================================================================================

-- Redis's text for an unknown command (the node checks the table first; this is for
-- direct calls): each argument quoted and followed by a space, up to 128 bytes.
local function unknown_command(cmd)
    local args, size = {}, 0
    for i = 2, #cmd do
        if size >= 128 then
            break
        end
        args[#args + 1] = "'" .. cmd[i] .. "' "
        size = size + #cmd[i] + 3
    end
    return err("ERR unknown command '" .. cmd[1] .. "', with args beginning with: "
        .. concat(args))
end

local function run(cmd, reads_only)
    local name = cmd[1]
    local c = commands[name]
    if c == nil then
        name = name:upper()
        c = commands[name]
        if c == nil then
            return unknown_command(cmd)
        end
    end
    if reads_only and not c.read then
        return err("ERR '" .. name:lower() .. "' is not a read command")
    end
    local argc, arity = #cmd, c.arity
    if (arity > 0 and argc ~= arity) or argc < -arity then
        return wrong_args(name)
    end
    return c.fn(cmd, argc)
end

local function advance(ctx)
    if ctx.time_ms > now then
        now = ctx.time_ms
    end
    T = now
end

function M.apply(cmd, ctx)
    advance(ctx)
    if hn > 0 and hd[1] <= now then
        purge(PURGE_ENTRY)
    end
    seed_rng(ctx.seed or 0)
    return run(cmd, false)
end

-- A read sees the later of the log's time and its ctx's, and removes nothing: an expired
-- key is absent all the same. Its random choices come from ctx.seed (a read inside a
-- transaction has one) or else from the last applied index, so that they are the same on
-- every replica.
function M.query(cmd, ctx)
    T = math.max(now, ctx.time_ms or 0)
    seed_rng(ctx.seed or ((ctx.index or 0) * 0x2545F4914F6CDD1D + 0x632BE59BD9B4E019))
    return run(cmd, true)
end

-- Active expiry: the node logs a TICK entry after M.tick_ms of an idle log.
M.tick_ms = 100

function M.tick(ctx)
    advance(ctx)
    purge(PURGE_TICK)
end

function M.keyspace(ctx)
    T = math.max(now, ctx.time_ms or 0)
    local expired = expired_count()
    return { keys = count - expired, expires = nexpires - expired }
end

local MAGIC = "luaraft-kv 3\n"

function M.snapshot(w)
    w:write(MAGIC, luaraft.encode({ now = now, data = data, expires = expires }))
end

function M.restore(r)
    local parts = {}
    for chunk in r.read, r do
        parts[#parts + 1] = chunk
    end
    local bytes = concat(parts)
    if bytes:sub(1, #MAGIC) ~= MAGIC then
        error("not a kv snapshot")
    end
    local state = luaraft.decode(bytes:sub(#MAGIC + 1))
    flush({}, 1)
    now, T = state.now, state.now
    data = state.data -- as decoded: a copy would need as much memory again
    for key, v in pairs(data) do
        count = count + 1
        trie_add(keys_trie, key, hash32(key))
        if type(v) == "table" then
            if v.t == "zset" then
                local arr = luaraft.keys(v.m)
                local scores = v.m
                sort(arr, function(a, b)
                    local x, y = scores[a], scores[b]
                    return x < y or (x == y and a < b)
                end)
                zorder[v] = zorder_of(arr)
            end
            if v.m and v.n > BIG then
                local t = trie()
                for m in pairs(v.m) do
                    trie_add(t, m, hash32(m))
                end
                members_trie[v] = t
            end
        end
    end
    for key, deadline in pairs(state.expires) do
        set_expire(key, deadline) -- (into a fresh expires table)
    end
end

return M
