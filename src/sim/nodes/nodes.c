/* The whole-node simulator: nodes start from their durable store, crash, take events. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------ */
/* Nodes: start from the durable store, crash. */

static void store_apply(struct sim_node *s, const struct store_write *wr)
{
    if (wr->hard_state) {
        s->term = wr->term;
        s->vote = wr->vote;
    }
    if (wr->config) {
        memcpy(s->servers, wr->servers, wr->n_servers * sizeof *s->servers);
        s->n_servers = wr->n_servers;
    }
    if (wr->entries) {
        lr_assert(wr->first >= 1 && wr->first <= s->log_n + 1);
        while (s->log_n >= wr->first) {
            free((void *)s->log[--s->log_n].buf);
        }
        for (uint32_t i = 0; i < wr->n; i++) {
            VEC_RESERVE(s->log, s->log_n, s->log_cap, 1);
            struct raft_entry *c = ns_copy_entries(&wr->e[i], 1);
            s->log[s->log_n++] = c[0];
            free(c);
        }
    }
}

int ns_node_start(struct sim_node *s)
{
    struct world *w = s->w;
    char msg[256];
    struct fsm_limits limits = {.instructions_max = 1000000, .memory_bytes_max = 64 << 20};
    if (fsm_open(&s->fsm, w->o->script, &limits, msg, sizeof msg) != 0) {
        ns_violation(w, "node %d: cannot load %s: %s", s->idx + 1, w->o->script, msg);
        return -1;
    }
    s->inc++;
    s->io = ns_io;
    s->io.arg = s;
    s->n = node_new(&s->cfg, &s->io, s->fsm);
    s->n->n_members = w->n_nodes;
    for (int i = 0; i < w->n_nodes; i++) {
        s->n->members[i] = (struct node_member){.id = (raft_id)i + 1, .host = "sim", .port = 1};
    }
    snprintf(s->n->client_addr, sizeof s->n->client_addr, "sim:%d", s->idx + 1);
    s->n->wr.fwd_seq = lr_rand_next(&w->rng);
    s->n->rd.seq = lr_rand_next(&w->rng);
    for (raft_index i = 0; i < s->log_n; i++) {
        node_boot_append(s->n, i + 1, &s->log[i]);
    }
    struct node_boot_state b = {
        .term = s->term,
        .vote = s->vote,
        .servers = s->servers,
        .n_servers = s->n_servers,
        .random_seed = lr_rand_next(&w->rng),
    };
    if (node_boot(s->n, &b, msg, sizeof msg) != 0) {
        ns_violation(w, "node %d: boot: %s", s->idx + 1, msg);
        return -1;
    }
    s->up = true;
    s->disk_free_at = s->fsm_free_at = w->now;
    ns_schedule(w,
                (struct event){
                    .time = w->now + sim_tick_ms, .type = EV_TICK, .node = s->idx, .inc = s->inc});
    return 0;
}

/* The process dies: everything not durable is gone; requests in flight are never
 * answered (their clients time out). */
void ns_node_crash(struct sim_node *s)
{
    node_free(s->n);
    s->n = NULL;
    fsm_close(s->fsm);
    s->fsm = NULL;
    while (s->reqs != NULL) {
        struct server_request *r = s->reqs;
        s->reqs = r->next;
        free(r);
    }
    s->up = false;
    s->inc++;
    s->slow_disk = s->disk_fail_next = s->disk_failed = false;
    s->w->st->crashes++;
}

/* Frees what an event owns when it is dropped (its node crashed meanwhile). */
void ns_event_free(struct event *ev)
{
    switch (ev->type) {
        case EV_DELIVER: {
            struct raft_message *m = ev->p;
            if (m->type == RAFT_MSG_APPEND) {
                ns_free_entries(m->append.entries, m->append.n_entries);
            }
            free(m);
            break;
        }
        case EV_PERSIST: {
            struct sim_write *sw = ev->p;
            ns_free_entries(sw->e, sw->w.n);
            free(sw->ctx); /* the node's persist context: plain memory */
            free(sw);
            break;
        }
        case EV_FSM:
            fsm_job_free(ev->p);
            break;
        default:
            free(ev->p);
    }
}

static void run_fsm_job(struct sim_node *s, struct fsm_job *job)
{
    switch (job->type) {
        case FSM_JOB_APPLY:
            for (unsigned i = 0; i < job->n_entries; i++) {
                fsm_job_apply_entry(s->fsm, &job->entries[i]);
            }
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                fsm_job_run_query(s->fsm, &job->queries[i]);
            }
            break;
        default:
            job->status = -1;
            snprintf(job->errmsg, sizeof job->errmsg, "not simulated");
    }
    node_fsm_done(s->n, job);
}

void ns_node_event(struct world *w, struct sim_node *s, struct event *ev)
{
    switch (ev->type) {
        case EV_TICK:
            node_tick(s->n);
            ns_schedule(
                w,
                (struct event){
                    .time = w->now + sim_tick_ms, .type = EV_TICK, .node = s->idx, .inc = s->inc});
            break;
        case EV_DELIVER: {
            struct raft_message *m = ev->p;
            node_receive(s->n, m);
            ns_event_free(ev);
            break;
        }
        case EV_FRAME:
            node_frame(s->n, (raft_id)ev->a, (uint8_t)ev->b, ev->p, ev->len);
            free(ev->p);
            break;
        case EV_PERSIST: {
            struct sim_write *sw = ev->p;
            if (ev->status == 0) {
                store_apply(s, &sw->w);
            }
            node_persisted(s->n, sw->ctx, ev->status);
            ns_free_entries(sw->e, sw->w.n);
            free(sw);
            break;
        }
        case EV_FSM:
            run_fsm_job(s, ev->p);
            break;
        default:
            lr_assert(0);
    }
    if (s->up && s->n != NULL) {
        node_turn(s->n);
        raft_id leader = raft_leader_of(s->n->raft);
        if (leader != s->leader_seen) {
            s->leader_seen = leader;
            w->st->elections += leader != 0;
        }
    }
}
