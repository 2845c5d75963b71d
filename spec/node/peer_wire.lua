-- A forger of the peer port for the spec/node specs (loaded with dofile): the frames of
-- src/peer/wire.h written in plain Lua (spec/node loads no C module, so the codec is not
-- at hand), on Debian's luasocket. It speaks two versions of the wire:
--   version 2, before peer authentication: a connection opens with the dialer's handshake;
--   version 3: the acceptor sends a challenge first, and the dialer's handshake answers it
--   with an HMAC-SHA-512-256 (libsodium's crypto_auth) under the cluster's peer secret,
--   computed here with the openssl command, so that a spec can forge a handshake with a
--   wrong secret and, as its positive control, with the right one.
--
--   local W = dofile(".../peer_wire.lua")
--   local c = W.connect(port)            -- raises if nothing listens
--   local ch = c:challenge()             -- version 3: {node_id =, required =, nonce =}
--   c:send(W.handshake{version =, node_id =, cluster_id =, client_addr =, bulk =,
--                      answer = nonce, proof = W.proof(secret, fields)})
--   c:send(W.forward(id, {"SET", "k", "v"}), W.timeout_now(from, to, term))
--   c:verdict()   -- "ACCEPTED", "REFUSED: reason", or "closed" once the node closed it
local socket = require("socket")
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local W = {}

local MAGIC = 0x4c524654
W.HANDSHAKE, W.HANDSHAKE_BULK = 64, 67
W.CHALLENGE, W.ACCEPTED, W.REFUSED = 68, 69, 70
W.FORWARD = 100

-- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as src/util/crc32c.c computes it.
local crc_table = {}
for i = 0, 255 do
    local c = i
    for _ = 1, 8 do
        c = (c & 1) == 1 and (0x82F63B78 ~ (c >> 1)) or (c >> 1)
    end
    crc_table[i] = c
end

local function crc32c(s, crc)
    crc = (crc or 0) ~ 0xFFFFFFFF
    for i = 1, #s do
        crc = crc_table[(crc ~ s:byte(i)) & 0xFF] ~ (crc >> 8)
    end
    return crc ~ 0xFFFFFFFF
end
W.crc32c = crc32c

-- One frame: header (magic, version, type, flags 0, length, CRC-32C of the header's first
-- 12 bytes and the body), then the body.
function W.frame(ftype, body, version)
    local head = string.pack(">I4BBI2I4", MAGIC, version or 3, ftype, 0, #body)
    return head .. string.pack(">I4", crc32c(body, crc32c(head))) .. body
end

local function u16s(s)
    return string.pack(">s2", s)
end

-- The handshake frame. Version 2: node id, cluster id, client address. Version 3 adds the
-- challenge it answers (32 bytes) and a proof (u8 length 0 or 32, then its bytes).
function W.handshake(h)
    local v = h.version or 3
    local body = string.pack(">I8", h.node_id) .. u16s(h.cluster_id) .. u16s(h.client_addr or "")
    if v >= 3 then
        body = body .. assert(h.answer, "answer") .. string.pack(">s1", h.proof or "")
    end
    return W.frame(h.bulk and W.HANDSHAKE_BULK or W.HANDSHAKE, body, v)
end

-- What the proof covers (src/peer/peer_auth.c): a domain string, then every field that
-- says who talks to whom on which connection, in answer to which challenge.
function W.proof_message(f)
    return "luaraft peer handshake v3\0" .. u16s(f.cluster_id) .. string.pack(">I8B", f.node_id,
        f.bulk and 1 or 0) .. string.pack(">I8", f.acceptor_id) .. f.answer .. u16s(f.client_addr or "")
end

local run = S.sh

local function hex(s)
    return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

-- The peer key made of a secret file's bytes: the first 32 bytes of their SHA-512.
function W.key(secret)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(secret)
    f:close()
    local digest = run("openssl dgst -sha512 -binary " .. path)
    os.remove(path)
    assert(#digest == 64, "openssl dgst -sha512")
    return digest:sub(1, 32)
end

-- HMAC-SHA-512-256 of the proof message under the key of secret (crypto_auth).
function W.proof(secret, f)
    local path = os.tmpname()
    local out = assert(io.open(path, "wb"))
    out:write(W.proof_message(f))
    out:close()
    local mac = run("openssl dgst -sha512 -mac HMAC -macopt hexkey:" .. hex(W.key(secret))
        .. " -binary " .. path)
    os.remove(path)
    assert(#mac == 64, "openssl dgst -mac HMAC")
    return mac:sub(1, 32)
end

-- A raft message: from, to, term, then its fields (packed by the caller).
local function message(mtype, from, to, term, fields, version)
    return W.frame(mtype, string.pack(">I8I8I8", from, to, term) .. (fields or ""), version)
end

function W.timeout_now(from, to, term, version)
    return message(8, from, to, term, nil, version)
end

-- A node-level FORWARD frame: u64 id, then the argv blob (u32 argc, per argument u32
-- length and bytes), as src/node/writes.c sends a follower's write to its leader.
function W.forward(id, argv, version)
    local parts = { string.pack(">I8I4", id, #argv) }
    for _, a in ipairs(argv) do
        parts[#parts + 1] = string.pack(">s4", a)
    end
    return W.frame(W.FORWARD, table.concat(parts), version)
end

local Conn = {}
Conn.__index = Conn

function W.connect(port)
    local s = assert(socket.tcp())
    s:settimeout(5)
    assert(s:connect("127.0.0.1", port))
    return setmetatable({ s = s }, Conn)
end

function Conn:send(...)
    self.s:send(table.concat({ ... }))
end

-- The next frame from the node: its type and body, or nil and "closed"/"timeout".
function Conn:read_frame(timeout)
    self.s:settimeout(timeout or 5)
    local head, err = self.s:receive(16)
    if head == nil then
        return nil, err
    end
    local _, _, ftype, _, len = string.unpack(">I4BBI2I4", head)
    local body = ""
    if len > 0 then
        body, err = self.s:receive(len)
        if body == nil then
            return nil, err
        end
    end
    return ftype, body
end

-- Version 3: the acceptor's challenge (node id u64, flags u8, 32 random bytes), or nil.
function Conn:challenge(timeout)
    local ftype, body = self:read_frame(timeout)
    if ftype ~= W.CHALLENGE then
        return nil, body
    end
    local id, flags = string.unpack(">I8B", body)
    return { node_id = id, required = flags & 1 == 1, nonce = body:sub(10, 41) }
end

-- What the node made of the handshake: "ACCEPTED", "REFUSED: reason", or "closed" (it
-- closed the connection without a word) / "timeout" (it said nothing and kept it open).
function Conn:verdict(timeout)
    local ftype, body = self:read_frame(timeout)
    if ftype == W.ACCEPTED then
        return "ACCEPTED"
    elseif ftype == W.REFUSED then
        return "REFUSED: " .. body
    elseif ftype == nil then
        return body
    end
    return "frame " .. ftype
end

-- Reads until the node closes the connection: true, or false if it stays open.
function Conn:wait_closed(timeout)
    self.s:settimeout(timeout or 5)
    while true do
        local _, err, partial = self.s:receive(4096)
        if err == "closed" then
            return true
        elseif err == "timeout" and (partial == nil or partial == "") then
            return false
        end
    end
end

function Conn:close()
    self.s:close()
end

return W
