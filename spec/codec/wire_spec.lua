-- The peer wire codec (src/peer/wire.c) through luaraft.codec: every message type survives a
-- round trip; damaged, truncated, oversized or foreign frames are rejected, each by the
-- check meant for it, and random mutations never crash the decoder.
-- LUARAFT_SEED=S replays the random parts with seed S.
local codec = require("luaraft.codec")

local SEED = tonumber(os.getenv("LUARAFT_SEED") or "") or 20261125
local HEADER = codec.wire_header_bytes

local function u64() return math.random(0) end -- all 64 bits random
local function bool() return math.random(0, 1) == 1 end
local function bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(math.random(0, 255)) end
  return table.concat(t)
end

local ENTRY_TYPES = {"NORMAL", "NOOP", "CONFIG"}

local function random_message(type)
  local m = {type = type, from = u64(), to = u64(), term = u64()}
  if type == "APPEND" then
    m.prev_index, m.prev_term, m.commit = u64(), u64(), u64()
    m.entries = {}
    for i = 1, math.random(0, 5) do
      m.entries[i] = {term = u64(), type = ENTRY_TYPES[math.random(3)],
                      data = bytes(math.random(0, 40))}
    end
  elseif type == "APPEND_RESP" then
    m.success, m.index, m.conflict_term, m.conflict_index = bool(), u64(), u64(), u64()
  elseif type == "VOTE" then
    m.prevote, m.transfer, m.last_index, m.last_term = bool(), bool(), u64(), u64()
  elseif type == "VOTE_RESP" then
    m.prevote, m.granted = bool(), bool()
  elseif type == "HEARTBEAT" then
    m.commit, m.read_seq = u64(), u64()
  elseif type == "HEARTBEAT_RESP" then
    m.read_seq = u64()
  elseif type == "SNAPSHOT" then
    m.index, m.snapshot_term = u64(), u64()
  elseif type == "READ_INDEX" then
    m.id = u64()
  elseif type == "READ_INDEX_RESP" then
    m.id, m.index = u64(), u64()
  elseif type == "HANDSHAKE" then
    m = {type = type, node_id = u64(), cluster_id = bytes(math.random(1, 255))}
  end
  return m
end

local TYPES = {"APPEND", "APPEND_RESP", "VOTE", "VOTE_RESP", "HEARTBEAT", "HEARTBEAT_RESP",
               "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX", "READ_INDEX_RESP", "HANDSHAKE"}

