-- Support for spec/examples/kv_redis_spec.lua (loaded with dofile, so busted does not run
-- it as a spec): a real redis-server on a free 127.0.0.1 port, started and stopped by its
-- PID; a RESP client over luasocket; one parser for RESP2/RESP3 bytes, whether they come
-- from the server or from kv.lua's replies; and comparison of parsed replies by type and
-- value.
--
-- A parsed reply is {t = TYPE, v = VALUE}: t is "+" status, "-" error, ":" integer, "$"
-- bulk string, "," double (v is its text), "_" any null (RESP2's $-1 too, and *-1 with
-- array = true, so that the two RESP2 nulls differ), "*"
-- array, "%" map (v is the flat list k1, v1, ...), "~" set, "=" verbatim string (v
-- without its "txt:" prefix).
local socket = require("socket")

local R = {}

local function sh(cmd)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    return out
end

-- Polls fn until it returns a true value or seconds pass; returns that value or nil.
local function poll(fn, seconds)
    local deadline = socket.gettime() + seconds
    repeat
        local v = fn()
        if v then
            return v
        end
        socket.sleep(0.01)
    until socket.gettime() > deadline
    return nil
end
R.poll = poll

function R.free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return tonumber(port)
end

-- ---------------------------------------------------------------------------------------
-- Parsing. A source offers line() (without CRLF) and bytes(n) (n bytes, then the CRLF
-- is skipped).

local function parse(src)
    local line = src.line()
    local t, rest = line:sub(1, 1), line:sub(2)
    if t == "+" or t == "-" then
        return { t = t, v = rest }
    elseif t == ":" then
        return { t = ":", v = math.tointeger(tonumber(rest)) }
    elseif t == "," then
        return { t = ",", v = rest }
    elseif t == "_" then
        return { t = "_" }
    elseif t == "#" then
        return { t = ":", v = rest == "t" and 1 or 0 }
    elseif t == "$" or t == "=" then
        local n = tonumber(rest)
        if n < 0 then
            return { t = "_" }
        end
        local s = src.bytes(n)
        if t == "=" then
            return { t = "=", v = s:sub(5) }
        end
        return { t = "$", v = s }
    elseif t == "*" or t == "%" or t == "~" or t == ">" then
        local n = tonumber(rest)
        if n < 0 then
            return { t = "_", array = true }
        end
        local items = {}
        for i = 1, (t == "%" and 2 * n or n) do
            items[i] = parse(src)
        end
        return { t = t == ">" and "*" or t, v = items }
    end
    error("kv_redis_support: unknown RESP type in " .. string.format("%q", line))
end

