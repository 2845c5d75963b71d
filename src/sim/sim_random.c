/*
 * Random runs (TigerBeetle's VOPR in miniature): a cluster whose shape and fault mix come
 * from the seed ("swarm testing": each seed enables its own subset of faults at its own
 * rates), a client workload, faults that come and go, the checker after every step, and a
 * liveness phase once every fault is healed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

enum {
    random_liveness_timeouts = 20,      /* election timeouts allowed to recover after healing */
    random_batch_entries_max = 16,      /* entries in one random batch proposal */
    random_liveness_proposals_max = 64, /* copies of the liveness value, one per leader */
};

enum fault_kind {
    FAULT_CRASH,
    FAULT_RESTART,
    FAULT_PAUSE,
    FAULT_RESUME,
    FAULT_PARTITION,
    FAULT_HEAL,
    FAULT_CUT,
    FAULT_ISOLATE_LEADER,
    FAULT_BRIDGE,
    FAULT_CLOCK,
    FAULT_NET,
    FAULT_NET_OFF,
    FAULT_DISK_SLOW,
    FAULT_DISK_FAST,
    FAULT_DEPOSE,
    FAULT_KINDS,
};

/* What one seed does: its fault mix and workload rates, all in parts per million of a
 * step. */
struct plan
{
    uint32_t fault_ppm;
    uint32_t weight[FAULT_KINDS];
    uint32_t weight_total;
    uint32_t propose_ppm;
    uint32_t read_ppm;
    uint32_t transfer_ppm;
    uint32_t campaign_ppm;
    uint32_t change_ppm; /* membership changes */
    uint64_t next_value;
    raft_id seen_leader; /* to try a change right after an election, now and then */
    raft_term seen_term;
};

static void plan_make(struct lr_rand *g, struct plan *p)
{
    /* Default weights; each fault kind is switched off in about one seed in five. */
    static const uint32_t base[FAULT_KINDS] = {
        [FAULT_CRASH] = 10,     [FAULT_RESTART] = 16,
        [FAULT_PAUSE] = 5,      [FAULT_RESUME] = 8,
        [FAULT_PARTITION] = 8,  [FAULT_HEAL] = 14,
        [FAULT_CUT] = 6,        [FAULT_ISOLATE_LEADER] = 6,
        [FAULT_BRIDGE] = 4,     [FAULT_CLOCK] = 5,
        [FAULT_NET] = 8,        [FAULT_NET_OFF] = 5,
        [FAULT_DISK_SLOW] = 10, [FAULT_DISK_FAST] = 8,
        [FAULT_DEPOSE] = 10,
    };
    memset(p, 0, sizeof *p);
    p->fault_ppm = (uint32_t)lr_rand_range(g, 2000, 15000);
    for (int k = 0; k < FAULT_KINDS; k++) {
        bool healing = k == FAULT_RESTART || k == FAULT_RESUME || k == FAULT_HEAL ||
                       k == FAULT_NET_OFF || k == FAULT_DISK_FAST;
        p->weight[k] = (healing || lr_rand_below(g, 5) != 0) ? base[k] : 0;
        p->weight_total += p->weight[k];
    }
    p->propose_ppm = (uint32_t)lr_rand_range(g, 20000, 200000);
    p->read_ppm = (uint32_t)lr_rand_range(g, 0, 20000);
    p->transfer_ppm = (uint32_t)lr_rand_range(g, 0, 1000);
    p->campaign_ppm = (uint32_t)lr_rand_range(g, 0, 1000);
    p->change_ppm = lr_rand_below(g, 3) == 0 ? 0 : (uint32_t)lr_rand_range(g, 1000, 20000);
    p->next_value = 1;
}

static raft_id pick_node(struct sim *s)
{
    return 1 + lr_rand_below(&s->rand, s->n_nodes);
}

/* A random node in the given state, or 0 if none is. */
static raft_id pick_where(struct sim *s, bool up, bool paused)
{
    raft_id ids[sim_nodes_max];
    unsigned n = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *node = &s->nodes[id];
        if (node->up == up && (!up || node->paused == paused)) {
            ids[n++] = id;
        }
    }
    return n > 0 ? ids[lr_rand_below(&s->rand, n)] : 0;
}

static void fault_partition(struct sim *s)
{
    unsigned group[sim_nodes_max + 1] = {0};
    unsigned groups = (unsigned)sim_rand_range(s, 2, 3);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        group[id] = 1 + (unsigned)lr_rand_below(&s->rand, groups);
    }
    sim_partition(s, group);
}

