/*
 * The node: wires the protocol core, the store, the transport, the fsm thread and the
 * client server together on one libuv loop (see node.h and STYLE.md "How a write flows").
 *
 * The loop thread owns the core. Every event (tick, peer message, persist done, a loop
 * turn's batch of client writes, a loop turn's batch of reads) becomes one raft_step(),
 * and the update it returns is carried out at once in the order raft.h binds: persist,
 * send, apply, reads. Client state never enters the core: pending writes are kept here,
 * keyed by (index, term).
 */
#include "node/node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "fsm/fsm.h"
#include "fsm/worker.h"
#include "store/snapfile.h"
#include "store/store.h"
#include "peer/transport.h"
#include "client/resp.h"
#include "client/server.h"
#include "util/assert.h"
#include "util/buf.h"

/* Named limits of the node, units last. */
enum {
    node_forward_timeout_ms = 5000, /* a forwarded write without an answer is unknown */
    node_read_timeout_ms = 10000,   /* a read that cannot be served in time: retry */
    node_send_queue_bytes_max = 64 << 20,
    node_reconnect_ms_min = 50,
    node_reconnect_ms_max = 1000,
    node_clients_max = 10000,
    node_client_out_bytes_max = 64 << 20,
    node_client_pending_max = 4096,
    node_errmsg_bytes = 512,
    node_info_bytes_max = 4096,
};

/* ------------------------------------------------------------------------------------ */
/* Small growable arrays. */

#define VEC_RESERVE(ptr, len, cap, extra)                     \
    do {                                                      \
        if ((len) + (extra) > (cap)) {                        \
            size_t ncap_ = (cap) ? (cap)*2 : 16;              \
            while (ncap_ < (len) + (extra)) {                 \
                ncap_ *= 2;                                   \
            }                                                 \
            void *p_ = realloc((ptr), ncap_ * sizeof *(ptr)); \
            lr_assert(p_ != NULL);                            \
            (ptr) = p_;                                       \
            (cap) = ncap_;                                    \
        }                                                     \
    } while (0)

/* ------------------------------------------------------------------------------------ */
/* The log cache: every entry since the compaction point, with its payload, so that
 * AppendEntries and applies never read LMDB. Entries first..first+n-1 live at
 * e[off..off+n). */

struct cache_entry
{
    raft_term term;
    uint32_t type;
    uint32_t len;
    void *buf;
};

struct log_cache
{
    struct cache_entry *e;
    size_t off, n, cap;
    raft_index first;
};

static raft_index cache_last(const struct log_cache *c)
{
    return c->first + c->n - 1;
}

static struct cache_entry *cache_at(struct log_cache *c, raft_index index)
{
    lr_assert(index >= c->first && index <= cache_last(c));
    return &c->e[c->off + (index - c->first)];
}

/* Drops every entry at index >= from. */
static void cache_truncate(struct log_cache *c, raft_index from)
{
    while (c->n > 0 && cache_last(c) >= from) {
        free(c->e[c->off + c->n - 1].buf);
        c->n--;
    }
}

/* Empties the cache; the next entry appended will be at first. */
static void cache_reset(struct log_cache *c, raft_index first)
{
    cache_truncate(c, 0);
    c->off = 0;
    c->first = first;
}

static void cache_append(struct log_cache *c, raft_index index, const struct raft_entry *e)
{
    if (c->n == 0) {
        c->off = 0;
        c->first = index;
    }
    lr_assert(index == c->first + c->n);
    if (c->off > 0 && c->off + c->n == c->cap && c->off >= c->n) {
        memmove(c->e, c->e + c->off, c->n * sizeof *c->e);
        c->off = 0;
    }
    size_t used = c->off + c->n;
    VEC_RESERVE(c->e, used, c->cap, 1);
    struct cache_entry *ce = &c->e[c->off + c->n];
    ce->term = e->term;
    ce->type = e->type;
    ce->len = e->buf != NULL ? e->len : 0;
    ce->buf = NULL;
    if (ce->len > 0) {
        ce->buf = malloc(ce->len);
        lr_assert(ce->buf != NULL);
        memcpy(ce->buf, e->buf, ce->len);
    }
    c->n++;
}

/* Drops the entries at index <= to. */
static void cache_compact(struct log_cache *c, raft_index to)
{
    while (c->n > 0 && c->first <= to) {
        free(c->e[c->off].buf);
        c->off++;
        c->n--;
        c->first++;
    }
}

/* ------------------------------------------------------------------------------------ */
/* The node. */

/* Who waits for a write: a local client, or a follower that forwarded it to us. */
struct origin
{
    struct server_request *req; /* NULL: remote */
    raft_id peer;
    uint64_t fwd_id;
};

struct pending
{
    raft_index index;
    raft_term term;
    struct origin o;
};

struct proposal
{
    struct buf payload; /* version, time (stamped at propose), argv blob */
    struct origin o;
};

struct read_item
{
    struct server_request *req;
    void *blob;
    size_t len;
};

/* One ReadIndex round: every read of one loop turn. */
struct read_batch
{
    struct read_batch *next;
    uint64_t id;
    raft_index index; /* serve once applied (dispatched) up to here */
    bool confirmed;
    uint64_t deadline_ms;
    struct read_item *items;
    size_t n, cap;
};

/* A write this follower forwarded to the leader. */
struct forward
{
    uint64_t id;
    raft_id leader; /* the node it was sent to: only its answer counts */
    struct server_request *req;
    uint64_t deadline_ms;
};

/* A message that leaves once persist request seq is durable. */
struct held
{
    struct raft_message m;
    uint64_t seq;
};

struct persist_ctx
{
    struct node *n;
    struct raft_persist_token token;
    bool has_token;
    uint64_t seq;
};

struct node
{
    const struct node_config *c;
    uv_loop_t loop;
    struct raft *raft;
    struct store *store;
    struct transport *tr;
    struct server *srv;
    struct fsm *fsm; /* owned by the worker; the loop only calls fsm_is_read */
    struct fsm_worker worker;
    bool worker_started;

    uv_timer_t tick;
    uv_prepare_t prepare;
    uv_signal_t sigchld, sigint, sigterm;

    struct node_member members[RAFT_SERVERS_MAX];
    int n_members;
    char client_addr[node_host_bytes_max + 16];

    struct log_cache cache;

    uint64_t persist_submitted, persist_done;
    struct held *held;
    size_t held_off, held_n, held_cap;
    bool store_failed;

    struct pending *pend;
    size_t pend_off, pend_n, pend_cap;

    struct proposal *props;
    size_t props_n, props_cap;

    struct read_batch turn_reads; /* gathered in this turn */
    struct read_batch *reads;     /* sent to the core, waiting */
    uint64_t read_seq;

    struct forward *fwds;
    size_t fwds_n, fwds_cap;
    uint64_t fwd_seq;

    raft_index applied_sent; /* dispatched to the fsm thread */
    raft_index applied;      /* reported back by it */
    int64_t last_time_ms;

    /* Snapshots. */
    raft_index snap_index;
    raft_term snap_term;
    char snap_path[fsm_worker_path_bytes_max];
    bool snap_running;
    pid_t snap_pid;
    raft_index snap_job_index;
    raft_term snap_job_term;
    struct server_request **snap_waiters;
    size_t snap_waiters_n, snap_waiters_cap;
    const char *incoming_snap; /* set during the step of a received snapshot */
    bool incoming_used;

    enum raft_role role;
    raft_id leader;
    raft_term term;

    bool stopping;
    int closing; /* layers still closing */
    int exit_code;
};

static uint64_t now_ms(struct node *n)
{
    return uv_now(&n->loop);
}

__attribute__((format(printf, 2, 3))) static void node_log(struct node *n, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    raft_term term = n->raft != NULL ? raft_current_term(n->raft) : n->term;
    fprintf(stderr, "luaraft[%" PRIu64 "] term %" PRIu64 ": %s\n", n->c->id, term, line);
}

