/* struct node_io on the real world (see runtime.h). */
#include "node/runtime.h"
#include "store/backupfile.h"
#include "util/crash_point.h"

struct persist_req
{
    struct runtime *rt;
    void *ctx;
};

/* struct node_io on the real world. */

static uint64_t io_now_ms(void *arg)
{
    struct runtime *rt = arg;
    return uv_now(&rt->loop);
}

/* ------------------------------------------------------------------------------------ */

static int64_t io_wall_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    /* The transport delivers a received file already fsynced and verified, off the loop
     * thread (peer/transport.h): the rename and the directory's fsync make it durable
     * under its name, in time independent of its size. */
    if (rename(incoming, path) != 0) {
        return -errno;
    }
    crash_point("recv.after_rename");
    return config_fsync_dir(rt->c->data_dir);
}

static void io_snapshot_prune(void *arg, raft_index index)
{
    struct runtime *rt = arg;
    snapfile_prune(rt->c->data_dir, index);
}

/* A backup copy on libuv's thread pool: the file IO of store/backupfile.c, whole files. */
struct backup_work
{
    uv_work_t req;
    struct runtime *rt;
    char src[node_snap_path_bytes_max];
    char dst[node_snap_path_bytes_max];
    raft_index index;
    raft_term term;
    void *ctx;
    int status;
    uint64_t bytes;
    char errmsg[node_errmsg_bytes];
};

static void backup_work_cb(uv_work_t *req)
{
    struct backup_work *w = req->data;
    w->status =
        backupfile_write(w->src, w->index, w->term, w->dst, &w->bytes, w->errmsg, sizeof w->errmsg);
}

static void backup_after_cb(uv_work_t *req, int status)
{
    struct backup_work *w = req->data;
    if (status != 0 && w->status == 0) {
        w->status = status;
        snprintf(w->errmsg, sizeof w->errmsg, "%s", uv_strerror(status));
    }
    node_backup_done(w->rt->n, w->ctx, w->status, w->bytes, w->errmsg);
    free(w);
}

static void io_backup(void *arg,
                      const char *snap_path,
                      raft_index index,
                      raft_term term,
                      const char *dst,
                      void *ctx)
{
    struct runtime *rt = arg;
    struct backup_work *w = calloc(1, sizeof *w);
    if (w == NULL) {
        node_backup_done(rt->n, ctx, -1, 0, "out of memory");
        return;
    }
    w->req.data = w;
    w->rt = rt;
    snprintf(w->src, sizeof w->src, "%s", snap_path);
    snprintf(w->dst, sizeof w->dst, "%s", dst);
    w->index = index;
    w->term = term;
    w->ctx = ctx;
    int rv = uv_queue_work(&rt->loop, &w->req, backup_work_cb, backup_after_cb);
    if (rv != 0) {
        node_backup_done(rt->n, ctx, rv, 0, uv_strerror(rv));
        free(w);
    }
}

static const char *io_peer_client_addr(void *arg, raft_id id)
{
    struct runtime *rt = arg;
    const char *a = members_client_addr(rt->n, id); /* the address book's (members.c) */
    return a != NULL ? a : transport_client_addr(rt->tr, id);
}

static void io_set_peers(void *arg, const struct node_member *m, int n)
{
    struct runtime *rt = arg;
    struct transport_peer peers[RAFT_SERVERS_MAX];
    if (rt->tr == NULL) {
        return; /* at boot: the transport starts with n->members */
    }
    for (int i = 0; i < n; i++) {
        peers[i].id = m[i].id;
        snprintf(peers[i].host, sizeof peers[i].host, "%s", m[i].host);
        peers[i].port = m[i].port;
    }
    int rv = transport_set_peers(rt->tr, peers, (unsigned)n);
    if (rv != 0) {
        node_log(rt->n, "not every peer could be added: %s", transport_strerror(rv));
    }
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

static uint64_t io_lua_memory(void *arg)
{
    struct runtime *rt = arg;
    return atomic_load(&rt->worker.lua_bytes);
}

static void io_set_authenticated(void *arg, struct server_request *req, bool on)
{
    (void)arg;
    server_set_authenticated(req, on);
}

static void io_client_memory(void *arg, struct node_client_memory *m)
{
    struct runtime *rt = arg;
    struct server_memory sm = {0};
    if (rt->srv != NULL) {
        server_memory(rt->srv, &sm);
    }
    *m = (struct node_client_memory){sm.held_bytes, sm.largest_bytes, sm.evicted};
}

static void io_set_tag(void *arg, struct server_request *req, void *tag)
{
    (void)arg;
    server_request_set_tag(req, tag);
}

static void *io_tag_of(void *arg, struct server_request *req)
{
    (void)arg;
    return server_request_tag(req);
}

static void io_set_protocol(void *arg, struct server_request *req, int proto)
{
    (void)arg;
    server_set_protocol(req, proto);
}

static void io_close_after(void *arg, struct server_request *req)
{
    (void)arg;
    server_close_after(req);
}

static void io_fatal(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* the node logged it */
    fflush(stderr);
    _exit(1);
}

const struct node_io runtime_io = {
    .now_ms = io_now_ms,
    .wall_ms = io_wall_ms,
    .persist = io_persist,
    .send = io_send,
    .send_snapshot = io_send_snapshot,
    .send_frame = io_send_frame,
    .read_entries = io_read_entries,
    .fsm_submit = io_fsm_submit,
    .reply = io_reply,
    .set_tag = io_set_tag,
    .tag_of = io_tag_of,
    .set_protocol = io_set_protocol,
    .set_authenticated = io_set_authenticated,
    .close_after = io_close_after,
    .snapshot_install = io_snapshot_install,
    .snapshot_prune = io_snapshot_prune,
    .backup = io_backup,
    .peer_client_addr = io_peer_client_addr,
    .peer_connected = io_peer_connected,
    .set_peers = io_set_peers,
    .clients = io_clients,
    .client_memory = io_client_memory,
    .lua_memory = io_lua_memory,
    .fatal = io_fatal,
};
