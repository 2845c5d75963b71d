-- bank.lua: accounts and transfers that never create or destroy money.
--
-- What it shows: an invariant kept by a state machine. A command is applied on every
-- replica in the same order, and the script checks everything before it changes anything,
-- so a transfer either happens whole or not at all (a failed check is an error reply and
-- leaves the state untouched). TOTAL, the sum of all balances, only changes with OPEN:
-- a test (or an operator) can transfer at random, kill leaders, and check that it stays.
--
-- Commands (amounts are non-negative integers, in the smallest unit):
--   OPEN acct amount         -> status OK; error if acct exists. Brings amount into the
--                               bank (the only command that changes TOTAL)
--   TRANSFER from to amount  -> status OK; error on an unknown account, amount <= 0, or
--                               ERR insufficient funds (no overdraft)
--   BALANCE acct             -> integer balance, or nil for an unknown account (a read)
--   TOTAL                    -> integer sum of all balances (a read)
--   ACCOUNTS                 -> integer number of accounts (a read)
--
-- Try it: scripts/cluster.sh examples/bank.lua, then
--   redis-cli -p 6001 OPEN alice 100          -> OK
--   redis-cli -p 6002 OPEN bob 0              -> OK
--   redis-cli -p 6003 TRANSFER alice bob 30   -> OK
--   redis-cli -p 6001 TRANSFER bob alice 31   -> (error) ERR insufficient funds
--   redis-cli -p 6002 BALANCE bob             -> (integer) 30
--   redis-cli -p 6003 TOTAL                   -> (integer) 100
--
-- Snapshot: the balances through luaraft.encode, the runtime's canonical encoding (maps in
-- sorted key order), so every replica writes the same bytes; TOTAL is recomputed.
local M = {}

local balances = {} -- account -> integer balance
local total = 0     -- kept equal to the sum of balances; OPEN refuses to overflow it
local accounts = 0

local function amount(s)
    local n = s:match("^%d+$") and math.tointeger(tonumber(s))
    if not n then
        error("amount must be a non-negative integer")
    end
    return n
end

local commands = {
    OPEN = { 3, function(cmd)
        local acct, n = cmd[2], amount(cmd[3])
        if balances[acct] then
            error("account exists")
        end
        -- Every balance is at most total, so no later TRANSFER can overflow either.
        if n > math.maxinteger - total then
            error("total would overflow")
        end
        balances[acct] = n
        total = total + n
        accounts = accounts + 1
        return { ok = "OK" }
    end },
    TRANSFER = { 4, function(cmd)
        local from, to, n = cmd[2], cmd[3], amount(cmd[4])
        -- Every check comes first: an error after a change would leave it in place.
        if not balances[from] then
            error("no such account '" .. from .. "'")
        end
        if not balances[to] then
            error("no such account '" .. to .. "'")
        end
        if n == 0 then
            error("amount must be positive")
        end
        if balances[from] < n then
            error("insufficient funds")
        end
        balances[from] = balances[from] - n
        balances[to] = balances[to] + n
        return { ok = "OK" }
    end },
    BALANCE = { 2, function(cmd)
        return balances[cmd[2]]
    end },
    TOTAL = { 1, function()
        return total
    end },
    ACCOUNTS = { 1, function()
        return accounts
    end },
}

-- The command table the node checks every command against before it is logged (arity
-- counts the name; keys = {first, last, step}, as in Redis's command table).
M.commands = {
    OPEN = { arity = 3, keys = { 1, 1, 1 } },
    TRANSFER = { arity = 4, keys = { 1, 2, 1 } },
    BALANCE = { read = true, arity = 2, keys = { 1, 1, 1 } },
    TOTAL = { read = true, arity = 1 },
    ACCOUNTS = { read = true, arity = 1 },
}

local function run(cmd, reads_only)
    local name = cmd[1]:upper()
    local c = commands[name]
    if not c or (reads_only and not M.commands[name].read) then
        error("unknown command '" .. cmd[1] .. "'")
    end
    if #cmd ~= c[1] then
        error("wrong number of arguments for '" .. name:lower() .. "' command")
    end
    return c[2](cmd)
end

function M.apply(cmd)
    return run(cmd, false)
end

function M.query(cmd)
    return run(cmd, true)
end

function M.snapshot(w)
    w:write(luaraft.encode({ version = 1, balances = balances }))
end

-- Reads the whole snapshot into memory: short, fine for an example (kv.lua streams).
local function read_all(r)
    local chunks = {}
    for chunk in function() return r:read() end do
        chunks[#chunks + 1] = chunk
    end
    return table.concat(chunks)
end

function M.restore(r)
    local state = luaraft.decode(read_all(r))
    if type(state) ~= "table" or state.version ~= 1 then
        error("not a bank snapshot")
    end
    local sum, n = 0, 0
    for _, balance in pairs(state.balances) do
        sum = sum + balance
        n = n + 1
    end
    balances, total, accounts = state.balances, sum, n
end

return M
