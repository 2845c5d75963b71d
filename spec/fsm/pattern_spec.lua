-- Lua patterns in the sandbox (issue 10): string.find, match, gmatch and gsub run on
-- src/fsm/pattern.c, which charges the instruction budget by its steps. Differential: the
-- same calls run through the sandbox (an EVAL command of an fsm) and through the stock
-- string library of the lua5.4 running this spec, and must give the same results and the
-- same error messages, byte for byte; thousands of generated cases (a fixed seed) and a
-- hand list of edge cases. Then the calls stock Lua never returns from end with the budget
-- error, soon, at the same point on every replica.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")

local EVAL = S.EVAL_STATE

local budget = { err = "ERR script exceeded its instruction budget" }
local memory = { err = "ERR script exceeded its memory budget" }

-- Runs a list of cases and returns one string per case that says what happened: the
-- same text here (stock string library) and in the sandbox (pattern.c). A case is
-- {fn, n, arg1, ..., argn}; an argument {"fn", name} or {"tbl"} stands for one of the
-- replacement functions or the replacement table below. gmatch cases list each step of
-- the iteration. Uses no pattern function itself.
local RUNNER = [==[
local string, table, pcall, type, tostring, select, error, math =
    string, table, pcall, type, tostring, select, error, math
local function ser(v)
    local t = type(v)
    if t == "string" then return string.format("%q", v) end
    if t == "number" then return math.type(v) .. " " .. string.format("%q", v) end
    if t == "nil" or t == "boolean" then return tostring(v) end
    return "<" .. t .. ">"
end
local function pack(...)
    local out = {}
    for i = 1, select("#", ...) do out[i] = ser((select(i, ...))) end
    return "(" .. table.concat(out, ",") .. ")"
end
local fns = {
    cat = function(...)
        local t = {}
        for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
        return "<" .. table.concat(t, "|") .. ">"
    end,
    first = function(x) return x end,
    none = function() end,
    no = function() return false end,
    yes = function() return true end,
    tbl = function() return {} end,
    num = function(...) return select("#", ...) + 0.5 end,
    err = function(x) error("repl " .. tostring(x), 0) end,
}
local tbl = { a = "A", b = false, c = {}, d = 4, [1] = "P1", [2] = 2.5, ab = "AB", [""] = "E" }
local function arg(v)
    if type(v) == "table" then
        if v[1] == "fn" then return fns[v[2]] end
        return tbl
    end
    return v
end
local function run_one(c)
    local n, a = c[2], {}
    for i = 1, n do a[i] = arg(c[2 + i]) end
    if c[1] ~= "gmatch" then
        return pack(pcall(string[c[1]], table.unpack(a, 1, n)))
    end
    local ok, it = pcall(string.gmatch, table.unpack(a, 1, n))
    if not ok then return pack(false, it) end
    local out = {}
    for _ = 1, 40 do
        local r = table.pack(pcall(it))
        out[#out + 1] = pack(table.unpack(r, 1, r.n))
        if not r[1] or r.n == 1 then break end
    end
    return table.concat(out, ";")
end
return function(cases)
    local out = {}
    for i = 1, #cases do out[i] = run_one(cases[i]) end
    return out
end
]==]

local stock_run = assert(load(RUNNER, "=runner"))()

-- A case as Lua source: strings and numbers exactly (%q), descriptors as tables.
local function literal(v)
    local t = type(v)
    if t == "string" or t == "number" then
        return string.format("%q", v)
    elseif t == "table" then
        local parts = {}
        for i = 1, #v do parts[i] = literal(v[i]) end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    return tostring(v)
end

local function case_literal(c)
    local parts = { literal(c[1]), literal(c[2]) }
    for i = 1, c[2] do parts[#parts + 1] = literal(c[2 + i]) end
    return "{" .. table.concat(parts, ",") .. "}"
end

local BATCH = [[
local run = assert(load(cmd[3], "=runner"))()
return run(assert(load(cmd[4], "=cases"))())
]]

-- Runs cases in the sandbox of m, batch by batch; returns their outcome strings.
local function sandbox_run(m, cases)
    local out = {}
    for first = 1, #cases, 200 do
        local lits = {}
        for i = first, math.min(first + 199, #cases) do lits[#lits + 1] = case_literal(cases[i]) end
        local reply = S.apply(m, { "EVAL", BATCH, RUNNER, "return {" .. table.concat(lits, ",\n") .. "}" })
        assert(type(reply) == "table" and reply.err == nil, reply.err)
        for _, r in ipairs(reply) do out[#out + 1] = r end
    end
    return out
end

local function describe_case(c)
    local parts = {}
    for i = 1, c[2] do parts[i] = literal(c[2 + i]) end
    return c[1] .. "(" .. table.concat(parts, ", ") .. ")"
end

-- Compares every case; returns the mismatches (at most 10, described) and the outcomes.
local function differ(m, cases)
    local want = stock_run(cases)
    local got = sandbox_run(m, cases)
    assert.are.equal(#cases, #got)
    local bad = {}
    for i = 1, #cases do
        if want[i] ~= got[i] and #bad < 10 then
            bad[#bad + 1] = describe_case(cases[i]) .. "\n  stock:   " .. want[i] .. "\n  sandbox: " .. got[i]
        end
    end
    return bad, want
end

-- ---------------------------------------------------------------------------------------
-- The generator: a 64-bit LCG (integers wrap in Lua 5.4), so a seed gives the same cases
-- everywhere.
-- ---------------------------------------------------------------------------------------

local function lcg(seed)
    local state = seed
    return function(n)
        state = state * 6364136223846793005 + 1442695040888963407
        return ((state >> 33) % n) + 1
    end
end

local function pick(r, list)
    return list[r(#list)]
end

local ATOMS = {
    "a", "a", "b", "b", "c", ".", "%a", "%d", "%s", "%w", "%l", "%u", "%p", "%c", "%x",
    "%g", "%A", "%D", "%S", "%W", "%P", "%z", "%.", "%%", "%(", "%)", "%[", "%]", "%-",
    "%^", "%$", "%*", "%\0", "[ab]", "[^a]", "[a-c]", "[%d_]", "[]]", "[^]]", "[a-]",
    "[-a]", "[%a%d]", "[^%s]", "[\0-a]", "[%]]", "[.]", "[%w_%-]", "[b-a]", "x", " ", "\0",
    "\200", "1", "_", "-", "^", "$", "]", "A",
}
local QUANTIFIERS = { "", "", "", "", "*", "+", "-", "?" }
local SPECIALS = {
    "%b()", "%bab", "%b[]", "%baa", "%f[%w]", "%f[^%s]", "%f[a]", "%f[%z]", "%f[%l]", "%1",
    "%2", "%3", "()", "%0", "%b", "%ba", "%f", "%fa", "%f[a", "%", "[", "[^", "[a", "[%",
    "(", ")", "$", "^",
}
local SUBJECT = { "a", "a", "a", "b", "b", "c", ".", " ", "(", ")", "[", "]", "1", "_", "-",
    "%", "\0", "\200", "A", "x", "\n" }
local REPL = { "x", "%0", "%1", "%2", "%%", "-", "", "%", "%z", "%10", "<", ">" }
local REPL_FNS = { "cat", "first", "none", "no", "yes", "tbl", "num", "err" }

local function gen_seq(r, depth)
    local parts = {}
    for _ = 1, r(5) - 1 do
        local k = r(20)
        if k <= 14 then
            parts[#parts + 1] = pick(r, ATOMS) .. pick(r, QUANTIFIERS)
        elseif k <= 16 and depth < 2 then
            parts[#parts + 1] = "(" .. gen_seq(r, depth + 1) .. ")"
        elseif k <= 19 then
            parts[#parts + 1] = pick(r, SPECIALS)
        else
            parts[#parts + 1] = "()"
        end
    end
    return table.concat(parts)
end

local function gen_pattern(r)
    local p = gen_seq(r, 0)
    if r(6) == 1 then p = "^" .. p end
    if r(6) == 1 then p = p .. "$" end
    return p
end

local function gen_subject(r)
    local parts = {}
    for _ = 1, r(13) - 1 do parts[#parts + 1] = pick(r, SUBJECT) end
    return table.concat(parts)
end

local function gen_init(r, s)
    return pick(r, { 1, 1, 2, 0, -1, -2, -20, #s, #s + 1, #s + 2, 3.0, 1.5, math.maxinteger,
        math.mininteger, "2" })
end

local function gen_repl(r)
    local k = r(10)
    if k <= 5 then
        local parts = {}
        for _ = 1, r(4) - 1 do parts[#parts + 1] = pick(r, REPL) end
        return table.concat(parts)
    elseif k <= 8 then
        return { "fn", pick(r, REPL_FNS) }
    elseif k == 9 then
        return { "tbl" }
    end
    return pick(r, { 7, 1.5, true })
end

local function gen_case(r)
    local s, p = gen_subject(r), gen_pattern(r)
    local k = r(20)
    if k <= 6 then
        local n = r(3) + 1
        return { "find", n, s, p, gen_init(r, s), pick(r, { true, false, 1 }) }
    elseif k <= 11 then
        return { "match", r(2) + 1, s, p, gen_init(r, s) }
    elseif k <= 14 then
        return { "gmatch", r(2) + 1, s, p, gen_init(r, s) }
    end
    return { "gsub", r(2) + 2, s, p, gen_repl(r), pick(r, { 1, 2, 0, -1, 3, 2.5 }) }
end

-- ---------------------------------------------------------------------------------------
-- Edge cases, by hand
-- ---------------------------------------------------------------------------------------

local function c(fn, ...)
    return { fn, select("#", ...), ... }
end

local EDGES = {
    -- every error message of the matcher
    c("find", "a", "a%"), c("find", "x", "x%"), c("find", "abc", "x%"),
    c("find", "a", "[a"), c("find", "a", "[^"), c("find", "a", "[%"), c("find", "a", "[]"),
    c("find", "a", "%b"), c("find", "a", "%ba"), c("find", "a", "%f"), c("find", "a", "%fa"),
    c("find", "a", "%f[a"), c("find", "a", "%1"), c("find", "a", "(a)%2"),
    c("find", "a", "(a%1)"), c("find", "a", "%0"), c("find", "a", "(a)%0"), c("find", "a", ")"),
    c("match", "a", ")"), c("match", "a", "a)"), c("find", "a", "a.)"), c("match", "a", "(a"), c("find", "a", "("), c("find", "abc", "(()"),
    c("find", string.rep("a", 300), string.rep("a?", 300)),
    -- the depth limit exactly: 199 nested items match, 200 are too complex
    c("find", string.rep("a", 199), string.rep("a?", 199)),
    c("find", string.rep("a", 200), string.rep("a?", 200)),
    c("find", string.rep("a", 198), "(a" .. string.rep("a-", 197) .. ")"),
    c("find", string.rep("a", 199), "(a" .. string.rep("a-", 198) .. ")"),
    c("gsub", string.rep("a", 199), string.rep("a?", 199), "x"),
    c("gsub", string.rep("a", 200), string.rep("a?", 200), "x"),
    c("find", string.rep("a", 300), string.rep("a-", 250) .. "b"),
    c("find", string.rep("a", 300), string.rep("(a)", 33)),
    c("find", "a", string.rep("()", 33)), c("match", "a", string.rep("()", 32)),
    c("find", string.rep("a", 250), string.rep("a", 250)),
    c("gsub", "abc", "", "%"), c("gsub", "abc", "b", "%x"), c("gsub", "abc", "b", "%2"),
    c("gsub", "abc", "(b)", "%2"), c("gsub", "abc", "(", "x"), c("gsub", "abc", "(", "%1"),
    c("gsub", "abc", "(", "%0"), c("gsub", "abc", "b", { "tbl" }),
    c("gsub", "abc", "c", { "tbl" }), c("gsub", "abc", "b", { "fn", "tbl" }),
    c("gsub", "abc", "b", { "fn", "yes" }), c("gsub", "abc", "b", { "fn", "err" }),
    -- argument errors (stock's wording, function names included)
    c("find", "a"), c("find", "a", {}), c("find", {}, "a"), c("find", "a", "a", 1.5),
    c("find", "a", "a", "x"), c("match", "a", "a", {}), c("gmatch", "a"),
    c("gsub", "a", "a"), c("gsub", "a", "a", nil), c("gsub", "a", "a", false),
    c("gsub", "a", "a", "b", 1.5), c("gsub", "a", "a", "b", "x"), c("gsub", "a", "a", nil, "x"),
    c("find", 123, 2), c("gsub", 12321, 2, 9), c("match", 1.5, "%."),
    -- anchors
    c("find", "aaa", "^a"), c("find", "aaa", "^a", 2), c("find", "baa", "^a"),
    c("find", "aaa", "a$"), c("find", "aa$", "a$"), c("find", "a$b", "$b"),
    c("find", "", "^$"), c("find", "abc", "^"), c("find", "abc", "$"), c("match", "abc", "^(a)"),
    c("gsub", "aaa", "^a", "b"), c("gsub", "aaa", "^", "b"), c("gsub", "aaa", "$", "b"),
    c("gsub", "aaa", "^a*", "b"), c("gmatch", "a^a", "^a"), c("find", "^a", "^^a"),
    -- frontiers and balances
    c("gmatch", "THE (quick) fox", "%f[%a]%a+"), c("gmatch", "THE (quick) fox", "%f[%A]"),
    c("find", "hello", "%f[%l]"), c("find", "hello", "%f[%L]"), c("find", "", "%f[%z]"),
    c("find", "a\0b", "%f[%z]"), c("find", "a\0b", "%f[\0]"), c("find", "ab", "%f[^\0]"),
    c("gsub", "THE (quick) fox", "%f[%a]%a+", "<%0>"), c("find", "x(a(b)c)y", "%b()"),
    c("find", "x(a(b)c", "%b()"), c("match", "[[x]]", "%b[]"), c("find", "'a'b'", "%b''"),
    c("gsub", "f(a(b)) g(c)", "%b()", "[]"), c("find", "((", "%b()"), c("match", "ab", "%b\0b"),
    c("find", "(a)", "%b()*"), c("find", "(a)*", "%b()*"),
    -- back-references
    c("match", [[say "hi" and 'bye']], [[(["'])(.-)%1]]), c("match", "aaaa", "(a*)%1"),
    c("match", "abab", "(ab)%1"), c("find", "aa", "()%1"), c("match", "xyzxyz", "(x(y)z)%1%2"),
    c("gsub", "hello hello world", "(%w+) %1", "%1"),
    -- empty matches in gsub and gmatch
    c("gsub", "abc", "%w*", "-"), c("gsub", "hello world", "", "-"), c("gsub", "abc", "b*", "X"),
    c("gsub", "", "", "x"), c("gsub", "", "x*", "y"), c("gsub", "abc", "a*", "-", 2),
    c("gsub", "abc", ".-", "-"), c("gsub", "a,b,,c", ",*", "|"), c("gmatch", "abc", "b*"),
    c("gmatch", "", ".*"), c("gmatch", "abc", "%a*"), c("gmatch", "a,b,,c", "[^,]*"),
    c("gmatch", "abc", ""), c("gmatch", "abc", "()"), c("gmatch", "a1b2", "(%a)(%d)"),
    -- init values (1-based, negative from the end, past the end)
    c("find", "abc", "", 10), c("find", "abc", "", 4), c("find", "abc", "", 5),
    c("find", "abc", "", -10), c("find", "abc", "c", -1), c("find", "abc", "a", -3),
    c("find", "abc", "a", -4), c("find", "abc", "b", 0), c("match", "abc", ".", -2),
    c("match", "abc", "", 4), c("match", "abc", "", 5), c("find", "abc", "b", math.mininteger),
    c("find", "abc", "b", math.maxinteger), c("find", "abc", "b", 2.0), c("find", "abc", "b", "2"),
    c("gmatch", "abcabc", "a", 3), c("gmatch", "abcabc", "a", -3), c("gmatch", "abc", ".", 4),
    c("gmatch", "abc", ".", 10), c("gmatch", "abc", "", 4), c("gmatch", "abc", "", 5),
    c("gmatch", "abc", ".", -10), c("gmatch", "abc", ".", 0),
    -- plain find and special characters
    c("find", "a.b", ".", 1, true), c("find", "a.b", "."), c("find", "a+b", "+", 1, true),
    c("find", "a+b", "%+"), c("find", "a%b", "%", 1, true), c("find", "abc", "", 2, true),
    c("find", "abc", "abcd", 1, true), c("find", "abc", "c", 3, true), c("find", "abc", "b", 3, true),
    c("find", "a(b)c", "(", 1, 1), c("find", "a[b", "[", 1, false), c("find", "a*b", "*"),
    c("find", "a^b", "^b"), c("find", "a^b", "%^b"), c("find", "a-b", "-"), c("find", "ab", "a-b"),
    c("find", "a]b", "]"), c("find", "a]b", "%]"), c("find", "a$b", "%$"), c("find", "a?b", "%?"),
    -- sets
    c("find", "]", "[]]"), c("find", "a", "[^]]"), c("find", "-", "[a-]"), c("find", "-", "[-a]"),
    c("find", "b", "[a-c]"), c("find", "b", "[c-a]"), c("find", "%", "[%%]"), c("find", "]", "[%]]"),
    c("find", "^", "[%^]"), c("find", "^", "[a^]"), c("find", "\255", "[\128-\255]"),
    c("find", "\200", "%a"), c("find", "\200", "%A"), c("find", "\t", "%s"), c("find", "\v", "%c"),
    c("find", "\127", "%c"), c("find", "~", "%p"), c("find", "~", "%g"), c("find", " ", "%g"),
    c("find", "z", "%z"), c("find", "\0", "%z"), c("find", "F", "%x"), c("find", "g", "%x"),
    -- embedded zeros
    c("find", "a\0b", "\0"), c("find", "a\0b", "%\0"), c("find", "a\0b", "[\0]"),
    c("find", "a\0b", "a\0b"), c("find", "a\0b", "a.b"), c("match", "a\0\0b", "\0+"),
    c("gsub", "a\0b", "\0", "%%"), c("find", "a\0", "\0$"), c("find", "\0", "\0*"),
    -- captures
    c("match", "hello world", "(h)(e)(l)(l)(o)"), c("find", "hello", "(l)(l)"),
    c("match", "key = value", "(%w+)%s*=%s*(%w+)"), c("match", "abc", "()b()"),
    c("find", "abc", "(b)()"), c("gsub", "abc", "()", "%1"), c("gsub", "abc", "(b)", "[%1%0%%]"),
    c("gsub", "abc", "%w", "%1"), c("gsub", "abc", "%w", { "fn", "cat" }),
    c("gsub", "abc", "(%w)()", { "fn", "cat" }), c("gsub", "abc", "()", { "tbl" }),
    c("gsub", "a b c", "%w", { "tbl" }), c("gsub", "ab", "%w+", { "tbl" }),
    c("gsub", "abd", "%w", { "tbl" }), c("gsub", "abc", "%w", 7), c("gsub", "abc", "%w", 1.5),
    c("gsub", "abc", "%w", "%", 0), c("gsub", "abc", "%w", "x", -1), c("gsub", "abc", "%w", "x", 2),
    c("gsub", "abc", "%w", { "fn", "num" }), c("gsub", "abc", "%w", { "fn", "none" }),
    c("gsub", "abc", "%w", { "fn", "no" }), c("gsub", "abc", "%w", { "fn", "first" }),
    c("gsub", "hello world", "(o)", "%1%1"), c("gsub", "abc", "", "%0"),
    c("match", "  trim  ", "^%s*(.-)%s*$"), c("match", "2024-01-02", "(%d+)-(%d+)-(%d+)"),
    c("match", "x", "()()()()()()()()()()"),
}

-- ---------------------------------------------------------------------------------------

describe("fsm patterns", function()
    teardown(S.cleanup)

    local limits = { instructions_max = 2000000000 }

    it("match stock Lua on the edge cases, errors and all", function()
        local m = S.open(EVAL, limits)
        local bad, want = differ(m, EDGES)
        assert.are.same({}, bad)
        -- the list does reach what it means to: errors of each kind, and matches
        local all = table.concat(want, "\n")
        for _, text in ipairs({
            "ends with '%'", "missing ']'", "missing arguments to '%b'", "missing '[' after '%f'",
            "invalid capture index %1", "invalid capture index %0", "invalid pattern capture",
            "unfinished capture", "pattern too complex", "too many captures",
            "invalid use of '%' in replacement string", "invalid replacement value (a table)",
            "invalid replacement value (a boolean)", "string/function/table expected",
            "number has no integer representation",
        }) do
            assert.is_truthy(all:find(text, 1, true), text)
        end
        m:close()
    end)

    -- LUARAFT_PATTERN_CASES=N for a longer run, LUARAFT_PATTERN_SEED another seed
    local count = tonumber(os.getenv("LUARAFT_PATTERN_CASES") or "") or 6000
    local seed = tonumber(os.getenv("LUARAFT_PATTERN_SEED") or "") or 20261204

    it("match stock Lua on " .. count .. " generated cases", function()
        local m = S.open(EVAL, limits)
        local r = lcg(seed)
        local cases = {}
        for i = 1, count do cases[i] = gen_case(r) end
        local bad, want = differ(m, cases)
        assert.are.same({}, bad)
        -- the generator is worth something: many matches, many errors, many misses
        local errors, misses, finds = 0, 0, 0
        for _, w in ipairs(want) do
            if w:match("^%(false") then errors = errors + 1
            elseif w == "(true,nil)" then misses = misses + 1
            else finds = finds + 1 end
        end
        print(string.format("pattern_spec: %d generated cases: %d errors, %d misses, %d others",
            #cases, errors, misses, finds))
        assert.is_true(errors > count // 20 and misses > count // 20 and finds > count // 3)
        m:close()
    end)

    it("are the sandbox's own, also as methods of strings", function()
        local m = S.open(EVAL, { instructions_max = 1000000 })
        -- the string metatable's __index is the string table, so s:find is pattern.c's
        assert.are.same(budget, S.apply(m, { "EVAL",
            "return (('a'):rep(40)):find(('a*'):rep(40) .. 'b')" }))
        assert.are.same(budget, S.apply(m, { "EVAL",
            "for x in (('a'):rep(40)):gmatch(('a*'):rep(40) .. 'b') do end" }))
        assert.are.equal("false", S.apply(m, { "EVAL", "return tostring(getmetatable(''))" }))
        m:close()
    end)
end)

describe("fsm patterns under the budget", function()
    teardown(S.cleanup)

    local limits = { instructions_max = 2000000 }

    local WEDGES = {
        ["the issue's backtracking find"] = "return string.find(('a'):rep(40), ('a*'):rep(40) .. 'b')",
        ["match"] = "return string.match(('a'):rep(40), ('a*'):rep(40) .. 'b')",
        ["gsub"] = "return string.gsub(('a'):rep(40), ('a*'):rep(40) .. 'b', 'x')",
        ["gmatch"] = "for x in string.gmatch(('a'):rep(40), ('a*'):rep(40) .. 'b') do end",
        ["nested captures"] = "return string.find(('a'):rep(60), ('(a*)'):rep(30) .. 'b')",
        ["lazy items"] = "return string.find(('a'):rep(60), ('a-'):rep(30) .. 'b')",
        ["%b on a huge string"] = "return string.find(('('):rep(1000000), '%b()')",
        ["a huge set tried at every byte"] =
            "return string.find(('a'):rep(1000000), '[' .. ('b'):rep(100000) .. ']')",
        ["back-references"] = "return string.find(('a'):rep(100000), '(a*)%1b')",
        ["plain find"] = "return string.find(('a'):rep(1000000), ('a'):rep(10000) .. 'b', 1, true)",
        ["pcall around it"] = [[
            for i = 1, 1e9 do pcall(string.find, ('a'):rep(40), ('a*'):rep(40) .. 'b') end
            M.state.escaped = true]],
        ["a long replacement scanned at every match"] =
            "return string.gsub(('b'):rep(100000), '(a*)', ('%1'):rep(100000))",
    }

    local names = {}
    for name in pairs(WEDGES) do names[#names + 1] = name end
    table.sort(names) -- the same order on every run
    for _, name in ipairs(names) do
        local code = WEDGES[name]
        it("stop " .. name .. " with the budget's error, soon", function()
            local m = S.open(EVAL, limits)
            local t0 = os.clock()
            assert.are.same(budget, S.apply(m, { "EVAL", code }))
            assert.is_true(os.clock() - t0 < 10, tostring(os.clock() - t0))
            assert.are.equal(S.fsm.null, S.apply(m, { "EVAL", "return M.state.escaped" }))
            assert.are.equal("after", S.apply(m, { "EVAL", "return 'after'" }))
            m:close()
        end)
    end

    it("charge by the steps, not by the sizes", function()
        -- two finds over the same 30 bytes: one fails at once at every position, the
        -- other backtracks through every way of splitting them among four a*
        local function cost(code)
            local lo, hi = 1, 10000000
            while lo < hi do
                local mid = (lo + hi) // 2
                local m = S.open(EVAL, { instructions_max = mid })
                if S.apply(m, { "EVAL", code }) == S.fsm.null then hi = mid else lo = mid + 1 end
                m:close()
            end
            return lo
        end
        local cheap = cost("string.find(('a'):rep(30), 'b')")
        local dear = cost("string.find(('a'):rep(30), ('a*'):rep(4) .. 'b')")
        print(string.format("pattern_spec: instructions for a failing find: %d; with 4 a*: %d",
            cheap, dear))
        assert.is_true(cheap < 200, tostring(cheap))
        assert.is_true(dear > 100000, tostring(dear))
    end)

    it("abort at the same instruction on replicas with different histories", function()
        local code = [[
            M.state.n = 0
            local s = ('a'):rep(12) .. 'b'
            string.gsub(s:rep(50), '(a*)(a*)(a*)b', function()
                M.state.n = M.state.n + 1
                string.find(('a'):rep(12), ('a*'):rep(4) .. 'c')
            end)]]
        local function fresh(max)
            return S.open(EVAL, { instructions_max = max })
        end
        local function replayed(max)
            -- another history: garbage, other commands, then the same state
            local m = fresh(max)
            S.apply(m, { "EVAL", [[
                local t = {}
                for i = 1, 2000 do t[i] = ('x'):rep(i % 50) .. i end
                M.state.junk = t]] })
            S.apply(m, { "EVAL", "M.state.junk = nil" })
            return m
        end
        local function completes(open, max)
            local m = open(max)
            local ok = S.apply(m, { "EVAL", code }) == S.fsm.null
            m:close()
            return ok
        end
        -- the least budget that lets the command finish: found by bisection on each
        local function least(open)
            local lo, hi = 1, 20000000
            while lo < hi do
                local mid = (lo + hi) // 2
                if completes(open, mid) then hi = mid else lo = mid + 1 end
            end
            return lo
        end
        local a, b = least(fresh), least(fresh)
        assert.are.equal(a, b)
        -- the other history pays its own commands from their own budgets: the same
        assert.are.equal(a, least(replayed))
        -- one less aborts, and midway the partial changes are the same everywhere
        local half = a // 2
        local states = {}
        for _, open in ipairs({ fresh, replayed }) do
            local m = open(half)
            assert.are.same(budget, S.apply(m, { "EVAL", code }))
            states[#states + 1] = S.apply(m, { "EVAL", "return M.state.n" })
            m:close()
        end
        assert.is_true(states[1] > 0 and states[1] < 50, tostring(states[1]))
        assert.are.equal(states[1], states[2])
        local m = fresh(a - 1)
        assert.are.same(budget, S.apply(m, { "EVAL", code }))
        m:close()
        print(string.format("pattern_spec: the command completes with %d instructions, "
            .. "not with %d; at %d it stops after %d replacements everywhere", a, a - 1, half,
            states[1]))
    end)

    it("refuse a gsub result over the memory budget before building it", function()
        -- the state may hold 64 MiB; the command may ask for 8: a 100 MB result is refused
        -- by the command's budget while its buffer is small, not by the state's limit
        local m = S.open(EVAL, {
            instructions_max = 100000000,
            memory_bytes_max = 64 * 1024 * 1024,
            command_memory_bytes_max = 8 * 1024 * 1024,
        })
        assert.are.same(memory, S.apply(m, { "EVAL",
            "return #string.gsub(('a'):rep(1000), '', ('x'):rep(100000))" }))
        assert.are.same(memory, S.apply(m, { "EVAL",
            "return #string.gsub(('a'):rep(100000), 'a', ('%0'):rep(1000))" }))
        -- a result within the budget is built
        assert.are.equal(2 * 1000000, S.apply(m, { "EVAL",
            "return #string.gsub(('a'):rep(1000000), 'a', 'bb')" }))
        m:close()
    end)
end)
