/*
 * The whole-node simulator (see nodesim.h). One event queue on a virtual clock carries
 * everything between the nodes and the world: ticks, peer messages and frames, persist
 * and fsm completions, client requests and replies, faults. Each node is the real
 * struct node of src/node/ with a real fsm; only struct node_io is simulated. After every
 * event a node receives, its loop turn ends (node_turn), as in the real runtime.
 *
 * What it catches: any client-visible outcome that no linearization explains (a write
 * answered before it is applied, a stale read, a lost acknowledged write, a success
 * reply for a write whose outcome is unknown), a client answered twice, replicas whose
 * states differ after the faults heal, and every assertion of the node and the core.
 * What it cannot: anything in the real runtime (libuv, LMDB, the transport, the fsm
 * thread, snapshot children), which the specs with real processes cover.
 */
#include "sim/nodes/nodesim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm.h"
#include "fsm/job.h"
#include "node/internal.h"
#include "sim/lincheck.h"
#include "util/assert.h"
#include "util/rand.h"

enum {
    sim_nodes_max = 5,
    sim_clients = 6,
    sim_keys = 8,
    sim_tick_ms = 10,
    sim_net_delay_ms_max = 8,
    sim_disk_delay_ms_max = 6,
    sim_fsm_delay_ms_max = 3,
    sim_fault_every_ms = 250,
    sim_client_timeout_ms = 60000,
    sim_heal_ms_max = 120000, /* virtual time the cluster gets to converge */
    sim_reply_bytes_max = 4096,
};

enum ev_type {
    EV_TICK,
    EV_DELIVER,
    EV_FRAME,
    EV_PERSIST,
    EV_FSM,
    EV_CLIENT_SEND,
    EV_CLIENT_REPLY,
    EV_CLIENT_TIMEOUT,
    EV_FAULT,
};

struct event
{
    uint64_t time, seq;
    enum ev_type type;
    int node;     /* the receiving node (0-based), or the client */
    uint64_t inc; /* the node's incarnation when it was scheduled */
    void *p;      /* owned payload */
    size_t len;
    uint64_t a, b;
    int status;
};

/* A persist request in flight: a deep copy of the write and the node's context. */
struct sim_write
{
    struct store_write w;
    struct raft_entry *e;
    struct raft_server servers[RAFT_SERVERS_MAX];
    void *ctx;
};

struct server_request
{
    int client;
    int64_t op;
    bool answered, lost;
    struct server_request *next; /* the node's list, freed at its crash */
};

struct sim_node
{
    struct world *w;
    int idx;
    bool up;
    uint64_t inc;
    struct node *n;
    struct fsm *fsm;
    struct node_io io;
    struct node_config cfg;
    char dir[32];
    /* The durable store: what completed persist requests wrote. */
    raft_term term;
    raft_id vote;
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    struct raft_entry *log; /* log[0] is index 1 */
    raft_index log_n, log_cap;
    uint64_t disk_free_at, fsm_free_at;
    bool disk_fail_next, slow_disk;
    bool disk_failed; /* until the next restart */
    struct server_request *reqs;
    raft_id leader_seen;
};

struct sim_client
{
    uint64_t uid; /* lincheck client id: a new one after every unknown outcome */
    int64_t op;   /* in flight, or -1 */
    enum lincheck_op kind;
    int target;
    uint64_t n;
};

