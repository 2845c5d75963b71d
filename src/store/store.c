/*
 * The store: LMDB behind a writer thread (see store.h for the contract).
 *
 * Layout. One LMDB environment in the data directory with two named databases:
 *   log:  key = the entry's index as 8 bytes big-endian, so LMDB's key order is log order
 *         and appends use MDB_APPEND; value = term (u64 BE), type (u32 BE), payload.
 *   meta: key = a name; value = a version byte, then big-endian fields:
 *         "hard_state" = term u64, vote u64;
 *         "config"     = count u8, then per server id u64, voter u8;
 *         "snapshot"   = index u64, term u64;
 *         "script"     = the script's identity (script_identity_encode, snapfile.c).
 *         A record a build does not know is left alone; a data directory made before the
 *         "script" record existed simply has none (store_state.has_script false).
 *
 * Durability. The environment is opened with LMDB's default flags (no MDB_NOSYNC, no
 * MDB_NOMETASYNC, no MDB_WRITEMAP, no MDB_MAPASYNC), so a successful mdb_txn_commit has
 * flushed the data pages and then the meta page: commit = durable (RELIABILITY.md 4.1).
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
 * Threads and fork. Only the writer thread runs write transactions; the loop thread runs
 * read transactions (store_load, store_read). A forked child (the snapshot child) must
 * never call any store_* function nor touch the MDB_env in any way, must not run exit
 * handlers that would, and must leave with _exit(): LMDB forbids using an environment
 * after fork() ("Use an MDB_env* in the process which opened it, not after fork()").
 * LMDB gives a thread one read transaction at a time, so the fn of store_read must not
 * call store_read or store_load.
 */
#include "store/store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/assert.h"

enum {
    STORE_META_VERSION = 1,
    STORE_LOG_HEADER_BYTES = 12, /* term u64 + type u32 */
    STORE_HARD_STATE_BYTES = 1 + 8 + 8,
    STORE_SNAPSHOT_BYTES = 1 + 8 + 8,
    STORE_CONFIG_BYTES_MAX = 1 + 1 + RAFT_SERVERS_MAX * 9,
    STORE_SCRIPT_BYTES_MAX = 1 + SCRIPT_IDENTITY_BYTES_MAX,
};

_Static_assert(RAFT_SERVERS_MAX <= 255, "the config record counts servers in one byte");

/* One queued request with its own copy of everything store_submit() was given. */
struct store_req
{
    struct store_req *next;
    struct store_write w;
    struct raft_server servers[RAFT_SERVERS_MAX];
    struct script_identity script; /* w.script points here when set */
    struct raft_entry *entries;    /* w.n entries; payloads follow in the same block */
    store_done_cb done;
    void *arg;
    int status;
};

struct store
{
    uv_loop_t *loop;
    MDB_env *env;
    MDB_dbi log_dbi;
    MDB_dbi meta_dbi;
    uint64_t map_bytes;
    /* Writer thread only. Once a request fails, every later one fails with the same
     * status without being applied, until the store is reopened: what is durable stays a
     * prefix of the requests in submit order. Were a later request written after a failed
     * one, the disk could hold entries of a term whose hard state was never written, and
     * the node could not even boot from it (found by the whole-node simulator). */
    int failed_status;

    pthread_t thread;
    pthread_mutex_t mutex; /* guards everything below up to the loop-only fields */
    pthread_cond_t cond;
    struct store_req *pending_head; /* submitted, not yet taken by the writer */
    struct store_req *pending_tail;
    struct store_req *done_head; /* finished, callback not yet run */
    struct store_req *done_tail;
    bool stopping;
    struct store_stats stats;

    /* Loop thread only. */
    uv_async_t async;
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

const char *store_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "success";
        case STORE_EIO:
            return "I/O error in the store";
        case STORE_EFULL:
            return "the LMDB map is full: raise --map-size or take a snapshot";
        case STORE_ENOMEM:
            return "out of memory";
        case STORE_ECORRUPT:
            return "the store contradicts itself";
        case STORE_ECLOSED:
            return "the store is closing";
        case STORE_EINVAL:
            return "invalid argument";
        default:
            return "unknown store error";
    }
}