static void reply_text(struct server_request *req, const char *resp)
{
    server_reply(req, resp, strlen(resp));
}

static const char unknown_reply[] =
    "-UNKNOWN the write's outcome is unknown: leadership was lost\r\n";
static const char store_failed_reply[] =
    "-ERR this node's store failed (see its log); writes are refused\r\n";
static const char store_failed_pending_reply[] =
    "-ERR this node's store failed (see its log); the write's outcome is unknown and "
    "writes are refused\r\n";

/* ------------------------------------------------------------------------------------ */
/* Answering writes. */

static void origin_reply(struct node *n, const struct origin *o, const void *resp, size_t len)
{
    if (o->req != NULL) {
        server_reply(o->req, resp, len);
        return;
    }
    struct buf b;
    buf_init(&b);
    if (buf_put_u64(&b, o->fwd_id) == 0 && buf_append(&b, resp, len) == 0) {
        transport_send_frame(n->tr, o->peer, TRANSPORT_FRAME_FORWARD_REPLY, b.data, b.len);
    }
    buf_free(&b);
}

static void pending_add(struct node *n, raft_index index, raft_term term, const struct origin *o)
{
    if (n->pend_off > 0 && n->pend_off + n->pend_n == n->pend_cap) {
        memmove(n->pend, n->pend + n->pend_off, n->pend_n * sizeof *n->pend);
        n->pend_off = 0;
    }
    size_t used = n->pend_off + n->pend_n;
    VEC_RESERVE(n->pend, used, n->pend_cap, 1);
    /* Indexes only grow while this node stays leader; after a new term they may restart
     * lower, so keep the array sorted by index. */
    size_t i = n->pend_n;
    struct pending *p = n->pend + n->pend_off;
    while (i > 0 && p[i - 1].index > index) {
        p[i] = p[i - 1];
        i--;
    }
    p[i] = (struct pending){index, term, *o};
    n->pend_n++;
}

static bool pending_has(struct node *n, raft_index index)
{
    struct pending *p = n->pend + n->pend_off;
    size_t lo = 0, hi = n->pend_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p[mid].index < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n->pend_n && p[lo].index == index;
}

/* Resolves every pending write at index <= upto: the one whose (index, term) matches the
 * applied entry gets the script's reply; any other was replaced by another leader's entry,
 * and its client learns that the outcome is unknown. */
static void pending_resolve(struct node *n,
                            raft_index upto,
                            raft_term term,
                            const void *reply,
                            size_t len)
{
    while (n->pend_n > 0 && n->pend[n->pend_off].index <= upto) {
        struct pending p = n->pend[n->pend_off];
        n->pend_off++;
        n->pend_n--;
        if (p.index == upto && p.term == term && reply != NULL) {
            origin_reply(n, &p.o, reply, len);
        } else {
            origin_reply(n, &p.o, unknown_reply, sizeof unknown_reply - 1);
        }
    }
}

static void pending_fail_all(struct node *n, const char *resp)
{
    while (n->pend_n > 0) {
        struct pending p = n->pend[n->pend_off];
        n->pend_off++;
        n->pend_n--;
        origin_reply(n, &p.o, resp, strlen(resp));
    }
    n->pend_off = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Carrying out updates. */

static void process_update(struct node *n, struct raft_update *u);

static void send_message(struct node *n, struct raft_message *m)
{
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (n->snap_path[0] == '\0') {
            node_log(n, "cannot send a snapshot to %" PRIu64 ": no snapshot file", m->to);
            return;
        }
        transport_send_snapshot(n->tr, m, n->snap_path);
        return;
    }
    struct raft_entry stack[64];
    struct raft_entry *entries = NULL;
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        uint32_t k = m->append.n_entries;
        entries = k <= 64 ? stack : malloc(k * sizeof *entries);
        lr_assert(entries != NULL);
        for (uint32_t i = 0; i < k; i++) {
            struct cache_entry *ce = cache_at(&n->cache, m->append.prev_index + 1 + i);
            entries[i] = (struct raft_entry){ce->term, ce->type, ce->len, ce->buf};
        }
        m->append.entries = entries;
    }
    transport_send(n->tr, m);
    if (entries != NULL) {
        m->append.entries = NULL;
        if (entries != stack) {
            free(entries);
        }
    }
}

static void release_held(struct node *n)
{
    while (n->held_n > 0 && n->held[n->held_off].seq <= n->persist_done) {
        struct raft_message m = n->held[n->held_off].m;
        n->held_off++;
        n->held_n--;
        send_message(n, &m);
    }
    if (n->held_n == 0) {
        n->held_off = 0;
    }
}

static void hold_message(struct node *n, const struct raft_message *m, uint64_t seq)
{
    if (n->held_off > 0 && n->held_off + n->held_n == n->held_cap) {
        memmove(n->held, n->held + n->held_off, n->held_n * sizeof *n->held);
        n->held_off = 0;
    }
    size_t used = n->held_off + n->held_n;
    VEC_RESERVE(n->held, used, n->held_cap, 1);
    n->held[n->held_off + n->held_n] = (struct held){*m, seq};
    n->held_n++;
}

/* Transfers leadership to the voter with the highest match index, if this node leads. */
static void step_down_after_store_failure(struct node *n)
{
    if (n->stopping || raft_role_of(n->raft) != RAFT_LEADER) {
        return;
    }
    raft_id best = 0;
    raft_index best_match = 0;
    for (int i = 0; i < n->n_members; i++) {
        struct raft_peer_info info;
        raft_id id = n->members[i].id;
        if (id != raft_id_of(n->raft) && raft_peer_info(n->raft, id, &info) && info.voter &&
            (best == 0 || info.match > best_match)) {
            best = id;
            best_match = info.match;
        }
    }
    if (best == 0) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EVENT_TRANSFER};
    ev.transfer.target = best;
    struct raft_update u;
    raft_step(n->raft, &ev, &u);
    process_update(n, &u);
    node_log(n, "store failed: handing leadership to node %" PRIu64, best);
}

static void persist_done_cb(void *arg, int status)
{
    struct persist_ctx *pc = arg;
    struct node *n = pc->n;
    if (status != 0) {
        /* Nothing of this request was written, and the core must not believe it was: stop
         * persisting altogether (a later request that fits would leave a gap) and refuse
         * writes; reads of what is applied keep working. */
        if (!n->store_failed) {
            node_log(n, "store: %s; this node stops persisting and refuses writes: %s",
                     store_strerror(status),
                     status == STORE_EFULL
                         ? "raise --map-size (or take RAFT.SNAPSHOT earlier) and restart it"
                         : "check the disk and restart it");
        }
        n->store_failed = true;
        /* The writes waiting for their entries would wait forever: this node cannot make
         * them durable, so unless a majority of others commits them they never apply. */
        pending_fail_all(n, store_failed_pending_reply);
        /* Messages held behind this request vouch for what it failed to write: drop them. */
        n->held_n = 0;
        n->held_off = 0;
        /* A leader that cannot persist would keep the cluster unwritable behind its
         * heartbeats: hand leadership to a peer. */
        step_down_after_store_failure(n);
        free(pc);
        return;
    }
    if (n->store_failed) {
        /* A later request may succeed where an earlier one failed (a smaller write fits a
         * full map), but the log it extends has a hole: it must never vouch for anything,
         * neither to the core (its own commit count) nor to peers (acknowledgments). */
        free(pc);
        return;
    }
    n->persist_done = pc->seq;
    if (pc->has_token && !n->stopping) {
        struct raft_event ev = {.type = RAFT_EVENT_PERSISTED};
        ev.persisted = pc->token;
        struct raft_update u;
        raft_step(n->raft, &ev, &u);
        process_update(n, &u);
    }
    free(pc);
    release_held(n);
}

