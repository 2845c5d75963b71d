-- Peer links (src/peer/transport.c) through luaraft.transport: real TCP on loopback, with every
-- transport on the module's one loop. Proves that each message type and node-level frames
-- arrive field for field and in order, that big APPENDs and snapshot files get through, that
-- a restarted peer is reconnected, and that strangers and garbage are refused while real
-- peers carry on. Each test closes every transport and checks that no handle is left open.
package.path = "spec/transport/?.lua;" .. package.path
local transport = require("luaraft.transport")
local S = require("support")

local function u64() return math.random(0, 1 << 40) end

local function msg_of(e)
  local m = {}
  for k, v in pairs(e) do m[k] = v end
  m.event = nil
  return m
end

local function all_types(from, to)
  return {
    {type = "APPEND", from = from, to = to, term = u64(), prev_index = u64(), prev_term = u64(),
     commit = u64(), entries = {{term = 1, type = "NORMAL", data = "set x 1"},
                                {term = 2, type = "NOOP", data = ""},
                                {term = 3, type = "CONFIG", data = "\0\1\2"}}},
    {type = "APPEND", from = from, to = to, term = 1, prev_index = 0, prev_term = 0, commit = 0,
     entries = {}},
    {type = "APPEND_RESP", from = from, to = to, term = u64(), success = true, index = u64(),
     conflict_term = u64(), conflict_index = u64()},
    {type = "VOTE", from = from, to = to, term = u64(), prevote = true, transfer = false,
     last_index = u64(), last_term = u64()},
    {type = "VOTE_RESP", from = from, to = to, term = u64(), prevote = false, granted = true},
    {type = "HEARTBEAT", from = from, to = to, term = u64(), commit = u64(), read_seq = u64()},
    {type = "HEARTBEAT_RESP", from = from, to = to, term = u64(), read_seq = u64()},
    {type = "TIMEOUT_NOW", from = from, to = to, term = u64()},
    {type = "READ_INDEX", from = from, to = to, term = u64(), id = u64()},
    {type = "READ_INDEX_RESP", from = from, to = to, term = u64(), id = u64(), index = u64()},
  }
end

