/*
 * Incoming connections (struct conn): accepted from peers and read; written only in the
 * opening exchange (conn_auth.c: the challenge at accept, the verdict on the handshake).
 * The first frame must be a handshake that answers the challenge, with a proof of the peer
 * secret if this node has one, naming a peer of this cluster; then each frame is
 * decoded and handed on: raft messages and node frames to the callbacks, snapshot chunks
 * and the SNAPSHOT message to snapshot_recv.c, WIRE_SNAPSHOT_HAVE (which the receiver sends
 * on its own outgoing connection) to snapshot_send.c. A malformed, truncated, oversized or
 * unauthenticated frame closes the connection with a log line.
 *
 * The read buffer grows to hold one whole frame; one of SPARE_BYTES_MIN and more comes
 * from the buffer pool (bufpool.c) and goes back to it once the frame has been handled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

/* Room offered to a read when the buffer is full. */
#define READ_BYTES_MIN (64 * 1024)
/* An empty read buffer larger than this is given back. */
#define READ_BUFFER_KEEP_BYTES (4 * READ_BYTES_MIN)
/* An incoming connection must complete its handshake within this time. */
#define HANDSHAKE_MS_MAX 5000

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
void conn_close(struct conn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    struct transport *t = c->t;
    c->closing = true;
    if (why != NULL && c->p == NULL) {
        conn_log_refusal(c, why);
    } else if (why != NULL) {
        lr_log_as(t->self, "peer %s from %s closed: %s", c->bulk ? "bulk connection" : "connection",
                  c->addr, why);
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

/* Acts on one decoded frame; returns why the connection must close, or NULL. */
static const char *conn_dispatch(struct conn *c, struct wire_frame *f)
{
    struct transport *t = c->t;
    if (c->p == NULL) {
        if (f->type != WIRE_HANDSHAKE) {
            return "first frame is not a handshake";
        }
        return conn_take_handshake(c, &f->handshake);
    }
    switch (f->type) {
        case WIRE_HANDSHAKE:
            return "second handshake";
        case WIRE_CHALLENGE:
        case WIRE_ACCEPTED:
        case WIRE_REFUSED:
            return "a frame only an acceptor sends";
        case WIRE_SNAPSHOT_CHUNK:
            snap_recv_chunk(c, &f->chunk);
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
        snap_recv_message(c, m);
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

void conn_accept_cb(uv_stream_t *server, int status)
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
    const char *why = NULL;
    if (conn_send_challenge(c, &why) != 0) {
        conn_close(c, why);
        return;
    }
    rv = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv));
    }
}

void conns_expire_handshakes(struct transport *t)
{
    uint64_t now = uv_now(t->loop);
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->p == NULL && !c->closing && now - c->accepted_ms >= HANDSHAKE_MS_MAX) {
            conn_close(c, "no handshake in time");
        }
    }
}

void conns_drop_peer(struct transport *t, struct peer *p)
{
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (c->p == p) {
            conn_close(c, NULL);
            c->p = NULL; /* the peer may go before the connection's close callback */
        }
    }
}

/* Not conn_close(): peer_close() has dropped the files being written already, and at
 * shutdown there is no log line or callback to give. */
void conns_close_all(struct transport *t)
{
    for (struct conn *c = t->conns; c != NULL; c = c->next) {
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
        }
    }
}
