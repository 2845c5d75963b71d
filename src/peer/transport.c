/*
 * Peer links on libuv TCP; see transport.h for the contract.
 *
 * Handles: one listener; per peer, for each of its two lanes (control and bulk), one
 * reconnect timer and one TCP handle (the outgoing connection); one TCP handle per accepted
 * connection; one housekeeping timer that closes incoming connections which do not say who
 * they are in time and frees idle spare buffers. A received snapshot's fsync and check run
 * on the libuv threadpool, each counted like a handle. handles_open counts them all;
 * transport_close() closes them all and frees the transport in the close callback that
 * brings the count to zero.
 *
 * Lanes: a heartbeat must not wait behind a 16 MiB APPEND, neither in our queue nor in the
 * kernel's socket buffers nor in the receiver's read of one frame, or the follower's
 * election timer fires while its leader is alive (Raft paper 5.2: followers time out when
 * no AppendEntries or heartbeat arrives). So each peer gets two outgoing connections with
 * a queue each; message_lane() says which carries what. Within a lane, frames stay in
 * order (the chunks of a snapshot before its SNAPSHOT message; forwarded commands in the
 * order of their clients); across lanes they may overtake each other, which the core
 * tolerates as it tolerates any reordering network (paper 5.3: stale and out-of-order
 * AppendEntries are rejected or ignored; heartbeats carry at most the follower's match).
 *
 * Writing: each lane has a queue of encoded frames (struct out_frame), bounded by
 * send_queue_bytes_max, counting the frames of the write in flight. At most one uv_write is
 * in flight per lane; it takes up to WRITE_FRAMES_MAX frames at once, so that a burst of
 * messages in one loop turn leaves in one system call.
 *
 * Big buffers: on the loop thread, the cost of a big frame is mostly page faults on fresh
 * memory (a 16 MiB frame is 4096 of them; malloc hands out blocks this big as new mappings
 * each time), measured at 10 to 150 ms per 16 MiB on a loaded two-core machine, against an
 * election timeout of 100 ms. So buffers of SPARE_BYTES_MIN and more, sent or received, go
 * back to a few spares and are reused warm; spares unused for SPARE_IDLE_MS are freed.
 */
#include "peer/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/snapfile.h"
#include "peer/wire.h"
#include "util/assert.h"
#include "util/buf.h"

/* Frames handed to one uv_write. */
#define WRITE_FRAMES_MAX 64
/* Room offered to a read when the buffer is full. */
#define READ_BYTES_MIN (64 * 1024)
/* An empty read buffer larger than this is given back. */
#define READ_BUFFER_KEEP_BYTES (4 * READ_BYTES_MIN)
/* Data bytes of one snapshot chunk. */
#define SNAPSHOT_CHUNK_BYTES (1024 * 1024)
/* The next snapshot chunk is read once the bulk queue holds less than this. */
#define SNAPSHOT_QUEUE_LOW_BYTES (4 * 1024 * 1024)
/* An incoming connection must complete its handshake within this time. */
#define HANDSHAKE_MS_MAX 5000
#define HOUSEKEEPING_MS 1000
#define LISTEN_BACKLOG 128
/* Buffers of this size and more are kept as spares after use... */
#define SPARE_BYTES_MIN (1024 * 1024)
/* ...up to this many, of this many bytes in all, */
#define SPARES_MAX 4
#define SPARE_BYTES_MAX (256ULL * 1024 * 1024)
/* ...for this long unused. */
#define SPARE_IDLE_MS 10000
/* Room for an incoming snapshot file's path. */
#define SNAP_PATH_BYTES 512

#define SEND_QUEUE_BYTES_MAX_DEFAULT (64ULL * 1024 * 1024)
#define RECONNECT_MS_MIN_DEFAULT 50
#define RECONNECT_MS_MAX_DEFAULT 2000

_Static_assert(TRANSPORT_FRAME_HEADROOM == WIRE_HEADER_BYTES, "the headroom is one header");
_Static_assert(WIRE_CHUNK_HEADER_BYTES + SNAPSHOT_CHUNK_BYTES <= 4 * 1024 * 1024,
               "a chunk fits the default chunk_bytes_max");
_Static_assert(SNAPSHOT_QUEUE_LOW_BYTES + SNAPSHOT_CHUNK_BYTES + 1024 <=
                   SEND_QUEUE_BYTES_MAX_DEFAULT,
               "pacing stays below the default queue bound");

enum lane { LANE_CONTROL, LANE_BULK, LANES };

static const char *const lane_names[LANES] = {"connection", "bulk connection"};

/* What makes two APPENDs with entries to one peer carry the same entries: one leader (the
 * term) sends the same range after the same point, and a leader never changes an entry of
 * its own log (Raft paper 5.3, Log Matching). commit may differ; heartbeats carry it too. */
struct append_key
{
    raft_term term;
    raft_index prev_index;
    raft_term prev_term;
    uint32_t n_entries;
};

struct out_frame
{
    struct out_frame *next;
    bool keyed; /* an APPEND with entries: key is set */
    struct append_key key;
    struct buf b;
};

struct write_req
{
    uv_write_t req;
    struct link *l;
    struct out_frame *frames; /* the frames this write carries, in order */
    uv_buf_t bufs[WRITE_FRAMES_MAX];
};

/* An outgoing snapshot stream. */
struct snap_send
{
    int fd;
    uint64_t size;
    uint64_t offset;
    struct raft_message m; /* the SNAPSHOT message that follows the last chunk */
};

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP, LINK_CLOSING };

/* One outgoing connection of a peer: the lane's queue, its reconnect timer and backoff. */
struct link
{
    struct peer *p;
    enum lane lane;
    enum link_state state;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer;
    uint32_t backoff_ms;
    uint64_t up_since_ms;
    struct out_frame *head, *tail; /* queued, not yet handed to uv_write */
    uint64_t queue_bytes;          /* queued plus in flight */
    bool writing;
    struct write_req *inflight; /* while writing */
};

enum recv_state {
    RECV_NONE,
    RECV_WRITING,  /* chunks arriving into fd */
    RECV_CHECKING, /* the last chunk is in; fsync and verify run on the threadpool */
    RECV_VERIFIED, /* durable and verified, waiting for its SNAPSHOT message */
};

/*
 * The snapshot file being received from a peer, or the verified one held for it. Kept per
 * peer rather than per connection: a verified file outlives the connection that brought it,
 * so that when its SNAPSHOT message was lost and the leader streams it again, the receiver
 * answers with WIRE_SNAPSHOT_HAVE instead of taking the whole body once more.
 */
struct snap_recv
{
    enum recv_state state;
    int fd; /* while RECV_WRITING, else -1 */
    raft_index index;
    raft_term term;
    uint64_t next_offset;
    uint64_t seq;             /* names the file; tells a finished check if it is still wanted */
    const struct conn *owner; /* the connection whose chunks write the file */
    bool msg_waiting;         /* msg came, to deliver once the file is verified */
    struct raft_message msg;
    char path[SNAP_PATH_BYTES]; /* "" when no file is ours */
};

