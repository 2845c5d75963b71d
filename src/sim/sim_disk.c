/*
 * The simulated disk: logs, the durable and volatile state of a node, and its queue of
 * persist requests.
 *
 * A persist request (one raft_update with HARD_STATE, SNAPSHOT and/or ENTRIES) is applied
 * to the volatile state at once, because the contract on raft_update says the entries must
 * be readable before they are durable, and queued with a completion time. Completions are
 * FIFO per node; at completion the request is applied to the durable state, the messages
 * held behind it leave, and the core hears RAFT_EVENT_PERSISTED. A crash drops the queue.
 *
 * Each disk has its own latency range (a slow disk: sim_disk_delay()), and its completions
 * can be held and let go one by one (sim_disk_hold(), sim_disk_release()), so that a write
 * can be kept in flight while the log is truncated behind it.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

/* --- Hashes ----------------------------------------------------------------------- */

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit. */
static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return fmix64(h ^ fmix64(v + 0x9e3779b97f4a7c15ULL));
}

/* 0 means "unknown" in the checker's tables, so no hash is ever 0. */
static uint64_t nonzero(uint64_t h)
{
    return h != 0 ? h : 1;
}

uint64_t sim_chain(uint64_t prev, raft_index index, raft_term term, uint32_t type, uint64_t value)
{
    uint64_t h = mix(prev, index);
    h = mix(h, term);
    h = mix(h, type);
    return nonzero(mix(h, value));
}

uint64_t sim_fsm_mix(uint64_t fsm, raft_index index, uint64_t value)
{
    return nonzero(mix(mix(fsm, index), value));
}

/* --- Logs ------------------------------------------------------------------------- */

void sim_log_init(struct sim_log *l)
{
    memset(l, 0, sizeof *l);
}

void sim_log_free(struct sim_log *l)
{
    free(l->e);
    sim_log_init(l);
}

raft_index sim_log_last_index(const struct sim_log *l)
{
    return l->offset + l->n;
}

struct sim_entry *sim_log_at(const struct sim_log *l, raft_index i)
{
    if (i <= l->offset || i > l->offset + l->n) {
        return NULL;
    }
    return &l->e[i - l->offset - 1];
}

/* The term and chain at index i, which may be the offset itself. */
bool sim_log_chain_at(const struct sim_log *l, raft_index i, raft_term *term, uint64_t *chain)
{
    if (i == l->offset) {
        *term = l->offset_term;
        *chain = l->offset_chain;
        return true;
    }
    const struct sim_entry *e = sim_log_at(l, i);
    if (e == NULL) {
        return false;
    }
    *term = e->term;
    *chain = e->chain;
    return true;
}

/* Drops entries at index >= from. */
void sim_log_truncate(struct sim_log *l, raft_index from)
{
    lr_assert(from > l->offset);
    if (from <= sim_log_last_index(l)) {
        l->n = from - l->offset - 1;
    }
}

void sim_log_push(struct sim_log *l, const struct sim_entry *e)
{
    if (l->n == l->cap) {
        uint64_t cap = l->cap ? l->cap * 2 : 64;
        struct sim_entry *p = realloc(l->e, cap * sizeof *p);
        lr_assert(p != NULL);
        l->e = p;
        l->cap = cap;
    }
    l->e[l->n++] = *e;
}

/* Drops entries at index <= to. Compacting past the end leaves an empty log after `to`
 * whose term and chain are unknown (only the durable log, which never needs them). */
void sim_log_compact(struct sim_log *l, raft_index to)
{
    if (to <= l->offset) {
        return;
    }
    if (to > sim_log_last_index(l)) {
        l->offset = to;
        l->offset_term = 0;
        l->offset_chain = 0;
        l->n = 0;
        return;
    }
    uint64_t k = to - l->offset;
    l->offset_term = l->e[k - 1].term;
    l->offset_chain = l->e[k - 1].chain;
    memmove(l->e, l->e + k, (l->n - k) * sizeof *l->e);
    l->n -= k;
    l->offset = to;
}

/* Empties the log so that the next entry is at index + 1. */
void sim_log_reset(struct sim_log *l, raft_index index, raft_term term, uint64_t chain)
{
    l->offset = index;
    l->offset_term = term;
    l->offset_chain = chain;
    l->n = 0;
}

/* --- The disk queue --------------------------------------------------------------- */

static struct sim_write *write_push(struct sim_node *n)
{
    if (n->writes_count == n->writes_cap) {
        uint32_t cap = n->writes_cap ? n->writes_cap * 2 : 16;
        struct sim_write *p = malloc(cap * sizeof *p);
        lr_assert(p != NULL);
        for (uint32_t i = 0; i < n->writes_count; i++) {
            p[i] = n->writes[(n->writes_head + i) % n->writes_cap];
        }
        free(n->writes);
        n->writes = p;
        n->writes_cap = cap;
        n->writes_head = 0;
    }
    struct sim_write *w = &n->writes[(n->writes_head + n->writes_count) % n->writes_cap];
    n->writes_count++;
    memset(w, 0, sizeof *w);
    return w;
}

