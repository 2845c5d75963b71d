/*
 * The real world behind struct node_io: one libuv loop, the LMDB store behind its writer
 * thread, the peer transport, the fsm thread and its snapshot children, the client port,
 * the clock and the signals. It loads the durable state, boots the node, and turns every
 * callback into one of the node's entry points; it decides nothing itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

enum {
    runtime_send_queue_bytes_max = 64 << 20,
    runtime_reconnect_ms_min = 50,
    runtime_reconnect_ms_max = 1000,
    runtime_clients_max = 10000,
    runtime_client_out_bytes_max = 64 << 20,
    runtime_client_pending_max = 4096,
    runtime_instructions_max = 100000000,
    runtime_hash_chunk_bytes = 16 * 1024, /* read size when hashing the script */
    runtime_hash_hex_shown = 16,          /* hex digits of a script's hash in messages */
    /* A leader offers a refused snapshot again and again (several times a second): one
     * line per refusal would flood the log, so at most one per this interval. */
    runtime_refused_log_ms = 10000,
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
    struct fsm *fsm;
    struct fsm_worker worker;
    bool worker_started;
    struct script_identity script; /* of c->script */
    uint64_t refused_logged_ms;    /* when a refused snapshot was last logged */
    uint64_t refused_unlogged;     /* refusals since then */

    uv_timer_t tick;
    uv_prepare_t prepare;
    uv_signal_t sigchld, sigint, sigterm;

    pid_t snap_pid; /* the child writing the snapshot at (snap_index, snap_term) */
    raft_index snap_index;
    raft_term snap_term;

    bool stopping;
    int closing; /* layers still closing */
    int exit_code;
};

/* ------------------------------------------------------------------------------------ */
/* struct node_io on the real world. */

static uint64_t io_now_ms(void *arg)
{
    struct runtime *rt = arg;
    return uv_now(&rt->loop);
}

static int64_t io_wall_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct persist_req
{
    struct runtime *rt;
    void *ctx;
};

static void persist_done_cb(void *arg, int status)
{
    struct persist_req pr = *(struct persist_req *)arg;
    free(arg);
    node_persisted(pr.rt->n, pr.ctx, status);
}

static int io_persist(void *arg, const struct store_write *w, void *ctx)
{
    struct runtime *rt = arg;
    struct persist_req *pr = malloc(sizeof *pr);
    lr_assert(pr != NULL);
    *pr = (struct persist_req){rt, ctx};
    int rv = store_submit(rt->store, w, persist_done_cb, pr);
    if (rv != 0) {
        free(pr);
    }
    return rv;
}

static void io_send(void *arg, const struct raft_message *m)
{
    struct runtime *rt = arg;
    transport_send(rt->tr, m);
}

static void io_send_snapshot(void *arg, const struct raft_message *m, const char *path)
{
    struct runtime *rt = arg;
    transport_send_snapshot(rt->tr, m, path);
}

static int io_send_frame(void *arg, raft_id to, uint8_t type, struct buf *frame)
{
    struct runtime *rt = arg;
    return transport_send_frame_buf(rt->tr, to, type, frame);
}

static int io_read_entries(void *arg,
                           raft_index first,
                           raft_index last,
                           int (*fn)(void *fnarg, raft_index index, const struct raft_entry *e),
                           void *fnarg)
{
    struct runtime *rt = arg;
    return store_read(rt->store, first, last, fn, fnarg);
}

static void io_fsm_submit(void *arg, struct fsm_job *job)
{
    struct runtime *rt = arg;
    fsm_worker_submit(&rt->worker, job);
}

static void io_reply(void *arg, struct server_request *req, const void *resp, size_t len)
{
    (void)arg;
    server_reply(req, resp, len);
}

