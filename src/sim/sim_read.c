/*
 * ReadIndex requests: asking a node, its core's answers (step 4 of carrying out an
 * update), serving a ready read once its index is applied, and failing the reads of a
 * node that crashes.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

/* Step 4, part one: ReadIndex results. */
void sim_reads_result(struct sim *s, struct sim_node *n, const struct raft_update *u)
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
void sim_reads_serve(struct sim *s, struct sim_node *n)
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

int sim_read_index(struct sim *s, raft_id id, uint64_t *reqid)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
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

/* A crash fails the node's pending reads: their answers would come from a past life. */
void sim_reads_fail_node(struct sim *s, raft_id id)
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
