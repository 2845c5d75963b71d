/*
 * Outgoing connections (struct link), one per lane of each peer: connect, say who we are
 * in the handshake frame, notice the peer going away, reconnect with exponential backoff.
 * Only this side writes (its queue is sendq.c); the incoming side (conn.c) only reads.
 *
 * A link's states: DOWN (the reconnect timer runs) -> CONNECTING -> UP; from either of
 * these to CLOSING (the TCP handle is closing), whose close callback goes back to DOWN and
 * schedules the next try. The backoff doubles at each try up to reconnect_ms_max, and
 * starts again from reconnect_ms_min after a connection that stayed up that long.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

static const char *const lane_names[LANES] = {"connection", "bulk connection"};

static void link_timer_close_cb(uv_handle_t *h)
{
    struct link *l = h->data;
    peer_handle_gone(l->p);
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
    if (!t->closing && !l->p->removed) {
        link_schedule_reconnect(l);
    }
    peer_handle_gone(l->p);
}

/*
 * Ends an outgoing connection: drops what its lane has queued (Raft retries), stops a
 * snapshot stream if it is the bulk lane, tells cb.peer if it is the control lane and had
 * been up, and reconnects after the backoff once the handle has closed.
 */
void link_down(struct link *l, const char *why)
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
        lr_log_as(t->self, "%s to node %" PRIu64 " lost: %s", lane_names[l->lane], p->id, why);
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
    peer_handle_open(l->p);
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

void link_start(struct link *l)
{
    struct transport *t = l->p->t;
    int rv = uv_timer_init(t->loop, &l->timer);
    lr_assert(rv == 0);
    peer_handle_open(l->p);
    l->timer.data = l;
    link_connect_start(l);
}

void link_close(struct link *l)
{
    uv_close((uv_handle_t *)&l->timer, link_timer_close_cb);
    link_queue_drop(l);
    if (l->state == LINK_CONNECTING || l->state == LINK_UP) {
        l->state = LINK_CLOSING;
        uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
    }
}
