/*
 * Elections (paper 5.2, 5.4.1) with pre-vote (thesis 9.6): a node first asks whether it
 * could win, without raising its term, so a node that cannot win (cut off, or with a
 * stale log) never disrupts the cluster.
 */
#include "raft/internal.h"
#include "util/assert.h"

/* Followers and candidates: "If election timeout elapses without receiving AppendEntries
 * RPC from current leader or granting vote to candidate: convert to candidate" (Fig. 2). */
void election_tick(struct raft *r)
{
    lr_assert(r->role != RAFT_LEADER);
    read_index_tick(r);
    r->election_elapsed++;
    if (r->election_elapsed >= r->election_timeout && members_may_campaign(r)) {
        election_campaign(r, false);
    }
}

static unsigned tally(const struct raft *r, bool granted)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        bool pending =
            r->role == RAFT_CANDIDATE && r->self_vote_pending && r->servers[i].id == r->cfg.id;
        if (r->servers[i].voter && r->answered[i] && r->granted[i] == granted && !pending) {
            n++;
        }
    }
    return n;
}

static void record_vote(struct raft *r, raft_id from, bool granted)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        if (r->servers[i].id == from && !r->answered[i]) {
            r->answered[i] = true;
            r->granted[i] = granted;
        }
    }
}

static void send_requests(struct raft *r, bool prevote, bool transfer)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (!pr->voter || pr->id == r->cfg.id) {
            continue;
        }
        struct raft_message *m = raft_msg_new(r, RAFT_MSG_VOTE, pr->id);
        /* A pre-vote asks about the term we would campaign in. */
        m->term = prevote ? r->term + 1 : r->term;
        m->vote.prevote = prevote;
        m->vote.transfer = transfer;
        m->vote.last_index = r->log.last;
        m->vote.last_term = raft_last_term(r);
    }
}

/* Tallies the round in progress and moves on when it is decided. */
static void decide(struct raft *r)
{
    unsigned quorum = raft_voters(r) / 2 + 1;
    if (tally(r, true) >= quorum) {
        if (r->role == RAFT_PRECANDIDATE) {
            role_become_candidate(r, false);
            record_vote(r, r->cfg.id, true);
            send_requests(r, false, false);
            decide(r);
        } else {
            role_become_leader(r);
        }
    } else if (tally(r, false) >= quorum) {
        role_become_follower(r, r->term, 0);
    }
}

/* The request carrying this candidate's vote for itself is durable: the vote counts. */
void election_self_vote_durable(struct raft *r)
{
    r->self_vote_pending = false;
    if (r->role == RAFT_CANDIDATE) {
        decide(r);
    }
}

void election_campaign(struct raft *r, bool transfer)
{
    lr_assert(r->role != RAFT_LEADER);
    lr_assert(members_may_campaign(r));
    if (transfer) {
        /* Leadership transfer (thesis 3.10): the old leader vouches for us, so skip the
         * pre-vote and tell voters to disregard their lease. */
        role_become_candidate(r, true);
    } else {
        role_become_precandidate(r);
    }
    record_vote(r, r->cfg.id, true);
    send_requests(r, r->role == RAFT_PRECANDIDATE, transfer);
    decide(r);
}

/* "If votedFor is null or candidateId, and candidate's log is at least as up-to-date as
 * receiver's log, grant vote" (Figure 2); up-to-date as defined in 5.4.1: compare the
 * last terms, then the last indexes. */
static bool log_up_to_date(const struct raft *r, const struct raft_message *m)
{
    raft_term last_term = raft_last_term(r);
    if (m->vote.last_term != last_term) {
        return m->vote.last_term > last_term;
    }
    return m->vote.last_index >= r->log.last;
}

void election_recv_vote(struct raft *r, const struct raft_message *m)
{
    lr_assert(m->term >= r->term);
    bool prevote = m->vote.prevote;
    /* A pre-vote is granted to a future term when no leader is known lately (check_term
     * already dropped it while one is); a real vote only once per term. */
    bool can_vote =
        prevote ? m->term > r->term : (r->vote == m->from || (r->vote == 0 && r->leader == 0));
    /* Whether we are a voter is the candidate's to judge, by its configuration (it counts
     * only its voters): a server just made voter may not have that entry yet, and without
     * its vote there may be no majority to give it the entry (thesis 4.1). */
    bool grant = can_vote && log_up_to_date(r, m) && r->recover_term == 0;
    struct raft_message *resp = raft_msg_new(r, RAFT_MSG_VOTE_RESP, m->from);
    resp->vote_resp.prevote = prevote;
    resp->vote_resp.granted = grant;
    if (grant && prevote) {
        resp->term = m->term; /* so the pre-candidate does not take it for stale */
    }
    if (grant && !prevote) {
        lr_assert(r->role != RAFT_LEADER);
        r->vote = m->from;
        role_reset_timeout(r);
    }
}

void election_recv_vote_resp(struct raft *r, const struct raft_message *m)
{
    bool mine = (r->role == RAFT_PRECANDIDATE && m->vote_resp.prevote) ||
                (r->role == RAFT_CANDIDATE && !m->vote_resp.prevote);
    if (!mine) {
        return; /* stale: from an earlier round or role */
    }
    record_vote(r, m->from, m->vote_resp.granted);
    decide(r);
}
