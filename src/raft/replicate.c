/*
 * The leader's side of log replication (paper 5.3): proposals, APPEND ranges chosen from
 * each follower's progress (probe one at a time, or pipeline within a bounded window),
 * heartbeats, commit by counting replicas of a current-term entry (5.4.2), check-quorum
 * and leadership transfer.
 */
#include "raft/internal.h"
#include "util/assert.h"

/* The in-flight window of a follower in REPLICATE mode. */
static bool window_full(const struct raft *r, const struct progress *pr)
{
    return pr->inflight_count == r->cfg.inflight_msgs_max ||
           pr->inflight_bytes >= r->cfg.inflight_bytes_max;
}

static void window_add(struct raft *r, struct progress *pr, raft_index last, uint32_t bytes)
{
    lr_assert(!window_full(r, pr));
    uint32_t k = (pr->inflight_start + pr->inflight_count) % r->cfg.inflight_msgs_max;
    pr->inflights[k].last = last;
    pr->inflights[k].bytes = bytes;
    pr->inflight_count++;
    pr->inflight_bytes += bytes;
}

/* Frees the messages an acknowledgment up to index covers. */
static void window_free_to(struct raft *r, struct progress *pr, raft_index index)
{
    while (pr->inflight_count > 0) {
        struct inflight *f = &pr->inflights[pr->inflight_start];
        if (f->last > index) {
            break;
        }
        pr->inflight_bytes -= f->bytes;
        pr->inflight_start = (pr->inflight_start + 1) % r->cfg.inflight_msgs_max;
        pr->inflight_count--;
    }
}

static void window_clear(struct progress *pr)
{
    pr->inflight_start = 0;
    pr->inflight_count = 0;
    pr->inflight_bytes = 0;
}

static void become_probe(struct progress *pr, raft_index next)
{
    pr->state = PROGRESS_PROBE;
    pr->probe_sent = false;
    pr->next = next > pr->match + 1 ? next : pr->match + 1;
    pr->stall_ticks = 0;
    window_clear(pr);
}

static void become_replicate(struct progress *pr)
{
    pr->state = PROGRESS_REPLICATE;
    pr->probe_sent = false;
    pr->next = pr->match + 1;
    pr->stall_ticks = 0;
    window_clear(pr);
}

static void send_snapshot(struct raft *r, struct progress *pr)
{
    struct raft_message *m = raft_msg_new(r, RAFT_MSG_SNAPSHOT, pr->id);
    m->snapshot.index = r->snapshot_index;
    m->snapshot.term = r->snapshot_term;
    pr->state = PROGRESS_SNAPSHOT;
    pr->snapshot_index = r->snapshot_index;
    pr->stall_ticks = 0;
    window_clear(pr);
}

/*
 * Sends the next APPEND to one follower if its mode allows: PROBE sends one and waits,
 * REPLICATE sends while the window has room, SNAPSHOT waits. A follower that needs
 * compacted entries gets the snapshot instead (section 7). With allow_empty, an APPEND
 * with no entries still goes out to carry the commit index.
 */
void replicate_send_append(struct raft *r, struct progress *pr, bool allow_empty)
{
    lr_assert(r->role == RAFT_LEADER);
    lr_assert(pr->id != r->cfg.id);
    if (pr->state == PROGRESS_SNAPSHOT || (pr->state == PROGRESS_PROBE && pr->probe_sent)) {
        return;
    }
    do {
        if (pr->state == PROGRESS_REPLICATE && window_full(r, pr)) {
            return;
        }
        raft_index prev = pr->next - 1;
        raft_term prev_term = raft_term_of(r, prev);
        if (pr->next < r->log.first || (prev_term == 0 && prev > 0)) {
            send_snapshot(r, pr);
            return;
        }
        uint64_t total;
        uint32_t n = log_batch(&r->log, pr->next, r->cfg.append_entries_max,
                               r->cfg.append_bytes_max, &total);
        uint32_t bytes = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
        if (n == 0 && !allow_empty) {
            return;
        }
        struct raft_message *m = raft_msg_new(r, RAFT_MSG_APPEND, pr->id);
        m->append.prev_index = prev;
        m->append.prev_term = prev_term;
        m->append.commit = r->commit;
        m->append.n_entries = n;
        if (pr->state == PROGRESS_PROBE) {
            pr->probe_sent = true;
            return;
        }
        if (n == 0) {
            return;
        }
        pr->next += n;
        window_add(r, pr, prev + n, bytes);
        allow_empty = false;
    } while (pr->next <= r->log.last);
}

void replicate_broadcast_append(struct raft *r)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        struct progress *pr = &r->servers[i];
        if (pr->id != r->cfg.id) {
            replicate_send_append(r, pr, false);
        }
    }
}