/* A node that reaches two halves that cannot reach each other (the Cloudflare 2020 shape):
 * with check-quorum and pre-vote the cluster must still settle on a leader. */
static void fault_bridge(struct sim *s)
{
    unsigned group[sim_nodes_max + 1] = {0};
    raft_id bridge = pick_node(s);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        group[id] = 1 + (unsigned)lr_rand_below(&s->rand, 2);
    }
    sim_partition(s, group);
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        if (id != bridge) {
            sim_link(s, bridge, id, true);
            sim_link(s, id, bridge, true);
        }
    }
}

static void fault_net(struct sim *s)
{
    uint32_t loss = lr_rand_below(&s->rand, 4) == 0 ? 0 : (uint32_t)sim_rand_range(s, 0, 300000);
    uint32_t dup = lr_rand_below(&s->rand, 2) == 0 ? 0 : (uint32_t)sim_rand_range(s, 0, 500000);
    uint64_t lo = s->opt.net_delay_min_us;
    uint64_t hi = lo + sim_rand_range(s, 0, 10 * s->opt.tick_us);
    sim_net_faults(s, loss, dup, lo, hi);
}

/*
 * A slow disk, often the leader's: its writes stay in flight across elections and
 * truncations (issue 7), and every message waiting behind them waits too. From a few
 * milliseconds up to three election timeouts; in one case in four a full stall, held
 * until FAULT_DISK_FAST or the final heal.
 */
static void fault_disk_slow(struct sim *s)
{
    raft_id id = lr_rand_below(&s->rand, 2) == 0 ? sim_leader(s) : 0;
    if (id == 0 && (id = pick_where(s, true, false)) == 0) {
        return;
    }
    if (lr_rand_below(&s->rand, 4) == 0) {
        sim_disk_hold(s, id, true);
        return;
    }
    uint64_t election_us = (uint64_t)s->opt.election_ticks * s->opt.tick_us;
    uint64_t hi = sim_rand_range(s, s->opt.tick_us / 2, 3 * election_us);
    sim_disk_delay(s, id, hi / 4, hi);
}

static void fault_disk_fast(struct sim *s)
{
    raft_id id = pick_node(s);
    sim_disk_delay(s, id, s->opt.disk_delay_min_us, s->opt.disk_delay_max_us);
    sim_disk_hold(s, id, false);
}

/*
 * A leadership change under load: a burst of proposals on the leader, then another voter
 * forced to campaign. In half the cases the leader's outgoing links are cut first, so it
 * keeps appending alone while it still hears the others: the new leader's first APPEND
 * then deletes the burst, often while the old leader is still writing it. The paper's
 * Figure 7 (c)-(f) logs are made this way.
 */
static void fault_depose(struct sim *s, struct plan *p)
{
    raft_id leader = sim_leader(s);
    if (leader == 0 || s->nodes[leader].paused) {
        return;
    }
    if (lr_rand_below(&s->rand, 2) == 0) {
        /* Slower than an election won at once (a few network and disk delays). */
        uint64_t hi = sim_rand_range(s, s->opt.tick_us, 4 * s->opt.tick_us);
        sim_disk_delay(s, leader, hi / 2, hi);
    }
    if (lr_rand_below(&s->rand, 2) == 0) {
        for (raft_id id = 1; id <= s->n_nodes; id++) {
            if (id != leader) {
                sim_link(s, leader, id, false);
            }
        }
    }
    uint64_t values[random_batch_entries_max];
    uint32_t n = (uint32_t)sim_rand_range(s, 1, random_batch_entries_max);
    for (uint32_t k = 0; k < n; k++) {
        values[k] = p->next_value++;
    }
    int rv = sim_propose_many(s, leader, values, n, NULL);
    lr_assert(rv == 0 || rv == RAFT_EBUSY || rv == RAFT_ELOGFULL || rv == SIM_EFAILED);
    raft_id other = sim_random_voter(s, leader);
    if (other != 0 && !s->failed) {
        sim_campaign(s, other, true);
    }
}

