/*
 * raft_step(): validate an event, dispatch it, then finish the update and check the
 * invariants that must hold between any two steps; the names, the shared helpers and the
 * accessors.
 *
 * Booting is in boot.c, receiving a message in receive.c, building the update in update.c.
 */
#include "raft/raft.h"

#include <string.h>

#include "raft/internal.h"
#include "raft/step.h"
#include "util/assert.h"

const char *raft_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "ok";
        case RAFT_ENOTLEADER:
            return "not the leader";
        case RAFT_EBUSY:
            return "leadership transfer in progress";
        case RAFT_ELOGFULL:
            return "log full: a snapshot is needed";
        case RAFT_EINVAL:
            return "invalid argument";
        case RAFT_ENOMEM:
            return "out of memory";
        case RAFT_ETOOMANY:
            return "too many pending reads";
        case RAFT_ECHANGE:
            return "a membership change is not yet safe: retry once the last one is committed";
        default:
            return "unknown error";
    }
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
        case RAFT_FOLLOWER:
            return "follower";
        case RAFT_PRECANDIDATE:
            return "precandidate";
        case RAFT_CANDIDATE:
            return "candidate";
        case RAFT_LEADER:
            return "leader";
    }
    return "unknown";
}

const char *raft_msg_name(int type)
{
    static const char *const names[] = {
        "?",       "APPEND",   "APPEND_RESP", "VOTE",       "VOTE_RESP",       "HEARTBEAT",
        "HB_RESP", "SNAPSHOT", "TIMEOUT_NOW", "READ_INDEX", "READ_INDEX_RESP",
    };
    if (type < 1 || type > RAFT_MSG_TYPE_MAX) {
        return "?";
    }
    return names[type];
}

/* Shared helpers. */

struct progress *raft_progress(struct raft *r, raft_id id)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        if (r->servers[i].id == id) {
            return &r->servers[i];
        }
    }
    return NULL;
}

raft_term raft_term_of(const struct raft *r, raft_index i)
{
    if (i == r->snapshot_index) {
        return r->snapshot_term;
    }
    return log_term(&r->log, i);
}

raft_term raft_last_term(const struct raft *r)
{
    return raft_term_of(r, r->log.last);
}

unsigned raft_voters(const struct raft *r)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        n += r->servers[i].voter;
    }
    return n;
}

bool raft_self_is_voter(const struct raft *r)
{
    return raft_is_voter(r, r->cfg.id);
}

static void persisted(struct raft *r, const struct raft_persist_token *t)
{
    /* Whatever happened to its entries since, the request's term and vote are durable. */
    if (t->seq > r->durable_seq && t->seq <= r->persist_seq) {
        r->durable_seq = t->seq;
    }
    if (r->self_vote_pending && r->self_vote_seq != 0 && r->durable_seq >= r->self_vote_seq) {
        election_self_vote_durable(r);
    }
    /* Requests finish in order, so once one of the current generation is durable the
     * whole log up to its last index is. A request from before a truncation vouches for
     * entries that may have been replaced since: ignore it (a later one will do). */
    if (t->generation != r->generation) {
        return;
    }
    raft_index last = t->last_index < r->log.last ? t->last_index : r->log.last;
    if (last > r->stable) {
        r->stable = last;
        if (r->role == RAFT_LEADER) {
            replicate_self_persisted(r);
        }
    }
}

static int snapshot_taken(struct raft *r, raft_index index, raft_term term, raft_index compact_to)
{
    if (index > r->commit || compact_to > index || raft_term_of(r, index) != term) {
        return RAFT_EINVAL;
    }
    if (index > r->snapshot_index) {
        r->snapshot_index = index;
        r->snapshot_term = term;
    }
    if (compact_to >= r->log.first) {
        log_compact(&r->log, compact_to);
    }
    return 0;
}

static int read_index(struct raft *r, uint64_t id)
{
    if (r->role == RAFT_LEADER) {
        return read_index_request(r, id, r->cfg.id);
    }
    if (r->role == RAFT_FOLLOWER && r->leader != 0) {
        return read_index_forward(r, id);
    }
    raft_read_done(r, id, RAFT_ENOTLEADER, 0);
    return 0;
}

