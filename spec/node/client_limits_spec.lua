-- Limits on what clients make a node hold, from the outside: an argument longer than any
-- command can be is refused at its header, before its bytes are read (four clients each
-- announcing a 500 MB value once made one node hold 2 GB), and --client-memory bounds all
-- clients' buffers together: past it the client holding the most is disconnected with an
-- error, the others are served.
--
-- What it catches: a parser that reads an announced length before checking it, a cap
-- that is not enforced or evicts the wrong client, buffers that are not counted, a node
-- that stops serving. What it cannot: the node's memory between two INFO calls (it reads
-- the node's own count, mem_clients_normal, not the kernel's RSS).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local socket = require("socket")

local function connect(port)
    local c = assert(socket.tcp())
    c:settimeout(20)
    assert(c:connect("127.0.0.1", port))
    return c
end

local function set_header(key, len)
    return "*3\r\n$3\r\nSET\r\n$" .. #key .. "\r\n" .. key .. "\r\n$" .. len .. "\r\n"
end

describe("client limits", function()
    local c

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
    end)

    it("refuse an argument longer than any command at its header, and serve on", function()
        c = S.cluster({ n = 1 })
        c:start_all()
        local leader = c:wait_leader(10)
        local port = c:client_port(leader)
        local conns = {}
        for i = 1, 4 do
            conns[i] = connect(port)
            assert(conns[i]:send(set_header("bomb" .. i, 500000000)))
        end
        -- Nothing of the 500 MB was sent: the answer comes from the header alone.
        for i = 1, 4 do
            assert.equal("-ERR Protocol error: invalid bulk length", conns[i]:receive("*l"))
            assert.is_nil((conns[i]:receive("*l")), "connection " .. i .. " stays open")
            conns[i]:close()
        end
        assert.equal("OK", c:rc(leader, "SET", "after", "1"))
        assert.equal("1", c:rc(leader, "GET", "after"))
    end)

    it("--client-memory disconnects the client holding the most and serves the rest", function()
        c = S.cluster({ n = 1, flags = { "--client-memory", "8M" } })
        c:start_all()
        local leader = c:wait_leader(10)
        local port = c:client_port(leader)
        local size = 3 << 20
        local function mem()
            local out = S.sh("redis-cli -p " .. port .. " INFO")
            return tonumber(out:match("mem_clients_normal:(%d+)")),
                tonumber(out:match("evicted_clients:(%d+)"))
        end
        -- Two clients each send 1.5 MiB of a 3 MiB value and wait (a 2 MiB buffer each); a
        -- third sends a 12 MiB value in one go. Its buffer passes theirs, the sum passes
        -- 8 MiB: it goes.
        local a, b = connect(port), connect(port)
        local part = ("a"):rep(3 << 19)
        assert(a:send(set_header("a", size) .. part))
        assert(b:send(set_header("b", size) .. part))
        S.wait(20, "the node holds both partial values", function()
            return mem() >= 2 * #part
        end)
        local big = connect(port)
        big:send(set_header("big", 12 << 20) .. ("z"):rep(12 << 20) .. "\r\n")
        assert.equal("-ERR client evicted: the node's client buffers passed their limit "
            .. "(--client-memory)", big:receive("*l"))
        big:close()
        local held, evicted = mem()
        assert.equal(1, evicted)
        assert.is_true(held <= 8 << 20, "the clients hold " .. held .. " bytes")
        -- The two that stayed finish their values, which are applied whole.
        local rest = ("a"):rep(size - #part) .. "\r\n"
        for _, conn in ipairs({ a, b }) do
            assert(conn:send(rest))
            assert.equal("+OK", conn:receive("*l"))
            conn:close()
        end
        assert.equal(tostring(size), c:rc(leader, "STRLEN", "a"))
        assert.equal(tostring(size), c:rc(leader, "STRLEN", "b"))
        assert.equal("0", c:rc(leader, "EXISTS", "big"))
        S.wait(20, "idle buffers freed", function()
            return mem() < 1 << 20
        end)
    end)
end)
