-- Every length field of every decoder at the values issue 10 names (part 5: 0, 1, max-1,
-- max, max+1, 2^31, 2^63-1 and negative, where the field can hold them), truncation at
-- every byte, and garbage after a valid frame: the RESP request parser (multibulk count,
-- bulk length, the header line, the inline line), the peer wire frame (its length) and
-- the length fields inside its bodies (APPEND's entry count and entry lengths, the
-- handshake's cluster id, client address and proof), the snapshot file (header record
-- length, identity hash and name lengths, trailer length) and luaraft.decode (every
-- string, array and map length form). Each value gets a clean answer: accepted exactly
-- when the format allows it, else an error (or "incomplete" where more bytes could still
-- make it valid), never a crash, never memory taken for a length before it is checked.
-- Fields narrower than 64 bits cannot hold 2^63-1 or a negative number; their maximum
-- (2^32-1, 2^16-1, 2^8-1) takes that place.
local codec = require("luaraft.codec")
local store = require("luaraft.store")
local fsm = require("luaraft.fsm")

local function be(n, width)
    local t = {}
    for i = width, 1, -1 do
        t[i] = string.char(n & 0xff)
        n = n >> 8
    end
    return table.concat(t)
end

local function splice(s, at, width, n) -- s with the width bytes at offset `at` (0-based) set to n
    return s:sub(1, at) .. be(n, width) .. s:sub(at + width + 1)
end