struct world
{
    const struct nodesim_options *o;
    struct lr_rand rng;
    uint64_t now, seq;
    struct event *heap;
    size_t heap_n, heap_cap;
    int n_nodes;
    struct sim_node nodes[sim_nodes_max];
    bool cut[sim_nodes_max]; /* partitioned away from the rest */
    unsigned drop_percent;
    struct sim_client clients[sim_clients];
    uint64_t next_uid;
    struct lincheck *h;
    bool healing;
    struct nodesim_stats *st;
    char *msg;
    size_t msg_size;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void violation(struct world *w, const char *fmt, ...)
{
    if (w->failed) {
        return;
    }
    w->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, w->msg_size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------ */
/* The event queue: a binary heap ordered by (time, seq). */

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static void schedule(struct world *w, struct event ev)
{
    ev.seq = w->seq++;
    VEC_RESERVE(w->heap, w->heap_n, w->heap_cap, 1);
    size_t i = w->heap_n++;
    while (i > 0 && ev_before(&ev, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = ev;
}

static struct event pop(struct world *w)
{
    struct event top = w->heap[0];
    struct event last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_n) {
            break;
        }
        if (c + 1 < w->heap_n && ev_before(&w->heap[c + 1], &w->heap[c])) {
            c++;
        }
        if (!ev_before(&w->heap[c], &last)) {
            break;
        }
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_n > 0) {
        w->heap[i] = last;
    }
    return top;
}

static uint64_t rnd(struct world *w, uint64_t lo, uint64_t hi)
{
    return lr_rand_range(&w->rng, lo, hi);
}

static bool chance(struct world *w, unsigned percent)
{
    return lr_rand_below(&w->rng, 100) < percent;
}

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

static struct raft_entry *copy_entries(const struct raft_entry *e, uint32_t n)
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

static void free_entries(struct raft_entry *e, uint32_t n)
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
        sw->e = copy_entries(wr->e, wr->n);
        sw->w.e = sw->e;
    }
    if (wr->config) {
        memcpy(sw->servers, wr->servers, wr->n_servers * sizeof *sw->servers);
        sw->w.servers = sw->servers;
    }
    /* Requests finish in order, each after the one before. */
    uint64_t delay = rnd(w, 0, s->slow_disk ? 200 : sim_disk_delay_ms_max);
    uint64_t at = w->now + delay > s->disk_free_at ? w->now + delay : s->disk_free_at;
    s->disk_free_at = at;
    if (s->disk_fail_next) {
        s->disk_fail_next = false;
        s->disk_failed = true;
        w->st->disk_failures++;
    }
    /* As the real store: once a request failed, so does every later one until the node
     * restarts, so what is durable is a prefix of the requests. */
    int status = s->disk_failed ? STORE_EIO : 0;
    schedule(w, (struct event){.time = at,
                               .type = EV_PERSIST,
                               .node = s->idx,
                               .inc = s->inc,
                               .p = sw,
                               .status = status});
    return 0;
}

static bool link_up(struct world *w, int from, int to)
{
    return w->cut[from] == w->cut[to] && !chance(w, w->drop_percent);
}

static void io_send(void *arg, const struct raft_message *m)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    int to = (int)m->to - 1;
    if (to < 0 || to >= w->n_nodes || !link_up(w, s->idx, to)) {
        return;
    }
    struct raft_message *c = malloc(sizeof *c);
    lr_assert(c != NULL);
    *c = *m;
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        c->append.entries = copy_entries(m->append.entries, m->append.n_entries);
    }
    schedule(w, (struct event){.time = w->now + rnd(w, 1, sim_net_delay_ms_max),
                               .type = EV_DELIVER,
                               .node = to,
                               .inc = w->nodes[to].inc,
                               .p = c});
}

static void io_send_snapshot(void *arg, const struct raft_message *m, const char *path)
{
    (void)arg;
    (void)m;
    (void)path; /* snapshots are off in this simulation (see nodesim_run) */
}

static int io_send_frame(void *arg, raft_id to, uint8_t type, const void *body, size_t len)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    int t = (int)to - 1;
    if (t < 0 || t >= w->n_nodes || !w->nodes[t].up) {
        return -1; /* no connection */
    }
    if (!link_up(w, s->idx, t)) {
        return 0; /* sent, and lost */
    }
    void *c = malloc(len + 1);
    lr_assert(c != NULL);
    memcpy(c, body, len);
    schedule(w, (struct event){.time = w->now + rnd(w, 1, sim_net_delay_ms_max),
                               .type = EV_FRAME,
                               .node = t,
                               .inc = w->nodes[t].inc,
                               .p = c,
                               .len = len,
                               .a = (uint64_t)s->idx + 1,
                               .b = type});
    return 0;
}

static void io_fsm_submit(void *arg, struct fsm_job *job)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    uint64_t at = w->now + rnd(w, 0, sim_fsm_delay_ms_max);
    at = at > s->fsm_free_at ? at : s->fsm_free_at;
    s->fsm_free_at = at;
    schedule(w,
             (struct event){.time = at, .type = EV_FSM, .node = s->idx, .inc = s->inc, .p = job});
}

