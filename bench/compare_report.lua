-- bench/compare_report.lua: the table of bench/compare.sh, from its raw lines.
--   lua5.4 bench/compare_report.lua RAW.txt PLOT.dat > TABLE.md
-- RAW.txt has one line a result, "SYSTEM CASE key=value ..." (compare_lib.sh's emit), and
-- the machine and load lines; PLOT.dat gets the writes/s that bench/compare.gp plots.
local raw_path, dat_path = arg[1], arg[2]

local results, info = {}, {}
for line in io.lines(raw_path) do
    local system, case, rest = line:match('^(%S+)%s+(%S*)%s*(.*)$')
    local fields, text = {}, (case or '') .. ' ' .. (rest or '')
    -- values are bare words or "quoted text"
    for k, v in text:gmatch('([%w_]+)="([^"]*)"') do fields[k] = v end
    for k, v in text:gmatch('([%w_]+)=([^"%s]%S*)') do fields[k] = v end
    if system == 'machine' then
        info.machine = fields
    elseif system == 'load_before' or system == 'load_after' then
        info[system] = case .. ' ' .. rest
    elseif system then
        results[system] = results[system] or {}
        results[system][case] = fields
    end
end

local function num(system, case, key)
    local r = results[system] and results[system][case]
    return r and tonumber(r[key])
end

-- 12345.6 -> "12,346"
local function thousands(x)
    local s = string.format('%.0f', x)
    return (s:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', ''))
end

local function ms(x)
    if not x then return '?' end
    return x < 10 and string.format('%.2f', x) or string.format('%.0f', x)
end

local function cell(system, case)
    local r = results[system] and results[system][case]
    if not r then return '' end
    local s = thousands(tonumber(r.ops_per_s)) .. '/s<br>' ..
        ms(tonumber(r.p50_ms)) .. ' / ' .. ms(tonumber(r.p99_ms)) .. ' / ' .. ms(tonumber(r.p999_ms)) .. ' ms'
    if tonumber(r.errors or 0) > 0 then s = s .. '<br>' .. r.errors .. ' errors' end
    return s
end

-- The best SET run of 3-byte values: its case name.
local function peak(system)
    local best, best_case
    for case, r in pairs(results[system] or {}) do
        if case:match('^set_') and (not best or tonumber(r.ops_per_s) > best) then
            best, best_case = tonumber(r.ops_per_s), case
        end
    end
    return best_case
end

local systems = {
    { key = 'luaraft', title = 'luaraft (3 nodes, kv.lua)' },
    { key = 'redis', title = 'redis-server (1, AOF always)' },
    { key = 'etcd', title = 'etcd 3.4 (3 members)' },
    { key = 'raft', title = 'canonical raft 0.15 (3, C harness)' },
    { key = 'tarantool', title = 'Tarantool 2.6 (3, async, wal fsync)' },
}
-- The case that stands for each row, per system.
local rows = {
    { title = 'SET, 1 client', luaraft = 'set_c1', redis = 'set_c1', etcd = 'set_c1', raft = 'set_w1',
      tarantool = 'set_c1', plot = true, short = '1 client' },
    { title = 'SET, 50 clients', luaraft = 'set_c50', redis = 'set_c50', etcd = 'set_c50',
      raft = 'set_w50', tarantool = 'set_c50', plot = true, short = '50 clients' },
    { title = 'SET, 800 in flight (50 clients `-P 16`; 800 clients, applies or fibers)',
      luaraft = 'set_c50_p16', redis = 'set_c50_p16', etcd = 'set_c800', raft = 'set_w800',
      tarantool = 'set_c800', plot = true, short = '800 in flight' },
    { title = 'SET 1 KiB, 800 in flight', luaraft = 'set1k_c50_p16', redis = 'set1k_c50_p16',
      raft = 'set1k_w800' },
    { title = 'GET, 50 clients `-P 16`, leader', luaraft = 'get_leader_c50_p16', redis = 'get_c50_p16' },
    { title = 'GET, 50 clients `-P 16`, a follower', luaraft = 'get_follower_c50_p16' },
}

local out = {}
local function say(s) out[#out + 1] = s or '' end

local m = info.machine or {}
say(string.format('Run of %s%s: %s cores, %s, kernel %s; load average before %s, after %s; ' ..
    'luaraft build %s.', m.date or '?', m.quick == '1' and ' (quick mode: short runs)' or '',
    m.nproc or '?', m.cpu or '?', m.kernel or '?', info.load_before or '?', info.load_after or '?',
    m.build_type or '?'))
say()
say('Each cell: writes (or reads) per second, then p50 / p99 / p999 latency.')
say()
local head, sep = '| |', '|---|'
for _, s in ipairs(systems) do head, sep = head .. ' ' .. s.title .. ' |', sep .. '---|' end
say(head)
say(sep)
for _, row in ipairs(rows) do
    local line = '| ' .. row.title .. ' |'
    for _, s in ipairs(systems) do line = line .. ' ' .. (row[s.key] and cell(s.key, row[s.key]) or '') .. ' |' end
    say(line)
end
local line = '| SET, peak (in flight) |'
for _, s in ipairs(systems) do
    local c = peak(s.key)
    line = line .. ' ' .. (c and (cell(s.key, c) .. '<br>at ' .. results[s.key][c].inflight) or '') .. ' |'
end
say(line)
line = '| server CPU s per 1,000 writes, 800 in flight |'
for _, s in ipairs(systems) do
    local c = rows[3][s.key]
    local cpu, ops = num(s.key, c, 'cpu_s'), num(s.key, c, 'ops')
    line = line .. ' ' .. ((cpu and ops and ops > 0) and string.format('%.3f', cpu / ops * 1000) or '') .. ' |'
end
say(line)
line = '| resident memory per 1M small keys |'
for _, s in ipairs(systems) do
    local mb = num(s.key, 'rss', 'mb_per_million')
    local who = s.key == 'redis' and '' or ' (leader)'
    local errors = num(s.key, 'rss', 'errors') or 0
    local text = mb and string.format('%.0f MB%s', mb, who) or ''
    if errors > 0 then text = text .. string.format('<br>%d errors while loading', errors) end
    line = line .. ' ' .. text .. ' |'
end
say(line)
say()

local function probe(case) return num('probe', case, 'p50_us') end
say(string.format('The machine, in the same run (p50): one 4 KiB write + fdatasync %s µs appending, ' ..
    '%s µs overwriting; one durable LMDB commit %s µs; one loopback round trip %s µs.',
    ms(probe('fdatasync_4k_append')), ms(probe('fdatasync_4k_overwrite')), ms(probe('lmdb_commit')),
    ms(probe('loopback_rtt'))))
say()

-- Issue 12's targets, as ratios of this run's figures.
local function ops(system, case) return case and num(system, case, 'ops_per_s') end
local lr_p16 = ops('luaraft', 'set_c50_p16')
local targets = {}
local function target(text, got, goal, at_least)
    local met = got and (at_least and got >= goal or (not at_least and got <= goal))
    targets[#targets + 1] = string.format('| %s | %s | %s %.2f | %s |', text,
        got and string.format('%.2f', got) or '?', at_least and '≥' or '≤', goal,
        got == nil and '?' or (met and 'yes' or '**no**'))
end
local function ratio(a, b) return (a and b and b > 0) and a / b or nil end
target('SET 800 in flight: luaraft / redis-server', ratio(lr_p16, ops('redis', 'set_c50_p16')), 0.30, true)
target('SET 800 in flight: luaraft / etcd at its peak', ratio(lr_p16, ops('etcd', peak('etcd'))), 10, true)
target('SET 800 in flight: luaraft / canonical raft at its peak', ratio(lr_p16, ops('raft', peak('raft'))), 2, true)
local lmdb, rtt = probe('lmdb_commit'), probe('loopback_rtt')
local bound = (lmdb and rtt) and (lmdb + 2 * rtt) / 1000 or nil
target(string.format('SET 1 client: luaraft p50 / (LMDB commit + 2 round trips = %s ms)', ms(bound)),
    ratio(num('luaraft', 'set_c1', 'p50_ms'), bound), 1.25, false)
target('SET 50 clients: luaraft / etcd at 256 clients', ratio(ops('luaraft', 'set_c50'), ops('etcd', 'set_c256')), 2, true)
target('GET / SET, leader (800 in flight)', ratio(ops('luaraft', 'get_leader_c50_p16'), lr_p16), 3, true)
target('GET / SET, a follower (800 in flight)', ratio(ops('luaraft', 'get_follower_c50_p16'), lr_p16), 3, true)
target('memory per 1M small keys: luaraft leader / redis-server',
    ratio(num('luaraft', 'rss', 'mb_per_million'), num('redis', 'rss', 'mb_per_million')), 2, false)
-- The scale run (bench/scale_lib.sh): a million keys.
local function scale(case, key) return num('scale', case, key) end
target('SET p99 during a snapshot / steady (50 clients, the scale run)',
    ratio(scale('during', 'p99_ms'), scale('steady', 'p99_ms')), 2, false)
target('restart to serving, seconds (the scale run)', scale('restart', 'serving_s'), 2, false)
say('| target (issue 12) | ratio | goal | met |')
say('|---|---|---|---|')
for _, t in ipairs(targets) do say(t) end
say()
if results.scale then
    local keys = scale('snapshot_idle', 'keys')
    say(string.format('A state of %s keys (kv.lua, 3 nodes, snapshots only on RAFT.SNAPSHOT):',
        keys and thousands(keys) or '?'))
    say()
    say('| | figure |')
    say('|---|---|')
    local function row(text, value) say('| ' .. text .. ' | ' .. value .. ' |') end
    local function secs(x) return x and string.format('%.2f s', x) or '?' end
    local function lat(case)
        return string.format('%s / %s / %s ms (max %s), %s writes', ms(scale(case, 'p50_ms')),
            ms(scale(case, 'p99_ms')), ms(scale(case, 'p999_ms')), ms(scale(case, 'max_ms')),
            thousands(scale(case, 'ops') or 0))
    end
    row('RAFT.SNAPSHOT on an idle follower', secs(scale('snapshot_idle', 'snapshot_s')))
    row('RAFT.SNAPSHOT on the leader under 50 writing clients', secs(scale('during', 'snapshot_s')))
    row('SET p50 / p99 / p999, steady (50 clients)', lat('steady'))
    row('SET p50 / p99 / p999, while the leader takes its snapshot', lat('during'))
    row(string.format('a follower killed and started again: until it serves a write made before ' ..
        'the kill (snapshot restored, %s entries replayed)', thousands(scale('restart', 'entries_replayed') or 0)),
        secs(scale('restart', 'serving_s')))
    row('a new node: from RAFT.ADD until it serves that write (InstallSnapshot)',
        secs(scale('join', 'serving_s')))
    say()
end
print(table.concat(out, '\n'))

-- The plot's data: one row a workload, one column a system (writes/s; 0 where none).
local dat = assert(io.open(dat_path, 'w'))
local header = '"workload"'
for _, s in ipairs(systems) do header = header .. ' "' .. s.title .. '"' end
dat:write(header, '\n')
local plotted = {}
for _, row in ipairs(rows) do if row.plot then plotted[#plotted + 1] = row end end
plotted[#plotted + 1] = { short = 'at its peak', peak = true }
for _, row in ipairs(plotted) do
    local l = '"' .. (row.short or row.title) .. '"'
    for _, s in ipairs(systems) do
        local c = row.peak and peak(s.key) or row[s.key]
        l = l .. ' ' .. string.format('%.0f', ops(s.key, c) or 0)
    end
    dat:write(l, '\n')
end
dat:close()
