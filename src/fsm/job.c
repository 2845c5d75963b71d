/*
 * Running fsm jobs on an fsm (see fsm/job.h): the part of the fsm thread's work that does
 * not depend on the thread, so a simulator runs exactly the same code in-process.
 */
#include "fsm/job.h"

#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "raft/raft.h"
#include "util/assert.h"

struct fsm_job *fsm_job_new(enum fsm_job_type type)
{
    struct fsm_job *job = calloc(1, sizeof *job);
    if (job != NULL) {
        job->type = type;
    }
    return job;
}

void fsm_job_free(struct fsm_job *job)
{
    if (job == NULL) {
        return;
    }
    for (unsigned i = 0; i < job->n_entries; i++) {
        free(job->entries[i].payload);
        fsm_reply_free(&job->entries[i].reply);
    }
    free(job->entries);
    for (unsigned i = 0; i < job->n_queries; i++) {
        free(job->queries[i].blob);
        fsm_reply_free(&job->queries[i].reply);
    }
    free(job->queries);
    free(job);
}

/* The seed of math.random for one entry: a hash of its index and term, so every replica
 * draws the same numbers and consecutive entries draw different ones. */
static uint64_t entry_seed(uint64_t index, uint64_t term)
{
    uint64_t z = index * 0x9e3779b97f4a7c15ULL ^ (term + 0x632be59bd9b4e019ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const char malformed_reply[] = "-ERR malformed log entry\r\n";

static void append_raw(struct fsm_reply *r, const char *s, size_t n)
{
    if (r->cap - r->len < n) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        while (cap - r->len < n) {
            cap *= 2;
        }
        char *d = realloc(r->data, cap);
        if (d == NULL) {
            return;
        }
        r->data = d;
        r->cap = cap;
    }
    memcpy(r->data + r->len, s, n);
    r->len += n;
}

/* Applies one committed entry. A payload that does not decode gets the same error reply
 * on every replica (the bytes are the same everywhere), so replicas cannot diverge. */
void fsm_job_apply_entry(struct fsm *f, struct fsm_job_entry *e)
{
    if (e->want_reply && e->reply_headroom > 0 && e->reply.len == 0) {
        static const char zeros[64];
        lr_assert(e->reply_headroom <= sizeof zeros);
        append_raw(&e->reply, zeros, e->reply_headroom);
    }
    struct fsm_ctx at = fsm_applied(f); /* the entry's index, whatever it holds */
    at.index = e->index;
    at.term = e->term;
    fsm_set_applied(f, &at);
    if (e->type != RAFT_ENTRY_NORMAL) {
        return;
    }
    int64_t time_ms;
    const void *blob;
    size_t blob_len;
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get(e->payload, e->len, &time_ms, &blob, &blob_len) ||
        !command_get_argv(blob, blob_len, &argc, &argv, &argvlen)) {
        append_raw(&e->reply, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    struct fsm_ctx ctx = {
        .index = e->index,
        .term = e->term,
        .time_ms = time_ms,
        .seed = entry_seed(e->index, e->term),
    };
    struct fsm_reply scratch = {0};
    struct fsm_reply *out = e->want_reply ? &e->reply : &scratch;
    int rv = fsm_apply(f, &ctx, argc, argv, argvlen, out);
    if (rv != 0 && e->want_reply) {
        static const char oom[] = "-ERR out of memory while applying\r\n";
        append_raw(out, oom, sizeof oom - 1);
    }
    fsm_reply_free(&scratch);
    free(argv);
    free(argvlen);
}

void fsm_job_run_query(struct fsm *f, struct fsm_job_query *q)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(q->blob, q->len, &argc, &argv, &argvlen)) {
        append_raw(&q->reply, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    int rv = fsm_query(f, argc, argv, argvlen, &q->reply);
    if (rv == FSM_ENOTSUP) {
        static const char e[] = "-ERR the script has no query function\r\n";
        append_raw(&q->reply, e, sizeof e - 1);
    } else if (rv != 0) {
        static const char e[] = "-ERR out of memory while querying\r\n";
        append_raw(&q->reply, e, sizeof e - 1);
    }
    free(argv);
    free(argvlen);
}
