-- luaraft.harness: test a luaraft state machine script in-process, from a busted spec.
--
-- The script runs in the real sandbox (through the C module luaraft.fsm, the same host the
-- node uses), and every entry is applied as the node applies it (src/fsm/job.c: the entry's
-- payload decoded, its seed derived from its index and term), so what passes here behaves
-- the same on a replica. Every entry gets a deterministic ctx, so a spec replays exactly.
--
--   local harness = require("luaraft.harness")
--   local m = harness.load("examples/counter.lua", { time_ms = 1700000000000 })
--   assert.are.equal(1, m:apply({ "INCR" }))      -- decoded reply
--   m:advance(5000)                               -- the log's clock moves 5 s
--   assert.are.equal(1, m:query({ "GET" }))
--   m:check_snapshot({ { "GET" } })               -- restore(snapshot()) answers the same
--
-- harness.load(path [, opts]) -> machine. path is tried as given, then from the project
--   root (so "examples/kv.lua" works from anywhere). opts (all optional):
--     time_ms  the first entry's time (default 1700000000000, a fixed date)
--     step_ms  how far the clock moves after each entry (default 1; 0 freezes it)
--     term     the term of the entries (default 1)
--     limits   {instructions_max=, memory_bytes_max=} (default 1e6 instructions, 64 MiB:
--              a command that passes here fits the node's defaults too)
--   Raises when the script does not load.
--
-- Decoded replies: string, integer, array table, harness.null (RESP null), {ok = "..."},
-- {err = "..."}, and the RESP3 forms as a script writes them: {map = {k1, v1, ...}},
-- {set = {...}}, {double = x}.
--
-- Machine:
--   m:apply(cmd)         applies cmd (a table of strings; numbers are turned into strings)
--                        as one COMMAND entry with ctx {index = previous + 1, term, time_ms
--                        = the clock, seed = the node's for that index and term}, then
--                        moves the clock by step_ms; returns the decoded reply. It does not
--                        look at the command table: a read given here is applied too.
--   m:apply_raw(cmd)     the same, returning the RESP bytes.
--   m:query(cmd)         a read through M.query, decoded (m:query_raw for bytes), with ctx
--                        {index = the last applied index, term, time_ms = the clock (what
--                        m:advance moved), time = time_ms // 1000}, as a node's read sees
--                        the log's clock.
--   m:call(cmd)          cmd as the node routes it: checked against the command table first
--                        (a refusal is {err = "..."} with the node's exact text, e.g. "ERR
--                        unknown command 'foo', with args beginning with: " and nothing is
--                        applied), then a read (read = true in M.commands, or M.reads
--                        without a table) through m:query, anything else through m:apply.
--                        m:call_raw(cmd) for bytes.
--   m:exec(cmds)         applies {cmd1, cmd2, ...} as one TRANSACTION entry (MULTI ... EXEC):
--                        reads through M.query, writes through M.apply, all with the entry's
--                        ctx, each command's error its own reply; returns the decoded array
--                        of replies (m:exec_raw for bytes). The commands are not checked
--                        against the table (the node does that when they are queued).
--   m:tick()             applies a TICK entry: the clock of the machine moves to the entry's
--                        time and M.tick(ctx) runs if the script has it (its reply and
--                        errors dropped). Returns nothing.
--   m:commands()         the command table as the node sees it: nil without M.commands,
--                        else {{name = "get", arity = 2, first_key = 1, last_key = 1, step =
--                        1, read = true, flags = {"readonly"}}, ...} in name order.
--   m:tick_ms()          M.tick_ms (0 when not declared).
--   m:keyspace()         INFO's keyspace: {keys, expires} from M.keyspace(ctx), or
--                        harness.null when the script cannot say.
--   m:advance(ms)        moves the log clock forward by ms (the next entry's time_ms).
--   m:ctx()              the ctx the next entry will get (a copy).
--   m:snapshot()         the snapshot bytes.
--   m:fresh()            a new machine of the same script, empty, with m's clock and index.
--   m:restored()         a fresh machine of the same script restored from m:snapshot(),
--                        with the same clock and index.
--   m:check_snapshot(queries)
--                        restores a copy, raises (with the differing replies) unless every
--                        query answers the same bytes on both and the copy snapshots to
--                        the same bytes; returns the copy.
--   m:replay()           a fresh machine that has applied m's whole log (same entries).
--   m:replay_matches(queries [, other])
--                        raises unless `other` (default m:replay()) answers every query
--                        like m and snapshots to the same bytes: a check that apply
--                        depends on nothing but the log.
--   m:close()
-- harness.null is the decoded RESP null; harness.show(v) formats a decoded reply.
local fsm = require("luaraft.fsm")

local H = {}
H.null = fsm.null

-- The project root, from this file's path (lua/luaraft/harness.lua).
local root = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/lua/luaraft/[^/]*$")) or "."

local DEFAULT_LIMITS = { instructions_max = 1000000, memory_bytes_max = 64 * 1024 * 1024 }

local function exists(path)
    local f = io.open(path, "r")
    if f then
        f:close()
        return true
    end
    return false
end

local function resolve(path)
    if exists(path) or path:sub(1, 1) == "/" then
        return path
    end
    return root .. "/" .. path
end

-- A readable rendering of a decoded reply, for failure messages.
function H.show(v)
    if v == fsm.null then
        return "(nil)"
    elseif type(v) == "string" then
        return string.format("%q", v)
    elseif type(v) ~= "table" then
        return tostring(v)
    elseif v.ok then
        return "+" .. v.ok
    elseif v.err then
        return "-" .. v.err
    elseif v.double then
        return "(double) " .. string.format("%.17g", v.double)
    end
    local list, open, close = v, "[", "]"
    if v.map then
        list, open, close = v.map, "{", "}"
    elseif v.set then
        list, open, close = v.set, "(set) [", "]"
    end
    local parts = {}
    for i = 1, #list do
        parts[i] = H.show(list[i])
    end
    if v.map then
        local pairs_ = {}
        for i = 1, #parts, 2 do
            pairs_[#pairs_ + 1] = parts[i] .. ": " .. tostring(parts[i + 1])
        end
        parts = pairs_
    end
    return open .. table.concat(parts, ", ") .. close
end

local function show_cmd(cmd)
    local parts = {}
    for i = 1, #cmd do
        parts[i] = tostring(cmd[i])
    end
    return table.concat(parts, " ")
end

local function strings(cmd)
    local out = {}
    for i = 1, #cmd do
        out[i] = tostring(cmd[i])
    end
    return out
end

-- The seed the node gives the entry at (index, term): src/fsm/job.c's entry_seed, in
-- Lua's wrapping 64-bit integers.
local function seed_of(index, term)
    local z = (index * 0x9e3779b97f4a7c15) ~ (term + 0x632be59bd9b4e019)
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    return z ~ (z >> 31)
end

local Machine = {}
Machine.__index = Machine

local function open(path, opts)
    local m, err = fsm.open(path, opts.limits or DEFAULT_LIMITS)
    if not m then
        error("harness: " .. path .. " did not load: " .. tostring(err), 3)
    end
    return setmetatable({
        m = m,
        path = path,
        opts = opts,
        index = 0,
        term = opts.term or 1,
        time_ms = opts.time_ms or 1700000000000,
        step_ms = opts.step_ms or 1,
        log = {}, -- {payload, ctx} of every entry, for replay
    }, Machine)
end

function H.load(path, opts)
    return open(resolve(path), opts or {})
end

function Machine:ctx()
    local index = self.index + 1
    return { index = index, term = self.term, time_ms = self.time_ms,
        seed = seed_of(index, self.term) }
end

-- Applies one entry's payload (made by make(ctx.time_ms)) at the next index; the raw reply.
function Machine:entry(make)
    local ctx = self:ctx()
    local payload = make(ctx.time_ms)
    local reply = self.m:apply_entry(payload, ctx)
    self.index = ctx.index
    self.time_ms = self.time_ms + self.step_ms
    self.log[#self.log + 1] = { payload = payload, ctx = ctx }
    return reply
end

function Machine:apply_raw(cmd)
    cmd = strings(cmd)
    return self:entry(function(t) return fsm.payload("command", cmd, t) end)
end

function Machine:apply(cmd)
    return fsm.decode(self:apply_raw(cmd))
end

function Machine:exec_raw(cmds)
    local list = {}
    for i = 1, #cmds do
        list[i] = strings(cmds[i])
    end
    return self:entry(function(t) return fsm.payload("transaction", list, t) end)
end

function Machine:exec(cmds)
    return fsm.decode(self:exec_raw(cmds))
end

function Machine:tick()
    self:entry(function(t) return fsm.payload("tick", t) end)
end

-- A query's ctx: where the machine is (its last index, its clock).
function Machine:query_ctx()
    return { index = self.index, term = self.term, time_ms = self.time_ms }
end

function Machine:query_raw(cmd)
    return self.m:query(strings(cmd), self:query_ctx())
end

function Machine:query(cmd)
    return fsm.decode(self:query_raw(cmd))
end

function Machine:call_raw(cmd)
    cmd = strings(cmd)
    local info, err = self.m:check(cmd)
    if not info and err ~= "" then
        return "-" .. err .. "\r\n"
    end
    local read
    if info then
        read = info.read
    else
        read = self.m:is_read(cmd[1])
    end
    return read and self:query_raw(cmd) or self:apply_raw(cmd)
end

function Machine:call(cmd)
    return fsm.decode(self:call_raw(cmd))
end

function Machine:commands()
    return self.m:commands()
end

function Machine:tick_ms()
    return self.m:tick_ms()
end

function Machine:keyspace()
    return fsm.decode(self.m:keyspace())
end

function Machine:advance(ms)
    assert(math.type(ms) == "integer" and ms >= 0, "harness: advance takes ms >= 0")
    self.time_ms = self.time_ms + ms
end

function Machine:snapshot()
    return (self.m:snapshot())
end

-- A fresh machine of the same script with the same clock, not yet fed anything.
function Machine:fresh()
    local copy = open(self.path, self.opts)
    copy.index, copy.time_ms, copy.term = self.index, self.time_ms, self.term
    return copy
end

function Machine:restored()
    local copy = self:fresh()
    -- Small chunks, so a script that assumes one chunk is the whole snapshot fails here.
    copy.m:restore(self:snapshot(), 1000)
    return copy
end

-- Raises unless a and b answer every query the same and snapshot to the same bytes.
local function compare(a, b, queries, what)
    local diffs = {}
    for _, q in ipairs(queries or {}) do
        local ra, rb = a:query_raw(q), b:query_raw(q)
        if ra ~= rb then
            diffs[#diffs + 1] = string.format("  %s\n    original: %s\n    %s: %s", show_cmd(q),
                H.show(fsm.decode(ra)), what, H.show(fsm.decode(rb)))
        end
    end
    if #diffs > 0 then
        error("harness: the " .. what .. " machine answers differently:\n"
            .. table.concat(diffs, "\n"), 3)
    end
    local sa, sb = a:snapshot(), b:snapshot()
    if sa ~= sb then
        local i = 1
        while sa:byte(i) == sb:byte(i) do
            i = i + 1
        end
        error(string.format("harness: the %s machine snapshots to different bytes (%d and %d"
            .. " bytes, first difference at byte %d)", what, #sa, #sb, i), 3)
    end
end

function Machine:check_snapshot(queries)
    local copy = self:restored()
    compare(self, copy, queries, "restored")
    return copy
end

function Machine:replay()
    local copy = open(self.path, self.opts)
    for _, e in ipairs(self.log) do
        copy.m:apply_entry(e.payload, e.ctx)
        copy.log[#copy.log + 1] = e
    end
    copy.index, copy.time_ms, copy.term = self.index, self.time_ms, self.term
    return copy
end

function Machine:replay_matches(queries, other)
    compare(self, other or self:replay(), queries, "replayed")
    return true
end

function Machine:close()
    self.m:close()
end

return H