static void random_fault(struct sim *s, struct plan *p)
{
    uint32_t x = (uint32_t)lr_rand_below(&s->rand, p->weight_total);
    int k = 0;
    while (x >= p->weight[k]) {
        x -= p->weight[k];
        k++;
    }
    raft_id id;
    switch (k) {
        case FAULT_CRASH:
            if ((id = pick_where(s, true, false)) != 0) {
                sim_crash(s, id);
            }
            break;
        case FAULT_RESTART:
            if ((id = pick_where(s, false, false)) != 0) {
                sim_restart(s, id);
            }
            break;
        case FAULT_PAUSE:
            if ((id = pick_where(s, true, false)) != 0) {
                sim_pause(s, id);
            }
            break;
        case FAULT_RESUME:
            if ((id = pick_where(s, true, true)) != 0) {
                sim_resume(s, id);
            }
            break;
        case FAULT_PARTITION:
            fault_partition(s);
            break;
        case FAULT_HEAL:
            sim_heal_links(s);
            break;
        case FAULT_CUT: {
            raft_id a = pick_node(s);
            raft_id b = pick_node(s);
            if (a != b) {
                sim_link(s, a, b, false);
            }
            break;
        }
        case FAULT_ISOLATE_LEADER:
            id = sim_leader(s);
            sim_isolate(s, id != 0 ? id : pick_node(s));
            break;
        case FAULT_BRIDGE:
            fault_bridge(s);
            break;
        case FAULT_CLOCK:
            sim_clock_rate(s, pick_node(s), (uint32_t)sim_rand_range(s, 700, 1300));
            break;
        case FAULT_NET:
            fault_net(s);
            break;
        case FAULT_NET_OFF:
            sim_net_faults(s, 0, 0, s->opt.net_delay_min_us, s->opt.net_delay_max_us);
            break;
        case FAULT_DISK_SLOW:
            fault_disk_slow(s);
            break;
        case FAULT_DISK_FAST:
            fault_disk_fast(s);
            break;
        case FAULT_DEPOSE:
            fault_depose(s, p);
            break;
        default:
            lr_assert(false);
    }
}

/* Proposals go to the leader; one in ten goes to a node that is not leader, which must
 * refuse it. */
static void client_propose(struct sim *s, struct plan *p)
{
    if (lr_rand_below(&s->rand, 10) == 0) {
        raft_id id = pick_where(s, true, false);
        if (id == 0 || raft_role_of(s->nodes[id].core) == RAFT_LEADER) {
            return;
        }
        raft_index index;
        int rv = sim_propose(s, id, p->next_value++, &index);
        if (rv != RAFT_ENOTLEADER && rv != SIM_EFAILED) {
            sim_fail(s, "a node that is not leader accepted a proposal", id, index,
                     raft_current_term(s->nodes[id].core), "propose returned %s", sim_strerror(rv));
        }
        return;
    }
    raft_id leader = sim_leader(s);
    if (leader == 0 || s->nodes[leader].paused) {
        return;
    }
    uint64_t values[random_batch_entries_max];
    uint32_t n = lr_rand_below(&s->rand, 4) == 0
                     ? (uint32_t)sim_rand_range(s, 2, random_batch_entries_max)
                     : 1;
    for (uint32_t k = 0; k < n; k++) {
        values[k] = p->next_value++;
    }
    raft_index first;
    int rv = sim_propose_many(s, leader, values, n, &first);
    lr_assert(rv == 0 || rv == RAFT_EBUSY || rv == RAFT_ELOGFULL || rv == SIM_EFAILED);
}

static void client_other(struct sim *s, struct plan *p)
{
    if (p->read_ppm > 0 && lr_rand_chance(&s->rand, p->read_ppm)) {
        raft_id id = pick_where(s, true, false);
        uint64_t reqid;
        if (id != 0) {
            sim_read_index(s, id, &reqid);
        }
    }
    if (p->transfer_ppm > 0 && lr_rand_chance(&s->rand, p->transfer_ppm)) {
        raft_id leader = sim_leader(s);
        raft_id target = sim_random_voter(s, leader);
        if (leader != 0 && target != 0 && !s->nodes[leader].paused) {
            sim_transfer(s, leader, target);
        }
    }
    if (p->campaign_ppm > 0 && lr_rand_chance(&s->rand, p->campaign_ppm)) {
        raft_id id = pick_where(s, true, false);
        if (id != 0) {
            sim_campaign(s, id, lr_rand_below(&s->rand, 4) == 0);
        }
    }
    if (p->change_ppm == 0) {
        return;
    }
    /* Changes at random, and often right after an election, while the new leader may not
     * have committed in its term yet. */
    raft_id leader = sim_leader(s);
    raft_term term = leader != 0 ? raft_current_term(s->nodes[leader].core) : 0;
    bool fresh = leader != 0 && (leader != p->seen_leader || term != p->seen_term);
    p->seen_leader = leader;
    p->seen_term = term;
    if (lr_rand_chance(&s->rand, p->change_ppm)) {
        switch (lr_rand_below(&s->rand, 8)) {
            case 0:
                sim_random_change_deposed(s);
                break;
            case 1:
                sim_random_change_trap(s);
                break;
            default:
                sim_random_change(s);
                break;
        }
    }
    sim_random_change_if_new_leader(s, fresh);
}

