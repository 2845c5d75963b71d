/*
 * Every member runs the same script (script_check.c): the functions for the other rooms;
 * included at the end of internal.h, whose types they use.
 */
#ifndef LUARAFT_NODE_SCRIPT_CHECK_H
#define LUARAFT_NODE_SCRIPT_CHECK_H

#include "node/internal.h"

/* The script this node's data directory was made with (the store's "script" record), set
 * at boot; without one (a directory older than script records) nothing is checked. */
void script_check_set_base(struct node *n, const struct script_identity *base);
/* Each tick: tells every newly connected peer this node's base script. */
void script_check_tick(struct node *n);
/* TRANSPORT_FRAME_SCRIPT from a peer: its base script. */
void script_check_frame(struct node *n, raft_id from, const void *body, size_t len);
/* Whether messages from peer id are dropped: it was made with another script, or has not
 * said yet (then it is asked). */
bool script_check_refuses(struct node *n, raft_id id);
/* Whether peer id said it was made with another script (for its frames: a forwarded
 * write that comes before its frame is taken, as the leader's log decides what it is). */
bool script_check_foreign(struct node *n, raft_id id);

#endif