static void store_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t store_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void store_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t store_get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store_errmsg(char *errmsg, size_t errmsg_size, const char *what, int rv)
{
    if (errmsg != NULL && errmsg_size > 0) {
        snprintf(errmsg, errmsg_size, "store: %s: %s", what, mdb_strerror(rv));
    }
}

/* Maps an LMDB error from the writer thread to a STORE_E* code, logging what failed.
 * MDB_MAP_FULL is logged once per failed transaction by the caller, not here. */
static int store_write_fail(const char *what, int rv)
{
    lr_assert(rv != 0);
    if (rv == MDB_MAP_FULL || rv == MDB_TXN_FULL) {
        return STORE_EFULL;
    }
    fprintf(stderr, "store: %s: %s\n", what, mdb_strerror(rv));
    return STORE_EIO;
}

/* ------------------------------------------------------------------------------------- */
/* Writer thread                                                                           */
/* ------------------------------------------------------------------------------------- */

static int store_put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {len, (void *)data};
    int rv = mdb_put(txn, dbi, &k, &v, 0);
    if (rv != 0) {
        return store_write_fail("mdb_put of a meta record", rv);
    }
    return 0;
}

/* Deletes every log entry at index >= first (from the end, the cheap direction). */
static int store_truncate_from(MDB_txn *txn, MDB_dbi dbi, raft_index first)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log for truncation", rv);
    }
    int result = 0;
    for (;;) {
        MDB_val k, v;
        rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rv == MDB_NOTFOUND) {
            break;
        }
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_get(MDB_LAST) on the log", rv);
            break;
        }
        if (k.mv_size != 8) {
            fprintf(stderr, "store: a log key is %zu bytes, not 8\n", k.mv_size);
            result = STORE_ECORRUPT;
            break;
        }
        if (store_get_u64(k.mv_data) < first) {
            break;
        }
        rv = mdb_cursor_del(c, 0);
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_del while truncating the log", rv);
            break;
        }
    }
    mdb_cursor_close(c);
    return result;
}

/* Deletes every log entry at index <= last (from the start). */
static int store_compact_to(MDB_txn *txn, MDB_dbi dbi, raft_index last)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log for compaction", rv);
    }
    int result = 0;
    for (;;) {
        MDB_val k, v;
        rv = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (rv == MDB_NOTFOUND) {
            break;
        }
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_get(MDB_FIRST) on the log", rv);
            break;
        }
        if (k.mv_size != 8) {
            fprintf(stderr, "store: a log key is %zu bytes, not 8\n", k.mv_size);
            result = STORE_ECORRUPT;
            break;
        }
        if (store_get_u64(k.mv_data) > last) {
            break;
        }
        rv = mdb_cursor_del(c, 0);
        if (rv != 0) {
            result = store_write_fail("mdb_cursor_del while compacting the log", rv);
            break;
        }
    }
    mdb_cursor_close(c);
    return result;
}

/* The index of the last log entry, 0 if the log is empty. */
static int store_last_key(MDB_txn *txn, MDB_dbi dbi, raft_index *last)
{
    MDB_cursor *c;
    int rv = mdb_cursor_open(txn, dbi, &c);
    if (rv != 0) {
        return store_write_fail("mdb_cursor_open on the log", rv);
    }
    MDB_val k, v;
    rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    *last = 0;
    if (rv == MDB_NOTFOUND) {
        return 0;
    }
    if (rv != 0) {
        return store_write_fail("mdb_cursor_get(MDB_LAST) on the log", rv);
    }
    if (k.mv_size != 8) {
        fprintf(stderr, "store: a log key is %zu bytes, not 8\n", k.mv_size);
        return STORE_ECORRUPT;
    }
    *last = store_get_u64(k.mv_data);
    return 0;
}