-- Builds a frame around a body by hand, so tests can send what our encoder never would. The
-- checksum covers the first 12 header bytes, then the body.
local function frame(body, opts)
  opts = opts or {}
  local head = string.pack(">I4BBI2I4", opts.magic or codec.wire_magic,
                           opts.version or codec.wire_version, opts.type or 1, opts.flags or 0,
                           opts.length or #body)
  return head .. string.pack(">I4", opts.crc or codec.crc32c(body, codec.crc32c(head))) .. body
end

-- The body of an encoded frame, and its type byte.
local function body_of(f) return f:sub(HEADER + 1), f:byte(6) end

describe("wire codec", function()
  it("computes CRC-32C (check value of '123456789')", function()
    assert.equals(0xE3069283, codec.crc32c("123456789"))
    assert.equals(0, codec.crc32c(""))
    assert.equals(codec.crc32c("123456789"), codec.crc32c("6789", codec.crc32c("12345")))
  end)

  it("round-trips every message type with random field values", function()
    math.randomseed(SEED)
    for _ = 1, 200 do
      for _, type in ipairs(TYPES) do
        local m = random_message(type)
        local f = codec.wire_encode(m)
        local got, n = codec.wire_decode(f)
        assert.same(m, got, "seed " .. SEED)
        assert.equals(#f, n)
      end
    end
  end)

  it("decodes frames one after another from a stream", function()
    local a = codec.wire_encode{type = "VOTE", from = 1, to = 2, term = 3}
    local b = codec.wire_encode{type = "HANDSHAKE", node_id = 1, cluster_id = "c"}
    local m, n = codec.wire_decode(a .. b)
    assert.equals("VOTE", m.type)
    assert.equals(#a, n)
    assert.equals("HANDSHAKE", codec.wire_decode((a .. b):sub(n + 1)).type)
  end)

  it("rejects a flipped bit anywhere in a frame", function()
    math.randomseed(SEED)
    local limits = {frame_bytes_max = 1024 * 1024}
    for _, type in ipairs(TYPES) do
      local f = codec.wire_encode(random_message(type))
      for i = 1, #f do
        for bit = 0, 7 do
          local flipped = f:sub(1, i - 1) .. string.char(f:byte(i) ~ (1 << bit)) .. f:sub(i + 1)
          local got, err = codec.wire_decode(flipped, limits)
          if err == "incomplete" then
            -- The length grew: give it the bytes it asks for, and it must still fail.
            local want = string.unpack(">I4", flipped, 9)
            flipped = flipped .. string.rep("\0", want - (#flipped - HEADER))
            got, err = codec.wire_decode(flipped, limits)
          end
          assert.is_nil(got, string.format("%s byte %d bit %d", type, i, bit))
          assert.is_string(err)
        end
      end
    end
  end)

  it("reports every truncation of a frame as incomplete", function()
    math.randomseed(SEED)
    for _, type in ipairs(TYPES) do
      local f = codec.wire_encode(random_message(type))
      for n = 0, #f - 1 do
        local got, err = codec.wire_decode(f:sub(1, n))
        assert.is_nil(got)
        assert.equals("incomplete", err)
      end
    end
  end)

  it("rejects every truncated body, even with a matching length and checksum", function()
    math.randomseed(SEED)
    for _, type in ipairs(TYPES) do
      local m = random_message(type)
      if type == "APPEND" then
        m.entries = {{term = 1, type = "NORMAL", data = "abc"}, {term = 2, data = ""}}
      end
      local body, t = body_of(codec.wire_encode(m))
      for n = 0, #body - 1 do
        local got, err = codec.wire_decode(frame(body:sub(1, n), {type = t}))
        assert.is_nil(got, type .. " body cut to " .. n)
        assert.is_truthy(err == "truncated body" or err == "invalid field value", err)
      end
      local got, err = codec.wire_decode(frame(body .. "x", {type = t}))
      assert.is_nil(got)
      assert.equals("trailing bytes after body", err)
    end
  end)

  it("checks the header before waiting for, or allocating, the body", function()
    local big = string.pack(">I4BBI2I4I4", codec.wire_magic, codec.wire_version, 1, 0,
                            0xFFFFFFFF, 0)
    assert.same({nil, "frame too big"}, {codec.wire_decode(big)})
    local limit = string.pack(">I4BBI2I4I4", codec.wire_magic, codec.wire_version, 1, 0,
                              64 * 1024 * 1024 + 1, 0)
    assert.same({nil, "frame too big"}, {codec.wire_decode(limit)})
    local hs = frame(string.rep("h", 4097), {type = 64})
    assert.same({nil, "frame too big"}, {codec.wire_decode(hs)})
    assert.same({nil, "frame too big"},
                {codec.wire_decode(frame(string.rep("a", 101)), {frame_bytes_max = 100})})
  end)

  it("rejects a foreign magic, an unknown version, type or flags", function()
    local body = codec.wire_encode{type = "TIMEOUT_NOW"}:sub(HEADER + 1)
    assert.same({nil, "bad magic"}, {codec.wire_decode(frame(body, {magic = 0x52454449}))})
    -- Version 1 had one connection per direction (no bulk handshake, no snapshot-have);
    -- version 2 no challenge, proof or verdict (no peer authentication).
    assert.equals(3, codec.wire_version)
    for _, v in ipairs{0, 1, codec.wire_version + 1} do
      assert.same({nil, "unsupported version"}, {codec.wire_decode(frame(body, {version = v}))})
    end
    for _, t in ipairs{0, 11, 63, 71, 99} do
      assert.same({nil, "unknown frame type"}, {codec.wire_decode(frame(body, {type = t}))})
    end
    assert.same({nil, "unknown flags"}, {codec.wire_decode(frame(body, {flags = 1}))})
    assert.same({nil, "checksum mismatch"}, {codec.wire_decode(frame(body, {crc = 1}))})
  end)

  it("bounds the entry count by entries_max and by the bytes left", function()
    local m = {type = "APPEND", entries = {}}
    for i = 1, 5 do m.entries[i] = {term = i, data = "x"} end
    local f = codec.wire_encode(m)
    assert.equals(5, #codec.wire_decode(f, {entries_max = 5}).entries)
    assert.same({nil, "too many entries"}, {codec.wire_decode(f, {entries_max = 4})})
    -- An announced count of 2^32 - 1 with no entries behind it: refused on either bound,
    -- before an array for it is allocated.
    local body = string.pack(">I8I8I8I8I8I8I4", 1, 2, 3, 4, 5, 6, 0xFFFFFFFF)
    assert.same({nil, "too many entries"}, {codec.wire_decode(frame(body))})
    assert.same({nil, "truncated body"},
                {codec.wire_decode(frame(body), {entries_max = 0xFFFFFFFF})})
    -- An entry whose payload length runs past the body.
    local lying = string.pack(">I8I8I8I8I8I8I4I8I4I4", 1, 2, 3, 4, 5, 6, 1, 7, 1, 1000) .. "ab"
    assert.same({nil, "truncated body"}, {codec.wire_decode(frame(lying))})
  end)

  it("rejects field values outside their range", function()
    local vote = string.pack(">I8I8I8BBI8I8", 1, 2, 3, 2, 0, 4, 5)
    assert.same({nil, "invalid field value"}, {codec.wire_decode(frame(vote, {type = 3}))})
    local entry = string.pack(">I8I8I8I8I8I8I4I8I4I4", 1, 2, 3, 4, 5, 6, 1, 7, 9, 0)
    assert.same({nil, "invalid field value"}, {codec.wire_decode(frame(entry))})
    local hs = string.pack(">I8I2", 1, 0)
    assert.same({nil, "invalid field value"}, {codec.wire_decode(frame(hs, {type = 64}))})
  end)

  it("survives random mutations of frames, checksummed or not", function()
    math.randomseed(SEED)
    for round = 1, 3000 do
      local type = TYPES[math.random(#TYPES)]
      local f = codec.wire_encode(random_message(type))
      local body, t = body_of(f)
      for _ = 1, math.random(1, 4) do
        local pos = math.random(1, #body + 1)
        local op = math.random(1, 3)
        if op == 1 then
          body = body:sub(1, pos - 1) .. bytes(math.random(1, 9)) .. body:sub(pos)
        elseif op == 2 then
          body = body:sub(1, pos - 1) .. body:sub(pos + math.random(1, 9))
        else
          body = body:sub(1, pos - 1) .. bytes(1) .. body:sub(pos + 1)
        end
      end
      -- Re-checksummed, so the body decoder itself is exercised, and raw, as sent.
      for _, candidate in ipairs{frame(body, {type = t}), f:sub(1, HEADER) .. body} do
        local ok, got, err = pcall(codec.wire_decode, candidate)
        local where = string.format("seed %d round %d", SEED, round)
        assert.is_true(ok, where)
        if got == nil then
          assert.is_string(err, where)
        else
          -- Anything accepted must encode back to the same bytes (a handshake through
          -- luaraft.transport's helpers, which know all of its fields).
          local again = got.type == "HANDSHAKE"
              and require("luaraft.transport").wire_encode(require("luaraft.transport").wire_decode(candidate))
              or codec.wire_encode(got)
          assert.equals(candidate:sub(1, err), again, where)
        end
      end
    end
  end)
end)

-- The frames luaraft.codec does not know yet (the handshake's client address, lane, answer
-- and proof, the acceptor's challenge and verdicts, snapshot chunks and snapshot-haves,
-- node-level frames), through luaraft.transport's wire helpers.
describe("wire codec, transport frames", function()
  local transport = require("luaraft.transport")
  local function random_frame(kind)
    if kind == "HANDSHAKE" then
      local addr = {}
      for i = 1, math.random(0, 40) do addr[i] = string.char(math.random(33, 126)) end
      return {type = kind, node_id = u64(), cluster_id = "c" .. bytes(math.random(0, 200)),
              client_addr = table.concat(addr), bulk = bool(), answer = bytes(32),
              proof = bool() and bytes(32) or nil}
    elseif kind == "CHALLENGE" then
      return {type = kind, node_id = u64(), required = bool(), nonce = bytes(32)}
    elseif kind == "ACCEPTED" then
      return {type = kind}
    elseif kind == "REFUSED" then
      local reason = {}
      for i = 1, math.random(0, 255) do reason[i] = string.char(math.random(32, 126)) end
      return {type = kind, reason = table.concat(reason)}
    elseif kind == "CHUNK" then
      return {type = kind, index = u64(), snapshot_term = u64(), offset = u64(), last = bool(),
              data = bytes(math.random(0, 300))}
    elseif kind == "HAVE" then
      return {type = kind, index = u64(), snapshot_term = u64()}
    end
    return {type = kind, frame_type = math.random(100, 255), body = bytes(math.random(0, 300))}
  end
  local KINDS = {"HANDSHAKE", "CHALLENGE", "ACCEPTED", "REFUSED", "CHUNK", "HAVE", "NODE"}

  it("round-trips handshakes with a client address, chunks and node frames", function()
    math.randomseed(SEED)
    for _ = 1, 300 do
      for _, kind in ipairs(KINDS) do
        local f = random_frame(kind)
        if kind == "HANDSHAKE" then f.cluster_id = f.cluster_id:gsub("%z", "x") end
        local bytes_ = transport.wire_encode(f)
        local got, n = transport.wire_decode(bytes_)
        assert.same(f, got, "seed " .. SEED)
        assert.equals(#bytes_, n)
      end
    end
    -- luaraft.codec's handshakes carry an empty address, answer zeros, have no proof, and
    -- decode the same.
    local old = codec.wire_encode{type = "HANDSHAKE", node_id = 5, cluster_id = "c"}
    assert.same({type = "HANDSHAKE", node_id = 5, cluster_id = "c", client_addr = "",
                 bulk = false, answer = string.rep("\0", 32)}, (transport.wire_decode(old)))
  end)

  it("names the lane by the handshake's type and sizes a snapshot-have exactly", function()
    local hs = {type = "HANDSHAKE", node_id = 7, cluster_id = "c", client_addr = "h:1",
                answer = string.rep("a", 32)}
    hs.bulk = false
    assert.equals(64, transport.wire_encode(hs):byte(6))
    hs.bulk = true
    local bulk = transport.wire_encode(hs)
    assert.equals(67, bulk:byte(6))
    -- The same body as the control handshake's: the type alone tells the lanes apart.
    assert.equals(transport.wire_encode(hs):sub(17), bulk:sub(17))
    assert.same(hs, (transport.wire_decode(bulk)))
    local have = string.pack(">I8I8", 40, 3)
    assert.same({type = "HAVE", index = 40, snapshot_term = 3},
                (transport.wire_decode(frame(have, {type = 66}))))
    assert.same({nil, "truncated body"}, {transport.wire_decode(frame(have:sub(1, 15),
                                                                      {type = 66}))})
    assert.same({nil, "trailing bytes after body"},
                {transport.wire_decode(frame(have .. "x", {type = 66}))})
    -- Unauthenticated-size limits: a snapshot-have is as small as a handshake.
    assert.same({nil, "frame too big"},
                {transport.wire_decode(frame(string.rep("h", 4097), {type = 66}))})
    assert.same({nil, "frame too big"},
                {transport.wire_decode(frame(string.rep("h", 4097), {type = 67}))})
  end)

  it("rejects flipped bits, truncations and bad field values in the new frames", function()
    math.randomseed(SEED)
    for _, kind in ipairs(KINDS) do
      local f = transport.wire_encode(random_frame(kind))
      for i = 1, #f do
        local flipped = f:sub(1, i - 1) .. string.char(f:byte(i) ~ 0x10) .. f:sub(i + 1)
        local got, err = transport.wire_decode(flipped)
        assert.is_nil(got, kind .. " byte " .. i)
        assert.is_string(err)
      end
      for n = 0, #f - 1 do
        assert.same({nil, "incomplete"}, {transport.wire_decode(f:sub(1, n))})
      end
    end
    local hs = string.pack(">I8s2s2", 1, "c", "host port") -- a space in the address
    assert.same({nil, "invalid field value"}, {transport.wire_decode(frame(hs, {type = 64}))})
    hs = string.pack(">I8s2", 1, "c") -- no address length
    assert.same({nil, "truncated body"}, {transport.wire_decode(frame(hs, {type = 64}))})
    -- Version 3's handshake: the answer and a proof of 0 or 32 bytes, nothing else.
    local v3 = string.pack(">I8s2s2", 1, "c", "h:1") .. string.rep("a", 32)
    assert.same({nil, "truncated body"}, {transport.wire_decode(frame(v3, {type = 64}))})
    assert.same({nil, "invalid field value"},
                {transport.wire_decode(frame(v3 .. string.pack(">s1", "short"), {type = 64}))})
    assert.same({nil, "truncated body"},
                {transport.wire_decode(frame(v3 .. "\32" .. string.rep("p", 31), {type = 64}))})
    assert.same({nil, "trailing bytes after body"},
                {transport.wire_decode(frame(v3 .. "\0x", {type = 64}))})
    -- A challenge's flags have one bit; a refusal's reason is printable and short.
    local ch = string.pack(">I8B", 1, 2) .. string.rep("n", 32)
    assert.same({nil, "invalid field value"}, {transport.wire_decode(frame(ch, {type = 68}))})
    assert.same({nil, "truncated body"},
                {transport.wire_decode(frame(ch:sub(1, 40), {type = 68}))})
    assert.same({nil, "invalid field value"},
                {transport.wire_decode(frame("bad\nreason", {type = 70}))})
    assert.same({nil, "invalid field value"},
                {transport.wire_decode(frame(string.rep("r", 256), {type = 70}))})
    assert.same({nil, "trailing bytes after body"},
                {transport.wire_decode(frame("x", {type = 69}))})
    -- The encoder of a refusal writes what the decoder takes, whatever it is given.
    assert.same({type = "REFUSED", reason = "a?b" .. string.rep("r", 252)},
                (transport.wire_decode(transport.wire_encode{type = "REFUSED",
                                                            reason = "a\nb" .. string.rep("r", 300)})))
    local chunk = string.pack(">I8I8I8B", 1, 2, 3, 2) .. "data" -- last must be 0 or 1
    assert.same({nil, "invalid field value"}, {transport.wire_decode(frame(chunk, {type = 65}))})
    assert.same({nil, "truncated body"},
                {transport.wire_decode(frame(chunk:sub(1, 24), {type = 65}))})
  end)

  it("limits chunks by chunk_bytes_max and node frames by frame_bytes_max", function()
    local chunk = transport.wire_encode{type = "CHUNK", index = 1, snapshot_term = 1,
                                        offset = 0, last = true, data = string.rep("d", 100)}
    assert.equals(#chunk, select(2, transport.wire_decode(chunk, {chunk_bytes_max = 125})))
    assert.same({nil, "frame too big"},
                {transport.wire_decode(chunk, {chunk_bytes_max = 124})})
    local big = string.pack(">I4BBI2I4I4", codec.wire_magic, codec.wire_version, 65, 0,
                            4 * 1024 * 1024 + 1, 0)
    assert.same({nil, "frame too big"}, {transport.wire_decode(big)})
    local node = transport.wire_encode{type = "NODE", frame_type = 100, body = "abc"}
    assert.same({nil, "frame too big"}, {transport.wire_decode(node, {frame_bytes_max = 2})})
    assert.same({type = "NODE", frame_type = 100, body = "abc"}, (transport.wire_decode(node)))
  end)
end)
