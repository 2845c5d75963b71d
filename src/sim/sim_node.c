/*
 * Finding a node by id: what the public accessors read, and the lookups every operation
 * on a node starts with.
 */
#include "sim/sim_internal.h"

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

/* --- Lookups for operations ----------------------------------------------------------- */

/* The node with that id, while the run is sound. Errors: SIM_EFAILED, SIM_ENOENT. */
int sim_node_lookup(struct sim *s, raft_id id, struct sim_node **out)
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
int sim_node_usable(struct sim *s, raft_id id, struct sim_node **out)
{
    struct sim_node *n;
    int miss = sim_node_lookup(s, id, &n);
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
