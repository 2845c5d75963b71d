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

  it("delivers a control message sent after a 48 MiB APPEND before the APPEND", function()
    -- The APPEND goes on the bulk connection, the heartbeat on the control one: the
    -- heartbeat does not wait for the 48 MiB to be written, read and checksummed.
    local ts = S.cluster(2)
    S.wait_connected(ts)
    local big = {{term = 1, type = "NORMAL", data = string.rep("b", 48 * 1024 * 1024)}}
    assert(ts[1]:send{type = "APPEND", to = 2, term = 4, prev_index = 7, entries = big})
    assert(ts[1]:send{type = "HEARTBEAT", to = 2, term = 4, commit = 7, read_seq = 9})
    local got = S.receive(ts[2], 2, 20000)
    assert.equals(2, #got)
    assert.equals("HEARTBEAT", got[1].type)
    assert.equals(9, got[1].read_seq)
    assert.equals("APPEND", got[2].type)
    assert.equals(big[1].data, got[2].entries[1].data)
    local st = ts[1]:stats()
    assert.equals(2, st.control_frames) -- the handshake, the heartbeat
    assert.equals(2, st.bulk_frames)    -- the handshake, the APPEND
    S.close_all(ts)
  end)

  it("never drops a control message for a full bulk queue", function()
    local ts = S.cluster(2, {send_queue_bytes_max = 1024 * 1024})
    S.wait_connected(ts)
    local big = {{term = 1, data = string.rep("q", 300 * 1024)}}
    local sent, full = 0, false
    for k = 1, 20 do
      local ok, err = ts[1]:send{type = "APPEND", to = 2, term = 1, prev_index = k,
                                 entries = big}
      if ok then sent = sent + 1 else
        assert.equals("send queue full", err)
        full = true
      end
      if full then break end
    end
    assert.is_true(full)
    -- The bulk queue is full; the control lane has its own.
    assert(ts[1]:send{type = "VOTE", to = 2, term = 2, prevote = true, last_index = 1,
                      last_term = 1})
    assert(ts[1]:send{type = "HEARTBEAT", to = 2, term = 2, commit = 0, read_seq = 1})
    assert.same({nil, "send queue full"},
                {ts[1]:send_frame(2, transport.NODE_FRAME_MIN, string.rep("f", 1024 * 1024))})
    local got = S.receive(ts[2], sent + 2, 10000)
    assert.equals(sent + 2, #got)
    local types = {}
    for _, e in ipairs(got) do types[e.type] = (types[e.type] or 0) + 1 end
    assert.same({APPEND = sent, VOTE = 1, HEARTBEAT = 1}, types)
    S.close_all(ts)
  end)

  it("does not queue again an APPEND whose entries are still queued", function()
    -- The core sends an APPEND again when it takes the first for lost; while the first
    -- is still queued or being written, a copy would only cost the socket's time.
    local ts = S.cluster(2)
    S.wait_connected(ts)
    local e = {{term = 3, data = string.rep("c", 4 * 1024 * 1024)}}
    local m = {type = "APPEND", to = 2, term = 3, prev_index = 10, prev_term = 3, commit = 9,
               entries = e}
    assert(ts[1]:send(m))
    m.commit = 10 -- a later commit index does not make it another APPEND
    assert(ts[1]:send(m))
    m.prev_index = 11 -- another range does
    assert(ts[1]:send(m))
    local got = S.receive(ts[2], 2, 10000)
    assert.equals(2, #got)
    assert.same({10, 11}, {got[1].prev_index, got[2].prev_index})
    assert.same({}, S.receive(ts[2], 1, 300))
    assert.equals(1, ts[1]:stats().appends_coalesced)
    -- Once written, the same APPEND goes out again: the first may have been lost.
    assert(ts[1]:send(m))
    assert.equals(11, S.receive(ts[2], 1, 10000)[1].prev_index)
    S.close_all(ts)
  end)

  it("sends a node frame built in place, without copying its body", function()
    local ts = S.cluster(2)
    S.wait_connected(ts)
    local body = string.rep("r", 5 * 1024 * 1024 + 3)
    assert(ts[1]:send_frame_buf(2, transport.NODE_FRAME_MIN + 1, body))
    assert.same({nil, "invalid argument"}, {ts[1]:send_frame_buf(2, 7, "x")})
    local got = S.receive(ts[2], 1, 10000)
    assert.same({event = "frame", from = 1, frame_type = 101, body = body}, got[1])
    S.close_all(ts)
  end)

  it("answers a re-sent snapshot it holds verified, without taking the body again", function()
    -- Node 1's first stream got every chunk to node 2, but its SNAPSHOT message was lost
    -- with the connection (played here by a raw connection that speaks for node 1 and
    -- closes after the last chunk). Node 2 keeps the verified file for node 1; when node 1
    -- streams the same snapshot again, node 2 says at the first chunk that it has it, and
    -- node 1 skips to the SNAPSHOT message.
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    local body = {}
    for k = 1, 32 * 1024 do body[k] = string.format("%07d-", k) .. string.rep("h", 1016) end
    local bytes = S.snapfile_bytes(table.concat(body)) -- 32 MiB and a trailer: 33 chunks
    local r, ch = S.raw_challenge(ts[2], opts[2].listen_port)
    local raw = {transport.wire_encode{type = "HANDSHAKE", node_id = 1, cluster_id = "test",
                                       bulk = true, answer = ch.nonce}}
    local chunk = 1024 * 1024
    for off = 0, #bytes - 1, chunk do
      raw[#raw + 1] = transport.wire_encode{type = "CHUNK", index = 50, snapshot_term = 4,
                                            offset = off, last = off + chunk >= #bytes,
                                            data = bytes:sub(off + 1, off + chunk)}
    end
    r:write(table.concat(raw))
    -- Wait until node 2 has written the whole file (it is then checked, then held).
    local deadline = os.time() + 10
    local function part_size()
      local p = io.popen("stat -c %s " .. opts[2].dir .. "/incoming-1-*.part 2>/dev/null")
      local n = tonumber(p:read("a"))
      p:close()
      return n
    end
    while part_size() ~= #bytes and os.time() <= deadline do ts[2]:run(20) end
    assert.equals(#bytes, part_size())
    r:close()
    local path = opts[1].dir .. "/snap-50-4.lrs"
    S.write_file(path, bytes)
    assert(ts[1]:send_snapshot({type = "SNAPSHOT", to = 2, term = 5, index = 50,
                                snapshot_term = 4}, path))
    local got = S.receive(ts[2], 1, 20000)
    assert.equals(1, #got)
    assert.equals("snapshot", got[1].event)
    assert.same({50, 4, 5, 1}, {got[1].index, got[1].snapshot_term, got[1].term, got[1].from})
    assert.is_true(bytes == S.read_file(got[1].path))
    os.remove(got[1].path)
    local st = ts[1]:stats()
    assert.equals(1, st.snapshots_held)
    assert.is_true(st.snapshot_bytes_sent < #bytes, st.snapshot_bytes_sent .. " bytes sent")
    S.close_all(ts)
    S.rmdir(opts[1].dir)
    S.rmdir(opts[2].dir)
  end)

  it("streams a snapshot file that arrives verified, then its SNAPSHOT message", function()
    -- The receiver fsyncs and verifies the file on libuv's threadpool before the callback
    -- (transport.h): what this can check is that the callback comes, with the whole file,
    -- and that a corrupt one never does. That the fsync ran first, and off the loop thread,
    -- no spec from outside can see: only a power cut would tell.
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
