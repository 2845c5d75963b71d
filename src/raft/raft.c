/*
 * raft_step(): validate an event, dispatch it, then finish the update and check the
 * invariants that must hold between any two steps.
 */
#include "raft/raft.h"

#include <stdlib.h>
#include <string.h>

#include "raft/internal.h"
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

void raft_config_default(struct raft_config *c, raft_id id, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->seed = seed;
    c->election_ticks = 10;
    c->heartbeat_ticks = 1;
    c->append_entries_max = 1024;
    c->append_bytes_max = 1u << 20;
    c->inflight_msgs_max = 64;
    c->inflight_bytes_max = 32u << 20;
    c->log_entries_max = 1u << 22;
    c->reads_max = 4096;
}

static int config_check(const struct raft_config *c, const struct raft_boot *b)
{
    if (c->id == 0 || c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
        c->heartbeat_ticks >= c->election_ticks || c->append_entries_max == 0 ||
        c->append_bytes_max == 0 || c->inflight_msgs_max == 0 || c->inflight_bytes_max == 0 ||
        c->log_entries_max == 0 || c->reads_max == 0) {
        return RAFT_EINVAL;
    }
    /* Upper bounds keep the arithmetic on them (2 * election_ticks, buffer sizes) far from
     * wrapping; they are far above any useful setting. */
    if (c->election_ticks > (1u << 20) || c->inflight_msgs_max > (1u << 16) ||
        c->reads_max > (1u << 20) || c->log_entries_max > (UINT64_C(1) << 40) ||
        c->append_entries_max > (1u << 20)) {
        return RAFT_EINVAL;
    }
    if (b->n_servers == 0 || b->n_servers > RAFT_SERVERS_MAX || b->n_entries > c->log_entries_max) {
        return RAFT_EINVAL;
    }
    if ((b->vote != 0 && b->term == 0) || b->snapshot_term > b->term || b->term >= raft_term_max ||
        b->snapshot_index >= raft_index_max) {
        return RAFT_EINVAL;
    }
    for (unsigned i = 0; i < b->n_servers; i++) {
        if (b->servers[i].id == 0) {
            return RAFT_EINVAL;
        }
        for (unsigned j = 0; j < i; j++) {
            if (b->servers[j].id == b->servers[i].id) {
                return RAFT_EINVAL;
            }
        }
    }
    return 0;
}

static int boot_log(struct raft *r, const struct raft_boot *b)
{
    raft_term prev = b->snapshot_term;
    for (raft_index i = 0; i < b->n_entries; i++) {
        const struct raft_entry *e = &b->entries[i];
        if (e->term < prev || e->term > b->term) {
            return RAFT_EINVAL; /* terms never decrease, nor pass the current term */
        }
        int rv = log_append(&r->log, e->term, e->len);
        if (rv != 0) {
            return rv;
        }
        prev = e->term;
    }
    return 0;
}

static int alloc_buffers(struct raft *r)
{
    const struct raft_config *c = &r->cfg;
    /* Per step: for each server up to a window of APPENDs plus a heartbeat or two, and an
     * answer for every pending follower read. */
    r->out_cap = RAFT_SERVERS_MAX * (c->inflight_msgs_max + 4) + c->reads_max;
    r->out = calloc(r->out_cap, sizeof *r->out);
    r->read_out_cap = c->reads_max + 1;
    r->read_out = calloc(r->read_out_cap, sizeof *r->read_out);
    r->reads = calloc(c->reads_max, sizeof *r->reads);
    if (r->out == NULL || r->read_out == NULL || r->reads == NULL) {
        return RAFT_ENOMEM;
    }
    for (unsigned i = 0; i < RAFT_SERVERS_MAX; i++) {
        r->servers[i].inflights = calloc(c->inflight_msgs_max, sizeof(struct inflight));
        if (r->servers[i].inflights == NULL) {
            return RAFT_ENOMEM;
        }
    }
    return 0;
}

int raft_init(struct raft **out, const struct raft_config *config, const struct raft_boot *boot)
{
    int rv = config_check(config, boot);
    if (rv != 0) {
        return rv;
    }
    struct raft *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RAFT_ENOMEM;
    }
    r->cfg = *config;
    lr_rand_seed(&r->rand, config->seed ^ (config->id * 0x9e3779b97f4a7c15ULL));
    rv = alloc_buffers(r);
    if (rv != 0) {
        goto err_after_alloc;
    }
    rv = log_init(&r->log, config->log_entries_max, boot->snapshot_index);
    if (rv != 0) {
        goto err_after_alloc;
    }
    r->term = boot->term;
    r->vote = boot->vote;
    r->snapshot_index = boot->snapshot_index;
    r->snapshot_term = boot->snapshot_term;
    rv = boot_log(r, boot);
    if (rv != 0) {
        goto err_after_log;
    }
    r->n_servers = boot->n_servers;
    for (unsigned i = 0; i < boot->n_servers; i++) {
        r->servers[i].id = boot->servers[i].id;
        r->servers[i].voter = boot->servers[i].voter;
    }
    /* Everything found on disk is durable; only the snapshot is known committed. */
    r->stable = r->log.last;
    r->commit = boot->snapshot_index;
    r->role = RAFT_FOLLOWER;
    r->noop.type = RAFT_ENTRY_NOOP;
    role_reset_timeout(r);
    *out = r;
    return 0;