static int store_write_entries(MDB_txn *txn, MDB_dbi dbi, const struct store_req *r)
{
    int rv = store_truncate_from(txn, dbi, r->w.first);
    if (rv != 0) {
        return rv;
    }
    raft_index last = 0;
    rv = store_last_key(txn, dbi, &last);
    if (rv != 0) {
        return rv;
    }
    if (last != 0 && last != r->w.first - 1) {
        fprintf(stderr,
                "store: entries from %llu would leave a gap after the log's last entry %llu\n",
                (unsigned long long)r->w.first, (unsigned long long)last);
        return STORE_EINVAL;
    }
    for (uint32_t i = 0; i < r->w.n; i++) {
        const struct raft_entry *e = &r->entries[i];
        unsigned char key[8];
        store_put_u64(key, r->w.first + i);
        MDB_val k = {sizeof key, key};
        MDB_val v = {STORE_LOG_HEADER_BYTES + (size_t)e->len, NULL};
        /* The keys now end below first, so every put is an append. */
        rv = mdb_put(txn, dbi, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rv != 0) {
            return store_write_fail("mdb_put(MDB_APPEND) of a log entry", rv);
        }
        unsigned char *p = v.mv_data;
        store_put_u64(p, e->term);
        store_put_u32(p + 8, e->type);
        if (e->len > 0) {
            memcpy(p + STORE_LOG_HEADER_BYTES, e->buf, e->len);
        }
    }
    return 0;
}

/* Applies one request inside txn, in the order store.h gives. */
static int store_apply(struct store *s, MDB_txn *txn, const struct store_req *r)
{
    int rv;
    if (r->w.hard_state) {
        unsigned char buf[STORE_HARD_STATE_BYTES];
        buf[0] = STORE_META_VERSION;
        store_put_u64(buf + 1, r->w.term);
        store_put_u64(buf + 9, r->w.vote);
        rv = store_put_meta(txn, s->meta_dbi, "hard_state", buf, sizeof buf);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.config) {
        unsigned char buf[STORE_CONFIG_BYTES_MAX];
        size_t len = 0;
        buf[len++] = STORE_META_VERSION;
        buf[len++] = (unsigned char)r->w.n_servers;
        for (unsigned i = 0; i < r->w.n_servers; i++) {
            store_put_u64(buf + len, r->servers[i].id);
            buf[len + 8] = r->servers[i].voter ? 1 : 0;
            len += 9;
        }
        rv = store_put_meta(txn, s->meta_dbi, "config", buf, len);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.script != NULL) {
        unsigned char buf[STORE_SCRIPT_BYTES_MAX];
        buf[0] = STORE_META_VERSION;
        size_t len = 1 + script_identity_encode(r->w.script, buf + 1);
        rv = store_put_meta(txn, s->meta_dbi, "script", buf, len);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.snapshot || r->w.snapshot_taken) {
        if (r->w.snapshot) {
            rv = mdb_drop(txn, s->log_dbi, 0);
            if (rv != 0) {
                return store_write_fail("mdb_drop of the log for a snapshot install", rv);
            }
        }
        unsigned char buf[STORE_SNAPSHOT_BYTES];
        buf[0] = STORE_META_VERSION;
        store_put_u64(buf + 1, r->w.snapshot_index);
        store_put_u64(buf + 9, r->w.snapshot_term);
        rv = store_put_meta(txn, s->meta_dbi, "snapshot", buf, sizeof buf);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.entries) {
        rv = store_write_entries(txn, s->log_dbi, r);
        if (rv != 0) {
            return rv;
        }
    }
    if (r->w.compact_to > 0) {
        rv = store_compact_to(txn, s->log_dbi, r->w.compact_to);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
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
    fprintf(stderr,
            "store: the LMDB map (%llu bytes) is full: %u request(s) failed with "
            "STORE_EFULL; raise --map-size or take a snapshot (reads keep working)\n",
            (unsigned long long)s->map_bytes, n_requests);
}

/*
 * Runs the requests [start, stop) in as few write transactions as possible: all of them in
 * one, unless one fails; then that transaction is aborted, the requests before the failed
 * one are redone in a fresh transaction (recursively), and the failed one and every later
 * one get its error (see failed_status). Sets every request's status. Counts commits in
 * *n_txns.
 */
static void store_run_range(struct store *s,
                            struct store_req *start,
                            struct store_req *stop,
                            uint64_t *n_txns)
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
            failed_rv = store_apply(s, txn, r);
            if (failed_rv != 0) {
                failed = r;
                break;
            }
        }
        if (failed == NULL) {
            rv = mdb_txn_commit(txn); /* frees txn, also on failure */
            int status = 0;
            if (rv != 0) {
                status = store_write_fail("mdb_txn_commit", rv);
                if (status == STORE_EFULL) {
                    store_log_full(s, store_count(start, stop));
                }
                s->failed_status = status;
            } else {
                (*n_txns)++;
            }
            store_set_status(start, stop, status);
            return;
        }
        mdb_txn_abort(txn);
        if (failed_rv == STORE_EFULL) {
            store_log_full(s, 1);
        }
        if (failed != start) {
            store_run_range(s, start, failed, n_txns);
        }
        if (s->failed_status == 0) {
            s->failed_status = failed_rv;
        }
        store_set_status(failed, stop, s->failed_status);
        return;
    }
}

