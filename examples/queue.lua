-- queue.lua: a work queue with at-least-once delivery, as a luaraft state machine.
--
-- What it shows: a visibility timeout kept by the log's clock. RESERVE hands an item to a
-- worker and hides it until a deadline (ctx.time_ms of the entry + visibility_ms); the
-- worker ACKs it when done. If the worker dies, the deadline passes and the next RESERVE
-- delivers the item again: no item is lost, and one may be delivered more than once, so
-- workers must be idempotent. Every replica agrees on which items are visible, because
-- time is the leader's stamp on each entry, not a node's clock.
--
-- Commands (queues are created by their first PUSH and vanish when empty):
--   PUSH q item             -> integer id (ids increase across all queues, never reused)
--   RESERVE q visibility_ms -> array {id, item} of the oldest visible item (lowest id,
--                              redeliveries included), or nil when none is visible
--   ACK q id                -> integer 1 when the item was in q (it is removed, reserved or
--                              not), 0 otherwise (already acked, or never there)
--   LEN q                   -> integer count of visible (ready) items (a read)
--   STATS q                 -> array {"ready", n, "reserved", n, "redelivered", n}: items
--                              visible, items reserved and not yet timed out, and how many
--                              deliveries were repeats since the queue was created (a read)
--
-- Try it: scripts/cluster.sh examples/queue.lua, then
--   redis-cli -p 6001 PUSH jobs resize-42     -> (integer) 1
--   redis-cli -p 6002 RESERVE jobs 30000      -> 1) (integer) 1  2) "resize-42"
--   redis-cli -p 6003 RESERVE jobs 30000      -> (nil)            (invisible for 30 s)
--   redis-cli -p 6001 ACK jobs 1              -> (integer) 1
--   redis-cli -p 6001 LEN jobs                -> (integer) 0
--
-- Reads use the time of the last applied entry (the same on every replica and kept in the
-- snapshot): an item whose deadline passed in real time counts as ready once a later
-- entry has been applied.
--
-- Snapshot: the whole state through luaraft.encode, the runtime's canonical encoding
-- (maps in sorted key order), so every replica writes the same bytes for the same state.
local M = {}

local queues = {} -- name -> {items = {id -> item}, order = {ids ascending}, redelivered =}
local now = 0     -- time_ms of the last applied entry
local last_id = 0

local function int(s, what)
    local n = s:match("^%d+$") and math.tointeger(tonumber(s))
    if not n then
        error(what .. " must be a non-negative integer")
    end
    return n
end

local function visible(item)
    return item.deadline == 0 or now >= item.deadline
end

local commands = {
    PUSH = { 3, function(cmd)
        local q = queues[cmd[2]]
        if not q then
            q = { items = {}, order = {}, redelivered = 0 }
            queues[cmd[2]] = q
        end
        last_id = last_id + 1
        q.items[last_id] = { item = cmd[3], deadline = 0, deliveries = 0 }
        q.order[#q.order + 1] = last_id -- ids only grow, so order stays sorted
        return last_id
    end },
    RESERVE = { 3, function(cmd)
        local ms = int(cmd[3], "visibility_ms")
        if ms > math.maxinteger - now then
            error("visibility_ms out of range")
        end
        local q = queues[cmd[2]]
        if not q then
            return nil
        end
        -- The oldest visible item; a linear scan keeps the example short.
        for _, id in ipairs(q.order) do
            local it = q.items[id]
            if visible(it) then
                if it.deliveries > 0 then
                    q.redelivered = q.redelivered + 1
                end
                it.deliveries = it.deliveries + 1
                it.deadline = math.max(now + ms, 1) -- 0 means "never reserved"
                return { id, it.item }
            end
        end
        return nil
    end },
    ACK = { 3, function(cmd)
        local q = queues[cmd[2]]
        local id = int(cmd[3], "id")
        if not q or not q.items[id] then
            return 0
        end
        q.items[id] = nil
        for i, v in ipairs(q.order) do
            if v == id then
                table.remove(q.order, i)
                break
            end
        end
        if #q.order == 0 then
            queues[cmd[2]] = nil
        end
        return 1
    end },
    LEN = { 2, function(cmd)
        local q, n = queues[cmd[2]], 0
        for _, id in ipairs(q and q.order or {}) do
            if visible(q.items[id]) then
                n = n + 1
            end
        end
        return n
    end },
    STATS = { 2, function(cmd)
        local q, ready, reserved = queues[cmd[2]], 0, 0
        for _, id in ipairs(q and q.order or {}) do
            if visible(q.items[id]) then
                ready = ready + 1
            else
                reserved = reserved + 1
            end
        end
        return { "ready", ready, "reserved", reserved, "redelivered", q and q.redelivered or 0 }
    end },
}

-- The command table the node checks every command against before it is logged (arity
-- counts the name; keys = {first, last, step}, as in Redis's command table).
M.commands = {
    PUSH = { arity = 3, keys = { 1, 1, 1 } },
    RESERVE = { arity = 3, keys = { 1, 1, 1 } },
    ACK = { arity = 3, keys = { 1, 1, 1 } },
    LEN = { read = true, arity = 2, keys = { 1, 1, 1 } },
    STATS = { read = true, arity = 2, keys = { 1, 1, 1 } },
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
    -- max: the log's time must never run backwards across a change of leader, or a
    -- reserved item could be hidden again for longer than asked.
    now = math.max(now, ctx.time_ms)
    return run(cmd, false)
end

function M.query(cmd)
    return run(cmd, true)
end

function M.snapshot(w)
    w:write(luaraft.encode({ version = 1, now = now, last_id = last_id, queues = queues }))
end

-- Reads the whole snapshot into memory: short, fine for an example (kv.lua streams).
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
        error("not a queue snapshot")
    end
    queues, now, last_id = state.queues, state.now, state.last_id
end

return M
