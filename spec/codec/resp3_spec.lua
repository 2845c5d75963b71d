-- Replies as a connection gets them (src/client/resp3.c): the RESP2 mapping of
-- src/client/resp3.h byte for byte, the fsm's hints for both protocols, and that replies
-- with nothing to change pass through untouched.
local codec = require("luaraft.codec")

local function down(s)
    return codec.resp3_edit(s, 2)
end

local function needs2(s)
    return codec.resp3_needs_edit(s, 2)
end

describe("RESP3 to RESP2", function()
    it("leaves RESP2 replies as they are", function()
        for _, r in ipairs({
            "+OK\r\n",
            "-ERR no\r\n",
            ":42\r\n",
            "$3\r\nabc\r\n",
            "$-1\r\n",
            "*-1\r\n",
            "*0\r\n",
            "*2\r\n$1\r\na\r\n:1\r\n",
        }) do
            assert.is_false(needs2(r), r)
            assert.are.equal(r, down(r))
        end
    end)

    it("flattens maps and turns sets and pushes into arrays", function()
        local map = "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n"
        assert.is_true(needs2(map))
        assert.are.equal("*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n", down(map))
        assert.are.equal("*2\r\n$1\r\nx\r\n$1\r\ny\r\n", down("~2\r\n$1\r\nx\r\n$1\r\ny\r\n"))
        assert.are.equal("*1\r\n:7\r\n", down(">1\r\n:7\r\n"))
        assert.are.equal("*0\r\n", down("%0\r\n"))
    end)

    it("converts the scalar types as Redis does for RESP2", function()
        assert.are.equal("$-1\r\n", down("_\r\n"))
        assert.are.equal(":1\r\n", down("#t\r\n"))
        assert.are.equal(":0\r\n", down("#f\r\n"))
        assert.are.equal("$4\r\n1.25\r\n", down(",1.25\r\n"))
        assert.are.equal("$3\r\ninf\r\n", down(",inf\r\n"))
        assert.are.equal("$5\r\n12345\r\n", down("(12345\r\n"))
        assert.are.equal("$5\r\nhello\r\n", down("=9\r\ntxt:hello\r\n"))
        assert.are.equal("-ERR x\r\n", down("!5\r\nERR x\r\n"))
    end)

    it("converts inside nested arrays, and drops attributes", function()
        local nested = "*3\r\n_\r\n%1\r\n$1\r\nk\r\n~1\r\n#t\r\n,0.5\r\n"
        assert.is_true(needs2(nested))
        assert.are.equal("*3\r\n$-1\r\n*2\r\n$1\r\nk\r\n*1\r\n:1\r\n$3\r\n0.5\r\n", down(nested))
        assert.are.equal(":5\r\n", down("|1\r\n$3\r\nttl\r\n:3\r\n:5\r\n"))
    end)

    it("refuses what is not one well-formed reply", function()
        for _, bad in ipairs({
            "",
            "%1\r\n$1\r\na\r\n",      -- a map without its value
            "*2\r\n:1\r\n",            -- too few elements
            "$5\r\nab\r\n",            -- short bulk
            "#x\r\n",                  -- no such boolean
            "=3\r\nabc\r\n",           -- verbatim without its format
            ":1\r\n:2\r\n",            -- two replies
            "?\r\n",                   -- no such type
            "_x\r\n",
        }) do
            assert.is_nil(down(bad), bad)
            assert.is_false(needs2(bad), bad)
        end
        -- Nesting deeper than the converter walks is refused, not a stack overflow.
        assert.is_nil(down(string.rep("*1\r\n", 100000) .. ":1\r\n"))
    end)

    it("follows the fsm's hints, and never sends an attribute", function()
        local pairs3 = "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n"
        local hinted = "|1\r\n+luaraft:pairs\r\n#t\r\n" .. pairs3
        -- RESP2: flat member, score, member, score, as Redis's ZRANGE WITHSCORES.
        assert.are.equal("*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$3\r\n2.5\r\n", down(hinted))
        -- RESP3: the nested pairs, without the attribute.
        assert.is_true(codec.resp3_needs_edit(hinted, 3))
        assert.are.equal(pairs3, codec.resp3_edit(hinted, 3))
        assert.are.equal("*0\r\n", down("|1\r\n+luaraft:pairs\r\n#t\r\n*0\r\n"))
        -- Inside an EXEC's array too.
        assert.are.equal("*2\r\n+OK\r\n" .. pairs3,
            codec.resp3_edit("*2\r\n+OK\r\n" .. hinted, 3))
        local null = "|1\r\n+luaraft:null-array\r\n#t\r\n_\r\n"
        assert.are.equal("*-1\r\n", down(null))
        assert.are.equal("_\r\n", codec.resp3_edit(null, 3))
        -- A reply for RESP3 with no attribute is never touched.
        assert.is_false(codec.resp3_needs_edit("%1\r\n$1\r\na\r\n,1\r\n", 3))
        -- A hint before a reply of another shape is refused.
        assert.is_nil(down("|1\r\n+luaraft:pairs\r\n#t\r\n*1\r\n:1\r\n"))
        assert.is_nil(down("|1\r\n+luaraft:null-array\r\n#t\r\n:1\r\n"))
    end)
end)
