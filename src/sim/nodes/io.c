/* The whole-node simulator: struct node_io on the simulated world. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------ */
/* struct node_io, simulated. */

static uint64_t io_now_ms(void *arg)
{
    struct sim_node *s = arg;
    return s->w->now;
}

static int64_t io_wall_ms(void *arg)
{
    struct sim_node *s = arg;
    return 1700000000000 + (int64_t)s->w->now + s->idx * 7; /* a little skew per node */
}

struct raft_entry *ns_copy_entries(const struct raft_entry *e, uint32_t n)
{
    struct raft_entry *c = calloc(n + 1, sizeof *c);
    lr_assert(c != NULL);
    for (uint32_t i = 0; i < n; i++) {
        c[i] = e[i];
        c[i].buf = NULL;
        if (e[i].len > 0 && e[i].buf != NULL) {
            void *b = malloc(e[i].len);
            lr_assert(b != NULL);
            memcpy(b, e[i].buf, e[i].len);
            c[i].buf = b;
        }
    }
    return c;
}

void ns_free_entries(struct raft_entry *e, uint32_t n)
{
    for (uint32_t i = 0; e != NULL && i < n; i++) {
        free((void *)e[i].buf);
    }
    free(e);
}

static int io_persist(void *arg, const struct store_write *wr, void *ctx)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    struct sim_write *sw = calloc(1, sizeof *sw);
    lr_assert(sw != NULL);
    sw->w = *wr;
    sw->ctx = ctx;
    if (wr->entries) {
        sw->e = ns_copy_entries(wr->e, wr->n);
        sw->w.e = sw->e;
    }
    if (wr->config) {
        memcpy(sw->servers, wr->servers, wr->n_servers * sizeof *sw->servers);
        sw->w.servers = sw->servers;
    }
    /* Requests finish in order, each after the one before. */
    uint64_t delay = ns_rnd(w, 0, s->slow_disk ? 200 : sim_disk_delay_ms_max);
    uint64_t at = w->now + delay > s->disk_free_at ? w->now + delay : s->disk_free_at;
    s->disk_free_at = at;
    if (s->disk_fail_next || s->disk_full_next) {
        s->disk_failed = s->disk_full_next ? STORE_EFULL : STORE_EIO;
        s->disk_fail_next = s->disk_full_next = false;
        w->st->disk_failures++;
    }
    /* As the real store: once a request failed, so does every later one until the node
     * restarts, so what is durable is a prefix of the requests. */
    int status = s->disk_failed;
    ns_schedule(w, (struct event){.time = at,
                                  .type = EV_PERSIST,
                                  .node = s->idx,
                                  .inc = s->inc,
                                  .p = sw,
                                  .status = status});
    return 0;
}

static bool link_up(struct world *w, int from, int to)
{
    return w->cut[from] == w->cut[to] && !ns_chance(w, w->drop_percent);
}

/* The durable log holds index with the term the node's log gives it now. */
static bool durable_holds(struct sim_node *s, raft_index index)
{
    if (index < s->log_first || index <= s->stored_snap_index) {
        return true; /* compacted or installed: behind a durable snapshot */
    }
    if (index >= s->log_first + s->log_n) {
        return false;
    }
    struct log_cache *c = &s->n->cache;
    return index < c->first || index > cache_last(c) ||
           cache_at(c, index)->term == s->log[index - s->log_first].term;
}

static void io_send(void *arg, const struct raft_message *m)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    /* Raft paper §5.1, Figure 2: a follower answers AppendEntries only once what it vouches
     * for is on stable storage. */
    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success &&
        !durable_holds(s, m->append_resp.index)) {
        ns_violation(w, "node %d acknowledged index %" PRIu64 " before it was durable", s->idx + 1,
                     m->append_resp.index);
    }
    int to = (int)m->to - 1;
    if (to < 0 || to >= w->n_nodes || !link_up(w, s->idx, to)) {
        return;
    }
    struct raft_message *c = malloc(sizeof *c);
    lr_assert(c != NULL);
    *c = *m;
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        c->append.entries = ns_copy_entries(m->append.entries, m->append.n_entries);
    }
    ns_schedule(w, (struct event){.time = w->now + ns_rnd(w, 1, sim_net_delay_ms_max),
                                  .type = EV_DELIVER,
                                  .node = to,
                                  .inc = w->nodes[to].inc,
                                  .p = c});
}

static void io_send_snapshot(void *arg, const struct raft_message *m, const char *path)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    int to = (int)m->to - 1;
    struct sim_file *f = ns_file_find(s, path);
    if (f == NULL || to < 0 || to >= w->n_nodes || !link_up(w, s->idx, to)) {
        return;
    }
    struct sim_snapshot_msg *sm = calloc(1, sizeof *sm);
    lr_assert(sm != NULL);
    sm->m = *m;
    buf_init(&sm->data);
    lr_assert(buf_append(&sm->data, f->data.data, f->data.len) == 0);
    ns_schedule(w, (struct event){.time = w->now + ns_rnd(w, 1, 4 * sim_net_delay_ms_max),
                                  .type = EV_DELIVER_SNAPSHOT,
                                  .node = to,
                                  .inc = w->nodes[to].inc,
                                  .p = sm});
}

static int io_send_frame(void *arg, raft_id to, uint8_t type, struct buf *frame)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    int t = (int)to - 1;
    lr_assert(frame->len >= node_frame_headroom);
    int rv = 0;
    if (t < 0 || t >= w->n_nodes || !w->nodes[t].up) {
        rv = -1;                        /* no connection */
    } else if (link_up(w, s->idx, t)) { /* else sent, and lost */
        size_t len = frame->len - node_frame_headroom;
        void *c = malloc(len + 1);
        lr_assert(c != NULL);
        memcpy(c, frame->data + node_frame_headroom, len);
        ns_schedule(w, (struct event){.time = w->now + ns_rnd(w, 1, sim_net_delay_ms_max),
                                      .type = EV_FRAME,
                                      .node = t,
                                      .inc = w->nodes[t].inc,
                                      .p = c,
                                      .len = len,
                                      .a = (uint64_t)s->idx + 1,
                                      .b = type});
    }
    buf_free(frame);
    return rv;
}