/* --- Liveness ------------------------------------------------------------------------ */

/* Applied on every member of the configuration (a removed server or a spare never added
 * hears nothing more). */
static bool all_applied(const struct sim *s, raft_index index)
{
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *n = &s->nodes[id];
        if (sim_in_final_configuration(s, id) && (!n->up || n->applied < index)) {
            return false;
        }
    }
    return true;
}

static uint64_t committed_at(const struct sim *s, raft_index index)
{
    return index < s->check.at_cap ? s->check.committed[index] : 0;
}

static void liveness_report(struct sim *s, raft_index index, uint64_t waited_us)
{
    char nodes[1024];
    size_t pos = 0;
    nodes[0] = '\0';
    for (raft_id id = 1; id <= s->n_nodes && pos < sizeof nodes; id++) {
        const struct sim_node *n = &s->nodes[id];
        int w = snprintf(nodes + pos, sizeof nodes - pos,
                         " n%" PRIu64 ":%s/t%" PRIu64 "/commit %" PRIu64 "/applied %" PRIu64, id,
                         n->up ? raft_role_name(raft_role_of(n->core)) : "down",
                         n->up ? raft_current_term(n->core) : 0,
                         n->up ? raft_commit_index(n->core) : 0, n->applied);
        pos += w > 0 ? (size_t)w : 0;
    }
    sim_fail(s, "liveness", sim_leader(s), index, 0,
             "after healing everything, no value committed and applied everywhere within "
             "%" PRIu64 " ms;%s",
             waited_us / 1000, nodes);
}

/*
 * How long replicating the uncommitted backlog may take once everything is healed: with
 * small batches and windows the leader moves only append_entries_max * inflight_msgs_max
 * entries per round trip.
 */
static uint64_t backlog_us(const struct sim *s)
{
    if (s->opt.append_entries_max == 0 || s->opt.inflight_msgs_max == 0) {
        return 0;
    }
    raft_index last = 0;
    raft_index commit = UINT64_MAX;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *n = &s->nodes[id];
        raft_index l = sim_log_last_index(&n->log);
        last = l > last ? l : last;
        raft_index c = n->up ? raft_commit_index(n->core) : n->d_snap.index;
        commit = c < commit ? c : commit;
    }
    uint64_t per_trip = (uint64_t)s->opt.append_entries_max * s->opt.inflight_msgs_max;
    uint64_t trip_us = 2 * s->opt.net_delay_max_us + s->opt.disk_delay_max_us;
    return last > commit ? (last - commit) / per_trip * trip_us * 2 : 0;
}

/*
 * Everything is healed; within random_liveness_timeouts maximal election timeouts a leader
 * must exist and a value proposed now must be committed and applied on every node. The
 * value is proposed again to every new leader (a stale leader may accept it and then lose
 * it); any one copy committed and applied everywhere will do.
 */
static void check_liveness(struct sim *s, uint64_t value)
{
    struct proposal
    {
        raft_index index;
        uint64_t chain;
    } props[random_liveness_proposals_max];
    unsigned n_props = 0;
    raft_id prop_leader = 0;
    raft_term prop_term = 0;

    sim_heal_all(s);
    uint64_t timeout_us = 2 * (uint64_t)s->opt.election_ticks * s->opt.tick_us;
    uint64_t start = s->now_us;
    uint64_t deadline = start + random_liveness_timeouts * timeout_us + backlog_us(s);
    while (!s->failed && s->now_us < deadline) {
        for (unsigned i = 0; i < n_props; i++) {
            if (committed_at(s, props[i].index) == props[i].chain &&
                all_applied(s, props[i].index)) {
                return;
            }
        }
        raft_id leader = sim_leader(s);
        if (leader != 0 && n_props < random_liveness_proposals_max &&
            (leader != prop_leader || raft_current_term(s->nodes[leader].core) != prop_term)) {
            raft_index at;
            if (sim_propose(s, leader, value, &at) == 0) {
                const struct sim_entry *e = sim_log_at(&s->nodes[leader].log, at);
                lr_assert(e != NULL);
                props[n_props].index = at;
                props[n_props].chain = e->chain;
                n_props++;
                prop_leader = leader;
                prop_term = raft_current_term(s->nodes[leader].core);
            }
        }
        if (!sim_step(s)) {
            break;
        }
    }
    if (!s->failed) {
        liveness_report(s, n_props > 0 ? props[n_props - 1].index : 0, s->now_us - start);
    }
}