static int io_snapshot_install(void *arg,
                               const char *incoming,
                               raft_index index,
                               raft_term term,
                               char *path,
                               size_t path_size)
{
    struct runtime *rt = arg;
    if (snapfile_path(rt->c->data_dir, index, term, path, path_size) != 0) {
        return -ENAMETOOLONG;
    }
    int fd = open(incoming, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    if (rv == 0 && rename(incoming, path) != 0) {
        rv = -errno;
    }
    return rv != 0 ? rv : config_fsync_dir(rt->c->data_dir);
}

static void io_snapshot_prune(void *arg, raft_index index)
{
    struct runtime *rt = arg;
    snapfile_prune(rt->c->data_dir, index);
}

static const char *io_peer_client_addr(void *arg, raft_id id)
{
    struct runtime *rt = arg;
    return transport_client_addr(rt->tr, id);
}

static bool io_peer_connected(void *arg, raft_id id)
{
    struct runtime *rt = arg;
    return transport_connected(rt->tr, id);
}

static uint32_t io_clients(void *arg)
{
    struct runtime *rt = arg;
    return rt->srv != NULL ? server_clients(rt->srv) : 0;
}

static void io_fatal(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* the node logged it */
    fflush(stderr);
    _exit(1);
}

/* ------------------------------------------------------------------------------------ */
/* Callbacks of the layers. */

/* Logs why the snapshot child that ended with wait status st failed, if it did: each exit
 * status names one failure (fsm/worker.c, child_exit_*). Returns true if it succeeded. */
static bool child_succeeded(struct runtime *rt, int st)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        return true;
    }
    if (WIFEXITED(st)) {
        node_log(rt->n,
                 "snapshot at index %" PRIu64
                 " failed: the child exited with status %d: %s (see its message above)",
                 rt->snap_index, WEXITSTATUS(st), fsm_worker_child_exit_text(WEXITSTATUS(st)));
    } else if (WIFSIGNALED(st)) {
        node_log(rt->n,
                 "snapshot at index %" PRIu64 " failed: the child was killed by signal %d (%s)",
                 rt->snap_index, WTERMSIG(st), strsignal(WTERMSIG(st)));
    } else {
        node_log(rt->n, "snapshot at index %" PRIu64 " failed: wait status %d", rt->snap_index, st);
    }
    return false;
}

static void try_reap(struct runtime *rt)
{
    if (rt->snap_pid <= 0) {
        return;
    }
    int st;
    if (waitpid(rt->snap_pid, &st, WNOHANG) != rt->snap_pid) {
        return;
    }
    rt->snap_pid = 0;
    char path[node_snap_path_bytes_max];
    int status = child_succeeded(rt, st) ? 0 : -1;
    if (status == 0 &&
        snapfile_path(rt->c->data_dir, rt->snap_index, rt->snap_term, path, sizeof path) != 0) {
        node_log(rt->n, "snapshot at index %" PRIu64 ": its path does not fit %zu bytes",
                 rt->snap_index, sizeof path);
        status = -1;
    }
    node_snapshot_written(rt->n, rt->snap_index, rt->snap_term, status == 0 ? path : NULL, status);
}

static void worker_done_cb(void *arg, struct fsm_job *job)
{
    struct runtime *rt = arg;
    if (job->type == FSM_JOB_SNAPSHOT && job->status == 0) {
        /* The child is writing the file: its exit (SIGCHLD) finishes the snapshot. */
        rt->snap_pid = job->pid;
        rt->snap_index = job->index;
        rt->snap_term = job->term;
        fsm_job_free(job);
        try_reap(rt);
        return;
    }
    node_fsm_done(rt->n, job);
}

static void prepare_cb(uv_prepare_t *h)
{
    struct runtime *rt = h->data;
    node_turn(rt->n);
}

static void tick_cb(uv_timer_t *h)
{
    struct runtime *rt = h->data;
    node_tick(rt->n);
}

static void transport_recv_cb(void *arg, struct raft_message *m)
{
    struct runtime *rt = arg;
    node_receive(rt->n, m);
}

/*
 * Whether a snapshot received from the leader holds the state of this node's script. All
 * nodes of a cluster run the same script, so another script's snapshot means a node was
 * started with the wrong one: restoring it would replace this state machine's state with
 * bytes its M.restore cannot read, or worse, can. Refused loudly; the node goes on, and
 * the leader keeps offering the snapshot until the misconfiguration is fixed.
 */
