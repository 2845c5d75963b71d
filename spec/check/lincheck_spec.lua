-- luaraft.lincheck: the linearizability checker (src/sim/lincheck.c) on hand-written
-- histories of each kv.lua command, unknown outcomes, touching operations and independent
-- keys; then against an exhaustive search on small random histories; then on random
-- histories that are linearizable by construction (their outputs come from examples/kv.lua
-- itself, run through luaraft.fsm), before and after one read is corrupted.
--
-- A history is written as a list of operations {client, call, ret, op, args..., out = o}
-- where ret = "?" marks an unknown outcome (lincheck_unknown) and out is the reply in
-- luaraft.fsm.decode's form: a string, an integer, nil (NIL below), {ok = "OK"} or
-- {err = "..."}.

local lincheck = require("luaraft.lincheck")
local fsm = require("luaraft.fsm")

local root = debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/check/[^/]*$") or "."

local OK = { ok = "OK" }
local ERR = { err = "ERR value is not an integer or out of range" }
local NIL = fsm.null -- a nil reply, as luaraft.fsm decodes it
local UNKNOWN = "?"
local FAILED = {} -- o.failed: the op ended with an error that proves it had no effect

-- Records ops into a new history and checks it: verdict, report.
local function check(ops, budget)
    local h = lincheck.new()
    for _, o in ipairs(ops) do
        local id = h:invoke(o[1], o[2], o[4], o.key or "k", o[5], o[6])
        if o.failed then
            h:failed(id, o[3])
        elseif o[3] == UNKNOWN then
            h:unknown(id)
        elseif o[3] ~= nil then
            h:complete(id, o[3], o.out)
        end
    end
    local verdict, report = h:check(budget)
    h:close()
    return verdict, report
end

local function linearizable(ops)
    local verdict, report = check(ops)
    assert.are.equal("ok", verdict, report)
end

local function violation(ops)
    local verdict, report = check(ops)
    assert.are.equal("violation", verdict, report)
    return report
end

