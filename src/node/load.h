/*
 * RAFT.LOAD, replicated script upgrades (load.c): its functions for the other rooms;
 * included at the end of internal.h, whose types they use.
 */
#ifndef LUARAFT_NODE_LOAD_H
#define LUARAFT_NODE_LOAD_H

#include "node/internal.h"

struct conn_call;

/* RAFT.LOAD FILE path | RAFT.LOAD SCRIPT name text, from a client. */
void load_command(const struct conn_call *c);
/* A RAFT.LOAD a follower forwarded: true if it was one, now taken care of. */
bool load_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len);
/* The fsm thread checked a script for a RAFT.LOAD (FSM_JOB_CHECK_SCRIPT). */
void load_checked(struct node *n, struct fsm_job *job);
/* The fsm thread runs another script, from index on (a LOAD entry applied there, or a
 * snapshot of a script upgraded there restored): the command table is f's from now on. */
void load_adopt(struct node *n, struct fsm *f, raft_index index, bool restored);
void load_stop(struct node *n);

#endif
