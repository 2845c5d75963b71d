/*
 * What raft_step() (raft.c) calls in the files split from it: receiving a message
 * (receive.c) and building the step's update (update.c). The helpers every file of the
 * core shares are in internal.h.
 */
#ifndef LUARAFT_RAFT_STEP_H
#define LUARAFT_RAFT_STEP_H

#include "raft/internal.h"

/* receive.c: a RAFT_EVENT_RECEIVE. Drops (RAFT_EINVAL) what no correct peer sends,
 * applies the term rules, and hands the message to the role that handles it. */
int receive_message(struct raft *r, struct raft_message *m);

/* update.c: the state a step began in, which its update is the difference from. */
struct update_start
{
    raft_term term;
    raft_id vote;
    enum raft_role role;
    raft_id leader;
    raft_index commit;
};

/* update.c: empties u and makes it the update this step builds (r->u), noting in *start
 * the state the step begins in. */
void update_begin(struct raft *r, struct raft_update *u, struct update_start *start);

/* update.c: sets the update's flags and fields from what the step changed since *start,
 * and holds back the messages that must wait for the disk. */
void update_finish(struct raft *r, const struct update_start *start);

#endif
