-- The failover test both Node.js cluster clients share (loaded with dofile): a driver
-- writes through the cluster client; once it has 20 writes acknowledged, the leader is
-- killed with kill -9 (by PID), the driver is told so through a file, and it must get 30
-- more writes acknowledged and read every acknowledged one back.
local S = dofile(debug.getinfo(1, "S").source:sub(2):match("^(.*)/") .. "/support.lua")
local F = {}

function F.run(driver)
    local c, leader = S.started_cluster()
    local signal = os.tmpname()
    os.remove(signal)
    local b = S.background(driver, "failover", S.ports(c), { SIGNAL_FILE = signal }, 120)
    local ok, err = pcall(function()
        S.wait(60, "20 writes before the kill", function()
            return b.output():find("phase1", 1, true) or not b.running()
        end)
        assert(b.running(), "the driver stopped before the kill:\n" .. b.output())
        c:kill(leader)
        local f = assert(io.open(signal, "w"))
        f:close()
        S.wait(120, "the driver's end", function()
            return not b.running()
        end)
        local out = b.output()
        assert(b.exit_code() == 0 and out:find("ok failover", 1, true),
            driver .. " failover failed:\n" .. out)
        -- The kill must have been felt: the writes went on through errors or a retry.
        local writes = tonumber(out:match("writes=(%d+)"))
        assert(writes and writes >= 50, out)
    end)
    b.stop()
    os.remove(signal)
    c:stop()
    assert(ok, err)
end

return F