static bool received_snapshot_ours(struct runtime *rt,
                                   const struct raft_message *m,
                                   const char *path)
{
    struct snapfile_info info;
    int rv = snapfile_inspect(path, &info);
    if (rv != 0) {
        node_log(rt->n, "refused the snapshot at index %" PRIu64 " from node %" PRIu64 ": %s",
                 m->snapshot.index, m->from, snapfile_strerror(rv));
        return false;
    }
    if (!info.has_script) {
        node_log(rt->n,
                 "the snapshot at index %" PRIu64 " from node %" PRIu64
                 " records no script (an older luaraft wrote it): installed unchecked",
                 m->snapshot.index, m->from);
        return true;
    }
    if (script_identity_same(&info.script, &rt->script)) {
        return true;
    }
    uint64_t now = uv_now(&rt->loop);
    if (rt->refused_logged_ms != 0 && now - rt->refused_logged_ms < runtime_refused_log_ms) {
        rt->refused_unlogged++;
        return false;
    }
    char theirs[SCRIPT_HASH_HEX_BYTES], ours[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(&info.script, theirs);
    script_identity_hex(&rt->script, ours);
    node_log(rt->n,
             "REFUSED the snapshot at index %" PRIu64 " from node %" PRIu64
             ": it holds the state of script %s (content %.*s...), but this node runs %s "
             "(content %.*s...); every node of a cluster must run the same script: restart "
             "this node with the cluster's script (RAFT.INFO shows each node's script); "
             "%" PRIu64 " more refused since the last such line",
             m->snapshot.index, m->from, info.script.name, runtime_hash_hex_shown, theirs,
             rt->script.name, runtime_hash_hex_shown, ours, rt->refused_unlogged);
    rt->refused_logged_ms = now != 0 ? now : 1;
    rt->refused_unlogged = 0;
    return false;
}

static void transport_snapshot_cb(void *arg, struct raft_message *m, const char *path)
{
    struct runtime *rt = arg;
    if (!received_snapshot_ours(rt, m, path)) {
        unlink(path);
        return;
    }
    node_receive_snapshot(rt->n, m, path);
    if (!rt->n->snap.incoming_used) {
        unlink(path);
    }
}

static void transport_frame_cb(void *arg, raft_id from, uint8_t type, const void *body, size_t len)
{
    struct runtime *rt = arg;
    node_frame(rt->n, from, type, body, len);
}

static void transport_peer_cb(void *arg, raft_id id, bool up)
{
    struct runtime *rt = arg;
    node_log(rt->n, "peer %" PRIu64 " %s", id, up ? "up" : "down");
}

static void server_command_cb(void *arg,
                              struct server_request *req,
                              int argc,
                              const char *const *argv,
                              const size_t *argvlen)
{
    struct runtime *rt = arg;
    node_command(rt->n, req, argc, argv, argvlen);
}

/* ------------------------------------------------------------------------------------ */
/* Shutdown. */

/* Every layer has closed (the store after its queued writes): the process ends here. */
static void closed_cb(void *arg)
{
    struct runtime *rt = arg;
    lr_assert(rt->closing > 0);
    rt->closing--;
    if (rt->closing == 0) {
        node_log(rt->n, "stopped");
        fflush(stderr);
        exit(rt->exit_code);
    }
}

static void kill_snapshot_child(struct runtime *rt)
{
    if (rt->snap_pid > 0) {
        kill(rt->snap_pid, SIGKILL);
        waitpid(rt->snap_pid, NULL, 0);
        rt->snap_pid = 0;
    }
}

static void stop(struct runtime *rt)
{
    if (rt->stopping) {
        return;
    }
    rt->stopping = true;
    node_log(rt->n, "stopping");
    uv_timer_stop(&rt->tick);
    uv_prepare_stop(&rt->prepare);
    kill_snapshot_child(rt);
    /* Drain the fsm thread first: its finished jobs answer their clients. Then the node
     * answers everyone still waiting. A snapshot job still queued forks a child during
     * the drain: that one goes too. */
    if (rt->worker_started) {
        fsm_worker_stop(&rt->worker);
        rt->worker_started = false;
    }
    kill_snapshot_child(rt);
    node_stop(rt->n);
    rt->closing = 3;
    server_close(rt->srv, closed_cb, rt);
    transport_close(rt->tr, closed_cb, rt);
    store_close(rt->store, closed_cb, rt);
    uv_close((uv_handle_t *)&rt->tick, NULL);
    uv_close((uv_handle_t *)&rt->prepare, NULL);
    uv_close((uv_handle_t *)&rt->sigchld, NULL);
    uv_close((uv_handle_t *)&rt->sigint, NULL);
    uv_close((uv_handle_t *)&rt->sigterm, NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (signum == SIGCHLD) {
        try_reap(rt);
        return;
    }
    stop(rt);
}

/* ------------------------------------------------------------------------------------ */
/* Start-up. */

static const struct node_io io_template = {
    .now_ms = io_now_ms,
    .wall_ms = io_wall_ms,
    .persist = io_persist,
    .send = io_send,
    .send_snapshot = io_send_snapshot,
    .send_frame = io_send_frame,
    .read_entries = io_read_entries,
    .fsm_submit = io_fsm_submit,
    .reply = io_reply,
    .snapshot_install = io_snapshot_install,
    .snapshot_prune = io_snapshot_prune,
    .peer_client_addr = io_peer_client_addr,
    .peer_connected = io_peer_connected,
    .clients = io_clients,
    .fatal = io_fatal,
};

#define FAIL(...)                                 \
    do {                                          \
        fprintf(stderr, "luaraft: " __VA_ARGS__); \
        fputc('\n', stderr);                      \
        return 1;                                 \
    } while (0)

/* The configuration: --cluster on first start, the stored one afterwards. On first start
 * it is written to DIR/cluster and to the store. */
static int load_config(struct runtime *rt,
                       const struct store_state *st,
                       struct raft_server *servers,
                       unsigned *n_servers,
                       uint64_t *cluster_hash)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    char msg[node_errmsg_bytes];
    char *stored = config_read_file(c->data_dir);
    const char *text = st->has_config && stored != NULL && stored[0] != '\0' ? stored : c->cluster;
    int rv = 0;
    if (text == NULL) {
        fprintf(stderr, "luaraft: %s holds no configuration: give --cluster on first start\n",
                c->data_dir);
        rv = 1;
    } else if ((n->n_members = node_parse_cluster(text, n->members, msg, sizeof msg)) < 0) {
        fprintf(stderr, "luaraft: bad cluster configuration '%s': %s\n", text, msg);
        rv = 1;
    }
    if (rv != 0) {
        free(stored);
        return rv;
    }
    if (st->has_config && c->cluster != NULL && strcmp(text, c->cluster) != 0) {
        node_log(n, "the stored configuration wins over --cluster: %s", text);
    }
    *cluster_hash = config_hash_text(text);
    *n_servers = 0;
    if (st->has_config) {
        memcpy(servers, st->servers, st->n_servers * sizeof *servers);
        *n_servers = st->n_servers;
        free(stored);
        return 0;
    }
    for (int i = 0; i < n->n_members; i++) {
        servers[(*n_servers)++] = (struct raft_server){n->members[i].id, true};
    }
    rv = config_write_file(c->data_dir, text);
    free(stored);
    if (rv != 0) {
        FAIL("cannot write %s/cluster: %s", c->data_dir, strerror(-rv));
    }
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.config = true;
    w.servers = servers;
    w.n_servers = *n_servers;
    /* Requests finish in order, so every later persist implies this one. */
    rv = durability_submit_plain(n, &w);
    if (rv != 0) {
        FAIL("cannot store the configuration: %s", store_strerror(rv));
    }
    return 0;
}

static int load_entry_cb(void *arg, raft_index index, const struct raft_entry *e)
{
    node_boot_append(arg, index, e);
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* The script's identity (issue 7; struct script_identity in store/snapfile.h). */

/* The identity of the script at path: its file name and the BLAKE2b-256 hash of its
 * content (libsodium's crypto_generichash). Returns 0, or -1 with a message in errmsg. */
static int identity_of(const char *path, struct script_identity *out, char *errmsg, size_t size)
{
    memset(out, 0, sizeof *out);
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    size_t len = strlen(name);
    if (len == 0 || len > SCRIPT_NAME_BYTES_MAX) {
        snprintf(errmsg, size, "the script's file name is empty or over %d bytes",
                 SCRIPT_NAME_BYTES_MAX);
        return -1;
    }
    memcpy(out->name, name, len + 1);
    FILE *f = sodium_init() >= 0 ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        snprintf(errmsg, size, "cannot hash %s: %s", path, strerror(errno));
        return -1;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, SCRIPT_HASH_BYTES);
    unsigned char buf[runtime_hash_chunk_bytes];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crypto_generichash_update(&st, buf, n);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        snprintf(errmsg, size, "cannot read %s to hash it", path);
        return -1;
    }
    crypto_generichash_final(&st, out->hash, SCRIPT_HASH_BYTES);
    return 0;
}