/* Submits a request the core did not ask for (configuration, compaction). It still counts
 * in the order of requests, so its completion advances persist_done like any other. */
static int submit_plain(struct node *n, const struct store_write *w)
{
    struct persist_ctx *pc = calloc(1, sizeof *pc);
    lr_assert(pc != NULL);
    pc->n = n;
    pc->has_token = false;
    pc->seq = n->persist_submitted + 1;
    int rv = store_submit(n->store, w, persist_done_cb, pc);
    if (rv != 0) {
        free(pc);
        return rv;
    }
    n->persist_submitted++;
    return 0;
}

__attribute__((format(printf, 2, 3))) static void fatal(struct node *n, const char *fmt, ...)
{
    char msg[node_errmsg_bytes];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    node_log(n, "fatal: %s", msg);
    _exit(1);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY);
    if (fd < 0) {
        return -errno;
    }
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

/* The file name snapfile gives the snapshot at (index, term), without guessing its
 * format: begin a writer for it and abort at once. */
static int snap_name(struct node *n, raft_index index, raft_term term, char *out, size_t size)
{
    struct snapfile_writer w;
    char msg[256];
    int rv = snapfile_begin(&w, n->c->data_dir, index, term, msg, sizeof msg);
    if (rv != 0) {
        node_log(n, "snapshot name: %s", msg);
        return rv;
    }
    snprintf(out, size, "%s", w.path);
    snapfile_abort(&w);
    return 0;
}

/* Makes the snapshot file the transport received durable under its snapfile name, so a
 * restart finds it before the store records the install. */
static void install_snapshot_file(struct node *n, raft_index index, raft_term term)
{
    if (n->incoming_snap == NULL) {
        fatal(n, "%s", "the core installs a snapshot that did not come with a file");
    }
    char path[fsm_worker_path_bytes_max];
    if (snap_name(n, index, term, path, sizeof path) != 0) {
        fatal(n, "cannot name the snapshot file in %s", n->c->data_dir);
    }
    int fd = open(n->incoming_snap, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        fatal(n, "cannot fsync the received snapshot %s", n->incoming_snap);
    }
    close(fd);
    if (rename(n->incoming_snap, path) != 0) {
        fatal(n, "cannot rename the received snapshot to %s", path);
    }
    fsync_dir(n->c->data_dir);
    n->incoming_used = true;
    snprintf(n->snap_path, sizeof n->snap_path, "%s", path);
}

static void dispatch_applies(struct node *n, raft_index commit);
static void check_reads(struct node *n);

static void persist(struct node *n, struct raft_update *u)
{
    struct store_write w;
    memset(&w, 0, sizeof w);
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        w.hard_state = true;
        w.term = u->term;
        w.vote = u->vote;
    }
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        install_snapshot_file(n, u->snapshot.index, u->snapshot.term);
        w.snapshot = true;
        w.snapshot_index = u->snapshot.index;
        w.snapshot_term = u->snapshot.term;
        cache_reset(&n->cache, u->snapshot.index + 1);
        pending_resolve(n, u->snapshot.index, 0, NULL, 0);
        n->snap_index = u->snapshot.index;
        n->snap_term = u->snapshot.term;
        /* The restore is queued behind every apply already handed over, so the state
         * it replaces is whole, and reads queued after it see the snapshot. */
        struct fsm_job *job = fsm_job_new(FSM_JOB_RESTORE);
        lr_assert(job != NULL);
        snprintf(job->path, sizeof job->path, "%s", n->snap_path);
        job->index = u->snapshot.index;
        job->term = u->snapshot.term;
        fsm_worker_submit(&n->worker, job);
        n->applied_sent = u->snapshot.index;
        node_log(n,
                 "installing snapshot at index %" PRIu64 " (term %" PRIu64 ") from node %" PRIu64,
                 u->snapshot.index, u->snapshot.term, u->snapshot.from);
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        cache_truncate(&n->cache, u->append.first);
        if (n->cache.n == 0) {
            n->cache.first = u->append.first;
        }
        for (uint32_t i = 0; i < u->append.n; i++) {
            cache_append(&n->cache, u->append.first + i, &u->append.entries[i]);
        }
        w.entries = true;
        w.first = u->append.first;
        w.n = u->append.n;
        w.e = u->append.entries;
    }
    if (n->store_failed) {
        return;
    }
    struct persist_ctx *pc = calloc(1, sizeof *pc);
    lr_assert(pc != NULL);
    pc->n = n;
    pc->token = u->persist;
    pc->has_token = true;
    pc->seq = n->persist_submitted + 1;
    int rv = store_submit(n->store, &w, persist_done_cb, pc);
    if (rv != 0) {
        free(pc);
        fatal(n, "store_submit: %s", store_strerror(rv));
    }
    n->persist_submitted++;
}

static void handle_reads(struct node *n, struct raft_update *u)
{
    for (unsigned i = 0; i < u->n_reads; i++) {
        struct raft_read *r = &u->reads[i];
        struct read_batch **pp = &n->reads;
        while (*pp != NULL && (*pp)->id != r->id) {
            pp = &(*pp)->next;
        }
        struct read_batch *b = *pp;
        if (b == NULL) {
            continue;
        }
        if (r->status != 0) {
            *pp = b->next;
            for (size_t k = 0; k < b->n; k++) {
                reply_text(b->items[k].req, "-TRYAGAIN the read could not be confirmed; retry\r\n");
                free(b->items[k].blob);
            }
            free(b->items);
            free(b);
            continue;
        }
        b->confirmed = true;
        if (r->index > b->index) {
            b->index = r->index;
        }
    }
}

static void log_role(struct node *n, struct raft_update *u)
{
    raft_term term = raft_current_term(n->raft);
    if (u->role == n->role && u->leader == n->leader && term == n->term) {
        return;
    }
    bool was_leader = n->role == RAFT_LEADER;
    if (u->role != n->role) {
        if (u->role == RAFT_CANDIDATE || u->role == RAFT_PRECANDIDATE) {
            node_log(n, "election: became %s", raft_role_name(u->role));
        } else if (u->role == RAFT_LEADER) {
            node_log(n, "election won: this node is the leader");
        }
    }
    if (u->leader != n->leader && u->role != RAFT_LEADER) {
        if (u->leader != 0) {
            node_log(n, "leader changed: node %" PRIu64, u->leader);
        } else {
            node_log(n, "leader lost: no leader known");
        }
    }
    n->role = u->role;
    n->leader = u->leader;
    n->term = term;
    if (was_leader && u->role != RAFT_LEADER) {
        pending_fail_all(n, unknown_reply);
    }
}

/* Carries out one update in the order raft.h binds: persist, send, apply, reads. */
static void process_update(struct node *n, struct raft_update *u)
{
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_SNAPSHOT | RAFT_UPDATE_ENTRIES)) {
        persist(n, u);
    }
    if (u->flags & RAFT_UPDATE_MESSAGES) {
        for (unsigned i = 0; i < u->n_messages; i++) {
            struct raft_message *m = &u->messages[i];
            if (m->after_persist && n->store_failed) {
                continue; /* it would vouch for state that can no longer become durable */
            } else if (m->after_persist && n->persist_done < n->persist_submitted) {
                hold_message(n, m, n->persist_submitted);
            } else {
                send_message(n, m);
            }
        }
    }
    if (u->flags & RAFT_UPDATE_COMMIT) {
        dispatch_applies(n, u->commit);
    }
    if (u->flags & RAFT_UPDATE_READS) {
        handle_reads(n, u);
    }
    log_role(n, u);
    check_reads(n);
}