err_after_log:
    log_close(&r->log);
err_after_alloc:
    raft_free(r);
    return rv;
}

void raft_free(struct raft *r)
{
    if (r == NULL) {
        return;
    }
    log_close(&r->log);
    for (unsigned i = 0; i < RAFT_SERVERS_MAX; i++) {
        free(r->servers[i].inflights);
    }
    free(r->out);
    free(r->read_out);
    free(r->reads);
    free(r);
}

/* Shared helpers. */

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

/* Receiving: the term rules of Figure 2 ("Rules for Servers") with pre-vote and the
 * leader lease of thesis 4.2.3. Returns false if the message is to be dropped. */
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
    if (r->role == RAFT_FOLLOWER && m->from == r->leader && raft_self_is_voter(r)) {
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
 * and none from a term past the message's. */
static bool entries_sane(const struct raft_message *m)
{
    if (m->append.n_entries > 0 && m->append.entries == NULL) {
        return false;
    }
    raft_term prev = m->append.prev_term;
    for (uint32_t i = 0; i < m->append.n_entries; i++) {
        raft_term t = m->append.entries[i].term;
        if (t == 0 || t < prev || t > m->term) {
            return false;
        }
        prev = t;
    }
    return true;
}

/*
 * Fields no correct peer sends. The core drops such a message instead of letting it reach
 * an assertion: a buggy or hostile peer must not crash the node. Indexes and terms stay
 * far below where arithmetic on them could wrap.
 */
static bool message_sane(const struct raft *r, const struct raft_message *m)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 || m->from == r->cfg.id ||
        raft_progress((struct raft *)r, m->from) == NULL || m->term >= raft_term_max) {
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
                   m->snapshot.term > 0 && m->snapshot.term <= m->term;
        case RAFT_MSG_READ_INDEX_RESP:
            return m->read_index_resp.index < raft_index_max;
        default:
            return true;
    }
}

static int recv(struct raft *r, struct raft_message *m)
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

static void persisted(struct raft *r, const struct raft_persist_token *t)
{
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
            return recv(r, &ev->receive);
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
            if (r->role != RAFT_LEADER && raft_self_is_voter(r)) {
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

int raft_step(struct raft *r, struct raft_event *ev, struct raft_update *u)
{
    memset(u, 0, sizeof *u);
    u->messages = r->out;
    u->reads = r->read_out;
    r->u = u;
    raft_term term0 = r->term;
    raft_id vote0 = r->vote;
    enum raft_role role0 = r->role;
    raft_id leader0 = r->leader;
    raft_index commit0 = r->commit;

    int rv = dispatch(r, ev);

    bool hard_state = r->term != term0 || r->vote != vote0;
    if (hard_state) {
        lr_assert(r->term >= term0);
        u->flags |= RAFT_UPDATE_HARD_STATE;
    }
    u->term = r->term;
    u->vote = r->vote;
    u->role = r->role;
    u->leader = r->leader;
    if (r->role != role0 || r->leader != leader0) {
        u->flags |= RAFT_UPDATE_ROLE;
    }
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_ENTRIES | RAFT_UPDATE_SNAPSHOT)) {
        u->persist.last_index = r->log.last;
        u->persist.generation = r->generation;
    }
    for (unsigned i = 0; i < u->n_messages; i++) {
        struct raft_message *m = &u->messages[i];
        /* Every message carries the term; one carrying a term not yet durable waits. Vote
         * grants and append acknowledgments always wait: they vouch for durable state. */
        if (hard_state || m->type == RAFT_MSG_APPEND_RESP ||
            (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.granted && !m->vote_resp.prevote)) {
            m->after_persist = true;
        }
    }
    if (u->n_messages > 0) {
        u->flags |= RAFT_UPDATE_MESSAGES;
    }
    if (r->commit != commit0) {
        lr_assert(r->commit > commit0);
        u->flags |= RAFT_UPDATE_COMMIT;
    }
    u->commit = r->commit;
    if (u->n_reads > 0) {
        u->flags |= RAFT_UPDATE_READS;
    }
    check_invariants(r);
    r->u = NULL;
    return rv;
}

/* Accessors. */

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
