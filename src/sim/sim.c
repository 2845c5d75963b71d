/*
 * The simulator's heart: the cluster, the event queue, stepping a core and carrying out
 * its update, client operations, and crash / restart / pause / resume.
 *
 * Carrying out an update follows the order written on struct raft_update: persist
 * (sim_disk.c), send (sim_net.c), apply, reads. Nothing here calls back into a core while
 * its update is being carried out; follow-up events (a snapshot, a persist completion)
 * are separate steps.
 */
#include "sim/sim.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The value in the first 8 bytes of a payload; 0 for an empty one (NOOP). */
uint64_t sim_value_of(const struct raft_entry *e)
{
    uint64_t v = 0;
    if (e->buf != NULL && e->len >= sizeof v) {
        memcpy(&v, e->buf, sizeof v);
    }
    return v;
}

/* --- Reporting a core assertion ----------------------------------------------------- */

/*
 * A core assertion aborts the process, and with it busted. So that the failure still
 * names its seed and shows what led to it, a SIGABRT handler prints the trace of the
 * simulation whose core was being stepped, then lets the abort go on (the previous
 * handler is restored and abort() raises the signal again).
 */
static struct sim *abort_sim;
static void (*abort_previous)(int);

static void on_abort(int sig)
{
    (void)sig;
    struct sim *s = abort_sim;
    abort_sim = NULL;
    if (s != NULL) {
        static char buf[16384];
        int n;
        if (s->random_steps != 0) {
            n = snprintf(buf, sizeof buf,
                         "luaraft sim: abort in random run seed %" PRIu64 " (steps %" PRIu64
                         ") at step %" PRIu64
                         "; replay with LUARAFT_TRACE=1 and "
                         "sim.random_run{seed=%" PRIu64 ", steps=%" PRIu64 "}\ntrace:\n",
                         s->opt.seed, s->random_steps, s->steps, s->opt.seed, s->random_steps);
        } else {
            n = snprintf(buf, sizeof buf,
                         "luaraft sim: abort at step %" PRIu64 " (cluster seed %" PRIu64
                         ")\ntrace:\n",
                         s->steps, s->opt.seed);
        }
        size_t pos = n > 0 ? (size_t)n : 0;
        if (pos < sizeof buf) {
            pos += sim_trace(s, sim_failure_trace_lines, buf + pos, sizeof buf - pos);
        }
        ssize_t w = write(STDERR_FILENO, buf, pos < sizeof buf ? pos : sizeof buf - 1);
        (void)w;
    }
    signal(SIGABRT, abort_previous == SIG_ERR ? SIG_DFL : abort_previous);
}

static void abort_report_install(void)
{
    static bool installed;
    if (!installed) {
        installed = true;
        abort_previous = signal(SIGABRT, on_abort);
    }
}

/* --- The event queue: a binary heap ordered by (time, insertion sequence) ---------- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->time_us < b->time_us || (a->time_us == b->time_us && a->seq < b->seq);
}

void sim_schedule(struct sim *s,
                  uint64_t time_us,
                  uint8_t kind,
                  uint8_t node,
                  uint32_t gen,
                  struct sim_msg *msg)
{
    lr_assert(time_us >= s->now_us);
    if (s->heap_count == s->heap_cap) {
        uint64_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct sim_event *p = realloc(s->heap, cap * sizeof *p);
        lr_assert(p != NULL);
        s->heap = p;
        s->heap_cap = cap;
    }
    struct sim_event ev = {
        .time_us = time_us, .seq = s->seq++, .msg = msg, .gen = gen, .kind = kind, .node = node};
    uint64_t i = s->heap_count++;
    while (i > 0) {
        uint64_t parent = (i - 1) / 2;
        if (!ev_before(&ev, &s->heap[parent])) {
            break;
        }
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = ev;
}

static struct sim_event heap_pop(struct sim *s)
{
    lr_assert(s->heap_count > 0);
    struct sim_event top = s->heap[0];
    struct sim_event last = s->heap[--s->heap_count];
    uint64_t i = 0;
    for (;;) {
        uint64_t child = 2 * i + 1;
        if (child >= s->heap_count) {
            break;
        }
        if (child + 1 < s->heap_count && ev_before(&s->heap[child + 1], &s->heap[child])) {
            child++;
        }
        if (!ev_before(&s->heap[child], &last)) {
            break;
        }
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->heap_count > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* --- Ticks ------------------------------------------------------------------------ */