describe("transport", function()
  it("carries every message type both ways, field for field", function()
    local ts = S.cluster(2)
    S.wait_connected(ts)
    for i = 1, 2 do
      local j = 3 - i
      local sent = all_types(i, j)
      for _, m in ipairs(sent) do assert(ts[i]:send(m)) end
      local got = S.receive(ts[j], #sent)
      assert.equals(#sent, #got)
      for k, m in ipairs(sent) do
        assert.equals("recv", got[k].event)
        assert.same(m, msg_of(got[k]))
      end
    end
    assert.equals("127.0.0.1:7002", ts[1]:client_addr(2))
    assert.equals("127.0.0.1:7001", ts[2]:client_addr(1))
    S.close_all(ts)
  end)

  it("keeps order within each lane across many messages from two senders", function()
    local ts = S.cluster(3)
    S.wait_connected(ts)
    local n = 5000
    for k = 1, n do
      assert(ts[1]:send{type = "HEARTBEAT", to = 3, term = 1, commit = k, read_seq = 0})
      assert(ts[2]:send{type = "HEARTBEAT_RESP", to = 3, term = 1, read_seq = k})
      if k % 1000 == 0 then
        assert(ts[1]:send_frame(3, transport.NODE_FRAME_MIN, "forward " .. k))
      end
    end
    local got = S.receive(ts[3], 2 * n + 5)
    assert.equals(2 * n + 5, #got)
    -- Heartbeats (control lane) and node frames (bulk lane) each keep their order; a frame
    -- may overtake heartbeats sent before it or fall behind ones sent after it.
    local next1, next2, frames = 1, 1, 0
    for _, e in ipairs(got) do
      if e.event == "frame" then
        frames = frames + 1
        assert.same({event = "frame", from = 1, frame_type = 100,
                     body = "forward " .. frames * 1000}, e)
      elseif e.from == 1 then
        assert.equals(next1, e.commit)
        next1 = next1 + 1
      else
        assert.equals(next2, e.read_seq)
        next2 = next2 + 1
      end
    end
    assert.equals(n + 1, next1)
    assert.equals(n + 1, next2)
    assert.equals(5, frames)
    S.close_all(ts)
  end)

  it("delivers a big APPEND and refuses one above the frame limit", function()
    local ts = S.cluster(2)
    S.wait_connected(ts)
    local entries = {}
    for k = 1, 64 do entries[k] = {term = k, type = "NORMAL", data = string.rep(string.char(k), 256 * 1024)} end
    assert(ts[1]:send{type = "APPEND", to = 2, term = 9, entries = entries})
    local got = S.receive(ts[2], 1, 10000)
    assert.equals(1, #got)
    assert.equals(64, #got[1].entries)
    for k = 1, 64 do assert.equals(entries[k].data, got[1].entries[k].data) end
    local huge = {{term = 1, data = string.rep("x", 64 * 1024 * 1024)}}
    assert.same({nil, "invalid argument"}, {ts[1]:send{type = "APPEND", to = 2, entries = huge}})
    assert.same({nil, "invalid argument"}, {ts[1]:send{type = "VOTE", to = 7}})
    S.close_all(ts)
  end)

  it("bounds the send queue and says ENOTCONN for a peer that is down", function()
    local ts = S.cluster(2, {send_queue_bytes_max = 1024 * 1024})
    S.wait_connected(ts)
    local big = {{term = 1, data = string.rep("y", 300 * 1024)}}
    local refused = 0
    for k = 1, 10 do
      -- Distinct ranges: an APPEND whose entries are still queued is not queued again.
      local ok, err = ts[1]:send{type = "APPEND", to = 2, term = 1, prev_index = k, entries = big}
      if not ok then
        assert.equals("send queue full", err)
        refused = refused + 1
      end
    end
    assert.is_true(refused > 0)
    S.receive(ts[2], 10 - refused)
    ts[2]:close()
    local deadline = os.time() + 5
    while ts[1]:connected(2) and os.time() <= deadline do ts[1]:run(10) end
    assert.same({nil, "not connected to that peer"},
                {ts[1]:send{type = "VOTE", to = 2, term = 1}})
    S.close_all({ts[1]})
  end)

  it("reconnects after a peer is closed and restarted", function()
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    ts[2]:close()
    local deadline = os.time() + 5
    local events = {}
    repeat
      for _, e in ipairs(ts[1]:run(10)) do events[#events + 1] = e end
    until not ts[1]:connected(2) or os.time() > deadline
    assert.is_false(ts[1]:connected(2))
    local downs = 0
    for _, e in ipairs(events) do
      if e.event == "peer" and e.id == 2 and not e.up then downs = downs + 1 end
    end
    assert.is_true(downs >= 1)
    ts[1]:run(200) -- a few failed attempts, with backoff
    ts[2] = assert(transport.start(opts[2]))
    S.wait_connected(ts)
    assert(ts[1]:send{type = "TIMEOUT_NOW", to = 2, term = 5})
    local got = S.receive(ts[2], 1)
    assert.equals("TIMEOUT_NOW", got[1].type)
    S.close_all(ts)
  end)

  it("refuses a peer of another cluster and an unknown node id", function()
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    ts[2]:close()
    -- Node 2 comes back speaking for another cluster; node 3 is no peer of node 1.
    local o2 = {}
    for k, v in pairs(opts[2]) do o2[k] = v end
    o2.cluster_id = "other"
    local stranger = assert(transport.start(o2))
    local t3 = S.start{self = 3, cluster_id = "test", dir = opts[2].dir,
                       peers = {{id = 1, host = "127.0.0.1", port = opts[1].listen_port}}}
    local deadline = os.time() + 2
    while not (stranger:connected(1) and t3:connected(1)) and os.time() <= deadline do
      ts[1]:run(10)
    end
    stranger:send{type = "VOTE", to = 1, term = 1} -- may already be refused
    t3:send{type = "VOTE", to = 1, term = 1}
    local got = S.receive(ts[1], 1, 1000)
    assert.same({}, got)
    stranger:close()
    t3:close()
    S.close_all({ts[1]})
  end)

  it("closes a connection that sends garbage and keeps serving real peers", function()
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    local p = opts[1].listen_port
    transport.raw_send(p, "GET / HTTP/1.0\r\n\r\n")
    transport.raw_send(p, string.pack(">I4BBI2I4I4", 0x4c524654, 1, 64, 0, 0xFFFFFFFF, 0))
    transport.raw_send(p, string.rep("\0", 100))
    local valid_then_garbage = string.pack(">I4BBI2I4I4", 0x4c524654, 1, 1, 0, 3, 0) .. "abc"
    transport.raw_send(p, valid_then_garbage)
    ts[1]:run(200)
    assert(ts[2]:send{type = "VOTE", to = 1, term = 3})
    local got = S.receive(ts[1], 1)
    assert.equals("VOTE", got[1].type)
    assert.is_true(ts[2]:connected(1))
    S.close_all(ts)
  end)

  it("streams a snapshot file that arrives verified, then its SNAPSHOT message", function()
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    local parts = {}
    for k = 1, 9 * 1024 + 7 do parts[k] = string.format("%07d-", k) .. string.rep("s", 1016) end
    local bytes = S.snapfile_bytes(table.concat(parts)) -- a little over 9 MiB: 10 chunks, paced
    local path = opts[1].dir .. "/snap-40-3.lrs"
    S.write_file(path, bytes)
    local m = {type = "SNAPSHOT", to = 2, term = 3, index = 40, snapshot_term = 3}
    assert(ts[1]:send_snapshot(m, path))
    assert(ts[1]:send_snapshot(m, path)) -- same index: the running stream goes on
    assert(ts[1]:send{type = "HEARTBEAT", to = 2, term = 3, commit = 40, read_seq = 1})
    local got = S.receive(ts[2], 2, 10000)
    assert.equals(2, #got)
    local snap = got[1].event == "snapshot" and got[1] or got[2]
    assert.equals("snapshot", snap.event)
    assert.equals(40, snap.index)
    assert.equals(3, snap.snapshot_term)
    assert.equals(1, snap.from)
    assert.equals(bytes, S.read_file(snap.path))
    os.remove(snap.path)
    -- A corrupt file is sent but does not verify: nothing is delivered, nothing is left.
    S.write_file(path, bytes:sub(1, -2) .. "X")
    assert(ts[1]:send_snapshot({type = "SNAPSHOT", to = 2, term = 3, index = 41,
                                snapshot_term = 3}, path))
    assert.same({}, S.receive(ts[2], 1, 1000))
    local left = io.popen("ls " .. opts[2].dir):read("a")
    assert.equals("", left)
    assert.same({nil, "cannot read the snapshot file"},
                {ts[1]:send_snapshot({type = "SNAPSHOT", to = 2, index = 42}, "/nonexistent")})
    S.close_all(ts)
    S.rmdir(opts[1].dir)
    S.rmdir(opts[2].dir)
  end)
end)
