-- Checksums on the store's records (src/store/store_check.c): a byte flipped in data.mdb
-- inside a log entry's payload, its term or type, or a meta record (the hard state) is
-- reported as corruption by every read and never handed back altered. The flips are
-- made in a closed store's file, where LMDB keeps the record bytes as written (small
-- values sit in their leaf page, found by searching for a marker), so what this catches is
-- a record read without its CRC checked; it cannot tell whether LMDB's own pages (its
-- B-tree structure) survive a flip, which LMDB does not checksum.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local store = S.store

local MAP = 16 * 1024 * 1024

local read_all = S.read_all

-- Flips the bits of one byte at offset (0-based) of the file at path.
local function flip(path, offset)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", offset)
    local b = f:read(1):byte()
    f:seek("set", offset)
    f:write(string.char(b ~ 0xff))
    f:close()
end

-- The 0-based offset of the only occurrence of marker in the file.
local function offset_of(path, marker)
    local s = read_all(path)
    local at = assert(s:find(marker, 1, true), "marker not in " .. path)
    assert.is_nil(s:find(marker, at + 1, true), "marker found twice")
    return at - 1
end

describe("store checksums", function()
    local dir, st
    before_each(function()
        dir = S.tmpdir()
        st = assert(store.open(dir, { map_bytes = MAP }))
    end)
    after_each(function()
        if st then
            st:close()
            st = nil
        end
        S.cleanup()
    end)

    local function write_three()
        assert.are.same({ 0 }, S.persist(st, {
            hard_state = { term = 0x0123456789, vote = 3 },
            entries = {
                first = 1,
                { term = 1, type = 1, data = "first-entry" },
                { term = 1, type = 2, data = "MARKER-value-of-entry-two" },
                { term = 2, type = 1, data = "third-entry" },
            },
        }))
        st:close()
        st = nil
    end

    local function reopen()
        st = assert(store.open(dir, { map_bytes = MAP }))
    end

    it("reads back what it wrote when nothing was flipped", function()
        write_three()
        reopen()
        local s = assert(st:load())
        assert.are.equal(0x0123456789, s.term)
        assert.are.equal(3, s.vote)
        assert.are.equal("MARKER-value-of-entry-two", assert(st:read(2, 2))[1].data)
    end)

    -- Every byte of the record: the payload's, and the header's before it (term, type and
    -- the CRC itself).
    it("refuses a log entry with any one byte of its record flipped", function()
        write_three()
        local path = dir .. "/data.mdb"
        local at = offset_of(path, "MARKER-value-of-entry-two")
        local pristine = read_all(path)
        for off = at - 16, at + #"MARKER-value-of-entry-two" - 1 do
            flip(path, off)
            reopen()
            local ok, err, code = st:read(1, 3)
            assert.is_nil(ok, "a flip at record byte " .. (off - at + 16) .. " went unseen")
            assert.are.equal(store.ECORRUPT, code, err)
            -- The entries before the damaged one still read; the damaged one never does.
            assert.are.equal("first-entry", assert(st:read(1, 1))[1].data)
            assert.is_nil((st:read(2, 2)))
            st:close()
            st = nil
            S.write_all(path, pristine)
        end
    end)

    it("refuses a hard state with a byte flipped", function()
        write_three()
        local path = dir .. "/data.mdb"
        -- The term's big-endian bytes 00 00 00 01 23 45 67 89 follow the version byte.
        local at = offset_of(path, "\x00\x00\x00\x01\x23\x45\x67\x89")
        flip(path, at + 7)
        reopen()
        local ok, err, code = st:load()
        assert.is_nil(ok)
        assert.are.equal(store.ECORRUPT, code)
        assert.matches("hard_state fails its checksum", err)
    end)
end)