/* "kv.lua (content 3f2a...)" into out: the name and the start of the hash. */
static const char *identity_text(const struct script_identity *id, char *out, size_t size)
{
    char hex[SCRIPT_HASH_HEX_BYTES];
    script_identity_hex(id, hex);
    snprintf(out, size, "%s (content %.*s...)", id->name, runtime_hash_hex_shown, hex);
    return out;
}

/*
 * A data directory belongs to the script that made it: its log holds that script's
 * commands and its snapshots that script's state, and another script would replay them
 * into a state machine they were never meant for (or fail in M.restore on every node).
 * These two refuse a store, or a newest snapshot, that records another script, and say
 * what to do.
 */
static int check_store_identity(struct runtime *rt, const struct store_state *st)
{
    char mine[SCRIPT_NAME_BYTES_MAX + 64], theirs[SCRIPT_NAME_BYTES_MAX + 64];
    if (st->has_script && !script_identity_same(&st->script, &rt->script)) {
        FAIL(
            "%s was made by script %s, not by %s: start with the script that made it, or "
            "use a new --data directory",
            rt->c->data_dir, identity_text(&st->script, theirs, sizeof theirs),
            identity_text(&rt->script, mine, sizeof mine));
    }
    return 0;
}

static int check_snapshot_identity(struct runtime *rt, const char *snap_path)
{
    char mine[SCRIPT_NAME_BYTES_MAX + 64], theirs[SCRIPT_NAME_BYTES_MAX + 64];
    identity_text(&rt->script, mine, sizeof mine);
    struct snapfile_info info;
    int rv = snapfile_inspect(snap_path, &info);
    if (rv != 0) {
        FAIL("cannot read the snapshot %s: %s", snap_path, snapfile_strerror(rv));
    }
    if (!info.has_script) {
        node_log(rt->n,
                 "snapshot %s records no script (an older luaraft wrote it): restored into %s "
                 "unchecked",
                 snap_path, mine);
    } else if (!script_identity_same(&info.script, &rt->script)) {
        FAIL(
            "%s holds a snapshot of script %s (%s), not of %s: start with the script that "
            "made it, or use a new --data directory",
            rt->c->data_dir, identity_text(&info.script, theirs, sizeof theirs), snap_path, mine);
    }
    return 0;
}