static void io_reply(void *arg, struct server_request *req, const void *resp, size_t len)
{
    struct sim_node *s = arg;
    struct world *w = s->w;
    if (req->answered) {
        violation(w, "node %d answered client %d twice (op %" PRId64 ")", s->idx + 1, req->client,
                  req->op);
        return;
    }
    req->answered = true;
    if (req->lost) {
        return; /* the client's connection went away */
    }
    size_t k = len < sim_reply_bytes_max ? len : sim_reply_bytes_max;
    char *c = malloc(k + 1);
    lr_assert(c != NULL);
    memcpy(c, resp, k);
    c[k] = '\0';
    schedule(w, (struct event){.time = w->now + rnd(w, 0, 2),
                               .type = EV_CLIENT_REPLY,
                               .node = req->client,
                               .p = c,
                               .len = k,
                               .a = (uint64_t)req->op});
}

static int io_snapshot_install(void *arg,
                               const char *incoming,
                               raft_index index,
                               raft_term term,
                               char *path,
                               size_t path_size)
{
    (void)arg, (void)incoming, (void)index, (void)term, (void)path, (void)path_size;
    return -95; /* EOPNOTSUPP: never reached, snapshots are off */
}

static void io_snapshot_prune(void *arg, raft_index index)
{
    (void)arg, (void)index;
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
    violation(s->w, "node %d: fatal: %s", s->idx + 1, msg);
}

/* Quiet, unless LUARAFT_SIM_LOG is set (to read a failing seed's replay). */
static void io_log(void *arg, const char *line)
{
    struct sim_node *s = arg;
    if (getenv("LUARAFT_SIM_LOG") != NULL) {
        fprintf(stderr, "%8" PRIu64 " ms luaraft[%d]: %s\n", s->w->now, s->idx + 1, line);
    }
}

static const struct node_io sim_io = {
    .log = io_log,
    .now_ms = io_now_ms,
    .wall_ms = io_wall_ms,
    .persist = io_persist,
    .send = io_send,
    .send_snapshot = io_send_snapshot,
    .send_frame = io_send_frame,
    .fsm_submit = io_fsm_submit,
    .reply = io_reply,
    .snapshot_install = io_snapshot_install,
    .snapshot_prune = io_snapshot_prune,
    .peer_client_addr = io_peer_client_addr,
    .peer_connected = io_peer_connected,
    .clients = io_clients,
    .fatal = io_fatal,
};

/* ------------------------------------------------------------------------------------ */
/* Nodes: start from the durable store, crash. */

static void store_apply(struct sim_node *s, const struct store_write *wr)
{
    if (wr->hard_state) {
        s->term = wr->term;
        s->vote = wr->vote;
    }
    if (wr->config) {
        memcpy(s->servers, wr->servers, wr->n_servers * sizeof *s->servers);
        s->n_servers = wr->n_servers;
    }
    if (wr->entries) {
        lr_assert(wr->first >= 1 && wr->first <= s->log_n + 1);
        while (s->log_n >= wr->first) {
            free((void *)s->log[--s->log_n].buf);
        }
        for (uint32_t i = 0; i < wr->n; i++) {
            VEC_RESERVE(s->log, s->log_n, s->log_cap, 1);
            struct raft_entry *c = copy_entries(&wr->e[i], 1);
            s->log[s->log_n++] = c[0];
            free(c);
        }
    }
}

