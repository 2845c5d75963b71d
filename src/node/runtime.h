/*
 * The real world behind struct node_io (see runtime.c): what its parts share.
 *   runtime.c           the loop, the layers' callbacks, start-up and shutdown
 *   runtime_io.c        struct node_io on libuv, LMDB, the transport and the fsm thread
 *   runtime_boot.c      loading the durable state and booting the node
 *   runtime_identity.c  the script's identity: recorded, checked, and in snapshots
 *   runtime_join.c      the cluster's id (DIR/cluster-id), and --join
 */
#ifndef LUARAFT_NODE_RUNTIME_H
#define LUARAFT_NODE_RUNTIME_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "client/server.h"
#include "fsm/worker.h"
#include "node/config.h"
#include "node/internal.h"
#include "peer/transport.h"
#include "store/snapfile.h"
#include "store/store.h"
#include "util/assert.h"
#include "util/log.h"

enum {
    runtime_send_queue_bytes_max = 64 << 20,
    runtime_reconnect_ms_min = 50,
    runtime_reconnect_ms_max = 1000,
    runtime_client_out_bytes_max = 64 << 20,
    /* One argument: no command above node_command_bytes_max is ever taken, but one up to
     * twice that is read so that its client gets the node's error naming the command's
     * size; a longer one is refused at its header, before its bytes are read. */
    runtime_client_bulk_bytes_max = 2 * node_command_bytes_max,
    /* Unparsed input one client may hold: its largest argument and a little more. */
    runtime_client_query_bytes_max = runtime_client_bulk_bytes_max + (1 << 20),
    runtime_client_pending_max = 4096,
    runtime_instructions_max = 100000000,
    runtime_mmap_threshold_bytes = 64 << 20, /* see tune_allocator() */
    runtime_trim_threshold_bytes = 256 << 20,
    runtime_hash_chunk_bytes = 16 * 1024, /* read size when hashing the script */
    runtime_hash_hex_shown = 16,          /* hex digits of a script's hash in messages */
    /* A leader offers a refused snapshot again and again (several times a second): one
     * line per refusal would flood the log, so at most one per this interval. */
    runtime_refused_log_ms = 10000,
    /* A graceful shutdown: after the leadership transfer (two election timeouts at most),
     * the node's own flush gets this long before the process exits anyway. It is long
     * because the stop answers the read the fsm thread is running with its result, and a
     * script's read may take seconds (the instruction budget bounds work, not time). */
    runtime_stop_flush_ms_max = 60000,
};

_Static_assert(SCRIPT_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
                   SCRIPT_HASH_BYTES <= crypto_generichash_BYTES_MAX,
               "BLAKE2b makes hashes of the identity's size");

struct runtime
{
    const struct node_config *c;
    struct node *n;
    struct node_io io;
    uv_loop_t loop;
    struct store *store;
    struct transport *tr;
    struct server *srv;
    struct http_server *http; /* --http, or NULL */
    struct fsm *fsm;
    struct fsm_worker worker;
    bool worker_started;
    struct script_identity script; /* of c->script */
    uint64_t refused_logged_ms;    /* when a refused snapshot was last logged */
    uint64_t refused_unlogged;     /* refusals since then */

    uv_timer_t tick;
    uint64_t tick_last_ms;              /* when tick_cb last ran (uv_now), 0 before the first */
    struct histogram tick_late_seconds; /* how late each tick ran: the loop thread's stalls */
    uv_prepare_t prepare;
    uv_signal_t sigchld, sigint, sigterm;
    uv_timer_t shutdown_timer; /* the bound of the leadership transfer on the way out */
    bool shutting_down;

    pid_t snap_pid; /* the child writing the snapshot at (snap_index, snap_term) */
    raft_index snap_index;
    raft_term snap_term;

    bool stopping;
    int closing; /* layers still closing */
    int exit_code;
};

#define FAIL(...)            \
    do {                     \
        lr_log(__VA_ARGS__); \
        return 1;            \
    } while (0)

/* runtime_io.c */
extern const struct node_io runtime_io;

/* runtime_boot.c: the store, the script's identity, the configuration, the newest valid
 * snapshot and the log after it; then the node boots. Returns 0, or 1 with the reason on
 * stderr. */
int runtime_load_and_boot(struct runtime *rt);

/* runtime_recover.c: a damaged data directory moved aside before the store is opened.
 * recover_term: raft_boot's (0: nothing to recover); term and vote: what the store must
 * hold at least. Returns 0, or 1 with the reason on stderr. */
struct runtime_recovery
{
    raft_term recover_term;
    raft_term term;
    raft_id vote;
};
int runtime_recover(struct runtime *rt, struct runtime_recovery *out);

/* runtime_join.c: --join on a fresh data directory (0, or 1 with the reason on stderr);
 * the cluster id into n->mb.cluster_id, from DIR/cluster-id or made from text. */
int runtime_join(struct runtime *rt);
int runtime_cluster_id(struct runtime *rt, const char *text);

/* runtime_http.c: the --http port, if configured (0, or 1 with the reason on stderr);
 * its close calls closed(rt) back and returns 1, or returns 0 when there is none. */
int runtime_http_start(struct runtime *rt);
int runtime_http_close(struct runtime *rt, void (*closed)(void *arg));

/* runtime_identity.c */
int runtime_identity_of(const char *path, struct script_identity *out, char *errmsg, size_t size);
int runtime_check_store_identity(struct runtime *rt,
                                 const struct store_state *st,
                                 const char *snap_path);
int runtime_check_snapshot_identity(struct runtime *rt, const char *snap_path);
int runtime_record_identity(struct runtime *rt, const struct store_state *st);
bool runtime_snapshot_ours(struct runtime *rt, const struct raft_message *m, const char *path);

#endif
