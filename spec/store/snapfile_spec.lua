-- Snapshot files: written under a temporary name and renamed, with a header that names
-- the script whose state they hold and a trailer (magic, length, CRC-32C; the layout is
-- at the top of src/store/snapfile.c). Each test writes files through
-- store.snapfile_write, damages some on purpose, and checks that snapfile_latest picks
-- the newest intact one; then the script identity in the header, the first format (no
-- header) still read, pruning, snapfile_path and the start-up cleanup of temporaries
-- (names in src/store/snapfile.h).
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/")
local S = dofile(here .. "/support.lua")
local store = S.store
local codec = require("luaraft.codec")

local read_all, write_all = S.read_all, S.write_all

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

    -- A written file has the header, the body, then a 20-byte trailer, and verifies.
    it("writes a file that verifies", function()
        local body = string.rep("snapshot body ", 10000)
        local path = assert(store.snapfile_write(dir, 10, 2, body))
        assert.are.equal(dir .. "/snap-10-2.lrs", path)
        assert.are.same({ "snap-10-2.lrs" }, ls(dir)) -- no temporary file left
        assert.are.equal(#body, store.snapfile_verify(path))
        local data = read_all(path)
        -- header: magic, record length, since, hash length, hash, name length, "spec.lua"
        local header = 8 + 4 + 8 + 1 + 32 + 1 + #"spec.lua"
        assert.are.equal(header + #body + 20, #data)
        assert.are.equal("LRSNAP02", data:sub(1, 8))
        assert.are.equal(body, data:sub(header + 1, header + #body))
        local covered = data:sub(1, header + #body)
        assert.are.equal("LRSNAP02" .. string.pack(">I8I4", #covered, codec.crc32c(covered)),
                         data:sub(-20))
        assert.are.equal(0, store.snapfile_verify(assert(store.snapfile_write(dir, 11, 2, ""))))
    end)

    -- The header records the script's identity (name, hash, since), and snapfile_inspect
    -- reads it back without reading the body; the checksum covers it.
    it("records the script's identity in the header", function()
        local script = { name = "kv.lua", hash = string.rep("3f2a", 16), since = 7 }
        local body = string.rep("state ", 1000)
        local path = assert(store.snapfile_write(dir, 12, 3, body, script))
        local info = assert(store.snapfile_inspect(path))
        assert.are.same({ version = 2, script = script, body_offset = 8 + 4 + 8 + 1 + 32 + 1 + 6,
                          body_bytes = #body }, info)
        assert.are.equal(#body, store.snapfile_verify(path))

        local other = { name = "counter.lua", hash = string.rep("9b1c", 16), since = 0 }
        local p2 = assert(store.snapfile_write(dir, 13, 3, body, other))
        assert.are.same(other, store.snapfile_inspect(p2).script)

        -- A renamed script in the header is damage like any other: the CRC catches it.
        local data = read_all(path)
        write_all(path, (data:gsub("kv%.lua", "kw.lua", 1)))
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_verify(path)))
        -- A header whose record length runs past the file's end is corrupt too.
        write_all(path, data:sub(1, 8) .. string.pack(">I4", 1 << 20) .. data:sub(13))
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_inspect(path)))
        assert.are.equal(store.SNAPFILE_ENOENT, select(2, store.snapfile_inspect(dir .. "/nope")))
    end)

    -- An upgraded script's snapshot (RAFT.LOAD) carries the script's text after the
    -- identity and an empty members record: version 4, the body after the text, all of it
    -- under the checksum.
    it("carries an upgraded script's text in version 4", function()
        local script = { name = "kv2.lua", hash = string.rep("77", 32), since = 219 }
        local text = "local M = {} -- the upgraded script\n" .. string.rep("-- pad\n", 500)
        local body = string.rep("state ", 1000)
        local path = assert(store.snapfile_write(dir, 300, 4, body, script, text))
        local header = 8 + 4 + 8 + 1 + 32 + 1 + #"kv2.lua" + 4 + 4
        assert.are.same({ version = 4, script = script, body_offset = header + #text,
                          body_bytes = #body, text = text }, store.snapfile_inspect(path))
        assert.are.equal(#body, store.snapfile_verify(path))
        local data = read_all(path)
        assert.are.equal("LRSNAP04", data:sub(1, 8))
        assert.are.equal("LRSNAP04", data:sub(-20, -13))
        assert.are.equal(body, data:sub(header + #text + 1, header + #text + #body))
        -- One byte of the text changed: the checksum catches it.
        write_all(path, (data:gsub("upgraded", "upgradeD", 1)))
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_verify(path)))
        -- A text length past the end of the file: corrupt, not read.
        local at = header - 4
        write_all(path, data:sub(1, at) .. string.pack(">I4", #data) .. data:sub(at + 5))
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_inspect(path)))
    end)

    -- Files of the first format (no header, "LRSNAP01"; written before scripts were
    -- recorded, and still what some specs build by hand) keep verifying, as snapshots of
    -- no known script; a format newer than this build is named as such, not as corrupt.
    it("reads the first format and refuses newer ones by name", function()
        local body = "an old snapshot"
        local old = dir .. "/snap-5-1.lrs"
        write_all(old, body .. "LRSNAP01" .. string.pack(">I8I4", #body, codec.crc32c(body)))
        assert.are.equal(#body, store.snapfile_verify(old))
        assert.are.same({ version = 1, body_offset = 0, body_bytes = #body },
                        store.snapfile_inspect(old))
        assert.are.same({ 5, 1, old }, { store.snapfile_latest(dir) })

        local newer = dir .. "/snap-6-1.lrs"
        write_all(newer, body .. "LRSNAP05" .. string.pack(">I8I4", #body, codec.crc32c(body)))
        assert.are.equal(store.SNAPFILE_EVERSION, select(2, store.snapfile_verify(newer)))
        assert.are.equal(store.SNAPFILE_EVERSION, select(2, store.snapfile_inspect(newer)))
        write_all(newer, body .. "LRSNAPxy" .. string.pack(">I8I4", #body, codec.crc32c(body)))
        assert.are.equal(store.SNAPFILE_ECORRUPT, select(2, store.snapfile_verify(newer)))
        assert.are.equal(5, (store.snapfile_latest(dir)))
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

    -- Pruning removes older snapshots and keeps the rest, temporaries included: one may be
    -- a snapshot being written or received while the node prunes.
    it("prunes older files and keeps temporaries", function()
        store.snapfile_write(dir, 10, 1, "a")
        store.snapfile_write(dir, 20, 1, "b")
        store.snapfile_write(dir, 30, 2, "c")
        write_all(dir .. "/snap-40-2.lrs.tmp", "being written")
        write_all(dir .. "/incoming-2-1.part", "being received")
        write_all(dir .. "/keep.txt", "x")
        store.snapfile_prune(dir, 20)
        assert.are.same({ "incoming-2-1.part", "keep.txt", "snap-20-1.lrs", "snap-30-2.lrs",
                          "snap-40-2.lrs.tmp" }, ls(dir))
    end)

    -- A received snapshot is installed under its snapfile_path name, so pruning treats it
    -- like a local one: whichever is newest stays, every older one goes.
    it("keeps the newest snapshot and prunes older ones, local or received", function()
        local function receive(index, term, body)
            local part = dir .. "/incoming-3-" .. index .. ".part"
            write_all(part, body .. "LRSNAP01" .. string.pack(">I8I4", #body, codec.crc32c(body)))
            local path = assert(store.snapfile_path(dir, index, term))
            assert(os.rename(part, path))
            return path
        end
        store.snapfile_write(dir, 10, 1, "local 10")
        receive(20, 2, "received 20")
        store.snapfile_write(dir, 30, 2, "local 30")
        local newest = receive(40, 3, "received 40")
        assert.are.equal(40, (store.snapfile_latest(dir)))
        store.snapfile_prune(dir, 40)
        assert.are.same({ "snap-40-3.lrs" }, ls(dir))
        assert.are.equal(#"received 40", store.snapfile_verify(newest))

        local path = store.snapfile_write(dir, 50, 3, "local 50")
        store.snapfile_prune(dir, 50)
        assert.are.same({ "snap-50-3.lrs" }, ls(dir))
        assert.are.same({ 50, 3, path }, { store.snapfile_latest(dir) })
    end)

    -- snapfile_path names what snapfile_write would create, and creates nothing itself.
    it("gives the final path of a snapshot without creating it", function()
        assert.are.equal(dir .. "/snap-7-2.lrs", store.snapfile_path(dir, 7, 2))
        assert.are.equal(dir .. "/snap-0-0.lrs", store.snapfile_path(dir, 0, 0))
        assert.are.same({}, ls(dir))
        assert.are.equal(store.snapfile_path(dir, 123456789, 42),
                         store.snapfile_write(dir, 123456789, 42, "x"))
        assert.are.equal(dir .. "/missing/snap-1-1.lrs", store.snapfile_path(dir .. "/missing", 1, 1))
        local long = "/" .. string.rep("d", 600)
        local path, err, code = store.snapfile_path(long, 1, 1)
        assert.is_nil(path)
        assert.is_truthy(err:lower():find("too long", 1, true))
        assert.are.equal(store.SNAPFILE_EIO, code)
    end)

    -- At start-up, the temporaries a crash left go (both patterns of snapfile.h), and
    -- nothing else does: snapshots, look-alike names, other files.
    it("cleans up the temporary files a crash left", function()
        local p10 = store.snapfile_write(dir, 10, 1, "a")
        local p20 = store.snapfile_write(dir, 20, 2, "b")
        local leftovers = { "snap-30-2.lrs.tmp", "snap-0-0.lrs.tmp", "incoming-2-1.part",
                            "incoming-3-17.part" }
        local others = { "keep.txt", "cluster", "snap-030-2.lrs.tmp", "snap-30-2.tmp",
                         "snap-30-2.lrs.tmp.old", "incoming-2.part", "incoming-02-1.part",
                         "incoming-2-1.part~", "xincoming-2-1.part", "snap-x-1.lrs.tmp",
                         "snap-99999999999999999999-1.lrs.tmp" }
        for _, name in ipairs(leftovers) do
            write_all(dir .. "/" .. name, "torn")
        end
        for _, name in ipairs(others) do
            write_all(dir .. "/" .. name, "not ours")
        end
        assert.are.equal(#leftovers, store.snapfile_cleanup(dir))
        local want = { "snap-10-1.lrs", "snap-20-2.lrs" }
        for _, name in ipairs(others) do
            want[#want + 1] = name
        end
        table.sort(want)
        assert.are.same(want, ls(dir))
        assert.are.equal(1, store.snapfile_verify(p10))
        assert.are.equal(1, store.snapfile_verify(p20))
        assert.are.equal(0, store.snapfile_cleanup(dir)) -- nothing more to do
        assert.are.equal(0, store.snapfile_cleanup(dir .. "/missing")) -- no directory, none left
    end)

    -- A directory that cannot be read is an error, not "nothing to clean".
    it("reports a directory it cannot read", function()
        local file = dir .. "/plain"
        write_all(file, "x")
        local n, err, code = store.snapfile_cleanup(file)
        assert.is_nil(n)
        assert.is_string(err)
        assert.are.equal(store.SNAPFILE_EIO, code)
    end)

    -- The transport names a received file by the pattern snapfile_cleanup removes: the
    -- name of a real received file, recreated where no transport runs, is cleaned up.
    it("cleans up the name the transport gives a received snapshot", function()
        local T = dofile(here .. "/../transport/support.lua")
        local ts, opts = T.cluster(2)
        T.wait_connected(ts)
        local body = "a received snapshot"
        local src = opts[1].dir .. "/snap-9-1.lrs"
        write_all(src, body .. "LRSNAP01" .. string.pack(">I8I4", #body, codec.crc32c(body)))
        assert(ts[1]:send_snapshot({ type = "SNAPSHOT", to = 2, term = 1, index = 9,
                                     snapshot_term = 1 }, src))
        local got = T.receive(ts[2], 1, 10000)
        T.close_all(ts)
        assert.are.equal("snapshot", got[1] and got[1].event)
        local name = got[1].path:match("[^/]+$")
        assert.are.equal(opts[2].dir .. "/" .. name, got[1].path)
        write_all(dir .. "/" .. name, body)
        assert.are.equal(1, store.snapfile_cleanup(dir), name)
        assert.are.same({}, ls(dir))
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