-- Parses one whole reply held in a string (kv.lua's RESP bytes).
function R.parse_bytes(s)
    local pos = 1
    local src = {
        line = function()
            local e = assert(s:find("\r\n", pos, true), "truncated reply")
            local l = s:sub(pos, e - 1)
            pos = e + 2
            return l
        end,
        bytes = function(n)
            local b = s:sub(pos, pos + n - 1)
            pos = pos + n + 2
            return b
        end,
    }
    local v = parse(src)
    assert(pos == #s + 1, "trailing bytes after a reply")
    return v
end

-- ---------------------------------------------------------------------------------------
-- The client.

local Client = {}
Client.__index = Client

function R.connect(port)
    local c = assert(socket.tcp())
    c:settimeout(10)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then
        c:close()
        return nil, err
    end
    c:setoption("tcp-nodelay", true)
    local self = setmetatable({ sock = c }, Client)
    self.src = {
        line = function()
            return assert(c:receive("*l"))
        end,
        bytes = function(n)
            local b = n > 0 and assert(c:receive(n)) or ""
            assert(c:receive(2))
            return b
        end,
    }
    return self
end

local function encode(cmd)
    local parts = { "*" .. #cmd .. "\r\n" }
    for i = 1, #cmd do
        local a = tostring(cmd[i])
        parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(parts)
end

-- Sends cmd (a list of strings) and returns its parsed reply.
function Client:call(cmd)
    assert(self.sock:send(encode(cmd)))
    return parse(self.src)
end

-- Sends every command in one write and returns their parsed replies.
function Client:pipeline(cmds)
    local parts = {}
    for i, cmd in ipairs(cmds) do
        parts[i] = encode(cmd)
    end
    assert(self.sock:send(table.concat(parts)))
    local out = {}
    for i = 1, #cmds do
        out[i] = parse(self.src)
    end
    return out
end

function Client:close()
    self.sock:close()
end

-- ---------------------------------------------------------------------------------------
-- The server.

local Server = {}
Server.__index = Server

-- Starts redis-server on a free port (no persistence) and waits until it answers PING.
function R.start_server()
    local port = R.free_port()
    local dir = sh("mktemp -d /tmp/luaraft-kv-redis.XXXXXX"):gsub("%s+$", "")
    local pid = tonumber(sh(string.format("cd %s && redis-server --port %d --bind 127.0.0.1 "
        .. "--save '' --appendonly no --daemonize no >%s/log 2>&1 & echo $!", dir, port, dir)))
    assert(pid, "redis-server did not start")
    local server = setmetatable({ pid = pid, port = port, dir = dir }, Server)
    local client = poll(function()
        local c = R.connect(port)
        if c and c:call({ "PING" }).v == "PONG" then
            return c
        end
        if c then
            c:close()
        end
    end, 10)
    if not client then
        server:stop()
        error("redis-server did not answer on port " .. port)
    end
    client:close()
    return server
end

function Server:alive()
    return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

function Server:stop()
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    local gone = poll(function()
        return not self:alive()
    end, 10)
    if not gone then
        os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
    end
    os.execute("rm -rf " .. self.dir)
end

-- ---------------------------------------------------------------------------------------
-- Showing and comparing.

function R.show(r)
    if r.t == "_" then
        return r.array and "(null array)" or "(null)"
    elseif r.t == "*" or r.t == "~" or r.t == "%" then
        local parts = {}
        for i, x in ipairs(r.v) do
            parts[i] = R.show(x)
        end
        local open = ({ ["*"] = "[", ["~"] = "~{", ["%"] = "%{" })[r.t]
        return open .. table.concat(parts, ", ") .. (r.t == "*" and "]" or "}")
    elseif r.t == "$" then
        return string.format("%q", r.v)
    end
    return r.t .. tostring(r.v)
end

-- Elements of an aggregate in a canonical order (for sets, maps and unordered arrays):
-- sorted by their rendering; a map's pairs as pairs.
local function sorted_items(r)
    local items = {}
    if r.t == "%" then
        for i = 1, #r.v, 2 do
            items[#items + 1] = R.show(r.v[i]) .. " => " .. R.show(r.v[i + 1])
        end
    else
        for i, x in ipairs(r.v) do
            items[i] = R.show(x)
        end
    end
    table.sort(items)
    return table.concat(items, "\n")
end

-- Whether replies a and b are the same: the same types, the same values; sets and maps
-- in any order. opts (optional): unordered = true compares an array's elements in any
-- order; tolerance = n lets integers differ by up to n (TTLs); shape = true compares only
-- the types and lengths (random replies).
function R.same(a, b, opts)
    opts = opts or {}
    if a.t ~= b.t then
        return false
    end
    if a.t == "_" then
        return (a.array or false) == (b.array or false)
    end
    if a.t == ":" and opts.tolerance then
        return math.abs(a.v - b.v) <= opts.tolerance
    end
    if a.t == ":" and opts.shape then
        return true
    end
    if a.t == "*" or a.t == "~" or a.t == "%" then
        if #a.v ~= #b.v then
            return false
        end
        if opts.shape then
            return true
        end
        if a.t ~= "*" or opts.unordered then
            return sorted_items(a) == sorted_items(b)
        end
        for i = 1, #a.v do
            if not R.same(a.v[i], b.v[i], opts) then
                return false
            end
        end
        return true
    end
    if opts.shape and a.t == "$" then
        return true
    end
    return a.v == b.v
end

return R