struct sim_write *sim_disk_last_write(struct sim_node *n)
{
    if (n->writes_count == 0) {
        return NULL;
    }
    return &n->writes[(n->writes_head + n->writes_count - 1) % n->writes_cap];
}

/*
 * SNAPSHOT: install the snapshot of the message being delivered (the contract: "take the
 * snapshot at snapshot.index from the leader that sent it"). The volatile log is emptied
 * and the state machine restored now; the durable state follows at completion.
 */
static void persist_install(struct sim *s,
                            struct sim_node *n,
                            struct sim_write *w,
                            const struct raft_update *u)
{
    const struct sim_msg *msg = s->delivering;
    if (msg == NULL || msg->m.type != RAFT_MSG_SNAPSHOT || msg->m.from != u->snapshot.from ||
        msg->snap.index != u->snapshot.index || msg->snap.term != u->snapshot.term) {
        sim_fail(s, "snapshot install without its message", n->id, u->snapshot.index,
                 u->snapshot.term, "update asks for the snapshot of n%llu",
                 (unsigned long long)u->snapshot.from);
        return;
    }
    if (msg->snap.index < n->applied) {
        sim_fail(s, "snapshot install behind applied", n->id, msg->snap.index, msg->snap.term,
                 "applied %llu", (unsigned long long)n->applied);
    }
    w->install = true;
    w->snap = msg->snap;
    w->cuts_from = msg->snap.index + 1;
    n->installs_pending++;
    n->snap = msg->snap;
    sim_log_reset(&n->log, msg->snap.index, msg->snap.term, msg->snap.chain);
    n->applied = msg->snap.index;
    n->fsm = msg->snap.fsm;
    n->applied_conf = msg->snap.conf;
    s->stats.snapshots_installed++;
    sim_trace_add(s, SIM_TR_SNAP_INSTALL, n->id, msg->m.from, 0, msg->snap.index, msg->snap.term, 0,
                  0, 0, 0);
    sim_check_log_entry(s, n->id, msg->snap.index, msg->snap.term, msg->snap.chain);
    sim_check_apply(s, n, msg->snap.index, msg->snap.chain, msg->snap.fsm);
}

/* ENTRIES: delete every entry at index >= first and write the new ones there (none: a
 * truncation alone). */
static void persist_entries(struct sim *s,
                            struct sim_node *n,
                            struct sim_write *w,
                            const struct raft_update *u)
{
    raft_index first = u->append.first;
    uint32_t count = u->append.n;
    raft_index last = sim_log_last_index(&n->log);
    if ((count == 0 && first > last) || first <= n->log.offset || first > last + 1) {
        sim_fail(s, "entries written outside the log", n->id, first, 0,
                 "%u entries; the log holds %llu..%llu", count,
                 (unsigned long long)n->log.offset + 1, (unsigned long long)last);
        return;
    }
    /* Leader append-only (paper Figure 3): a leader never overwrites or deletes entries. */
    if (raft_role_of(n->core) == RAFT_LEADER && first <= last) {
        sim_fail(s, "leader append-only", n->id, first, raft_current_term(n->core),
                 "leader truncates its log at %llu (last %llu)", (unsigned long long)first,
                 (unsigned long long)last);
    }
    if (first <= last && w->cuts_from == 0) {
        w->cuts_from = first;
    }
    sim_log_truncate(&n->log, first);
    raft_term prev_term;
    uint64_t chain;
    bool known = sim_log_chain_at(&n->log, first - 1, &prev_term, &chain);
    lr_assert(known);
    w->entries = true;
    w->first = first;
    w->n = count;
    w->e = malloc((count > 0 ? count : 1) * sizeof *w->e);
    lr_assert(w->e != NULL);
    for (uint32_t k = 0; k < count; k++) {
        const struct raft_entry *re = &u->append.entries[k];
        raft_index index = first + k;
        struct sim_entry *e = &w->e[k];
        e->term = re->term;
        e->type = re->type;
        e->len = re->len;
        e->value = sim_value_of(re);
        e->chain = sim_chain(chain, index, e->term, e->type, e->value);
        if (e->term < prev_term) {
            sim_fail(s, "log terms decrease", n->id, index, e->term, "after term %llu",
                     (unsigned long long)prev_term);
        }
        prev_term = e->term;
        chain = e->chain;
        sim_log_push(&n->log, e);
        sim_check_log_entry(s, n->id, index, e->term, e->chain);
    }
}