static void *store_writer_main(void *arg)
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
        store_run_range(s, batch, NULL, &n_txns);

        lr_assert(pthread_mutex_lock(&s->mutex) == 0);
        s->stats.txns += n_txns;
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

/* ------------------------------------------------------------------------------------- */
/* Loop thread                                                                             */
/* ------------------------------------------------------------------------------------- */

/* Runs the callbacks of every finished request, in submission order. */
static void store_run_done(struct store *s)
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

static void store_async_cb(uv_async_t *handle)
{
    store_run_done(handle->data);
}

static int store_open_dbi(MDB_env *env,
                          MDB_dbi *log_dbi,
                          MDB_dbi *meta_dbi,
                          char *errmsg,
                          size_t errmsg_size)
{
    MDB_txn *txn;
    int rv = mdb_txn_begin(env, NULL, 0, &txn);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_txn_begin to create the databases", rv);
        return rv == MDB_MAP_FULL ? STORE_EFULL : STORE_EIO;
    }
    rv = mdb_dbi_open(txn, "log", MDB_CREATE, log_dbi);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_dbi_open(\"log\")", rv);
        goto err_txn;
    }
    rv = mdb_dbi_open(txn, "meta", MDB_CREATE, meta_dbi);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_dbi_open(\"meta\")", rv);
        goto err_txn;
    }
    rv = mdb_txn_commit(txn);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_txn_commit creating the databases", rv);
        return STORE_EIO;
    }
    return 0;

err_txn:
    mdb_txn_abort(txn);
    return STORE_EIO;
}

static void store_free_cb(uv_handle_t *handle)
{
    free(handle->data);
}

int store_open(struct store **out,
               uv_loop_t *loop,
               const struct store_options *o,
               char *errmsg,
               size_t errmsg_size)
{
    lr_assert(out != NULL && loop != NULL && o != NULL && o->dir != NULL);
    lr_assert(o->map_bytes > 0);
    int result;

    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errmsg, errmsg_size, "store: cannot create %s: %s", o->dir, strerror(errno));
        return STORE_EIO;
    }

    struct store *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errmsg, errmsg_size, "store: out of memory");
        return STORE_ENOMEM;
    }
    s->loop = loop;
    s->map_bytes = o->map_bytes;

    int rv = mdb_env_create(&s->env);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_create", rv);
        result = STORE_EIO;
        goto err_store;
    }
    rv = mdb_env_set_mapsize(s->env, (size_t)o->map_bytes);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_set_mapsize", rv);
        result = STORE_EIO;
        goto err_env;
    }
    rv = mdb_env_set_maxdbs(s->env, 2);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_set_maxdbs", rv);
        result = STORE_EIO;
        goto err_env;
    }
    /* Default flags on purpose: commit = fsync (see the top of this file). */
    rv = mdb_env_open(s->env, o->dir, 0, 0644);
    if (rv != 0) {
        if (errmsg != NULL && errmsg_size > 0) {
            snprintf(errmsg, errmsg_size, "store: mdb_env_open(%s): %s", o->dir, mdb_strerror(rv));
        }
        result = STORE_EIO;
        goto err_env;
    }
    result = store_open_dbi(s->env, &s->log_dbi, &s->meta_dbi, errmsg, errmsg_size);
    if (result != 0) {
        goto err_env;
    }

    rv = pthread_mutex_init(&s->mutex, NULL);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "store: pthread_mutex_init: %s", strerror(rv));
        result = STORE_ENOMEM;
        goto err_env;
    }
    rv = pthread_cond_init(&s->cond, NULL);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "store: pthread_cond_init: %s", strerror(rv));
        result = STORE_ENOMEM;
        goto err_mutex;
    }
    rv = uv_async_init(loop, &s->async, store_async_cb);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "store: uv_async_init: %s", uv_strerror(rv));
        result = STORE_EIO;
        goto err_cond;
    }
    s->async.data = s;
    rv = pthread_create(&s->thread, NULL, store_writer_main, s);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "store: pthread_create: %s", strerror(rv));
        result = STORE_ENOMEM;
        goto err_async;
    }
    *out = s;
    return 0;

