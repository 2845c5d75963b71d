-- The write load bench/compare.sh puts on Tarantool, through net.box.
--   tarantool load.lua HOST:PORT SPACE PIDS PHASE...
-- A PHASE is FIBERS:COUNT: FIBERS fibers that each keep one replace in flight (a closed
-- loop, no pipelining) over ceil(FIBERS/64) connections, on random keys of a
-- 100,000-key space with 3-byte values; COUNT/10 to warm up, then COUNT measured. One
-- line per phase: throughput, latency percentiles, errors, and the CPU seconds spent by
-- the instances whose pids PIDS lists (comma-separated) over the measured replaces.
local netbox = require('net.box')
local fiber = require('fiber')
local clock = require('clock')

local uri, space, pid_list = arg[1], arg[2], arg[3]
assert(uri:match('^127%.'), 'the instance must be on 127.0.0.0/8')

-- utime + stime (fields 14 and 15 of /proc/PID/stat, after the command's name) in
-- seconds; Linux counts them in USER_HZ, 100 a second.
local function cpu_seconds()
    local sum = 0
    for pid in pid_list:gmatch('%d+') do
        local f = io.open('/proc/' .. pid .. '/stat')
        if f then
            local rest = f:read('a'):match('%) (.*)')
            f:close()
            local fields = {}
            for w in rest:gmatch('%S+') do fields[#fields + 1] = w end
            sum = sum + tonumber(fields[12]) + tonumber(fields[13])
        end
    end
    return sum / 100
end

local function run(fibers, count)
    local conns = {}
    for i = 1, math.ceil(fibers / 64) do
        conns[i] = netbox.connect(uri, { wait_connected = true })
        assert(conns[i]:is_connected(), 'cannot connect to ' .. uri)
    end
    local warmup, issued, failed = math.floor(count / 10), 0, 0
    local lat, t0, cpu0 = {}, nil, nil
    local done = fiber.channel(fibers)
    for f = 1, fibers do
        fiber.create(function()
            local sp = conns[(f - 1) % #conns + 1].space[space]
            while issued < warmup + count do
                issued = issued + 1
                local measured = issued > warmup
                if issued == warmup + 1 then t0, cpu0 = clock.monotonic(), cpu_seconds() end
                local t = clock.monotonic()
                local ok = pcall(sp.replace, sp, { math.random(1, 100000), 'abc' })
                if not ok then
                    failed = failed + 1
                elseif measured then
                    lat[#lat + 1] = (clock.monotonic() - t) * 1000
                end
            end
            done:put(true)
        end)
    end
    for _ = 1, fibers do done:get() end
    local elapsed, cpu = clock.monotonic() - t0, cpu_seconds() - cpu0
    for _, c in ipairs(conns) do c:close() end
    table.sort(lat)
    local function q(p) return lat[math.floor(p * (#lat - 1)) + 1] or 0 end
    print(string.format('inflight=%d ops=%d errors=%d ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f ' ..
        'p999_ms=%.3f cpu_s=%.2f', fibers, #lat, failed, #lat / elapsed, q(0.5), q(0.99), q(0.999), cpu))
end

for i = 4, #arg do
    local fibers, count = arg[i]:match('^(%d+):(%d+)$')
    assert(fibers, 'a phase is FIBERS:COUNT')
    run(tonumber(fibers), tonumber(count))
end
os.exit(0)
