-- Client authentication on real nodes (--requirepass-file): nothing but AUTH, HELLO with
-- AUTH, QUIT and RESET runs before a connection authenticates, built-in and admin
-- commands included; the replies are Redis's; a connection not yet authenticated is
-- held to small argument limits; RESET signs it out; a follower's forwarded writes and
-- redis-cli -a work once authenticated.
--
-- What it catches: a command that slips past the gate (script, MULTI, RAFT.*, CLUSTER),
-- a wrong password or user accepted, Redis's replies changed, the small limits missing
-- or kept after AUTH. What it cannot: that the comparison takes constant time (auth.c
-- compares hashes with sodium_memcmp; timing is not measured here).
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local R = dofile(S.root .. "/spec/node/resp_conn.lua")

local PASSWORD = "s3cret pass"

local function password_file()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(PASSWORD, "\n")
    f:close()
    return path
end

describe("client authentication", function()
    local c, pwfile

    before_each(function()
        pwfile = password_file()
    end)

    after_each(function()
        if c then
            c:stop()
            c = nil
        end
        os.remove(pwfile)
    end)

    it("refuses every command but AUTH, HELLO AUTH, QUIT and RESET before AUTH", function()
        c = S.cluster({ n = 3, flags = { "--requirepass-file", pwfile }, password = PASSWORD })
        c:start_all()
        local leader = c:wait_leader(10)
        local conn = R.connect(c:client_port(leader))
        for _, cmd in ipairs({ { "PING" }, { "GET", "k" }, { "SET", "k", "v" }, { "MULTI" },
            { "RAFT.INFO" }, { "RAFT.SNAPSHOT" }, { "RAFT.CHECK" }, { "CLUSTER", "SLOTS" },
            { "INFO" }, { "COMMAND" }, { "CLIENT", "ID" }, { "NOSUCH" } }) do
            local r = conn:call(table.unpack(cmd))
            assert.same({ t = "error", v = "NOAUTH Authentication required." }, r, cmd[1])
        end
        local wrong = "WRONGPASS invalid username-password pair or user is disabled."
        assert.same({ t = "error", v = wrong }, conn:call("AUTH", "nope"))
        assert.same({ t = "error", v = wrong }, conn:call("AUTH", "default", "nope"))
        assert.same({ t = "error", v = wrong }, conn:call("AUTH", "alice", PASSWORD))
        local r = conn:call("HELLO", "3")
        assert.equal("error", r.t)
        assert.truthy(r.v:match("^NOAUTH HELLO must be called with the client already authenticated"))
        assert.same({ t = "error", v = wrong }, conn:call("HELLO", "3", "AUTH", "default", "x"))
        assert.same({ t = "status", v = "OK" }, conn:call("AUTH", PASSWORD))
        assert.same({ t = "status", v = "OK" }, conn:call("SET", "k", "v"))
        assert.same({ t = "bulk", v = "v" }, conn:call("GET", "k"))
        -- RESET signs the connection out, as Redis's does.
        assert.same({ t = "status", v = "RESET" }, conn:call("RESET"))
        assert.same({ t = "error", v = "NOAUTH Authentication required." }, conn:call("GET", "k"))
        -- HELLO with AUTH signs in and switches protocol in one step.
        r = conn:call("HELLO", "3", "AUTH", "default", PASSWORD)
        assert.equal("map", r.t)
        assert.same({ t = "bulk", v = "v" }, conn:call("GET", "k"))
        conn:close()
        -- A follower takes the write once authenticated, and forwards it.
        local follower = leader % 3 + 1
        local out = S.sh("redis-cli --no-auth-warning -a " .. S.quote(PASSWORD) .. " -p "
            .. c:client_port(follower) .. " SET via follower 2>&1")
        assert.equal("OK\n", out)
        assert.equal("follower", c:rc(leader, "GET", "via"))
        -- Without the password, redis-cli gets the error too.
        out = S.sh("redis-cli -p " .. c:client_port(follower) .. " GET via 2>&1")
        assert.truthy(out:match("NOAUTH Authentication required"), out)
    end)

    it("holds a connection to small limits until it authenticates", function()
        c = S.cluster({ n = 1, flags = { "--requirepass-file", pwfile }, password = PASSWORD })
        c:start_all()
        local port = c:client_port(c:wait_leader(10))
        -- Before AUTH: 11 arguments, or one of 16385 bytes, end the connection.
        local conn = R.connect(port)
        conn:send_raw("*11\r\n")
        assert.same({ t = "error", v = "ERR Protocol error: invalid multibulk length" }, conn:read())
        assert.is_true(conn:closed())
        conn = R.connect(port)
        conn:send_raw("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16385\r\n")
        assert.same({ t = "error", v = "ERR Protocol error: invalid bulk length" }, conn:read())
        assert.is_true(conn:closed())
        -- After AUTH the usual limits hold: the same value is taken, and 11 arguments.
        conn = R.connect(port)
        assert.same({ t = "status", v = "OK" }, conn:call("AUTH", PASSWORD))
        local big = ("x"):rep(16385)
        assert.same({ t = "status", v = "OK" }, conn:call("SET", "k", big))
        assert.same({ t = "bulk", v = big }, conn:call("GET", "k"))
        assert.same({ t = "int", v = 5 },
            conn:call("RPUSH", "l", "1", "2", "3", "4", "5"))
        assert.same({ t = "int", v = 14 },
            conn:call("RPUSH", "l", "1", "2", "3", "4", "5", "6", "7", "8", "9"))
        conn:close()
    end)

    it("refuses to start with an unreadable or empty password file", function()
        local empty = os.tmpname()
        for _, case in ipairs({ { empty, "its first line is empty" },
            { "/nonexistent/pw", "/nonexistent/pw: No such file" } }) do
            c = S.cluster({ n = 1, flags = { "--requirepass-file", case[1] } })
            S.sh(c:node_command(1)) -- exits at once; what it says is in its log
            local log = S.read_file(c:log(1))
            assert.truthy(log:find(case[2], 1, true), log)
            c:stop()
        end
        os.remove(empty)
        c = nil
    end)
end)
