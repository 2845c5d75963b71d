/*
 * The whole-node simulator: snapshot files, the snapshot and restore jobs, and snapshots
 * sent to a follower. A snapshot job runs M.snapshot into memory at once (the real one
 * forks a child), and its file appears when the simulated child finishes, or never when
 * it fails.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

struct sim_file *ns_file_find(struct sim_node *s, const char *name)
{
    for (int i = 0; i < s->n_files; i++) {
        if (strcmp(s->files[i].name, name) == 0) {
            return &s->files[i];
        }
    }
    return NULL;
}

struct sim_file *ns_file_add(struct sim_node *s, const char *name, raft_index index, raft_term term)
{
    struct sim_file *f = ns_file_find(s, name);
    if (f != NULL) {
        buf_free(&f->data);
    } else {
        lr_assert(s->n_files < sim_files_max);
        f = &s->files[s->n_files++];
    }
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->index = index;
    f->term = term;
    buf_init(&f->data);
    return f;
}

void ns_file_remove(struct sim_node *s, struct sim_file *f)
{
    buf_free(&f->data);
    *f = s->files[--s->n_files];
}

void ns_files_free(struct sim_node *s)
{
    while (s->n_files > 0) {
        ns_file_remove(s, &s->files[0]);
    }
}

struct sim_file *ns_file_newest(struct sim_node *s)
{
    struct sim_file *best = NULL;
    for (int i = 0; i < s->n_files; i++) {
        if (!s->files[i].incoming && (best == NULL || s->files[i].index > best->index)) {
            best = &s->files[i];
        }
    }
    return best;
}

struct reader
{
    const struct buf *b;
    bool done;
};

static int read_all(void *arg, const void **data, size_t *len)
{
    struct reader *r = arg;
    *data = r->b->data;
    *len = r->done ? 0 : r->b->len;
    r->done = true;
    return 0;
}

int ns_fsm_restore(struct sim_node *s, const struct sim_file *f)
{
    struct reader r = {&f->data, false};
    int rv = fsm_restore(s->fsm, read_all, &r);
    if (rv == 0) {
        s->fsm_index = f->index;
        s->fsm_term = f->term;
        struct fsm_ctx at = fsm_applied(s->fsm); /* queries see the snapshot's index */
        at.index = f->index;
        at.term = f->term;
        fsm_set_applied(s->fsm, &at);
    }
    return rv;
}

static int write_buf(void *arg, const void *data, size_t len)
{
    return buf_append(arg, data, len) == 0 ? 0 : -1;
}

void ns_snapshot_job(struct sim_node *s, struct fsm_job *job)
{
    struct world *w = s->w;
    if (s->fsm_index == 0) {
        job->status = -22; /* EINVAL, as the worker: nothing applied yet */
        snprintf(job->errmsg, sizeof job->errmsg, "nothing applied yet");
        node_fsm_done(s->n, job);
        return;
    }
    struct buf *b = calloc(1, sizeof *b);
    lr_assert(b != NULL);
    buf_init(b);
    int status = fsm_snapshot(s->fsm, write_buf, b) == 0 ? 0 : -1;
    if (s->snap_fail_next) {
        s->snap_fail_next = false;
        status = -1;
    }
    ns_schedule(w, (struct event){.time = w->now + ns_rnd(w, 1, sim_snapshot_ms_max),
                                  .type = EV_SNAPSHOT_WRITTEN,
                                  .node = s->idx,
                                  .inc = s->inc,
                                  .p = b,
                                  .a = s->fsm_index,
                                  .b = s->fsm_term,
                                  .status = status});
    fsm_job_free(job); /* the runtime does the same once the child runs */
}

void ns_snapshot_written(struct sim_node *s, struct event *ev)
{
    struct buf *b = ev->p;
    char name[48];
    snprintf(name, sizeof name, "snap-%" PRIu64 "-%" PRIu64, ev->a, ev->b);
    if (ev->status == 0) {
        struct sim_file *f = ns_file_add(s, name, ev->a, ev->b);
        f->data = *b;
        s->w->st->snapshots++;
    } else {
        buf_free(b);
    }
    free(b);
    node_snapshot_written(s->n, ev->a, ev->b, ev->status == 0 ? name : NULL, ev->status);
}

void ns_restore_job(struct sim_node *s, struct fsm_job *job)
{
    struct sim_file *f = ns_file_find(s, job->path);
    if (f == NULL || ns_fsm_restore(s, f) != 0) {
        job->status = -1;
        snprintf(job->errmsg, sizeof job->errmsg, "cannot restore %.200s", job->path);
    }
    node_fsm_done(s->n, job);
}

void ns_snapshot_delivered(struct sim_node *s, struct event *ev)
{
    struct sim_snapshot_msg *sm = ev->p;
    char name[48];
    snprintf(name, sizeof name, "in-%" PRIu64, ev->seq);
    struct sim_file *f = ns_file_add(s, name, sm->m.snapshot.index, sm->m.snapshot.term);
    f->data = sm->data;
    f->incoming = true;
    struct raft_message m = sm->m;
    free(sm);
    node_receive_snapshot(s->n, &m, name, NULL, 0);
    f = ns_file_find(s, name);
    if (f != NULL) {
        ns_file_remove(s, f); /* not installed: the runtime unlinks it too */
    }
}