static uint64_t tick_interval_us(const struct sim *s, const struct sim_node *n)
{
    uint64_t t = s->opt.tick_us * n->rate_permille / 1000;
    return t > 0 ? t : 1;
}

/* Starts a new tick chain (boot, resume): the first tick lands at a random point of the
 * interval so that nodes do not tick in lockstep. */
static void tick_start(struct sim *s, struct sim_node *n)
{
    n->tick_gen++;
    uint64_t first = sim_rand_range(s, 1, tick_interval_us(s, n));
    sim_schedule(s, s->now_us + first, SIM_EV_TICK, (uint8_t)n->id, n->tick_gen, NULL);
}

static void do_tick(struct sim *s, struct sim_node *n, uint32_t gen)
{
    if (!n->up || n->paused || gen != n->tick_gen) {
        return; /* a stale chain; resume and restart start a new one */
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_TICK;
    sim_step_node(s, n, &ev, NULL);
    sim_schedule(s, s->now_us + tick_interval_us(s, n), SIM_EV_TICK, (uint8_t)n->id, gen, NULL);
}

/* --- Carrying out an update ------------------------------------------------------- */

/* Step 3: apply committed entries in order, from the volatile log. */
static void apply_to(struct sim *s, struct sim_node *n, raft_index commit)
{
    if (commit > raft_commit_index(n->core)) {
        sim_fail(s, "applied past the commit index", n->id, commit, 0, "core commit %llu",
                 (unsigned long long)raft_commit_index(n->core));
        return;
    }
    if (commit <= n->applied) {
        return;
    }
    while (n->applied < commit) {
        raft_index i = n->applied + 1;
        const struct sim_entry *e = sim_log_at(&n->log, i);
        if (e == NULL) {
            sim_fail(s, "committed entry missing from the driver's log", n->id, i, 0,
                     "log holds %llu..%llu", (unsigned long long)n->log.offset + 1,
                     (unsigned long long)sim_log_last_index(&n->log));
            return;
        }
        n->fsm = sim_fsm_mix(n->fsm, i, e->value);
        n->applied = i;
        sim_check_apply(s, n, i, e->chain, n->fsm);
    }
    sim_trace_add(s, SIM_TR_COMMIT, n->id, 0, 0, commit, n->applied, 0, 0, 0, 0);
}

/* Step 4, part one: ReadIndex results. */
static void reads_result(struct sim *s, struct sim_node *n, const struct raft_update *u)
{
    for (unsigned i = 0; i < u->n_reads; i++) {
        const struct raft_read *rr = &u->reads[i];
        if (rr->id == 0 || rr->id > s->reads_count) {
            sim_fail(s, "ReadIndex result for an unknown request", n->id, rr->index, 0, "id %llu",
                     (unsigned long long)rr->id);
            continue;
        }
        struct sim_read *rd = &s->reads[rr->id - 1];
        if (rd->node != n->id) {
            sim_fail(s, "ReadIndex result for a request of another node", n->id, rr->index, 0,
                     "id %llu asked on n%llu", (unsigned long long)rr->id,
                     (unsigned long long)rd->node);
            continue;
        }
        sim_trace_add(s, SIM_TR_READ_DONE, n->id, 0, 0, rr->id, (uint64_t)(int64_t)rr->status,
                      rr->index, 0, 0, 0);
        /* raft.h promises exactly one result per request, and none for the requests of a
         * previous life (read ids are the driver's and may repeat across restarts). */
        if (rd->incarnation != n->incarnation) {
            sim_fail(s, "ReadIndex result for a request made before a restart", n->id, rr->index, 0,
                     "id %llu", (unsigned long long)rr->id);
            continue;
        }
        if (rd->state != SIM_READ_PENDING || rd->ready) {
            sim_fail(s, "second ReadIndex result for one request", n->id, rr->index, 0, "id %llu",
                     (unsigned long long)rr->id);
            continue;
        }
        if (rr->status == 0) {
            rd->ready = true;
            rd->index = rr->index;
            n->reads_waiting++;
            sim_check_read_ready(s, rd);
        } else {
            rd->state = SIM_READ_FAILED;
            s->stats.reads_failed++;
        }
    }
}

/* Step 4, part two: a ready read is served once the node has applied its index. */
static void reads_serve(struct sim *s, struct sim_node *n)
{
    if (n->reads_waiting == 0) {
        return;
    }
    for (uint64_t i = s->reads_first_open; i < s->reads_count; i++) {
        struct sim_read *rd = &s->reads[i];
        if (rd->node == n->id && rd->state == SIM_READ_PENDING && rd->ready &&
            rd->index <= n->applied) {
            rd->state = SIM_READ_SERVED;
            rd->applied = n->applied;
            n->reads_waiting--;
            s->stats.reads_served++;
        }
    }
    while (s->reads_first_open < s->reads_count &&
           s->reads[s->reads_first_open].state != SIM_READ_PENDING) {
        s->reads_first_open++;
    }
}

static void carry_out(struct sim *s, struct sim_node *n, const struct raft_update *u)
{
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_SNAPSHOT | RAFT_UPDATE_ENTRIES)) {
        sim_disk_persist(s, n, u);
    }
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        for (unsigned i = 0; i < u->n_messages; i++) {
            sim_net_send_update_msg(s, n, &u->messages[i]);
        }
    }
    if (u->flags & RAFT_UPDATE_COMMIT) {
        apply_to(s, n, u->commit);
    }
    if (u->flags & RAFT_UPDATE_READS) {
        reads_result(s, n, u);
    }
    reads_serve(s, n);
}

