-- Helpers for the transport specs: transports on free loopback ports in one process (they
-- share the module's loop), temporary directories, and snapshot files in the snapfile
-- format (body, then "LRSNAP01", body length u64, CRC-32C of the body u32, big-endian).
local transport = require("luaraft.transport")
local codec = require("luaraft.codec")
local assert = require("luassert")

local M = {}

local next_port = nil

-- A port to try: sequential from a random base, so two runs rarely collide.
local function port()
  if next_port == nil then
    math.randomseed(os.time() ~ tonumber(tostring({}):match("0x(%x+)") or "0", 16))
    next_port = math.random(20000, 50000)
  end
  next_port = next_port + 1
  return next_port
end

local dirs = {}

-- A fresh directory, removed by the next close_all().
function M.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -p " .. path))
  dirs[#dirs + 1] = path
  return path
end

function M.rmdir(path)
  assert(path:match("^/tmp/"))
  os.execute("rm -rf " .. path)
end

-- Starts a transport on a free port: opts as transport.start, without listen_port.
function M.start(opts)
  for _ = 1, 50 do
    opts.listen_port = opts.listen_port or port()
    local t, err, code = transport.start(opts)
    if t then return t, opts.listen_port end
    assert(code == transport.ELISTEN, err)
    opts.listen_port = nil
  end
  error("no free port")
end

-- n transports that all know each other, on fresh ports; returns them and their options.
-- A port already taken (ELISTEN) makes it start over on other ports.
function M.cluster(n, extra)
  local dirs = {}
  for i = 1, n do dirs[i] = M.tmpdir() end
  for _ = 1, 20 do
    local ports = {}
    for i = 1, n do ports[i] = port() end
    local ts, opts = {}, {}
    for i = 1, n do
      local peers = {}
      for j = 1, n do
        if j ~= i then peers[#peers + 1] = {id = j, host = "127.0.0.1", port = ports[j]} end
      end
      opts[i] = {self = i, listen_port = ports[i], cluster_id = "test", dir = dirs[i],
                 client_addr = "127.0.0.1:" .. (7000 + i), peers = peers,
                 reconnect_ms_min = 10, reconnect_ms_max = 100}
      for k, v in pairs(extra or {}) do opts[i][k] = v end
      local t, err, code = transport.start(opts[i])
      if not t then
        assert(code == transport.ELISTEN, err)
        for _, started in ipairs(ts) do started:close() end
        ts = nil
        break
      end
      ts[i] = t
    end
    if ts then return ts, opts end
  end
  error("no free ports")
end

-- Runs the loop until every transport has an outgoing connection to every other one.
function M.wait_connected(ts, ms)
  local deadline = os.time() + math.ceil((ms or 5000) / 1000) + 1
  while true do
    local all = true
    for i, t in ipairs(ts) do
      for j = 1, #ts do
        if j ~= i and not t:connected(j) then all = false end
      end
    end
    if all then return true end
    assert(os.time() <= deadline, "transports did not connect")
    ts[1]:run(10)
  end
end

-- Runs t until it holds n messages (recv, snapshot and frame events), or ms pass; returns
-- them (peer events filtered out).
function M.receive(t, n, ms)
  local got = {}
  local deadline = os.time() + math.ceil((ms or 5000) / 1000) + 1
  while #got < n and os.time() <= deadline do
    for _, e in ipairs(t:run_until(n - #got, 100)) do
      if e.event ~= "peer" then got[#got + 1] = e end
    end
  end
  return got
end

-- Closes the transports, checks that no handle is left on the loop, removes the
-- directories made since the last call.
function M.close_all(ts)
  for _, t in ipairs(ts) do t:close() end
  assert.equals(0, transport.loop_handles())
  for _, d in ipairs(dirs) do M.rmdir(d) end
  dirs = {}
end

-- Runs the module's loop (through t) until pred() returns a true value or ms pass;
-- returns that value (or nil). t's messages meanwhile (recv, snapshot and frame events) go
-- into M.seen[t], so that a spec can tell what was delivered while it waited.
M.seen = setmetatable({}, {__mode = "k"})
function M.run_until(t, pred, ms)
  local deadline = os.time() + math.ceil((ms or 5000) / 1000) + 1
  local seen = M.seen[t] or {}
  M.seen[t] = seen
  local v = pred()
  while not v and os.time() <= deadline do
    for _, e in ipairs(t:run(10)) do
      if e.event ~= "peer" then seen[#seen + 1] = e end
    end
    v = pred()
  end
  return v
end

-- The frames in bytes, decoded one after the other (a partial last one left out).
function M.frames(bytes)
  local out, pos = {}, 1
  while pos <= #bytes do
    local f, n = transport.wire_decode(bytes:sub(pos))
    if f == nil then break end
    out[#out + 1] = f
    pos = pos + n
  end
  return out
end

-- A raw connection to port (transport.raw_open) once the acceptor's challenge is in, run
-- through t: returns it and the challenge (a decoded CHALLENGE frame).
function M.raw_challenge(t, port)
  local r = transport.raw_open(port)
  local ch = M.run_until(t, function() return M.frames(r:received())[1] end, 2000)
  assert(ch and ch.type == "CHALLENGE", "no challenge")
  return r, ch
end

-- What the acceptor made of r's handshake, run through t: its frame after the challenge
-- (ACCEPTED, REFUSED), and whether it closed the connection ("closed"), once either
-- happened or ms passed.
function M.verdict(t, r, ms)
  M.run_until(t, function() return M.frames(r:received())[2] or r:state() == "closed" end, ms)
  if M.frames(r:received())[2] then
    -- A refusal closes the connection: wait for that too.
    M.run_until(t, function()
      return M.frames(r:received())[2].type ~= "REFUSED" or r:state() == "closed"
    end, ms)
  end
  return M.frames(r:received())[2], r:state()
end

function M.snapfile_bytes(body)
  return body .. "LRSNAP01" .. string.pack(">I8I4", #body, codec.crc32c(body))
end

function M.write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return M