/*
 * Carries out step 1 of the update contract: one persist request, applied to the volatile
 * state now and durable at a random completion time, never before the node's previous
 * request.
 */
void sim_disk_persist(struct sim *s, struct sim_node *n, const struct raft_update *u)
{
    lr_assert(n->up);
    lr_assert(u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_SNAPSHOT | RAFT_UPDATE_ENTRIES));
    struct sim_write *w = write_push(n);
    w->token = u->persist;
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        w->hard_state = true;
        w->term = u->term;
        w->vote = u->vote;
    }
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        persist_install(s, n, w, u);
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        persist_entries(s, n, w, u);
    }
    uint64_t done = s->now_us + sim_rand_range(s, n->disk_min_us, n->disk_max_us);
    if (done < n->disk_last_us) {
        done = n->disk_last_us;
    }
    w->done_us = done;
    n->disk_last_us = done;
    s->stats.writes++;
    sim_schedule(s, done, SIM_EV_DISK, (uint8_t)n->id, n->incarnation, NULL);
}

/* The durable side of ENTRIES. Entries at or below the durable log's offset are covered
 * by a snapshot taken while the write was in flight: skip them. */
static void durable_entries(struct sim_node *n, const struct sim_write *w)
{
    struct sim_log *d = &n->d_log;
    uint32_t skip = 0;
    raft_index first = w->first;
    if (first <= d->offset) {
        if (d->offset - first + 1 >= w->n) {
            return;
        }
        skip = (uint32_t)(d->offset - first + 1);
        first = d->offset + 1;
    }
    lr_assert(first <= sim_log_last_index(d) + 1); /* requests finish in order */
    sim_log_truncate(d, first);
    for (uint32_t k = skip; k < w->n; k++) {
        sim_log_push(d, &w->e[k]);
    }
}

/*
 * The lowest index at or below `last` that a request still in flight deletes, or 0. A
 * completion that vouches for such an index speaks of entries that have since been
 * replaced: the core must not count them as durable (raft.c, persisted(), compares the
 * token's generation for this).
 */
static raft_index cut_in_flight(const struct sim_node *n, raft_index last)
{
    raft_index low = 0;
    for (uint32_t i = 0; i < n->writes_count; i++) {
        const struct sim_write *w = &n->writes[(n->writes_head + i) % n->writes_cap];
        if (w->cuts_from != 0 && w->cuts_from <= last && (low == 0 || w->cuts_from < low)) {
            low = w->cuts_from;
        }
    }
    return low;
}

/*
 * The oldest pending write of node n completes: make it durable, send the messages held
 * behind it, then tell the core (RAFT_EVENT_PERSISTED).
 */
static void disk_complete(struct sim *s, struct sim_node *n)
{
    lr_assert(n->up && !n->paused);
    lr_assert(n->writes_count > 0);
    struct sim_write w = n->writes[n->writes_head];
    n->writes_head = (n->writes_head + 1) % n->writes_cap;
    n->writes_count--;
    lr_assert(w.done_us <= s->now_us);

    if (w.hard_state) {
        if (w.term < n->d_term) {
            sim_fail(s, "durable term decreases", n->id, 0, w.term, "durable term was %llu",
                     (unsigned long long)n->d_term);
        } else if (w.term == n->d_term && n->d_vote != 0 && w.vote != n->d_vote) {
            sim_fail(s, "two votes in one term", n->id, 0, w.term, "voted n%llu, now n%llu",
                     (unsigned long long)n->d_vote, (unsigned long long)w.vote);
        }
        n->d_term = w.term;
        n->d_vote = w.vote;
    }
    if (w.install) {
        lr_assert(n->installs_pending > 0);
        n->installs_pending--;
        if (w.snap.index >= n->d_snap.index) {
            n->d_snap = w.snap;
        }
        sim_log_reset(&n->d_log, w.snap.index, 0, 0);
    }
    if (w.entries) {
        durable_entries(n, &w);
    }
    free(w.e);

    struct sim_msg *held = w.held;
    while (held != NULL) {
        struct sim_msg *next = held->next;
        held->next = NULL;
        sim_net_send(s, held);
        held = next;
    }

    raft_index last = sim_log_last_index(&n->log);
    raft_index cut = cut_in_flight(n, w.token.last_index < last ? w.token.last_index : last);
    if (cut != 0) {
        s->stats.persisted_after_truncation++;
    }
    sim_trace_add(s, SIM_TR_PERSISTED, n->id, 0, 0, w.token.last_index, w.token.generation, cut, 0,
                  0, 0);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_PERSISTED;
    ev.persisted = w.token;
    sim_step_node(s, n, &ev, NULL);
}

