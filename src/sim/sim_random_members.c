/*
 * Membership changes in random runs: the leader adds a spare as a learner, promotes a
 * learner, demotes a voter or removes a server (itself too), sometimes two changes back to
 * back, where the second must be refused until the first is committed. The safety rules of
 * the checker hold across every change; the liveness phase counts only the members of the
 * final configuration.
 */
#include "sim/sim_internal.h"
#include "util/assert.h"

/* The voters of m. */
static unsigned voters_in(const struct raft_members *m)
{
    unsigned k = 0;
    for (unsigned i = 0; i < m->n; i++) {
        k += m->servers[i].voter;
    }
    return k;
}

/* A random node that is (member) or is not (!member) in m; 0 if none. */
static raft_id pick_in(struct sim *s, const struct raft_members *m, bool member, int voter)
{
    raft_id ids[sim_nodes_max];
    unsigned n = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct raft_server *sv = raft_members_find(m, id);
        if ((sv != NULL) == member && (voter < 0 || (sv != NULL && sv->voter == (voter == 1)))) {
            ids[n++] = id;
        }
    }
    return n > 0 ? ids[lr_rand_below(&s->rand, n)] : 0;
}

/* One change chosen from the configuration in force on the leader; with voters_only, one
 * that changes the voters. */
static int one_change(struct sim *s, raft_id leader, bool voters_only)
{
    const struct raft_members *m = raft_members_of(s->nodes[leader].core);
    unsigned voters = voters_in(m);
    raft_id target = 0;
    enum sim_change_kind kind = SIM_CHANGE_ADD;
    switch (voters_only ? 1 + lr_rand_below(&s->rand, 3) : lr_rand_below(&s->rand, 4)) {
        case 0:
            kind = SIM_CHANGE_ADD;
            target = pick_in(s, m, false, -1);
            break;
        case 1:
            kind = SIM_CHANGE_PROMOTE;
            target = pick_in(s, m, true, 0);
            break;
        case 2:
            kind = SIM_CHANGE_DEMOTE;
            target = voters > 1 ? pick_in(s, m, true, 1) : 0;
            break;
        default:
            kind = SIM_CHANGE_REMOVE;
            target = pick_in(s, m, true, -1);
            if (target != 0 && raft_members_find(m, target)->voter && voters <= 1) {
                target = 0;
            }
            break;
    }
    if (target == 0) {
        return SIM_ENOENT;
    }
    int rv = sim_change(s, leader, kind, target, NULL);
    lr_assert(rv == 0 || rv == RAFT_ECHANGE || rv == RAFT_EBUSY || rv == RAFT_ELOGFULL ||
              rv == SIM_EFAILED);
    return rv;
}

void sim_random_change(struct sim *s)
{
    raft_id leader = sim_leader(s);
    if (leader == 0 || s->nodes[leader].paused) {
        return;
    }
    int rv = one_change(s, leader, false);
    /* Now and then a second change at once: the core must refuse it (RAFT_ECHANGE) while
     * the first is not committed. */
    if (rv == 0 && !s->failed && lr_rand_below(&s->rand, 3) == 0 &&
        raft_role_of(s->nodes[leader].core) == RAFT_LEADER) {
        one_change(s, leader, false);
    }
}

/*
 * A change caught in a leadership change, the shape of the bug Ongaro found in the
 * single-server algorithm (raft-dev, 2015): the leader proposes a change of voters and its
 * outgoing links are cut, so the change stays in its log alone; another voter is made to
 * campaign, and the next leader's first act is a change of its own, before it has
 * committed in its term. The rule makes that change wait (RAFT_ECHANGE) for the new
 * leader's no-op, which reaches a majority of the old voters; without it the old leader
 * can come back with its own change and overwrite what the new one committed.
 */
void sim_random_change_deposed(struct sim *s)
{
    raft_id leader = sim_leader(s);
    if (leader == 0 || s->nodes[leader].paused || one_change(s, leader, true) != 0 || s->failed) {
        return;
    }
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        if (id != leader) {
            sim_link(s, leader, id, false);
        }
    }
    raft_id other = sim_random_voter(s, leader);
    if (other != 0) {
        sim_campaign(s, other, true);
    }
    s->change_on_new_leader = true;
}