/* --- The run --------------------------------------------------------------------------- */

static void choose_options(uint64_t seed, struct sim_options *o)
{
    struct lr_rand g;
    lr_rand_seed(&g, seed ^ 0x5eed5eed5eed5eedULL);
    sim_options_default(o);
    o->seed = seed;
    o->voters = lr_rand_below(&g, 2) == 0 ? 3 : 5;
    o->learners = lr_rand_below(&g, 4) == 0 ? 1 : 0;
    o->spares = (unsigned)lr_rand_range(&g, 0, 2);
    /* Four voters and a learner in one seed in eight: the shape of the counterexample to
     * membership changes without the new leader's-term rule (sim_random_change_trap). */
    if (lr_rand_below(&g, 8) == 0) {
        o->voters = 4;
        o->learners = 1;
    }
    o->heartbeat_ticks = (uint32_t)lr_rand_range(&g, 1, 3);
    o->snapshot_threshold = lr_rand_range(&g, 20, 200);
    o->snapshot_trailing = lr_rand_range(&g, 0, 20);
    o->disk_delay_max_us = lr_rand_range(&g, 500, 5000);
    /* Slow disks in one seed in four: a write then takes as long as a few network round
     * trips, so that elections and truncations overtake writes in flight. */
    if (lr_rand_below(&g, 4) == 0) {
        o->disk_delay_max_us = lr_rand_range(&g, o->tick_us / 2, 3 * o->tick_us);
        o->disk_delay_min_us = o->disk_delay_max_us / 4;
    }
    /* Small batches and windows in half the seeds: replication then advances a few entries
     * at a time, which is what exposes commit-rule bugs (the paper's Figure 8). */
    if (lr_rand_below(&g, 2) == 0) {
        o->append_entries_max = (uint32_t)lr_rand_range(&g, 1, 4);
        o->inflight_msgs_max = (uint32_t)lr_rand_range(&g, 1, 8);
    }
}

int sim_random_run(uint64_t seed,
                   uint64_t steps,
                   char *msg,
                   size_t msg_size,
                   struct sim_stats *stats)
{
    struct sim_options o;
    choose_options(seed, &o);
    const char *trace = getenv("LUARAFT_TRACE");
    o.trace_stderr = trace != NULL && trace[0] != '\0' && strcmp(trace, "0") != 0;
    struct sim *s;
    int rv = sim_create(&s, &o);
    lr_assert(rv == 0);
    struct plan p;
    plan_make(&s->rand, &p);

    s->random_steps = steps;

    for (uint64_t i = 0; i < steps && !s->failed; i++) {
        if (lr_rand_chance(&s->rand, p.fault_ppm)) {
            random_fault(s, &p);
        }
        if (lr_rand_chance(&s->rand, p.propose_ppm)) {
            client_propose(s, &p);
        }
        client_other(s, &p);
        if (!sim_step(s) && !s->failed) {
            sim_heal_all(s); /* everything was down: nothing left to do */
        }
    }
    if (!s->failed) {
        check_liveness(s, 0x8000000000000000ULL | seed);
    }

    rv = 0;
    if (s->failed) {
        rv = SIM_EFAILED;
        if (msg != NULL && msg_size > 0) {
            snprintf(msg, msg_size,
                     "%s\nreplay: LUARAFT_TRACE=1 lua5.4 -e 'package.cpath=\"build/lua/?.so;\""
                     "..package.cpath; print(require(\"luaraft.sim\").random_run{seed=%" PRIu64
                     ", steps=%" PRIu64 "})'\n",
                     s->failure, seed, steps);
        }
    } else if (msg != NULL && msg_size > 0) {
        msg[0] = '\0';
    }
    if (stats != NULL) {
        *stats = s->stats;
    }
    sim_destroy(s);
    return rv;
}