static void step(struct node *n, struct raft_event *ev)
{
    struct raft_update u;
    int rv = raft_step(n->raft, ev, &u);
    if (rv != 0 && ev->type == RAFT_EVENT_RECEIVE) {
        node_log(n, "dropped a %s from node %" PRIu64 ": %s", raft_msg_name(ev->receive.type),
                 ev->receive.from, raft_strerror(rv));
    }
    process_update(n, &u);
}

/* ------------------------------------------------------------------------------------ */
/* Applying and reading through the fsm thread. */

static void start_snapshot(struct node *n);

/* Hands the newly committed entries to the fsm thread, with copies of their payloads. */
static void dispatch_applies(struct node *n, raft_index commit)
{
    if (commit > cache_last(&n->cache)) {
        commit = cache_last(&n->cache);
    }
    if (commit <= n->applied_sent) {
        return;
    }
    struct fsm_job *job = fsm_job_new(FSM_JOB_APPLY);
    lr_assert(job != NULL);
    uint64_t k = commit - n->applied_sent;
    job->entries = calloc(k, sizeof *job->entries);
    lr_assert(job->entries != NULL);
    for (raft_index i = n->applied_sent + 1; i <= commit; i++) {
        struct cache_entry *ce = cache_at(&n->cache, i);
        struct fsm_job_entry *e = &job->entries[job->n_entries++];
        e->index = i;
        e->term = ce->term;
        e->type = ce->type;
        e->len = ce->len;
        e->want_reply = pending_has(n, i);
        if (ce->len > 0) {
            e->payload = malloc(ce->len);
            lr_assert(e->payload != NULL);
            memcpy(e->payload, ce->buf, ce->len);
        }
    }
    n->applied_sent = commit;
    fsm_worker_submit(&n->worker, job);
    if (n->c->snapshot_entries > 0 && !n->snap_running &&
        n->applied_sent - n->snap_index >= n->c->snapshot_entries) {
        start_snapshot(n);
    }
}

/* Queues the queries of every confirmed read whose index is handed to the fsm thread:
 * the queue keeps them behind the applies they must see. */
static void check_reads(struct node *n)
{
    struct read_batch **pp = &n->reads;
    while (*pp != NULL) {
        struct read_batch *b = *pp;
        if (!b->confirmed || b->index > n->applied_sent) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        struct fsm_job *job = fsm_job_new(FSM_JOB_QUERY);
        lr_assert(job != NULL);
        job->queries = calloc(b->n, sizeof *job->queries);
        lr_assert(job->queries != NULL);
        for (size_t k = 0; k < b->n; k++) {
            job->queries[k].tag = b->items[k].req;
            job->queries[k].blob = b->items[k].blob;
            job->queries[k].len = b->items[k].len;
        }
        job->n_queries = (unsigned)b->n;
        free(b->items);
        free(b);
        fsm_worker_submit(&n->worker, job);
    }
}

static void finish_snapshot(struct node *n, int status);

static void try_reap(struct node *n)
{
    if (n->snap_pid <= 0) {
        return;
    }
    int st;
    pid_t pid = waitpid(n->snap_pid, &st, WNOHANG);
    if (pid != n->snap_pid) {
        return;
    }
    n->snap_pid = 0;
    finish_snapshot(n, WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1);
}

static void worker_done_cb(void *arg, struct fsm_job *job)
{
    struct node *n = arg;
    switch (job->type) {
        case FSM_JOB_APPLY:
            for (unsigned i = 0; i < job->n_entries; i++) {
                struct fsm_job_entry *e = &job->entries[i];
                n->applied = e->index;
                if (e->want_reply) {
                    pending_resolve(n, e->index, e->term, e->reply.data, e->reply.len);
                }
            }
            break;
        case FSM_JOB_QUERY:
            for (unsigned i = 0; i < job->n_queries; i++) {
                struct fsm_job_query *q = &job->queries[i];
                server_reply(q->tag, q->reply.data, q->reply.len);
            }
            break;
        case FSM_JOB_RESTORE:
            if (job->status != 0) {
                fatal(n, "snapshot restore failed: %s", job->errmsg);
            }
            n->applied = job->index;
            node_log(n, "snapshot installed at index %" PRIu64, job->index);
            break;
        case FSM_JOB_SNAPSHOT:
            if (job->status != 0) {
                node_log(n, "snapshot not started: %s", job->errmsg);
                finish_snapshot(n, job->status);
                break;
            }
            n->snap_pid = job->pid;
            n->snap_job_index = job->index;
            n->snap_job_term = job->term;
            try_reap(n);
            break;
        case FSM_JOB_STOP:
            break;
    }
    fsm_job_free(job);
}

static void start_snapshot(struct node *n)
{
    lr_assert(!n->snap_running);
    struct fsm_job *job = fsm_job_new(FSM_JOB_SNAPSHOT);
    lr_assert(job != NULL);
    snprintf(job->path, sizeof job->path, "%s", n->c->data_dir);
    n->snap_running = true;
    fsm_worker_submit(&n->worker, job);
}

/* The child that wrote the snapshot has exited: tell the core, compact the log behind it
 * (keeping --snapshot-trailing entries for followers that lag a little) and prune older
 * files. */
static void finish_snapshot(struct node *n, int status)
{
    raft_index index = n->snap_job_index;
    raft_term term = n->snap_job_term;
    char reply[128];
    n->snap_running = false;
    if (status == 0 && index > n->snap_index) {
        char path[fsm_worker_path_bytes_max];
        raft_index fidx;
        raft_term fterm;
        if (snapfile_latest(n->c->data_dir, &fidx, &fterm, path, sizeof path) != 0 ||
            fidx != index) {
            status = -1;
        } else {
            raft_index compact_to =
                index > n->c->snapshot_trailing ? index - n->c->snapshot_trailing : 0;
            struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
            ev.snapshot_taken.index = index;
            ev.snapshot_taken.term = term;
            ev.snapshot_taken.compact_to = compact_to;
            struct raft_update u;
            int rv = raft_step(n->raft, &ev, &u);
            process_update(n, &u);
            if (rv != 0) {
                node_log(n, "snapshot at index %" PRIu64 " refused by the core: %s", index,
                         raft_strerror(rv));
            } else {
                snprintf(n->snap_path, sizeof n->snap_path, "%s", path);
                n->snap_index = index;
                n->snap_term = term;
                if (compact_to > 0 && !n->store_failed) {
                    struct store_write w;
                    memset(&w, 0, sizeof w);
                    w.compact_to = compact_to;
                    int crv = submit_plain(n, &w);
                    if (crv != 0) {
                        node_log(n, "log compaction not submitted: %s", store_strerror(crv));
                    }
                    cache_compact(&n->cache, compact_to);
                }
                snapfile_prune(n->c->data_dir, index);
                node_log(n,
                         "snapshot taken at index %" PRIu64 " (term %" PRIu64
                         "), log compacted up to %" PRIu64,
                         index, term, compact_to);
            }
        }
    } else if (status != 0) {
        node_log(n, "snapshot at index %" PRIu64 " failed (see the child's message above)", index);
    }
    if (status == 0) {
        snprintf(reply, sizeof reply, "+OK snapshot at index %" PRIu64 "\r\n", n->snap_index);
    } else {
        snprintf(reply, sizeof reply, "-ERR snapshot failed; see the node's log\r\n");
    }
    for (size_t i = 0; i < n->snap_waiters_n; i++) {
        reply_text(n->snap_waiters[i], reply);
    }
    n->snap_waiters_n = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Clients. */

static bool name_is(const char *s, size_t len, const char *name)
{
    size_t k = strlen(name);
    if (len != k) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        char ch = s[i];
        if (ch >= 'a' && ch <= 'z') {
            ch = (char)(ch - 'a' + 'A');
        }
        if (ch != name[i]) {
            return false;
        }
    }
    return true;
}

