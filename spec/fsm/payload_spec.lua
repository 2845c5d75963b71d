-- An entry's payload (src/command.c): version 2 with a kind byte (COMMAND, TICK,
-- TRANSACTION), version 1 still read as a COMMAND, and every malformed shape refused by
-- the decoder (so that a replica never applies half a transaction).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local fsm = S.fsm

local function u32(n) return string.pack(">I4", n) end
local function argv(cmd) return fsm.payload("argv", cmd) end
local function header(kind, time_ms) return "\2" .. string.pack(">i8", time_ms or 0) .. kind end

describe("entry payloads", function()
    it("lay out a command, a tick and a transaction as command.h says", function()
        local blob = u32(2) .. u32(3) .. "SET" .. u32(1) .. "k"
        assert.are.equal(blob, argv({ "SET", "k" }))
        assert.are.equal(header("\0", 77) .. blob, fsm.payload("command", { "SET", "k" }, 77))
        assert.are.equal(header("\1", 5), fsm.payload("tick", 5))
        assert.are.equal(header("\2", 9) .. u32(2) .. u32(#blob) .. blob .. u32(#blob) .. blob,
            fsm.payload("transaction", { { "SET", "k" }, { "SET", "k" } }, 9))
        assert.are.equal(header("\2", 0) .. u32(0), fsm.payload("transaction", {}))
    end)

    it("round-trip, binary arguments and the time included", function()
        local cmd = { "SET", "k\0\r\n", string.rep("v", 70000), "" }
        assert.are.same({ kind = "command", time_ms = 1700000000123, cmd = cmd },
            fsm.payload_decode(fsm.payload("command", cmd, 1700000000123)))
        assert.are.same({ kind = "tick", time_ms = -1 }, fsm.payload_decode(fsm.payload("tick", -1)))
        local cmds = { { "INCR", "a" }, cmd, { "GET", "a" } }
        assert.are.same({ kind = "transaction", time_ms = 3, cmds = cmds },
            fsm.payload_decode(fsm.payload("transaction", cmds, 3)))
        assert.are.same({ kind = "transaction", time_ms = 0, cmds = {} },
            fsm.payload_decode(fsm.payload("transaction", {})))
    end)

    it("build a transaction from its laid-out commands, refusing a wrong body", function()
        local a, b = argv({ "INCR", "a" }), argv({ "GET", "a" })
        local body = u32(#a) .. a .. u32(#b) .. b
        assert.are.equal(fsm.payload("transaction", { { "INCR", "a" }, { "GET", "a" } }, 4),
            fsm.payload("body", 2, body, 4))
        assert.are.equal(fsm.payload("transaction", {}), fsm.payload("body", 0, ""))
        assert.is_nil(fsm.payload("body", 1, body)) -- trailing bytes
        assert.is_nil(fsm.payload("body", 3, body)) -- fewer commands than said
        assert.is_nil(fsm.payload("body", 2, body:sub(1, -2))) -- truncated
        assert.is_nil(fsm.payload("body", 1, u32(4) .. u32(0))) -- argc 0: not an argv blob
        assert.is_nil(fsm.payload("body", 1, u32(9) .. u32(1) .. u32(5) .. "a")) -- arg overruns
        assert.is_nil(fsm.payload("body", 1048577, "")) -- over command_argc_max
    end)

    it("read version 1 (no kind byte) as a command", function()
        local blob = argv({ "SET", "k", "v" })
        assert.are.same({ kind = "command", time_ms = 42, cmd = { "SET", "k", "v" } },
            fsm.payload_decode("\1" .. string.pack(">i8", 42) .. blob))
        -- and a machine applies it
        local m = S.open([[
local M = {}
function M.apply(cmd, ctx) return cmd[1] .. ctx.time_ms end
function M.snapshot(w) end
function M.restore(r) end
return M]])
        assert.are.equal("$5\r\nSET42\r\n",
            m:apply_entry("\1" .. string.pack(">i8", 42) .. blob, { index = 1, term = 1 }))
        m:close()
    end)

    describe("refuse", function()
        local tx = fsm.payload("transaction", { { "INCR", "a" }, { "GET", "b" } })

        it("another version, an unknown kind, a short header", function()
            assert.is_nil(fsm.payload_decode(""))
            assert.is_nil(fsm.payload_decode("\0" .. string.rep("\0", 8) .. "\0" .. argv({ "X" })))
            assert.is_nil(fsm.payload_decode("\3" .. string.rep("\0", 8) .. "\0" .. argv({ "X" })))
            assert.is_nil(fsm.payload_decode(header("\4")))
            assert.is_nil(fsm.payload_decode(header("\3") .. "x")) -- CHECK has no body
            assert.are.same({ kind = "check", time_ms = 7 }, fsm.payload_decode(fsm.payload("check", 7)))
            assert.is_nil(fsm.payload_decode(header("\255") .. argv({ "X" })))
            local tick = fsm.payload("tick")
            for n = 0, #tick - 1 do
                assert.is_nil(fsm.payload_decode(tick:sub(1, n)), n)
            end
            for n = 0, 8 do
                assert.is_nil(fsm.payload_decode(("\1" .. string.rep("\0", 8)):sub(1, n)), n)
            end
        end)

        it("a tick with a body", function()
            assert.is_nil(fsm.payload_decode(fsm.payload("tick") .. "x"))
        end)

        it("a transaction truncated anywhere, or with trailing bytes", function()
            for n = 10, #tx - 1 do
                assert.is_nil(fsm.payload_decode(tx:sub(1, n)), n)
            end
            assert.is_nil(fsm.payload_decode(tx .. "\0"))
            assert.is_not_nil(fsm.payload_decode(tx))
        end)

        it("a transaction whose count is wrong", function()
            local body = tx:sub(15)
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(3) .. body))
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(1) .. body))
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(0xFFFFFFFF) .. body))
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(0) .. body))
        end)

        it("a transaction holding something other than argv blobs", function()
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(1) .. u32(4) .. u32(0)))
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(1) .. u32(8) .. u32(1) .. u32(1)))
            local a = argv({ "GET", "k" })
            -- an item that says it is longer than its blob takes the next one's bytes
            assert.is_nil(fsm.payload_decode(header("\2") .. u32(1) .. u32(#a + 1) .. a .. "x"))
        end)

        it("no command's argv blob at decode time, but at apply time", function()
            -- a COMMAND's argv blob is checked when it is decoded for the script: the same
            -- error reply on every replica
            local bad = header("\0") .. u32(0)
            assert.are.same({ kind = "command", time_ms = 0, cmd = false }, fsm.payload_decode(bad))
            local m = S.open([[
local M = {}
function M.apply(cmd, ctx) return "applied" end
function M.snapshot(w) end
function M.restore(r) end
return M]])
            assert.are.equal("-ERR malformed log entry\r\n", m:apply_entry(bad, { index = 1 }))
            assert.are.equal("-ERR malformed log entry\r\n", m:apply_entry(tx .. "x", { index = 2 }))
            assert.are.equal("$7\r\napplied\r\n",
                m:apply_entry(fsm.payload("command", { "X" }), { index = 3 }))
            m:close()
        end)
    end)
end)
