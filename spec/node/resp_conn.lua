-- A raw RESP connection for the specs (loaded with dofile), on Debian's luasocket: send
-- commands (pipelined or not) and read replies back as tagged values, RESP2 and RESP3:
--
--   local R = dofile(".../resp_conn.lua")
--   local c = R.connect(port)          -- raises if nothing listens
--   c:send({"SET", "k", "v"}, {"GET", "k"})   -- one write with both commands
--   local r1, r2 = c:read(), c:read()  -- {t = "status", v = "OK"}, {t = "bulk", v = "v"}
--   c:call("GET", "k")                 -- send one command and read its reply
--   c:close()
--
-- Reply tags: status, error, int, bulk, null (every null form: $-1, *-1, _), array, map
-- (v = flat list k1, v1, ...), set, double (v = the text), bool (v = true/false),
-- verbatim (v = the text without its format), bignum. Reads wait at most 10 s.
local socket = require("socket")

local R = {}
local Conn = {}
Conn.__index = Conn

function R.connect(port, host)
    local s = assert(socket.tcp())
    s:settimeout(10)
    assert(s:connect(host or "127.0.0.1", port))
    s:setoption("tcp-nodelay", true)
    return setmetatable({ s = s }, Conn)
end

local function encode(cmd)
    local out = { "*" .. #cmd .. "\r\n" }
    for _, a in ipairs(cmd) do
        a = tostring(a)
        out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(out)
end
R.encode = encode

function Conn:send(...)
    local parts = {}
    for _, cmd in ipairs({ ... }) do
        parts[#parts + 1] = encode(cmd)
    end
    assert(self.s:send(table.concat(parts)))
end

function Conn:send_raw(bytes)
    assert(self.s:send(bytes))
end

local function line(self)
    local l, err = self.s:receive("*l")
    if l == nil then
        error("connection: " .. tostring(err), 3)
    end
    return l
end

function Conn:read()
    local l = line(self)
    local t, rest = l:sub(1, 1), l:sub(2)
    if t == "+" then
        return { t = "status", v = rest }
    elseif t == "-" then
        return { t = "error", v = rest }
    elseif t == ":" then
        return { t = "int", v = math.tointeger(tonumber(rest)) }
    elseif t == "_" then
        return { t = "null" }
    elseif t == "#" then
        return { t = "bool", v = rest == "t" }
    elseif t == "," then
        return { t = "double", v = rest }
    elseif t == "(" then
        return { t = "bignum", v = rest }
    elseif t == "$" or t == "=" or t == "!" then
        local n = tonumber(rest)
        if n < 0 then
            return { t = "null" }
        end
        local body = assert(self.s:receive(n + 2)):sub(1, n)
        if t == "=" then
            return { t = "verbatim", v = body:sub(5) }
        end
        return { t = t == "$" and "bulk" or "error", v = body }
    elseif t == "*" or t == "%" or t == "~" or t == ">" then
        local n = tonumber(rest)
        if n < 0 then
            return { t = "null" }
        end
        local count = t == "%" and 2 * n or n
        local v = {}
        for i = 1, count do
            v[i] = self:read()
        end
        local tags = { ["*"] = "array", ["%"] = "map", ["~"] = "set", [">"] = "push" }
        return { t = tags[t], v = v }
    end
    error("unknown reply type " .. l, 2)
end

function Conn:call(...)
    self:send({ ... })
    return self:read()
end

-- Whether the server closed the connection (reads nothing more).
function Conn:closed()
    self.s:settimeout(5)
    local _, err = self.s:receive(1)
    self.s:settimeout(10)
    return err == "closed"
end

function Conn:close()
    self.s:close()
end

-- A reply as text, for messages.
function R.show(r)
    if r.t == "array" or r.t == "map" or r.t == "set" or r.t == "push" then
        local parts = {}
        for _, x in ipairs(r.v) do
            parts[#parts + 1] = R.show(x)
        end
        return r.t .. "[" .. table.concat(parts, ", ") .. "]"
    end
    return r.t .. ":" .. tostring(r.v)
end

return R