describe("lincheck", function()
    describe("GET and SET", function()
        it("accepts an empty history and a sequential one", function()
            linearizable({})
            linearizable({
                { 1, 0, 10, "GET", out = NIL },
                { 1, 20, 30, "SET", "a", out = OK },
                { 2, 40, 50, "GET", out = "a" },
                { 1, 60, 70, "SET", "b", out = OK },
                { 2, 80, 90, "GET", out = "b" },
            })
        end)

        it("rejects a stale read after a completed write, and says why", function()
            local report = violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "SET", "b", out = OK },
                { 2, 40, 50, "GET", out = "a" },
            })
            assert.matches('key "k"', report, 1, true)
            assert.matches("longest linearizable prefix (2 operations): #0 #1", report, 1, true)
            assert.matches('then #2 could not follow it: the value there is "b"', report, 1, true)
            assert.matches('the model answers "b"', report, 1, true)
            -- the timeline: place in the prefix, id, times, client, operation and output
            assert.matches("\n +1 +#0 +0 %.%. +10 +client 1 +SET \"a\" %-> OK\n", report)
            assert.matches("\n +! +#2 +40 %.%. +50 +client 2 +GET %-> \"a\"\n", report)
        end)

        it("accepts a read concurrent with a write seeing either value", function()
            for _, seen in ipairs({ "a", "b" }) do
                linearizable({
                    { 1, 0, 10, "SET", "a", out = OK },
                    { 1, 20, 60, "SET", "b", out = OK },
                    { 2, 30, 40, "GET", out = seen },
                })
            end
        end)

        it("accepts two concurrent writes in either order, reads agreeing", function()
            for _, order in ipairs({ { "a", "b" }, { "b", "a" } }) do
                linearizable({
                    { 1, 0, 100, "SET", "a", out = OK },
                    { 2, 0, 100, "SET", "b", out = OK },
                    { 3, 10, 20, "GET", out = order[1] },
                    { 3, 30, 40, "GET", out = order[2] },
                    { 3, 110, 120, "GET", out = order[2] },
                })
            end
        end)

        it("rejects reads that see two concurrent writes in both orders", function()
            violation({
                { 1, 0, 100, "SET", "a", out = OK },
                { 2, 0, 100, "SET", "b", out = OK },
                { 3, 10, 20, "GET", out = "a" },
                { 3, 30, 40, "GET", out = "b" },
                { 4, 12, 18, "GET", out = "b" },
                { 4, 32, 38, "GET", out = "a" },
            })
            -- After both writes returned, the value no longer changes.
            violation({
                { 1, 0, 100, "SET", "a", out = OK },
                { 2, 0, 100, "SET", "b", out = OK },
                { 3, 110, 120, "GET", out = "a" },
                { 3, 130, 140, "GET", out = "b" },
            })
        end)

        it("rejects a read of a value never written, and nil after a write", function()
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 5, 15, "GET", out = "zzz" },
            })
            violation({ { 1, 0, 10, "GET", out = "a" } })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, 30, "GET", out = NIL },
            })
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 5, 30, "GET", out = NIL },
            })
        end)

        it("compares values byte for byte", function()
            linearizable({
                { 1, 0, 10, "SET", "a\0b", out = OK },
                { 2, 20, 30, "GET", out = "a\0b" },
                { 1, 40, 50, "SET", "", out = OK },
                { 2, 60, 70, "GET", out = "" },
            })
            violation({
                { 1, 0, 10, "SET", "a\0b", out = OK },
                { 2, 20, 30, "GET", out = "a\0c" },
            })
            violation({
                { 1, 0, 10, "SET", "", out = OK },
                { 2, 20, 30, "GET", out = NIL },
            })
        end)

        it("rejects a reply of the wrong kind", function()
            violation({ { 1, 0, 10, "SET", "a", out = 1 } })
            violation({ { 1, 0, 10, "GET", out = 0 } })
            violation({ { 1, 0, 10, "GET", out = ERR } })
        end)
    end)

    describe("DEL", function()
        it("answers 1 when the key existed, 0 when not, and leaves nil", function()
            linearizable({
                { 1, 0, 10, "DEL", out = 0 },
                { 1, 20, 30, "SET", "a", out = OK },
                { 1, 40, 50, "DEL", out = 1 },
                { 2, 60, 70, "GET", out = NIL },
                { 2, 80, 90, "DEL", out = 0 },
            })
            violation({ { 1, 0, 10, "DEL", out = 1 } })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "DEL", out = 0 },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "DEL", out = 1 },
                { 1, 40, 50, "GET", out = "a" },
            })
        end)
    end)

    describe("INCR", function()
        it("counts from a missing key and from a set integer", function()
            linearizable({
                { 1, 0, 10, "INCR", out = 1 },
                { 1, 20, 30, "INCR", out = 2 },
                { 2, 40, 50, "GET", out = "2" },
                { 1, 60, 70, "SET", "41", out = OK },
                { 1, 80, 90, "INCR", out = 42 },
                { 1, 100, 110, "SET", "-5", out = OK },
                { 1, 120, 130, "INCR", out = -4 },
            })
        end)

        it("accepts concurrent increments in either order, never a lost one", function()
            linearizable({
                { 1, 0, 100, "INCR", out = 2 },
                { 2, 0, 100, "INCR", out = 1 },
                { 3, 110, 120, "GET", out = "2" },
            })
            violation({
                { 1, 0, 100, "INCR", out = 1 },
                { 2, 0, 100, "INCR", out = 1 },
            })
            violation({
                { 1, 0, 10, "INCR", out = 1 },
                { 1, 20, 30, "INCR", out = 3 },
            })
        end)

        it("errs, with no effect, exactly when the value is not an integer", function()
            linearizable({
                { 1, 0, 10, "SET", "x", out = OK },
                { 1, 20, 30, "INCR", out = ERR },
                { 2, 40, 50, "GET", out = "x" },
                { 1, 60, 70, "SET", "007", out = OK }, -- not canonical: kv.lua refuses it
                { 1, 80, 90, "INCR", out = ERR },
                { 1, 100, 110, "SET", "9223372036854775807", out = OK },
                { 1, 120, 130, "INCR", out = ERR }, -- would overflow
                { 1, 140, 150, "SET", "-9223372036854775808", out = OK },
                { 1, 160, 170, "INCR", out = -9223372036854775807 },
            })
            violation({ { 1, 0, 10, "INCR", out = ERR } })
            violation({
                { 1, 0, 10, "SET", "x", out = OK },
                { 1, 20, 30, "INCR", out = 1 },
            })
        end)
    end)

    describe("CAS", function()
        it("swaps when the value is the expected one (1), and not otherwise (0)", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "CAS", "a", "b", out = 1 },
                { 2, 40, 50, "GET", out = "b" },
                { 1, 60, 70, "CAS", "a", "c", out = 0 },
                { 2, 80, 90, "GET", out = "b" },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "CAS", "z", "b", out = 1 },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "CAS", "a", "b", out = 0 },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "CAS", "a", "b", out = 1 },
                { 2, 40, 50, "GET", out = "a" },
            })
        end)

        it("answers 0 on a missing key, whatever is expected", function()
            linearizable({
                { 1, 0, 10, "CAS", "", "b", out = 0 },
                { 2, 20, 30, "GET", out = NIL },
            })
            violation({ { 1, 0, 10, "CAS", "", "b", out = 1 } })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 30, "DEL", out = 1 },
                { 1, 40, 50, "CAS", "a", "b", out = 1 },
            })
        end)

        it("compares the bytes INCR stores", function()
            linearizable({
                { 1, 0, 10, "INCR", out = 1 },
                { 1, 20, 30, "CAS", "1", "7", out = 1 },
                { 1, 40, 50, "INCR", out = 8 },
                { 1, 60, 70, "CAS", "08", "x", out = 0 },
            })
        end)

        it("lets two concurrent CAS from one value succeed only once", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 100, "CAS", "a", "b", out = 1 },
                { 2, 20, 100, "CAS", "a", "c", out = 0 },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 1, 20, 100, "CAS", "a", "b", out = 1 },
                { 2, 20, 100, "CAS", "a", "c", out = 1 },
            })
            violation({ { 1, 0, 10, "CAS", "a", "b", out = ERR } }) -- CAS never errs
        end)
    end)

    describe("failed operations", function()
        it("take no effect: a read that sees a failed write is a violation", function()
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, 30, "SET", "b", failed = FAILED },
                { 3, 40, 50, "GET", out = "b" },
            })
        end)

        it("are left out: the rest of the history stands alone", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, 30, "SET", "b", failed = FAILED },
                { 2, 40, 50, "GET", out = "a" },
            })
        end)
    end)

    describe("unknown outcomes", function()
        it("accept a write that a later read sees", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, UNKNOWN, "SET", "b" },
                { 3, 1000, 1010, "GET", out = "b" },
            })
        end)

        it("accept a write that is never seen", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, UNKNOWN, "SET", "b" },
                { 3, 1000, 1010, "GET", out = "a" },
                { 3, 2000, 2010, "GET", out = "a" },
            })
        end)

        it("reject a write seen and then un-seen", function()
            local report = violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, UNKNOWN, "SET", "b" },
                { 3, 1000, 1010, "GET", out = "b" },
                { 3, 2000, 2010, "GET", out = "a" },
            })
            assert.matches("\n +[%d!]* +#1 +20 %.%. +inf +client 2 +SET \"b\" %-> unknown\n", report)
        end)

        it("cannot take effect before their call", function()
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 3, 20, 30, "GET", out = "b" },
                { 2, 40, UNKNOWN, "SET", "b" },
            })
        end)

        it("apply to INCR, DEL and CAS too", function()
            for _, second in ipairs({ 1, 2 }) do
                linearizable({
                    { 1, 0, UNKNOWN, "INCR" },
                    { 2, 50, 60, "INCR", out = second },
                })
            end
            violation({
                { 1, 0, UNKNOWN, "INCR" },
                { 2, 50, 60, "INCR", out = 3 },
            })
            for _, seen in ipairs({ "a", NIL }) do
                linearizable({
                    { 1, 0, 10, "SET", "a", out = OK },
                    { 2, 20, UNKNOWN, "DEL" },
                    { 3, 30, 40, "GET", out = seen },
                })
            end
            for _, seen in ipairs({ "a", "b" }) do
                linearizable({
                    { 1, 0, 10, "SET", "a", out = OK },
                    { 2, 20, UNKNOWN, "CAS", "a", "b" },
                    { 3, 30, 40, "GET", out = seen },
                })
            end
            violation({
                { 1, 0, 10, "SET", "x", out = OK },
                { 2, 20, UNKNOWN, "CAS", "a", "b" },
                { 3, 30, 40, "GET", out = "b" },
            })
        end)

        it("include operations still in flight at the check", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, nil, "SET", "b" },
                { 3, 30, 40, "GET", out = "b" },
            })
            local report = violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 20, nil, "SET", "b" },
                { 3, 30, 40, "GET", out = "b" },
                { 3, 50, 60, "GET", out = "a" },
            })
            assert.matches("unknown (in flight)", report, 1, true)
        end)

        it("retire the client, which must not call again", function()
            local h = lincheck.new()
            local id = h:invoke(1, 0, "SET", "k", "a")
            h:unknown(id)
            assert.has_error(function() h:invoke(1, 10, "GET", "k") end,
                "luaraft.lincheck: invoke: ECLIENT")
            h:complete(h:invoke(2, 10, "GET", "k"), 20, "a")
            assert.are.equal("ok", (h:check()))
            h:close()
        end)
    end)

    describe("touching operations", function()
        it("count as concurrent when a call time equals a return time", function()
            linearizable({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 10, 20, "GET", out = NIL },
            })
            violation({
                { 1, 0, 10, "SET", "a", out = OK },
                { 2, 11, 20, "GET", out = NIL },
            })
            linearizable({
                { 2, 0, 10, "GET", out = "a" },
                { 1, 10, 20, "SET", "a", out = OK },
            })
            violation({
                { 2, 0, 9, "GET", out = "a" },
                { 1, 10, 20, "SET", "a", out = OK },
            })
            linearizable({ -- instantaneous operations, all at one time
                { 1, 5, 5, "SET", "a", out = OK },
                { 2, 5, 5, "GET", out = NIL },
                { 3, 5, 5, "INCR", out = ERR },
            })
        end)
    end)

    describe("keys", function()
        it("are independent registers", function()
            linearizable({
                { 1, 0, 10, "SET", "a", key = "x", out = OK },
                { 2, 20, 30, "GET", key = "y", out = NIL },
                { 1, 40, 50, "INCR", key = "y", out = 1 },
                { 2, 60, 70, "GET", key = "x", out = "a" },
                { 3, 60, 70, "CAS", "1", "2", key = "y", out = 1 },
                { 3, 80, 90, "DEL", key = "", out = 0 },
            })
        end)

        it("are reported alone: the first violated key in byte order", function()
            local report = violation({
                { 1, 0, 10, "SET", "a", key = "x", out = OK },
                { 2, 20, 30, "GET", key = "x", out = "a" },
                { 1, 40, 50, "SET", "b", key = "z", out = OK },
                { 2, 60, 70, "GET", key = "z", out = "stale" },
                { 1, 80, 90, "SET", "c", key = "y", out = OK },
                { 2, 100, 110, "GET", key = "y", out = NIL },
            })
            assert.matches('key "y" (2 operations', report, 1, true)
            assert.is_nil(report:find('"stale"', 1, true))
            assert.is_nil(report:find('SET "a"', 1, true))
        end)
    end)

    describe("the recording discipline", function()
        it("refuses misuse with lincheck's error codes", function()
            local h = lincheck.new()
            local id = h:invoke(1, 100, "set", "k", "a")
            assert.has_error(function() h:invoke(1, 110, "GET", "k") end,
                "luaraft.lincheck: invoke: ECLIENT") -- one operation in flight per client
            assert.has_error(function() h:complete(id, 99, OK) end,
                "luaraft.lincheck: complete: EINVAL") -- returns before its call
            h:complete(id, 200, OK)
            assert.has_error(function() h:complete(id, 300, OK) end,
                "luaraft.lincheck: complete: EINVAL") -- completed twice
            assert.has_error(function() h:unknown(id) end, "luaraft.lincheck: unknown: EINVAL")
            assert.has_error(function() h:invoke(1, 150, "GET", "k") end,
                "luaraft.lincheck: invoke: EINVAL") -- before the client's last return
            assert.has_error(function() h:complete(7, 300, OK) end)
            assert.has_error(function() h:invoke(2, 0, "MGET", "k") end)
            assert.has_error(function() h:invoke(2, 0, "SET", "k") end) -- no value
            assert.has_error(function() h:check(0) end)
            assert.are.equal(1, h:size())
            h:close()
            assert.has_error(function() h:size() end, "luaraft.lincheck: history is closed")
        end)

        it("reports an exhausted budget as undecided", function()
            local ops = {}
            for c = 1, 8 do
                ops[#ops + 1] = { c, 0, 100, "INCR", out = 9 - c }
            end
            ops[#ops + 1] = { 9, 200, 210, "GET", out = "9" } -- impossible: 8 increments
            local verdict, report = check(ops, 10)
            assert.are.equal("undecided", verdict)
            assert.matches("search budget exhausted", report, 1, true)
            assert.are.equal("violation", (check(ops)))
        end)
    end)

    describe("small random histories", function()
        -- An independent model of kv.lua's commands on one register (nil or a string).
        local function canonical_int(v)
            local n = math.tointeger(tonumber(v))
            return n ~= nil and tostring(n) == v and n or nil
        end

        local function step(state, o)
            local op, out = o[4], o.out
            local unknown = o[3] == UNKNOWN
            local function fits(want)
                if unknown then
                    return true
                end
                if want == OK or want == ERR then -- the status or error, whatever its text
                    return type(out) == "table" and out[want == OK and "ok" or "err"] ~= nil
                end
                return out == want
            end
            if op == "GET" then
                return fits(state == nil and NIL or state), state
            elseif op == "SET" then
                return fits(OK), o[5]
            elseif op == "DEL" then
                return fits(state == nil and 0 or 1), nil
            elseif op == "INCR" then
                local n = state == nil and 0 or canonical_int(state)
                if n == nil or n == math.maxinteger then
                    return fits(ERR), state
                end
                return fits(n + 1), tostring(n + 1)
            else
                if state == o[5] then
                    return fits(1), o[6]
                end
                return fits(0), state
            end
        end

        -- Exhaustive: some op that no other pending op's return precedes goes next; ops of
        -- unknown outcome may be left out (as if last).
        local function brute(ops)
            local done = {}
            local function search(state)
                local known = 0
                for i, o in ipairs(ops) do
                    if not done[i] and o[3] ~= UNKNOWN then
                        known = known + 1
                    end
                end
                if known == 0 then
                    return true
                end
                for i, o in ipairs(ops) do
                    local first = not done[i]
                    for j, p in ipairs(ops) do
                        if first and j ~= i and not done[j] and p[3] ~= UNKNOWN
                            and p[3] < o[2] then
                            first = false
                        end
                    end
                    if first then
                        local ok, next_state = step(state, o)
                        if ok then
                            done[i] = true
                            local found = search(next_state)
                            done[i] = nil
                            if found then
                                return true
                            end
                        end
                    end
                end
                return false
            end
            return search(nil)
        end

        local values = { "a", "b", "1", "2" }
        local function pick(t)
            return t[math.random(#t)]
        end

        local function random_ops(n)
            local ops = {}
            for c = 1, n do
                local call = math.random(0, 20)
                local ret = math.random() < 0.2 and UNKNOWN or call + math.random(0, 8)
                local op = pick({ "GET", "GET", "SET", "SET", "DEL", "INCR", "CAS" })
                local o = { c, call, ret, op }
                if op == "GET" then
                    o.out = pick({ NIL, "a", "b", "1", "2" })
                    o[3] = call + math.random(0, 8) -- an unknown read says nothing
                elseif op == "SET" then
                    o[5], o.out = pick(values), OK
                elseif op == "DEL" then
                    o.out = math.random(0, 1)
                elseif op == "INCR" then
                    o.out = pick({ 1, 2, 3, ERR })
                else
                    o[5], o[6], o.out = pick(values), pick(values), math.random(0, 1)
                end
                ops[#ops + 1] = o
            end
            return ops
        end

        it("get the verdict of an exhaustive search", function()
            math.randomseed(7)
            local verdicts = { ok = 0, violation = 0 }
            for trial = 1, 600 do
                local ops = random_ops(math.random(1, 7))
                local verdict, report = check(ops)
                local want = brute(ops) and "ok" or "violation"
                assert(verdict == want, "trial " .. trial .. ": want " .. want .. "\n" .. report)
                verdicts[verdict] = verdicts[verdict] + 1
            end
            assert(verdicts.ok > 100 and verdicts.violation > 100)
        end)
    end)

    describe("random histories", function()
        local KV = root .. "/examples/kv.lua"
        local limits = { instructions_max = 1000000, memory_bytes_max = 64 * 1024 * 1024 }

        -- A sequential history of one or more keys, its outputs from kv.lua itself, so it
        -- is linearizable by construction. Each op i gets its linearization point at 100 i
        -- and an interval around it of random width, which keeps it linearizable; some
        -- writes end unknown, whether they took effect or not.
        local function generate(seed)
            math.randomseed(seed)
            local m = assert(fsm.open(KV, limits))
            local keys = { "a", "b", "c" }
            local nkeys, n, width = math.random(1, 3), math.random(20, 120), math.random(0, 400)
            local ops, values = {}, { "0", "1", "x" }
            for i = 1, n do
                local key = keys[math.random(nkeys)]
                local r, cmd = math.random(), nil
                if r < 0.35 then
                    cmd = { "GET", key }
                elseif r < 0.55 then
                    local v = math.random() < 0.3 and tostring(math.random(-3, 9))
                        or ("v" .. seed .. "-" .. i)
                    values[#values + 1] = v
                    cmd = { "SET", key, v }
                elseif r < 0.65 then
                    cmd = { "DEL", key }
                elseif r < 0.85 then
                    cmd = { "INCR", key }
                else
                    local current = m:query({ "GET", key })
                    local expected = math.random() < 0.5 and fsm.decode(current)
                    if type(expected) ~= "string" then
                        expected = values[math.random(#values)]
                    end
                    cmd = { "CAS", key, expected, "c" .. seed .. "-" .. i }
                end
                local t = 100 * i + 1000 -- calls stay >= 0
                local op = { call = t - math.random(0, width), ret = t + math.random(0, width),
                    cmd = cmd }
                local unknown = cmd[1] ~= "GET" and math.random() < 0.08
                if not (unknown and math.random() < 0.5) then -- else: it never happened
                    op.out = fsm.decode(m:apply(cmd, { index = i, term = 1, time_ms = 0, seed = i }))
                end
                if unknown then
                    op.ret = nil
                end
                ops[#ops + 1] = op
            end
            m:close()
            return ops
        end

        -- Feeds ops to a history in time order, a client per operation in flight (a new
        -- one after an unknown outcome), and checks it.
        local function record(ops)
            -- At one time: returns first, so their clients may call again, then calls,
            -- then the returns of operations that also called then.
            local events = {}
            for i, op in ipairs(ops) do
                events[#events + 1] = { t = op.call, i = i, rank = 1, call = true }
                if op.ret then
                    events[#events + 1] = { t = op.ret, i = i, rank = op.ret == op.call and 2 or 0 }
                end
            end
            table.sort(events, function(x, y)
                if x.t ~= y.t then
                    return x.t < y.t
                end
                if x.rank ~= y.rank then
                    return x.rank < y.rank
                end
                return x.i < y.i
            end)
            local h, free, next_client, ids, clients = lincheck.new(), {}, 1, {}, {}
            for _, e in ipairs(events) do
                local op = ops[e.i]
                if e.call then
                    local client = table.remove(free)
                    if client == nil then
                        client, next_client = next_client, next_client + 1
                    end
                    clients[e.i] = client
                    local cmd = op.cmd
                    ids[e.i] = h:invoke(client, e.t, cmd[1], cmd[2], cmd[3], cmd[4])
                    if not op.ret then
                        h:unknown(ids[e.i])
                    end
                else
                    h:complete(ids[e.i], e.t, op.out)
                    free[#free + 1] = clients[e.i]
                end
            end
            local verdict, report = h:check()
            h:close()
            return verdict, report
        end

        it("are linearizable, and not once one read is corrupted", function()
            local seeds = 300
            for seed = 1, seeds do
                local ops = generate(seed)
                local verdict, report = record(ops)
                assert(verdict == "ok", "seed " .. seed .. ": " .. report)
                local reads = {}
                for i, op in ipairs(ops) do
                    if op.cmd[1] == "GET" then
                        reads[#reads + 1] = i
                    end
                end
                if #reads > 0 then
                    local i = reads[math.random(#reads)]
                    ops[i].out = "never written"
                    verdict, report = record(ops)
                    assert(verdict == "violation", "seed " .. seed .. ": " .. report)
                    local key = ops[i].cmd[2]
                    assert(report:find('key "' .. key .. '"', 1, true), report)
                end
            end
        end)
    end)
end)
