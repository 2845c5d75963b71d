-- The LMDB store through luaraft.store: each test opens a store in a fresh temporary
-- directory, persists requests through the writer thread, and checks what store_load and
-- store_read see, in the same process or after reopening the directory.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local store = S.store

local MAP = 16 * 1024 * 1024

describe("store", function()
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

    local function reopen(map_bytes)
        st:close()
        st = assert(store.open(dir, { map_bytes = map_bytes or MAP }))
    end

    -- A fresh directory holds nothing: no configuration, every number zero, an empty log.
    it("loads an empty state from a fresh directory", function()
        local s = assert(st:load())
        assert.is_false(s.has_config)
        assert.are.equal(0, s.term)
        assert.are.equal(0, s.vote)
        assert.are.equal(0, s.snapshot_index)
        assert.are.equal(0, s.snapshot_term)
        assert.are.equal(1, s.first_index)
        assert.are.equal(0, s.last_index)
        assert.are.same({}, s.config)
    end)

    -- Entries written come back byte for byte, with index, term and type, including an
    -- empty payload and binary bytes.
    it("round-trips appended entries", function()
        local bin = string.rep("\0\1\255", 1000)
        assert.are.same({ 0 }, S.persist(st, {
            entries = {
                first = 1,
                { term = 1, type = 1, data = "one" },
                { term = 1, type = 2, data = "" },
                { term = 2, type = 3, data = bin },
            },
        }))
        assert.are.same({
            { index = 1, term = 1, type = 1, data = "one" },
            { index = 2, term = 1, type = 2, data = "" },
            { index = 3, term = 2, type = 3, data = bin },
        }, assert(st:read(1, 3)))
        assert.are.same({ { index = 2, term = 1, type = 2, data = "" } }, st:read(2, 2))
        assert.are.same({}, st:read(3, 2))
        local s = st:load()
        assert.are.equal(1, s.first_index)
        assert.are.equal(3, s.last_index)
        -- A range past the end is an error, not a short list.
        local list, _, code = st:read(2, 4)
        assert.is_nil(list)
        assert.are.equal(store.ECORRUPT, code)
    end)

    -- A write from first deletes every entry at first and above before writing: a shorter
    -- suffix from a new leader leaves nothing of the old one behind.
    it("truncates the log on a write from an earlier index", function()
        S.persist(st, { entries = S.entries(1, 10, 1) })
        assert.are.same({ 0 }, S.persist(st, { entries = S.entries(4, 2, 2, "new") }))
        local s = st:load()
        assert.are.equal(5, s.last_index)
        local list = st:read(1, 5)
        assert.are.equal(1, list[3].term)
        assert.are.equal("e3", list[3].data)
        assert.are.equal(2, list[4].term)
        assert.are.equal("new4", list[4].data)
        assert.are.equal("new5", list[5].data)
        -- A write with no entries only truncates.
        assert.are.same({ 0 }, S.persist(st, { entries = { first = 3 } }))
        assert.are.equal(2, st:load().last_index)
    end)

    -- A write that would leave a gap after the log's last entry is refused, whole.
    it("refuses entries that leave a gap", function()
        S.persist(st, { entries = S.entries(1, 3, 1) })
        assert.are.same({ store.EINVAL }, S.persist(st, {
            hard_state = { term = 9, vote = 9 },
            entries = S.entries(6, 1, 1),
        }))
        local s = st:load()
        assert.are.equal(3, s.last_index)
        assert.are.equal(0, s.term) -- nothing of the failed request was written
    end)

    -- Hard state and configuration are durable: they come back after closing and reopening
    -- the directory, and a later write replaces them.
    it("keeps the hard state and configuration across a reopen", function()
        assert.are.same({ 0 }, S.persist(st, {
            hard_state = { term = 7, vote = 3 },
            config = { { id = 1, voter = true }, { id = 2, voter = true }, { id = 9, voter = false } },
        }))
        reopen()
        local s = st:load()
        assert.is_true(s.has_config)
        assert.are.equal(7, s.term)
        assert.are.equal(3, s.vote)
        assert.are.same({
            { id = 1, voter = true },
            { id = 2, voter = true },
            { id = 9, voter = false },
        }, s.config)
        S.persist(st, { hard_state = { term = 8, vote = 0 } })
        reopen()
        s = st:load()
        assert.are.equal(8, s.term)
        assert.are.equal(0, s.vote)
        assert.are.equal(3, #s.config)
    end)

    -- The script's identity: none on a fresh directory (nor on one made before it was
    -- recorded), then what was written, across a reopen; a later write replaces it (as a
    -- script upgrade will, issue 9) and leaves the rest alone; a nameless one is refused,
    -- since it would not load back.
    it("records the script's identity and replaces it", function()
        assert.is_nil(st:load().script)
        local kv = { name = "kv.lua", hash = string.rep("3f2a", 16), since = 0 }
        assert.are.same({ 0 }, S.persist(st, { script = kv, hard_state = { term = 2, vote = 1 } }))
        reopen()
        local s = st:load()
        assert.are.same(kv, s.script)
        assert.are.equal(2, s.term)
        S.persist(st, { hard_state = { term = 3, vote = 0 } })
        reopen()
        assert.are.same(kv, st:load().script)
        local upgraded = { name = "kv.lua", hash = string.rep("9b1c", 16), since = 41 }
        assert.are.same({ 0 }, S.persist(st, { script = upgraded }))
        reopen()
        s = st:load()
        assert.are.same(upgraded, s.script)
        assert.are.equal(3, s.term)
        local nameless = { name = "", hash = string.rep("00", 32) }
        local ok, _, code = st:submit({ script = nameless })
        assert.is_nil(ok)
        assert.are.equal(store.EINVAL, code)
    end)

    -- Installing a snapshot deletes the whole log and records the snapshot's index and
    -- term; entries written in the same request follow it, and all of it survives a reopen.
    it("installs a snapshot", function()
        S.persist(st, { entries = S.entries(1, 20, 1) })
        assert.are.same({ 0 }, S.persist(st, {
            snapshot = { index = 100, term = 4 },
            entries = S.entries(101, 2, 4),
        }))
        reopen()
        local s = st:load()
        assert.are.equal(100, s.snapshot_index)
        assert.are.equal(4, s.snapshot_term)
        assert.are.equal(101, s.first_index)
        assert.are.equal(102, s.last_index)
        assert.is_nil(st:read(1, 1))
        assert.are.equal("e101", st:read(101, 101)[1].data)
        -- A snapshot alone: an empty log just after it.
        S.persist(st, { snapshot = { index = 200, term = 5 } })
        s = st:load()
        assert.are.equal(201, s.first_index)
        assert.are.equal(200, s.last_index)
    end)

    -- Compaction deletes the prefix up to compact_to and nothing else.
    it("compacts the log", function()
        S.persist(st, { entries = S.entries(1, 10, 1) })
        assert.are.same({ 0 }, S.persist(st, { compact_to = 8 }))
        local s = st:load()
        assert.are.equal(9, s.first_index)
        assert.are.equal(10, s.last_index)
        assert.are.equal("e9", st:read(9, 10)[1].data)
        assert.is_nil(st:read(8, 9))
        -- Compacting below the start changes nothing; compacting everything empties it.
        assert.are.same({ 0 }, S.persist(st, { compact_to = 3 }))
        assert.are.equal(9, st:load().first_index)
        assert.are.same({ 0 }, S.persist(st, { compact_to = 10 }))
        assert.are.equal(0, #st:read(11, 10))
    end)

    -- Requests queued before the loop runs all complete, in submission order, and the
    -- writer groups them: fewer write transactions (one fsync each) than requests.
    it("completes many queued requests in order with group commit", function()
        local n = 200
        for i = 1, n do
            assert(st:submit({ hard_state = { term = i, vote = 1 }, entries = S.entries(i, 1, i) }))
        end
        local statuses = st:run()
        assert.are.equal(n, #statuses)
        for i = 1, n do
            assert.are.equal(0, statuses[i])
        end
        local stats = st:stats()
        assert.are.equal(n, stats.requests)
        assert.is_true(stats.txns < n / 2, "expected group commit, got " .. stats.txns .. " txns")
        assert.is_true(stats.batches <= stats.txns)
        local s = st:load()
        assert.are.equal(n, s.term) -- the last request's hard state won
        assert.are.equal(n, s.last_index)
        local list = st:read(1, n)
        for i = 1, n do
            assert.are.equal(i, list[i].term)
        end
    end)

    -- In a tiny map, a write that does not fit fails with EFULL and writes nothing; the
    -- requests before it succeed, every request after it fails too (what is durable stays a
    -- prefix of the requests), and reads keep working. After a reopen, compaction frees
    -- pages; LMDB reuses pages freed by transaction T from transaction T+2 on, so one small
    -- write separates the compaction from the big write that fits again.
    it("reports a full map and recovers after compaction", function()
        reopen(512 * 1024)
        local chunk = string.rep("x", 40000)
        local last = 0
        for i = 1, 100 do
            assert(st:submit({ entries = { first = i, { term = 1, type = 1, data = chunk } } }))
            local statuses = st:run()
            if statuses[1] ~= 0 then
                assert.are.equal(store.EFULL, statuses[1])
                break
            end
            last = i
        end
        assert.is_true(last > 0 and last < 100)
        -- The failure is sticky until the store is reopened.
        assert(st:submit({ hard_state = { term = 2, vote = 1 } }))
        assert.are.same({ store.EFULL }, st:run())
        reopen(512 * 1024)
        -- A batch: before, the big one, after.
        assert(st:submit({ hard_state = { term = 2, vote = 1 } }))
        assert(st:submit({ entries = { first = last + 1, { term = 2, type = 1, data = string.rep("y", 600000) } } }))
        assert(st:submit({ hard_state = { term = 3, vote = 1 } }))
        assert.are.same({ 0, store.EFULL, store.EFULL }, st:run())
        assert(st:submit({ hard_state = { term = 5, vote = 1 } }))
        assert.are.same({ store.EFULL }, st:run())
        local s = st:load()
        assert.are.equal(2, s.term)
        assert.are.equal(last, s.last_index)
        assert.are.equal(last, #st:read(1, last))
        assert.are.equal(chunk, st:read(last, last)[1].data)

        reopen(512 * 1024)
        assert.are.same({ 0 }, S.persist(st, { snapshot = { index = last, term = 1 } }))
        assert.are.same({ 0 }, S.persist(st, { hard_state = { term = 4, vote = 1 } }))
        assert.are.same({ 0 }, S.persist(st, { entries = { first = last + 1, { term = 4, type = 1, data = chunk } } }))
        assert.are.equal(last + 1, st:load().last_index)
    end)

    -- Closing with requests still queued finishes them first: they are on disk after a
    -- reopen.
    it("drains the queue on close", function()
        for i = 1, 5 do
            assert(st:submit({ hard_state = { term = i, vote = 2 }, entries = S.entries(i, 1, i) }))
        end
        reopen()
        local s = st:load()
        assert.are.equal(5, s.term)
        assert.are.equal(5, s.last_index)
        assert.are.equal(5, st:read(5, 5)[1].term)
    end)

    -- A closed store refuses every call.
    it("refuses calls after close", function()
        st:close()
        assert.has_error(function()
            st:load()
        end)
        st = nil
    end)
end)