struct peer
{
    struct transport *t;
    raft_id id;
    char host[64];
    int port;
    struct sockaddr_storage addr;
    struct link links[LANES];
    struct snap_send *snap; /* on the bulk lane */
    struct snap_recv recv;
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1]; /* from its handshake */
};

struct conn
{
    struct transport *t;
    struct conn *next;
    uv_tcp_t tcp;
    bool closing;
    bool bulk;      /* the handshake opened a bulk connection */
    struct peer *p; /* NULL until the handshake */
    uint64_t accepted_ms;
    char addr[64];
    struct buf in;
};

/* The fsync and check of a received snapshot file, on the libuv threadpool. */
struct snap_check
{
    uv_work_t req;
    struct peer *p;
    uint64_t seq;
    int fd;          /* closed by the work */
    const char *why; /* set by the work: NULL when the file is durable and verified */
    int err;         /* errno of a failed fsync or close */
    char path[SNAP_PATH_BYTES];
};

struct spare
{
    struct buf b;
    uint64_t since_ms;
};

struct transport
{
    uv_loop_t *loop;
    raft_id self;
    char cluster_id[WIRE_CLUSTER_ID_BYTES_MAX + 1];
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1];
    char dir[SNAP_PATH_BYTES];
    uint64_t send_queue_bytes_max;
    uint32_t reconnect_ms_min;
    uint32_t reconnect_ms_max;
    struct wire_limits limits;
    struct transport_callbacks cb;
    uv_tcp_t listen;
    uv_timer_t housekeeping;
    struct peer *peers;
    unsigned n_peers;
    struct conn *conns;
    uint64_t snap_seq;      /* names incoming snapshot files uniquely */
    uint8_t *chunk_scratch; /* SNAPSHOT_CHUNK_BYTES, allocated with the first stream */
    struct spare spares[SPARES_MAX];
    unsigned n_spares;
    struct transport_stats stats;
    unsigned handles_open;
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

const char *transport_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "ok";
        case TRANSPORT_ENOTCONN:
            return "not connected to that peer";
        case TRANSPORT_EQUEUE:
            return "send queue full";
        case TRANSPORT_ENOMEM:
            return "out of memory";
        case TRANSPORT_EINVAL:
            return "invalid argument";
        case TRANSPORT_ELISTEN:
            return "cannot listen";
        case TRANSPORT_EIO:
            return "cannot read the snapshot file";
        default:
            return "unknown error";
    }
}

static struct peer *peer_find(const struct transport *t, raft_id id)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i].id == id) {
            return &t->peers[i];
        }
    }
    return NULL;
}

static void spares_free(struct transport *t, uint64_t idle_ms)
{
    uint64_t now = uv_now(t->loop);
    for (unsigned i = 0; i < t->n_spares;) {
        if (now - t->spares[i].since_ms >= idle_ms) {
            buf_free(&t->spares[i].b);
            t->spares[i] = t->spares[--t->n_spares];
        } else {
            i++;
        }
    }
}

/* Every handle's close callback ends here; the last one frees the transport. */
static void transport_handle_gone(struct transport *t)
{
    lr_assert(t->handles_open > 0);
    t->handles_open--;
    if (t->handles_open > 0 || !t->closing) {
        return;
    }
    lr_assert(t->conns == NULL);
    void (*closed)(void *arg) = t->closed;
    void *arg = t->closed_arg;
    spares_free(t, 0);
    free(t->chunk_scratch);
    free(t->peers);
    free(t);
    if (closed != NULL) {
        closed(arg);
    }
}

static void transport_handle_close_cb(uv_handle_t *h)
{
    transport_handle_gone(h->data);
}

static void link_timer_close_cb(uv_handle_t *h)
{
    struct link *l = h->data;
    transport_handle_gone(l->p->t);
}

/* ---------------------------------------------------------------------------------------
 * Frame buffers: big ones are reused warm (see the top of the file)
 * ------------------------------------------------------------------------------------- */

static uint64_t spares_bytes(const struct transport *t)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < t->n_spares; i++) {
        n += t->spares[i].b.cap;
    }
    return n;
}

/* Makes *b an empty buffer with room for n bytes: the smallest spare that fits, or a new
 * allocation of exactly n bytes (buf_reserve would double it). Errors: -1. */
static int frame_buf_get(struct transport *t, struct buf *b, size_t n)
{
    buf_init(b);
    int best = -1;
    for (unsigned i = 0; n >= SPARE_BYTES_MIN && i < t->n_spares; i++) {
        size_t cap = t->spares[i].b.cap;
        if (cap >= n && (best < 0 || cap < t->spares[best].b.cap)) {
            best = (int)i;
        }
    }
    if (best >= 0) {
        *b = t->spares[best].b;
        b->len = 0;
        t->spares[best] = t->spares[--t->n_spares];
        return 0;
    }
    b->data = malloc(n > 0 ? n : 1);
    if (b->data == NULL) {
        return -1;
    }
    b->cap = n;
    return 0;
}

/* Takes *b back (leaving it empty): a big one is kept as a spare while there is room,
 * pushing out a smaller one if need be; the rest are freed. */
static void frame_buf_put(struct transport *t, struct buf *b)
{
    if (b->cap < SPARE_BYTES_MIN || t->closing) {
        buf_free(b);
        return;
    }
    if (t->n_spares == SPARES_MAX || spares_bytes(t) + b->cap > SPARE_BYTES_MAX) {
        unsigned small = 0;
        for (unsigned i = 1; i < t->n_spares; i++) {
            if (t->spares[i].b.cap < t->spares[small].b.cap) {
                small = i;
            }
        }
        if (t->n_spares == 0 || t->spares[small].b.cap >= b->cap) {
            buf_free(b);
            return;
        }
        buf_free(&t->spares[small].b);
        t->spares[small] = t->spares[--t->n_spares];
        if (spares_bytes(t) + b->cap > SPARE_BYTES_MAX) {
            buf_free(b);
            return;
        }
    }
    t->spares[t->n_spares].b = *b;
    t->spares[t->n_spares].since_ms = uv_now(t->loop);
    t->n_spares++;
    buf_init(b);
}

