/*
 * The update a raft_step() hands its driver: the messages, reads and persist requests the
 * step adds to it as it goes (raft_msg_new, raft_read_done, raft_persist_entries), and at
 * the end the flags and fields that say what changed (update_finish), with the messages
 * held back until the disk has what they vouch for.
 */
#include <string.h>

#include "raft/internal.h"
#include "raft/raft.h"
#include "raft/step.h"
#include "util/assert.h"

struct raft_message *raft_msg_new(struct raft *r, int type, raft_id to)
{
    struct raft_update *u = r->u;
    lr_assert(u->n_messages < r->out_cap);
    struct raft_message *m = &r->out[u->n_messages++];
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)type;
    m->from = r->cfg.id;
    m->to = to;
    m->term = r->term;
    return m;
}

void raft_read_done(struct raft *r, uint64_t id, int status, raft_index index)
{
    struct raft_update *u = r->u;
    lr_assert(u->n_reads < r->read_out_cap);
    struct raft_read *rd = &r->read_out[u->n_reads++];
    rd->id = id;
    rd->status = status;
    rd->index = index;
}

/*
 * Records entries to persist at first.. in this step's update (n = 0: only delete from
 * first on). A step makes at most one such request. Writing below the current end drops the suffix,
 * so earlier persist requests can no longer vouch for what is now at those indexes: bump the
 * generation.
 */
void raft_persist_entries(struct raft *r, raft_index first, const struct raft_entry *e, uint32_t n)
{
    struct raft_update *u = r->u;
    lr_assert((u->flags & RAFT_UPDATE_ENTRIES) == 0);
    lr_assert(first > r->commit);
    u->flags |= RAFT_UPDATE_ENTRIES;
    u->append.first = first;
    u->append.n = n;
    u->append.entries = e;
}

void update_begin(struct raft *r, struct raft_update *u, struct update_start *start)
{
    memset(u, 0, sizeof *u);
    u->messages = r->out;
    u->reads = r->read_out;
    r->u = u;
    start->term = r->term;
    start->vote = r->vote;
    start->role = r->role;
    start->leader = r->leader;
    start->commit = r->commit;
}

void update_finish(struct raft *r, const struct update_start *start)
{
    struct raft_update *u = r->u;
    bool hard_state = r->term != start->term || r->vote != start->vote;
    if (hard_state) {
        lr_assert(r->term >= start->term);
        u->flags |= RAFT_UPDATE_HARD_STATE;
    }
    u->term = r->term;
    u->vote = r->vote;
    u->role = r->role;
    u->leader = r->leader;
    if (r->role != start->role || r->leader != start->leader) {
        u->flags |= RAFT_UPDATE_ROLE;
    }
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_ENTRIES | RAFT_UPDATE_SNAPSHOT)) {
        u->persist.last_index = r->log.last;
        u->persist.generation = r->generation;
        u->persist.seq = ++r->persist_seq;
        if (hard_state) {
            r->hard_state_seq = r->persist_seq;
        }
        if (r->self_vote_pending && r->self_vote_seq == 0) {
            r->self_vote_seq = r->persist_seq;
        }
    }
    /* Every message carries the term; one carrying a term not yet durable waits, in this
     * update or a later one (found by the simulator: a leader elected by its own vote
     * alone sent entries of a term that a crash then took back, and was elected in that
     * term again with other entries). Vote grants and append acknowledgments always wait:
     * they vouch for durable state. */
    bool term_pending = r->durable_seq < r->hard_state_seq;
    for (unsigned i = 0; i < u->n_messages; i++) {
        struct raft_message *m = &u->messages[i];
        if (term_pending || m->type == RAFT_MSG_APPEND_RESP ||
            (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.granted && !m->vote_resp.prevote)) {
            m->after_persist = true;
        }
    }
    if (u->n_messages > 0) {
        u->flags |= RAFT_UPDATE_MESSAGES;
    }
    if (r->commit != start->commit) {
        lr_assert(r->commit > start->commit);
        u->flags |= RAFT_UPDATE_COMMIT;
    }
    u->commit = r->commit;
    if (u->n_reads > 0) {
        u->flags |= RAFT_UPDATE_READS;
    }
}
