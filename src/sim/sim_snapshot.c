/*
 * Snapshots a node takes of its own state: on request (sim_snapshot()) or when the
 * options' threshold of applied entries is reached after a step.
 */
#include <string.h>

#include "sim/sim_internal.h"

/*
 * Takes a snapshot of node n at its applied index. The snapshot is durable at once (it
 * models write to a temporary file, fsync, rename), then the core hears
 * RAFT_EVENT_SNAPSHOT_TAKEN and both logs drop what the core lets go. Not while an
 * installed snapshot is still being persisted: the durable log would then mix the old
 * log with the new snapshot.
 */
int sim_snapshot_take(struct sim *s, struct sim_node *n)
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
    struct sim_snap snap = {
        .index = index, .term = term, .fsm = n->fsm, .chain = chain, .conf = n->applied_conf};
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

void sim_snapshot_maybe(struct sim *s, struct sim_node *n)
{
    if (s->opt.snapshot_threshold == 0 || !n->up || n->installs_pending > 0) {
        return;
    }
    if (n->applied >= n->snap.index + s->opt.snapshot_threshold) {
        sim_snapshot_take(s, n);
    }
}

int sim_snapshot(struct sim *s, raft_id id)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    return sim_snapshot_take(s, n);
}
