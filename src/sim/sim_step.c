/*
 * Stepping a core and carrying out its update.
 *
 * Carrying out an update follows the order written on struct raft_update: persist
 * (sim_disk.c), send (sim_net.c), apply, reads (sim_read.c). Nothing here calls back into
 * a core while its update is being carried out; follow-up events (a snapshot, a persist
 * completion) are separate steps.
 */
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

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
        if (e->type == RAFT_ENTRY_CONFIG) {
            n->applied_conf = e->value;
        }
        n->applied = i;
        sim_check_apply(s, n, i, e->chain, n->fsm);
    }
    sim_trace_add(s, SIM_TR_COMMIT, n->id, 0, 0, commit, n->applied, 0, 0, 0, 0);
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
        sim_reads_result(s, n, u);
    }
    sim_reads_serve(s, n);
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
    sim_abort_watch(s);
    enum raft_role role_before = raft_role_of(n->core);
    raft_index commit_before = raft_commit_index(n->core);
    struct raft_update u;
    int r = raft_step(n->core, ev, &u);
    if (rv != NULL) {
        *rv = r;
    }
    carry_out(s, n, &u);
    if (n->d_recover_term != 0 && !raft_recovering(n->core)) {
        n->d_recover_term = 0; /* what the node's marker file records */
    }
    sim_check_after_node_step(s, n, role_before, commit_before);
    sim_snapshot_maybe(s, n);
}