static int node_start(struct sim_node *s)
{
    struct world *w = s->w;
    char msg[256];
    struct fsm_limits limits = {.instructions_max = 1000000, .memory_bytes_max = 64 << 20};
    if (fsm_open(&s->fsm, w->o->script, &limits, msg, sizeof msg) != 0) {
        violation(w, "node %d: cannot load %s: %s", s->idx + 1, w->o->script, msg);
        return -1;
    }
    s->inc++;
    s->io = sim_io;
    s->io.arg = s;
    s->n = node_new(&s->cfg, &s->io, s->fsm);
    s->n->n_members = w->n_nodes;
    for (int i = 0; i < w->n_nodes; i++) {
        s->n->members[i] = (struct node_member){.id = (raft_id)i + 1, .host = "sim", .port = 1};
    }
    snprintf(s->n->client_addr, sizeof s->n->client_addr, "sim:%d", s->idx + 1);
    s->n->wr.fwd_seq = lr_rand_next(&w->rng);
    s->n->rd.seq = lr_rand_next(&w->rng);
    for (raft_index i = 0; i < s->log_n; i++) {
        node_boot_append(s->n, i + 1, &s->log[i]);
    }
    struct node_boot_state b = {
        .term = s->term,
        .vote = s->vote,
        .servers = s->servers,
        .n_servers = s->n_servers,
        .random_seed = lr_rand_next(&w->rng),
    };
    if (node_boot(s->n, &b, msg, sizeof msg) != 0) {
        violation(w, "node %d: boot: %s", s->idx + 1, msg);
        return -1;
    }
    s->up = true;
    s->disk_free_at = s->fsm_free_at = w->now;
    schedule(w, (struct event){
                    .time = w->now + sim_tick_ms, .type = EV_TICK, .node = s->idx, .inc = s->inc});
    return 0;
}

/* The process dies: everything not durable is gone; requests in flight are never
 * answered (their clients time out). */
static void node_crash(struct sim_node *s)
{
    node_free(s->n);
    s->n = NULL;
    fsm_close(s->fsm);
    s->fsm = NULL;
    while (s->reqs != NULL) {
        struct server_request *r = s->reqs;
        s->reqs = r->next;
        free(r);
    }
    s->up = false;
    s->inc++;
    s->slow_disk = s->disk_fail_next = s->disk_failed = false;
    s->w->st->crashes++;
}

/* Frees what an event owns when it is dropped (its node crashed meanwhile). */
static void event_free(struct event *ev)
{
    switch (ev->type) {
        case EV_DELIVER: {
            struct raft_message *m = ev->p;
            if (m->type == RAFT_MSG_APPEND) {
                free_entries(m->append.entries, m->append.n_entries);
            }
            free(m);
            break;
        }
        case EV_PERSIST: {
            struct sim_write *sw = ev->p;
            free_entries(sw->e, sw->w.n);
            free(sw->ctx); /* the node's persist context: plain memory */
            free(sw);
            break;
        }
        case EV_FSM:
            fsm_job_free(ev->p);
            break;
        default:
            free(ev->p);
    }
}

static void run_fsm_job(struct sim_node *s, struct fsm_job *job)
{
    switch (job->type) {
        case FSM_JOB_APPLY:
            for (unsigned i = 0; i < job->n_entries; i++) {
                fsm_job_apply_entry(s->fsm, &job->entries[i]);
            }
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                fsm_job_run_query(s->fsm, &job->queries[i]);
            }
            break;
        default:
            job->status = -1;
            snprintf(job->errmsg, sizeof job->errmsg, "not simulated");
    }
    node_fsm_done(s->n, job);
}

static void node_event(struct world *w, struct sim_node *s, struct event *ev)
{
    switch (ev->type) {
        case EV_TICK:
            node_tick(s->n);
            schedule(
                w,
                (struct event){
                    .time = w->now + sim_tick_ms, .type = EV_TICK, .node = s->idx, .inc = s->inc});
            break;
        case EV_DELIVER: {
            struct raft_message *m = ev->p;
            node_receive(s->n, m);
            event_free(ev);
            break;
        }
        case EV_FRAME:
            node_frame(s->n, (raft_id)ev->a, (uint8_t)ev->b, ev->p, ev->len);
            free(ev->p);
            break;
        case EV_PERSIST: {
            struct sim_write *sw = ev->p;
            if (ev->status == 0) {
                store_apply(s, &sw->w);
            }
            node_persisted(s->n, sw->ctx, ev->status);
            free_entries(sw->e, sw->w.n);
            free(sw);
            break;
        }
        case EV_FSM:
            run_fsm_job(s, ev->p);
            break;
        default:
            lr_assert(0);
    }
    if (s->up && s->n != NULL) {
        node_turn(s->n);
        raft_id leader = raft_leader_of(s->n->raft);
        if (leader != s->leader_seen) {
            s->leader_seen = leader;
            w->st->elections += leader != 0;
        }
    }
}

/* ------------------------------------------------------------------------------------ */
/* Clients: one operation in flight each, on a few keys, recorded for the checker. */

