/*
 * The text of INFO, in Redis 7.0's layout: "# Section" lines, "field:value" lines ending in
 * \r\n, an empty line between sections. Redis's sections (Server, Clients, Memory,
 * Persistence, Stats, Replication, CPU, Modules, Errorstats, Cluster, Keyspace) with the
 * fields that luaraft can fill truthfully, and "# Raft": what RAFT.INFO shows (its role
 * as raft_role).
 *
 * Replication is Raft's seen through Redis's eyes: the leader is role:master with its
 * connected followers as slaveN lines, a follower (or a node that knows no leader) is
 * role:slave with the leader's client address as master_host/master_port.
 */
#ifndef LUARAFT_NODE_INFO_H
#define LUARAFT_NODE_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct node;

/*
 * Appends the text of the sections named by section (section_len bytes, case-insensitive),
 * as Redis selects them: NULL or "default" → the default sections (all of the above, Raft
 * included); "all" and "everything" → the same (luaraft keeps no per-command statistics);
 * a section's name → that section; anything else → nothing. When out already holds text
 * (a caller appending one call per INFO argument), an empty line separates the two.
 *
 * keyspace: {keys, expires} of the script's data for "db0:keys=..,expires=..,avg_ttl=0"
 * under "# Keyspace" (no db0 line when keys is 0), or NULL when not known (the section is
 * then empty). Allocation failure aborts (lr_assert), as in the rest of the node.
 */
void info_text(struct node *n,
               const char *section,
               size_t section_len,
               const int64_t *keyspace,
               struct buf *out);

/* The lines of RAFT.INFO (without a header): role (under the name role_field: "role" for
 * RAFT.INFO, "raft_role" in INFO, whose "role" is Redis's), node_id, term, leader_id,
 * leader_addr, commit_index, applied_index, last_log_index, snapshot_index,
 * log_cache_bytes, log_bytes, store_failed, clients, script, script_hash, and on the
 * leader peer_<id>:match=..,state=..,connected=.. per peer. */
void info_raft_fields(struct node *n, const char *role_field, struct buf *out);

/* The role RAFT.INFO shows: leader, follower, candidate, precandidate, learner or failed
 * (a store failure stopped the node). */
const char *info_role_text(struct node *n);

/* printf onto the end of out (aborts when out cannot grow). */
__attribute__((format(printf, 2, 3))) void info_printf(struct buf *out, const char *fmt, ...);

#endif
