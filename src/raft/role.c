/*
 * Role transitions (paper Figure 4): follower, pre-candidate (thesis 9.6), candidate,
 * leader. Each transition resets what the new role must not inherit.
 */
#include <string.h>

#include "raft/internal.h"
#include "util/assert.h"

/* "Raft uses randomized election timeouts to ensure that split votes are rare"
 * (section 5.2): each timeout is drawn from [election_ticks, 2 * election_ticks). */
void role_reset_timeout(struct raft *r)
{
    r->election_elapsed = 0;
    r->election_timeout =
        r->cfg.election_ticks + (uint32_t)lr_rand_below(&r->rand, r->cfg.election_ticks);
}

/* Pending reads belong to one leadership: the leader's own, or the one a follower
 * forwarded them to. */
static void leave_leadership(struct raft *r)
{
    read_index_fail_all(r);
    r->transfer_target = 0;
}

void role_become_follower(struct raft *r, raft_term term, raft_id leader)
{
    lr_assert(term >= r->term);
    if (r->role != RAFT_FOLLOWER || r->leader != leader || term != r->term) {
        leave_leadership(r);
    }
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
    }
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    role_reset_timeout(r);
}

static void reset_votes(struct raft *r)
{
    memset(r->granted, 0, sizeof r->granted);
    memset(r->answered, 0, sizeof r->answered);
}

void role_become_precandidate(struct raft *r)
{
    lr_assert(r->role != RAFT_LEADER);
    leave_leadership(r);
    r->role = RAFT_PRECANDIDATE;
    r->leader = 0;
    reset_votes(r);
    role_reset_timeout(r);
}

void role_become_candidate(struct raft *r, bool transfer)
{
    (void)transfer;
    lr_assert(r->role != RAFT_LEADER);
    leave_leadership(r);
    r->term++;
    r->vote = r->cfg.id;
    r->self_vote_pending = true;
    r->self_vote_seq = 0;
    r->role = RAFT_CANDIDATE;
    r->leader = 0;
    reset_votes(r);
    role_reset_timeout(r);
}

void role_reset_progress(struct raft *r, struct progress *pr)
{
    pr->state = PROGRESS_PROBE;
    pr->probe_sent = false;
    pr->recent_active = true;
    pr->match = 0;
    pr->next = r->log.last + 1;
    pr->snapshot_index = 0;
    pr->stall_ticks = 0;
    pr->read_ack = 0;
    pr->inflight_start = 0;
    pr->inflight_count = 0;
    pr->inflight_bytes = 0;
}

/*
 * "Once a candidate wins an election, it becomes leader. It then sends heartbeat messages
 * to all of the other servers" (5.2). It also appends a no-op: "each leader [must] commit
 * a blank no-op entry into the log at the start of its term" (section 8), which is what
 * lets it learn the commit index and serve reads, and commit older entries (Figure 8).
 */
void role_become_leader(struct raft *r)
{
    lr_assert(r->role == RAFT_CANDIDATE);
    lr_assert(r->reads_count == 0);
    r->role = RAFT_LEADER;
    r->leader = r->cfg.id;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    r->committed_in_term = false;
    r->transfer_target = 0;
    r->read_seq = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        role_reset_progress(r, &r->servers[i]);
    }
    replicate_append_noop(r);
    replicate_broadcast_append(r);
    replicate_maybe_commit(r);
}