/*
 * Takes a snapshot of node n at its applied index. The snapshot is durable at once (it
 * models write to a temporary file, fsync, rename), then the core hears
 * RAFT_EVENT_SNAPSHOT_TAKEN and both logs drop what the core lets go. Not while an
 * installed snapshot is still being persisted: the durable log would then mix the old
 * log with the new snapshot.
 */
static int take_snapshot(struct sim *s, struct sim_node *n)
{
    raft_index index = n->applied;
    if (index <= n->snap.index) {
        return SIM_ENOTHING;
    }
    if (n->installs_pending > 0) {
        return SIM_EBUSY;
    }
    raft_term term;
    uint64_t chain;
    if (!sim_log_chain_at(&n->log, index, &term, &chain)) {
        sim_fail(s, "applied entry missing from the driver's log", n->id, index, 0,
                 "at snapshot time");
        return SIM_EFAILED;
    }
    /* A node may apply entries of a term its own disk has not recorded yet (they are on a
     * majority: raft.h, step 3), but raft_init() refuses a snapshot of a term above the
     * durable term (raft.c, config_check()). Wait until the term is durable, or a crash
     * now would leave a disk the core cannot boot from (a slow disk makes this common). */
    if (term > n->d_term) {
        return SIM_EBUSY;
    }
    struct sim_snap snap = {.index = index, .term = term, .fsm = n->fsm, .chain = chain};
    n->snap = snap;
    n->d_snap = snap;
    raft_index to = index > s->opt.snapshot_trailing ? index - s->opt.snapshot_trailing : 0;
    if (to < n->log.offset) {
        to = n->log.offset;
    }
    s->stats.snapshots_taken++;
    sim_trace_add(s, SIM_TR_SNAP_TAKEN, n->id, 0, 0, index, term, to, 0, 0, 0);

    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_SNAPSHOT_TAKEN;
    ev.snapshot_taken.index = index;
    ev.snapshot_taken.term = term;
    ev.snapshot_taken.compact_to = to;
    int rv;
    sim_step_node(s, n, &ev, &rv);
    if (rv != 0) {
        sim_fail(s, "core refused a snapshot", n->id, index, term, "%s", raft_strerror(rv));
        return SIM_EFAILED;
    }
    raft_index first = raft_first_index(n->core);
    if (first > to + 1) {
        sim_fail(s, "core compacted past compact_to", n->id, first, 0, "compact_to %llu",
                 (unsigned long long)to);
    }
    sim_disk_snapshot_taken(n, first - 1 < to ? first - 1 : to);
    return 0;
}

