/*
 * Applying: newly committed entries go to the fsm thread in one job per update, with
 * copies of their payloads (the thread must not touch the log cache, which the loop
 * thread truncates and compacts); the thread's results come back here and go to the room
 * that waits for them.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/job.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "util/assert.h"
#include "util/crash_point.h"

void apply_dispatch(struct node *n, raft_index commit)
{
    metrics_committed(n, commit);
    if (commit > cache_last(&n->cache)) {
        commit = cache_last(&n->cache);
    }
    if (commit <= n->applied_sent) {
        return;
    }
    struct fsm_job *job = fsm_job_new(FSM_JOB_APPLY);
    lr_assert(job != NULL);
    uint64_t k = commit - n->applied_sent;
    job->entries = calloc(k, sizeof *job->entries);
    lr_assert(job->entries != NULL);
    for (raft_index i = n->applied_sent + 1; i <= commit; i++) {
        struct cache_entry *ce = cache_at(&n->cache, i);
        struct fsm_job_entry *e = &job->entries[job->n_entries++];
        e->index = i;
        e->term = ce->term;
        e->type = ce->type;
        e->len = ce->len;
        e->want_reply = writes_pending_has(n, i);
        e->reply_headroom = node_reply_headroom;
        members_dispatched(n, ce);
        if (ce->len > 0) {
            e->payload = malloc(ce->len);
            lr_assert(e->payload != NULL);
            memcpy(e->payload, ce->buf, ce->len);
        }
    }
    n->applied_sent = commit;
    n->io->fsm_submit(n->io->arg, job);
    node_cache_trim(n);
    snapshots_maybe_start(n);
}

static void applied(struct node *n, struct fsm_job *job)
{
    for (unsigned i = 0; i < job->n_entries; i++) {
        struct fsm_job_entry *e = &job->entries[i];
        n->applied = e->index;
        n->metrics.applied_total++;
        n->metrics.apply_errors_total += e->error_reply;
        if (e->checked) {
            check_applied(n, e->index, e->hash_rv, e->state_hash);
        }
        if (e->loaded != NULL) {
            load_adopt(n, e->loaded, e->index, false);
        }
        if (e->want_reply) {
            crash_point("apply.before_reply");
            writes_resolve(n, e->index, e->term, &e->reply);
        }
    }
}

void node_fsm_done(struct node *n, struct fsm_job *job)
{
    switch (job->type) {
        case FSM_JOB_APPLY:
            applied(n, job);
            transfer_poll(n); /* a transfer may wait for the writes in flight */
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                struct fsm_job_query *q = &job->queries[i];
                if (q->kind == FSM_QUERY_KEYSPACE) {
                    introspect_info_done(n, q);
                } else {
                    n->metrics.read_errors_total += q->reply.len > 0 && q->reply.data[0] == '-';
                    node_reply(n, q->tag, q->reply.data, q->reply.len);
                }
            }
            break;
        case FSM_JOB_RESTORE:
            if (job->loaded != NULL) {
                load_adopt(n, job->loaded, job->since, true);
            }
            snapshots_restored(n, job);
            break;
        case FSM_JOB_CHECK_SCRIPT:
            load_checked(n, job);
            break;
        case FSM_JOB_SNAPSHOT:
            /* Started: the world reports its file with node_snapshot_written(); a job that
             * could not start comes here with its status. */
            if (job->status != 0) {
                node_log(n, "snapshot not started: %s", job->errmsg);
                node_snapshot_written(n, 0, 0, NULL, job->status);
            }
            break;
        case FSM_JOB_STOP:
            break;
    }
    fsm_job_free(job);
}
