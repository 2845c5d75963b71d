-- CRC-32C (src/util/crc32c.c, on ISA-L's crc32_iscsi): the checksum of the snapshot files and
-- the peer frames, seen through luaraft.codec's crc32c(bytes [, crc]). Checked against the
-- published vectors and against a bitwise reference written here from the definition
-- (RFC 3720 section 12.1: polynomial 0x1EDC6F41, reflected 0x82F63B78, initial value and
-- final XOR all ones), so a change of library or of its init/XOR convention shows up.
local codec = require("luaraft.codec")

-- One bit at a time, straight from the definition: slow, and obviously right.
local function reference(s, crc)
    crc = ~(crc or 0) & 0xffffffff
    for i = 1, #s do
        crc = crc ~ s:byte(i)
        for _ = 1, 8 do
            if crc & 1 == 1 then
                crc = (crc >> 1) ~ 0x82F63B78
            else
                crc = crc >> 1
            end
        end
    end
    return ~crc & 0xffffffff
end

local function bytes(list)
    return string.char(table.unpack(list))
end

local function range(from, to, step)
    local t = {}
    for b = from, to, step or 1 do
        t[#t + 1] = b
    end
    return t
end

local function random_string(n)
    local t = {}
    for i = 1, n do
        t[i] = string.char(math.random(0, 255))
    end
    return table.concat(t)
end

describe("crc32c", function()
    -- Fixed, so that a failure replays; the lengths cover the library's short-input and
    -- block paths alike.
    before_each(function()
        math.randomseed(3720)
    end)

    it("gives the check value and RFC 3720's examples", function()
        assert.are.equal(0, codec.crc32c(""))
        assert.are.equal(0xE3069283, codec.crc32c("123456789"))
        -- RFC 3720 appendix B.4 (each CRC there is shown as sent, least significant byte
        -- first: "aa 36 91 8a" is 0x8A9136AA).
        assert.are.equal(0x8A9136AA, codec.crc32c(string.rep("\0", 32)))
        assert.are.equal(0x62A8AB43, codec.crc32c(string.rep("\255", 32)))
        assert.are.equal(0x46DD794E, codec.crc32c(bytes(range(0, 31))))
        assert.are.equal(0x113FDB5C, codec.crc32c(bytes(range(31, 0, -1))))
        local read10 = bytes({
            0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18,
            0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
        })
        assert.are.equal(0xD9963A56, codec.crc32c(read10))
    end)

    it("agrees with the bitwise reference on the vectors", function()
        for _, s in ipairs({ "", "a", "123456789", string.rep("\0", 32), bytes(range(0, 255)) }) do
            assert.are.equal(reference(s), codec.crc32c(s))
        end
    end)

    it("agrees with the bitwise reference on random strings of random lengths", function()
        for k = 1, 400 do
            local n = k % 10 == 0 and math.random(0, 20000) or math.random(0, 300)
            local s = random_string(n)
            local init = k % 2 == 0 and 0 or math.random(0, 0xffffffff)
            assert.are.equal(reference(s, init), codec.crc32c(s, init), "length " .. n)
        end
    end)

    -- The snapfile writer and verifier checksum a file in pieces (snapfile_write's calls,
    -- verify's 64 KiB reads): any cut must give the CRC of the whole.
    it("continues across pieces cut anywhere", function()
        local s = random_string(3 * 1024 * 1024 + 17)
        local whole = codec.crc32c(s)
        for _ = 1, 50 do
            local cut = math.random(0, #s)
            local first = codec.crc32c(s:sub(1, cut))
            assert.are.equal(whole, codec.crc32c(s:sub(cut + 1), first), "cut at " .. cut)
        end
        local crc = 0
        for at = 1, #s, 65536 do
            crc = codec.crc32c(s:sub(at, at + 65535), crc)
        end
        assert.are.equal(whole, crc)
    end)
end)