static void maybe_snapshot(struct sim *s, struct sim_node *n)
{
    if (s->opt.snapshot_threshold == 0 || !n->up || n->installs_pending > 0) {
        return;
    }
    if (n->applied >= n->snap.index + s->opt.snapshot_threshold) {
        take_snapshot(s, n);
    }
}

/*
 * Feeds one event to node n's core and carries out the update: the single place where a
 * core is stepped. *rv (if not NULL) gets raft_step()'s result; the update is carried out
 * whatever it is, as the contract demands. The checker then looks at the node, and a
 * snapshot is taken if the threshold is reached.
 */
void sim_step_node(struct sim *s, struct sim_node *n, struct raft_event *ev, int *rv)
{
    lr_assert(n->up && !n->paused && n->core != NULL);
    abort_sim = s;
    enum raft_role role_before = raft_role_of(n->core);
    raft_index commit_before = raft_commit_index(n->core);
    struct raft_update u;
    int r = raft_step(n->core, ev, &u);
    if (rv != NULL) {
        *rv = r;
    }
    carry_out(s, n, &u);
    sim_check_after_node_step(s, n, role_before, commit_before);
    maybe_snapshot(s, n);
}

/* --- Booting, creating, destroying ------------------------------------------------- */

/*
 * Starts node n's core from its durable state: what a real node finds on disk after a
 * restart. Durable entries at or below the snapshot are covered by it and dropped; a
 * durable suffix that does not continue the snapshot's chain (left by a write that was
 * overtaken by the snapshot and lost in the crash) is discarded, as a real store would on
 * finding a log entry whose predecessor disagrees with its snapshot.
 */
static int node_boot(struct sim *s, struct sim_node *n)
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
    lr_assert(entries != NULL);
    for (uint64_t i = 0; i < n->d_log.n; i++) {
        const struct sim_entry *e = &n->d_log.e[i];
        sim_log_push(&n->log, e);
        entries[i].term = e->term;
        entries[i].type = e->type;
        entries[i].len = e->len;
    }
    n->snap = snap;
    n->applied = snap.index;
    n->fsm = snap.fsm;

    struct raft_boot boot = {
        .term = n->d_term,
        .vote = n->d_vote,
        .snapshot_index = snap.index,
        .snapshot_term = snap.term,
        .servers = s->servers,
        .n_servers = s->n_nodes,
        .entries = entries,
        .n_entries = n->d_log.n,
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
    tick_start(s, n);
    return 0;
}

static bool options_valid(const struct sim_options *o)
{
    return o->voters >= 1 && o->voters + o->learners <= sim_nodes_max && o->tick_us > 0 &&
           o->election_ticks >= 2 && o->heartbeat_ticks >= 1 &&
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
    abort_report_install();
    s->opt = *o;
    lr_rand_seed(&s->rand, o->seed);
    s->delay_min_us = o->net_delay_min_us;
    s->delay_max_us = o->net_delay_max_us;
    s->n_nodes = o->voters + o->learners;
    int rv = sim_check_init(&s->check);
    if (rv != 0) {
        free(s);
        return rv;
    }
    /* Check-quorum (thesis 6.2): the core checks every election_ticks whether it heard from
     * a majority since the last check, so a leader unconfirmed for two such periods, plus a
     * tick of slack each side, must have stepped down. */
    s->check.quorum_window_us = (2 * (uint64_t)o->election_ticks + 2) * o->tick_us;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        s->servers[id - 1].id = id;
        s->servers[id - 1].voter = id <= o->voters;
        for (raft_id b = 1; b <= s->n_nodes; b++) {
            s->link[id][b] = true;
        }
    }
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        struct sim_node *n = &s->nodes[id];
        n->id = id;
        n->voter = id <= o->voters;
        n->rate_permille = 1000;
        n->disk_min_us = o->disk_delay_min_us;
        n->disk_max_us = o->disk_delay_max_us;
        sim_log_init(&n->log);
        sim_log_init(&n->d_log);
        rv = node_boot(s, n);
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