/* A frame with room for n bytes, or NULL. */
static struct out_frame *out_frame_new(struct transport *t, size_t n)
{
    struct out_frame *f = malloc(sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->next = NULL;
    f->keyed = false;
    if (frame_buf_get(t, &f->b, n) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

static void out_frame_free(struct transport *t, struct out_frame *f)
{
    frame_buf_put(t, &f->b);
    free(f);
}

/* ---------------------------------------------------------------------------------------
 * Outgoing connections (links) and their send queues
 * ------------------------------------------------------------------------------------- */

static void link_queue_drop(struct link *l)
{
    while (l->head != NULL) {
        struct out_frame *f = l->head;
        l->head = f->next;
        lr_assert(l->queue_bytes >= f->b.len);
        l->queue_bytes -= f->b.len;
        out_frame_free(l->p->t, f);
    }
    l->tail = NULL;
}

static void snap_send_free(struct peer *p)
{
    if (p->snap != NULL) {
        close(p->snap->fd);
        free(p->snap);
        p->snap = NULL;
    }
}

static void link_flush(struct link *l);
static void link_down(struct link *l, const char *why);
static void peer_snapshot_pump(struct peer *p);

/* Appends an encoded frame to the lane's queue and starts a write if none is running. */
static void link_enqueue(struct link *l, struct out_frame *f)
{
    f->next = NULL;
    if (l->tail == NULL) {
        l->head = f;
    } else {
        l->tail->next = f;
    }
    l->tail = f;
    l->queue_bytes += f->b.len;
    l->p->t->stats.frames_queued[l->lane]++;
    link_flush(l);
}

static void link_write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct link *l = w->l;
    struct transport *t = l->p->t;
    while (w->frames != NULL) {
        struct out_frame *f = w->frames;
        w->frames = f->next;
        lr_assert(l->queue_bytes >= f->b.len);
        l->queue_bytes -= f->b.len;
        out_frame_free(t, f);
    }
    free(w);
    l->writing = false;
    l->inflight = NULL;
    if (l->state != LINK_UP || t->closing) {
        return;
    }
    if (status < 0) {
        link_down(l, uv_strerror(status));
        return;
    }
    if (l->lane == LANE_BULK) {
        peer_snapshot_pump(l->p);
    }
    link_flush(l);
}

/* Gives the frames of a write that never started back. */
static void write_req_abandon(struct link *l, struct write_req *w)
{
    for (struct out_frame *f = w->frames; f != NULL;) {
        struct out_frame *next = f->next;
        l->queue_bytes -= f->b.len;
        out_frame_free(l->p->t, f);
        f = next;
    }
    free(w);
}

/* Hands up to WRITE_FRAMES_MAX queued frames to one uv_write. */
static void link_flush(struct link *l)
{
    if (l->writing || l->head == NULL || l->state != LINK_UP) {
        return;
    }
    struct write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        link_down(l, "out of memory");
        return;
    }
    w->l = l;
    w->frames = l->head;
    unsigned n = 0;
    struct out_frame *last = NULL;
    for (struct out_frame *f = l->head; f != NULL && n < WRITE_FRAMES_MAX; f = f->next) {
        w->bufs[n++] = uv_buf_init((char *)f->b.data, (unsigned)f->b.len);
        last = f;
    }
    l->head = last->next;
    if (l->head == NULL) {
        l->tail = NULL;
    }
    last->next = NULL;
    l->writing = true;
    l->inflight = w;
    int rv = uv_write(&w->req, (uv_stream_t *)&l->tcp, w->bufs, n, link_write_cb);
    if (rv != 0) {
        l->writing = false;
        l->inflight = NULL;
        write_req_abandon(l, w);
        link_down(l, uv_strerror(rv));
    }
}

static void link_connect_start(struct link *l);

static void link_timer_cb(uv_timer_t *timer)
{
    struct link *l = timer->data;
    lr_assert(l->state == LINK_DOWN);
    link_connect_start(l);
}

static void link_schedule_reconnect(struct link *l)
{
    struct transport *t = l->p->t;
    lr_assert(l->state == LINK_DOWN);
    uv_timer_start(&l->timer, link_timer_cb, l->backoff_ms, 0);
    uint64_t next = (uint64_t)l->backoff_ms * 2;
    l->backoff_ms = next > t->reconnect_ms_max ? t->reconnect_ms_max : (uint32_t)next;
}

static void link_tcp_close_cb(uv_handle_t *h)
{
    struct link *l = h->data;
    struct transport *t = l->p->t;
    l->state = LINK_DOWN;
    if (!t->closing) {
        link_schedule_reconnect(l);
    }
    transport_handle_gone(t);
}

/*
 * Ends an outgoing connection: drops what its lane has queued (Raft retries), stops a
 * snapshot stream if it is the bulk lane, tells cb.peer if it is the control lane and had
 * been up, and reconnects after the backoff once the handle has closed.
 */
static void link_down(struct link *l, const char *why)
{
    if (l->state == LINK_CLOSING || l->state == LINK_DOWN) {
        return;
    }
    struct peer *p = l->p;
    struct transport *t = p->t;
    bool was_up = l->state == LINK_UP;
    l->state = LINK_CLOSING;
    link_queue_drop(l);
    if (l->lane == LANE_BULK) {
        snap_send_free(p);
    }
    if (was_up && uv_now(t->loop) - l->up_since_ms >= t->reconnect_ms_max) {
        l->backoff_ms = t->reconnect_ms_min;
    }
    if (was_up && !t->closing) {
        fprintf(stderr, "luaraft: node %" PRIu64 ": %s to node %" PRIu64 " lost: %s\n", t->self,
                lane_names[l->lane], p->id, why);
    }
    uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
    if (was_up && l->lane == LANE_CONTROL && t->cb.peer != NULL && !t->closing) {
        t->cb.peer(t->cb.arg, p->id, false);
    }
}

/* The outgoing side never receives frames: reading only notices the peer going away. */
static void link_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[256];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    (void)buf;
    if (nread < 0) {
        link_down(l, uv_strerror((int)nread));
    } else if (nread > 0) {
        link_down(l, "unexpected bytes from the peer");
    }
}

static int encode_handshake(const struct transport *t, bool bulk, struct buf *b)
{
    struct wire_handshake hs = {
        .node_id = t->self,
        .cluster_id = t->cluster_id,
        .cluster_id_len = (uint16_t)strlen(t->cluster_id),
        .client_addr = t->client_addr,
        .client_addr_len = (uint16_t)strlen(t->client_addr),
        .bulk = bulk,
    };
    return wire_encode_handshake_addr(b, &hs);
}

static void link_connect_cb(uv_connect_t *req, int status)
{
    struct link *l = req->data;
    struct transport *t = l->p->t;
    if (status == UV_ECANCELED || t->closing || l->state != LINK_CONNECTING) {
        return;
    }
    if (status < 0) {
        l->state = LINK_CLOSING;
        uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
        return;
    }
    l->state = LINK_UP;
    l->up_since_ms = uv_now(t->loop);
    uv_tcp_nodelay(&l->tcp, 1);
    int rv = uv_read_start((uv_stream_t *)&l->tcp, link_alloc_cb, link_read_cb);
    struct out_frame *f = out_frame_new(t, 0);
    if (rv != 0 || f == NULL || encode_handshake(t, l->lane == LANE_BULK, &f->b) != 0) {
        if (f != NULL) {
            out_frame_free(t, f);
        }
        link_down(l, "cannot start the connection");
        return;
    }
    link_enqueue(l, f);
    if (l->lane == LANE_CONTROL && t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, l->p->id, true);
    }
}