/* Reads the durable store, as the real one reads LMDB. */
static int io_read_entries(void *arg,
                           raft_index first,
                           raft_index last,
                           int (*fn)(void *fnarg, raft_index index, const struct raft_entry *e),
                           void *fnarg)
{
    struct sim_node *s = arg;
    s->w->st->entries_read += last - first + 1;
    for (raft_index i = first; i <= last; i++) {
        if (i < s->log_first || i >= s->log_first + s->log_n) {
            ns_violation(s->w, "node %d reads entry %" PRIu64 ", which its store does not hold",
                         s->idx + 1, i);
            return STORE_ECORRUPT;
        }
        int rv = fn(fnarg, i, &s->log[i - s->log_first]);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static void io_fsm_submit(void *arg, struct fsm_job *job)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    uint64_t at = w->now + ns_rnd(w, 0, s->slow_fsm ? 300 : sim_fsm_delay_ms_max);
    at = at > s->fsm_free_at ? at : s->fsm_free_at;
    s->fsm_free_at = at;
    ns_schedule(
        w, (struct event){.time = at, .type = EV_FSM, .node = s->idx, .inc = s->inc, .p = job});
}

static void io_set_tag(void *arg, struct server_request *req, void *tag)
{
    (void)arg;
    req->tag = tag;
}

static void *io_tag_of(void *arg, struct server_request *req)
{
    (void)arg;
    return req->tag;
}

static void io_set_protocol(void *arg, struct server_request *req, int proto)
{
    (void)arg;
    (void)req;
    (void)proto; /* the simulated clients read RESP3 and RESP2 alike */
}

static void io_close_after(void *arg, struct server_request *req)
{
    (void)arg;
    (void)req; /* the simulated clients send no QUIT */
}

static void io_reply(void *arg, struct server_request *req, const void *resp, size_t len)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    if (req->answered) {
        ns_violation(w, "node %d answered client %d twice (op %" PRId64 ")", s->idx + 1,
                     req->client, req->op);
        return;
    }
    req->answered = true;
    if (req->admin) {
        ns_admin_reply(w, req, resp, len);
        return;
    }
    if (req->aux) {
        return; /* a refusal shows in EXEC's reply (-EXECABORT) */
    }
    if (req->lost) {
        return; /* the client's connection went away */
    }
    size_t k = len < sim_reply_bytes_max ? len : sim_reply_bytes_max;
    char *c = malloc(k + 1);
    lr_assert(c != NULL);
    memcpy(c, resp, k);
    c[k] = '\0';
    ns_schedule(w, (struct event){.time = w->now + ns_rnd(w, 0, 2),
                                  .type = EV_CLIENT_REPLY,
                                  .node = req->client,
                                  .p = c,
                                  .len = k,
                                  .a = (uint64_t)req->op});
}

/* A rename into place, durable at once. */
static int io_snapshot_install(void *arg,
                               const char *incoming,
                               raft_index index,
                               raft_term term,
                               char *path,
                               size_t path_size)
{
    struct sim_node *s = arg;
    struct sim_file *in = ns_file_find(s, incoming);
    if (in == NULL) {
        return -2; /* ENOENT */
    }
    snprintf(path, path_size, "snap-%" PRIu64 "-%" PRIu64, index, term);
    struct sim_file *old = ns_file_find(s, path);
    if (old != NULL) {
        ns_file_remove(s, old);
        in = ns_file_find(s, incoming);
    }
    snprintf(in->name, sizeof in->name, "%s", path);
    in->index = index;
    in->term = term;
    in->incoming = false;
    s->w->st->installs++;
    return 0;
}

static void io_snapshot_prune(void *arg, raft_index index)
{
    struct sim_node *s = arg;
    for (int i = 0; i < s->n_files;) {
        if (!s->files[i].incoming && s->files[i].index < index) {
            ns_file_remove(s, &s->files[i]);
        } else {
            i++;
        }
    }
}

static const char *io_peer_client_addr(void *arg, raft_id id)
{
    (void)arg, (void)id;
    return NULL;
}

static bool io_peer_connected(void *arg, raft_id id)
{
    struct sim_node *s = arg;
    int t = (int)id - 1;
    return t >= 0 && t < s->w->n_nodes && s->w->nodes[t].up && !s->w->cut[t];
}

static uint32_t io_clients(void *arg)
{
    (void)arg;
    return sim_clients;
}

static void io_fatal(void *arg, const char *msg)
{
    struct sim_node *s = arg;
    ns_violation(s->w, "node %d: fatal: %s", s->idx + 1, msg);
}

/* Quiet, unless LUARAFT_SIM_LOG is set (to read a failing seed's replay). */
static void io_log(void *arg, const char *line)
{
    struct sim_node *s = arg;
    if (getenv("LUARAFT_SIM_LOG") != NULL) {
        fprintf(stderr, "%8" PRIu64 " ms luaraft[%d]: %s\n", s->w->now, s->idx + 1, line);
    }
}

const struct node_io ns_io = {
    .log = io_log,
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
    .close_after = io_close_after,
    .snapshot_install = io_snapshot_install,
    .snapshot_prune = io_snapshot_prune,
    .peer_client_addr = io_peer_client_addr,
    .peer_connected = io_peer_connected,
    .clients = io_clients,
    .fatal = io_fatal,
};
