-- A steady write load for the specs, run as a process of its own (started and stopped by
-- PID, like the nodes):
--
--   [LUARAFT_WRITER_OP=sadd] lua5.4 spec/node/load_writer.lua OUT PORT...
--
-- One write at a time, SET w<k> <k> (or, with sadd, SADD s <k>: a set workload, acknowledged
-- by the reply 1) with a new k for every attempt, to the ports in turn
-- (a follower forwards to the leader), each on a connection kept open until it fails.
-- Every acknowledged write is a line "ack K SECONDS" in OUT (written and flushed before the
-- next write is sent); any other reply, or a failure to connect or read, moves on to the
-- next port. The specs read OUT back: every K acknowledged must be readable afterwards,
-- and the longest pause between acknowledgments is the unavailability they report.
local dir = debug.getinfo(1, "S").source:sub(2):match("^(.*)/") or "."
local R = dofile(dir .. "/resp_conn.lua")
local socket = require("socket")

local out_path = assert(arg[1], "usage: load_writer.lua OUT PORT...")
local ports = {}
for i = 2, #arg do
    ports[#ports + 1] = assert(tonumber(arg[i]), "not a port: " .. arg[i])
end
assert(#ports > 0, "no ports")

local sadd = os.getenv("LUARAFT_WRITER_OP") == "sadd"
local out = assert(io.open(out_path, "a"))
local conns = {}

-- A reply, or nil and why: a node that stopped, or one that is stopped (SIGSTOP), must not
-- hold the load for longer than a read timeout.
local function call(port, k)
    local c = conns[port]
    if c == nil then
        local ok, conn = pcall(R.connect, port)
        if not ok then
            return nil, "connect"
        end
        conn.s:settimeout(2)
        conns[port] = conn
        c = conn
    end
    local ok, reply = pcall(function()
        if sadd then
            return c:call("SADD", "s", tostring(k))
        end
        return c:call("SET", "w" .. k, tostring(k))
    end)
    if not ok then
        pcall(c.close, c)
        conns[port] = nil
        return nil, tostring(reply)
    end
    return reply
end

local k = 0
while true do
    k = k + 1
    local port = ports[k % #ports + 1]
    local reply = call(port, k)
    local acked = reply ~= nil and (sadd and reply.t == "int" and reply.v == 1
        or not sadd and reply.t == "status" and reply.v == "OK")
    if acked then
        out:write(string.format("ack %d %.6f\n", k, socket.gettime()))
        out:flush()
    else
        -- Refused (-TRYAGAIN while a transfer or a shutdown is under way) or unknown: not
        -- acknowledged. A short pause keeps a refusing node from spinning the machine.
        socket.sleep(0.002)
    end
end