static void link_connect_start(struct link *l)
{
    struct transport *t = l->p->t;
    int rv = uv_tcp_init(t->loop, &l->tcp);
    lr_assert(rv == 0);
    t->handles_open++;
    l->tcp.data = l;
    l->connect.data = l;
    l->state = LINK_CONNECTING;
    rv =
        uv_tcp_connect(&l->connect, &l->tcp, (const struct sockaddr *)&l->p->addr, link_connect_cb);
    if (rv != 0) {
        l->state = LINK_CLOSING;
        uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
    }
}

/* Queues an encoded frame on a lane, or says why not. Takes f either way. */
static int link_send(struct link *l, struct out_frame *f)
{
    struct transport *t = l->p->t;
    if (l->state != LINK_UP) {
        out_frame_free(t, f);
        return TRANSPORT_ENOTCONN;
    }
    if (l->queue_bytes + f->b.len > t->send_queue_bytes_max) {
        out_frame_free(t, f);
        return TRANSPORT_EQUEUE;
    }
    link_enqueue(l, f);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Received snapshots: chunks into a file, fsync and check on the threadpool, delivery
 * ------------------------------------------------------------------------------------- */

/* Forgets the file (closing and deleting it) unless it was handed over. A check still
 * running finds its file no longer wanted when it ends (see snap_check_done). */
static void snap_recv_discard(struct snap_recv *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->path[0] != '\0') {
        unlink(s->path);
        s->path[0] = '\0';
    }
    s->state = RECV_NONE;
    s->msg_waiting = false;
    s->owner = NULL;
}

/* Logs why an incoming snapshot was given up and deletes its file. */
static void snap_recv_fail(struct peer *p, const char *why)
{
    fprintf(stderr, "luaraft: node %" PRIu64 ": snapshot from node %" PRIu64 " dropped: %s\n",
            p->t->self, p->id, why);
    snap_recv_discard(&p->recv);
}

/* True when s already has the whole snapshot (index, term), being checked or verified. */
static bool snap_recv_holds(const struct snap_recv *s, raft_index index, raft_term term)
{
    return (s->state == RECV_CHECKING || s->state == RECV_VERIFIED) && s->index == index &&
           s->term == term;
}

/* Hands the verified file and its SNAPSHOT message to cb.snapshot; the callee owns it. */
static void snap_recv_deliver(struct peer *p)
{
    struct transport *t = p->t;
    struct snap_recv *s = &p->recv;
    lr_assert(s->state == RECV_VERIFIED && s->msg_waiting);
    char path[sizeof(s->path)];
    memcpy(path, s->path, sizeof(path));
    struct raft_message m = s->msg;
    s->path[0] = '\0';
    snap_recv_discard(s);
    if (t->cb.snapshot != NULL) {
        t->cb.snapshot(t->cb.arg, &m, path);
    } else {
        unlink(path);
    }
}

/* On the threadpool: makes the file durable, then checks its trailer and checksum. Both
 * are proportional to the snapshot's size, so they stay off the loop thread. */
static void snap_check_work(uv_work_t *req)
{
    struct snap_check *ck = req->data;
    int rv = fsync(ck->fd);
    int err = errno;
    if (close(ck->fd) != 0 && rv == 0) {
        rv = -1;
        err = errno;
    }
    if (rv != 0) {
        ck->why = "cannot make the file durable";
        ck->err = err;
        return;
    }
    uint64_t body_bytes = 0;
    if (snapfile_verify(ck->path, &body_bytes) != 0) {
        ck->why = "the file does not verify";
    }
}

static void snap_check_done(uv_work_t *req, int status)
{
    struct snap_check *ck = req->data;
    struct peer *p = ck->p;
    struct transport *t = p->t;
    struct snap_recv *s = &p->recv;
    (void)status;
    if (t->closing || s->state != RECV_CHECKING || s->seq != ck->seq) {
        unlink(ck->path); /* given up meanwhile */
    } else if (ck->why != NULL) {
        char why[128];
        snprintf(why, sizeof(why), "%s%s%s", ck->why, ck->err != 0 ? ": " : "",
                 ck->err != 0 ? strerror(ck->err) : "");
        snap_recv_fail(p, why);
    } else {
        s->state = RECV_VERIFIED;
        if (s->msg_waiting) {
            snap_recv_deliver(p);
        }
    }
    free(ck);
    transport_handle_gone(t); /* last: it may free the transport */
}

/* The last chunk is in: fsync and verify on the threadpool. */
static void snap_check_start(struct peer *p)
{
    struct transport *t = p->t;
    struct snap_recv *s = &p->recv;
    struct snap_check *ck = calloc(1, sizeof(*ck));
    if (ck == NULL) {
        snap_recv_fail(p, "out of memory");
        return;
    }
    ck->req.data = ck;
    ck->p = p;
    ck->seq = s->seq;
    ck->fd = s->fd;
    memcpy(ck->path, s->path, sizeof(ck->path));
    if (uv_queue_work(t->loop, &ck->req, snap_check_work, snap_check_done) != 0) {
        free(ck);
        snap_recv_fail(p, "cannot start the check");
        return;
    }
    t->handles_open++;
    s->fd = -1; /* the work closes it */
    s->state = RECV_CHECKING;
}

/* Writes all of data at offset; false with errno set on failure. */
static bool write_all(int fd, const uint8_t *data, size_t len, uint64_t offset)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, data, len, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        data += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return true;
}

static void send_have(struct peer *p, raft_index index, raft_term term);

/* A chunk at offset 0: a new file for a new snapshot, dropping any earlier one. */
static bool snap_recv_begin(struct conn *c, const struct wire_chunk *ch)
{
    struct peer *p = c->p;
    struct snap_recv *s = &p->recv;
    snap_recv_discard(s);
    s->seq = ++c->t->snap_seq;
    int n = snprintf(s->path, sizeof(s->path), "%s/incoming-%" PRIu64 "-%" PRIu64 ".part",
                     c->t->dir, p->id, s->seq);
    if (n < 0 || (size_t)n >= sizeof(s->path)) {
        s->path[0] = '\0';
        snap_recv_fail(p, "path too long");
        return false;
    }
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        s->path[0] = '\0';
        snap_recv_fail(p, strerror(errno));
        return false;
    }
    s->state = RECV_WRITING;
    s->owner = c;
    s->index = ch->index;
    s->term = ch->term;
    s->next_offset = 0;
    return true;
}

/*
 * Adds a chunk to the peer's incoming snapshot file. A chunk at offset 0 starts a new file
 * (dropping any earlier one); any other chunk must continue the current file exactly, on
 * the same connection. The last chunk starts the fsync and check. A chunk of a snapshot
 * already held whole is not written again: at offset 0 it is answered with
 * WIRE_SNAPSHOT_HAVE, so that the sender skips to the SNAPSHOT message.
 */