static void node_release_held(struct sim_node *n)
{
    for (uint32_t i = 0; i < n->held_count; i++) {
        free(n->held[i].msg);
    }
    n->held_count = 0;
}

void sim_destroy(struct sim *s)
{
    if (s == NULL) {
        return;
    }
    if (abort_sim == s) {
        abort_sim = NULL;
    }
    for (uint64_t i = 0; i < s->heap_count; i++) {
        free(s->heap[i].msg);
    }
    free(s->heap);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        struct sim_node *n = &s->nodes[id];
        raft_free(n->core);
        sim_disk_free(n);
        node_release_held(n);
        free(n->held);
    }
    free(s->reads);
    free(s->rx_entries);
    free(s->rx_payload);
    sim_check_free(&s->check);
    free(s);
}

/* --- Stepping ------------------------------------------------------------------------ */

static void hold(struct sim_node *n, const struct sim_event *ev)
{
    if (n->held_count == n->held_cap) {
        uint32_t cap = n->held_cap ? n->held_cap * 2 : 64;
        struct sim_event *p = realloc(n->held, cap * sizeof *p);
        lr_assert(p != NULL);
        n->held = p;
        n->held_cap = cap;
    }
    n->held[n->held_count++] = *ev;
}

bool sim_step(struct sim *s)
{
    if (s->failed || s->heap_count == 0) {
        return false;
    }
    struct sim_event ev = heap_pop(s);
    lr_assert(ev.time_us >= s->now_us);
    s->now_us = ev.time_us;
    s->steps++;
    s->stats.steps++;
    struct sim_node *n = &s->nodes[ev.node];
    switch (ev.kind) {
        case SIM_EV_TICK:
            do_tick(s, n, ev.gen);
            break;
        case SIM_EV_DELIVER:
            if (n->up && n->paused) {
                hold(n, &ev);
            } else {
                sim_net_deliver(s, ev.msg);
            }
            break;
        case SIM_EV_DISK:
            if (!n->up || ev.gen != n->incarnation) {
                break; /* the write was lost in a crash */
            }
            if (n->paused) {
                hold(n, &ev);
            } else {
                sim_disk_event(s, n);
            }
            break;
        default:
            lr_assert(false);
    }
    sim_check_global(s);
    return true;
}

void sim_run_for(struct sim *s, uint64_t us)
{
    uint64_t end = s->now_us + us;
    while (!s->failed && s->heap_count > 0 && s->heap[0].time_us <= end) {
        sim_step(s);
    }
    if (!s->failed) {
        s->now_us = end;
    }
}

uint64_t sim_now_us(const struct sim *s)
{
    return s->now_us;
}

bool sim_next_event_us(const struct sim *s, uint64_t *time_us)
{
    if (s->heap_count == 0) {
        return false;
    }
    *time_us = s->heap[0].time_us;
    return true;
}

uint64_t sim_steps(const struct sim *s)
{
    return s->steps;
}

const char *sim_failure(const struct sim *s)
{
    return s->failed ? s->failure : NULL;
}

const struct sim_stats *sim_stats(const struct sim *s)
{
    return &s->stats;
}

/* --- Node accessors ------------------------------------------------------------------ */

static const struct sim_node *node_get(const struct sim *s, raft_id id)
{
    if (id < 1 || id > s->n_nodes) {
        return NULL;
    }
    return &s->nodes[id];
}

unsigned sim_node_count(const struct sim *s)
{
    return s->n_nodes;
}

bool sim_node_up(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL && n->up;
}

bool sim_node_paused(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL && n->up && n->paused;
}

