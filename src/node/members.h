/*
 * The membership room's functions (members.c, members_change.c), for the other rooms and
 * the world; included at the end of internal.h, whose types they use.
 */
#ifndef LUARAFT_NODE_MEMBERS_H
#define LUARAFT_NODE_MEMBERS_H

#include "node/internal.h"

/* members.c */
/* At boot, after the core started from servers (the configuration as of the snapshot):
 * the address book seeded from n->members, then n->members follows the core. */
void members_start(struct node *n, const struct raft_server *servers, unsigned n_servers);
/* An entry went into the log (a CONFIG entry's address book is learned). */
void members_appended(struct node *n, const struct raft_entry *e);
/* A CONFIG entry is handed to the fsm (the configuration as of applied_sent). */
void members_dispatched(struct node *n, const struct cache_entry *e);
/* After each update: n->members and the peers follow the configuration in force, and the
 * change a client waits for is answered once committed. */
void members_follow(struct node *n);
void members_tick(struct node *n);
/* A forwarded RAFT.ADD or RAFT.REMOVE: true if it was one, now taken care of. */
bool members_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len);
/* The members record a snapshot file carries (cluster id, CONFIG payload), malloc'd. */
void *members_snapshot_record(struct node *n, size_t *len);
/* Decodes a snapshot's members record: false if it is not one, or of another cluster.
 * The book learns its addresses; *payload points at its CONFIG payload in rec. */
bool members_record_take(struct node *n,
                         const void *rec,
                         size_t len,
                         struct raft_members *m,
                         const void **payload,
                         size_t *payload_len);
/* Between members.c and members_change.c: the book's entry for id, or NULL; the CONFIG
 * payload of m (extra, if given, has the addresses of its id); the change a client waits
 * for, answered if it is over. */
struct member_addr *members_book_find(struct membership *mb, raft_id id);
void members_record_make(struct node *n,
                         const struct raft_members *m,
                         const struct member_addr *extra,
                         struct buf *out);
void members_answer_waiter(struct node *n);
/* Gives node_io.set_peers the peers that are due, if they changed. */
void members_update_peers(struct node *n);
/* The client address the address book has for id, or NULL. */
const char *members_client_addr(const struct node *n, raft_id id);
/* On a leader that removes itself, until the change commits: new writes wait (they get
 * members_busy_reply), so that a voter has the whole log when the core hands over. */
bool members_blocks_writes(struct node *n);
extern const char members_busy_reply[];
/* TRANSPORT_FRAME_REMOVED: the leader says this node was removed. */
void members_frame(struct node *n, raft_id from, const void *body, size_t len);
void members_stop(struct node *n);

#endif