/* The first start (with this build) records the script in the store. Submitted before
 * anything the node persists, so every later write implies it (requests finish in
 * order). */
static int record_identity(struct runtime *rt, const struct store_state *st)
{
    if (st->has_script) {
        return 0;
    }
    char mine[SCRIPT_NAME_BYTES_MAX + 64];
    identity_text(&rt->script, mine, sizeof mine);
    if (st->has_config || st->term > 0 || st->last_index > 0) {
        node_log(rt->n, "%s recorded no script (an older luaraft made it): recording %s",
                 rt->c->data_dir, mine);
    } else {
        node_log(rt->n, "recording script %s in %s", mine, rt->c->data_dir);
    }
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.script = &rt->script;
    int rv = durability_submit_plain(rt->n, &w);
    if (rv != 0) {
        FAIL("cannot record the script in the store: %s", store_strerror(rv));
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Loading. */

/*
 * Temporaries a crash left (a snapshot being written or received) are garbage: remove
 * them before anything writes a new one (snapfile.h, snapfile_cleanup). Nothing else
 * runs in the directory yet; a failure to remove one is logged, not fatal.
 */
static void remove_temporaries(struct runtime *rt)
{
    int rv = snapfile_cleanup(rt->c->data_dir);
    if (rv > 0) {
        node_log(rt->n, "removed %d temporary snapshot file(s) a crash left in %s", rv,
                 rt->c->data_dir);
    } else if (rv < 0) {
        node_log(rt->n, "cannot remove every temporary snapshot file in %s: %s", rt->c->data_dir,
                 strerror(errno));
    }
}

static int open_store(struct runtime *rt, struct store_state *st)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct store_options so = {.dir = c->data_dir, .map_bytes = c->map_bytes};
    if (store_open(&rt->store, &rt->loop, &so, msg, sizeof msg) != 0) {
        FAIL("cannot open the store in %s: %s", c->data_dir, msg);
    }
    if (store_load(rt->store, st, msg, sizeof msg) != 0) {
        FAIL("cannot load the store in %s: %s", c->data_dir, msg);
    }
    return 0;
}

/* The store, the script's identity, the configuration, the newest valid snapshot and the
 * log after it. */
static int load_and_boot(struct runtime *rt, uint64_t *cluster_hash)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    remove_temporaries(rt);
    struct node_boot_state b = {0};
    char snap_path[node_snap_path_bytes_max];
    bool has_snap = snapfile_latest(c->data_dir, &b.snapshot_index, &b.snapshot_term, snap_path,
                                    sizeof snap_path) == 0;
    /* Both before anything is recorded: a refused directory keeps what it had (a fresh
     * one gets an empty store, which records nothing). */
    struct store_state st;
    if (open_store(rt, &st) != 0 || check_store_identity(rt, &st) != 0 ||
        (has_snap && check_snapshot_identity(rt, snap_path) != 0)) {
        return 1;
    }
    b.term = st.term;
    b.vote = st.vote;
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    if (record_identity(rt, &st) != 0 ||
        load_config(rt, &st, servers, &n_servers, cluster_hash) != 0) {
        return 1;
    }
    bool member = false;
    for (int i = 0; i < rt->n->n_members; i++) {
        member = member || rt->n->members[i].id == c->id;
    }
    if (!member) {
        FAIL("node %" PRIu64 " is not in the cluster configuration", c->id);
    }
    b.stored_snapshot_index = st.snapshot_index;
    b.servers = servers;
    b.n_servers = n_servers;
    b.random_seed = config_hash_text(c->data_dir) ^ (uint64_t)io_wall_ms(rt) ^ c->id;
    if (has_snap) {
        /* Checked above: no identity check again. */
        if (fsm_worker_restore_file(rt->fsm, snap_path, NULL, msg, sizeof msg) != 0) {
            FAIL("%s", msg);
        }
        b.snapshot_path = snap_path;
    }
    if (st.first_index <= st.last_index) {
        int rv = store_read(rt->store, st.first_index, st.last_index, load_entry_cb, rt->n);
        if (rv != 0) {
            FAIL("cannot read the log: %s", store_strerror(rv));
        }
    }
    if (node_boot(rt->n, &b, msg, sizeof msg) != 0) {
        FAIL("%s", msg);
    }
    return 0;
}

