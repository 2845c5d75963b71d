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