static int dispatch(struct raft *r, struct raft_event *ev)
{
    switch (ev->type) {
        case RAFT_EVENT_TICK:
            if (r->role == RAFT_LEADER) {
                replicate_tick(r);
            } else {
                election_tick(r);
            }
            return 0;
        case RAFT_EVENT_RECEIVE:
            return receive_message(r, &ev->receive);
        case RAFT_EVENT_PROPOSE:
            return replicate_propose(r, ev->propose.entries, ev->propose.n);
        case RAFT_EVENT_PERSISTED:
            persisted(r, &ev->persisted);
            return 0;
        case RAFT_EVENT_SNAPSHOT_TAKEN:
            return snapshot_taken(r, ev->snapshot_taken.index, ev->snapshot_taken.term,
                                  ev->snapshot_taken.compact_to);
        case RAFT_EVENT_READ_INDEX:
            return read_index(r, ev->read_index.id);
        case RAFT_EVENT_TRANSFER:
            return replicate_transfer(r, ev->transfer.target);
        case RAFT_EVENT_CAMPAIGN:
            if (r->role != RAFT_LEADER && members_may_campaign(r)) {
                election_campaign(r, ev->campaign.force);
            }
            return 0;
    }
    return RAFT_EINVAL;
}

/* Invariants that hold between any two steps. */
static void check_invariants(const struct raft *r)
{
    lr_assert(r->stable <= r->log.last);
    lr_assert(r->commit <= r->log.last);
    lr_assert(r->snapshot_index <= r->commit);
    lr_assert(r->log.first <= r->snapshot_index + 1);
    lr_assert(r->log.last >= r->snapshot_index);
    lr_implies(r->role == RAFT_LEADER, r->leader == r->cfg.id && r->vote == r->cfg.id);
    lr_implies(r->role == RAFT_CANDIDATE, r->vote == r->cfg.id);
    lr_implies(r->log.last > r->snapshot_index, raft_last_term(r) <= r->term);
}

/* A recovering node (raft.h, raft_boot) is done once it follows a leader of a term after
 * the one it lost its log in and holds durably, up to its commit index, an entry of that
 * leader's term: the entries before it include all that leader held when elected. */
static void check_recovered(struct raft *r)
{
    if (r->recover_term != 0 && r->role == RAFT_FOLLOWER && r->leader != 0 &&
        r->term > r->recover_term && r->stable >= r->commit &&
        raft_term_of(r, r->commit) == r->term) {
        r->recover_term = 0;
    }
}

int raft_step(struct raft *r, struct raft_event *ev, struct raft_update *u)
{
    struct update_start start;
    update_begin(r, u, &start);
    int rv = dispatch(r, ev);
    check_recovered(r);
    members_after_step(r);
    update_finish(r, &start);
    check_invariants(r);
    r->u = NULL;
    return rv;
}

/* Accessors. */

bool raft_recovering(const struct raft *r)
{
    return r->recover_term != 0;
}

raft_id raft_id_of(const struct raft *r)
{
    return r->cfg.id;
}

enum raft_role raft_role_of(const struct raft *r)
{
    return r->role;
}

raft_term raft_current_term(const struct raft *r)
{
    return r->term;
}

raft_id raft_voted_for(const struct raft *r)
{
    return r->vote;
}

raft_id raft_leader_of(const struct raft *r)
{
    return r->leader;
}

raft_id raft_transfer_target(const struct raft *r)
{
    return r->role == RAFT_LEADER ? r->transfer_target : 0;
}

raft_index raft_commit_index(const struct raft *r)
{
    return r->commit;
}

raft_index raft_last_index(const struct raft *r)
{
    return r->log.last;
}

raft_index raft_stable_index(const struct raft *r)
{
    return r->stable;
}

raft_index raft_snapshot_index(const struct raft *r)
{
    return r->snapshot_index;
}

raft_index raft_first_index(const struct raft *r)
{
    return r->log.first;
}

raft_term raft_term_at(const struct raft *r, raft_index index)
{
    return raft_term_of(r, index);
}

bool raft_is_voter(const struct raft *r, raft_id id)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        if (r->servers[i].id == id) {
            return r->servers[i].voter;
        }
    }
    return false;
}

bool raft_peer_info(const struct raft *r, raft_id id, struct raft_peer_info *info)
{
    static const char *const states[] = {"probe", "replicate", "snapshot"};
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (pr->id == id) {
            info->id = id;
            info->voter = pr->voter;
            info->match = pr->id == r->cfg.id ? r->stable : pr->match;
            info->next = pr->next;
            info->state = states[pr->state];
            return true;
        }
    }
    return false;
}

const struct raft_members *raft_members_of(const struct raft *r)
{
    return &r->conf;
}

raft_index raft_members_index(const struct raft *r)
{
    return r->conf_index;
}
