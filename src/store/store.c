/*
 * The store: LMDB behind a writer thread (see store.h for the contract). This file holds
 * the API: open, submit, stats, close. The record layout is in store_internal.h, the
 * writer thread and group commit in store_writer.c, one request's transaction work in
 * store_apply.c, store_load and store_read in store_read.c.
 *
 * Durability. The environment is opened with LMDB's default flags (no MDB_NOSYNC, no
 * MDB_NOMETASYNC, no MDB_WRITEMAP, no MDB_MAPASYNC), so a successful mdb_txn_commit has
 * flushed the data pages and then the meta page: commit = durable (LMDB's own
 * documentation of mdb_txn_commit and MDB_NOSYNC). The data directory and the one above
 * it are fsynced once the environment is open, so that data.mdb and the directory itself
 * are there after a power loss (POSIX makes a new name durable only with an fsync of its
 * directory). The one exception is a test-only switch: LUARAFT_TEST_NO_FSYNC=1 opens the
 * environment with MDB_NOSYNC, so that spec/power/ can show it catches a missing fsync.
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
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/snapfile_internal.h"
#include "store/store_internal.h"
#include "util/assert.h"

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
        case STORE_ENOSPC:
            return "the disk is full";
        default:
            return "unknown store error";
    }
}

void store_errmsg(char *errmsg, size_t errmsg_size, const char *what, int rv)
{
    if (errmsg != NULL && errmsg_size > 0) {
        snprintf(errmsg, errmsg_size, "store: %s: %s", what, mdb_strerror(rv));
    }
}

static void store_async_cb(uv_async_t *handle)
{
    store_run_done(handle->data);
}

static int store_open_dbi(struct store *s, char *errmsg, size_t errmsg_size)
{
    MDB_env *env = s->env;
    MDB_dbi *log_dbi = &s->log_dbi;
    MDB_dbi *meta_dbi = &s->meta_dbi;
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
    rv = store_open_format(s, txn, errmsg, errmsg_size);
    if (rv != 0) {
        mdb_txn_abort(txn);
        return rv;
    }
    rv = mdb_txn_commit(txn);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_txn_commit creating the databases", rv);
        return rv == MDB_MAP_FULL ? STORE_EFULL : store_errno_status(rv);
    }
    return 0;

err_txn:
    mdb_txn_abort(txn);
    return STORE_EIO;
}

/* The test-only switch (see the top of this file), said loudly at every open. */
static bool store_test_no_fsync(void)
{
    const char *v = getenv("LUARAFT_TEST_NO_FSYNC");
    if (v == NULL || strcmp(v, "1") != 0) {
        return false;
    }
    lr_log(
        "store: LUARAFT_TEST_NO_FSYNC=1: TEST ONLY: LMDB opened with MDB_NOSYNC, commits "
        "are NOT durable; a power loss loses acknowledged writes; never run a real node so");
    return true;
}

/* fsyncs the directory that holds path (which names a directory): its entry for path is
 * durable then. 0 (also when that directory cannot be read), or -1 with errno set. */
static int fsync_parent(const char *path)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/') {
        parent[--len] = '\0'; /* a trailing slash names path itself */
    }
    char *slash = strrchr(parent, '/');
    if (slash == NULL) {
        snprintf(parent, sizeof parent, ".");
    } else {
        slash[slash == parent ? 1 : 0] = '\0';
    }
    if (snapfile_fsync_dir(parent) != 0) {
        /* A parent this node may write in but not read cannot be opened to be fsynced:
         * nothing better can be done there, and refusing to start would help no one. */
        return errno == EACCES ? 0 : -1;
    }
    return 0;
}

/* fsyncs dir (its new names: data.mdb) and the directory above it (dir's own name). */
static int store_fsync_dirs(const char *dir, char *errmsg, size_t errmsg_size)
{
    if (snapfile_fsync_dir(dir) != 0 || fsync_parent(dir) != 0) {
        int err = errno;
        snprintf(errmsg, errmsg_size, "store: cannot fsync %s or the directory above it: %s", dir,
                 strerror(err));
        return store_errno_status(err);
    }
    return 0;
}

static void store_free_cb(uv_handle_t *handle)
{
    free(handle->data);
}

/* Creates and opens the LMDB environment with its two databases. On failure the
 * environment is closed again; s itself is the caller's. */
static int store_open_env(struct store *s,
                          const struct store_options *o,
                          char *errmsg,
                          size_t errmsg_size)
{
    int rv = mdb_env_create(&s->env);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_create", rv);
        return STORE_EIO;
    }
    int result = STORE_EIO;
    rv = mdb_env_set_mapsize(s->env, (size_t)o->map_bytes);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_set_mapsize", rv);
        goto err_env;
    }
    rv = mdb_env_set_maxdbs(s->env, 2);
    if (rv != 0) {
        store_errmsg(errmsg, errmsg_size, "mdb_env_set_maxdbs", rv);
        goto err_env;
    }
    /* Default flags on purpose: commit = fsync (see the top of this file). */
    rv = mdb_env_open(s->env, o->dir, store_test_no_fsync() ? MDB_NOSYNC : 0, 0644);
    if (rv != 0) {
        if (errmsg != NULL && errmsg_size > 0) {
            snprintf(errmsg, errmsg_size, "store: mdb_env_open(%s): %s%s", o->dir, mdb_strerror(rv),
                     store_errno_status(rv) == STORE_ENOSPC ? " (the disk is full)" : "");
        }
        result = rv == MDB_MAP_FULL ? STORE_EFULL : store_errno_status(rv);
        goto err_env;
    }
    result = store_open_dbi(s, errmsg, errmsg_size);
    if (result == 0) {
        result = store_fsync_dirs(o->dir, errmsg, errmsg_size);
    }
    if (result != 0) {
        goto err_env;
    }
    return 0;

err_env:
    mdb_env_close(s->env);
    return result;
}

/* Starts the writer thread and the async handle its completions come back through. On
 * failure everything is released, s and its environment included. */
static int store_start_writer(struct store *s, char *errmsg, size_t errmsg_size)
{
    int result;
    int rv = pthread_mutex_init(&s->mutex, NULL);
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
    rv = uv_async_init(s->loop, &s->async, store_async_cb);
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
    free(s);
    return result;
}

/* mkdir -p: creates dir and the directories above it that are missing, each made durable
 * (its parent fsynced). Returns 0, or -1 with errno set. */
static int make_dirs(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        errno = len == 0 ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char c = path[i];
        path[i] = '\0';
        if (path[i - 1] != '/') {
            if (mkdir(path, 0755) == 0) {
                if (fsync_parent(path) != 0) { /* so that the new name is durable */
                    return -1;
                }
            } else if (errno != EEXIST) {
                return -1;
            }
        }
        path[i] = c;
    }
    return 0;
}

int store_open(struct store **out,
               uv_loop_t *loop,
               const struct store_options *o,
               char *errmsg,
               size_t errmsg_size)
{
    lr_assert(out != NULL && loop != NULL && o != NULL && o->dir != NULL);
    lr_assert(o->map_bytes > 0);

    if (make_dirs(o->dir) != 0) {
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
    histogram_init(&s->stats.commit_seconds, histogram_latency_bounds, histogram_latency_bounds_n);

    int result = store_open_env(s, o, errmsg, errmsg_size);
    if (result != 0) {
        free(s);
        return result;
    }
    result = store_start_writer(s, errmsg, errmsg_size); /* releases s if it fails */
    if (result != 0) {
        return result;
    }
    *out = s;
    return 0;
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