static const char *role_text(struct node *n)
{
    if (!raft_is_voter(n->raft, n->c->id)) {
        return "learner";
    }
    switch (raft_role_of(n->raft)) {
        case RAFT_LEADER:
            return "leader";
        case RAFT_CANDIDATE:
        case RAFT_PRECANDIDATE:
            return "candidate";
        default:
            return "follower";
    }
}

static void reply_info(struct node *n, struct server_request *req)
{
    char text[node_info_bytes_max];
    size_t len = 0;
    raft_id leader = raft_leader_of(n->raft);
    const char *leader_addr = "";
    if (leader == n->c->id) {
        leader_addr = n->client_addr;
    } else if (leader != 0) {
        const char *a = transport_client_addr(n->tr, leader);
        leader_addr = a != NULL ? a : "";
    }
#define INFO(...)                                                      \
    do {                                                               \
        int k_ = snprintf(text + len, sizeof text - len, __VA_ARGS__); \
        if (k_ > 0 && (size_t)k_ < sizeof text - len) {                \
            len += (size_t)k_;                                         \
        }                                                              \
    } while (0)
    INFO("# Raft\r\n");
    INFO("role:%s\r\n", role_text(n));
    INFO("node_id:%" PRIu64 "\r\n", n->c->id);
    INFO("term:%" PRIu64 "\r\n", raft_current_term(n->raft));
    INFO("leader_id:%" PRIu64 "\r\n", leader);
    INFO("leader_addr:%s\r\n", leader_addr);
    INFO("commit_index:%" PRIu64 "\r\n", raft_commit_index(n->raft));
    INFO("applied_index:%" PRIu64 "\r\n", n->applied);
    INFO("last_log_index:%" PRIu64 "\r\n", raft_last_index(n->raft));
    INFO("snapshot_index:%" PRIu64 "\r\n", n->snap_index);
    INFO("clients:%" PRIu32 "\r\n", server_clients(n->srv));
    for (int i = 0; i < n->n_members; i++) {
        raft_id id = n->members[i].id;
        if (id == n->c->id) {
            continue;
        }
        struct raft_peer_info pi;
        bool known = raft_peer_info(n->raft, id, &pi);
        INFO("peer_%" PRIu64 ":match=%" PRIu64 ",state=%s,connected=%s\r\n", id,
             known ? pi.match : 0, known && pi.state != NULL ? pi.state : "unknown",
             transport_connected(n->tr, id) ? "yes" : "no");
    }
#undef INFO
    struct buf b;
    buf_init(&b);
    resp_put_bulk(&b, text, len);
    server_reply(req, b.data, b.len);
    buf_free(&b);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Adds a write to this loop turn's proposal batch; blob is its argv blob. */
static void add_proposal(struct node *n, const void *blob, size_t len, const struct origin *o)
{
    VEC_RESERVE(n->props, n->props_n, n->props_cap, 1);
    struct proposal *p = &n->props[n->props_n++];
    buf_init(&p->payload);
    int rv = buf_put_u8(&p->payload, fsm_worker_payload_version);
    rv = rv ? rv : buf_put_u64(&p->payload, 0); /* the time, stamped at propose */
    rv = rv ? rv : buf_append(&p->payload, blob, len);
    lr_assert(rv == 0);
    p->o = *o;
}

/* 64 random bits from the kernel, or from the clock and pid if that fails. */
static uint64_t random_u64(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, &v, sizeof v);
        close(fd);
        if (r == (ssize_t)sizeof v) {
            return v;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static void forward_write(struct node *n,
                          struct server_request *req,
                          raft_id leader,
                          const struct buf *blob)
{
    struct buf b;
    buf_init(&b);
    uint64_t id = ++n->fwd_seq;
    int rv = buf_put_u64(&b, id);
    rv = rv ? rv : buf_append(&b, blob->data, blob->len);
    rv = rv ? rv : transport_send_frame(n->tr, leader, TRANSPORT_FRAME_FORWARD, b.data, b.len);
    buf_free(&b);
    if (rv != 0) {
        reply_text(req, "-TRYAGAIN cannot reach the leader; retry\r\n");
        return;
    }
    VEC_RESERVE(n->fwds, n->fwds_n, n->fwds_cap, 1);
    n->fwds[n->fwds_n++] = (struct forward){id, leader, req, now_ms(n) + node_forward_timeout_ms};
}

static void server_command_cb(void *arg,
                              struct server_request *req,
                              int argc,
                              const char *const *argv,
                              const size_t *argvlen)
{
    struct node *n = arg;
    if (n->stopping) {
        reply_text(req, "-TRYAGAIN the node is shutting down\r\n");
        return;
    }
    if (argc < 1) {
        reply_text(req, "-ERR empty command\r\n");
        return;
    }
    if (name_is(argv[0], argvlen[0], "PING")) {
        if (argc == 2) {
            struct buf b;
            buf_init(&b);
            resp_put_bulk(&b, argv[1], argvlen[1]);
            server_reply(req, b.data, b.len);
            buf_free(&b);
        } else {
            reply_text(req, "+PONG\r\n");
        }
        return;
    }
    if (name_is(argv[0], argvlen[0], "RAFT.INFO")) {
        reply_info(n, req);
        return;
    }
    if (name_is(argv[0], argvlen[0], "RAFT.SNAPSHOT")) {
        if (!n->snap_running && n->applied_sent <= n->snap_index) {
            char text[96];
            snprintf(text, sizeof text, "+OK snapshot at index %" PRIu64 " is up to date\r\n",
                     n->snap_index);
            reply_text(req, text);
            return;
        }
        VEC_RESERVE(n->snap_waiters, n->snap_waiters_n, n->snap_waiters_cap, 1);
        n->snap_waiters[n->snap_waiters_n++] = req;
        if (!n->snap_running) {
            start_snapshot(n);
        }
        return;
    }

    struct buf blob;
    buf_init(&blob);
    if (fsm_worker_put_argv(&blob, argc, argv, argvlen) != 0) {
        buf_free(&blob);
        reply_text(req, "-ERR out of memory\r\n");
        return;
    }
    raft_id leader = raft_leader_of(n->raft);
    if (fsm_is_read(n->fsm, argv[0], argvlen[0])) {
        if (leader == 0) {
            buf_free(&blob);
            reply_text(req, "-TRYAGAIN no leader; retry\r\n");
            return;
        }
        struct read_batch *b = &n->turn_reads;
        VEC_RESERVE(b->items, b->n, b->cap, 1);
        b->items[b->n++] = (struct read_item){req, blob.data, blob.len};
        return; /* the batch owns the blob's bytes now */
    }
    if (n->store_failed) {
        reply_text(req, store_failed_reply);
    } else if (raft_role_of(n->raft) == RAFT_LEADER) {
        struct origin o = {req, 0, 0};
        add_proposal(n, blob.data, blob.len, &o);
    } else if (leader != 0) {
        forward_write(n, req, leader, &blob);
    } else {
        reply_text(req, "-TRYAGAIN no leader; retry\r\n");
    }
    buf_free(&blob);
}

/* Once per loop turn: one PROPOSE for every write of the turn and one READ_INDEX for
 * every read, so the core, the disk and the wire see batches, not commands. */
static void prepare_cb(uv_prepare_t *h)
{
    struct node *n = h->data;
    if (n->props_n > 0 && n->store_failed) {
        /* Taken this turn before the store failed: never proposed, so never applied. */
        for (size_t i = 0; i < n->props_n; i++) {
            origin_reply(n, &n->props[i].o, store_failed_reply, strlen(store_failed_reply));
            buf_free(&n->props[i].payload);
        }
        n->props_n = 0;
    }
    if (n->props_n > 0) {
        size_t k = n->props_n;
        struct raft_entry *entries = calloc(k, sizeof *entries);
        lr_assert(entries != NULL);
        int64_t t = wall_ms();
        if (t < n->last_time_ms) {
            t = n->last_time_ms; /* ctx.time never goes backwards under one leader */
        }
        n->last_time_ms = t;
        for (size_t i = 0; i < k; i++) {
            struct proposal *p = &n->props[i];
            be_put_u64(p->payload.data + 1, (uint64_t)t);
            entries[i] = (struct raft_entry){0, RAFT_ENTRY_NORMAL, (uint32_t)p->payload.len,
                                             p->payload.data};
        }
        struct raft_event ev = {.type = RAFT_EVENT_PROPOSE};
        ev.propose.entries = entries;
        ev.propose.n = (uint32_t)k;
        struct raft_update u;
        int rv = raft_step(n->raft, &ev, &u);
        if (rv == 0) {
            raft_index first = raft_last_index(n->raft) - k + 1;
            for (size_t i = 0; i < k; i++) {
                pending_add(n, first + i, entries[i].term, &n->props[i].o);
            }
        } else {
            const char *text = rv == RAFT_ELOGFULL
                                   ? "-ERR the log is full: a snapshot is needed; retry\r\n"
                                   : "-TRYAGAIN not the leader; retry\r\n";
            for (size_t i = 0; i < k; i++) {
                origin_reply(n, &n->props[i].o, text, strlen(text));
            }
        }
        process_update(n, &u);
        for (size_t i = 0; i < k; i++) {
            buf_free(&n->props[i].payload);
        }
        free(entries);
        n->props_n = 0;
    }
    if (n->turn_reads.n > 0) {
        struct read_batch *b = calloc(1, sizeof *b);
        lr_assert(b != NULL);
        *b = n->turn_reads;
        memset(&n->turn_reads, 0, sizeof n->turn_reads);
        b->id = ++n->read_seq;
        b->deadline_ms = now_ms(n) + node_read_timeout_ms;
        /* On the leader a read also waits for the writes proposed before it, so that a
         * pipelining client sees its own writes; not once the store failed, as those
         * writes may never commit (their clients were answered). */
        if (raft_role_of(n->raft) == RAFT_LEADER && !n->store_failed) {
            b->index = raft_last_index(n->raft);
        }
        b->next = n->reads;
        n->reads = b;
        struct raft_event ev = {.type = RAFT_EVENT_READ_INDEX};
        ev.read_index.id = b->id;
        struct raft_update u;
        int rv = raft_step(n->raft, &ev, &u);
        if (rv != 0) {
            struct raft_read r = {b->id, RAFT_ENOTLEADER, 0};
            struct raft_update fail = {.flags = RAFT_UPDATE_READS, .reads = &r, .n_reads = 1};
            handle_reads(n, &fail);
        }
        process_update(n, &u);
    }
}

/* Forwarded writes and reads that wait too long are answered, so no client hangs. */
static void expire_waiters(struct node *n)
{
    uint64_t now = now_ms(n);
    size_t k = 0;
    for (size_t i = 0; i < n->fwds_n; i++) {
        if (n->fwds[i].deadline_ms <= now) {
            reply_text(n->fwds[i].req, unknown_reply);
        } else {
            n->fwds[k++] = n->fwds[i];
        }
    }
    n->fwds_n = k;
    struct read_batch **pp = &n->reads;
    while (*pp != NULL) {
        struct read_batch *b = *pp;
        if (b->deadline_ms > now) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        for (size_t i = 0; i < b->n; i++) {
            reply_text(b->items[i].req, "-TRYAGAIN the read timed out; retry\r\n");
            free(b->items[i].blob);
        }
        free(b->items);
        free(b);
    }
}

static void tick_cb(uv_timer_t *h)
{
    struct node *n = h->data;
    struct raft_event ev = {.type = RAFT_EVENT_TICK};
    step(n, &ev);
    expire_waiters(n);
}

/* ------------------------------------------------------------------------------------ */
/* Peers. */

static void transport_recv_cb(void *arg, struct raft_message *m)
{
    struct node *n = arg;
    if (n->stopping) {
        return;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        return; /* only the snapshot callback delivers these, with their file */
    }
    struct raft_event ev = {.type = RAFT_EVENT_RECEIVE};
    ev.receive = *m;
    step(n, &ev);
}

static void transport_snapshot_cb(void *arg, struct raft_message *m, const char *path)
{
    struct node *n = arg;
    if (n->stopping) {
        unlink(path);
        return;
    }
    n->incoming_snap = path;
    n->incoming_used = false;
    struct raft_event ev = {.type = RAFT_EVENT_RECEIVE};
    ev.receive = *m;
    step(n, &ev);
    if (!n->incoming_used) {
        unlink(path);
    }
    n->incoming_snap = NULL;
}

static void transport_frame_cb(void *arg, raft_id from, uint8_t type, const void *body, size_t len)
{
    struct node *n = arg;
    struct cursor c = cursor_make(body, len);
    uint64_t id;
    if (!cursor_get_u64(&c, &id)) {
        node_log(n, "dropped a short frame of type %u from node %" PRIu64, type, from);
        return;
    }
    if (type == TRANSPORT_FRAME_FORWARD) {
        struct origin o = {NULL, from, id};
        if (n->stopping || raft_role_of(n->raft) != RAFT_LEADER) {
            static const char text[] = "-TRYAGAIN not the leader; retry\r\n";
            origin_reply(n, &o, text, sizeof text - 1);
        } else if (n->store_failed) {
            static const char text[] = "-ERR the leader's store failed; writes are refused\r\n";
            origin_reply(n, &o, text, sizeof text - 1);
        } else {
            add_proposal(n, c.p, c.left, &o);
        }
        return;
    }
    if (type == TRANSPORT_FRAME_FORWARD_REPLY) {
        for (size_t i = 0; i < n->fwds_n; i++) {
            if (n->fwds[i].id == id && n->fwds[i].leader == from) {
                server_reply(n->fwds[i].req, c.p, c.left);
                n->fwds[i] = n->fwds[--n->fwds_n];
                return;
            }
        }
    }
}

static void transport_peer_cb(void *arg, raft_id id, bool up)
{
    struct node *n = arg;
    node_log(n, "peer %" PRIu64 " %s", id, up ? "up" : "down");
}

/* ------------------------------------------------------------------------------------ */
/* Start-up and shutdown. */

int node_parse_addr(const char *text, char *host, size_t host_size, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':') {
            return -1;
        }
        h = text + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            return -1;
        }
        hlen = (size_t)(colon - text);
    }
    if (hlen == 0 || hlen >= host_size) {
        return -1;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p <= 0 || p > 65535) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    if (uv_ip4_addr(host, (int)p, &a4) != 0 && uv_ip6_addr(host, (int)p, &a6) != 0) {
        return -1;
    }
    *port = (int)p;
    return 0;
}