void replicate_send_heartbeats(struct raft *r)
{
    for (unsigned i = 0; i < r->n_servers; i++) {
        struct progress *pr = &r->servers[i];
        if (pr->id == r->cfg.id) {
            continue;
        }
        struct raft_message *m = raft_msg_new(r, RAFT_MSG_HEARTBEAT, pr->id);
        /* Never more than the follower is known to match: its log past match may still
         * hold entries of an older term that this leader will overwrite. */
        m->heartbeat.commit = pr->match < r->commit ? pr->match : r->commit;
        m->heartbeat.read_seq = r->read_seq;
    }
}

/* Commit (5.3, 5.4.2): an index stored on a majority is committed only if its entry is of
 * the current term; older entries commit with it (the Figure 8 rule). */
void replicate_maybe_commit(struct raft *r)
{
    raft_index index = quorum_commit_index(r);
    if (index <= r->commit || raft_term_of(r, index) != r->term) {
        return;
    }
    r->commit = index;
    if (!r->committed_in_term) {
        r->committed_in_term = true;
        read_index_start_rounds(r);
    }
    /* Followers that have everything learn the new commit index now rather than at the
     * next heartbeat; the others learn it with their next entries. */
    for (unsigned i = 0; i < r->n_servers; i++) {
        struct progress *pr = &r->servers[i];
        if (pr->id != r->cfg.id && pr->state == PROGRESS_REPLICATE && pr->next > r->log.last &&
            pr->inflight_count == 0) {
            replicate_send_append(r, pr, true);
        }
    }
}

void replicate_self_persisted(struct raft *r)
{
    replicate_maybe_commit(r);
}

static void maybe_send_timeout_now(struct raft *r, const struct progress *pr)
{
    if (r->transfer_target == pr->id && pr->match == r->log.last) {
        raft_msg_new(r, RAFT_MSG_TIMEOUT_NOW, pr->id);
    }
}

/*
 * Appends this term's no-op (paper section 8). Proposals keep slots free for it
 * (log_has_room); if the log is full nonetheless, or an allocation fails, the leader's
 * ticks retry.
 */
bool replicate_append_noop(struct raft *r)
{
    lr_assert(r->role == RAFT_LEADER);
    if (raft_last_term(r) == r->term || !log_fits(&r->log, 1)) {
        return false;
    }
    if (log_append(&r->log, r->term, 0) != 0) {
        return false;
    }
    r->noop.term = r->term;
    raft_persist_entries(r, r->log.last, &r->noop, 1);
    return true;
}

int replicate_propose(struct raft *r, struct raft_entry *entries, uint32_t n)
{
    if (r->role != RAFT_LEADER) {
        return RAFT_ENOTLEADER;
    }
    if (r->transfer_target != 0) {
        return RAFT_EBUSY;
    }
    if (n == 0) {
        return RAFT_EINVAL;
    }
    if (!log_has_room(&r->log, n)) {
        return RAFT_ELOGFULL;
    }
    raft_index first = r->log.last + 1;
    bool change = entries[0].type == RAFT_ENTRY_CONFIG;
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].type == RAFT_ENTRY_CONFIG && n > 1) {
            return RAFT_EINVAL; /* a change is proposed alone */
        }
    }
    if (change) {
        int rv = members_propose(r, &entries[0], first);
        if (rv != 0) {
            return rv;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        entries[i].term = r->term;
        int rv = log_append(&r->log, r->term, entries[i].len);
        if (rv != 0) {
            log_truncate(&r->log, first);
            members_truncated(r, first);
            return rv;
        }
    }
    raft_persist_entries(r, first, entries, n);
    replicate_broadcast_append(r);
    return 0;
}

/* The next index to try after a rejection, from the follower's hint (thesis 5.3's
 * optimization): skip the whole conflicting term at once. */
static raft_index next_after_reject(const struct raft *r, const struct raft_message *m)
{
    raft_term ct = m->append_resp.conflict_term;
    if (ct == 0) {
        return m->append_resp.conflict_index;
    }
    raft_index j = log_last_with_term_at_most(&r->log, m->append_resp.index, ct);
    if (j >= r->log.first && log_term(&r->log, j) == ct) {
        return j + 1; /* we have that term: continue after our last entry of it */
    }
    return m->append_resp.conflict_index;
}

static void recv_reject(struct raft *r, struct progress *pr, const struct raft_message *m)
{
    raft_index rejected = m->append_resp.index;
    /* A log that ends before the follower's match index was lost (raft.h, raft_boot
     * recover_term), or this answer is old: either way, probing from where the answer
     * says it ends and counting only that much toward commits is safe. */
    raft_index end = m->append_resp.conflict_index;
    if (m->append_resp.conflict_term == 0 && end >= 1 && end <= pr->match &&
        pr->state != PROGRESS_SNAPSHOT) {
        pr->match = end - 1; /* counting less toward commit is always safe */
        become_probe(pr, end);
        replicate_send_append(r, pr, true);
        return;
    }
    if (pr->state == PROGRESS_REPLICATE && rejected <= pr->match) {
        return; /* stale */
    }
    if (pr->state == PROGRESS_PROBE && rejected != pr->next - 1) {
        return; /* stale: not the probe in flight */
    }
    if (pr->state == PROGRESS_SNAPSHOT) {
        return;
    }
    raft_index next = next_after_reject(r, m);
    if (next > r->log.last + 1) {
        next = r->log.last + 1;
    }
    if (next > rejected) {
        next = rejected; /* always move back past the rejected prev_index */
    }
    become_probe(pr, next);
    replicate_send_append(r, pr, true);
}

