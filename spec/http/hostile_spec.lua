-- The HTTP port against hostile or broken clients, on one real node started with --http.
--
-- Can catch: malformed requests not answered 400, oversized ones not 431, methods other
-- than GET and HEAD not 405, unknown paths not 404; pipelined requests answered out of
-- order or not at all; HTTP/1.0 connections left open; a slow sender (slowloris) never
-- disconnected; connections past the bound accepted and held; and, after each of these,
-- a node that stopped serving HTTP or its clients (RESP).
-- Cannot catch: resource use under a flood at scale (the spec opens tens of connections,
-- not thousands), or how a real browser handles keep-alive (page_spec.lua loads the page).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/support.lua")
local socket = require("socket")

describe("the HTTP port", function()
    local c, port

    setup(function()
        c = S.http_cluster{ n = 1 }
        c:start_all()
        c:wait_leader(20)
        port = c:http_port(1)
        S.wait(10, "/health 200", function()
            local r = S.get(port, "/health")
            return r and r.status == 200
        end)
    end)

    teardown(function()
        c:stop()
    end)

    -- The node still serves both its ports.
    local function still_serving()
        local r = assert(S.get(port, "/health"))
        assert.are.equal(200, r.status)
        assert.are.equal("PONG", c:rc(1, "PING"))
    end

    local function answer_to(bytes)
        local text, why = S.http_raw(port, bytes)
        assert.are.equal("closed", why) -- each of these ends the connection
        return assert(S.parse_response(text), "no HTTP answer to " .. bytes:sub(1, 40))
    end

    it("answers malformed requests 400 and keeps serving", function()
        for _, bytes in ipairs({
            "GARBAGE\r\n\r\n",
            "GET / HTTP/9.9.9\r\n\r\n",
            "GET /status HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
            "GET /status HTTP/1.1\r\nbad header line\r\n\r\n",
            "\0\1\2\3\r\n\r\n",
        }) do
            assert.are.equal(400, answer_to(bytes).status, bytes)
            still_serving()
        end
    end)

    it("answers 431 to requests over the bound, 405 to other methods, 404 elsewhere", function()
        local big = "GET /status HTTP/1.1\r\nHost: a\r\nX-Pad: " .. string.rep("a", 20000) .. "\r\n\r\n"
        assert.are.equal(431, answer_to(big).status)
        local long_url = "GET /" .. string.rep("u", 5000) .. " HTTP/1.1\r\nHost: a\r\n\r\n"
        assert.are.equal(431, answer_to(long_url).status)
        local many = { "GET /status HTTP/1.1\r\n" }
        for i = 1, 2000 do
            many[#many + 1] = "X-" .. i .. ": y\r\n"
        end
        assert.are.equal(431, answer_to(table.concat(many) .. "\r\n").status)
        for _, method in ipairs({ "POST", "PUT", "DELETE", "OPTIONS" }) do
            local r = answer_to(method .. " /status HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
            assert.are.equal(405, r.status)
            assert.are.equal("GET, HEAD", r.headers["allow"])
        end
        assert.are.equal(404, assert(S.get(port, "/nope")).status)
        assert.are.equal(404, assert(S.get(port, "/metrics/x")).status)
        assert.are.equal(404, assert(S.get(port, "*")).status)
        still_serving()
    end)

    it("answers pipelined requests in order and closes HTTP/1.0 connections", function()
        local text, why = S.http_raw(port, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"
            .. "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"
            .. "GET /status HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert.are.equal("closed", why)
        local statuses = {}
        for code in text:gmatch("HTTP/1%.1 (%d%d%d) ") do
            statuses[#statuses + 1] = tonumber(code)
        end
        assert.are.same({ 200, 404, 200 }, statuses)
        local r = answer_to("GET /status HTTP/1.0\r\n\r\n")
        assert.are.equal(200, r.status)
        assert.are.equal("close", r.headers["connection"])
        still_serving()
    end)

    it("disconnects a slow sender, and refuses connections past the bound", function()
        -- Slowloris: half a request, then nothing. The server's deadline (10 s to
        -- complete a request) closes it; meanwhile others are served.
        local slow = assert(socket.tcp())
        slow:settimeout(20)
        assert(slow:connect("127.0.0.1", port))
        slow:send("GET /status HTTP/1.1\r\nHost: a\r\n")
        still_serving()
        local t0 = S.now()
        local data, err = slow:receive(1)
        assert.is_nil(data)
        assert.are.equal("closed", err)
        assert.is_true(S.now() - t0 < 15)
        slow:close()

        -- 64 connections are served at once; the ones past them are closed unanswered.
        local held = {}
        for i = 1, 64 do
            local t = assert(socket.tcp())
            t:settimeout(5)
            assert(t:connect("127.0.0.1", port))
            held[i] = t
        end
        -- Each of the 64 is accepted: a request on the last one is answered.
        held[64]:send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        assert.truthy(assert(held[64]:receive("*l")):match("^HTTP/1%.1 200"))
        local text, why = S.http_raw(port, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
        assert.are.equal("", text)
        assert.is_truthy(why == "closed" or why:match("reset"))
        for _, t in ipairs(held) do
            t:close()
        end
        S.wait(10, "a connection once the others closed", function()
            local r = S.get(port, "/health")
            return r and r.status == 200
        end)
        still_serving()
    end)
end)
