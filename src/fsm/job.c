/*
 * Running fsm jobs on an fsm (see fsm/job.h): the part of the fsm thread's work that does
 * not depend on the thread, so a simulator runs exactly the same code in-process.
 */
#include "fsm/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "fsm/fsm_internal.h"
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
        struct fsm_job_entry *e = &job->entries[i];
        free(e->payload);
        fsm_reply_free(&e->reply);
        fsm_close(e->retired); /* its successor runs on */
        if (e->retired == NULL) {
            fsm_close(e->loaded); /* never adopted: nobody runs it */
        }
    }
    free(job->entries);
    for (unsigned i = 0; i < job->n_queries; i++) {
        free(job->queries[i].blob);
        fsm_reply_free(&job->queries[i].reply);
    }
    free(job->queries);
    free(job->members);
    fsm_close(job->retired);
    free(job->text);
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
static const char no_query_reply[] = "-ERR the script has no query function\r\n";

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

/* Appends "*<n>\r\n". */
static void append_array_header(struct fsm_reply *r, unsigned n)
{
    char line[16];
    int len = snprintf(line, sizeof line, "*%u\r\n", n);
    append_raw(r, line, (size_t)len);
}

/* Runs one command (an argv blob) of an entry, appending its reply to out; in a
 * transaction, a read goes to M.query (fsm_apply_command). */
static void apply_blob(struct fsm *f,
                       const struct fsm_ctx *ctx,
                       const void *blob,
                       size_t len,
                       bool in_transaction,
                       struct fsm_reply *out)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        append_raw(out, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    const char *dk = f->test_diverge_key;
    if (dk[0] != '\0' && argc >= 2 && argvlen[1] == strlen(dk) &&
        memcmp(argv[1], dk, argvlen[1]) == 0) {
        append_raw(out, "+OK\r\n", 5); /* fsm_test_diverge: the other replicas apply it */
        free(argv);
        free(argvlen);
        return;
    }
    int rv = in_transaction ? fsm_apply_command(f, ctx, argc, argv, argvlen, out)
                            : fsm_apply(f, ctx, argc, argv, argvlen, out);
    if (rv == FSM_ENOTSUP) {
        append_raw(out, no_query_reply, sizeof no_query_reply - 1);
    } else if (rv != 0) {
        static const char oom[] = "-ERR out of memory while applying\r\n";
        append_raw(out, oom, sizeof oom - 1);
    }
    free(argv);
    free(argvlen);
}

/* A TRANSACTION: its commands back to back, each with the entry's ctx and a budget of its
 * own; a command's error is its reply and the rest still run (Redis's EXEC); the reply is
 * the array of theirs. */
static void apply_transaction(struct fsm *f,
                              const struct fsm_ctx *ctx,
                              const void *body,
                              size_t len,
                              struct fsm_reply *out)
{
    struct command_tx_iter it;
    command_tx_begin(&it, body, len);
    append_array_header(out, it.n);
    const void *blob;
    size_t blob_len;
    while (command_tx_next(&it, &blob, &blob_len)) {
        apply_blob(f, ctx, blob, blob_len, true, out);
    }
}

/* A LOAD entry: the successor into e->loaded, or the error as the reply. */
static void load_entry(struct fsm *f,
                       const struct fsm_ctx *ctx,
                       const void *body,
                       size_t len,
                       struct fsm_job_entry *e,
                       struct fsm_reply *out)
{
    const char *name;
    size_t name_len, text_len;
    const void *text;
    lr_assert(command_get_load(body, len, &name, &name_len, &text, &text_len));
    char cname[command_load_name_max + 1];
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    size_t mark = out->len;
    struct fsm_reply err = {0};
    if (fsm_upgrade(f, cname, text, text_len, ctx, &e->loaded, &err) == 0) {
        append_raw(out, "+OK\r\n", 5);
    } else {
        out->len = mark;
        append_raw(out, err.data, err.len);
        e->error_reply = true;
    }
    fsm_reply_free(&err);
}

struct fsm *fsm_job_adopt(struct fsm *f, struct fsm_job_entry *e)
{
    if (e->loaded == NULL) {
        return f;
    }
    fsm_close_state(f);
    e->retired = f;
    return e->loaded;
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
    enum command_kind kind;
    const void *body;
    size_t len;
    if (!command_get_kind(e->payload, e->len, &time_ms, &kind, &body, &len)) {
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
    switch (kind) {
        case COMMAND_KIND_COMMAND: {
            size_t before = out->len;
            apply_blob(f, &ctx, body, len, false, out);
            e->error_reply = out->len > before && out->data[before] == '-';
            break;
        }
        case COMMAND_KIND_TICK:
            fsm_tick(f, &ctx); /* its error is swallowed, the same on every replica */
            append_raw(out, "+OK\r\n", 5);
            break;
        case COMMAND_KIND_TRANSACTION:
            apply_transaction(f, &ctx, body, len, out);
            break;
        case COMMAND_KIND_CHECK:
            e->checked = true;
            e->hash_rv = fsm_state_hash(f, e->state_hash);
            append_raw(out, "+OK\r\n", 5);
            break;
        case COMMAND_KIND_LOAD:
            load_entry(f, &ctx, body, len, e, out);
            break;
    }
    fsm_reply_free(&scratch);
}

void fsm_job_run_query(struct fsm *f, struct fsm_job_query *q)
{
    if (q->kind == FSM_QUERY_KEYSPACE) {
        if (fsm_keyspace(f, &q->reply) != 0) {
            q->reply.len = 0; /* out of memory: the RESP null, as for "unknown" */
            append_raw(&q->reply, "$-1\r\n", 5);
        }
        return;
    }
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(q->blob, q->len, &argc, &argv, &argvlen)) {
        append_raw(&q->reply, malformed_reply, sizeof malformed_reply - 1);
        return;
    }
    int rv = fsm_query(f, argc, argv, argvlen, &q->reply);
    if (rv == FSM_ENOTSUP) {
        append_raw(&q->reply, no_query_reply, sizeof no_query_reply - 1);
    } else if (rv != 0) {
        static const char e[] = "-ERR out of memory while querying\r\n";
        append_raw(&q->reply, e, sizeof e - 1);
    }
    free(argv);
    free(argvlen);
}