int node_parse_cluster(const char *text,
                       struct node_member *members,
                       char *errmsg,
                       size_t errmsg_size)
{
    int count = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[128];
        if (len == 0 || len >= sizeof item) {
            snprintf(errmsg, errmsg_size, "bad member '%.*s'", (int)len, p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        char *idend;
        errno = 0;
        unsigned long long id = eq != NULL ? strtoull(item, &idend, 10) : 0;
        if (eq == NULL || errno != 0 || idend != eq || id == 0 || id > UINT32_MAX) {
            snprintf(errmsg, errmsg_size, "'%s' is not ID=HOST:PORT", item);
            return -1;
        }
        if (count == RAFT_SERVERS_MAX) {
            snprintf(errmsg, errmsg_size, "more than %d members", RAFT_SERVERS_MAX);
            return -1;
        }
        struct node_member *m = &members[count];
        m->id = id;
        if (node_parse_addr(eq + 1, m->host, sizeof m->host, &m->port) != 0) {
            snprintf(errmsg, errmsg_size, "'%s' is not ID=HOST:PORT", item);
            return -1;
        }
        for (int i = 0; i < count; i++) {
            if (members[i].id == id) {
                snprintf(errmsg, errmsg_size, "id %llu appears twice", id);
                return -1;
            }
        }
        count++;
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    if (count == 0) {
        snprintf(errmsg, errmsg_size, "no members");
        return -1;
    }
    return count;
}

/* The store keeps the configuration as ids; the peers' addresses live in DIR/cluster,
 * written on first start (temporary name, fsync, rename, fsync of the directory). */
static int write_cluster_file(struct node *n, const char *text)
{
    char tmp[fsm_worker_path_bytes_max + 16], path[fsm_worker_path_bytes_max + 16];
    snprintf(tmp, sizeof tmp, "%s/cluster.tmp", n->c->data_dir);
    snprintf(path, sizeof path, "%s/cluster", n->c->data_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return -errno;
    }
    size_t len = strlen(text);
    int rv = 0;
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rv = -errno;
    }
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = -errno;
    }
    if (rv == 0) {
        fsync_dir(n->c->data_dir);
    }
    return rv;
}