/*
 * The counterexample to single-server changes without the new leader's-term rule, set up
 * whenever the configuration allows it: four voters L (the leader), S, A, B and a learner
 * X. L, cut off from all but X, makes X a voter (C1: five voters, majority L, X, B) and
 * only X gets it; S is made to campaign and wins with A and B. As S takes over, B is cut
 * from it and joins L's side, and S at once removes L (C2: majority S, A). With the rule,
 * S must first commit its no-op, which needs B or L, so C2 waits; without it, C2 commits
 * on S and A, and L, elected by X and B, which never heard from S, erases it: the
 * checker's leader completeness rule fires.
 */
void sim_random_change_trap(struct sim *s)
{
    raft_id l = sim_leader(s);
    if (l == 0 || s->nodes[l].paused) {
        return;
    }
    const struct raft *core = s->nodes[l].core;
    const struct raft_members *m = raft_members_of(core);
    raft_id x = pick_in(s, m, true, 0);
    if (voters_in(m) != 4 || x == 0 || raft_members_index(core) > raft_commit_index(core)) {
        return;
    }
    raft_id others[3];
    unsigned n = 0;
    for (unsigned i = 0; i < m->n; i++) {
        if (m->servers[i].voter && m->servers[i].id != l) {
            others[n++] = m->servers[i].id;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (!s->nodes[others[i]].up || s->nodes[others[i]].paused) {
            return;
        }
    }
    unsigned pick = (unsigned)lr_rand_below(&s->rand, 3);
    s->trap = (struct sim_trap){.l = l,
                                .s = others[pick],
                                .a = others[(pick + 1) % 3],
                                .b = others[(pick + 2) % 3],
                                .x = x,
                                .armed = true};
    unsigned group[sim_nodes_max + 1] = {0};
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        group[id] = id == l || id == x ? 1 : 2;
    }
    sim_partition(s, group);
    if (sim_change(s, l, SIM_CHANGE_PROMOTE, x, NULL) != 0 || s->failed) {
        s->trap.armed = false;
        return;
    }
    sim_campaign(s, s->trap.s, true);
}

/* The trap's second half, when S has just become leader. */
static void spring_trap(struct sim *s)
{
    struct sim_trap *t = &s->trap;
    t->armed = false;
    unsigned group[sim_nodes_max + 1] = {0};
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        group[id] = id == t->s || id == t->a ? 2 : 1;
    }
    sim_partition(s, group);
    int rv = sim_change(s, t->s, SIM_CHANGE_REMOVE, t->l, NULL);
    lr_assert(rv == 0 || rv == RAFT_ECHANGE || rv == RAFT_EBUSY || rv == RAFT_ELOGFULL ||
              rv == SIM_ENOENT || rv == SIM_EFAILED);
}

void sim_random_change_if_new_leader(struct sim *s, bool fresh)
{
    if (fresh && s->trap.armed) {
        if (sim_leader(s) == s->trap.s) {
            spring_trap(s);
        } else {
            s->trap.armed = false;
        }
        return;
    }
    if (fresh && (s->change_on_new_leader || lr_rand_below(&s->rand, 3) == 0)) {
        s->change_on_new_leader = false;
        raft_id leader = sim_leader(s);
        if (leader != 0 && !s->nodes[leader].paused) {
            one_change(s, leader, true);
        }
    }
}

raft_id sim_random_voter(struct sim *s, raft_id except)
{
    raft_id leader = sim_leader(s);
    raft_id ids[sim_nodes_max];
    unsigned n = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *node = &s->nodes[id];
        bool voter = leader != 0 ? raft_is_voter(s->nodes[leader].core, id)
                                 : node->up && raft_is_voter(node->core, id);
        if (id != except && voter && node->up && !node->paused) {
            ids[n++] = id;
        }
    }
    return n > 0 ? ids[lr_rand_below(&s->rand, n)] : 0;
}

bool sim_in_final_configuration(const struct sim *s, raft_id id)
{
    raft_id leader = sim_leader(s);
    if (leader == 0) {
        return true;
    }
    return raft_members_find(raft_members_of(s->nodes[leader].core), id) != NULL;
}