const struct raft *sim_core(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL && n->up ? n->core : NULL;
}

raft_id sim_leader(const struct sim *s)
{
    raft_id best = 0;
    raft_term best_term = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *n = &s->nodes[id];
        if (n->up && raft_role_of(n->core) == RAFT_LEADER &&
            raft_current_term(n->core) >= best_term) {
            best = id;
            best_term = raft_current_term(n->core);
        }
    }
    return best;
}

raft_index sim_applied(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL && n->up ? n->applied : 0;
}

uint64_t sim_fsm_hash(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL && n->up ? n->fsm : 0;
}

raft_index sim_log_first(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL ? n->log.offset + 1 : 0;
}

raft_index sim_log_last(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL ? sim_log_last_index(&n->log) : 0;
}

bool sim_log_entry(const struct sim *s,
                   raft_id id,
                   raft_index index,
                   raft_term *term,
                   uint64_t *value,
                   bool *noop)
{
    const struct sim_node *n = node_get(s, id);
    const struct sim_entry *e = n != NULL ? sim_log_at(&n->log, index) : NULL;
    if (e == NULL) {
        return false;
    }
    *term = e->term;
    *value = e->value;
    *noop = e->type == RAFT_ENTRY_NOOP;
    return true;
}

raft_index sim_snapshot_index(const struct sim *s, raft_id id)
{
    const struct sim_node *n = node_get(s, id);
    return n != NULL ? n->snap.index : 0;
}

/* --- Client operations ------------------------------------------------------------- */

/* The node with that id, while the run is sound. Errors: SIM_EFAILED, SIM_ENOENT. */
static int node_lookup(struct sim *s, raft_id id, struct sim_node **out)
{
    if (s->failed) {
        return SIM_EFAILED;
    }
    if (id < 1 || id > s->n_nodes) {
        return SIM_ENOENT;
    }
    *out = &s->nodes[id];
    return 0;
}

/* The node with that id, up and not paused. */
static int node_usable(struct sim *s, raft_id id, struct sim_node **out)
{
    struct sim_node *n;
    int miss = node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (!n->up) {
        return SIM_EDOWN;
    }
    if (n->paused) {
        return SIM_EPAUSED;
    }
    *out = n;
    return 0;
}

int sim_propose_many(struct sim *s,
                     raft_id id,
                     const uint64_t *values,
                     uint32_t count,
                     raft_index *first)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    if (count == 0 || count > sim_propose_batch_max) {
        return SIM_EINVAL;
    }
    struct raft_entry *entries = calloc(count, sizeof *entries);
    uint8_t(*payload)[sim_payload_bytes] = calloc(count, sizeof *payload);
    lr_assert(entries != NULL && payload != NULL);
    for (uint32_t k = 0; k < count; k++) {
        memcpy(payload[k], &values[k], sizeof values[k]);
        entries[k].type = RAFT_ENTRY_NORMAL;
        entries[k].len = sim_payload_bytes;
        entries[k].buf = payload[k];
    }
    raft_index last_before = raft_last_index(n->core);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_PROPOSE;
    ev.propose.entries = entries;
    ev.propose.n = count;
    sim_step_node(s, n, &ev, &rv);
    free(entries);
    free(payload);
    sim_trace_add(s, SIM_TR_PROPOSE, id, 0, 0, last_before + 1, count, (uint64_t)(int64_t)rv,
                  values[0], 0, 0);
    if (rv != 0) {
        return rv;
    }
    lr_assert(raft_last_index(n->core) >= last_before + count);
    s->stats.proposals += count;
    if (first != NULL) {
        *first = last_before + 1;
    }
    return 0;
}

int sim_propose(struct sim *s, raft_id id, uint64_t value, raft_index *index)
{
    return sim_propose_many(s, id, &value, 1, index);
}