/* A disk event of node n (up, not paused, of its incarnation): the oldest write completes,
 * unless the disk is held. */
void sim_disk_event(struct sim *s, struct sim_node *n)
{
    if (n->disk_held) {
        if (n->disk_released == 0) {
            n->disk_held_events++;
            return;
        }
        n->disk_released--;
    }
    disk_complete(s, n);
}

/* Lets up to count held completions happen now, oldest first. */
static uint32_t release(struct sim *s, struct sim_node *n, uint32_t count)
{
    uint32_t k = count < n->disk_held_events ? count : n->disk_held_events;
    n->disk_held_events -= k;
    if (n->disk_held) {
        n->disk_released += k; /* these events pass the hold */
    }
    for (uint32_t i = 0; i < k; i++) {
        sim_schedule(s, s->now_us, SIM_EV_DISK, (uint8_t)n->id, n->incarnation, NULL);
    }
    return k;
}

static struct sim_node *disk_node(struct sim *s, raft_id id)
{
    return id >= 1 && id <= s->n_nodes ? &s->nodes[id] : NULL;
}

int sim_disk_delay(struct sim *s, raft_id id, uint64_t min_us, uint64_t max_us)
{
    struct sim_node *n = disk_node(s, id);
    if (n == NULL) {
        return SIM_ENOENT;
    }
    if (min_us > max_us) {
        return SIM_EINVAL;
    }
    n->disk_min_us = min_us;
    n->disk_max_us = max_us;
    sim_trace_add(s, SIM_TR_DISK, id, 0, 0, min_us, max_us, 0, 0, 0, 0);
    return 0;
}

int sim_disk_hold(struct sim *s, raft_id id, bool hold)
{
    struct sim_node *n = disk_node(s, id);
    if (n == NULL) {
        return SIM_ENOENT;
    }
    if (hold == n->disk_held) {
        return 0;
    }
    if (hold) {
        n->disk_held = true;
        sim_trace_add(s, SIM_TR_DISK, id, 0, 1, 0, 0, 0, 0, 0, 0);
        return 0;
    }
    uint32_t held = n->disk_held_events;
    n->disk_held = false;
    n->disk_released = 0;
    sim_trace_add(s, SIM_TR_DISK, id, 0, 2, release(s, n, held), held, 0, 0, 0, 0);
    return 0;
}

int sim_disk_release(struct sim *s, raft_id id, uint32_t count, uint32_t *released)
{
    struct sim_node *n = disk_node(s, id);
    if (n == NULL) {
        return SIM_ENOENT;
    }
    if (!n->disk_held) {
        return SIM_EINVAL;
    }
    uint32_t held = n->disk_held_events;
    uint32_t k = release(s, n, count);
    sim_trace_add(s, SIM_TR_DISK, id, 0, 2, k, held, 0, 0, 0, 0);
    if (released != NULL) {
        *released = k;
    }
    return 0;
}

int sim_disk_pending(const struct sim *s, raft_id id, uint32_t *writes, uint32_t *held)
{
    if (id < 1 || id > s->n_nodes) {
        return SIM_ENOENT;
    }
    const struct sim_node *n = &s->nodes[id];
    *writes = n->up ? n->writes_count : 0;
    *held = n->up ? n->disk_held_events : 0;
    return 0;
}

/* A crash: every pending write is lost, with the messages held behind it. */
void sim_disk_drop_all(struct sim *s, struct sim_node *n)
{
    while (n->writes_count > 0) {
        struct sim_write *w = &n->writes[n->writes_head];
        free(w->e);
        sim_msg_free_list(s, w->held, true);
        n->writes_head = (n->writes_head + 1) % n->writes_cap;
        n->writes_count--;
    }
    n->writes_head = 0;
    n->installs_pending = 0;
    n->disk_held_events = 0; /* their writes are gone; the disk stays held */
    n->disk_released = 0;
}

/* After RAFT_EVENT_SNAPSHOT_TAKEN: both logs may drop entries up to compact_to. */
void sim_disk_snapshot_taken(struct sim_node *n, raft_index compact_to)
{
    sim_log_compact(&n->log, compact_to);
    sim_log_compact(&n->d_log, compact_to);
}

void sim_disk_free(struct sim_node *n)
{
    for (uint32_t i = 0; i < n->writes_count; i++) {
        struct sim_write *w = &n->writes[(n->writes_head + i) % n->writes_cap];
        free(w->e);
        struct sim_msg *m = w->held;
        while (m != NULL) {
            struct sim_msg *next = m->next;
            free(m);
            m = next;
        }
    }
    free(n->writes);
    n->writes = NULL;
    n->writes_count = 0;
    n->writes_cap = 0;
    sim_log_free(&n->log);
    sim_log_free(&n->d_log);
}