err_async:
    /* The loop owns the handle until its close callback runs, which frees the store. */
    uv_close((uv_handle_t *)&s->async, store_free_cb);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mutex);
    mdb_env_close(s->env);
    return result;
err_cond:
    pthread_cond_destroy(&s->cond);
err_mutex:
    pthread_mutex_destroy(&s->mutex);
err_env:
    mdb_env_close(s->env);
err_store:
    free(s);
    return result;
}

/* Reads meta record name into buf; *len 0 if absent. */
static int store_get_meta(MDB_txn *txn,
                          MDB_dbi dbi,
                          const char *name,
                          MDB_val *v,
                          char *errmsg,
                          size_t errmsg_size)
{
    MDB_val k = {strlen(name), (void *)name};
    int rv = mdb_get(txn, dbi, &k, v);
    if (rv == MDB_NOTFOUND) {
        v->mv_size = 0;
        v->mv_data = NULL;
        return 0;
    }
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_get of a meta record", rv);
        return STORE_EIO;
    }
    if (v->mv_size < 1 || ((const unsigned char *)v->mv_data)[0] != STORE_META_VERSION) {
        snprintf(errmsg, errmsg_size, "store: meta record %s has an unknown version", name);
        return STORE_ECORRUPT;
    }
    return 0;
}

static int store_load_script(struct store *s,
                             MDB_txn *txn,
                             struct store_state *out,
                             char *errmsg,
                             size_t errmsg_size)
{
    MDB_val v;
    int rv = store_get_meta(txn, s->meta_dbi, "script", &v, errmsg, errmsg_size);
    if (rv != 0 || v.mv_size == 0) {
        return rv; /* an error, or none recorded */
    }
    if (script_identity_decode((const unsigned char *)v.mv_data + 1, v.mv_size - 1, &out->script) !=
        0) {
        snprintf(errmsg, errmsg_size, "store: the script record is malformed");
        return STORE_ECORRUPT;
    }
    out->has_script = true;
    return 0;
}

static int store_load_meta(struct store *s,
                           MDB_txn *txn,
                           struct store_state *out,
                           char *errmsg,
                           size_t errmsg_size)
{
    MDB_val v;
    int rv = store_get_meta(txn, s->meta_dbi, "hard_state", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        if (v.mv_size != STORE_HARD_STATE_BYTES) {
            snprintf(errmsg, errmsg_size, "store: the hard state is %zu bytes", v.mv_size);
            return STORE_ECORRUPT;
        }
        out->term = store_get_u64((const unsigned char *)v.mv_data + 1);
        out->vote = store_get_u64((const unsigned char *)v.mv_data + 9);
    }

    rv = store_get_meta(txn, s->meta_dbi, "config", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        const unsigned char *p = v.mv_data;
        if (v.mv_size < 2 || p[1] > RAFT_SERVERS_MAX || v.mv_size != 2 + (size_t)p[1] * 9) {
            snprintf(errmsg, errmsg_size, "store: the configuration record is malformed");
            return STORE_ECORRUPT;
        }
        out->has_config = true;
        out->n_servers = p[1];
        for (unsigned i = 0; i < out->n_servers; i++) {
            out->servers[i].id = store_get_u64(p + 2 + i * 9);
            out->servers[i].voter = p[2 + i * 9 + 8] != 0;
        }
    }

    rv = store_load_script(s, txn, out, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }

    rv = store_get_meta(txn, s->meta_dbi, "snapshot", &v, errmsg, errmsg_size);
    if (rv != 0) {
        return rv;
    }
    if (v.mv_size != 0) {
        if (v.mv_size != STORE_SNAPSHOT_BYTES) {
            snprintf(errmsg, errmsg_size, "store: the snapshot record is %zu bytes", v.mv_size);
            return STORE_ECORRUPT;
        }
        out->snapshot_index = store_get_u64((const unsigned char *)v.mv_data + 1);
        out->snapshot_term = store_get_u64((const unsigned char *)v.mv_data + 9);
    }
    return 0;
}