int sim_read_index(struct sim *s, raft_id id, uint64_t *reqid)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    if (s->reads_count == s->reads_cap) {
        uint64_t cap = s->reads_cap ? s->reads_cap * 2 : 64;
        struct sim_read *p = realloc(s->reads, cap * sizeof *p);
        lr_assert(p != NULL);
        s->reads = p;
        s->reads_cap = cap;
    }
    uint64_t rid = ++s->reads_count;
    struct sim_read *rd = &s->reads[rid - 1];
    memset(rd, 0, sizeof *rd);
    rd->node = id;
    rd->state = SIM_READ_PENDING;
    rd->min_index = s->check.commit_max;
    rd->incarnation = n->incarnation;
    *reqid = rid;
    sim_trace_add(s, SIM_TR_READ, id, 0, 0, rid, rd->min_index, 0, 0, 0, 0);

    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_READ_INDEX;
    ev.read_index.id = rid;
    sim_step_node(s, n, &ev, &rv);
    if (rv != 0) {
        rd = &s->reads[rid - 1];
        if (rd->state == SIM_READ_PENDING && !rd->ready) {
            rd->state = SIM_READ_FAILED;
            s->stats.reads_failed++;
        }
    }
    return rv;
}

int sim_read_result(const struct sim *s,
                    uint64_t reqid,
                    enum sim_read_state *state,
                    raft_index *index,
                    raft_index *applied)
{
    if (reqid == 0 || reqid > s->reads_count) {
        return SIM_ENOENT;
    }
    const struct sim_read *rd = &s->reads[reqid - 1];
    *state = (enum sim_read_state)rd->state;
    *index = rd->index;
    *applied = rd->applied;
    return 0;
}

int sim_transfer(struct sim *s, raft_id id, raft_id target)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_TRANSFER;
    ev.transfer.target = target;
    sim_step_node(s, n, &ev, &rv);
    sim_trace_add(s, SIM_TR_TRANSFER, id, target, 0, (uint64_t)(int64_t)rv, 0, 0, 0, 0, 0);
    return rv;
}

int sim_inject(struct sim *s, raft_id id, const struct raft_message *m)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_RECEIVE;
    ev.receive = *m;
    struct raft_entry entries[sim_inject_entries_max];
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        if (m->append.n_entries > sim_inject_entries_max || m->append.entries == NULL) {
            return SIM_EINVAL;
        }
        memcpy(entries, m->append.entries, m->append.n_entries * sizeof entries[0]);
        ev.receive.append.entries = entries;
    }
    sim_trace_add(s, SIM_TR_INJECT, id, m->from, m->type, m->term, 0, 0, 0, 0, 0);
    sim_step_node(s, n, &ev, &rv);
    return rv;
}

/*
 * Steps RAFT_EVENT_CAMPAIGN: pre-vote first, or with force no pre-vote and voters told to
 * disregard their leader lease, as a leadership transfer does. Scenario scripts use force
 * to make a chosen node campaign while the others still hear a leader.
 */
int sim_campaign(struct sim *s, raft_id id, bool force)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    sim_trace_add(s, SIM_TR_CAMPAIGN, id, 0, force, 0, 0, 0, 0, 0, 0);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_CAMPAIGN;
    ev.campaign.force = force;
    sim_step_node(s, n, &ev, &rv);
    return rv;
}

int sim_snapshot(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    return take_snapshot(s, n);
}

/* --- Crash, restart, pause, resume, clocks --------------------------------------- */

static void fail_reads_of(struct sim *s, raft_id id)
{
    for (uint64_t i = s->reads_first_open; i < s->reads_count; i++) {
        struct sim_read *rd = &s->reads[i];
        if (rd->node == id && rd->state == SIM_READ_PENDING) {
            rd->state = SIM_READ_FAILED;
            s->stats.reads_failed++;
        }
    }
    s->nodes[id].reads_waiting = 0;
}

int sim_crash(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (!n->up) {
        return SIM_EDOWN;
    }
    sim_trace_add(s, SIM_TR_CRASH, id, 0, 0, n->writes_count, 0, 0, 0, 0, 0);
    s->stats.crashes++;
    sim_disk_drop_all(s, n);
    node_release_held(n);
    raft_free(n->core);
    n->core = NULL;
    n->up = false;
    n->paused = false;
    n->incarnation++;
    n->tick_gen++;
    n->role = 0;
    sim_log_reset(&n->log, 0, 0, 0);
    memset(&n->snap, 0, sizeof n->snap);
    n->applied = 0;
    n->fsm = 0;
    fail_reads_of(s, id);
    return 0;
}

