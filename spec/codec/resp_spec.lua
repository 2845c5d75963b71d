-- The RESP request parser and reply encoder (src/client/resp.c) through luaraft.codec.
-- The parser must give the same commands, and the same error, however the bytes are
-- split; every limit and every malformed shape must end in Redis's protocol error.
-- LUARAFT_SEED=S replays the fuzz with seed S.
local codec = require("luaraft.codec")

local function parse(bytes, limits)
  local p = codec.resp_parser(limits)
  local cmds, err, before = p:feed(bytes)
  p:close()
  if cmds == nil then return before, err end
  return cmds, nil
end

-- Feeds the chunks one by one; returns every command and the error, if any.
local function parse_chunks(chunks, limits)
  local p = codec.resp_parser(limits)
  local all = {}
  for _, chunk in ipairs(chunks) do
    local cmds, err, before = p:feed(chunk)
    for _, c in ipairs(cmds or before) do all[#all + 1] = c end
    if err then p:close() return all, err end
  end
  p:close()
  return all, nil
end

local function expect_error(bytes, message, limits)
  local _, err = parse(bytes, limits)
  assert.equals(message, err)
end

local PIPELINE = table.concat{
  "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n",
  "PING\r\n",
  "*0\r\n",
  "*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
  "\r\n",
  "set \"a b\" 'c\\'d' \"\\x41\\n\"\n",
  "*-1\r\n",
  "*1\r\n$4\r\nQUIT\r\n",
}
local PIPELINE_CMDS = {
  {"SET", "key", "va\r\nl"}, {"PING"}, {"GET", ""}, {"set", "a b", "c'd", "A\n"}, {"QUIT"},
}

describe("resp parser", function()
  it("parses pipelined multibulk and inline commands from one buffer", function()
    local cmds, err = parse(PIPELINE)
    assert.is_nil(err)
    assert.same(PIPELINE_CMDS, cmds)
  end)

  it("gives the same commands at every split point, and one byte at a time", function()
    for i = 0, #PIPELINE do
      local cmds, err = parse_chunks{PIPELINE:sub(1, i), PIPELINE:sub(i + 1)}
      assert.is_nil(err)
      assert.same(PIPELINE_CMDS, cmds, "split at " .. i)
    end
    local bytes = {}
    for i = 1, #PIPELINE do bytes[i] = PIPELINE:sub(i, i) end
    local cmds = parse_chunks(bytes)
    assert.same(PIPELINE_CMDS, cmds)
  end)

  it("holds back an incomplete command until the rest arrives", function()
    local p = codec.resp_parser()
    assert.same({}, p:feed("*2\r\n$3\r\nGET\r\n$1\r\n"))
    assert.same({}, p:feed("k"))
    assert.same({{"GET", "k"}}, p:feed("\r\nPI"))
    assert.same({{"PING"}}, p:feed("NG\n"))
    p:close()
  end)

  it("keeps binary bytes of bulk arguments intact", function()
    local blob = "\0\r\n\255*$ \"'"
    local cmds = parse("*2\r\n$3\r\nSET\r\n$" .. #blob .. "\r\n" .. blob .. "\r\n")
    assert.same({{"SET", blob}}, cmds)
  end)

  it("splits inline commands with Redis's quoting rules", function()
    local cases = {
      {"a b\tc\n", {"a", "b", "c"}},
      {"  a   b  \r\n", {"a", "b"}},
      {"\"a b\" 'c d'\n", {"a b", "c d"}},
      {"\"\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n", {"\n\r\t\b\a\\\"q"}},
      {"\"\\x41\\x7a\\xZZ\"\n", {"AzxZZ"}}, -- a bad \x escape is just x, as in Redis
      {"'it\\'s' 'a\\nb'\n", {"it's", "a\\nb"}},
      {"foo\"bar baz\" x\n", {"foobar baz", "x"}},
      {"\"\" ''\n", {"", ""}},
      {"a\r b\n", {"a", "b"}},
    }
    for _, case in ipairs(cases) do
      local cmds, err = parse(case[1])
      assert.is_nil(err, case[1])
      assert.same({case[2]}, cmds, case[1])
    end
  end)

  it("skips empty inline lines and empty multibulk commands", function()
    assert.same({}, (parse("\n\r\n   \n*0\r\n*-1\r\n")))
  end)

  it("refuses unbalanced quotes in inline commands", function()
    for _, line in ipairs{"\"abc\n", "'abc\n", "\"abc\"def\n", "'a'b\n", "\"abc\\\"\n", "\"a\\\n"} do
      expect_error(line, "Protocol error: unbalanced quotes in request")
    end
  end)

  it("answers malformed multibulk input with Redis's errors", function()
    local cases = {
      {"*abc\r\n", "Protocol error: invalid multibulk length"},
      {"*\r\n", "Protocol error: invalid multibulk length"},
      {"*01\r\n", "Protocol error: invalid multibulk length"},
      {"*+1\r\n", "Protocol error: invalid multibulk length"},
      {"*1 \r\n", "Protocol error: invalid multibulk length"},
      {"*1\rx", "Protocol error: invalid multibulk length"},
      {"*99999999999999999999\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\nx", "Protocol error: expected '$', got 'x'"},
      {"*1\r\n\r\n", "Protocol error: expected '$', got '?'"},
      {"*2\r\n$1\r\na\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$3\r\nabcXY", "Protocol error: expected CRLF after bulk data"},
      {"*1\r\n$3\r\nabc\rX", "Protocol error: expected CRLF after bulk data"},
    }
    for _, case in ipairs(cases) do expect_error(case[1], case[2]) end
  end)

  it("enforces each limit, accepting exactly the limit", function()
    local limits = {args_max = 3, bulk_bytes_max = 5, inline_bytes_max = 10,
                    line_bytes_max = 6, query_bytes_max = 64}
    -- args_max
    assert.same({{"a", "b", "c"}}, (parse("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", limits)))
    expect_error("*4\r\n", "Protocol error: invalid multibulk length", limits)
    -- bulk_bytes_max
    assert.same({{"12345"}}, (parse("*1\r\n$5\r\n12345\r\n", limits)))
    expect_error("*1\r\n$6\r\n", "Protocol error: invalid bulk length", limits)
    -- inline_bytes_max, with and without the newline in yet
    assert.same({{"123", "56789"}}, (parse("123 56789\r\n", limits)))
    expect_error("123 567890\r\n", "Protocol error: too big inline request", limits)
    expect_error("12345678901", "Protocol error: too big inline request", limits)
    assert.same({}, (parse("1234567890", limits)))
    -- line_bytes_max: "*<n>" and "$<n>" lines
    assert.same({}, (parse("*00003", limits)))
    expect_error("*000003", "Protocol error: too big mbulk count string", limits)
    expect_error("*1\r\n$000005", "Protocol error: too big bulk count string", limits)
    -- query_bytes_max: unparsed bytes held at once
    expect_error(string.rep("x", 65), "Protocol error: too big query buffer",
                 {query_bytes_max = 64})
    -- defaults are Redis's
    local d = codec.resp_limits()
    assert.equals(1024 * 1024, d.args_max)
    assert.equals(512 * 1024 * 1024, d.bulk_bytes_max)
    assert.equals(64 * 1024, d.inline_bytes_max)
    expect_error("*1048577\r\n", "Protocol error: invalid multibulk length")
    expect_error("*1\r\n$536870913\r\n", "Protocol error: invalid bulk length")
    expect_error(string.rep("a", 64 * 1024 + 1), "Protocol error: too big inline request")
  end)

  it("does not allocate for a huge announced count before the arguments arrive", function()
    -- A million arguments announced, two sent: the parser waits with small arrays (the
    -- sanitizer build would flag an allocation of the announced size only if it failed,
    -- so this checks behaviour: no error, no commands, then the error on a bad byte).
    local p = codec.resp_parser()
    assert.same({}, p:feed("*1048576\r\n$1\r\na\r\n$1\r\nb\r\n"))
    local cmds, err = p:feed("x")
    assert.is_nil(cmds)
    assert.equals("Protocol error: expected '$', got 'x'", err)
    p:close()
  end)

  it("keeps an error sticky and returns the commands parsed before it", function()
    local p = codec.resp_parser()
    local cmds, err, before = p:feed("PING\r\n*1\r\n$x\r\n")
    assert.is_nil(cmds)
    assert.equals("Protocol error: invalid bulk length", err)
    assert.same({{"PING"}}, before)
    local cmds2, err2 = p:feed("PING\r\n")
    assert.is_nil(cmds2)
    assert.equals(err, err2)
    p:close()
    assert.has_error(function() p:feed("x") end)
  end)

  it("survives seeded random mutations: same outcome whole or split, never a crash", function()
    local seed = tonumber(os.getenv("LUARAFT_SEED") or "") or 20261125
    math.randomseed(seed)
    local alphabet = {"*", "$", "\r", "\n", "\r\n", " ", "\"", "'", "\\", "\\x4", "0", "1",
                      "-", "9", "a", "\0", "\255"}
    local limits = {args_max = 64, bulk_bytes_max = 256, inline_bytes_max = 128,
                    line_bytes_max = 16}
    for round = 1, 3000 do
      local s = PIPELINE
      for _ = 1, math.random(1, 4) do
        local pos = math.random(1, #s + 1)
        local op = math.random(1, 3)
        local piece = alphabet[math.random(#alphabet)]
        if op == 1 then
          s = s:sub(1, pos - 1) .. piece .. s:sub(pos)
        elseif op == 2 then
          s = s:sub(1, pos - 1) .. s:sub(pos + math.random(1, 3))
        else
          s = s:sub(1, pos - 1) .. piece .. s:sub(pos + 1)
        end
      end
      local whole_cmds, whole_err = parse_chunks({s}, limits)
      local chunks, i = {}, 1
      while i <= #s do
        local n = math.random(1, 7)
        chunks[#chunks + 1] = s:sub(i, i + n - 1)
        i = i + n
      end
      local cmds, err = parse_chunks(chunks, limits)
      local where = string.format("seed %d round %d input %q", seed, round, s)
      assert.same(whole_cmds, cmds, where)
      assert.equals(whole_err, err, where)
      if err then assert.truthy(err:find("^Protocol error: "), where) end
    end
  end)
end)

describe("resp reply encoder", function()
  it("encodes each reply type", function()
    assert.equals("$5\r\nhello\r\n", codec.resp_encode("hello"))
    assert.equals("$0\r\n\r\n", codec.resp_encode(""))
    assert.equals(":42\r\n", codec.resp_encode(42))
    assert.equals(":-9223372036854775808\r\n", codec.resp_encode(math.mininteger))
    assert.equals(":0\r\n", codec.resp_encode(0))
    assert.equals("$-1\r\n", codec.resp_encode(nil))
    assert.equals("$-1\r\n", codec.resp_encode(false))
    assert.equals(":1\r\n", codec.resp_encode(true))
    assert.equals("+OK\r\n", codec.resp_encode{ok = "OK"})
    assert.equals("-ERR bad  thing\r\n", codec.resp_encode{err = "ERR bad\r\nthing"})
    assert.equals("*0\r\n", codec.resp_encode{})
    assert.equals("*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n",
                  codec.resp_encode{1, {"x"}, false})
  end)

  it("round-trips arrays of bulk strings through the parser", function()
    local cmd = {"SET", "k", "\0\r\n", ""}
    assert.same({cmd}, (parse(codec.resp_encode(cmd))))
  end)

  it("refuses replies it cannot encode", function()
    assert.has_error(function() codec.resp_encode(1.5) end)
    assert.has_error(function() codec.resp_encode(print) end)
    local deep = {}
    for _ = 1, 200 do deep = {deep} end
    assert.has_error(function() codec.resp_encode(deep) end)
  end)
end)
