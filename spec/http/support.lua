-- Shared by the spec/http specs (loaded with dofile, so busted does not run it as a
-- spec): spec/node/support.lua's real clusters with --http on each node, a plain HTTP
-- client over luasocket (one request per connection, or raw bytes), and a strict parser
-- of the Prometheus text exposition format (version 0.0.4).
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$")
local S = dofile(here .. "/../node/support.lua")
local socket = require("socket")

S.json = require("dkjson")

-- A cluster whose node i also serves HTTP on base+200+i (all three port blocks free).
function S.http_cluster(opts)
    for _ = 1, 20 do
        local c = S.cluster(opts)
        local free = true
        for i = 1, c.n do
            free = free and S.port_free(c.base + 200 + i)
        end
        if free then
            function c.http_port(self, i)
                return self.base + 200 + i
            end
            local start = c.start
            local flags = c.flags
            function c.start(self, i)
                self.flags = { "--http", "127.0.0.1:" .. self:http_port(i) }
                for _, f in ipairs(flags) do
                    self.flags[#self.flags + 1] = f
                end
                start(self, i)
            end
            return c
        end
        os.execute("rm -rf " .. S.quote(c.dir))
    end
    error("no free ports for HTTP")
end

-- Sends bytes to 127.0.0.1:port and reads until the server closes the connection (or
-- `seconds` pass). Returns what came back, and "closed" or the socket error.
function S.http_raw(port, bytes, seconds)
    local tcp = assert(socket.tcp())
    tcp:settimeout(seconds or 5)
    local ok, err = tcp:connect("127.0.0.1", port)
    if not ok then
        tcp:close()
        return "", err
    end
    if bytes ~= "" then
        tcp:send(bytes)
    end
    local parts = {}
    local why
    repeat
        local data, e, partial = tcp:receive(4096)
        parts[#parts + 1] = data or partial
        why = e
    until data == nil
    tcp:close()
    return table.concat(parts), why
end

-- Parses one HTTP response: {status, headers (lowercase names), body}, or nil.
function S.parse_response(text)
    local head, body = text:match("^(.-)\r\n\r\n(.*)$")
    if head == nil then
        return nil
    end
    local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
    local headers = {}
    for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
        headers[name:lower()] = value
    end
    return { status = status, headers = headers, body = body }
end

-- GET path from node port (Connection: close): the parsed response, or nil and why.
function S.get(port, path, method)
    local text, why = S.http_raw(port, (method or "GET") .. " " .. path
        .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    local r = S.parse_response(text)
    if r == nil then
        return nil, why
    end
    return r
end

-- The /status of a node as a table, or nil while it does not answer.
function S.status(port)
    local r = S.get(port, "/status")
    if r == nil or r.status ~= 200 then
        return nil
    end
    return (S.json.decode(r.body))
end

-- ---------------------------------------------------------------------------------
-- The Prometheus text format, strictly: every sample belongs to the family of the
-- # TYPE line before it (a histogram's _bucket, _sum and _count included), names and
-- label names are legal, label values are quoted with \\, \" and \n escapes only, values
-- are floats (or +Inf, -Inf, NaN), no family appears twice. A histogram's buckets have
-- increasing le bounds, counts that never decrease, a last bucket le="+Inf" equal to
-- _count, and a _sum. Raises an error naming the line that breaks a rule; returns
-- {families = {name = {type, help, samples = {{name, labels, value}}}}}.

local metric_name = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local label_name = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local types = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function parse_value(text, where)
    if text == "+Inf" then
        return math.huge
    elseif text == "-Inf" then
        return -math.huge
    elseif text == "NaN" then
        return 0 / 0
    end
    -- Decimal floats only (Lua's tonumber would also take hex and spaces).
    local v = text:match("^[-+]?[0-9]*%.?[0-9]+[eE]?[-+]?[0-9]*$") and tonumber(text)
    assert(v, where .. ": bad value '" .. text .. "'")
    return v
end

-- The labels between { and }: a table, and the rest of the line after }.
local function parse_labels(s, where)
    local labels, pos = {}, 1
    while true do
        if s:sub(pos, pos) == "}" then
            return labels, s:sub(pos + 1)
        end
        local name, after = s:match("^([^=]+)=\"()", pos)
        assert(name and name:match(label_name), where .. ": bad label name")
        assert(labels[name] == nil, where .. ": label " .. name .. " twice")
        local value, i = {}, after
        while true do
            local ch = s:sub(i, i)
            assert(ch ~= "", where .. ": unterminated label value")
            if ch == "\\" then
                local esc = s:sub(i + 1, i + 1)
                assert(esc == "\\" or esc == "\"" or esc == "n", where .. ": bad escape")
                value[#value + 1] = esc == "n" and "\n" or esc
                i = i + 2
            elseif ch == "\"" then
                i = i + 1
                break
            else
                value[#value + 1] = ch
                i = i + 1
            end
        end
        labels[name] = table.concat(value)
        local sep = s:sub(i, i)
        assert(sep == "," or sep == "}", where .. ": expected , or } after a label")
        pos = sep == "," and i + 1 or i
    end
end

local function family_of(sample, families, current)
    if current == nil then
        return nil
    end
    if sample == current.name then
        return current
    end
    if current.type == "histogram" then
        for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
            if sample == current.name .. suffix then
                return current
            end
        end
    end
    return nil
end

local function check_histogram(f)
    local buckets, count, sum = {}, nil, nil
    for _, s in ipairs(f.samples) do
        if s.name == f.name .. "_bucket" then
            assert(s.labels.le, f.name .. ": a bucket without le")
            buckets[#buckets + 1] = { le = parse_value(s.labels.le, f.name), n = s.value }
        elseif s.name == f.name .. "_count" then
            count = s.value
        elseif s.name == f.name .. "_sum" then
            sum = s.value
        end
    end
    assert(#buckets > 0 and count and sum, f.name .. ": buckets, _sum and _count are needed")
    for i = 2, #buckets do
        assert(buckets[i].le > buckets[i - 1].le, f.name .. ": le bounds must increase")
        assert(buckets[i].n >= buckets[i - 1].n, f.name .. ": bucket counts must not decrease")
    end
    assert(buckets[#buckets].le == math.huge, f.name .. ": the last bucket must be +Inf")
    assert(buckets[#buckets].n == count, f.name .. ": the +Inf bucket must equal _count")
    f.count, f.sum, f.buckets = count, sum, buckets
end

function S.parse_metrics(text)
    assert(text:sub(-1) == "\n", "the exposition must end with a newline")
    local families, current, lineno = {}, nil, 0
    for line in text:gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        local where = "line " .. lineno .. " '" .. line .. "'"
        local help_name, help = line:match("^# HELP (%S+) (.*)$")
        local type_name, type = line:match("^# TYPE (%S+) (%S+)$")
        if help_name then
            assert(help_name:match(metric_name), where .. ": bad name")
            assert(families[help_name] == nil, where .. ": family seen before")
            families[help_name] = { name = help_name, help = help, samples = {} }
        elseif type_name then
            assert(types[type], where .. ": unknown type")
            local f = families[type_name]
            assert(f and f.type == nil and #f.samples == 0, where .. ": TYPE after HELP, once")
            f.type = type
            current = f
        elseif line:match("^#") or line == "" then
            assert(line == "" or line:match("^# "), where .. ": bad comment")
        else
            local name, rest = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$")
            assert(name, where .. ": no metric name")
            local labels = {}
            if rest:sub(1, 1) == "{" then
                labels, rest = parse_labels(rest:sub(2), where)
            end
            local value = rest:match("^ (%S+)$")
            assert(value, where .. ": expected one space and a value (no timestamps here)")
            local f = family_of(name, families, current)
            assert(f, where .. ": a sample outside its family")
            f.samples[#f.samples + 1] = { name = name, labels = labels, value = parse_value(value, where) }
        end
    end
    for name, f in pairs(families) do
        assert(f.type, name .. ": HELP without TYPE")
        if f.type == "histogram" then
            check_histogram(f)
        end
    end
    return { families = families }
end

-- The value of the sample name{labels} (labels: a table that must match exactly).
function S.sample(m, name, labels)
    labels = labels or {}
    for _, f in pairs(m.families) do
        for _, s in ipairs(f.samples) do
            if s.name == name then
                local same = true
                for k, v in pairs(labels) do
                    same = same and s.labels[k] == v
                end
                for k in pairs(s.labels) do
                    same = same and labels[k] ~= nil
                end
                if same then
                    return s.value
                end
            end
        end
    end
    return nil
end

-- /metrics of a node, parsed (raises if it does not parse).
function S.metrics(port)
    local r = assert(S.get(port, "/metrics"))
    assert(r.status == 200, "/metrics answered " .. tostring(r.status))
    assert(r.headers["content-type"]:match("^text/plain; version=0%.0%.4"), "content type")
    return S.parse_metrics(r.body)
end

return S