static void client_next(struct world *w, int c)
{
    schedule(w, (struct event){.time = w->now + rnd(w, 0, 20), .type = EV_CLIENT_SEND, .node = c});
}

static void client_unknown(struct world *w, int c)
{
    struct sim_client *cl = &w->clients[c];
    lincheck_unknown(w->h, cl->op);
    cl->op = -1;
    cl->uid = ++w->next_uid; /* an unknown operation never completes: a new client */
    cl->target = (int)rnd(w, 0, (uint64_t)w->n_nodes - 1);
    w->st->ops_unknown++;
}

static void client_send(struct world *w, int c)
{
    struct sim_client *cl = &w->clients[c];
    if (cl->op >= 0 || w->st->ops >= w->o->steps || w->failed) {
        return;
    }
    char key[8], val[32], val2[32];
    snprintf(key, sizeof key, "k%u", (unsigned)rnd(w, 0, sim_keys - 1));
    snprintf(val, sizeof val, "%" PRIu64, cl->uid * 1000 + cl->n++);
    snprintf(val2, sizeof val2, "%" PRIu64, rnd(w, 0, 3) == 0 ? 0 : cl->uid * 1000 + cl->n++);
    static const char *names[] = {"GET", "SET", "DEL", "INCR", "CAS"};
    enum lincheck_op kinds[] = {LINCHECK_GET, LINCHECK_SET, LINCHECK_INCR, LINCHECK_CAS};
    cl->kind = kinds[rnd(w, 0, 3)];
    const char *argv[4] = {names[cl->kind], key, val, val2};
    size_t argvlen[4] = {strlen(argv[0]), strlen(key), strlen(val), strlen(val2)};
    int argc = cl->kind == LINCHECK_SET ? 3 : cl->kind == LINCHECK_CAS ? 4 : 2;
    if (cl->kind == LINCHECK_CAS) { /* CAS key expected new: expect what was last set */
        argv[2] = val2, argv[3] = val;
        argvlen[2] = strlen(val2), argvlen[3] = strlen(val);
    }
    struct lincheck_call call = {.op = cl->kind, .key = {key, argvlen[1]}};
    if (argc >= 3) {
        call.arg = (struct lincheck_bytes){argv[2], argvlen[2]};
    }
    if (argc == 4) {
        call.arg2 = (struct lincheck_bytes){argv[3], argvlen[3]};
    }
    if (!w->nodes[cl->target].up) { /* connection refused: nothing was sent */
        cl->target = (cl->target + 1) % w->n_nodes;
        client_next(w, c);
        return;
    }
    cl->op = lincheck_invoke(w->h, cl->uid, w->now, &call);
    lr_assert(cl->op >= 0);
    w->st->ops++;
    struct sim_node *s = &w->nodes[cl->target];
    struct server_request *r = calloc(1, sizeof *r);
    lr_assert(r != NULL);
    r->client = c;
    r->op = cl->op;
    r->next = s->reqs;
    s->reqs = r;
    node_command(s->n, r, argc, argv, argvlen);
    node_turn(s->n);
    if (!r->answered && chance(w, 2)) {
        r->lost = true; /* the connection drops: the client never learns the outcome */
        w->st->lost_connections++;
        client_unknown(w, c);
        client_next(w, c);
        return;
    }
    schedule(w, (struct event){.time = w->now + sim_client_timeout_ms,
                               .type = EV_CLIENT_TIMEOUT,
                               .node = c,
                               .a = (uint64_t)cl->op});
}

/* Parses the reply; false if it proves nothing (an error whose outcome is unknown). */
static bool parse_reply(enum lincheck_op kind, const char *r, struct lincheck_output *out)
{
    if (r[0] == '+' && strncmp(r, "+OK\r\n", 5) == 0) {
        out->kind = LINCHECK_REPLY_OK;
    } else if (strncmp(r, "$-1\r\n", 5) == 0) {
        out->kind = LINCHECK_REPLY_NIL;
    } else if (r[0] == '$') {
        const char *p = strstr(r, "\r\n");
        out->kind = LINCHECK_REPLY_BULK;
        out->value = (struct lincheck_bytes){p + 2, (size_t)strtoull(r + 1, NULL, 10)};
    } else if (r[0] == ':') {
        out->kind = LINCHECK_REPLY_INT;
        out->n = strtoll(r + 1, NULL, 10);
    } else if (kind == LINCHECK_INCR && strstr(r, "not an integer") != NULL) {
        out->kind = LINCHECK_REPLY_ERR;
    } else {
        return false;
    }
    return true;
}