static int store_load_log(struct store *s,
                          MDB_txn *txn,
                          struct store_state *out,
                          char *errmsg,
                          size_t errmsg_size)
{
    out->first_index = out->snapshot_index + 1;
    out->last_index = out->snapshot_index;

    MDB_stat st;
    int rv = mdb_stat(txn, s->log_dbi, &st);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_stat of the log", rv);
        return STORE_EIO;
    }
    if (st.ms_entries == 0) {
        return 0;
    }
    MDB_cursor *c;
    rv = mdb_cursor_open(txn, s->log_dbi, &c);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_cursor_open on the log", rv);
        return STORE_EIO;
    }
    MDB_val k, v;
    raft_index first = 0;
    raft_index last = 0;
    rv = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (rv == 0 && k.mv_size == 8) {
        first = store_get_u64(k.mv_data);
        rv = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rv == 0 && k.mv_size == 8) {
            last = store_get_u64(k.mv_data);
        }
    }
    mdb_cursor_close(c);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_cursor_get on the log", rv);
        return STORE_EIO;
    }
    if (first == 0 || last < first || last - first + 1 != st.ms_entries) {
        snprintf(errmsg, errmsg_size,
                 "store: the log holds %zu entries between %llu and %llu: a gap or a bad key",
                 st.ms_entries, (unsigned long long)first, (unsigned long long)last);
        return STORE_ECORRUPT;
    }
    /* first > snapshot_index + 1 is not checked here: a compaction and the record of the
     * snapshot that allows it are separate requests when a node records snapshot_taken
     * after compacting. The node checks the start against the newest snapshot file
     * (snapfile_latest). */
    out->first_index = first;
    out->last_index = last;
    return 0;
}

int store_load(struct store *s, struct store_state *out, char *errmsg, size_t errmsg_size)
{
    lr_assert(s != NULL && out != NULL);
    memset(out, 0, sizeof *out);

    MDB_txn *txn;
    int rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_txn_begin (read) for store_load", rv);
        return STORE_EIO;
    }
    int result = store_load_meta(s, txn, out, errmsg, errmsg_size);
    if (result == 0) {
        result = store_load_log(s, txn, out, errmsg, errmsg_size);
    }
    mdb_txn_abort(txn);
    if (result != 0) {
        memset(out, 0, sizeof *out);
    }
    return result;
}

int store_read(struct store *s,
               raft_index first,
               raft_index last,
               int (*fn)(void *arg, raft_index index, const struct raft_entry *e),
               void *arg)
{
    lr_assert(s != NULL && fn != NULL);
    if (first > last) {
        return 0;
    }
    MDB_txn *txn;
    int rv = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rv != 0) {
        fprintf(stderr, "store: mdb_txn_begin (read) for store_read: %s\n", mdb_strerror(rv));
        return STORE_EIO;
    }
    MDB_cursor *c;
    rv = mdb_cursor_open(txn, s->log_dbi, &c);
    if (rv != 0) {
        fprintf(stderr, "store: mdb_cursor_open for store_read: %s\n", mdb_strerror(rv));
        mdb_txn_abort(txn);
        return STORE_EIO;
    }
    int result = 0;
    unsigned char key[8];
    store_put_u64(key, first);
    MDB_val k = {sizeof key, key};
    MDB_val v;
    MDB_cursor_op op = MDB_SET_KEY;
    for (raft_index i = first;; i++) {
        rv = mdb_cursor_get(c, &k, &v, op);
        op = MDB_NEXT;
        if (rv == MDB_NOTFOUND) {
            fprintf(stderr, "store: store_read: entry %llu is missing\n", (unsigned long long)i);
            result = STORE_ECORRUPT;
            break;
        }
        if (rv != 0) {
            fprintf(stderr, "store: mdb_cursor_get in store_read: %s\n", mdb_strerror(rv));
            result = STORE_EIO;
            break;
        }
        if (k.mv_size != 8 || store_get_u64(k.mv_data) != i || v.mv_size < STORE_LOG_HEADER_BYTES ||
            v.mv_size - STORE_LOG_HEADER_BYTES > UINT32_MAX) {
            fprintf(stderr, "store: store_read: entry %llu is missing or malformed\n",
                    (unsigned long long)i);
            result = STORE_ECORRUPT;
            break;
        }
        const unsigned char *p = v.mv_data;
        struct raft_entry e = {
            .term = store_get_u64(p),
            .type = store_get_u32(p + 8),
            .len = (uint32_t)(v.mv_size - STORE_LOG_HEADER_BYTES),
            .buf = p + STORE_LOG_HEADER_BYTES,
        };
        result = fn(arg, i, &e);
        if (result != 0 || i == last) {
            break;
        }
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return result;
}

