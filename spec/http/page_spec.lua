-- The status page (/) in headless Chromium, driven through chromedriver's WebDriver HTTP
-- API, against a real 3-node cluster started with --http. The page is loaded from the
-- leader itself, which is then killed with kill -9.
--
-- Can catch: a page that does not load or run; /status without the CORS header (the
-- page's cross-origin polls of the other nodes would fail, and it would never find the
-- leader on another port); a page that stops updating when the node that served it dies,
-- or that shows a leader other than the one the nodes report; a dead node not shown as
-- unreachable.
-- Cannot catch: how the page looks, or browsers other than Chromium.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") .. "/support.lua")
local http = require("socket.http")
local ltn12 = require("ltn12")

local chromium = "/usr/bin/chromium"
local chromedriver = "/usr/bin/chromedriver"

-- One WebDriver call: the decoded reply's value, or an error with WebDriver's message.
local function webdriver(base, method, path, body)
    local payload = body and S.json.encode(body) or nil
    local out = {}
    local _, code = http.request{
        url = base .. path,
        method = method,
        source = payload and ltn12.source.string(payload) or nil,
        headers = payload and { ["Content-Type"] = "application/json", ["Content-Length"] = #payload }
            or nil,
        sink = ltn12.sink.table(out),
    }
    local reply = S.json.decode(table.concat(out)) or {}
    if code ~= 200 then
        error("WebDriver " .. method .. " " .. path .. ": " .. tostring(code) .. " "
            .. tostring(reply.value and reply.value.message), 2)
    end
    return reply.value
end

describe("the status page", function()
    local c, driver_pid, driver, session, profile

    setup(function()
        assert(S.sh("test -x " .. chromium .. " && test -x " .. chromedriver .. " && echo ok")
            :match("ok"), "chromium and chromium-driver (Debian packages) are needed")
        c = S.http_cluster{ n = 3 }
        c:start_all()
        c:wait_leader(20)
        local port = S.free_ports(1, 1, 1) + 1
        profile = S.sh("mktemp -d /tmp/luaraft-chromium.XXXXXX"):gsub("%s+$", "")
        -- A client of ours, not an instrumented program: no sanitizer runtime preloaded.
        driver_pid = assert(tonumber(S.sh("env -u LD_PRELOAD " .. chromedriver .. " --port=" .. port
            .. " >" .. S.quote(profile .. "/chromedriver.log") .. " 2>&1 & echo $!")))
        driver = "http://127.0.0.1:" .. port
        S.wait(20, "chromedriver ready", function()
            local ok, v = pcall(webdriver, driver, "GET", "/status")
            return ok and v.ready
        end)
        local created = webdriver(driver, "POST", "/session", {
            capabilities = { alwaysMatch = { ["goog:chromeOptions"] = {
                binary = chromium,
                args = { "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--user-data-dir=" .. profile .. "/profile" },
            } } },
        })
        session = "/session/" .. created.sessionId
    end)

    teardown(function()
        if session then
            pcall(webdriver, driver, "DELETE", session)
        end
        if driver_pid then
            os.execute("kill " .. driver_pid .. " 2>/dev/null")
            pcall(S.wait, 10, "chromedriver exit", function()
                return not S.pid_alive(driver_pid)
            end)
        end
        if profile then
            os.execute("rm -rf " .. S.quote(profile))
        end
        c:stop()
    end)

    -- What the page shows: the leader's id and term from its headline, and each row's
    -- address, node id and role.
    local function shown()
        return webdriver(driver, "POST", session .. "/execute/sync", {
            script = [[
                const head = document.getElementById("leader");
                const rows = [...document.querySelectorAll("#nodes tr")].map(r => ({
                    addr: r.dataset.addr, id: Number(r.dataset.nodeId || 0),
                    role: r.querySelector("td.role").textContent }));
                return {leader: Number(head.dataset.leaderId), term: Number(head.dataset.term),
                        text: head.textContent, rows: rows};
            ]],
            args = {},
        })
    end

    it("shows the new leader after kill -9 of the leader that served it", function()
        local leader = c:wait_leader(10)
        local addrs = {}
        for i = 1, 3 do
            addrs[i] = "127.0.0.1:" .. c:http_port(i)
        end
        webdriver(driver, "POST", session .. "/url",
            { url = "http://" .. addrs[leader] .. "/?nodes=" .. table.concat(addrs, ",") })
        local before = S.wait(20, "the page showing node " .. leader .. " as leader", function()
            local v = shown()
            return v.leader == leader and #v.rows == 3 and v
        end)
        assert.are.equal("Leader: node " .. leader .. " (term " .. before.term .. ")", before.text)
        for i, row in ipairs(before.rows) do
            assert.are.equal(addrs[i], row.addr)
            assert.are.equal(i, row.id)
            assert.are.equal(i == leader and "leader" or "follower", row.role)
        end

        local killed_at = S.now()
        c:kill(leader)
        local new = c:wait_leader(20)
        local after = S.wait(20, "the page showing the new leader", function()
            local v = shown()
            return v.leader == new and v
        end)
        io.stderr:write(string.format("\nthe page showed node %d as leader %.2f s after kill -9 of node %d\n",
            new, S.now() - killed_at, leader))
        assert.is_true(after.term > before.term)
        assert.are.equal(new, c:leader()) -- the nodes agree with the page
        assert.are.equal("unreachable", after.rows[leader].role)
        assert.are.equal("leader", after.rows[new].role)
    end)
end)