static void conn_chunk(struct conn *c, const struct wire_chunk *ch)
{
    struct peer *p = c->p;
    struct snap_recv *s = &p->recv;
    if (snap_recv_holds(s, ch->index, ch->term)) {
        if (ch->offset == 0) {
            send_have(p, ch->index, ch->term);
        }
        return;
    }
    if (ch->offset == 0) {
        if (!snap_recv_begin(c, ch)) {
            return;
        }
    } else if (s->state != RECV_WRITING || s->owner != c || s->index != ch->index ||
               s->term != ch->term || s->next_offset != ch->offset) {
        if (s->state == RECV_WRITING) {
            snap_recv_fail(p, "chunk out of sequence");
        }
        return;
    }
    if (!write_all(s->fd, ch->data, ch->len, ch->offset)) {
        snap_recv_fail(p, strerror(errno));
        return;
    }
    s->next_offset += ch->len;
    if (ch->last) {
        snap_check_start(p);
    }
}

/* The SNAPSHOT message: delivered with its file once that is verified. */
static void conn_snapshot_message(struct conn *c, struct raft_message *m)
{
    struct peer *p = c->p;
    struct snap_recv *s = &p->recv;
    if (!snap_recv_holds(s, m->snapshot.index, m->snapshot.term)) {
        /* Keep whatever else is held: it may still be asked for. */
        fprintf(stderr,
                "luaraft: node %" PRIu64 ": snapshot from node %" PRIu64
                " dropped: SNAPSHOT message without its file\n",
                c->t->self, p->id);
        return;
    }
    s->msg = *m;
    s->msg_waiting = true;
    if (s->state == RECV_VERIFIED) {
        snap_recv_deliver(p);
    }
}

/* ---------------------------------------------------------------------------------------
 * Incoming connections
 * ------------------------------------------------------------------------------------- */

static void conn_close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct transport *t = c->t;
    for (struct conn **pp = &t->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    frame_buf_put(t, &c->in);
    free(c);
    transport_handle_gone(t);
}

/* Closes an incoming connection, with the log line when why is not NULL. A file it was
 * writing is dropped; a verified one stays held for its peer. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    struct transport *t = c->t;
    c->closing = true;
    if (why != NULL) {
        fprintf(stderr, "luaraft: node %" PRIu64 ": peer %s from %s closed: %s\n", t->self,
                c->bulk ? "bulk connection" : "connection", c->addr, why);
    }
    if (c->p != NULL && c->p->recv.state == RECV_WRITING && c->p->recv.owner == c) {
        snap_recv_discard(&c->p->recv);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    if (c->p != NULL && !c->bulk && t->cb.peer != NULL && !t->closing) {
        t->cb.peer(t->cb.arg, c->p->id, false);
    }
}

/* Offers the buffer's free room; grows it only when it is full, so that a buffer sized
 * for one big frame (conn_grow) is not doubled for its last bytes. */
static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->in.cap == c->in.len && buf_reserve(&c->in, READ_BYTES_MIN) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

/* Makes room for a frame of need bytes at the front of the buffer. Errors: -1. */
static int conn_grow(struct conn *c, size_t need)
{
    if (need < SPARE_BYTES_MIN) {
        return buf_reserve(&c->in, need - c->in.len) == 0 ? 0 : -1;
    }
    struct buf b;
    if (frame_buf_get(c->t, &b, need) != 0) {
        return -1;
    }
    if (c->in.len > 0) {
        memcpy(b.data, c->in.data, c->in.len);
    }
    b.len = c->in.len;
    frame_buf_put(c->t, &c->in);
    c->in = b;
    return 0;
}

static const char *conn_handshake(struct conn *c, const struct wire_handshake *hs)
{
    struct transport *t = c->t;
    if (hs->cluster_id_len != strlen(t->cluster_id) ||
        memcmp(hs->cluster_id, t->cluster_id, hs->cluster_id_len) != 0) {
        return "handshake from another cluster";
    }
    struct peer *p = peer_find(t, hs->node_id);
    if (p == NULL) {
        return "handshake from an unknown node id";
    }
    memcpy(p->client_addr, hs->client_addr != NULL ? hs->client_addr : "", hs->client_addr_len);
    p->client_addr[hs->client_addr_len] = '\0';
    c->p = p;
    c->bulk = hs->bulk;
    if (!c->bulk && t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, p->id, true);
    }
    return NULL;
}

static void snap_send_have(struct peer *p, const struct wire_have *h);

/* Acts on one decoded frame; returns why the connection must close, or NULL. */
static const char *conn_dispatch(struct conn *c, struct wire_frame *f)
{
    struct transport *t = c->t;
    if (c->p == NULL) {
        if (f->type != WIRE_HANDSHAKE) {
            return "first frame is not a handshake";
        }
        return conn_handshake(c, &f->handshake);
    }
    switch (f->type) {
        case WIRE_HANDSHAKE:
            return "second handshake";
        case WIRE_SNAPSHOT_CHUNK:
            conn_chunk(c, &f->chunk);
            return NULL;
        case WIRE_SNAPSHOT_HAVE:
            snap_send_have(c->p, &f->have);
            return NULL;
        default:
            break;
    }
    if (f->type >= WIRE_NODE_FRAME_MIN) {
        if (t->cb.frame != NULL) {
            t->cb.frame(t->cb.arg, c->p->id, f->type, f->node.body, f->node.len);
        }
        return NULL;
    }
    struct raft_message *m = &f->msg;
    if (m->from != c->p->id || m->to != t->self) {
        return "message not from the authenticated peer to this node";
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        conn_snapshot_message(c, m);
    } else if (t->cb.recv != NULL) {
        t->cb.recv(t->cb.arg, m);
    }
    return NULL;
}

/* Decodes and dispatches the frame at the front of the buffer. Returns its size, 0 when it
 * is not all in yet (with room made for it), or -1 with *why set. */
static int64_t conn_frame(struct conn *c, size_t pos, const char **why)
{
    struct transport *t = c->t;
    struct wire_header h;
    int rv = wire_decode_header(c->in.data + pos, &t->limits, &h);
    if (rv != 0) {
        *why = wire_strerror(rv);
        return -1;
    }
    bool handshake = h.type == WIRE_HANDSHAKE || h.type == WIRE_HANDSHAKE_BULK;
    if (c->p == NULL && !handshake) {
        *why = "first frame is not a handshake";
        return -1;
    }
    size_t need = WIRE_HEADER_BYTES + (size_t)h.length;
    if (c->in.len - pos < need) {
        return 0;
    }
    struct wire_frame f;
    rv = wire_decode_body(&h, c->in.data + pos + WIRE_HEADER_BYTES, &t->limits, &f);
    if (rv != 0) {
        *why = wire_strerror(rv);
        return -1;
    }
    *why = conn_dispatch(c, &f);
    wire_frame_free(&f);
    return *why != NULL ? -1 : (int64_t)need;
}

/*
 * Decodes and dispatches every whole frame in the connection's buffer. A bad header closes
 * the connection as soon as its 16 bytes are in, before room for its body is reserved.
 */