static void client_reply(struct world *w, struct event *ev)
{
    int c = ev->node;
    struct sim_client *cl = &w->clients[c];
    if (cl->op != (int64_t)ev->a) {
        return; /* an operation the client gave up on */
    }
    struct lincheck_output out = {0};
    if (!parse_reply(cl->kind, ev->p, &out)) {
        if (((char *)ev->p)[0] != '-') {
            violation(w, "client %d: a reply no command gives: %.60s", c, (char *)ev->p);
        }
        client_unknown(w, c);
    } else {
        int rv = lincheck_complete(w->h, cl->op, w->now, &out);
        lr_assert(rv == 0);
        cl->op = -1;
        w->st->ops_ok++;
    }
    client_next(w, c);
}

/* ------------------------------------------------------------------------------------ */
/* Faults, and the run. */

static int nodes_down(struct world *w)
{
    int k = 0;
    for (int i = 0; i < w->n_nodes; i++) {
        k += !w->nodes[i].up;
    }
    return k;
}

static void fault(struct world *w)
{
    int i = (int)rnd(w, 0, (uint64_t)w->n_nodes - 1);
    struct sim_node *s = &w->nodes[i];
    switch (rnd(w, 0, 7)) {
        case 0:
            if (s->up && nodes_down(w) < (w->n_nodes - 1) / 2) {
                node_crash(s);
            }
            break;
        case 1:
            if (!s->up) {
                node_start(s);
            }
            break;
        case 2:
            w->cut[i] = !w->cut[i];
            w->st->partitions += w->cut[i];
            break;
        case 3:
            s->slow_disk = !s->slow_disk;
            break;
        case 4:
            if (s->up && rnd(w, 0, 3) == 0) {
                s->disk_fail_next = true; /* fail-stop; the operator restarts it later */
            }
            break;
        case 5:
            w->drop_percent = (unsigned)rnd(w, 0, 20);
            break;
        default: /* a node whose store failed is restarted by its operator */
            if (s->up && s->n->dur.store_failed) {
                node_crash(s);
                node_start(s);
            }
    }
    schedule(w,
             (struct event){.time = w->now + rnd(w, 1, 2 * sim_fault_every_ms), .type = EV_FAULT});
}

static void heal(struct world *w)
{
    w->healing = true;
    w->drop_percent = 0;
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        w->cut[i] = false;
        if (s->up && s->n->dur.store_failed) {
            node_crash(s);
        }
        if (!s->up) {
            node_start(s);
        }
        s->slow_disk = s->disk_fail_next = false;
    }
}

static void dispatch(struct world *w, struct event *ev)
{
    switch (ev->type) {
        case EV_CLIENT_SEND:
            client_send(w, ev->node);
            return;
        case EV_CLIENT_REPLY:
            client_reply(w, ev);
            free(ev->p);
            return;
        case EV_CLIENT_TIMEOUT:
            if (w->clients[ev->node].op == (int64_t)ev->a) {
                client_unknown(w, ev->node);
                client_next(w, ev->node);
            }
            return;
        case EV_FAULT:
            if (!w->healing) {
                fault(w);
            }
            return;
        default:
            break;
    }
    struct sim_node *s = &w->nodes[ev->node];
    if (!s->up || ev->inc != s->inc) {
        event_free(ev);
        return;
    }
    node_event(w, s, ev);
}

static int snap_write(void *arg, const void *data, size_t len)
{
    return buf_append(arg, data, len) == 0 ? 0 : -1;
}

