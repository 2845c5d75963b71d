/*
 * The store's writer thread (see store.h for the contract).
 *
 * Group commit. The loop thread queues requests; the writer thread takes every request
 * queued at that moment and applies them in one write transaction, so one fsync covers
 * the batch. Completions go back to the loop through a uv_async_t, in submission order.
 *
 * Map full. MDB_MAP_FULL makes the transaction unusable, so it is aborted; the requests
 * before the one that did not fit are redone in a fresh transaction, the one that did not
 * fit fails with STORE_EFULL, and the ones after it are tried again in a fresh transaction.
 * Reads keep working throughout.
 *
 * Sticky failure. Once a request fails, every later one fails with the same status
 * (struct store's failed_status, store_internal.h).
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store/store_internal.h"
#include "util/assert.h"
#include "util/crash_point.h"

int store_errno_status(int err)
{
    return err == ENOSPC || err == EDQUOT ? STORE_ENOSPC : STORE_EIO;
}

int store_write_fail(const char *what, int rv)
{
    lr_assert(rv != 0);
    if (rv == MDB_MAP_FULL || rv == MDB_TXN_FULL) {
        return STORE_EFULL;
    }
    int status = store_errno_status(rv); /* LMDB passes a failed write's errno on */
    if (status == STORE_ENOSPC) {
        lr_log(
            "store: %s: the disk is full (%s): free space on the data directory's file "
            "system, then restart the node",
            what, mdb_strerror(rv));
    } else {
        lr_log("store: %s: %s", what, mdb_strerror(rv));
    }
    return status;
}

static void store_set_status(struct store_req *start, struct store_req *stop, int status)
{
    for (struct store_req *r = start; r != stop; r = r->next) {
        r->status = status;
    }
}

static unsigned store_count(struct store_req *start, struct store_req *stop)
{
    unsigned n = 0;
    for (struct store_req *r = start; r != stop; r = r->next) {
        n++;
    }
    return n;
}

static void store_log_full(const struct store *s, unsigned n_requests)
{
    lr_log(
        "store: the LMDB map (%llu bytes) is full: %u request(s) failed with "
        "STORE_EFULL; raise --map-size or take a snapshot (reads keep working)",
        (unsigned long long)s->map_bytes, n_requests);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* mdb_txn_commit, its duration (the fsync's, mostly) added to *commit_seconds. */
static int commit_timed(MDB_txn *txn, struct histogram *commit_seconds)
{
    double began = seconds_now();
    int rv = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (rv == 0) {
        histogram_observe(commit_seconds, seconds_now() - began);
    }
    return rv;
}

/*
 * Runs the requests [start, stop) in as few write transactions as possible: all of them in
 * one, unless one fails; then that transaction is aborted, the requests before the failed
 * one are redone in a fresh transaction (recursively), and the failed one and every later
 * one get its error (see failed_status). Sets every request's status. Counts commits in
 * *n_txns and times them in *commit_seconds (the caller's, added to the stats under the
 * mutex afterwards).
 */
static void store_run_range(struct store *s,
                            struct store_req *start,
                            struct store_req *stop,
                            uint64_t *n_txns,
                            struct histogram *commit_seconds)
{
    while (start != stop) {
        if (s->failed_status != 0) {
            store_set_status(start, stop, s->failed_status);
            return;
        }
        MDB_txn *txn;
        int rv = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rv != 0) {
            int status = store_write_fail("mdb_txn_begin (write)", rv);
            if (status == STORE_EFULL) {
                store_log_full(s, store_count(start, stop));
            }
            s->failed_status = status;
            store_set_status(start, stop, status);
            return;
        }
        struct store_req *failed = NULL;
        int failed_rv = 0;
        for (struct store_req *r = start; r != stop; r = r->next) {
            failed_rv = store_apply_request(s, txn, r);
            if (failed_rv != 0) {
                failed = r;
                break;
            }
        }
        if (failed == NULL) {
            crash_point("store.before_commit");
            rv = commit_timed(txn, commit_seconds);
            int status = 0;
            if (rv != 0) {
                status = store_write_fail("mdb_txn_commit", rv);
                if (status == STORE_EFULL) {
                    store_log_full(s, store_count(start, stop));
                }
                s->failed_status = status;
            } else {
                (*n_txns)++;
                crash_point("store.after_commit");
            }
            store_set_status(start, stop, status);
            return;
        }
        mdb_txn_abort(txn);
        if (failed_rv == STORE_EFULL) {
            store_log_full(s, 1);
        }
        if (failed != start) {
            store_run_range(s, start, failed, n_txns, commit_seconds);
        }
        if (s->failed_status == 0) {
            s->failed_status = failed_rv;
        }
        store_set_status(failed, stop, s->failed_status);
        return;
    }
}

void *store_writer_main(void *arg)
{
    struct store *s = arg;
    for (;;) {
        lr_assert(pthread_mutex_lock(&s->mutex) == 0);
        while (s->pending_head == NULL && !s->stopping) {
            lr_assert(pthread_cond_wait(&s->cond, &s->mutex) == 0);
        }
        struct store_req *batch = s->pending_head;
        struct store_req *batch_tail = s->pending_tail;
        s->pending_head = NULL;
        s->pending_tail = NULL;
        lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
        if (batch == NULL) {
            break; /* stopping, and the queue is drained */
        }

        uint64_t n_txns = 0;
        struct histogram commits;
        histogram_init(&commits, histogram_latency_bounds, histogram_latency_bounds_n);
        store_run_range(s, batch, NULL, &n_txns, &commits);

        lr_assert(pthread_mutex_lock(&s->mutex) == 0);
        s->stats.txns += n_txns;
        histogram_merge(&s->stats.commit_seconds, &commits);
        s->stats.batches++;
        s->stats.requests += store_count(batch, NULL);
        if (s->done_tail != NULL) {
            s->done_tail->next = batch;
        } else {
            s->done_head = batch;
        }
        s->done_tail = batch_tail;
        lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
        lr_assert(uv_async_send(&s->async) == 0);
    }
    return NULL;
}

/* Runs the callbacks of every finished request, in submission order. */
void store_run_done(struct store *s)
{
    lr_assert(pthread_mutex_lock(&s->mutex) == 0);
    struct store_req *r = s->done_head;
    s->done_head = NULL;
    s->done_tail = NULL;
    lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
    while (r != NULL) {
        struct store_req *next = r->next;
        r->done(r->arg, r->status);
        free(r);
        r = next;
    }
}