static void recv_success(struct raft *r, struct progress *pr, const struct raft_message *m)
{
    raft_index index = m->append_resp.index;
    if (index > r->log.last) {
        return; /* cannot be from this term's leader; be defensive with peers */
    }
    bool advanced = index > pr->match;
    if (advanced) {
        pr->match = index;
        pr->stall_ticks = 0;
    }
    if (pr->next <= index) {
        pr->next = index + 1;
    }
    switch (pr->state) {
        case PROGRESS_PROBE:
            become_replicate(pr);
            break;
        case PROGRESS_SNAPSHOT:
            if (pr->match >= pr->snapshot_index) {
                become_probe(pr, pr->match + 1);
            }
            break;
        case PROGRESS_REPLICATE:
            window_free_to(r, pr, index);
            break;
    }
    if (advanced) {
        replicate_maybe_commit(r);
    }
    maybe_send_timeout_now(r, pr);
    replicate_send_append(r, pr, false);
}

/* The progress of the follower that answered, now known to be alive; NULL when the
 * answer is for a leadership we no longer hold, or from an unknown server. */
static struct progress *answered_by(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = r->role == RAFT_LEADER ? raft_progress(r, m->from) : NULL;
    if (pr != NULL) {
        pr->recent_active = true;
    }
    return pr;
}

void replicate_recv_append_resp(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = answered_by(r, m);
    if (pr == NULL) {
        return;
    }
    if (m->append_resp.success) {
        recv_success(r, pr, m);
    } else {
        recv_reject(r, pr, m);
    }
}

void replicate_recv_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
    struct progress *pr = answered_by(r, m);
    if (pr == NULL) {
        return;
    }
    if (m->heartbeat_resp.read_seq > pr->read_ack && m->heartbeat_resp.read_seq <= r->read_seq) {
        pr->read_ack = m->heartbeat_resp.read_seq;
        read_index_advance(r);
    }
    /* A lost probe is retried once the follower is known to be reachable. */
    if (pr->state == PROGRESS_PROBE) {
        pr->probe_sent = false;
    }
    if (pr->match < r->log.last) {
        replicate_send_append(r, pr, false);
    }
    maybe_send_timeout_now(r, pr); /* in case the first one was lost */
}

/*
 * A follower in REPLICATE whose window has not moved for an election timeout probably
 * lost a message: pipelining sends without waiting, so nothing else would notice a gap
 * at the tail. Fall back to probing from its match index.
 */
static void tick_progress(struct raft *r, struct progress *pr)
{
    if (pr->id == r->cfg.id) {
        return;
    }
    bool waiting = (pr->state == PROGRESS_REPLICATE && pr->inflight_count > 0) ||
                   pr->state == PROGRESS_SNAPSHOT;
    if (!waiting) {
        pr->stall_ticks = 0;
        return;
    }
    pr->stall_ticks++;
    if (pr->stall_ticks >= 2 * r->cfg.election_ticks) {
        become_probe(pr, pr->match + 1);
        replicate_send_append(r, pr, true);
    }
}

/*
 * The leader's clock: heartbeats every heartbeat_ticks; every election_ticks, check-quorum
 * (thesis 6.2: "if an election timeout elapses without a successful round of heartbeats to
 * a majority of its cluster, the leader steps down"), and expiry of a transfer.
 */
void replicate_tick(struct raft *r)
{
    lr_assert(r->role == RAFT_LEADER);
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (replicate_append_noop(r)) {
        replicate_broadcast_append(r);
    }
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        if (!quorum_active(r)) {
            role_become_follower(r, r->term, 0);
            return;
        }
        for (unsigned i = 0; i < r->n_servers; i++) {
            r->servers[i].recent_active = r->servers[i].id == r->cfg.id;
        }
    }
    if (r->transfer_target != 0 && ++r->transfer_elapsed >= r->cfg.election_ticks) {
        r->transfer_target = 0; /* took too long: give up, accept proposals again */
    }
    for (unsigned i = 0; i < r->n_servers; i++) {
        tick_progress(r, &r->servers[i]);
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        replicate_send_heartbeats(r);
    }
}

/* Leadership transfer (thesis 3.10): stop taking proposals, bring the target up to date,
 * then tell it to campaign at once. Gives up after an election timeout. */
int replicate_transfer(struct raft *r, raft_id target)
{
    if (r->role != RAFT_LEADER) {
        return RAFT_ENOTLEADER;
    }
    struct progress *pr = raft_progress(r, target);
    if (pr == NULL || !pr->voter || target == r->cfg.id) {
        return RAFT_EINVAL;
    }
    r->transfer_target = target;
    r->transfer_elapsed = 0;
    maybe_send_timeout_now(r, pr);
    replicate_send_append(r, pr, false);
    return 0;
}
