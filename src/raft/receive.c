/*
 * Receiving a message: the checks that drop what no correct peer sends, the term rules of
 * Figure 2 ("Rules for Servers") with pre-vote and the leader lease of thesis 4.2.3, and
 * the dispatch to the role that handles each message type.
 */
#include <stdbool.h>
#include <stddef.h>

#include "raft/internal.h"
#include "raft/raft.h"
#include "raft/step.h"

/* A leader heard from within the election timeout holds its lease (thesis 4.2.3). */
static bool in_lease(const struct raft *r)
{
    return r->leader != 0 && r->election_elapsed < r->cfg.election_ticks;
}

static void reply_stale(struct raft *r, const struct raft_message *m)
{
    /* Tell an old leader or pre-candidate our term so that it steps down; without this a
     * node that left a partition with a higher term could never rejoin (etcd does the
     * same when pre-vote or check-quorum is on). */
    if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_SNAPSHOT) {
        struct raft_message *resp = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
        resp->append_resp.success = false;
        resp->append_resp.index = m->type == RAFT_MSG_APPEND ? m->append.prev_index : 0;
    } else if (m->type == RAFT_MSG_HEARTBEAT) {
        raft_msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    } else if (m->type == RAFT_MSG_VOTE && m->vote.prevote) {
        struct raft_message *resp = raft_msg_new(r, RAFT_MSG_VOTE_RESP, m->from);
        resp->vote_resp.prevote = true;
        resp->vote_resp.granted = false;
    }
}

/* The term rules of Figure 2 with pre-vote and the lease. Returns false if the message
 * is to be dropped. */
static bool check_term(struct raft *r, const struct raft_message *m)
{
    if (m->term > r->term) {
        bool vote = m->type == RAFT_MSG_VOTE;
        if (vote && !m->vote.transfer && in_lease(r)) {
            return false; /* a live leader is known: ignore the disruption */
        }
        if (vote && m->vote.prevote) {
            return true; /* a pre-vote never changes our term */
        }
        if (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.prevote && m->vote_resp.granted) {
            return true; /* granted pre-votes carry the term we would campaign in */
        }
        bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                           m->type == RAFT_MSG_SNAPSHOT;
        role_become_follower(r, m->term, from_leader ? m->from : 0);
        return true;
    }
    if (m->term < r->term) {
        reply_stale(r, m);
        return false;
    }
    return true;
}

/* A message of our term from the leader of this term. Returns false when we lead this
 * term ourselves: a correct peer never claims it too (election safety), so drop it. */
static bool heard_from_leader(struct raft *r, const struct raft_message *m)
{
    if (r->role == RAFT_LEADER) {
        return false;
    }
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        role_become_follower(r, r->term, m->from);
    }
    r->election_elapsed = 0;
    return true;
}

static void recv_timeout_now(struct raft *r, const struct raft_message *m)
{
    /* Only our leader may hand us its leadership: the campaign disregards leases. */
    if (r->role == RAFT_FOLLOWER && m->from == r->leader && members_may_campaign(r)) {
        election_campaign(r, true);
    }
}

static void recv_read_index(struct raft *r, const struct raft_message *m)
{
    if (r->role != RAFT_LEADER || read_index_request(r, m->read_index.id, m->from) != 0) {
        struct raft_message *resp = raft_msg_new(r, RAFT_MSG_READ_INDEX_RESP, m->from);
        resp->read_index_resp.id = m->read_index.id;
        resp->read_index_resp.index = 0;
    }
}

/* Entries a correct leader sends: positive terms that never decrease, from prev_term on,
 * none from a term past the message's, and CONFIG entries that hold a configuration. */
static bool entries_sane(const struct raft_message *m)
{
    if (m->append.n_entries > 0 && m->append.entries == NULL) {
        return false;
    }
    raft_term prev = m->append.prev_term;
    for (uint32_t i = 0; i < m->append.n_entries; i++) {
        const struct raft_entry *e = &m->append.entries[i];
        struct raft_members conf;
        if (e->term == 0 || e->term < prev || e->term > m->term ||
            (e->type == RAFT_ENTRY_CONFIG && !members_entry_decode(e, &conf))) {
            return false;
        }
        prev = e->term;
    }
    return true;
}

/*
 * Fields no correct peer sends. The core drops such a message instead of letting it reach
 * an assertion: a buggy or hostile peer must not crash the node. Indexes and terms stay
 * far below where arithmetic on them could wrap.
 *
 * The sender need not be in our configuration (thesis 4.1: servers process requests
 * without consulting it): a new leader may come from a configuration we have not received
 * yet, and a server that joins knows nobody. Answers from a server we do not track are
 * ignored where they arrive.
 */
static bool message_sane(const struct raft *r, const struct raft_message *m)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 || m->from == r->cfg.id ||
        m->term >= raft_term_max) {
        return false;
    }
    switch (m->type) {
        case RAFT_MSG_APPEND:
            return m->append.prev_index < raft_index_max && m->append.prev_term <= m->term &&
                   m->append.n_entries < raft_index_max - m->append.prev_index &&
                   m->append.commit < raft_index_max && entries_sane(m);
        case RAFT_MSG_APPEND_RESP:
            return m->append_resp.index < raft_index_max &&
                   m->append_resp.conflict_index < raft_index_max;
        case RAFT_MSG_VOTE:
            return m->vote.last_index < raft_index_max && m->vote.last_term <= m->term;
        case RAFT_MSG_HEARTBEAT:
            return m->heartbeat.commit < raft_index_max;
        case RAFT_MSG_SNAPSHOT:
            return m->snapshot.index > 0 && m->snapshot.index < raft_index_max &&
                   m->snapshot.term > 0 && m->snapshot.term <= m->term &&
                   m->snapshot.members != NULL;
        case RAFT_MSG_READ_INDEX_RESP:
            return m->read_index_resp.index < raft_index_max;
        default:
            return true;
    }
}

int receive_message(struct raft *r, struct raft_message *m)
{
    if (!message_sane(r, m)) {
        return RAFT_EINVAL;
    }
    if (!check_term(r, m)) {
        return 0;
    }
    switch (m->type) {
        case RAFT_MSG_APPEND:
            if (heard_from_leader(r, m)) {
                follower_recv_append(r, m);
            }
            break;
        case RAFT_MSG_HEARTBEAT:
            if (heard_from_leader(r, m)) {
                follower_recv_heartbeat(r, m);
            }
            break;
        case RAFT_MSG_SNAPSHOT:
            if (heard_from_leader(r, m)) {
                follower_recv_snapshot(r, m);
            }
            break;
        case RAFT_MSG_APPEND_RESP:
            replicate_recv_append_resp(r, m);
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            replicate_recv_heartbeat_resp(r, m);
            break;
        case RAFT_MSG_VOTE:
            election_recv_vote(r, m);
            break;
        case RAFT_MSG_VOTE_RESP:
            election_recv_vote_resp(r, m);
            break;
        case RAFT_MSG_TIMEOUT_NOW:
            recv_timeout_now(r, m);
            break;
        case RAFT_MSG_READ_INDEX:
            recv_read_index(r, m);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            read_index_recv_resp(r, m);
            break;
    }
    return 0;
}
