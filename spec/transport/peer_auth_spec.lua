-- Peer authentication in the transport (src/peer/conn_auth.c, link.c, peer_auth.c): with a
-- peer secret, a connection is taken only after the dialer's handshake answers this
-- connection's challenge with an HMAC under the secret. Real transports on loopback, and
-- raw connections (transport.raw_open) that forge the opening exchange by hand.
--
-- What it catches: frames taken from a dialer with a wrong secret, with none, from one
-- replaying a handshake recorded on an earlier connection, from one that sends its
-- handshake before the challenge, or with a proof made for another node; either lane
-- skipping the check; a node without a secret taking a proof (or one with a secret taking
-- a handshake without); a refusal that does not say why. Each raw forger is checked
-- against a positive control: the same forger with the right secret gets through, so a
-- refusal is the proof's doing, not a broken forger's.
-- What it cannot catch: anything after the handshake. Frames carry no MAC and are not
-- encrypted, so whoever sits on the network path can read them or inject into an
-- established TCP stream (TLS would be needed); nor whether the comparison takes constant
-- time (crypto_auth_verify is libsodium's).
package.path = "spec/transport/?.lua;" .. package.path
local transport = require("luaraft.transport")
local S = require("support")

local SECRET = "0123456789abcdef0123456789abcdef-the-cluster's-secret"
local OTHER = "fedcba9876543210fedcba9876543210-another-secret"

-- A handshake from node `from` answering challenge ch, with a proof under secret (none when
-- secret is nil) made for acceptor (ch.node_id unless given).
local function handshake(ch, from, secret, opts)
  opts = opts or {}
  local hs = {type = "HANDSHAKE", node_id = from, cluster_id = "test", bulk = opts.bulk,
              client_addr = opts.client_addr or "127.0.0.1:7777", answer = opts.answer or ch.nonce}
  if secret then
    local fields = {acceptor_id = opts.acceptor or ch.node_id, secret = secret}
    for k, v in pairs(hs) do fields[k] = v end
    hs.proof = transport.peer_proof(fields)
  end
  return transport.wire_encode(hs)
end

-- Frames a member sends after its handshake: a node frame (a forwarded write), a raft
-- message, and the first chunk of a snapshot (which opens a file in the receiver's dir).
local function member_frames(from, to)
  return transport.wire_encode{type = "NODE", frame_type = transport.NODE_FRAME_MIN,
                               body = "forwarded"} ..
         require("luaraft.codec").wire_encode{type = "TIMEOUT_NOW", from = from, to = to, term = 9} ..
         transport.wire_encode{type = "CHUNK", index = 7, snapshot_term = 1, offset = 0,
                               last = false, data = string.rep("s", 1000)}
end

-- The incoming snapshot files in dir (snapshot_recv.c names them incoming-*.part). A file
-- is dropped when the connection that writes it closes, so only a connection still open
-- shows one: the positive control's, whose chunk was taken.
local function part_files(dir)
  local p = io.popen("ls " .. dir .. " | grep -c '^incoming-.*\\.part$'")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- The messages t got while the forgers waited (S.run_until) and in ms more, peer events
-- left out; forgets them.
local function delivered(t, ms)
  local got = S.seen[t] or {}
  S.seen[t] = nil
  for _, e in ipairs(t:run(ms)) do
    if e.event ~= "peer" then got[#got + 1] = e end
  end
  return got
end

-- That t refused a forger: a REFUSED verdict whose reason matches pattern, the connection
-- closed, and nothing delivered.
local function assert_refused(t, verdict, state, pattern)
  assert.equals("REFUSED", verdict and verdict.type)
  assert.truthy(verdict.reason:find(pattern), verdict.reason)
  assert.equals("closed", state)
  assert.same({}, delivered(t, 200))
end

-- Forges a connection to ts[1] as node 2 with hs_of(challenge), followed by member frames;
-- returns the verdict frame, the connection's state once ts[1] has judged it, the
-- challenge and the incoming snapshot files then.
local function forge(ts, opts, hs_of)
  local r, ch = S.raw_challenge(ts[1], opts[1].listen_port)
  r:write(hs_of(ch) .. member_frames(2, 1))
  local verdict, state = S.verdict(ts[1], r)
  local parts = part_files(opts[1].dir) -- before the close, which drops a file being written
  r:close()
  return verdict, state, ch, parts
end

describe("peer authentication", function()
  it("with the same secret on both sides, frames flow on both lanes", function()
    local ts = S.cluster(2, {secret = SECRET})
    S.wait_connected(ts)
    assert(ts[2]:send{type = "VOTE", to = 1, term = 3, last_index = 4, last_term = 2})
    assert(ts[2]:send{type = "APPEND", to = 1, term = 3, entries = {{term = 3, data = "x"}}})
    assert(ts[2]:send_frame(1, transport.NODE_FRAME_MIN, "on the bulk lane"))
    local got = S.receive(ts[1], 3)
    table.sort(got, function(a, b) return (a.type or a.event) < (b.type or b.event) end)
    assert.same({"APPEND", "VOTE", "frame"}, {got[1].type, got[2].type, got[3].event})
    assert.equals("127.0.0.1:7002", ts[1]:client_addr(2))
    S.close_all(ts)
  end)

  it("refuses a dialer with another secret, or with none, on both lanes", function()
    for _, case in ipairs{{OTHER, "the two nodes' peer secrets %(%-%-peer%-secret%-file%) differ"},
                          {nil, "the connecting node has no %-%-peer%-secret%-file and the " ..
                                "accepting node has one"}} do
      local ts, opts = S.cluster(2, {secret = SECRET})
      S.wait_connected(ts)
      for _, bulk in ipairs{false, true} do
        local verdict, state = forge(ts, opts, function(ch)
          return handshake(ch, 2, case[1], {bulk = bulk})
        end)
        assert_refused(ts[1], verdict, state, case[2])
      end
      -- Positive control: the same forger with the cluster's secret gets through, and its
      -- frames are delivered.
      local verdict, state, _, parts = forge(ts, opts, function(ch)
        return handshake(ch, 2, SECRET)
      end)
      assert.same({type = "ACCEPTED"}, verdict)
      assert.equals("open", state)
      local got = delivered(ts[1], 200)
      assert.equals(2, #got)
      assert.same({"frame", "TIMEOUT_NOW"}, {got[1].event, got[2].type})
      assert.equals(1, parts)
      S.close_all(ts)
    end
  end)

  it("keeps two real transports with different secrets apart, on both lanes", function()
    local ts, opts = S.cluster(2, {secret = SECRET})
    ts[2]:close()
    local o2 = {}
    for k, v in pairs(opts[2]) do o2[k] = v end
    o2.secret = OTHER
    ts[2] = assert(transport.start(o2))
    -- Both dial each other over both lanes; none gets past the other's check.
    ts[1]:run(1000)
    assert.is_false(ts[1]:connected(2))
    assert.is_false(ts[2]:connected(1))
    assert.same({nil, "not connected to that peer"},
                {ts[2]:send{type = "APPEND", to = 1, term = 1, entries = {{term = 1, data = "x"}}}})
    assert.same({nil, "not connected to that peer"},
                {ts[2]:send_frame(1, transport.NODE_FRAME_MIN, "x")})
    assert.same({}, delivered(ts[1], 100))
    assert.same({}, delivered(ts[2], 100))
    S.close_all(ts)
  end)

  it("refuses a proof from a node without a secret", function()
    local ts, opts = S.cluster(2)
    S.wait_connected(ts)
    local verdict, state, ch = forge(ts, opts, function(ch) return handshake(ch, 2, SECRET) end)
    assert.is_false(ch.required)
    assert_refused(ts[1], verdict, state, "the connecting node has a %-%-peer%-secret%-file " ..
                                          "and the accepting node has none")
    S.close_all(ts)
  end)

  it("refuses a handshake replayed from an earlier connection", function()
    local ts, opts = S.cluster(2, {secret = SECRET})
    S.wait_connected(ts)
    local r1, ch1 = S.raw_challenge(ts[1], opts[1].listen_port)
    local recorded = handshake(ch1, 2, SECRET)
    r1:write(recorded)
    assert.same({type = "ACCEPTED"}, (S.verdict(ts[1], r1)))
    r1:close()
    -- The challenge is fresh each time: the recording answers the first one only.
    local r2, ch2 = S.raw_challenge(ts[1], opts[1].listen_port)
    assert.is_true(ch2.required)
    assert.are_not.equals(ch1.nonce, ch2.nonce)
    r2:write(recorded .. member_frames(2, 1))
    local verdict, state = S.verdict(ts[1], r2)
    r2:close()
    assert_refused(ts[1], verdict, state, "answers another challenge")
    S.close_all(ts)
  end)

  it("refuses a handshake sent before the challenge, and any frame before a handshake", function()
    local ts, opts = S.cluster(2, {secret = SECRET})
    S.wait_connected(ts)
    -- Written as soon as the connection opens, before the challenge can have been read: the
    -- forger's best guess is a challenge of zeros.
    local r = transport.raw_open(opts[1].listen_port)
    r:write(handshake({node_id = 1, nonce = string.rep("\0", 32)}, 2, SECRET) .. member_frames(2, 1))
    local verdict, state = S.verdict(ts[1], r)
    r:close()
    assert_refused(ts[1], verdict, state, "answers another challenge")
    -- A member's frame in place of the handshake: closed at its header, without a verdict.
    local r3 = transport.raw_open(opts[1].listen_port)
    r3:write(member_frames(2, 1))
    assert.is_true(S.run_until(ts[1], function() return r3:state() == "closed" end, 2000))
    assert.equals(1, #S.frames(r3:received())) -- the challenge, nothing else
    r3:close()
    assert.same({}, delivered(ts[1], 200))
    S.close_all(ts)
  end)

  it("refuses a proof made for another node (a challenge relayed to a third node)", function()
    local ts, opts = S.cluster(2, {secret = SECRET})
    S.wait_connected(ts)
    local verdict, state = forge(ts, opts, function(ch)
      return handshake(ch, 2, SECRET, {acceptor = 3})
    end)
    assert_refused(ts[1], verdict, state, "does not verify")
    -- The client address is covered too: one changed after the proof was made is refused.
    verdict, state = forge(ts, opts, function(ch)
      local bytes = handshake(ch, 2, SECRET, {client_addr = "127.0.0.1:7777"})
      local hs = transport.wire_decode(bytes)
      hs.client_addr = "6.6.6.6:666"
      return transport.wire_encode(hs)
    end)
    assert_refused(ts[1], verdict, state, "does not verify")
    assert.equals("127.0.0.1:7002", ts[1]:client_addr(2))
    S.close_all(ts)
  end)
end)