/* After the heal: every node applied the same log, and holds the same state. */
static bool converged(struct world *w, bool report)
{
    raft_index applied = w->nodes[0].n->applied;
    for (int i = 0; i < w->n_nodes; i++) {
        struct node *n = w->nodes[i].n;
        if (n->applied != applied || n->applied != raft_commit_index(n->raft) ||
            raft_leader_of(n->raft) == 0) {
            return false;
        }
    }
    for (int c = 0; c < sim_clients; c++) {
        if (w->clients[c].op >= 0) {
            return false;
        }
    }
    if (!report) {
        return true;
    }
    struct buf first;
    buf_init(&first);
    for (int i = 0; i < w->n_nodes; i++) {
        struct buf b;
        buf_init(&b);
        fsm_snapshot(w->nodes[i].fsm, snap_write, &b);
        if (i == 0) {
            first = b;
            continue;
        }
        if (b.len != first.len || memcmp(b.data, first.data, b.len) != 0) {
            violation(w, "node %d's state differs from node 1's at applied index %" PRIu64, i + 1,
                      applied);
        }
        buf_free(&b);
    }
    buf_free(&first);
    return true;
}

static void world_free(struct world *w)
{
    while (w->heap_n > 0) {
        struct event ev = pop(w);
        if (ev.type == EV_DELIVER || ev.type == EV_PERSIST || ev.type == EV_FSM ||
            ev.type == EV_FRAME || ev.type == EV_CLIENT_REPLY) {
            event_free(&ev);
        }
    }
    free(w->heap);
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        if (s->up) {
            node_crash(s);
        }
        free_entries(s->log, (uint32_t)s->log_n);
    }
    lincheck_free(w->h);
}

static void run_events(struct world *w, uint64_t until, bool until_converged)
{
    while (w->heap_n > 0 && !w->failed && w->now <= until) {
        struct event ev = pop(w);
        lr_assert(ev.time >= w->now);
        w->now = ev.time;
        w->st->events++;
        dispatch(w, &ev);
        if (until_converged && converged(w, false)) {
            return;
        }
        if (!until_converged && w->st->ops >= w->o->steps) {
            return;
        }
    }
}

int nodesim_run(const struct nodesim_options *o,
                struct nodesim_stats *stats,
                char *msg,
                size_t msg_size)
{
    struct world *w = calloc(1, sizeof *w);
    lr_assert(w != NULL && o->nodes >= 1 && o->nodes <= sim_nodes_max);
    memset(stats, 0, sizeof *stats);
    *w = (struct world){.o = o,
                        .st = stats,
                        .msg = msg,
                        .msg_size = msg_size,
                        .n_nodes = o->nodes,
                        .h = lincheck_new()};
    msg[0] = '\0';
    lr_rand_seed(&w->rng, o->seed);
    for (int i = 0; i < w->n_nodes; i++) {
        struct sim_node *s = &w->nodes[i];
        s->w = w;
        s->idx = i;
        snprintf(s->dir, sizeof s->dir, "sim-node-%d", i + 1);
        s->cfg = (struct node_config){.id = (raft_id)i + 1,
                                      .data_dir = s->dir,
                                      .tick_ms = sim_tick_ms,
                                      .heartbeat_ticks = 1,
                                      .election_ticks = 10};
        for (int k = 0; k < w->n_nodes; k++) {
            s->servers[k] = (struct raft_server){(raft_id)k + 1, true};
        }
        s->n_servers = (unsigned)w->n_nodes;
        if (node_start(s) != 0) {
            break;
        }
    }
    for (int c = 0; c < sim_clients; c++) {
        w->clients[c] =
            (struct sim_client){.uid = ++w->next_uid, .op = -1, .target = c % w->n_nodes};
        client_next(w, c);
    }
    schedule(w, (struct event){.time = 500, .type = EV_FAULT});
    run_events(w, UINT64_MAX, false);
    heal(w);
    run_events(w, w->now + sim_heal_ms_max, true);
    if (!w->failed && !converged(w, true)) {
        violation(w, "the cluster did not converge within %d ms of virtual time after the heal",
                  (int)sim_heal_ms_max);
    }
    if (!w->failed) {
        static char report[8192];
        int rv = lincheck_check(w->h, 10 * lincheck_budget_default, report, sizeof report);
        if (rv != LINCHECK_OK) {
            violation(w, "%s: %s", rv == LINCHECK_VIOLATION ? "not linearizable" : "undecided",
                      report);
        }
    }
    bool failed = w->failed;
    world_free(w);
    free(w);
    return failed ? -1 : 0;
}
