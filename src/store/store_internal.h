/*
 * What the store's files share: the request and store structs, the on-disk record
 * layout and its byte order, and the few functions one file calls in another.
 * store.c: the API, open and close; store_writer.c: the writer thread and group commit;
 * store_apply.c: one request inside a write transaction; store_read.c: store_load and
 * store_read, on the loop thread.
 *
 * Layout. One LMDB environment in the data directory with two named databases:
 *   log:  key = the entry's index as 8 bytes big-endian, so LMDB's key order is log order
 *         and appends use MDB_APPEND; value = term (u64 BE), type (u32 BE), payload.
 *   meta: key = a name; value = a version byte, then big-endian fields:
 *         "hard_state" = term u64, vote u64;
 *         "config"     = count u8, then per server id u64, voter u8;
 *         "snapshot"   = index u64, term u64;
 *         "script"     = the script's identity (script_identity_encode, script_identity.c).
 *         A record a build does not know is left alone; a data directory made before the
 *         "script" record existed simply has none (store_state.has_script false).
 */
#ifndef LUARAFT_STORE_STORE_INTERNAL_H
#define LUARAFT_STORE_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"
#include "util/log.h"

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

static inline void store_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t store_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static inline void store_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint32_t store_get_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Writes "store: what: <LMDB's reason>" into errmsg (store.c). */
void store_errmsg(char *errmsg, size_t errmsg_size, const char *what, int rv);

/* Maps an LMDB error from the writer thread to a STORE_E* code, logging what failed.
 * MDB_MAP_FULL is logged once per failed transaction by the caller, not here
 * (store_writer.c). */
int store_write_fail(const char *what, int rv);

/* Applies one request inside txn, in the order store.h gives (store_apply.c). */
int store_apply_request(struct store *s, MDB_txn *txn, const struct store_req *r);

/* The writer thread's body; arg is the store (store_writer.c). */
void *store_writer_main(void *arg);

/* Loop thread: runs the callbacks of every finished request, in submission order, and
 * frees the requests (store_writer.c). */
void store_run_done(struct store *s);

#endif
