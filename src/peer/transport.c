/*
 * Peer links on libuv TCP; see transport.h for the contract.
 *
 * Handles: one listener, one reconnect timer and one TCP handle per peer (the outgoing
 * connection), one TCP handle per accepted connection, and one housekeeping timer that
 * closes incoming connections which do not say who they are in time. handles_open counts
 * every initialised handle; transport_close() closes them all and frees the transport in
 * the close callback that brings the count to zero.
 *
 * Writing: each peer has a queue of encoded frames (struct out_frame), bounded by
 * send_queue_bytes_max, counting the frames of the write in flight. At most one uv_write is
 * in flight per peer; it takes up to WRITE_FRAMES_MAX frames at once, so that a burst of
 * messages in one loop turn leaves in one system call.
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
/* Room offered to each read. */
#define READ_BYTES_MIN (64 * 1024)
/* An empty read buffer larger than this is freed. */
#define READ_BUFFER_KEEP_BYTES (4 * READ_BYTES_MIN)
/* Data bytes of one snapshot chunk. */
#define SNAPSHOT_CHUNK_BYTES (1024 * 1024)
/* The next snapshot chunk is read once the peer's queue holds less than this. */
#define SNAPSHOT_QUEUE_LOW_BYTES (4 * 1024 * 1024)
/* An incoming connection must complete its handshake within this time. */
#define HANDSHAKE_MS_MAX 5000
#define HOUSEKEEPING_MS 1000
#define LISTEN_BACKLOG 128

#define SEND_QUEUE_BYTES_MAX_DEFAULT (64ULL * 1024 * 1024)
#define RECONNECT_MS_MIN_DEFAULT 50
#define RECONNECT_MS_MAX_DEFAULT 2000

_Static_assert(WIRE_CHUNK_HEADER_BYTES + SNAPSHOT_CHUNK_BYTES <= 4 * 1024 * 1024,
               "a chunk fits the default chunk_bytes_max");
_Static_assert(SNAPSHOT_QUEUE_LOW_BYTES + SNAPSHOT_CHUNK_BYTES + 1024 <=
                   SEND_QUEUE_BYTES_MAX_DEFAULT,
               "pacing stays below the default queue bound");

struct out_frame
{
    struct out_frame *next;
    struct buf b;
};

struct write_req
{
    uv_write_t req;
    struct peer *p;
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

enum peer_state { PEER_DOWN, PEER_CONNECTING, PEER_UP, PEER_CLOSING };

struct peer
{
    struct transport *t;
    raft_id id;
    char host[64];
    int port;
    struct sockaddr_storage addr;
    enum peer_state state;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer;
    uint32_t backoff_ms;
    uint64_t up_since_ms;
    struct out_frame *head, *tail; /* queued, not yet handed to uv_write */
    uint64_t queue_bytes;          /* queued plus in flight */
    bool writing;
    struct snap_send *snap;
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1]; /* from its handshake */
};

/* An incoming snapshot, written to a temporary file. */
struct snap_recv
{
    int fd; /* -1 once closed */
    raft_index index;
    raft_term term;
    uint64_t next_offset;
    bool verified; /* the last chunk arrived and the file checked out */
    char path[512];
};

struct conn
{
    struct transport *t;
    struct conn *next;
    uv_tcp_t tcp;
    bool closing;
    raft_id peer; /* 0 until the handshake */
    uint64_t accepted_ms;
    char addr[64];
    struct buf in;
    struct snap_recv snap;
};

struct transport
{
    uv_loop_t *loop;
    raft_id self;
    char cluster_id[WIRE_CLUSTER_ID_BYTES_MAX + 1];
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1];
    char dir[512];
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

static void peer_timer_close_cb(uv_handle_t *h)
{
    struct peer *p = h->data;
    transport_handle_gone(p->t);
}

/* ---------------------------------------------------------------------------------------
 * Outgoing connections and their send queues
 * ------------------------------------------------------------------------------------- */

static void out_frame_free(struct out_frame *f)
{
    buf_free(&f->b);
    free(f);
}

static void peer_queue_drop(struct peer *p)
{
    while (p->head != NULL) {
        struct out_frame *f = p->head;
        p->head = f->next;
        lr_assert(p->queue_bytes >= f->b.len);
        p->queue_bytes -= f->b.len;
        out_frame_free(f);
    }
    p->tail = NULL;
}

static void snap_send_free(struct peer *p)
{
    if (p->snap != NULL) {
        close(p->snap->fd);
        free(p->snap);
        p->snap = NULL;
    }
}

static void peer_flush(struct peer *p);
static void peer_down(struct peer *p, const char *why);
static void peer_snapshot_pump(struct peer *p);

