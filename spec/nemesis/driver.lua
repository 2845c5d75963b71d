-- The nemesis clients (run by spec/nemesis/support.lua as a process of its own, inside the
-- cluster's network namespace): C concurrent clients over K keys of examples/kv.lua, each
-- with at most one command in flight, in one process with non-blocking luasocket sockets
-- and a select loop. Every SET, GET, CAS and INCR is recorded in luaraft.lincheck as it is
-- invoked and as it completes, timed by CLOCK_MONOTONIC (lincheck.now()), and written to
-- a history file. Once OPS operations count for the check (an answer, or an unknown
-- outcome), the clients stop, the history is checked per key, and the verdict is printed.
--
--   lua5.4 driver.lua HOSTS CLIENTS KEYS OPS SEED TIMEOUT_MS THINK_MS HISTORY
--   (HOSTS: host:port,host:port,...; each client waits a random 0..THINK_MS ms between
--   its operations, so that the faults, held for fractions of a second, meet a few
--   hundred operations rather than thousands; LUARAFT_BUILD_DIR selects the lincheck
--   module)
--
-- HISTORY, one event a line in time order: "I id client t_ns CMD ARGS..." (invoked),
-- "C id t_ns REPLY" (completed: OK, nil, the value or the integer), "U id" (unknown
-- outcome), "F id t_ns" (left out: -TRYAGAIN, or a read that failed).
-- stdout (line-buffered for the spec): "progress done=N checked=M unknown=U failed=F"
-- every 100 completions and every 0.2 s, then "verdict VERDICT ..." and the report.
--
-- Outcomes (README, "Replies a client should know"): -TRYAGAIN proves nothing was done
-- (lincheck "failed", left out); -UNKNOWN, -TIMEOUT, any other error of a write, a lost
-- connection and no answer within TIMEOUT_MS are unknown: the write may take effect at
-- any later time or never (src/sim/lincheck.h, lincheck_unknown), and the client goes
-- on under a new client id on a new connection. A read that fails has no effect and is left out.
local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = "build"
end
package.cpath = build .. "/lua/?.so;" .. package.cpath
local lincheck = require("luaraft.lincheck")
local socket = require("socket")

local hosts_arg, n_clients, n_keys, target, seed, timeout_ms, think_ms, history_path =
    table.unpack(arg)
n_clients, n_keys, target = tonumber(n_clients), tonumber(n_keys), tonumber(target)
seed, timeout_ms, think_ms = tonumber(seed), tonumber(timeout_ms), tonumber(think_ms)
-- HOSTS, or @FILE: the file holds them and is read again for each new connection (a
-- membership schedule rewrites it as nodes come and go).
local function read_hosts()
    local text = hosts_arg
    if hosts_arg:sub(1, 1) == "@" then
        local f = assert(io.open(hosts_arg:sub(2)))
        text = f:read("a")
        f:close()
    end
    local list = {}
    for h, p in text:gmatch("([^,:%s]+):(%d+)") do
        list[#list + 1] = { host = h, port = tonumber(p) }
    end
    return list
end
local function any_host()
    local list = read_hosts()
    return list[math.random(#list)]
end
math.randomseed(seed)

local now = lincheck.now
local t0 = now()
local hist = lincheck.new()
local out = assert(io.open(history_path, "w"))
local stats = { done = 0, checked = 0, unknown = 0, failed = 0, ok = 0, errors = {} }
local next_client_id = 0
local next_value = 0

local function encode(cmd)
    local parts = { "*" .. #cmd .. "\r\n" }
    for _, a in ipairs(cmd) do
        parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(parts)
end

-- One reply from the front of buf: {t = "+"|"-"|":"|"$", v = ...}, rest; nil when
-- incomplete. kv.lua answers these commands with simple strings, errors, integers and
-- bulk strings only.
local function parse(buf)
    local e = buf:find("\r\n", 1, true)
    if e == nil then
        return nil
    end
    local t, line = buf:sub(1, 1), buf:sub(2, e - 1)
    if t == "+" or t == "-" then
        return { t = t, v = line }, buf:sub(e + 2)
    elseif t == ":" then
        return { t = t, v = math.tointeger(tonumber(line)) }, buf:sub(e + 2)
    elseif t == "$" then
        local n = tonumber(line)
        if n < 0 then
            return { t = "$" }, buf:sub(e + 2)
        end
        if #buf < e + 1 + n + 2 then
            return nil
        end
        return { t = "$", v = buf:sub(e + 2, e + 1 + n) }, buf:sub(e + n + 4)
    end
    return { t = "?", v = line }, "" -- unexpected: counted as a broken connection
end

local clients = {}

local function new_identity(c)
    next_client_id = next_client_id + 1
    c.id = next_client_id
    if c.sock then
        c.sock:close()
    end
    c.sock, c.buf = nil, ""
    c.host = any_host()
end

local function record(line)
    out:write(line, "\n")
end

-- LUARAFT_NEMESIS_FAKE_STALE=1 (the spec's negative control only): one GET invoked after
-- a key's second acknowledged SET is recorded as answering the first SET's value, a
-- stale read the check must find.
local fake_stale = os.getenv("LUARAFT_NEMESIS_FAKE_STALE") == "1"
local acked = {} -- key -> {value = last acknowledged SET's value, older = the one before, at}

local function fake(op, t, reply)
    local a = acked[op.key]
    if op.f == "SET" then
        -- older only when this SET began after that one was acknowledged: then every
        -- linearization puts it after that one
        local older = a and op.started > a.at and a.value or nil
        acked[op.key] = { value = op.args[1], older = older, at = t }
    elseif op.f == "GET" and a and a.older and op.started > a.at then
        fake_stale = false
        io.stderr:write("driver: recorded a stale read of ", op.key, "\n")
        return a.older
    end
    return reply
end

local function finish(c, kind, reply)
    local op, t = c.op, now()
    c.op = nil
    if fake_stale and kind == "ok" then
        reply = fake(op, t, reply)
    end
    stats.done = stats.done + 1
    if kind == "failed" then
        hist:failed(op.hid, t)
        stats.failed = stats.failed + 1
        record(string.format("F %d %d", op.hid, t))
        -- 20 ms before the next try, on another node: this one has no leader
        c.not_before = t + 20000000
        c.sock:close()
        c.sock, c.buf, c.host = nil, "", any_host()
    elseif kind == "unknown" then
        hist:unknown(op.hid)
        stats.unknown, stats.checked = stats.unknown + 1, stats.checked + 1
        record(string.format("U %d", op.hid))
        new_identity(c)
    else
        c.not_before = t + math.random(0, think_ms) * 1000000
        hist:complete(op.hid, t, reply)
        stats.ok, stats.checked = stats.ok + 1, stats.checked + 1
        record(string.format("C %d %d %s", op.hid, t, reply == nil and "nil"
            or type(reply) == "table" and "OK" or tostring(reply)))
        if (op.f == "GET" or op.f == "INCR") and reply ~= nil then
            c.seen[op.key] = tostring(reply) -- what a later CAS expects
        elseif op.f == "SET" or (op.f == "CAS" and reply == 1) then
            c.seen[op.key] = op.args[#op.args]
        end
    end
end

local function note_error(msg)
    local word = msg:match("^(%S+)") or msg
    stats.errors[word] = (stats.errors[word] or 0) + 1
end

-- What a reply means for the check (see the header).
local function on_reply(c, r)
    local f = c.op.f
    if r.t == "-" then
        note_error(r.v)
        if f == "GET" or r.v:match("^TRYAGAIN") then
            return finish(c, "failed")
        end
        return finish(c, "unknown")
    end
    if f == "GET" and r.t == "$" then
        return finish(c, "ok", r.v)
    elseif f == "SET" and r.t == "+" then
        return finish(c, "ok", { ok = r.v })
    elseif (f == "INCR" or f == "CAS") and r.t == ":" then
        return finish(c, "ok", r.v)
    end
    note_error("unexpected-" .. r.t)
    finish(c, f == "GET" and "failed" or "unknown")
end

local function lost(c)
    if c.op then
        finish(c, c.op.f == "GET" and "failed" or "unknown")
    end
    if c.op == nil and c.sock then
        new_identity(c)
    end
end

local function next_op(c)
    local key = "k" .. math.random(n_keys)
    local r = math.random(100)
    next_value = next_value + 1
    local fresh = tostring(next_value * 1000 + c.id % 1000)
    if r <= 40 then
        return { f = "GET", key = key, args = {} }
    elseif r <= 60 then
        return { f = "SET", key = key, args = { fresh } }
    elseif r <= 80 then
        return { f = "CAS", key = key, args = { c.seen[key] or "0", fresh } }
    end
    return { f = "INCR", key = key, args = {} }
end

local function start_op(c)
    if c.sock == nil then
        local s = socket.tcp()
        s:settimeout(0.5)
        if not s:connect(c.host.host, c.host.port) then
            s:close()
            c.host = any_host()
            c.not_before = now() + 20000000
            return
        end
        s:setoption("tcp-nodelay", true)
        s:settimeout(0)
        c.sock, c.buf = s, ""
    end
    local op = next_op(c)
    local cmd = { op.f, op.key, table.unpack(op.args) }
    op.hid = hist:invoke(c.id, now(), op.f, op.key, op.args[1], op.args[2])
    op.started = now()
    c.op = op
    record(string.format("I %d %d %d %s", op.hid, c.id, op.started, table.concat(cmd, " ")))
    local sent, err = c.sock:send(encode(cmd))
    if sent == nil then
        note_error("send-" .. tostring(err))
        lost(c)
    end
end

local function read_ready(c)
    local data, err, partial = c.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
        c.buf = c.buf .. data
    end
    while c.op do
        local r, rest = parse(c.buf)
        if r == nil then
            break
        end
        c.buf = rest
        if r.t == "?" then
            note_error("garbled")
            return lost(c)
        end
        on_reply(c, r)
    end
    if err == "closed" then
        note_error("closed")
        lost(c)
    end
end

for i = 1, n_clients do
    clients[i] = { seen = {}, buf = "", not_before = 0 }
    new_identity(clients[i])
end

local last_progress, reported = 0, 0
local function progress(force)
    local t = now()
    if force or stats.done - reported >= 100 or t - last_progress > 200000000 then
        io.write(string.format("progress done=%d checked=%d unknown=%d failed=%d ms=%d\n",
            stats.done, stats.checked, stats.unknown, stats.failed, (t - t0) // 1000000))
        io.flush()
        last_progress, reported = t, stats.done
    end
end

local function step(stopping)
    local t = now()
    local socks, by_sock, busy = {}, {}, 0
    for _, c in ipairs(clients) do
        if c.op == nil and not stopping and t >= c.not_before then
            start_op(c)
        end
        if c.op then
            busy = busy + 1
            if now() - c.op.started > timeout_ms * 1000000 then
                note_error("client-timeout")
                lost(c)
            else
                socks[#socks + 1] = c.sock
                by_sock[c.sock] = c
            end
        end
    end
    if #socks > 0 then
        local ready = socket.select(socks, nil, 0.02)
        for _, s in ipairs(ready) do
            if by_sock[s].op then
                read_ready(by_sock[s])
            end
        end
    else
        socket.select(nil, nil, 0.005) -- every client is waiting out its 20 ms
    end
    progress(false)
    return busy
end

while stats.checked < target do
    step(false)
end
while step(true) > 0 do
end
progress(true)
out:close()

local started = now()
local verdict, report = hist:check()
local errors = {}
for k, v in pairs(stats.errors) do
    errors[#errors + 1] = k .. "=" .. v
end
table.sort(errors)
io.write(string.format("verdict %s checked=%d ok=%d unknown=%d failed=%d clients=%d "
    .. "check_ms=%d errors=%s\n", verdict, stats.checked, stats.ok, stats.unknown, stats.failed,
    next_client_id, (now() - started) // 1000000, table.concat(errors, ",")))
io.write(report, "\n")
io.flush()
hist:close()
