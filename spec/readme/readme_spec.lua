-- The README's client snippets, run as they are written there (only the ports change)
-- against a real 3-node cluster of examples/kv.lua: redis-py, ioredis, node-redis and
-- hiredis. What it catches: a snippet that no longer works with the node (a handshake, a
-- transaction, a reply shape), or a README edited into something that does not run. What
-- it cannot: other client options than the defaults the snippets use.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/../node/support.lua")

local build = os.getenv("LUARAFT_BUILD_DIR")
if build == nil or build == "" then
    build = S.root .. "/build"
end

-- The fenced blocks of the README's "Client libraries" section, in order: {lang, text}.
local function snippets()
    local readme = S.read_file(S.root .. "/README.md")
    local section = assert(readme:match("\n### Client libraries\n(.-)\n##"), "no section")
    local out = {}
    for lang, body in section:gmatch("\n```(%a+)\n(.-)\n```") do
        out[#out + 1] = { lang = lang, text = body .. "\n" }
    end
    return out
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

local function run(cmd)
    local p = assert(io.popen("timeout -k 5 60 " .. cmd .. " 2>&1", "r"))
    local out = p:read("a")
    local ok = p:close()
    return out, ok == true
end

describe("the README's client snippets", function()
    local c, dir

    setup(function()
        c = S.cluster({ n = 3 })
        c:start_all()
        local leader = c:wait_leader(10)
        S.wait(10, "a write through every node", function()
            for i = 1, 3 do
                if c:rc(i, "SET", "warm" .. i, "1") ~= "OK" then
                    return false
                end
            end
            return true
        end)
        assert(leader)
        dir = S.sh("mktemp -d /tmp/luaraft-readme.XXXXXX"):gsub("%s+$", "")
    end)

    teardown(function()
        if c then
            c:stop()
        end
        if dir then
            os.execute("rm -rf " .. S.quote(dir))
        end
    end)

    -- The snippet with the cluster's ports for 6001-6003.
    local function ported(text)
        return (text:gsub("600([123])", function(i)
            return tostring(c:client_port(tonumber(i)))
        end))
    end

    local expected = {
        python = "b'hello'\n[1, 2]\n",
        ioredis = "hello\n[ [ null, 1 ], [ null, 2 ] ]\n",
        ["node-redis"] = "hello\n[ 1, 2 ]\n",
        c = "hello\n",
    }

    it("run and print what their comments say", function()
        local seen = {}
        for i, snip in ipairs(snippets()) do
            local text = ported(snip.text)
            local kind = snip.lang
            local out, ok
            if snip.lang == "python" then
                local path = dir .. "/s" .. i .. ".py"
                write(path, text)
                out, ok = run("/usr/bin/python3 " .. S.quote(path))
            elseif snip.lang == "js" then
                kind = text:match("^// (%S+)")
                local path = dir .. "/s" .. i .. ".js"
                write(path, text)
                out, ok = run("env NODE_PATH=" .. S.quote(build .. "/npm/node_modules") ..
                    " node " .. S.quote(path))
            elseif snip.lang == "c" then
                local path, bin = dir .. "/s" .. i .. ".c", dir .. "/s" .. i
                write(path, text)
                out, ok = run("cc -Wall -Werror -o " .. S.quote(bin) .. " " .. S.quote(path) ..
                    " -lhiredis && " .. S.quote(bin))
            end
            if ok ~= nil then
                assert(ok, kind .. " snippet failed:\n" .. text .. "\n---\n" .. out)
                assert.are.equal(expected[kind], out, kind .. " snippet")
                seen[kind] = true
            end
        end
        for kind in pairs(expected) do
            assert.is_true(seen[kind] == true, "no " .. kind .. " snippet in the README")
        end
    end)
end)
