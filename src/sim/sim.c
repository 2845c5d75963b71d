/*
 * The cluster: creating it from its options, booting a node's core from its durable state
 * (at creation and on restart), and destroying it; plus the small helpers every part of
 * the simulator uses. The rest lives in one file per job (sim_internal.h lists them).
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

const char *sim_strerror(int rv)
{
    switch (rv) {
        case SIM_EDOWN:
            return "node is down";
        case SIM_EPAUSED:
            return "node is paused";
        case SIM_ENOENT:
            return "no such node or request";
        case SIM_EBUSY:
            return "snapshot install in progress";
        case SIM_EFAILED:
            return "the checker stopped the simulation";
        case SIM_EINVAL:
            return "invalid argument";
        case SIM_ENOTHING:
            return "nothing applied since the last snapshot";
        case SIM_EREAD_FAILED:
            return "read failed";
        default:
            return raft_strerror(rv);
    }
}

void sim_options_default(struct sim_options *o)
{
    memset(o, 0, sizeof *o);
    o->voters = 3;
    o->learners = 0;
    o->seed = 1;
    o->election_ticks = 10;
    o->heartbeat_ticks = 1;
    o->tick_us = 10000;
    o->net_delay_min_us = 1000;
    o->net_delay_max_us = 5000;
    o->disk_delay_min_us = 100;
    o->disk_delay_max_us = 2000;
    o->snapshot_threshold = 0;
    o->snapshot_trailing = 10;
}

uint64_t sim_rand_range(struct sim *s, uint64_t lo, uint64_t hi)
{
    lr_assert(lo <= hi);
    return lo == hi ? lo : lr_rand_range(&s->rand, lo, hi);
}

uint64_t sim_conf_pack(const struct raft_members *m)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < m->n; i++) {
        raft_id id = m->servers[i].id;
        lr_assert(id >= 1 && id <= sim_nodes_max);
        v |= UINT64_C(1) << (id - 1);
        if (m->servers[i].voter) {
            v |= UINT64_C(1) << (16 + id - 1);
        }
    }
    return v;
}

void sim_conf_unpack(uint64_t packed, struct raft_members *m)
{
    memset(m, 0, sizeof *m);
    for (raft_id id = 1; id <= sim_nodes_max; id++) {
        if (packed & (UINT64_C(1) << (id - 1))) {
            bool voter = (packed & (UINT64_C(1) << (16 + id - 1))) != 0;
            m->servers[m->n++] = (struct raft_server){id, voter};
        }
    }
}

/* The value in the first 8 bytes of a payload, 0 for an empty one (NOOP); of a CONFIG
 * entry, its configuration packed. */
uint64_t sim_value_of(const struct raft_entry *e)
{
    uint64_t v = 0;
    if (e->type == RAFT_ENTRY_CONFIG) {
        struct raft_members m;
        int rv = raft_members_decode(e->buf, e->len, &m, NULL);
        lr_assert(rv == 0); /* the core accepted it */
        return sim_conf_pack(&m);
    }
    if (e->buf != NULL && e->len >= sizeof v) {
        memcpy(&v, e->buf, sizeof v);
    }
    return v;
}

void sim_entry_to_core(const struct sim_entry *e, uint8_t *buf, struct raft_entry *re)
{
    re->term = e->term;
    re->type = e->type;
    re->len = e->len;
    re->buf = e->len > 0 ? buf : NULL;
    memset(buf, 0, sim_entry_bytes_max);
    if (e->type == RAFT_ENTRY_CONFIG) {
        struct raft_members m;
        sim_conf_unpack(e->value, &m);
        size_t len = raft_members_encode(&m, buf, sim_entry_bytes_max);
        lr_assert(len == e->len);
    } else {
        lr_assert(e->len <= sim_payload_bytes);
        memcpy(buf, &e->value, e->len < sizeof e->value ? e->len : sizeof e->value);
    }
}

/* --- Booting, creating, destroying ------------------------------------------------- */

/*
 * Starts node n's core from its durable state: what a real node finds on disk after a
 * restart. Durable entries at or below the snapshot are covered by it and dropped; a
 * durable suffix that does not continue the snapshot's chain (left by a write that was
 * overtaken by the snapshot and lost in the crash) is discarded, as a real store would on
 * finding a log entry whose predecessor disagrees with its snapshot.
 */