/* Appends an encoded frame to the peer's queue and starts a write if none is running. */
static void peer_enqueue(struct peer *p, struct out_frame *f)
{
    f->next = NULL;
    if (p->tail == NULL) {
        p->head = f;
    } else {
        p->tail->next = f;
    }
    p->tail = f;
    p->queue_bytes += f->b.len;
    peer_flush(p);
}

static void peer_write_cb(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct peer *p = w->p;
    while (w->frames != NULL) {
        struct out_frame *f = w->frames;
        w->frames = f->next;
        lr_assert(p->queue_bytes >= f->b.len);
        p->queue_bytes -= f->b.len;
        out_frame_free(f);
    }
    free(w);
    p->writing = false;
    if (p->state != PEER_UP || p->t->closing) {
        return;
    }
    if (status < 0) {
        peer_down(p, uv_strerror(status));
        return;
    }
    peer_snapshot_pump(p);
    peer_flush(p);
}

/* Hands up to WRITE_FRAMES_MAX queued frames to one uv_write. */
static void peer_flush(struct peer *p)
{
    if (p->writing || p->head == NULL || p->state != PEER_UP) {
        return;
    }
    struct write_req *w = malloc(sizeof(*w));
    if (w == NULL) {
        peer_down(p, "out of memory");
        return;
    }
    w->p = p;
    w->frames = p->head;
    unsigned n = 0;
    struct out_frame *last = NULL;
    for (struct out_frame *f = p->head; f != NULL && n < WRITE_FRAMES_MAX; f = f->next) {
        w->bufs[n++] = uv_buf_init((char *)f->b.data, (unsigned)f->b.len);
        last = f;
    }
    p->head = last->next;
    if (p->head == NULL) {
        p->tail = NULL;
    }
    last->next = NULL;
    p->writing = true;
    int rv = uv_write(&w->req, (uv_stream_t *)&p->tcp, w->bufs, n, peer_write_cb);
    if (rv != 0) {
        /* Nothing was queued: give the frames back to the free path of the callback. */
        p->writing = false;
        for (struct out_frame *f = w->frames; f != NULL;) {
            struct out_frame *next = f->next;
            p->queue_bytes -= f->b.len;
            out_frame_free(f);
            f = next;
        }
        free(w);
        peer_down(p, uv_strerror(rv));
    }
}

static void peer_connect_start(struct peer *p);

static void peer_timer_cb(uv_timer_t *timer)
{
    struct peer *p = timer->data;
    lr_assert(p->state == PEER_DOWN);
    peer_connect_start(p);
}

static void peer_schedule_reconnect(struct peer *p)
{
    lr_assert(p->state == PEER_DOWN);
    uv_timer_start(&p->timer, peer_timer_cb, p->backoff_ms, 0);
    uint64_t next = (uint64_t)p->backoff_ms * 2;
    p->backoff_ms = next > p->t->reconnect_ms_max ? p->t->reconnect_ms_max : (uint32_t)next;
}

static void peer_tcp_close_cb(uv_handle_t *h)
{
    struct peer *p = h->data;
    struct transport *t = p->t;
    p->state = PEER_DOWN;
    if (!t->closing) {
        peer_schedule_reconnect(p);
    }
    transport_handle_gone(t);
}

/*
 * Ends the outgoing connection: drops what is queued (Raft retries), stops a snapshot
 * stream, tells cb.peer if the connection had been up, and reconnects after the backoff
 * once the handle has closed.
 */
static void peer_down(struct peer *p, const char *why)
{
    if (p->state == PEER_CLOSING || p->state == PEER_DOWN) {
        return;
    }
    struct transport *t = p->t;
    bool was_up = p->state == PEER_UP;
    p->state = PEER_CLOSING;
    peer_queue_drop(p);
    snap_send_free(p);
    if (was_up) {
        uint64_t now = uv_now(t->loop);
        if (now - p->up_since_ms >= t->reconnect_ms_max) {
            p->backoff_ms = t->reconnect_ms_min;
        }
    }
    if (was_up && !t->closing) {
        fprintf(stderr, "luaraft: node %" PRIu64 ": connection to node %" PRIu64 " lost: %s\n",
                t->self, p->id, why);
    }
    uv_close((uv_handle_t *)&p->tcp, peer_tcp_close_cb);
    if (was_up && t->cb.peer != NULL && !t->closing) {
        t->cb.peer(t->cb.arg, p->id, false);
    }
}

