/*
 * The node's durable state in LMDB: log entries keyed by big-endian index, the hard state
 * (term, vote), the configuration, the identity of the script the data directory belongs
 * to (struct script_identity, snapfile.h), and the metadata of the newest snapshot (the
 * snapshot bytes themselves live in files, see snapfile.h).
 *
 * Writes run on a thread of the store's own, one LMDB write transaction per batch of
 * requests and one fsync for the batch (group commit), in submission order; the loop
 * thread never waits on the disk. Each request's completion callback runs on the loop
 * thread, in submission order. Reads (store_load, store_read) run on the calling thread
 * in their own read transaction and see every completed write.
 *
 * Threading: every function is called from the loop thread only.
 *
 * Errors: 0 or a negative STORE_E* code; store_strerror() names it, and the functions
 * taking errmsg write a sentence for the log there.
 */
#ifndef LUARAFT_STORE_STORE_H
#define LUARAFT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/raft.h"
#include "store/snapfile.h"
#include "util/histogram.h"

enum {
    STORE_EIO = -200,      /* LMDB or the file system failed; see errmsg / the log */
    STORE_EFULL = -201,    /* the LMDB map is full: raise --map-size or take a snapshot */
    STORE_ENOMEM = -202,   /* an allocation failed */
    STORE_ECORRUPT = -203, /* what is on disk contradicts itself (a gap in the log, ...) */
    STORE_ECLOSED = -204,  /* the store is closing */
    STORE_EINVAL = -205,   /* bad arguments */
    STORE_ENOSPC = -206,   /* the file system is full (ENOSPC) or over its quota (EDQUOT) */
};

const char *store_strerror(int rv);

struct store_options
{
    const char *dir;    /* the data directory; created if missing; LMDB files go in it */
    uint64_t map_bytes; /* LMDB map size */
};

/* What store_load() found. */
struct store_state
{
    raft_term term;
    raft_id vote;
    raft_index snapshot_index; /* 0: none */
    raft_term snapshot_term;
    bool has_config; /* false on a fresh data directory */
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    /* false on a fresh data directory, and on one made before scripts were recorded */
    bool has_script;
    struct script_identity script;
    raft_index first_index; /* entries first_index..last_index are stored */
    raft_index last_index;  /* first_index > last_index: none */
};

/*
 * One persist request: the parts present are made durable in this order, atomically
 * (one transaction): hard state; configuration; script identity (replacing the one
 * recorded); snapshot install (delete every entry,
 * record the snapshot's index and term) or, with snapshot_taken instead, a snapshot taken
 * here (record its index and term, keep the log); entries (delete every entry at index >= first,
 * write n entries from first on); compaction (delete entries at index <= compact_to).
 * store_submit() copies everything it needs, payloads included, before it returns.
 */
struct store_write
{
    bool hard_state;
    raft_term term;
    raft_id vote;

    bool config;
    const struct raft_server *servers;
    unsigned n_servers;

    const struct script_identity *script; /* NULL: the recorded one stays */

    bool snapshot;       /* install: the log is dropped */
    bool snapshot_taken; /* taken locally: the log stays (compact it with compact_to) */
    raft_index snapshot_index;
    raft_term snapshot_term;

    bool entries;
    raft_index first;
    uint32_t n;
    const struct raft_entry *e;

    raft_index compact_to; /* 0: none */
};

typedef void (*store_done_cb)(void *arg, int status);

struct store;

/*
 * Opens (creating if needed) the store in o->dir and starts its writer thread.
 * Errors: STORE_EIO (cannot create the directory or open LMDB, e.g. another process holds
 * it), STORE_ENOMEM.
 */
int store_open(struct store **out,
               uv_loop_t *loop,
               const struct store_options *o,
               char *errmsg,
               size_t errmsg_size);

/* Reads the state at start-up. Errors: STORE_EIO, STORE_ECORRUPT. */
int store_load(struct store *s, struct store_state *out, char *errmsg, size_t errmsg_size);

/*
 * Calls fn for each stored entry first..last in order (stops early and returns fn's
 * result if it is not 0). The entry's buf points into LMDB's memory and is valid only
 * during the call. Errors: STORE_EIO, STORE_ECORRUPT (a missing index in the range).
 */
int store_read(struct store *s,
               raft_index first,
               raft_index last,
               int (*fn)(void *arg, raft_index index, const struct raft_entry *e),
               void *arg);

/*
 * Queues a persist request; done(arg, status) runs on the loop thread once it is durable
 * (status 0) or has failed (STORE_EFULL: nothing of it was written, and later requests
 * fail too until one fits; STORE_ENOSPC: the disk is full; STORE_EIO). A start function that fails
 * never calls done. Errors: STORE_ENOMEM, STORE_ECLOSED, STORE_EINVAL.
 */
int store_submit(struct store *s, const struct store_write *w, store_done_cb done, void *arg);

/* Stops the writer after the queued requests (their callbacks run), closes LMDB, frees
 * the store, then calls closed(arg) on the loop thread. */
void store_close(struct store *s, void (*closed)(void *arg), void *arg);

/* Counters for tests and the log, updated by the writer thread after each batch. */
struct store_stats
{
    uint64_t requests; /* requests finished (successfully or not) */
    uint64_t batches;  /* groups of requests the writer took off the queue at once */
    uint64_t txns;     /* write transactions committed (one fsync each) */
    /* Seconds each successful mdb_txn_commit took: the write to disk and its fsync. */
    struct histogram commit_seconds;
};

/* Copies the counters. Never fails. */
void store_stats(struct store *s, struct store_stats *out);

#endif
