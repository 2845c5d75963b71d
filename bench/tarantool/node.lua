-- One Tarantool instance of the replica set bench/compare.sh starts on 127.0.0.1.
--   tarantool node.lua ID N BASEPORT DIR
-- Instance ID of N listens on BASEPORT+ID and replicates from all N (a full mesh);
-- instance 1 takes the writes, the others are read-only replicas. The WAL is fsynced
-- after every write batch (wal_mode = 'fsync'), so an acknowledged write is on the
-- leader's disk. Space `async` replicates after the leader's commit; space `sync` waits
-- for a quorum of WAL writes (Tarantool's synchronous replication, 2.6 on).
local id, n, base, dir = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4]
local peers = {}
for i = 1, n do
    peers[#peers + 1] = '127.0.0.1:' .. (base + i)
end
box.cfg {
    listen = '127.0.0.1:' .. (base + id),
    replication = n > 1 and peers or nil,
    replication_connect_quorum = n,
    read_only = id ~= 1,
    replication_synchro_quorum = math.floor(n / 2) + 1,
    -- 2.6.0 may leave a synchronous write unconfirmed; it then rolls back after this.
    replication_synchro_timeout = 1,
    work_dir = dir,
    wal_mode = 'fsync',
    memtx_memory = 1024 * 1024 * 1024,
    net_msg_max = 16384,
    checkpoint_interval = 0,
    log = dir .. '/tarantool.log',
}
if id == 1 then
    box.once('bench', function()
        box.schema.user.grant('guest', 'read,write,execute', 'universe')
        box.schema.user.grant('guest', 'replication')
        for _, name in ipairs { 'async', 'sync' } do
            local s = box.schema.space.create(name, { is_sync = name == 'sync' })
            s:create_index('pk', { parts = { 1, 'unsigned' } })
        end
    end)
end