/*
 * Amnesia: the node crashes and its disk is wiped (a replaced disk, a restored old
 * backup). Raft does not survive this in general, since the node forgets votes and
 * acknowledged entries; it is here so that specs can show the checker catching it.
 */
int sim_wipe(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (n->up) {
        sim_crash(s, id);
    }
    n->d_term = 0;
    n->d_vote = 0;
    memset(&n->d_snap, 0, sizeof n->d_snap);
    sim_log_reset(&n->d_log, 0, 0, 0);
    sim_trace_add(s, SIM_TR_WIPE, id, 0, 0, 0, 0, 0, 0, 0, 0);
    return 0;
}

int sim_restart(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (n->up) {
        return SIM_EINVAL;
    }
    int rv = node_boot(s, n);
    if (rv != 0) {
        sim_fail(s, "core refused to boot from its durable state", id, n->d_snap.index, n->d_term,
                 "raft_init: %s", raft_strerror(rv));
        return rv;
    }
    s->stats.restarts++;
    sim_trace_add(s, SIM_TR_RESTART, id, 0, 0, n->d_term, n->d_vote, n->d_snap.index,
                  sim_log_last_index(&n->log), 0, 0);
    return 0;
}

int sim_pause(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int rv = node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    n->paused = true;
    sim_trace_add(s, SIM_TR_PAUSE, id, 0, 0, 0, 0, 0, 0, 0, 0);
    return 0;
}

int sim_resume(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (!n->up || !n->paused) {
        return SIM_EINVAL;
    }
    n->paused = false;
    sim_trace_add(s, SIM_TR_RESUME, id, 0, 0, n->held_count, 0, 0, 0, 0, 0);
    /* What arrived during the pause arrives now, in its original order. */
    for (uint32_t i = 0; i < n->held_count; i++) {
        const struct sim_event *ev = &n->held[i];
        sim_schedule(s, s->now_us, ev->kind, ev->node, ev->gen, ev->msg);
    }
    n->held_count = 0;
    /* A resumed leader's check-quorum clock restarts: it could not step down while paused. */
    n->leader_since_us = s->now_us;
    tick_start(s, n);
    return 0;
}

int sim_clock_rate(struct sim *s, raft_id id, uint32_t permille)
{
    if (id < 1 || id > s->n_nodes) {
        return SIM_ENOENT;
    }
    if (permille < sim_clock_rate_permille_min || permille > sim_clock_rate_permille_max) {
        return SIM_EINVAL;
    }
    struct sim_node *n = &s->nodes[id];
    n->rate_permille = permille;
    n->leader_since_us = s->now_us;
    sim_trace_add(s, SIM_TR_RATE, id, 0, 0, permille, 0, 0, 0, 0, 0);
    return 0;
}

void sim_heal_all(struct sim *s)
{
    sim_heal_links(s);
    s->loss_ppm = 0;
    s->dup_ppm = 0;
    s->delay_min_us = s->opt.net_delay_min_us;
    s->delay_max_us = s->opt.net_delay_max_us;
    sim_trace_add(s, SIM_TR_HEAL, 0, 0, 1, 0, 0, 0, 0, 0, 0);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        struct sim_node *n = &s->nodes[id];
        if (n->rate_permille != 1000) {
            sim_clock_rate(s, id, 1000);
        }
        if (n->disk_min_us != s->opt.disk_delay_min_us ||
            n->disk_max_us != s->opt.disk_delay_max_us) {
            sim_disk_delay(s, id, s->opt.disk_delay_min_us, s->opt.disk_delay_max_us);
        }
        sim_disk_hold(s, id, false);
        if (n->up && n->paused) {
            sim_resume(s, id);
        } else if (!n->up) {
            sim_restart(s, id);
        }
    }
}
