/*
 * The whole-node simulator: N nodes of src/node/ (the same rooms the luaraft binary runs,
 * behind a simulated struct node_io) with a real Lua script, simulated clients issuing
 * SET, GET, CAS and INCR through the node's own command path, a simulated network (delay,
 * loss, partitions), disks that are slow, fail or lose what was not yet durable at a
 * crash, crashes and restarts, and lost client connections, all from one seed on a
 * virtual clock. What the clients saw is checked for linearizability (src/sim/lincheck.h)
 * and, after the faults heal, every replica must reach the same state.
 */
#ifndef LUARAFT_SIM_NODESIM_H
#define LUARAFT_SIM_NODESIM_H

#include <stddef.h>
#include <stdint.h>

struct nodesim_stats
{
    uint64_t events;
    uint64_t ops, ops_ok, ops_unknown, ops_refused;
    uint64_t crashes, disk_failures, partitions, lost_connections;
    uint64_t elections; /* leader changes seen */
    uint64_t snapshots, installs;
    uint64_t entries_read;            /* payloads sent from the store, not the log cache */
    uint64_t transfers, transfers_ok; /* RAFT.TRANSFER asked, and answered +OK */
    uint64_t graceful_stops;          /* node_shutdown, then node_stop */
};

struct nodesim_options
{
    uint64_t seed;
    uint64_t steps;     /* client operations before the faults heal */
    const char *script; /* the Lua script, e.g. examples/kv.lua */
    int nodes;          /* 3 or 5 */
};

/* Runs one seed. Returns 0 when every check held, or -1 with the first violation in msg.
 * An assertion that fails aborts the process after printing the replay command. */
int nodesim_run(const struct nodesim_options *o,
                struct nodesim_stats *stats,
                char *msg,
                size_t msg_size);

#endif
