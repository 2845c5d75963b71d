/*
 * Node faults: crash (unsynced writes lost), wipe (the disk lost too), restart, pause and
 * resume, a skewed clock; and sim_heal_all(), which undoes every fault, the network's
 * (sim_net.c) and the disks' (sim_disk.c) included.
 */
#include <string.h>

#include "sim/sim_internal.h"

int sim_crash(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = sim_node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (!n->up) {
        return SIM_EDOWN;
    }
    sim_trace_add(s, SIM_TR_CRASH, id, 0, 0, n->writes_count, 0, 0, 0, 0, 0);
    s->stats.crashes++;
    sim_disk_drop_all(s, n);
    sim_held_free(n);
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
    sim_reads_fail_node(s, id);
    return 0;
}

/* The node crashes and its disk loses its log and snapshot; its term and vote too unless
 * keep_hard_state, in which case it boots with recover_term until it has recovered. */
static int lose_disk(struct sim *s, raft_id id, bool keep_hard_state)
{
    struct sim_node *n;
    int miss = sim_node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (n->up) {
        sim_crash(s, id);
    }
    if (!keep_hard_state) {
        n->d_term = 0;
        n->d_vote = 0;
    }
    n->d_recover_term = keep_hard_state ? n->d_term : 0;
    memset(&n->d_snap, 0, sizeof n->d_snap);
    sim_log_reset(&n->d_log, 0, 0, 0);
    sim_trace_add(s, SIM_TR_WIPE, id, 0, 0, 0, 0, 0, 0, 0, 0);
    return 0;
}

/*
 * Amnesia: the node crashes and its disk is wiped (a replaced disk, a restored old
 * backup). Raft does not survive this in general, since the node forgets votes and
 * acknowledged entries; it is here so that specs can show the checker catching it.
 */
int sim_wipe(struct sim *s, raft_id id)
{
    return lose_disk(s, id, false);
}

/* A damaged store moved aside (src/node/runtime_recover.c): see sim.h. */
int sim_lose_log(struct sim *s, raft_id id)
{
    return lose_disk(s, id, true);
}

int sim_restart(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int miss = sim_node_lookup(s, id, &n);
    if (miss != 0) {
        return miss;
    }
    if (n->up) {
        return SIM_EINVAL;
    }
    int rv = sim_node_boot(s, n);
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
    int rv = sim_node_usable(s, id, &n);
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
    int miss = sim_node_lookup(s, id, &n);
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
    sim_tick_start(s, n);
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