static int start_transport(struct runtime *rt, uint64_t cluster_hash)
{
    const struct node_config *c = rt->c;
    struct node *n = rt->n;
    char msg[node_errmsg_bytes];
    char cluster_id[32];
    snprintf(cluster_id, sizeof cluster_id, "%016" PRIx64, cluster_hash);
    struct transport_peer peers[RAFT_SERVERS_MAX];
    unsigned n_peers = 0;
    for (int i = 0; i < n->n_members; i++) {
        if (n->members[i].id == c->id) {
            continue;
        }
        peers[n_peers].id = n->members[i].id;
        snprintf(peers[n_peers].host, sizeof peers[n_peers].host, "%s", n->members[i].host);
        peers[n_peers].port = n->members[i].port;
        n_peers++;
    }
    struct transport_options to = {
        .self = c->id,
        .listen_host = c->raft_host,
        .listen_port = c->raft_port,
        .cluster_id = cluster_id,
        .client_addr = n->client_addr,
        .dir = c->data_dir,
        .send_queue_bytes_max = runtime_send_queue_bytes_max,
        .reconnect_ms_min = runtime_reconnect_ms_min,
        .reconnect_ms_max = runtime_reconnect_ms_max,
    };
    struct transport_callbacks tcb = {
        .arg = rt,
        .recv = transport_recv_cb,
        .snapshot = transport_snapshot_cb,
        .frame = transport_frame_cb,
        .peer = transport_peer_cb,
    };
    if (transport_start(&rt->tr, &rt->loop, &to, peers, n_peers, &tcb, msg, sizeof msg) != 0) {
        FAIL("cannot start the peer transport on %s:%d: %s", c->raft_host, c->raft_port, msg);
    }
    return 0;
}