static void conn_process(struct conn *c)
{
    struct transport *t = c->t;
    size_t pos = 0;
    const char *why = NULL;
    while (!c->closing && !t->closing && c->in.len - pos >= WIRE_HEADER_BYTES) {
        int64_t n = conn_frame(c, pos, &why);
        if (n < 0) {
            break;
        }
        if (n == 0) {
            buf_consume(&c->in, pos);
            pos = 0;
            size_t need = WIRE_HEADER_BYTES + (size_t)be_get_u32(c->in.data + 8);
            if (need > c->in.cap && conn_grow(c, need) != 0) {
                why = "out of memory";
            }
            break;
        }
        pos += (size_t)n;
    }
    if (c->closing || t->closing) {
        return;
    }
    if (why != NULL) {
        conn_close(c, why);
        return;
    }
    buf_consume(&c->in, pos);
    /* Give back the room a big frame needed once it has been handled. */
    if (c->in.len == 0 && c->in.cap > READ_BUFFER_KEEP_BYTES) {
        frame_buf_put(t, &c->in);
    }
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread == UV_EOF) {
        conn_close(c, c->p == NULL ? "closed before the handshake" : NULL);
        return;
    }
    if (nread < 0) {
        conn_close(c, uv_strerror((int)nread));
        return;
    }
    lr_assert(c->in.len + (size_t)nread <= c->in.cap);
    c->in.len += (size_t)nread;
    conn_process(c);
}

static void conn_name(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(c->addr, sizeof(c->addr), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    char ip[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    }
    snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, port);
}

static void transport_accept_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status < 0 || t->closing) {
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->t = t;
    buf_init(&c->in);
    int rv = uv_tcp_init(t->loop, &c->tcp);
    lr_assert(rv == 0);
    t->handles_open++;
    c->tcp.data = c;
    c->next = t->conns;
    t->conns = c;
    c->accepted_ms = uv_now(t->loop);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        return;
    }
    conn_name(c);
    uv_tcp_nodelay(&c->tcp, 1);
    rv = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv));
    }
}

/* Closes incoming connections that have not said who they are in HANDSHAKE_MS_MAX, and
 * frees spare buffers left unused for SPARE_IDLE_MS. */
static void transport_housekeeping_cb(uv_timer_t *timer)
{
    struct transport *t = timer->data;
    uint64_t now = uv_now(t->loop);
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->p == NULL && !c->closing && now - c->accepted_ms >= HANDSHAKE_MS_MAX) {
            conn_close(c, "no handshake in time");
        }
    }
    spares_free(t, SPARE_IDLE_MS);
}

/* ---------------------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------------------- */

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (port < 0 || port > 65535) {
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        return 0;
    }
    return -1;
}

static void start_failed_close_cb(uv_handle_t *h)
{
    struct transport *t = h->data;
    free(t->peers);
    free(t);
}

static int copy_options(struct transport *t,
                        const struct transport_options *o,
                        char *errmsg,
                        size_t errmsg_size)
{
    const char *client_addr = o->client_addr != NULL ? o->client_addr : "";
    size_t cluster_len = o->cluster_id != NULL ? strlen(o->cluster_id) : 0;
    if (o->self == 0 || cluster_len == 0 || cluster_len > WIRE_CLUSTER_ID_BYTES_MAX ||
        strlen(client_addr) > WIRE_CLIENT_ADDR_BYTES_MAX || o->dir == NULL ||
        strlen(o->dir) >= sizeof(t->dir) - 64) {
        snprintf(errmsg, errmsg_size,
                 "transport: bad self id, cluster id, client address "
                 "or directory");
        return TRANSPORT_EINVAL;
    }
    t->self = o->self;
    memcpy(t->cluster_id, o->cluster_id, cluster_len + 1);
    memcpy(t->client_addr, client_addr, strlen(client_addr) + 1);
    memcpy(t->dir, o->dir, strlen(o->dir) + 1);
    t->send_queue_bytes_max =
        o->send_queue_bytes_max > 0 ? o->send_queue_bytes_max : SEND_QUEUE_BYTES_MAX_DEFAULT;
    t->reconnect_ms_min = o->reconnect_ms_min > 0 ? o->reconnect_ms_min : RECONNECT_MS_MIN_DEFAULT;
    t->reconnect_ms_max = o->reconnect_ms_max > 0 ? o->reconnect_ms_max : RECONNECT_MS_MAX_DEFAULT;
    if (t->reconnect_ms_max < t->reconnect_ms_min) {
        t->reconnect_ms_max = t->reconnect_ms_min;
    }
    wire_limits_default(&t->limits);
    return 0;
}

static void peer_init(struct transport *t, struct peer *p, const struct transport_peer *from)
{
    p->t = t;
    p->id = from->id;
    p->port = from->port;
    memcpy(p->host, from->host, sizeof(p->host));
    p->host[sizeof(p->host) - 1] = '\0';
    p->recv.fd = -1;
    for (int lane = 0; lane < LANES; lane++) {
        struct link *l = &p->links[lane];
        l->p = p;
        l->lane = (enum lane)lane;
        l->state = LINK_DOWN;
        l->backoff_ms = t->reconnect_ms_min;
    }
}

static int copy_peers(struct transport *t,
                      const struct transport_peer *peers,
                      unsigned n_peers,
                      char *errmsg,
                      size_t errmsg_size)
{
    t->peers = calloc(n_peers > 0 ? n_peers : 1, sizeof(*t->peers));
    if (t->peers == NULL) {
        snprintf(errmsg, errmsg_size, "transport: out of memory");
        return TRANSPORT_ENOMEM;
    }
    t->n_peers = n_peers;
    for (unsigned i = 0; i < n_peers; i++) {
        struct peer *p = &t->peers[i];
        peer_init(t, p, &peers[i]);
        bool dup = peer_find(t, p->id) != p;
        if (p->id == 0 || p->id == t->self || dup || parse_addr(p->host, p->port, &p->addr)) {
            snprintf(errmsg, errmsg_size, "transport: bad peer %" PRIu64 " at %s:%d", p->id,
                     p->host, p->port);
            return TRANSPORT_EINVAL;
        }
    }
    return 0;
}

static int transport_listen(struct transport *t,
                            const struct transport_options *o,
                            char *errmsg,
                            size_t errmsg_size)
{
    const char *host = o->listen_host != NULL ? o->listen_host : "0.0.0.0";
    struct sockaddr_storage ss;
    if (parse_addr(host, o->listen_port, &ss) != 0) {
        snprintf(errmsg, errmsg_size, "transport: bad listen address %s:%d", host, o->listen_port);
        return TRANSPORT_EINVAL;
    }
    int rv = uv_tcp_bind(&t->listen, (const struct sockaddr *)&ss, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listen, LISTEN_BACKLOG, transport_accept_cb);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "transport: cannot listen on %s:%d: %s", host, o->listen_port,
                 uv_strerror(rv));
        return TRANSPORT_ELISTEN;
    }
    return 0;
}

