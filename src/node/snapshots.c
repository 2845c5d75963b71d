/*
 * Snapshots (Raft paper §7): taken when the log since the last one grows past
 * --snapshot-entries entries or --snapshot-bytes payload bytes, or on RAFT.SNAPSHOT; the
 * fsm thread forks a child that writes the state (copy-on-write, as Redis does for its
 * background saves) and the world reports the finished file. Then the core learns of it,
 * the log is compacted behind it (keeping --snapshot-trailing entries for followers that
 * lag a little) and older files are pruned. A snapshot that fails is retried with a
 * doubling back-off, never on every apply.
 *
 * A snapshot received from a leader is installed: its file renamed into place (durable
 * before the store records the install), then restored into the fsm behind every apply
 * already handed over.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/job.h"
#include "node/internal.h"
#include "util/assert.h"
#include "util/crash_point.h"

static void start(struct node *n)
{
    lr_assert(!n->snap.running);
    struct fsm_job *job = fsm_job_new(FSM_JOB_SNAPSHOT);
    lr_assert(job != NULL);
    snprintf(job->path, sizeof job->path, "%s", n->c->data_dir);
    job->members = members_snapshot_record(n, &job->members_len);
    n->snap.running = true;
    n->metrics.snapshot_started = metrics_now_s();
    n->io->fsm_submit(n->io->arg, job);
}

static bool due(struct node *n)
{
    const struct node_config *c = n->c;
    raft_index since = n->applied_sent - n->snap.index;
    if (since == 0) {
        return false;
    }
    if (c->snapshot_entries > 0 && since >= c->snapshot_entries) {
        return true;
    }
    /* The log since the last snapshot, in bytes too (in memory or not; the trailing
     * entries kept behind the snapshot do not count, or it would fire on every batch). */
    return c->snapshot_bytes > 0 && n->cache.log_bytes - n->snap.log_bytes_at >= c->snapshot_bytes;
}

void snapshots_maybe_start(struct node *n)
{
    if (n->stopping || n->snap.running || n->dur.store_failed || !due(n)) {
        return;
    }
    if (n->snap.retry_at_ms != 0 && node_now(n) < n->snap.retry_at_ms) {
        return;
    }
    start(n);
}

void snapshots_want(struct node *n)
{
    if (!n->snap.running && !n->stopping) {
        start(n);
    }
}

void snapshots_prune(struct node *n)
{
    if (n->bk.copying == 0) {
        n->io->snapshot_prune(n->io->arg, n->snap.index);
    }
}

void snapshots_request(struct node *n, struct server_request *req)
{
    if (!n->snap.running && n->applied_sent <= n->snap.index) {
        char text[96];
        snprintf(text, sizeof text, "+OK snapshot at index %" PRIu64 " is up to date\r\n",
                 n->snap.index);
        node_reply_text(n, req, text);
        return;
    }
    VEC_RESERVE(n->snap.waiters, n->snap.waiters_n, n->snap.waiters_cap, 1);
    n->snap.waiters[n->snap.waiters_n++] = req;
    if (!n->snap.running) {
        start(n);
    }
}

static void answer_waiters(struct node *n, const char *text)
{
    for (size_t i = 0; i < n->snap.waiters_n; i++) {
        node_reply_text(n, n->snap.waiters[i], text);
    }
    n->snap.waiters_n = 0;
}

/* The core takes the snapshot; the log behind it is compacted. Returns false if the core
 * refused it. */
static bool adopt(struct node *n, raft_index index, raft_term term, const char *path)
{
    raft_index compact_to = index > n->c->snapshot_trailing ? index - n->c->snapshot_trailing : 0;
    struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
    ev.snapshot_taken.index = index;
    ev.snapshot_taken.term = term;
    ev.snapshot_taken.compact_to = compact_to;
    int rv = node_step(n, &ev);
    if (rv != 0) {
        node_log(n, "snapshot at index %" PRIu64 " refused by the core: %s", index,
                 raft_strerror(rv));
        return false;
    }
    snprintf(n->snap.path, sizeof n->snap.path, "%s", path);
    n->snap.index = index;
    n->snap.term = term;
    crash_point("snapshot.before_compact");
    if (compact_to > 0 && !n->dur.store_failed) {
        struct store_write w;
        memset(&w, 0, sizeof w);
        /* The store records the snapshot the compacted log now relies on: were the file
         * lost or damaged, boot must refuse (boot.c, check_log) rather than start from an
         * empty log as if it had never held the entries compacted away. */
        w.snapshot_taken = true;
        w.snapshot_index = index;
        w.snapshot_term = term;
        w.compact_to = compact_to;
        int crv = durability_submit_plain(n, &w);
        if (crv != 0) {
            node_log(n, "log compaction not submitted: %s", store_strerror(crv));
        }
        cache_compact(&n->cache, compact_to);
    }
    n->snap.log_bytes_at = cache_bytes_upto(&n->cache, index);
    snapshots_prune(n);
    node_log(n,
             "snapshot taken at index %" PRIu64 " (term %" PRIu64 "), log compacted up to %" PRIu64,
             index, term, compact_to);
    return true;
}