static char *read_cluster_file(struct node *n)
{
    char path[fsm_worker_path_bytes_max + 16];
    snprintf(path, sizeof path, "%s/cluster", n->c->data_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *line = calloc(1, 4096);
    lr_assert(line != NULL);
    if (fgets(line, 4096, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

struct load_ctx
{
    struct log_cache *cache;
};

static int load_entry_cb(void *arg, raft_index index, const struct raft_entry *e)
{
    struct load_ctx *lc = arg;
    cache_append(lc->cache, index, e);
    return 0;
}

/* Every layer has closed (the store after its queued writes): the process ends here. */
static void closed_cb(void *arg)
{
    struct node *n = arg;
    lr_assert(n->closing > 0);
    n->closing--;
    if (n->closing == 0) {
        node_log(n, "stopped");
        fflush(stderr);
        exit(n->exit_code);
    }
}

static void stop_node(struct node *n)
{
    if (n->stopping) {
        return;
    }
    n->stopping = true;
    node_log(n, "stopping");
    uv_timer_stop(&n->tick);
    uv_prepare_stop(&n->prepare);
    if (n->snap_pid > 0) {
        kill(n->snap_pid, SIGKILL);
        waitpid(n->snap_pid, NULL, 0);
        n->snap_pid = 0;
    }
    /* Drain the fsm thread: its finished jobs answer their clients. */
    fsm_worker_stop(&n->worker);
    n->worker_started = false;
    static const char down[] = "-TRYAGAIN the node is shutting down\r\n";
    for (size_t i = 0; i < n->props_n; i++) {
        origin_reply(n, &n->props[i].o, down, sizeof down - 1);
        buf_free(&n->props[i].payload);
    }
    n->props_n = 0;
    pending_fail_all(n, unknown_reply);
    for (size_t i = 0; i < n->fwds_n; i++) {
        reply_text(n->fwds[i].req, unknown_reply);
    }
    n->fwds_n = 0;
    for (size_t i = 0; i < n->turn_reads.n; i++) {
        reply_text(n->turn_reads.items[i].req, down);
        free(n->turn_reads.items[i].blob);
    }
    n->turn_reads.n = 0;
    while (n->reads != NULL) {
        struct read_batch *b = n->reads;
        n->reads = b->next;
        for (size_t i = 0; i < b->n; i++) {
            reply_text(b->items[i].req, down);
            free(b->items[i].blob);
        }
        free(b->items);
        free(b);
    }
    for (size_t i = 0; i < n->snap_waiters_n; i++) {
        reply_text(n->snap_waiters[i], down);
    }
    n->snap_waiters_n = 0;
    n->closing = 3;
    server_close(n->srv, closed_cb, n);
    transport_close(n->tr, closed_cb, n);
    store_close(n->store, closed_cb, n);
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_close((uv_handle_t *)&n->prepare, NULL);
    uv_close((uv_handle_t *)&n->sigchld, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    if (signum == SIGCHLD) {
        try_reap(n);
        return;
    }
    stop_node(n);
}

static uint64_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h;
}

/* Everything before the loop runs: load the script (a script that fails stops start-up),
 * the store, the newest snapshot and the log; then start the core and the IO layers. */
static int node_start(struct node *n)
{
    const struct node_config *c = n->c;
    char msg[node_errmsg_bytes];
    char cluster_id[32];
    int rv;

    struct fsm_limits limits = {.instructions_max = 100000000, .memory_bytes_max = 0};
    rv = fsm_open(&n->fsm, c->script, &limits, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot load %s: %s\n", c->script, msg);
        return 1;
    }
    rv = uv_loop_init(&n->loop);
    lr_assert(rv == 0);
    struct store_options so = {.dir = c->data_dir, .map_bytes = c->map_bytes};
    rv = store_open(&n->store, &n->loop, &so, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot open the store in %s: %s\n", c->data_dir, msg);
        return 1;
    }
    struct store_state st;
    rv = store_load(n->store, &st, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot load the store in %s: %s\n", c->data_dir, msg);
        return 1;
    }

    /* The configuration: --cluster on first start, the stored one afterwards. */
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers = 0;
    char *stored = read_cluster_file(n);
    const char *text = st.has_config && stored != NULL && stored[0] != '\0' ? stored : c->cluster;
    if (text == NULL) {
        fprintf(stderr, "luaraft: %s holds no configuration: give --cluster on first start\n",
                c->data_dir);
        free(stored);
        return 1;
    }
    n->n_members = node_parse_cluster(text, n->members, msg, sizeof msg);
    if (n->n_members < 0) {
        fprintf(stderr, "luaraft: bad cluster configuration '%s': %s\n", text, msg);
        free(stored);
        return 1;
    }
    if (st.has_config && c->cluster != NULL && strcmp(text, c->cluster) != 0) {
        node_log(n, "the stored configuration wins over --cluster: %s", text);
    }
    snprintf(cluster_id, sizeof cluster_id, "%016" PRIx64, hash_text(text));
    if (st.has_config) {
        memcpy(servers, st.servers, st.n_servers * sizeof *servers);
        n_servers = st.n_servers;
    } else {
        for (int i = 0; i < n->n_members; i++) {
            servers[n_servers++] = (struct raft_server){n->members[i].id, true};
        }
        rv = write_cluster_file(n, text);
        if (rv != 0) {
            fprintf(stderr, "luaraft: cannot write %s/cluster: %s\n", c->data_dir, strerror(-rv));
            free(stored);
            return 1;
        }
        struct store_write w;
        memset(&w, 0, sizeof w);
        w.config = true;
        w.servers = servers;
        w.n_servers = n_servers;
        /* Requests finish in order, so every later persist implies this one. */
        rv = submit_plain(n, &w);
        if (rv != 0) {
            fprintf(stderr, "luaraft: cannot store the configuration: %s\n", store_strerror(rv));
            free(stored);
            return 1;
        }
    }
    free(stored);
    bool member = false;
    for (int i = 0; i < n->n_members; i++) {
        member = member || n->members[i].id == c->id;
    }
    if (!member) {
        fprintf(stderr, "luaraft: node %" PRIu64 " is not in the cluster configuration\n", c->id);
        return 1;
    }

    /* The newest valid snapshot, then the log after it. */
    raft_index snap_index = 0;
    raft_term snap_term = 0;
    if (snapfile_latest(c->data_dir, &snap_index, &snap_term, n->snap_path, sizeof n->snap_path) ==
        0) {
        rv = fsm_worker_restore_file(n->fsm, n->snap_path, msg, sizeof msg);
        if (rv != 0) {
            fprintf(stderr, "luaraft: %s\n", msg);
            return 1;
        }
    } else {
        n->snap_path[0] = '\0';
    }
    if (st.snapshot_index > snap_index) {
        fprintf(stderr,
                "luaraft: the store records a snapshot at index %" PRIu64
                " but the newest snapshot file in %s is at %" PRIu64 "\n",
                st.snapshot_index, c->data_dir, snap_index);
        return 1;
    }
    n->snap_index = snap_index;
    n->snap_term = snap_term;
    n->cache.first = snap_index + 1;
    if (st.first_index <= st.last_index) {
        if (st.first_index > snap_index + 1) {
            fprintf(stderr,
                    "luaraft: the log in %s starts at %" PRIu64 ", after the snapshot at %" PRIu64
                    "\n",
                    c->data_dir, st.first_index, snap_index);
            return 1;
        }
        struct load_ctx lc = {&n->cache};
        rv = store_read(n->store, st.first_index, st.last_index, load_entry_cb, &lc);
        if (rv != 0) {
            fprintf(stderr, "luaraft: cannot read the log: %s\n", store_strerror(rv));
            return 1;
        }
    }
    /* A snapshot received from a leader is renamed into place before the store request
     * that drops the old log completes; a crash between the two leaves a log that does not
     * hold the snapshot's last entry (and may not even join it). Finish the install as the
     * interrupted request would have: drop that log. */
    /* The log joins the snapshot when it holds the snapshot's last entry, or starts right
     * after it (a local snapshot compacted without a tail). */
    bool log_holds_snapshot =
        snap_index == 0 || (n->cache.n > 0 && n->cache.first == snap_index + 1) ||
        (n->cache.n > 0 && n->cache.first <= snap_index && cache_last(&n->cache) >= snap_index &&
         cache_at(&n->cache, snap_index)->term == snap_term);
    if (snap_index > st.snapshot_index && !log_holds_snapshot) {
        fprintf(stderr,
                "luaraft[%" PRIu64 "]: finishing the install of snapshot %" PRIu64 " (term %" PRIu64
                ") interrupted by a crash: dropping the old log\n",
                c->id, snap_index, snap_term);
        struct store_write w;
        memset(&w, 0, sizeof w);
        w.snapshot = true;
        w.snapshot_index = snap_index;
        w.snapshot_term = snap_term;
        rv = submit_plain(n, &w);
        if (rv != 0) {
            fprintf(stderr, "luaraft: cannot record the snapshot: %s\n", store_strerror(rv));
            return 1;
        }
        cache_reset(&n->cache, snap_index + 1);
    }
    if (n->cache.n == 0 || cache_last(&n->cache) < snap_index + 1) {
        cache_reset(&n->cache, snap_index + 1);
    }
    raft_index n_boot = n->cache.n > 0 && cache_last(&n->cache) > snap_index
                            ? cache_last(&n->cache) - snap_index
                            : 0;
    struct raft_entry *boot_entries = calloc(n_boot + 1, sizeof *boot_entries);
    lr_assert(boot_entries != NULL);
    for (raft_index i = 0; i < n_boot; i++) {
        struct cache_entry *ce = cache_at(&n->cache, snap_index + 1 + i);
        boot_entries[i] = (struct raft_entry){ce->term, ce->type, ce->len, ce->buf};
    }

    struct raft_config rc;
    raft_config_default(&rc, c->id, hash_text(c->data_dir) ^ (uint64_t)wall_ms() ^ c->id);
    rc.election_ticks = c->election_ticks;
    rc.heartbeat_ticks = c->heartbeat_ticks;
    if (rc.log_entries_max < 4 * (c->snapshot_entries + c->snapshot_trailing)) {
        rc.log_entries_max = 4 * (c->snapshot_entries + c->snapshot_trailing);
    }
    struct raft_boot boot = {
        .term = st.term,
        .vote = st.vote,
        .snapshot_index = snap_index,
        .snapshot_term = snap_term,
        .servers = servers,
        .n_servers = n_servers,
        .entries = boot_entries,
        .n_entries = n_boot,
    };
    rv = raft_init(&n->raft, &rc, &boot);
    free(boot_entries);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot start the protocol core: %s\n", raft_strerror(rv));
        return 1;
    }
    n->term = st.term;
    n->role = raft_role_of(n->raft);
    n->applied_sent = snap_index;
    n->applied = snap_index;
    node_log(n,
             "loaded state: vote %" PRIu64 ", snapshot at index %" PRIu64 " (term %" PRIu64
             "), log %" PRIu64 "..%" PRIu64 ", %d members",
             st.vote, snap_index, snap_term, n->cache.n > 0 ? n->cache.first : 0,
             n->cache.n > 0 ? cache_last(&n->cache) : 0, n->n_members);

    rv = fsm_worker_start(&n->worker, &n->loop, n->fsm, snap_index, snap_term, worker_done_cb, n);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot start the fsm thread: %s\n", strerror(-rv));
        return 1;
    }
    n->worker_started = true;

    snprintf(n->client_addr, sizeof n->client_addr,
             strchr(c->listen_host, ':') ? "[%s]:%d" : "%s:%d", c->listen_host, c->listen_port);
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
        .send_queue_bytes_max = node_send_queue_bytes_max,
        .reconnect_ms_min = node_reconnect_ms_min,
        .reconnect_ms_max = node_reconnect_ms_max,
    };
    struct transport_callbacks tcb = {
        .arg = n,
        .recv = transport_recv_cb,
        .snapshot = transport_snapshot_cb,
        .frame = transport_frame_cb,
        .peer = transport_peer_cb,
    };
    rv = transport_start(&n->tr, &n->loop, &to, peers, n_peers, &tcb, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot start the peer transport on %s:%d: %s\n", c->raft_host,
                c->raft_port, msg);
        return 1;
    }
    struct server_options svo = {
        .host = c->listen_host,
        .port = c->listen_port,
        .clients_max = node_clients_max,
        .out_bytes_max = node_client_out_bytes_max,
        .pending_max = node_client_pending_max,
    };
    struct server_callbacks scb = {.arg = n, .command = server_command_cb};
    rv = server_start(&n->srv, &n->loop, &svo, &scb, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "luaraft: cannot serve clients on %s: %s\n", n->client_addr, msg);
        return 1;
    }

    uv_timer_init(&n->loop, &n->tick);
    n->tick.data = n;
    uv_timer_start(&n->tick, tick_cb, c->tick_ms, c->tick_ms);
    uv_prepare_init(&n->loop, &n->prepare);
    n->prepare.data = n;
    uv_prepare_start(&n->prepare, prepare_cb);
    uv_signal_init(&n->loop, &n->sigchld);
    n->sigchld.data = n;
    uv_signal_start(&n->sigchld, signal_cb, SIGCHLD);
    uv_signal_init(&n->loop, &n->sigint);
    n->sigint.data = n;
    uv_signal_start(&n->sigint, signal_cb, SIGINT);
    uv_signal_init(&n->loop, &n->sigterm);
    n->sigterm.data = n;
    uv_signal_start(&n->sigterm, signal_cb, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    node_log(n, "serving clients on %s, peers on %s:%d", n->client_addr, c->raft_host,
             c->raft_port);
    return 0;
}

int node_run(const struct node_config *c)
{
    struct node *n = calloc(1, sizeof *n);
    lr_assert(n != NULL);
    /* Forward ids must not repeat across this node's restarts, or a leader's late answer
     * to a write forwarded before a crash would reach a new client: start at a random
     * point of the 64-bit space. */
    n->fwd_seq = random_u64();
    /* Read ids likewise: the core of a restarted node drops answers to ids it never asked
     * for, but an old answer must not match a new request by chance. */
    n->read_seq = random_u64();
    n->c = c;
    int rv = node_start(n);
    if (rv != 0) {
        /* Start-up failed: the process exits, which releases everything. */
        return rv;
    }
    uv_run(&n->loop, UV_RUN_DEFAULT);
    raft_free(n->raft);
    uv_loop_close(&n->loop);
    node_log(n, "stopped");
    return n->exit_code;
}
