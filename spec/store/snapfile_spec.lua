-- Snapshot files: written under a temporary name and renamed, with a trailer (magic,
-- length, CRC-32C). Each test writes files through store.snapfile_write, damages some on
-- purpose, and checks that snapfile_latest picks the newest intact one.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local store = S.store

local function read_all(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("a")
    f:close()
    return data
end

local function write_all(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
end

local function ls(dir)
    local p = assert(io.popen("ls -1 '" .. dir .. "'"))
    local names = {}
    for name in p:lines() do
        names[#names + 1] = name
    end
    p:close()
    table.sort(names)
    return names
end

describe("snapfile", function()
    local dir
    before_each(function()
        dir = S.tmpdir()
    end)
    after_each(function()
        S.cleanup()
    end)

    -- A written file has the body then a 20-byte trailer, and verifies.
    it("writes a file that verifies", function()
        local body = string.rep("snapshot body ", 10000)
        local path = assert(store.snapfile_write(dir, 10, 2, body))
        assert.are.equal(dir .. "/snap-10-2.lrs", path)
        assert.are.same({ "snap-10-2.lrs" }, ls(dir)) -- no temporary file left
        assert.are.equal(#body, store.snapfile_verify(path))
        local data = read_all(path)
        assert.are.equal(#body + 20, #data)
        assert.are.equal(body, data:sub(1, #body))
        assert.are.equal("LRSNAP01", data:sub(#body + 1, #body + 8))
        assert.are.equal(0, store.snapfile_verify(assert(store.snapfile_write(dir, 11, 2, ""))))
    end)

    -- The newest by (index, term) wins; a larger term at the same index is newer.
    it("finds the latest by index and term", function()
        assert.are.same({ nil, store.SNAPFILE_ENOENT }, { store.snapfile_latest(dir) })
        store.snapfile_write(dir, 5, 1, "a")
        store.snapfile_write(dir, 20, 2, "b")
        store.snapfile_write(dir, 20, 3, "c")
        store.snapfile_write(dir, 9, 1, "d")
        write_all(dir .. "/snap-020-9.lrs", "not a snapshot name we wrote")
        write_all(dir .. "/other.lrs", "ignored")
        local index, term, path = store.snapfile_latest(dir)
        assert.are.equal(20, index)
        assert.are.equal(3, term)
        assert.are.equal(dir .. "/snap-20-3.lrs", path)
    end)

    -- A truncated newest file and a bit-flipped one are both skipped for the previous one.
    it("skips truncated and corrupted files", function()
        store.snapfile_write(dir, 10, 1, string.rep("a", 5000))
        local p20 = store.snapfile_write(dir, 20, 1, string.rep("b", 5000))
        local p30 = store.snapfile_write(dir, 30, 1, string.rep("c", 5000))

        local data = read_all(p30)
        write_all(p30, data:sub(1, #data - 7)) -- torn tail
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_verify(p30)))
        local index, _, path = store.snapfile_latest(dir)
        assert.are.equal(20, index)
        assert.are.equal(p20, path)

        data = read_all(p20)
        write_all(p20, data:sub(1, 100) .. "X" .. data:sub(102)) -- one flipped byte in the body
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_verify(p20)))
        index = store.snapfile_latest(dir)
        assert.are.equal(10, index)

        write_all(dir .. "/snap-40-1.lrs", "") -- empty
        write_all(dir .. "/snap-50-1.lrs", string.rep("z", 19)) -- shorter than a trailer
        assert.are.equal(10, (store.snapfile_latest(dir)))
        assert.are.equal(store.SNAPFILE_ENOENT, select(2, store.snapfile_verify(dir .. "/nope")))
    end)

    -- Pruning removes older snapshots and stray temporary files, and keeps the rest.
    it("prunes older files and temporary files", function()
        store.snapfile_write(dir, 10, 1, "a")
        store.snapfile_write(dir, 20, 1, "b")
        store.snapfile_write(dir, 30, 2, "c")
        write_all(dir .. "/snap-40-2.lrs.tmp", "torn")
        write_all(dir .. "/keep.txt", "x")
        store.snapfile_prune(dir, 20)
        assert.are.same({ "keep.txt", "snap-20-1.lrs", "snap-30-2.lrs" }, ls(dir))
    end)

    -- A temporary file left by a crash at the same name does not stop the next write.
    it("replaces a stale temporary file", function()
        write_all(dir .. "/snap-7-1.lrs.tmp", "left by a crash")
        local path = assert(store.snapfile_write(dir, 7, 1, "fresh"))
        assert.are.equal(5, store.snapfile_verify(path))
        assert.are.same({ "snap-7-1.lrs" }, ls(dir))
    end)

    it("reports a directory that does not exist", function()
        local path, err = store.snapfile_write(dir .. "/missing", 1, 1, "x")
        assert.is_nil(path)
        assert.is_truthy(err:find("cannot create", 1, true))
    end)
end)