int sim_node_boot(struct sim *s, struct sim_node *n)
{
    const struct sim_snap snap = n->d_snap;
    lr_assert(n->d_log.offset <= snap.index || n->d_log.n == 0);
    sim_log_compact(&n->d_log, snap.index);
    if (n->d_log.n > 0) {
        const struct sim_entry *e = &n->d_log.e[0];
        if (e->chain != sim_chain(snap.chain, snap.index + 1, e->term, e->type, e->value)) {
            sim_trace_add(s, SIM_TR_DISCARD, n->id, 0, 0, snap.index + 1,
                          sim_log_last_index(&n->d_log), 0, 0, 0, 0);
            n->d_log.n = 0;
        }
    }
    sim_log_reset(&n->log, snap.index, snap.term, snap.chain);
    struct raft_entry *entries = calloc(n->d_log.n + 1, sizeof *entries);
    uint8_t(*payload)[sim_entry_bytes_max] = calloc(n->d_log.n + 1, sizeof *payload);
    lr_assert(entries != NULL && payload != NULL);
    for (uint64_t i = 0; i < n->d_log.n; i++) {
        const struct sim_entry *e = &n->d_log.e[i];
        sim_log_push(&n->log, e);
        sim_entry_to_core(e, payload[i], &entries[i]);
    }
    n->snap = snap;
    n->applied = snap.index;
    n->fsm = snap.fsm;
    n->applied_conf = snap.index > 0 ? snap.conf : n->boot_conf;

    struct raft_members conf;
    sim_conf_unpack(n->applied_conf, &conf);
    struct raft_boot boot = {
        .term = n->d_term,
        .vote = n->d_vote,
        .snapshot_index = snap.index,
        .snapshot_term = snap.term,
        .servers = conf.servers,
        .n_servers = conf.n,
        .entries = entries,
        .n_entries = n->d_log.n,
        .recover_term = n->d_recover_term,
    };
    struct raft_config cfg;
    raft_config_default(&cfg, n->id, lr_rand_next(&s->rand));
    cfg.election_ticks = s->opt.election_ticks;
    cfg.heartbeat_ticks = s->opt.heartbeat_ticks;
    if (s->opt.append_entries_max != 0) {
        cfg.append_entries_max = s->opt.append_entries_max;
    }
    if (s->opt.inflight_msgs_max != 0) {
        cfg.inflight_msgs_max = s->opt.inflight_msgs_max;
    }
    if (s->opt.log_entries_max != 0) {
        cfg.log_entries_max = s->opt.log_entries_max;
    }
    int rv = raft_init(&n->core, &cfg, &boot);
    free(entries);
    free(payload);
    if (rv != 0) {
        n->core = NULL;
        return rv;
    }
    n->up = true;
    n->paused = false;
    n->role = raft_role_of(n->core);
    n->role_term = raft_current_term(n->core);
    n->disk_last_us = s->now_us;
    memset(n->heard_us, 0, sizeof n->heard_us);
    if (snap.index > 0) {
        sim_check_apply(s, n, snap.index, snap.chain, snap.fsm);
    }
    sim_tick_start(s, n);
    return 0;
}

static bool options_valid(const struct sim_options *o)
{
    return o->voters >= 1 && o->voters + o->learners + o->spares <= sim_nodes_max &&
           o->tick_us > 0 && o->election_ticks >= 2 && o->heartbeat_ticks >= 1 &&
           o->heartbeat_ticks < o->election_ticks && o->net_delay_min_us <= o->net_delay_max_us &&
           o->disk_delay_min_us <= o->disk_delay_max_us;
}

int sim_create(struct sim **out, const struct sim_options *o)
{
    if (!options_valid(o)) {
        return SIM_EINVAL;
    }
    struct sim *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return RAFT_ENOMEM;
    }
    sim_abort_install();
    s->opt = *o;
    lr_rand_seed(&s->rand, o->seed);
    s->delay_min_us = o->net_delay_min_us;
    s->delay_max_us = o->net_delay_max_us;
    s->n_nodes = o->voters + o->learners + o->spares;
    int rv = sim_check_init(&s->check);
    if (rv != 0) {
        free(s);
        return rv;
    }
    /* Check-quorum (thesis 6.2): the core checks every election_ticks whether it heard from
     * a majority since the last check, so a leader unconfirmed for two such periods, plus a
     * tick of slack each side, must have stepped down. */
    s->check.quorum_window_us = (2 * (uint64_t)o->election_ticks + 2) * o->tick_us;
    struct raft_members first = {.n = 0};
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        if (id <= o->voters + o->learners) {
            first.servers[first.n++] = (struct raft_server){id, id <= o->voters};
        }
        for (raft_id b = 1; b <= s->n_nodes; b++) {
            s->link[id][b] = true;
        }
    }
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        struct sim_node *n = &s->nodes[id];
        n->id = id;
        n->boot_conf = id <= o->voters + o->learners ? sim_conf_pack(&first) : 0;
        n->rate_permille = 1000;
        n->disk_min_us = o->disk_delay_min_us;
        n->disk_max_us = o->disk_delay_max_us;
        sim_log_init(&n->log);
        sim_log_init(&n->d_log);
        rv = sim_node_boot(s, n);
        if (rv != 0) {
            sim_destroy(s);
            return rv;
        }
    }
    *out = s;
    return 0;
}

const struct sim_options *sim_options_of(const struct sim *s)
{
    return &s->opt;
}

void sim_destroy(struct sim *s)
{
    if (s == NULL) {
        return;
    }
    sim_abort_forget(s);
    for (uint64_t i = 0; i < s->heap_count; i++) {
        free(s->heap[i].msg);
    }
    free(s->heap);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        struct sim_node *n = &s->nodes[id];
        raft_free(n->core);
        sim_disk_free(n);
        sim_held_free(n);
        free(n->held);
    }
    free(s->reads);
    free(s->rx_entries);
    free(s->rx_payload);
    sim_check_free(&s->check);
    free(s);
}