/* Starts the housekeeping timer and every peer's links. */
static void transport_start_handles(struct transport *t)
{
    int rv = uv_timer_init(t->loop, &t->housekeeping);
    lr_assert(rv == 0);
    t->handles_open++;
    t->housekeeping.data = t;
    uv_timer_start(&t->housekeeping, transport_housekeeping_cb, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    uv_unref((uv_handle_t *)&t->housekeeping);
    for (unsigned i = 0; i < t->n_peers; i++) {
        for (int lane = 0; lane < LANES; lane++) {
            struct link *l = &t->peers[i].links[lane];
            rv = uv_timer_init(t->loop, &l->timer);
            lr_assert(rv == 0);
            t->handles_open++;
            l->timer.data = l;
            link_connect_start(l);
        }
    }
}

int transport_start(struct transport **out,
                    uv_loop_t *loop,
                    const struct transport_options *o,
                    const struct transport_peer *peers,
                    unsigned n_peers,
                    const struct transport_callbacks *cb,
                    char *errmsg,
                    size_t errmsg_size)
{
    struct transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(errmsg, errmsg_size, "transport: out of memory");
        return TRANSPORT_ENOMEM;
    }
    t->loop = loop;
    t->cb = *cb;
    int rv = copy_options(t, o, errmsg, errmsg_size);
    if (rv == 0) {
        rv = copy_peers(t, peers, n_peers, errmsg, errmsg_size);
    }
    if (rv != 0) {
        free(t->peers);
        free(t);
        return rv;
    }
    rv = uv_tcp_init(loop, &t->listen);
    lr_assert(rv == 0);
    t->listen.data = t;
    rv = transport_listen(t, o, errmsg, errmsg_size);
    if (rv != 0) {
        /* The handle must close before its memory goes: the close callback frees t. */
        uv_close((uv_handle_t *)&t->listen, start_failed_close_cb);
        return rv;
    }
    t->handles_open = 1;
    transport_start_handles(t);
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Send
 * ------------------------------------------------------------------------------------- */

/*
 * The lane of a raft message: bulk for what carries log entries, and for the SNAPSHOT
 * message, which must follow its chunks; control for everything an election, a heartbeat
 * round or a read index depends on (votes, heartbeats, responses, probes without entries).
 */
static enum lane message_lane(const struct raft_message *m)
{
    if ((m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) || m->type == RAFT_MSG_SNAPSHOT) {
        return LANE_BULK;
    }
    return LANE_CONTROL;
}

/* Encodes m into a new frame, or NULL (*rv says why). */
static struct out_frame *encode_message(struct transport *t, const struct raft_message *m, int *rv)
{
    struct out_frame *f = out_frame_new(t, wire_message_bytes(m));
    if (f == NULL) {
        *rv = TRANSPORT_ENOMEM;
        return NULL;
    }
    int wrv = wire_encode_message(&f->b, m);
    if (wrv != 0) {
        out_frame_free(t, f);
        *rv = wrv == WIRE_ENOMEM ? TRANSPORT_ENOMEM : TRANSPORT_EINVAL;
        return NULL;
    }
    return f;
}

static bool frames_hold(const struct out_frame *f, const struct append_key *k)
{
    for (; f != NULL; f = f->next) {
        if (f->keyed && memcmp(&f->key, k, sizeof(*k)) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * True when an APPEND with the same entries is still queued or being written on the lane.
 * The core sends an APPEND again when it thinks the first was lost (a probe retried at a
 * heartbeat response, a window stalled for two election timeouts: src/raft/replicate.c);
 * with heartbeats on their own lane, that happens while a big first copy is still on its
 * way, and each copy would cost a copy of the payload and the socket's time. The first copy
 * is not lost while it is here: it is lost only with the connection, and a copy queued
 * behind it would be lost with it.
 */
static bool link_holds_append(const struct link *l, const struct append_key *k)
{
    return frames_hold(l->head, k) || (l->inflight != NULL && frames_hold(l->inflight->frames, k));
}

int transport_send(struct transport *t, const struct raft_message *m)
{
    lr_assert(!t->closing);
    struct peer *p = peer_find(t, m->to);
    if (p == NULL || wire_message_bytes(m) - WIRE_HEADER_BYTES > t->limits.frame_bytes_max) {
        return TRANSPORT_EINVAL;
    }
    struct link *l = &p->links[message_lane(m)];
    if (l->state != LINK_UP) {
        return TRANSPORT_ENOTCONN;
    }
    struct append_key k;
    bool keyed = m->type == RAFT_MSG_APPEND && m->append.n_entries > 0;
    if (keyed) {
        memset(&k, 0, sizeof(k)); /* compared with memcmp: no stray padding bytes */
        k.term = m->term;
        k.prev_index = m->append.prev_index;
        k.prev_term = m->append.prev_term;
        k.n_entries = m->append.n_entries;
        if (link_holds_append(l, &k)) {
            t->stats.appends_coalesced++;
            return 0;
        }
    }
    int rv = 0;
    struct out_frame *f = encode_message(t, m, &rv);
    if (f == NULL) {
        return rv;
    }
    f->keyed = keyed;
    if (keyed) {
        f->key = k;
    }
    return link_send(l, f);
}

int transport_send_frame(struct transport *t,
                         raft_id to,
                         uint8_t type,
                         const void *body,
                         size_t len)
{
    lr_assert(!t->closing);
    struct peer *p = peer_find(t, to);
    if (p == NULL || type < WIRE_NODE_FRAME_MIN || len > t->limits.frame_bytes_max) {
        return TRANSPORT_EINVAL;
    }
    /* Node frames keep one order among themselves (forwarded commands are proposed in the
     * order they were sent), and may be big: the bulk lane. */
    struct link *l = &p->links[LANE_BULK];
    if (l->state != LINK_UP) {
        return TRANSPORT_ENOTCONN;
    }
    struct out_frame *f = out_frame_new(t, WIRE_HEADER_BYTES + len);
    if (f == NULL) {
        return TRANSPORT_ENOMEM;
    }
    if (wire_encode_node_frame(&f->b, type, body, len) != 0) {
        out_frame_free(t, f);
        return TRANSPORT_ENOMEM;
    }
    return link_send(l, f);
}

int transport_send_frame_buf(struct transport *t, raft_id to, uint8_t type, struct buf *frame)
{
    lr_assert(!t->closing);
    struct buf b = *frame;
    buf_init(frame);
    struct peer *p = peer_find(t, to);
    int rv = 0;
    if (p == NULL || type < WIRE_NODE_FRAME_MIN || b.len < WIRE_HEADER_BYTES ||
        b.len - WIRE_HEADER_BYTES > t->limits.frame_bytes_max) {
        rv = TRANSPORT_EINVAL;
    } else if (p->links[LANE_BULK].state != LINK_UP) {
        rv = TRANSPORT_ENOTCONN;
    }
    struct out_frame *f = rv == 0 ? malloc(sizeof(*f)) : NULL;
    if (f == NULL) {
        buf_free(&b);
        return rv != 0 ? rv : TRANSPORT_ENOMEM;
    }
    f->next = NULL;
    f->keyed = false;
    f->b = b;
    rv = wire_seal_node_frame(f->b.data, type, f->b.len - WIRE_HEADER_BYTES);
    lr_assert(rv == 0); /* the length was checked against frame_bytes_max */
    return link_send(&p->links[LANE_BULK], f);
}

/* Tells peer p, on the control lane, that its snapshot (index, term) is here already.
 * Best effort: if it is lost, the stream just goes on to its end. */
static void send_have(struct peer *p, raft_index index, raft_term term)
{
    struct transport *t = p->t;
    struct wire_have h = {.index = index, .term = term};
    struct out_frame *f = out_frame_new(t, WIRE_HEADER_BYTES + WIRE_HAVE_BYTES);
    if (f == NULL) {
        return;
    }
    if (wire_encode_have(&f->b, &h) != 0) {
        out_frame_free(t, f);
        return;
    }
    link_send(&p->links[LANE_CONTROL], f);
}

/* Ends the stream: queues its SNAPSHOT message behind the chunks. The queue bound does not
 * apply to it (it is tiny, and dropping it would waste the whole file). */
static void snap_send_finish(struct peer *p)
{
    struct raft_message m = p->snap->m;
    snap_send_free(p);
    struct link *l = &p->links[LANE_BULK];
    int rv = 0;
    struct out_frame *f = encode_message(p->t, &m, &rv);
    if (f != NULL && l->state == LINK_UP) {
        link_enqueue(l, f);
    } else if (f != NULL) {
        out_frame_free(p->t, f);
    }
}

/* The receiver holds the snapshot being streamed to it: skip to the SNAPSHOT message. */
static void snap_send_have(struct peer *p, const struct wire_have *h)
{
    if (p->snap == NULL || p->snap->m.snapshot.index != h->index ||
        p->snap->m.snapshot.term != h->term) {
        return; /* that stream is over, or another one runs */
    }
    p->t->stats.snapshots_held++;
    snap_send_finish(p);
}

/* Reads the stream's next chunk into a new frame, or returns NULL with the stream ended. */
static struct out_frame *snap_read_chunk(struct peer *p)
{
    struct transport *t = p->t;
    struct snap_send *s = p->snap;
    uint64_t left = s->size - s->offset;
    uint32_t n = left < SNAPSHOT_CHUNK_BYTES ? (uint32_t)left : SNAPSHOT_CHUNK_BYTES;
    struct out_frame *f = out_frame_new(t, WIRE_HEADER_BYTES + WIRE_CHUNK_HEADER_BYTES + n);
    /* The encoder copies the data behind the chunk header, so read it elsewhere first. */
    uint8_t *scratch = t->chunk_scratch;
    ssize_t got = f != NULL && n > 0 ? pread(s->fd, scratch, n, (off_t)s->offset) : 0;
    if (f == NULL || got != (ssize_t)n) {
        fprintf(stderr, "luaraft: node %" PRIu64 ": snapshot to node %" PRIu64 " stopped: %s\n",
                t->self, p->id, f == NULL ? "out of memory" : "cannot read the file");
        if (f != NULL) {
            out_frame_free(t, f);
        }
        snap_send_free(p);
        return NULL;
    }
    struct wire_chunk ch = {
        .index = s->m.snapshot.index,
        .term = s->m.snapshot.term,
        .offset = s->offset,
        .last = s->offset + n == s->size,
        .data = scratch,
        .len = n,
    };
    int rv = wire_encode_chunk(&f->b, &ch);
    lr_assert(rv == 0); /* room reserved above */
    s->offset += n;
    t->stats.snapshot_bytes_sent += n;
    return f;
}

/*
 * Reads and queues snapshot chunks while the bulk queue is below the low-water mark; after
 * the last chunk queues the SNAPSHOT message and ends the stream. Called when the stream
 * starts and after every completed bulk write, so the file is paced by the socket.
 */
static void peer_snapshot_pump(struct peer *p)
{
    struct link *l = &p->links[LANE_BULK];
    while (p->snap != NULL && l->state == LINK_UP && l->queue_bytes < SNAPSHOT_QUEUE_LOW_BYTES) {
        struct out_frame *f = snap_read_chunk(p);
        if (f == NULL) {
            return;
        }
        bool last = p->snap->offset == p->snap->size;
        link_enqueue(l, f);
        if (last && p->snap != NULL) {
            snap_send_finish(p);
        }
    }
}

int transport_send_snapshot(struct transport *t, const struct raft_message *m, const char *path)
{
    lr_assert(!t->closing);
    lr_assert(m->type == RAFT_MSG_SNAPSHOT);
    struct peer *p = peer_find(t, m->to);
    if (p == NULL) {
        return TRANSPORT_EINVAL;
    }
    if (p->links[LANE_BULK].state != LINK_UP) {
        return TRANSPORT_ENOTCONN;
    }
    if (p->snap != NULL) {
        if (p->snap->m.snapshot.index == m->snapshot.index) {
            return 0;
        }
        snap_send_free(p);
    }
    if (t->chunk_scratch == NULL) {
        t->chunk_scratch = malloc(SNAPSHOT_CHUNK_BYTES);
        if (t->chunk_scratch == NULL) {
            return TRANSPORT_ENOMEM;
        }
    }
    struct snap_send *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TRANSPORT_ENOMEM;
    }
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (s->fd < 0 || fstat(s->fd, &st) != 0) {
        if (s->fd >= 0) {
            close(s->fd);
        }
        free(s);
        return TRANSPORT_EIO;
    }
    s->size = (uint64_t)st.st_size;
    s->m = *m;
    p->snap = s;
    peer_snapshot_pump(p);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * State, close
 * ------------------------------------------------------------------------------------- */

bool transport_connected(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->links[LANE_CONTROL].state == LINK_UP;
}

const char *transport_client_addr(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->client_addr[0] != '\0' ? p->client_addr : NULL;
}

void transport_get_stats(const struct transport *t, struct transport_stats *out)
{
    *out = t->stats;
}

static void peer_close(struct peer *p)
{
    for (int lane = 0; lane < LANES; lane++) {
        struct link *l = &p->links[lane];
        uv_close((uv_handle_t *)&l->timer, link_timer_close_cb);
        link_queue_drop(l);
        if (l->state == LINK_CONNECTING || l->state == LINK_UP) {
            l->state = LINK_CLOSING;
            uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
        }
    }
    snap_send_free(p);
    snap_recv_discard(&p->recv);
}

void transport_close(struct transport *t, void (*closed)(void *arg), void *arg)
{
    lr_assert(!t->closing);
    t->closing = true;
    t->closed = closed;
    t->closed_arg = arg;
    uv_close((uv_handle_t *)&t->listen, transport_handle_close_cb);
    uv_close((uv_handle_t *)&t->housekeeping, transport_handle_close_cb);
    for (unsigned i = 0; i < t->n_peers; i++) {
        peer_close(&t->peers[i]);
    }
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        }
    }
}