/* The outgoing side never receives frames: reading only notices the peer going away. */
static void peer_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[256];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void peer_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    (void)buf;
    if (nread < 0) {
        peer_down(p, uv_strerror((int)nread));
    } else if (nread > 0) {
        peer_down(p, "unexpected bytes from the peer");
    }
}

static int encode_handshake(const struct transport *t, struct buf *b)
{
    struct wire_handshake hs = {
        .node_id = t->self,
        .cluster_id = t->cluster_id,
        .cluster_id_len = (uint16_t)strlen(t->cluster_id),
        .client_addr = t->client_addr,
        .client_addr_len = (uint16_t)strlen(t->client_addr),
    };
    return wire_encode_handshake_addr(b, &hs);
}

static void peer_connect_cb(uv_connect_t *req, int status)
{
    struct peer *p = req->data;
    struct transport *t = p->t;
    if (status == UV_ECANCELED || t->closing || p->state != PEER_CONNECTING) {
        return;
    }
    if (status < 0) {
        p->state = PEER_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, peer_tcp_close_cb);
        return;
    }
    p->state = PEER_UP;
    p->up_since_ms = uv_now(t->loop);
    uv_tcp_nodelay(&p->tcp, 1);
    int rv = uv_read_start((uv_stream_t *)&p->tcp, peer_alloc_cb, peer_read_cb);
    struct out_frame *f = calloc(1, sizeof(*f));
    if (rv != 0 || f == NULL || encode_handshake(t, &f->b) != 0) {
        free(f);
        peer_down(p, "cannot start the connection");
        return;
    }
    peer_enqueue(p, f);
    if (t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, p->id, true);
    }
}

static void peer_connect_start(struct peer *p)
{
    struct transport *t = p->t;
    int rv = uv_tcp_init(t->loop, &p->tcp);
    lr_assert(rv == 0);
    t->handles_open++;
    p->tcp.data = p;
    p->connect.data = p;
    p->state = PEER_CONNECTING;
    rv = uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&p->addr, peer_connect_cb);
    if (rv != 0) {
        p->state = PEER_CLOSING;
        uv_close((uv_handle_t *)&p->tcp, peer_tcp_close_cb);
    }
}

/* ---------------------------------------------------------------------------------------
 * Incoming connections
 * ------------------------------------------------------------------------------------- */

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
    s->verified = false;
}

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
    snap_recv_discard(&c->snap);
    buf_free(&c->in);
    free(c);
    transport_handle_gone(t);
}