int store_submit(struct store *s, const struct store_write *w, store_done_cb done, void *arg)
{
    lr_assert(s != NULL && w != NULL && done != NULL);
    if (s->closing) {
        return STORE_ECLOSED;
    }
    if (w->config && (w->n_servers > RAFT_SERVERS_MAX || (w->n_servers > 0 && !w->servers))) {
        return STORE_EINVAL;
    }
    if (w->entries && (w->first == 0 || (w->n > 0 && w->e == NULL))) {
        return STORE_EINVAL;
    }
    if ((w->snapshot || w->snapshot_taken) && (w->snapshot_index == 0 || w->snapshot_term == 0)) {
        return STORE_EINVAL;
    }
    if (w->script != NULL &&
        (w->script->name[0] == '\0' ||
         strnlen(w->script->name, sizeof w->script->name) > SCRIPT_NAME_BYTES_MAX)) {
        return STORE_EINVAL; /* it would not load back (script_identity_decode) */
    }

    /* One block: the request, its entries, their payloads. */
    size_t n = w->entries ? w->n : 0;
    size_t bytes = sizeof(struct store_req) + n * sizeof(struct raft_entry);
    for (size_t i = 0; i < n; i++) {
        if (w->e[i].len > 0 && w->e[i].buf == NULL) {
            return STORE_EINVAL;
        }
        bytes += w->e[i].len;
    }
    struct store_req *r = malloc(bytes);
    if (r == NULL) {
        return STORE_ENOMEM;
    }
    memset(r, 0, sizeof *r);
    r->w = *w;
    r->w.servers = NULL;
    r->w.e = NULL;
    if (w->config && w->n_servers > 0) {
        memcpy(r->servers, w->servers, w->n_servers * sizeof w->servers[0]);
    }
    if (w->script != NULL) {
        r->script = *w->script;
        r->w.script = &r->script;
    }
    r->entries = (struct raft_entry *)(r + 1);
    unsigned char *payload = (unsigned char *)(r->entries + n);
    for (size_t i = 0; i < n; i++) {
        r->entries[i] = w->e[i];
        r->entries[i].buf = payload;
        if (w->e[i].len > 0) {
            memcpy(payload, w->e[i].buf, w->e[i].len);
        }
        payload += w->e[i].len;
    }
    r->done = done;
    r->arg = arg;

    lr_assert(pthread_mutex_lock(&s->mutex) == 0);
    if (s->pending_tail != NULL) {
        s->pending_tail->next = r;
    } else {
        s->pending_head = r;
    }
    s->pending_tail = r;
    lr_assert(pthread_cond_signal(&s->cond) == 0);
    lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
    return 0;
}

void store_stats(struct store *s, struct store_stats *out)
{
    lr_assert(s != NULL && out != NULL);
    lr_assert(pthread_mutex_lock(&s->mutex) == 0);
    *out = s->stats;
    lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
}

static void store_async_close_cb(uv_handle_t *handle)
{
    struct store *s = handle->data;
    /* The writer is gone: whatever it finished last still needs its callback. */
    store_run_done(s);
    lr_assert(s->pending_head == NULL && s->done_head == NULL);
    mdb_env_close(s->env);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mutex);
    void (*closed)(void *arg) = s->closed;
    void *closed_arg = s->closed_arg;
    free(s);
    if (closed != NULL) {
        closed(closed_arg);
    }
}

void store_close(struct store *s, void (*closed)(void *arg), void *arg)
{
    lr_assert(s != NULL);
    lr_assert(!s->closing);
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;

    lr_assert(pthread_mutex_lock(&s->mutex) == 0);
    s->stopping = true;
    lr_assert(pthread_cond_signal(&s->cond) == 0);
    lr_assert(pthread_mutex_unlock(&s->mutex) == 0);
    /* The writer drains the queue first; this waits for those commits. */
    lr_assert(pthread_join(s->thread, NULL) == 0);

    uv_close((uv_handle_t *)&s->async, store_async_close_cb);
}