static int start_server(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct server_options svo = {
        .host = c->listen_host,
        .port = c->listen_port,
        .clients_max = runtime_clients_max,
        .out_bytes_max = runtime_client_out_bytes_max,
        .pending_max = runtime_client_pending_max,
    };
    struct server_callbacks scb = {.arg = rt, .command = server_command_cb};
    if (server_start(&rt->srv, &rt->loop, &svo, &scb, msg, sizeof msg) != 0) {
        FAIL("cannot serve clients on %s: %s", rt->n->client_addr, msg);
    }
    return 0;
}

static void start_handles(struct runtime *rt)
{
    uv_timer_init(&rt->loop, &rt->tick);
    rt->tick.data = rt;
    uv_timer_start(&rt->tick, tick_cb, rt->c->tick_ms, rt->c->tick_ms);
    uv_prepare_init(&rt->loop, &rt->prepare);
    rt->prepare.data = rt;
    uv_prepare_start(&rt->prepare, prepare_cb);
    uv_signal_t *sigs[] = {&rt->sigchld, &rt->sigint, &rt->sigterm};
    int signums[] = {SIGCHLD, SIGINT, SIGTERM};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&rt->loop, sigs[i]);
        sigs[i]->data = rt;
        uv_signal_start(sigs[i], signal_cb, signums[i]);
    }
    signal(SIGPIPE, SIG_IGN);
}

/* Everything before the loop runs: load the script (a script that fails stops start-up),
 * the store, the newest snapshot and the log; then start the core and the IO layers. */
static int start(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    char msg[node_errmsg_bytes];
    struct fsm_limits limits = {.instructions_max = runtime_instructions_max,
                                .memory_bytes_max = 0};
    if (fsm_open(&rt->fsm, c->script, &limits, msg, sizeof msg) != 0) {
        FAIL("cannot load %s: %s", c->script, msg);
    }
    if (identity_of(c->script, &rt->script, msg, sizeof msg) != 0) {
        FAIL("%s", msg);
    }
    int rv = uv_loop_init(&rt->loop);
    lr_assert(rv == 0);
    rt->io = io_template;
    rt->io.arg = rt;
    rt->n = node_new(c, &rt->io, rt->fsm);
    snprintf(rt->n->script_name, sizeof rt->n->script_name, "%s", rt->script.name);
    script_identity_hex(&rt->script, rt->n->script_hash);
    snprintf(rt->n->client_addr, sizeof rt->n->client_addr,
             strchr(c->listen_host, ':') ? "[%s]:%d" : "%s:%d", c->listen_host, c->listen_port);
    /* Forward and read ids must not repeat across this node's restarts, or a late answer
     * to a request made before a crash would match a new one: start them at a random
     * point of the 64-bit space. */
    rt->n->wr.fwd_seq = config_random_u64();
    rt->n->rd.seq = config_random_u64();
    uint64_t cluster_hash;
    if (load_and_boot(rt, &cluster_hash) != 0) {
        return 1;
    }
    rv = fsm_worker_start(&rt->worker, &rt->loop, rt->fsm, &rt->script, rt->n->snap.index,
                          rt->n->snap.term, worker_done_cb, rt);
    if (rv != 0) {
        FAIL("cannot start the fsm thread: %s", strerror(-rv));
    }
    rt->worker_started = true;
    if (start_transport(rt, cluster_hash) != 0 || start_server(rt) != 0) {
        return 1;
    }
    start_handles(rt);
    node_log(rt->n, "serving clients on %s, peers on %s:%d", rt->n->client_addr, c->raft_host,
             c->raft_port);
    return 0;
}

int node_run(const struct node_config *c)
{
    struct runtime *rt = calloc(1, sizeof *rt);
    lr_assert(rt != NULL);
    rt->c = c;
    if (start(rt) != 0) {
        /* Start-up failed: the process exits, which releases everything. */
        return 1;
    }
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    uv_loop_close(&rt->loop);
    return rt->exit_code;
}