/* Closes an incoming connection, with the log line when why is not NULL. */
static void conn_close(struct conn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    struct transport *t = c->t;
    c->closing = true;
    if (why != NULL) {
        fprintf(stderr, "luaraft: node %" PRIu64 ": peer connection from %s closed: %s\n", t->self,
                c->addr, why);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    if (c->peer != 0 && t->cb.peer != NULL && !t->closing) {
        t->cb.peer(t->cb.arg, c->peer, false);
    }
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (buf_reserve(&c->in, READ_BYTES_MIN) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
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
    c->peer = hs->node_id;
    if (t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, c->peer, true);
    }
    return NULL;
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

/* Logs why an incoming snapshot was given up and deletes its file. */
static void snap_recv_fail(struct conn *c, const char *why)
{
    fprintf(stderr, "luaraft: node %" PRIu64 ": snapshot from node %" PRIu64 " dropped: %s\n",
            c->t->self, c->peer, why);
    snap_recv_discard(&c->snap);
}

/*
 * Adds a chunk to the connection's incoming snapshot file. A chunk at offset 0 starts a
 * new file (dropping any earlier one); any other chunk must continue the current file
 * exactly. The last chunk makes the file durable and verifies it; the SNAPSHOT message
 * that follows then hands it over.
 */
static void conn_chunk(struct conn *c, const struct wire_chunk *ch)
{
    struct snap_recv *s = &c->snap;
    if (ch->offset == 0) {
        snap_recv_discard(s);
        int n = snprintf(s->path, sizeof(s->path), "%s/incoming-%" PRIu64 "-%" PRIu64 ".part",
                         c->t->dir, c->peer, ++c->t->snap_seq);
        if (n < 0 || (size_t)n >= sizeof(s->path)) {
            s->path[0] = '\0';
            snap_recv_fail(c, "path too long");
            return;
        }
        s->fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->fd < 0) {
            s->path[0] = '\0';
            snap_recv_fail(c, strerror(errno));
            return;
        }
        s->index = ch->index;
        s->term = ch->term;
        s->next_offset = 0;
    } else if (s->fd < 0 || s->index != ch->index || s->term != ch->term ||
               s->next_offset != ch->offset) {
        if (s->fd >= 0 || s->path[0] != '\0') {
            snap_recv_fail(c, "chunk out of sequence");
        }
        return;
    }
    if (!write_all(s->fd, ch->data, ch->len, ch->offset)) {
        snap_recv_fail(c, strerror(errno));
        return;
    }
    s->next_offset += ch->len;
    if (!ch->last) {
        return;
    }
    int rv = fsync(s->fd);
    int rv_close = close(s->fd);
    s->fd = -1;
    if (rv != 0 || rv_close != 0) {
        snap_recv_fail(c, strerror(errno));
        return;
    }
    uint64_t body_bytes = 0;
    if (snapfile_verify(s->path, &body_bytes) != 0) {
        snap_recv_fail(c, "the file does not verify");
        return;
    }
    s->verified = true;
}

/* Delivers the SNAPSHOT message with the file its chunks built, if it is there. */
static void conn_snapshot_message(struct conn *c, struct raft_message *m)
{
    struct transport *t = c->t;
    struct snap_recv *s = &c->snap;
    if (!s->verified || s->index != m->snapshot.index || s->term != m->snapshot.term) {
        snap_recv_fail(c, "SNAPSHOT message without its file");
        return;
    }
    /* The callee owns the file from here on. */
    char path[sizeof(s->path)];
    memcpy(path, s->path, sizeof(path));
    s->path[0] = '\0';
    s->verified = false;
    if (t->cb.snapshot != NULL) {
        t->cb.snapshot(t->cb.arg, m, path);
    } else {
        unlink(path);
    }
}

/* Acts on one decoded frame; returns why the connection must close, or NULL. */
static const char *conn_dispatch(struct conn *c, struct wire_frame *f)
{
    struct transport *t = c->t;
    if (c->peer == 0) {
        if (f->type != WIRE_HANDSHAKE) {
            return "first frame is not a handshake";
        }
        return conn_handshake(c, &f->handshake);
    }
    if (f->type == WIRE_HANDSHAKE) {
        return "second handshake";
    }
    if (f->type == WIRE_SNAPSHOT_CHUNK) {
        conn_chunk(c, &f->chunk);
        return NULL;
    }
    if (f->type >= WIRE_NODE_FRAME_MIN) {
        if (t->cb.frame != NULL) {
            t->cb.frame(t->cb.arg, c->peer, f->type, f->node.body, f->node.len);
        }
        return NULL;
    }
    struct raft_message *m = &f->msg;
    if (m->from != c->peer || m->to != t->self) {
        return "message not from the authenticated peer to this node";
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        conn_snapshot_message(c, m);
    } else if (t->cb.recv != NULL) {
        t->cb.recv(t->cb.arg, m);
    }
    return NULL;
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
        struct wire_header h;
        int rv = wire_decode_header(c->in.data + pos, &t->limits, &h);
        if (rv != 0) {
            why = wire_strerror(rv);
            break;
        }
        if (c->peer == 0 && h.type != WIRE_HANDSHAKE) {
            why = "first frame is not a handshake";
            break;
        }
        size_t need = WIRE_HEADER_BYTES + (size_t)h.length;
        if (c->in.len - pos < need) {
            buf_consume(&c->in, pos);
            pos = 0;
            if (buf_reserve(&c->in, need - c->in.len) != 0) {
                why = "out of memory";
            }
            break;
        }
        struct wire_frame f;
        rv = wire_decode_body(&h, c->in.data + pos + WIRE_HEADER_BYTES, &t->limits, &f);
        if (rv != 0) {
            why = wire_strerror(rv);
            break;
        }
        why = conn_dispatch(c, &f);
        wire_frame_free(&f);
        pos += need;
        if (why != NULL) {
            break;
        }
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
        buf_free(&c->in);
    }
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread == UV_EOF) {
        conn_close(c, c->peer == 0 ? "closed before the handshake" : NULL);
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
    c->snap.fd = -1;
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

/* Closes incoming connections that have not said who they are in HANDSHAKE_MS_MAX. */
static void transport_housekeeping_cb(uv_timer_t *timer)
{
    struct transport *t = timer->data;
    uint64_t now = uv_now(t->loop);
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->peer == 0 && !c->closing && now - c->accepted_ms >= HANDSHAKE_MS_MAX) {
            conn_close(c, "no handshake in time");
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Start, send, close
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
        p->t = t;
        p->id = peers[i].id;
        p->port = peers[i].port;
        memcpy(p->host, peers[i].host, sizeof(p->host));
        p->host[sizeof(p->host) - 1] = '\0';
        p->state = PEER_DOWN;
        p->backoff_ms = t->reconnect_ms_min;
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
    rv = uv_timer_init(loop, &t->housekeeping);
    lr_assert(rv == 0);
    t->handles_open++;
    t->housekeeping.data = t;
    uv_timer_start(&t->housekeeping, transport_housekeeping_cb, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    uv_unref((uv_handle_t *)&t->housekeeping);
    for (unsigned i = 0; i < n_peers; i++) {
        struct peer *p = &t->peers[i];
        rv = uv_timer_init(loop, &p->timer);
        lr_assert(rv == 0);
        t->handles_open++;
        p->timer.data = p;
        peer_connect_start(p);
    }
    *out = t;
    return 0;
}

/* Queues an encoded frame for peer p, or says why not. Takes f either way. */
static int peer_send(struct peer *p, struct out_frame *f)
{
    if (p->state != PEER_UP) {
        out_frame_free(f);
        return TRANSPORT_ENOTCONN;
    }
    if (p->queue_bytes + f->b.len > p->t->send_queue_bytes_max) {
        out_frame_free(f);
        return TRANSPORT_EQUEUE;
    }
    peer_enqueue(p, f);
    return 0;
}

int transport_send(struct transport *t, const struct raft_message *m)
{
    lr_assert(!t->closing);
    struct peer *p = peer_find(t, m->to);
    if (p == NULL || wire_message_bytes(m) - WIRE_HEADER_BYTES > t->limits.frame_bytes_max) {
        return TRANSPORT_EINVAL;
    }
    if (p->state != PEER_UP) {
        return TRANSPORT_ENOTCONN;
    }
    struct out_frame *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return TRANSPORT_ENOMEM;
    }
    int rv = wire_encode_message(&f->b, m);
    if (rv != 0) {
        out_frame_free(f);
        return rv == WIRE_ENOMEM ? TRANSPORT_ENOMEM : TRANSPORT_EINVAL;
    }
    return peer_send(p, f);
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
    if (p->state != PEER_UP) {
        return TRANSPORT_ENOTCONN;
    }
    struct out_frame *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return TRANSPORT_ENOMEM;
    }
    if (wire_encode_node_frame(&f->b, type, body, len) != 0) {
        out_frame_free(f);
        return TRANSPORT_ENOMEM;
    }
    return peer_send(p, f);
}