static void backoff(struct node *n)
{
    struct snapshots *s = &n->snap;
    s->backoff_ms = s->backoff_ms == 0 ? node_snapshot_backoff_ms_min : s->backoff_ms * 2;
    if (s->backoff_ms > node_snapshot_backoff_ms_max) {
        s->backoff_ms = node_snapshot_backoff_ms_max;
    }
    s->retry_at_ms = node_now(n) + s->backoff_ms;
    node_log(n, "snapshot failed; the next automatic one in %" PRIu64 " ms (see the message above)",
             s->backoff_ms);
}

void node_snapshot_written(struct node *n,
                           raft_index index,
                           raft_term term,
                           const char *path,
                           int status)
{
    n->snap.running = false;
    if (n->stopping) {
        return;
    }
    bool ok = status == 0;
    if (ok && index > n->snap.index) {
        ok = adopt(n, index, term, path);
    }
    metrics_snapshot_done(n, ok ? path : NULL);
    if (!ok) {
        backoff(n);
        answer_waiters(n, "-ERR snapshot failed; see the node's log\r\n");
        backups_snapshot_done(n, false);
        return;
    }
    n->snap.backoff_ms = 0;
    n->snap.retry_at_ms = 0;
    char text[96];
    snprintf(text, sizeof text, "+OK snapshot at index %" PRIu64 "\r\n", n->snap.index);
    answer_waiters(n, text);
    backups_snapshot_done(n, true);
}

void snapshots_install(struct node *n, const struct raft_update *u)
{
    raft_index index = u->snapshot.index;
    raft_term term = u->snapshot.term;
    if (n->snap.incoming == NULL) {
        node_fatal(n, "%s", "the core installs a snapshot that did not come with a file");
        return;
    }
    char path[node_snap_path_bytes_max];
    int rv = n->io->snapshot_install(n->io->arg, n->snap.incoming, index, term, path, sizeof path);
    if (rv != 0) {
        node_fatal(n, "cannot install the received snapshot %s: %s", n->snap.incoming,
                   strerror(-rv));
        return;
    }
    n->snap.incoming_used = true;
    n->metrics.install_started = metrics_now_s();
    snprintf(n->snap.path, sizeof n->snap.path, "%s", path);
    cache_reset(&n->cache, index + 1);
    n->snap.log_bytes_at = 0;
    writes_resolve(n, index, 0, NULL);
    n->snap.index = index;
    n->snap.term = term;
    /* The restore is queued behind every apply already handed over, so the state it
     * replaces is whole, and reads queued after it see the snapshot. */
    struct fsm_job *job = fsm_job_new(FSM_JOB_RESTORE);
    lr_assert(job != NULL);
    snprintf(job->path, sizeof job->path, "%s", n->snap.path);
    job->index = index;
    job->term = term;
    n->io->fsm_submit(n->io->arg, job);
    n->applied_sent = index;
    node_log(n, "installing snapshot at index %" PRIu64 " (term %" PRIu64 ") from node %" PRIu64,
             index, term, u->snapshot.from);
}

void snapshots_restored(struct node *n, const struct fsm_job *job)
{
    if (job->status != 0) {
        node_fatal(n, "snapshot restore failed: %s", job->errmsg);
        return;
    }
    n->applied = job->index;
    if (n->metrics.install_started > 0) { /* not the restore at start-up */
        histogram_observe(&n->metrics.install_seconds,
                          metrics_now_s() - n->metrics.install_started);
        n->metrics.install_started = 0;
    }
    /* Older files can go once the fsm holds this one: not before, as a restore still
     * queued would find its file gone (found by the whole-node simulator). */
    if (n->bk.copying == 0) {
        n->io->snapshot_prune(n->io->arg, job->index);
    }
    node_log(n, "snapshot installed at index %" PRIu64, job->index);
}

void snapshots_stop(struct node *n)
{
    answer_waiters(n, node_down_reply);
    free(n->snap.waiters);
    n->snap.waiters = NULL;
    n->snap.waiters_cap = 0;
}

void snapshots_free(struct node *n)
{
    free(n->snap.waiters);
    n->snap.waiters = NULL;
    n->snap.waiters_n = n->snap.waiters_cap = 0;
}
