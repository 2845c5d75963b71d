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

static void log_drop_to(struct sim_node *s, raft_index to)
{
    raft_index k = 0;
    while (k < s->log_n && s->log_first + k <= to) {
        free((void *)s->log[k++].buf);
    }
    memmove(s->log, s->log + k, (s->log_n - k) * sizeof *s->log);
    s->log_n -= k;
    s->log_first += k;
}

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
    if (wr->snapshot) { /* installed: the log is dropped */
        log_drop_to(s, UINT64_MAX);
        s->log_first = wr->snapshot_index + 1;
    }
    if (wr->snapshot || wr->snapshot_taken) {
        s->stored_snap_index = wr->snapshot_index;
        s->stored_snap_term = wr->snapshot_term;
    }
    if (wr->entries) {
        lr_assert(wr->first >= s->log_first && wr->first <= s->log_first + s->log_n);
        while (s->log_n > 0 && s->log_first + s->log_n - 1 >= wr->first) {
            free((void *)s->log[--s->log_n].buf);
        }
        for (uint32_t i = 0; i < wr->n; i++) {
            VEC_RESERVE(s->log, s->log_n, s->log_cap, 1);
            struct raft_entry *c = ns_copy_entries(&wr->e[i], 1);
            s->log[s->log_n++] = c[0];
            free(c);
        }
    }
    if (wr->compact_to > 0) {
        log_drop_to(s, wr->compact_to);
        if (s->log_n == 0 && s->log_first <= wr->compact_to) {
            s->log_first = wr->compact_to + 1;
        }
    }
}

/* The newest snapshot file into the fresh fsm; fills in what boot needs of it. */
static int boot_snapshot(struct sim_node *s, struct node_boot_state *b)
{
    s->fsm_index = s->fsm_term = 0;
    struct sim_file *f = ns_file_newest(s);
    if (f == NULL) {
        return 0;
    }
    if (ns_fsm_restore(s, f) != 0) {
        ns_violation(s->w, "node %d: cannot restore %s at start-up", s->idx + 1, f->name);
        return -1;
    }
    b->snapshot_index = f->index;
    b->snapshot_term = f->term;
    b->snapshot_path = f->name;
    return 0;
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
    s->disk_free_at = s->fsm_free_at = w->now; /* before boot, which may persist already */
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
        node_boot_append(s->n, s->log_first + i, &s->log[i]);
    }
    struct node_boot_state b = {
        .term = s->term,
        .vote = s->vote,
        .stored_snapshot_index = s->stored_snap_index,
        .servers = s->servers,
        .n_servers = s->n_servers,
        .random_seed = lr_rand_next(&w->rng),
    };
    if (boot_snapshot(s, &b) != 0) {
        return -1;
    }
    if (node_boot(s->n, &b, msg, sizeof msg) != 0) {
        ns_violation(w, "node %d: boot: %s", s->idx + 1, msg);
        return -1;
    }
    s->up = true;
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
    for (int i = 0; i < s->n_files;) {
        if (s->files[i].incoming) {
            ns_file_remove(s, &s->files[i]);
        } else {
            i++;
        }
    }
    s->up = false;
    s->inc++;
    s->slow_disk = s->disk_fail_next = s->disk_full_next = false;
    s->disk_failed = 0;
    s->w->st->crashes += !s->exiting; /* an exit after a graceful stop is no crash */
    s->exiting = false;
    s->shutdown_at = 0;
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
        case EV_SNAPSHOT_WRITTEN:
            buf_free(ev->p);
            free(ev->p);
            break;
        case EV_DELIVER_SNAPSHOT: {
            struct sim_snapshot_msg *sm = ev->p;
            buf_free(&sm->data);
            free(sm);
            break;
        }
        default:
            free(ev->p);
    }
}

void ns_exiting_event(struct sim_node *s, struct event *ev)
{
    if (ev->type == EV_PERSIST) { /* the store drains its queue after node_stop */
        struct sim_write *sw = ev->p;
        if (ev->status == 0) {
            store_apply(s, &sw->w);
        }
        ns_event_free(ev);
    } else if (ev->type == EV_EXIT) {
        ns_node_crash(s);
    } else {
        ns_event_free(ev); /* the node answers nothing more, and the fsm thread is gone */
    }
}

static void run_fsm_job(struct sim_node *s, struct fsm_job *job)
{
    switch (job->type) {
        case FSM_JOB_APPLY:
            for (unsigned i = 0; i < job->n_entries; i++) {
                fsm_job_apply_entry(s->fsm, &job->entries[i]);
                s->fsm = fsm_job_adopt(s->fsm, &job->entries[i]); /* after a RAFT.LOAD */
                s->fsm_index = job->entries[i].index;
                s->fsm_term = job->entries[i].term;
            }
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                fsm_job_run_query(s->fsm, &job->queries[i]);
            }
            break;
        case FSM_JOB_SNAPSHOT:
            ns_snapshot_job(s, job);
            return;
        case FSM_JOB_RESTORE:
            ns_restore_job(s, job);
            return;
        case FSM_JOB_CHECK_SCRIPT: {
            struct fsm *f;
            job->status = fsm_open_successor(s->fsm, job->path, job->text, job->text_len, &f,
                                             job->errmsg, sizeof job->errmsg);
            if (job->status == 0) {
                fsm_close(f);
            }
            break;
        }
        case FSM_JOB_STOP:
            break;
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
        case EV_SNAPSHOT_WRITTEN:
            ns_snapshot_written(s, ev);
            break;
        case EV_DELIVER_SNAPSHOT:
            ns_snapshot_delivered(s, ev);
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
        if (raft_role_of(s->n->raft) == RAFT_LEADER &&
            raft_current_term(s->n->raft) > s->led_term) {
            s->led_term = raft_current_term(s->n->raft);
        }
        ns_shutdown_check(w, s);
    }
}