/*
 * Reads and queues snapshot chunks while the peer's queue is below the low-water mark;
 * after the last chunk queues the SNAPSHOT message and ends the stream. Called when the
 * stream starts and after every completed write, so the file is paced by the socket.
 */
static void peer_snapshot_pump(struct peer *p)
{
    while (p->snap != NULL && p->state == PEER_UP && p->queue_bytes < SNAPSHOT_QUEUE_LOW_BYTES) {
        struct snap_send *s = p->snap;
        uint64_t left = s->size - s->offset;
        uint32_t n = left < SNAPSHOT_CHUNK_BYTES ? (uint32_t)left : SNAPSHOT_CHUNK_BYTES;
        struct out_frame *f = calloc(1, sizeof(*f));
        if (f == NULL || buf_reserve(&f->b, WIRE_HEADER_BYTES + WIRE_CHUNK_HEADER_BYTES + n)) {
            free(f);
            snap_send_free(p);
            return;
        }
        /* The encoder copies the data behind the chunk header, so read it elsewhere first. */
        uint8_t *scratch = p->t->chunk_scratch;
        ssize_t got = n > 0 ? pread(s->fd, scratch, n, (off_t)s->offset) : 0;
        if (got != (ssize_t)n) {
            fprintf(stderr,
                    "luaraft: node %" PRIu64 ": snapshot to node %" PRIu64
                    " stopped: cannot read the file\n",
                    p->t->self, p->id);
            out_frame_free(f);
            snap_send_free(p);
            return;
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
        bool last = ch.last;
        peer_enqueue(p, f);
        if (last && p->snap != NULL) {
            struct raft_message m = p->snap->m;
            snap_send_free(p);
            transport_send(p->t, &m);
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
    if (p->state != PEER_UP) {
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

bool transport_connected(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->state == PEER_UP;
}

const char *transport_client_addr(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->client_addr[0] != '\0' ? p->client_addr : NULL;
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
        struct peer *p = &t->peers[i];
        uv_close((uv_handle_t *)&p->timer, peer_timer_close_cb);
        peer_queue_drop(p);
        snap_send_free(p);
        if (p->state == PEER_CONNECTING || p->state == PEER_UP) {
            p->state = PEER_CLOSING;
            uv_close((uv_handle_t *)&p->tcp, peer_tcp_close_cb);
        }
    }
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        }
    }
}
