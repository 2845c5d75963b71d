-- The client port (src/client/server.c) as a real process: server_test puts a toy node
-- behind it (PING, ECHO, SLOW ms x, COUNT), and these specs talk to it with redis-cli and
-- with raw bytes over bash's /dev/tcp (nc is not part of the toolset), checking replies byte
-- for byte. Each spec starts its own server by PID, waits for its "ready" line, and stops it
-- with SIGTERM, which must end in exit status 0 (every handle closed, the loop closed clean).
-- A missing tool fails the spec: nothing here skips.

local source = debug.getinfo(1, "S").source
local root = source:sub(2):match("^(.*)/spec/server/[^/]*$") or "."
local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
  build = root .. "/build"
end
local BIN = build .. "/server_test"

-- The longest any one shell step may take, in seconds: a deadline against hangs, never a
-- way to wait for something to happen.
local STEP_SECONDS_MAX = 20

local function sh(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  local ok, how, code = f:close()
  return out, ok, how, code
end

local function require_tool(name)
  local out = sh("command -v " .. name)
  assert(out ~= "", name .. " is needed by this spec and is not installed")
end

-- Starts server_test on a random free port (a port taken by someone else makes it exit
-- before "ready", and another is tried). extra: more arguments (clients_max, ...).
local function start(extra)
  local f = io.open(BIN, "r")
  assert(f, BIN .. " is missing: build the server_test target (LUARAFT_BUILD_DIR=" .. build .. ")")
  f:close()
  for _ = 1, 20 do
    local port = math.random(20000, 60000)
    -- In the sanitizer build the server checks for leaks at exit (ctest turns that off for
    -- busted's own process tree, where lua5.4 is not instrumented).
    local p = assert(io.popen(string.format(
      "sh -c 'echo $$; ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1\" "
        .. "exec %s %d %s 2>&1'", BIN, port, extra or "")))
    local pid = tonumber(p:read("l"))
    local line = p:read("l")
    if line == "ready" then
      local srv = {pid = pid, port = port, pipe = p, running = true}
      -- Stops it with SIGTERM and checks that it exits 0; returns what it printed.
      function srv.stop()
        assert(srv.running, "server already stopped")
        srv.running = false
        os.execute("kill -TERM " .. srv.pid)
        local rest = srv.pipe:read("a")
        local ok, how, code = srv.pipe:close()
        assert.is_true(ok, string.format("server_test ended by %s %s: %s", how, code, rest))
        assert.equals(0, code)
        return rest
      end
      -- For finally(): a failed spec must not leave the process behind.
      function srv.cleanup()
        if srv.running then
          srv.running = false
          os.execute("kill -KILL " .. srv.pid)
          srv.pipe:close()
        end
      end
      return srv
    end
    p:close()
  end
  error("server_test did not get ready on any of 20 ports")
end

local function cli(srv, args)
  local out = sh(string.format("timeout %d redis-cli -p %d %s 2>&1", STEP_SECONDS_MAX, srv.port,
    args))
  return out
end

-- Sends payload on one connection, then reads exactly nbytes of reply (or, with nbytes nil,
-- everything until the server closes the connection).
local function raw(srv, payload, nbytes)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(payload)
  f:close()
  local reader = nbytes and ("head -c " .. nbytes .. " <&3") or "cat <&3"
  local out = sh(string.format(
    "timeout %d bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && cat %s >&3 && %s'",
    STEP_SECONDS_MAX, srv.port, path, reader))
  os.remove(path)
  return out
end

local function bulk(s)
  return "$" .. #s .. "\r\n" .. s .. "\r\n"
end

local function multibulk(...)
  local parts = {"*" .. select("#", ...) .. "\r\n"}
  for _, a in ipairs{...} do parts[#parts + 1] = bulk(a) end
  return table.concat(parts)
end

describe("server", function()
  setup(function()
    for _, tool in ipairs{"redis-cli", "bash", "timeout", "head", "kill"} do
      require_tool(tool)
    end
  end)

  it("answers redis-cli PING, ECHO and unknown commands, then exits 0 on SIGTERM", function()
    local srv = start()
    finally(srv.cleanup)
    assert.equals("PONG\n", cli(srv, "PING"))
    assert.equals("hello world\n", cli(srv, "ECHO 'hello world'"))
    assert.matches("^ERR unknown command\n", cli(srv, "NOPE"))
    assert.equals("4\n", cli(srv, "COUNT"))
    assert.equals("", srv.stop())
  end)

  it("answers pipelined commands in order even when the node answers out of order", function()
    -- SLOW 200 a is answered by a timer, long after ECHO b: the reply to b must wait.
    local srv = start()
    finally(srv.cleanup)
    local want = bulk("a") .. bulk("b") .. "+PONG\r\n" .. bulk("c")
    local got = raw(srv, multibulk("SLOW", "200", "a") .. multibulk("ECHO", "b")
      .. multibulk("PING") .. multibulk("SLOW", "0", "c"), #want)
    assert.equals(want, got)
    srv.stop()
  end)

  it("takes inline commands, as typed into nc or telnet", function()
    local srv = start()
    finally(srv.cleanup)
    local want = "+PONG\r\n" .. bulk("x y") .. bulk("z")
    assert.equals(want, raw(srv, "PING\r\nECHO \"x y\"\nSLOW 10 z\r\n", #want))
    srv.stop()
  end)

  it("streams a redis-cli --pipe load of 20000 commands through a pending_max of 4", function()
    -- Reading pauses every 4 commands and resumes as they drain: nothing may be lost,
    -- duplicated or stuck.
    local srv = start("0 4")
    finally(srv.cleanup)
    local n = 20000
    local parts = {}
    for i = 1, n do
      parts[i] = (i % 100 == 0) and multibulk("SLOW", "1", "s" .. i) or multibulk("ECHO", "e" .. i)
    end
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(table.concat(parts))
    f:close()
    local out = cli(srv, "--pipe < " .. path)
    os.remove(path)
    assert.matches("errors: 0, replies: " .. n, out, 1, true)
    -- redis-cli --pipe adds one ECHO of its own to know when it is done.
    assert.equals(tostring(n + 2) .. "\n", cli(srv, "COUNT"))
    srv.stop()
  end)

  it("answers a protocol error after the pending replies, closes, and serves others", function()
    local srv = start()
    finally(srv.cleanup)
    local got = raw(srv, multibulk("SLOW", "100", "first") .. "*x\r\nPING\r\n")
    assert.equals(bulk("first") .. "-ERR Protocol error: invalid multibulk length\r\n", got)
    assert.equals("PONG\n", cli(srv, "PING"))
    srv.stop()
  end)

  it("refuses an oversized bulk header before reading the body", function()
    local srv = start()
    finally(srv.cleanup)
    local got = raw(srv, "*2\r\n$4\r\nECHO\r\n$999999999999\r\n")
    assert.equals("-ERR Protocol error: invalid bulk length\r\n", got)
    assert.equals("PONG\n", cli(srv, "PING"))
    srv.stop()
  end)

  it("disconnects a client whose unsent replies pass out_bytes_max", function()
    local srv = start("0 0 1000")
    finally(srv.cleanup)
    local small = bulk(("y"):rep(100))
    assert.equals(small, raw(srv, multibulk("ECHO", ("y"):rep(100)), #small))
    assert.equals("", raw(srv, multibulk("ECHO", ("x"):rep(2000))))
    -- Dropped with a request the node has not answered yet: the answer, whenever it
    -- comes (timer or shutdown), goes nowhere, and nothing leaks (sanitizer build).
    assert.equals("", raw(srv, multibulk("SLOW", "50", "a") .. multibulk("ECHO", ("x"):rep(2000))))
    assert.equals("PONG\n", cli(srv, "PING"))
    srv.stop()
  end)

  it("keeps serving when a client hangs up with requests pending", function()
    local srv = start()
    finally(srv.cleanup)
    assert.equals("", raw(srv, multibulk("SLOW", "50", "a") .. multibulk("PING"), 0))
    assert.equals("", raw(srv, multibulk("SLOW", "60000", "b"), 0))
    assert.equals("PONG\n", cli(srv, "PING"))
    srv.stop()
  end)

  it("answers 100 concurrent redis-cli clients", function()
    -- Each holds its connection for 300 ms (SLOW), so all 100 are open at once.
    local srv = start()
    finally(srv.cleanup)
    local out = sh(string.format(
      "for i in $(seq 1 100); do timeout %d redis-cli -p %d SLOW 300 c$i & done; wait",
      STEP_SECONDS_MAX, srv.port))
    local got = {}
    for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
    table.sort(got)
    local want = {}
    for i = 1, 100 do want[i] = "c" .. i end
    table.sort(want)
    assert.same(want, got)
    assert.equals("101\n", cli(srv, "COUNT"))
    srv.stop()
  end)

  it("refuses a client past clients_max and keeps serving the others", function()
    local srv = start("2")
    finally(srv.cleanup)
    -- Two connections are answered (so both are counted), a third is refused, and the
    -- first two still work.
    local script = table.concat({
      "exec 3<>/dev/tcp/127.0.0.1/%d 4<>/dev/tcp/127.0.0.1/%d",
      "printf 'PING\\r\\n' >&3; head -c 7 <&3",
      "printf 'PING\\r\\n' >&4; head -c 7 <&4",
      "exec 5<>/dev/tcp/127.0.0.1/%d; cat <&5",
      "printf 'PING\\r\\n' >&3; head -c 7 <&3",
    }, "; ")
    local out = sh(string.format("timeout %d bash -c \"" .. script .. "\"", STEP_SECONDS_MAX,
      srv.port, srv.port, srv.port))
    assert.equals("+PONG\r\n+PONG\r\n-ERR max number of clients reached\r\n+PONG\r\n", out)
    srv.stop()
  end)

  it("answers requests still pending at SIGTERM before it exits 0", function()
    local srv = start()
    finally(srv.cleanup)
    local client = assert(io.popen(string.format(
      "timeout %d bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && printf \"SLOW 60000 z\\r\\n\" >&3 "
        .. "&& cat <&3'", STEP_SECONDS_MAX, srv.port)))
    -- Wait until the SLOW command has arrived: COUNT then counts it as well as the polls.
    local polls, arrived = 0, false
    while not arrived do
      polls = polls + 1
      assert(polls < 10000, "SLOW never arrived")
      arrived = tonumber(cli(srv, "COUNT")) == polls + 1
    end
    srv.stop()
    assert.equals("-ERR shutting down\r\n", client:read("a"))
    client:close()
  end)
  describe("the cap on all clients' buffers together", function()
    local socket = require("socket")

    local function connect(srv)
      local c = assert(socket.tcp())
      c:settimeout(STEP_SECONDS_MAX)
      assert(c:connect("127.0.0.1", srv.port))
      return c
    end

    -- HELD's three numbers: held bytes, the largest client's, clients evicted.
    local function held(srv)
      local out = cli(srv, "HELD")
      local h, l, e = out:match("^(%d+) (%d+) (%d+)")
      assert(h, "HELD answered " .. out)
      return tonumber(h), tonumber(l), tonumber(e)
    end

    -- Polls HELD until ok(held, largest, evicted) holds; a deadline, not a wait.
    local function until_held(srv, what, ok)
      local deadline = os.time() + STEP_SECONDS_MAX
      while true do
        local h, l, e = held(srv)
        if ok(h, l, e) then return h, l, e end
        assert(os.time() < deadline, what .. ": HELD stayed at " .. h .. " " .. l .. " " .. e)
      end
    end

    local header = "*2\r\n$4\r\nECHO\r\n$1000000\r\n"

    it("evicts the client holding the most, answers the others, and frees idle buffers",
      function()
        -- Cap 3 MiB. Two clients each hold a partial 1 MB argument (600 KiB read: a 1 MiB
        -- buffer); a third streams 3 MiB, so its buffer passes theirs and the sum passes
        -- the cap: it is the one evicted, with an error, and the first two finish.
        local srv = start("0 0 0 " .. 3 * 1024 * 1024)
        finally(srv.cleanup)
        local part = ("a"):rep(600 * 1024)
        local c1, c2 = connect(srv), connect(srv)
        assert(c1:send(header .. part))
        assert(c2:send(header .. part))
        until_held(srv, "the first two clients' input", function(h) return h >= 2 * 600 * 1024 end)
        local c3 = connect(srv)
        c3:send("*2\r\n$4\r\nECHO\r\n$3000000\r\n" .. ("b"):rep(3000000) .. "\r\n")
        assert.equals("-ERR client evicted: the node's client buffers passed their limit "
          .. "(--client-memory)", c3:receive("*l"))
        assert.is_nil((c3:receive("*l")))
        c3:close()
        local h, _, evicted = held(srv)
        assert.equals(1, evicted)
        assert.is_true(h <= 3 * 1024 * 1024)
        -- The two survivors complete their argument and get it back whole.
        local rest = ("a"):rep(1000000 - #part) .. "\r\n"
        for _, c in ipairs{c1, c2} do
          assert(c:send(rest))
          assert.equals("$1000000", c:receive("*l"))
          assert.equals(part .. rest:sub(1, -3), c:receive("*l"))
        end
        -- Idle again, each keeps at most a small input buffer: the sum falls far below
        -- the 2 MiB the two held.
        until_held(srv, "idle buffers freed", function(hb) return hb < 512 * 1024 end)
        assert(c1:send("PING\r\n"))
        assert.equals("+PONG", c1:receive("*l"))
        c1:close()
        c2:close()
        srv.stop()
      end)

    it("with no cap set, holds every client's partial command", function()
      -- The same two partial arguments and a third 1.5 MB one: nothing is evicted.
      local srv = start()
      finally(srv.cleanup)
      local cs = {}
      for i = 1, 3 do
        cs[i] = connect(srv)
        assert(cs[i]:send(header .. ("a"):rep(600 * 1024)))
      end
      until_held(srv, "three clients' input", function(h) return h >= 3 * 600 * 1024 end)
      local _, _, evicted = held(srv)
      assert.equals(0, evicted)
      for _, c in ipairs(cs) do c:close() end
      srv.stop()
    end)

    it("refuses a bulk above bulk_bytes_max at its header", function()
      local srv = start("0 0 0 0 1000")
      finally(srv.cleanup)
      assert.equals("-ERR Protocol error: invalid bulk length\r\n",
        raw(srv, "*2\r\n$4\r\nECHO\r\n$1001\r\n"))
      local ok = bulk(("z"):rep(1000))
      assert.equals(ok, raw(srv, multibulk("ECHO", ("z"):rep(1000)), #ok))
      srv.stop()
    end)
  end)
end)
