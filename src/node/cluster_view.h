/*
 * The Raft cluster as Redis Cluster clients see it: one shard that owns all 16384 slots,
 * whose master is the Raft leader (at its client address) and whose replicas are the
 * followers. Node ids are 40 hex digits derived from the Raft id, the same on every node.
 *
 * CLUSTER SLOTS, SHARDS, NODES, REPLICAS (SLAVES), INFO, MYID, KEYSLOT and HELP answer in
 * Redis 7.0's shapes (maps and verbatim text in RESP3, which the client port converts for
 * a RESP2 connection). A node that knows no leader (or not the leader's address) answers
 * SLOTS, SHARDS, NODES and REPLICAS with -CLUSTERDOWN The cluster is down, and INFO with
 * cluster_state:fail. Any other subcommand (MEET, ADDSLOTS, FAILOVER, ...: membership is
 * Raft's) gets Redis's error for an unknown subcommand.
 */
#ifndef LUARAFT_NODE_CLUSTER_VIEW_H
#define LUARAFT_NODE_CLUSTER_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct node;

enum {
    CLUSTER_SLOTS = 16384,
    CLUSTER_NODE_ID_HEX = 40,
};

/* Appends the reply (RESP bytes, a complete value) to CLUSTER argv[1..] to out.
 * argv[0] is "CLUSTER". */
void cluster_view_reply(struct node *n,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen,
                        struct buf *out);

/* Redis Cluster's hash slot of a key: CRC16 (XMODEM) mod 16384 of the key, or of its hash
 * tag (what is between the first '{' and the first '}' after it, when not empty). */
uint16_t cluster_keyslot(const void *key, size_t len);

/* 40 lowercase hex digits (and a NUL) that depend only on seed. */
void cluster_hex_id(uint64_t seed, char out[CLUSTER_NODE_ID_HEX + 1]);

/* The CLUSTER node id of the Raft node id. */
void cluster_node_id(uint64_t id, char out[CLUSTER_NODE_ID_HEX + 1]);

#endif
