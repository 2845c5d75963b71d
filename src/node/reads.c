/*
 * Reads: a loop turn's reads share one ReadIndex round (Raft thesis §6.4: the leader
 * confirms it still leads, and the read waits until the state machine has applied up to
 * the commit index it had then). A confirmed batch becomes one query job for the fsm
 * thread, queued behind the applies it must see.
 */
#include <stdlib.h>
#include <string.h>

#include "fsm/job.h"
#include "node/internal.h"
#include "node/session.h"
#include "util/assert.h"

void reads_take(struct node *n,
                struct server_request *req,
                struct session *watch,
                void *blob,
                size_t len)
{
    struct read_batch *b = &n->rd.turn;
    VEC_RESERVE(b->items, b->n, b->cap, 1);
    b->items[b->n++] = (struct read_item){req, watch, blob, len};
}

static void batch_fail(struct node *n, struct read_batch *b, const char *text)
{
    for (size_t k = 0; k < b->n; k++) {
        node_reply_text(n, b->items[k].req, text);
        free(b->items[k].blob);
    }
    free(b->items);
    b->items = NULL;
    b->n = b->cap = 0;
}

/* One READ_INDEX for every read of the turn. */
void reads_start(struct node *n)
{
    struct reads *rd = &n->rd;
    if (rd->turn.n == 0) {
        return;
    }
    struct read_batch *b = calloc(1, sizeof *b);
    lr_assert(b != NULL);
    *b = rd->turn;
    memset(&rd->turn, 0, sizeof rd->turn);
    b->id = ++rd->seq;
    b->deadline_ms = node_now(n) + node_read_timeout_ms;
    /* On the leader a read also waits for the writes proposed before it, so that a
     * pipelining client sees its own writes. */
    if (raft_role_of(n->raft) == RAFT_LEADER) {
        b->index = raft_last_index(n->raft);
    }
    b->next = rd->waiting;
    rd->waiting = b;
    struct raft_event ev = {.type = RAFT_EVENT_READ_INDEX};
    ev.read_index.id = b->id;
    int rv = node_step(n, &ev);
    if (rv != 0) {
        struct raft_read r = {b->id, RAFT_ENOTLEADER, 0};
        struct raft_update fail = {.flags = RAFT_UPDATE_READS, .reads = &r, .n_reads = 1};
        reads_results(n, &fail);
    }
}

void reads_results(struct node *n, const struct raft_update *u)
{
    for (unsigned i = 0; i < u->n_reads; i++) {
        const struct raft_read *r = &u->reads[i];
        struct read_batch **pp = &n->rd.waiting;
        while (*pp != NULL && (*pp)->id != r->id) {
            pp = &(*pp)->next;
        }
        struct read_batch *b = *pp;
        if (b == NULL) {
            continue;
        }
        if (r->status != 0) {
            *pp = b->next;
            batch_fail(n, b, "-TRYAGAIN the read could not be confirmed; retry\r\n");
            free(b);
            continue;
        }
        b->confirmed = true;
        if (r->index > b->index) {
            b->index = r->index;
        }
    }
}

/* Queues the queries of every confirmed read whose index is handed to the fsm thread:
 * the queue keeps them behind the applies they must see. */
void reads_dispatch(struct node *n)
{
    struct read_batch **pp = &n->rd.waiting;
    while (*pp != NULL) {
        struct read_batch *b = *pp;
        if (!b->confirmed || b->index > n->applied_sent) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        struct fsm_job *job = fsm_job_new(FSM_JOB_QUERY);
        lr_assert(job != NULL);
        job->queries = calloc(b->n, sizeof *job->queries);
        lr_assert(job->queries != NULL);
        unsigned q = 0;
        for (size_t k = 0; k < b->n; k++) {
            struct read_item *it = &b->items[k];
            if (it->watch != NULL) {
                multi_watch_done(n, it->req, it->watch, it->blob, it->len, b->index);
                free(it->blob);
                continue;
            }
            job->queries[q++] =
                (struct fsm_job_query){.tag = it->req, .blob = it->blob, .len = it->len};
        }
        job->n_queries = q;
        n->metrics.reads_total += q;
        n->metrics.read_rounds_total += q > 0;
        free(b->items);
        free(b);
        if (q > 0) {
            n->io->fsm_submit(n->io->arg, job);
        } else {
            fsm_job_free(job);
        }
    }
}

void reads_expire(struct node *n)
{
    uint64_t now = node_now(n);
    struct read_batch **pp = &n->rd.waiting;
    while (*pp != NULL) {
        struct read_batch *b = *pp;
        if (b->deadline_ms > now) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        batch_fail(n, b, "-TRYAGAIN the read timed out; retry\r\n");
        free(b);
    }
}

void reads_stop(struct node *n)
{
    batch_fail(n, &n->rd.turn, node_down_reply);
    while (n->rd.waiting != NULL) {
        struct read_batch *b = n->rd.waiting;
        n->rd.waiting = b->next;
        batch_fail(n, b, node_down_reply);
        free(b);
    }
}

static void batch_discard(struct read_batch *b)
{
    for (size_t k = 0; k < b->n; k++) {
        free(b->items[k].blob);
    }
    free(b->items);
}

void reads_free(struct node *n)
{
    batch_discard(&n->rd.turn);
    while (n->rd.waiting != NULL) {
        struct read_batch *b = n->rd.waiting;
        n->rd.waiting = b->next;
        batch_discard(b);
        free(b);
    }
    memset(&n->rd, 0, sizeof n->rd);
}