local function values(max, width)
    local top = width == 8 and math.maxinteger or (1 << (8 * width)) - 1
    local out = { 0, 1, max - 1, max, max + 1, top }
    if width >= 4 then out[#out + 1] = 1 << 31 end
    if width == 8 then out[#out + 1] = -1 end -- read as u64: 2^64-1
    local seen, list = {}, {}
    for _, v in ipairs(out) do
        if v >= 0 and v <= top or width == 8 then
            if not seen[v] then seen[v], list[#list + 1] = true, v end
        end
    end
    return list
end

-- ---------------------------------------------------------------------------------
-- RESP
-- ---------------------------------------------------------------------------------
local LIM = { args_max = 8, bulk_bytes_max = 16, inline_bytes_max = 64, line_bytes_max = 32,
    query_bytes_max = 4096 }

local function feed(bytes, limits)
    local p = codec.resp_parser(limits)
    local cmds, err, before = p:feed(bytes)
    p:close()
    return cmds, err, before
end

describe("length fields of the RESP request parser", function()
    local counts = { "0", "1", "7", "8", "9", "2147483648", "9223372036854775807",
        "9223372036854775808", "18446744073709551616", "-1", "-2147483648", "-9223372036854775808" }

    it("multibulk count: 0 and negatives are no command, 1..max a command, above max an error", function()
        for _, v in ipairs(counts) do
            local n = math.tointeger(tonumber(v)) or math.huge
            local body = n > 0 and n <= 9 and ("$1\r\na\r\n"):rep(n) or ""
            local cmds, err = feed("*" .. v .. "\r\n" .. body, LIM)
            if n <= 0 then
                assert.are.same({}, cmds, v) -- Redis skips an empty multibulk too
            elseif n <= LIM.args_max then
                assert.are.equal(n, #cmds[1], v)
            else
                assert.is_nil(cmds, v)
                assert.are.equal("Protocol error: invalid multibulk length", err, v)
            end
            -- with the default limits, the header alone: huge counts refused at once
            cmds, err = feed("*" .. v .. "\r\n")
            if n > 1024 * 1024 then
                assert.are.equal("Protocol error: invalid multibulk length", err, v)
            else
                assert.are.same({}, cmds, v) -- waiting for the arguments
            end
        end
    end)

    it("bulk length: 0..max an argument, negative or above max an error", function()
        for _, v in ipairs({ "0", "1", "15", "16", "17", "2147483648", "9223372036854775807",
            "9223372036854775808", "-1", "-2", "-9223372036854775808" }) do
            local n = math.tointeger(tonumber(v)) or math.huge
            local data = n >= 0 and n <= 17 and ("b"):rep(n) or ""
            local cmds, err = feed("*1\r\n$" .. v .. "\r\n" .. data .. "\r\n", LIM)
            if n >= 0 and n <= LIM.bulk_bytes_max then
                assert.are.same({ { data } }, cmds, v)
            else
                assert.are.equal("Protocol error: invalid bulk length", err, v)
            end
            cmds, err = feed("*1\r\n$" .. v .. "\r\n")
            if n < 0 or n > 512 * 1024 * 1024 then
                assert.are.equal("Protocol error: invalid bulk length", err, v)
            else
                assert.are.same({}, cmds, v)
            end
        end
    end)

    -- A line not yet ended, of max-1, max and max+1 bytes: its length is checked before
    -- its end (and its number) is seen.
    local function line_limit(first, max, message)
        for _, len in ipairs({ max - 1, max, max + 1 }) do
            local cmds, err = feed(first .. ("9"):rep(len - #first), LIM)
            if len > max then
                assert.are.equal(message, err, len)
            else
                assert.are.same({}, cmds, len)
            end
        end
    end

    it("header and inline lines: max-1 and max taken, max+1 refused", function()
        line_limit("*", LIM.line_bytes_max, "Protocol error: too big mbulk count string")
        line_limit("x", LIM.inline_bytes_max, "Protocol error: too big inline request")
    end)

    it("waits at every truncation of a pipeline and then gives exactly its commands", function()
        local frame = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$0\r\n\r\nPING\r\n"
        local want = { { "GET", "k" }, { "" }, { "PING" } }
        for cut = 0, #frame do
            local p = codec.resp_parser(LIM)
            local a = assert(p:feed(frame:sub(1, cut)))
            local b = assert(p:feed(frame:sub(cut + 1)))
            p:close()
            for _, c in ipairs(b) do a[#a + 1] = c end
            assert.are.same(want, a, "cut at " .. cut)
        end
    end)

    it("after a valid frame, takes garbage as the next frame: an inline command or an error", function()
        local ok = "*1\r\n$4\r\nPING\r\n"
        assert.are.same({ { "PING" }, { "GARBAGE" } }, feed(ok .. "GARBAGE\r\n", LIM))
        local cmds, err, before = feed(ok .. "*x\r\n", LIM)
        assert.is_nil(cmds)
        assert.are.equal("Protocol error: invalid multibulk length", err)
        assert.are.same({ { "PING" } }, before)
        cmds, err, before = feed("*1\r\n$1\r\nabc\r\n", LIM) -- more data than the length
        assert.are.equal("Protocol error: expected CRLF after bulk data", err)
        assert.are.same({}, before)
    end)
end)

-- ---------------------------------------------------------------------------------
-- Peer wire
-- ---------------------------------------------------------------------------------
local HEADER = codec.wire_header_bytes

-- The frame with body `body` and header fields from `frame`, the CRC recomputed.
local function seal(frame, body)
    local head = frame:sub(1, 8) .. be(#body, 4)
    return head .. be(codec.crc32c(head .. body), 4) .. body
end

local function body_of(frame)
    return frame:sub(HEADER + 1)
end

-- A frame's body with one field replaced, sealed with its own length and a valid CRC.
local function with_field(frame, at, width, n)
    return seal(frame, splice(body_of(frame), at, width, n))
end

describe("length fields of the peer wire", function()
    local append = codec.wire_encode({ type = "APPEND", from = 1, to = 2, term = 3, prev_index = 4,
        prev_term = 5, commit = 6, entries = { { term = 3, type = "NORMAL", data = "hello" },
            { term = 3, type = "NORMAL", data = "world!" } } })

    it("seals frames the way the encoder does (the helper is right)", function()
        assert.are.equal(append, seal(append, body_of(append)))
        assert.is_table((codec.wire_decode(append)))
    end)

    it("frame length: refused above the limit before the body arrives, else a checksum or incomplete", function()
        local lim = { frame_bytes_max = 1024 }
        local actual = #body_of(append)
        for _, n in ipairs(values(lim.frame_bytes_max, 4)) do
            local head = splice(append:sub(1, HEADER), 8, 4, n)
            local msg, err = codec.wire_decode(head, lim) -- the header alone
            assert.is_nil(msg, n)
            if n > lim.frame_bytes_max then
                assert.are_not.equal("incomplete", err, n) -- no waiting for a body it refuses
            elseif n > 0 then
                assert.are.equal("incomplete", err, n)
            end
            -- the whole original body after it
            msg, err = codec.wire_decode(head .. body_of(append), lim)
            if n == actual then
                assert.is_table(msg, n)
            else
                assert.is_nil(msg, n)
                assert.is_string(err, n)
            end
        end
    end)

    -- Sets the body field at `at` (width bytes, whose true value is actual, and max its
    -- limit) to each value: only the true one decodes (then check(msg) holds), every
    -- other is an error at once, never a wait for bytes that could not make it valid.
    local function only_true(frame, at, width, actual, max, lim, check)
        for _, n in ipairs(values(max, width)) do
            local msg, err = codec.wire_decode(with_field(frame, at, width, n), lim)
            if n == actual then
                assert.is_true(check(msg), at .. ":" .. n)
            else
                assert.is_nil(msg, at .. ":" .. n)
                assert.are_not.equal("incomplete", err, at .. ":" .. n)
            end
        end
        if max ~= actual then -- the true value is not among max's neighbours: try it too
            assert.is_true(check(codec.wire_decode(with_field(frame, at, width, actual), lim)))
        end
    end

    -- body offsets (src/peer/wire.h): from, to, term, prev_index, prev_term, commit (6 x
    -- u64), n_entries u32 at 48; entry 1: term u64, type u32, len u32 at 64
    it("APPEND entry count: only the true count decodes; a huge one is refused by the bytes left", function()
        only_true(append, 48, 4, 2, 4, { entries_max = 4 }, function(msg) return #msg.entries == 2 end)
    end)

    it("APPEND entry length: only the true length decodes", function()
        only_true(append, 64, 4, 5, 5, nil, function(msg) return msg.entries[1].data == "hello" end)
    end)

    it("handshake cluster id, client address and proof lengths: only the true ones decode", function()
        local hs = codec.wire_encode({ type = "HANDSHAKE", node_id = 7, cluster_id = "cluster-a" })
        -- node_id u64, then cluster_id_len u16 at 8, the id, client_addr_len u16, the
        -- address, the 32-byte challenge, proof_len u8
        local addr_at = 8 + 2 + #"cluster-a"
        local addr_len = string.unpack(">I2", body_of(hs), addr_at + 1)
        local proof_at = addr_at + 2 + addr_len + 32
        local proof_len = string.unpack(">I1", body_of(hs), proof_at + 1)
        local function same(msg) return msg ~= nil and msg.cluster_id == "cluster-a" end
        only_true(hs, 8, 2, #"cluster-a", #"cluster-a", nil, same)
        only_true(hs, addr_at, 2, addr_len, addr_len, nil, same)
        only_true(hs, proof_at, 1, proof_len, proof_len, nil, same)
    end)

    it("is incomplete at every truncation and leaves garbage after a valid frame for the next", function()
        for cut = 0, #append - 1 do
            local msg, err = codec.wire_decode(append:sub(1, cut))
            assert.is_nil(msg, cut)
            assert.are.equal("incomplete", err, cut)
        end
        local msg, used = codec.wire_decode(append .. "GARBAGE-GARBAGE-GARBAGE")
        assert.is_table(msg)
        assert.are.equal(#append, used)
        local next_msg, err = codec.wire_decode("GARBAGE-GARBAGE-GARBAGE")
        assert.is_nil(next_msg)
        assert.are_not.equal("incomplete", err) -- a bad magic, at once
    end)
end)

-- ---------------------------------------------------------------------------------
-- Snapshot file
-- ---------------------------------------------------------------------------------
describe("length fields of the snapshot file", function()
    local dir, path, file
    setup(function()
        local p = assert(io.popen("mktemp -d /tmp/luaraft-lengths.XXXXXX"))
        dir = p:read("l")
        p:close()
        path = assert(store.snapfile_write(dir, 10, 2, "the body of the snapshot"))
        local f = assert(io.open(path, "rb"))
        file = f:read("a")
        f:close()
    end)
    teardown(function()
        os.remove(dir .. "/x.lrs")
        os.remove(path)
        os.remove(dir)
    end)

    -- rewrites the file with field (offset in the file) set to n, the trailer resealed
    local function try(at, width, n)
        local bytes = splice(file, at, width, n)
        local front = bytes:sub(1, #bytes - 20)
        bytes = front .. "LRSNAP02" .. be(#front, 8) .. be(codec.crc32c(front), 4)
        local f = assert(io.open(dir .. "/x.lrs", "wb"))
        f:write(bytes)
        f:close()
        return store.snapfile_inspect(dir .. "/x.lrs")
    end

    it("reseals the way the writer does (the helper is right)", function()
        local t = assert(try(0, 8, string.unpack(">I8", file)))
        assert.are.equal(2, t.version)
    end)

    -- header: magic (8), record length u32 at 8, since u64 at 12, hash length u8 at 20,
    -- hash, name length u8, name
    it("header record, hash and name lengths: only the true ones read", function()
        local rec = string.unpack(">I4", file, 9)
        local hash_len = string.unpack(">I1", file, 21)
        local name_at = 21 + hash_len
        local name_len = string.unpack(">I1", file, name_at + 1)
        for _, f in ipairs({ { 8, 4, rec }, { 20, 1, hash_len }, { name_at, 1, name_len } }) do
            for _, n in ipairs(values(f[3], f[2])) do
                local t, code = try(f[1], f[2], n)
                if n == f[3] then
                    assert.is_table(t, f[1] .. ":" .. n)
                else
                    assert.is_nil(t, f[1] .. ":" .. n)
                    assert.are.equal(store.SNAPFILE_ECORRUPT, code, f[1] .. ":" .. n)
                end
            end
        end
    end)

    it("trailer length: every value but the true one refused, 2^63-1 and 2^64-1 too", function()
        local actual = #file - 20
        for _, n in ipairs(values(actual, 8)) do
            local bytes = file:sub(1, actual) .. "LRSNAP02" .. be(n, 8) .. file:sub(-4)
            local f = assert(io.open(dir .. "/x.lrs", "wb"))
            f:write(bytes)
            f:close()
            local t = store.snapfile_inspect(dir .. "/x.lrs")
            assert.are.equal(n == actual, t ~= nil, n)
        end
    end)

    it("refuses the file cut at every byte, and with garbage after the trailer", function()
        for cut = 0, #file - 1 do
            local f = assert(io.open(dir .. "/x.lrs", "wb"))
            f:write(file:sub(1, cut))
            f:close()
            assert.is_nil((store.snapfile_inspect(dir .. "/x.lrs")), cut)
        end
        local f = assert(io.open(dir .. "/x.lrs", "wb"))
        f:write(file .. "GARBAGE")
        f:close()
        assert.is_nil((store.snapfile_inspect(dir .. "/x.lrs")))
    end)
end)

-- ---------------------------------------------------------------------------------
-- luaraft.decode
-- ---------------------------------------------------------------------------------
describe("length fields of luaraft.decode", function()
    local m
    setup(function()
        local path = os.tmpname()
        local f = assert(io.open(path, "w"))
        f:write([[
local M = {}
function M.apply(cmd)
    local ok, v = pcall(luaraft.decode, cmd[2])
    if not ok then return { err = 'REFUSED ' .. tostring(v) } end
    return luaraft.encode(v) == cmd[2] and 'same' or 'different'
end
function M.snapshot(w) end
function M.restore(r) end
return M
]])
        f:close()
        m = assert(fsm.open(path, { instructions_max = 10000000, memory_bytes_max = 256 << 20,
            command_memory_bytes_max = 16 << 20 }))
        os.remove(path)
    end)
    teardown(function() m:close() end)

    local function decode(bytes)
        return fsm.decode(m:apply({ "DECODE", bytes }, { index = 1, term = 1, time_ms = 0, seed = 1 }))
    end

    -- tag, width of the length, the shortest range it is canonical for, the element
    local FORMS = {
        { "str8", "\xd9", 1, 32, 255, "s" }, { "str16", "\xda", 2, 256, 65535, "s" },
        { "str32", "\xdb", 4, 65536, 0xffffffff, "s" },
        { "array16", "\xdc", 2, 16, 65535, "\x01" }, { "array32", "\xdd", 4, 65536, 0xffffffff, "\x01" },
        { "map16", "\xde", 2, 16, 65535, nil }, { "map32", "\xdf", 4, 65536, 0xffffffff, nil },
    }
    local function content(form, n)
        if form[6] ~= nil then return form[6]:rep(n) end
        local t = {} -- map: keys 1..n would be an array, so string keys in order
        for i = 1, n do t[i] = string.pack(">B", 0xa0 + 5) .. ("k%04d"):format(i) .. "\x01" end
        return table.concat(t)
    end

    it("each length form: accepted exactly in its canonical range, refused elsewhere, huge ones without allocating", function()
        local checked = 0
        for _, form in ipairs(FORMS) do
            local name, tag, width, lo, hi = form[1], form[2], form[3], form[4], form[5]
            for _, n in ipairs({ 0, 1, lo - 1, lo, lo + 1, hi - 1, hi, 1 << 31, (1 << (8 * width)) - 1 }) do
                if n >= 0 and n < (1 << (8 * width)) then
                    local full = n <= 70000 and not (form[6] == nil and n > 9999)
                    local bytes = tag .. be(n, width) .. (full and content(form, n) or "")
                    local r = decode(bytes)
                    if full and n >= lo and n <= hi then
                        assert.are.equal("same", r, name .. " " .. n)
                    else
                        assert.is_table(r, name .. " " .. n)
                        assert.matches("^REFUSED ", r.err, 1, false)
                        assert.is_nil(r.err:find("memory", 1, true), name .. " " .. n .. ": " .. r.err)
                    end
                    checked = checked + 1
                end
            end
        end
        assert.is_true(checked >= 50)
    end)

    it("refuses every truncation of a valid encoding, and garbage after it", function()
        local valid = "\x83\xa1a\x93\x01\x02\xda\x01\x00" .. ("z"):rep(256) .. "\xa1b\xc3\xa1c\xcb"
            .. string.pack(">d", 1.5)
        assert.are.equal("same", decode(valid))
        for cut = 0, #valid - 1 do
            local r = decode(valid:sub(1, cut))
            assert.is_table(r, cut)
        end
        assert.matches("trailing", decode(valid .. "\x00").err)
    end)
end)
