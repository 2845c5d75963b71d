/*
 * What the store's files share: the request and store structs, the on-disk record
 * layout and its byte order, and the few functions one file calls in another.
 * store.c: the API, open and close; store_writer.c: the writer thread and group commit;
 * store_apply.c: one request inside a write transaction; store_read.c: store_load and
 * store_read, on the loop thread.
 *
 * Layout. One LMDB environment in the data directory with two named databases:
 *   log:  key = the entry's index as 8 bytes big-endian, so LMDB's key order is log order
 *         and appends use MDB_APPEND; value = term (u64 BE), type (u32 BE) with its top
 *         bit (STORE_LOG_CHECKED) set, CRC-32C (u32 BE) of the key and of the value with
 *         these four bytes taken as zero, payload. A record whose type lacks the bit was
 *         written before records were checked: term, type, payload, read unchecked.
 *   meta: key = a name; value = a version byte (2; 1: written before records were checked,
 *         read unchecked), then big-endian fields, then for version 2 the CRC-32C (u32 BE)
 *         of the name and of all bytes before it:
 *         "hard_state" = term u64, vote u64;
 *         "config"     = count u8, then per server id u64, voter u8;
 *         "snapshot"   = index u64, term u64;
 *         "script"     = the script's identity (script_identity_encode, script_identity.c);
 *         "format"     = u8 2: written when the store is created, it says that every record
 *         carries its CRC, so that one without (or a version-1 meta record) is corruption,
 *         not an old record. A data directory made before checksums has no "format" and
 *         none is added: its records are read unchecked, and those written since checked.
 *         A record a build does not know is left alone; a data directory made before the
 *         "script" record existed simply has none (store_state.has_script false).
 * A record that fails its checksum (bits flipped on the disk or in memory on the way) is
 * STORE_ECORRUPT: never applied, served or voted from (issue: a stopped follower whose
 * data.mdb had two bytes flipped served the altered value).
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
    STORE_META_VERSION = 2,
    STORE_META_VERSION_UNCHECKED = 1,
    STORE_META_CRC_BYTES = 4,
    STORE_LOG_HEADER_BYTES = 16,           /* term u64 + type u32 + crc u32 */
    STORE_LOG_HEADER_BYTES_UNCHECKED = 12, /* term u64 + type u32 */
    /* Without the CRC: the sizes store_get_meta hands back. */
    STORE_HARD_STATE_BYTES = 1 + 8 + 8,
    STORE_SNAPSHOT_BYTES = 1 + 8 + 8,
    STORE_CONFIG_BYTES_MAX = 1 + 1 + RAFT_SERVERS_MAX * 9,
    STORE_SCRIPT_BYTES_MAX = 1 + SCRIPT_IDENTITY_BYTES_MAX,
};

#define STORE_LOG_CHECKED 0x80000000u /* in a log record's type: it has a CRC */

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
    /* Every record must carry its checksum: the store was created with them (its
     * "format" record). False for a data directory made before they existed, whose old
     * records are read unchecked (new ones are written checked all the same). */
    bool checked;
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
/* store_check.c. The CRC of log record value (len bytes, its crc field taken as zero)
 * under key. */
uint32_t store_log_crc(const unsigned char key[8], const unsigned char *value, size_t len);
/* The entry a log record holds (out->buf points into v), checked: 0 or STORE_ECORRUPT. */
int store_log_record(const struct store *s,
                     const MDB_val *k,
                     const MDB_val *v,
                     struct raft_entry *out);
/* Meta record name: data is its version byte and fields (len bytes), the CRC appended. */
int store_put_meta(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *data, size_t len);
/* Meta record name, checked, its CRC cut off (v->mv_size 0: absent). 0, STORE_EIO or
 * STORE_ECORRUPT (with errmsg). */
int store_get_meta(const struct store *s,
                   MDB_txn *txn,
                   const char *name,
                   MDB_val *v,
                   char *errmsg,
                   size_t errmsg_size);
/* At open, in the transaction that creates the databases: sets s->checked (see the top of
 * this file, "format"), writing the format record into a fresh store. */
int store_open_format(struct store *s, MDB_txn *txn, char *errmsg, size_t errmsg_size);

void store_errmsg(char *errmsg, size_t errmsg_size, const char *what, int rv);

/* Maps an LMDB error from the writer thread to a STORE_E* code, logging what failed.
 * MDB_MAP_FULL is logged once per failed transaction by the caller, not here
 * (store_writer.c). */
int store_write_fail(const char *what, int rv);
/* The status of a failure with errno err: STORE_ENOSPC for a full disk (ENOSPC, EDQUOT),
 * else STORE_EIO. */
int store_errno_status(int err);

/* Applies one request inside txn, in the order store.h gives (store_apply.c). */
int store_apply_request(struct store *s, MDB_txn *txn, const struct store_req *r);

/* The writer thread's body; arg is the store (store_writer.c). */
void *store_writer_main(void *arg);

/* Loop thread: runs the callbacks of every finished request, in submission order, and
 * frees the requests (store_writer.c). */
void store_run_done(struct store *s);

#endif
