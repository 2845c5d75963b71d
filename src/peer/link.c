/*
 * Outgoing connections (struct link), one per lane of each peer: connect, answer the
 * acceptor's challenge with the handshake frame (src/peer/wire.h), wait for its verdict,
 * notice the peer going away, reconnect with exponential backoff. Past the opening
 * exchange only this side writes (its queue is sendq.c) and the acceptor (conn.c) only
 * reads.
 *
 * A link's states: DOWN (the reconnect timer runs) -> CONNECTING -> CHALLENGE -> VERDICT
 * -> UP; from any of these to CLOSING (the TCP handle is closing), whose close callback
 * goes back to DOWN and schedules the next try. While CHALLENGE and VERDICT the timer
 * bounds the wait for the acceptor. Only UP counts as connected: frames are queued, and
 * cb.peer told, once the acceptor has taken the handshake. The backoff doubles at each
 * try up to reconnect_ms_max, and starts again from reconnect_ms_min after a connection
 * that stayed up that long.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"
#include "util/crc32c.h"

/* The acceptor's challenge, and then its verdict, must come within this time. */
#define OPENING_MS_MAX 5000
/* A refusal of the same reason is logged again after this long. */
#define REFUSAL_REPEAT_MS 60000

static const char *const lane_names[LANES] = {"connection", "bulk connection"};

static void link_timer_close_cb(uv_handle_t *h)
{
    struct link *l = h->data;
    peer_handle_gone(l->p);
}

static void link_connect_start(struct link *l);
static void link_fail(struct link *l, const char *why);

static void link_timer_cb(uv_timer_t *timer)
{
    struct link *l = timer->data;
    if (l->state == LINK_CHALLENGE || l->state == LINK_VERDICT) {
        link_fail(l, l->state == LINK_CHALLENGE ? "no challenge from the peer in time"
                                                : "no verdict on the handshake in time");
        return;
    }
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
    uv_timer_stop(&l->timer); /* the wait for the acceptor, if any */
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

/* A connection that did not get through its opening exchange: logged once per reason a
 * minute (a dialer retries every reconnect_ms_max at most), then ended. */
static void link_fail(struct link *l, const char *why)
{
    struct peer *p = l->p;
    struct transport *t = p->t;
    uint64_t now = uv_now(t->loop);
    uint32_t crc = crc32c(0, why, strlen(why)) | 1; /* never 0: 0 is "none said" */
    if (!t->closing && (crc != l->said_crc || now - l->said_ms >= REFUSAL_REPEAT_MS)) {
        lr_log_as(t->self, "%s to node %" PRIu64 " refused: %s", lane_names[l->lane], p->id, why);
        l->said_crc = crc;
        l->said_ms = now;
    }
    link_down(l, why);
}

/* While CHALLENGE and VERDICT, reads go into l->in; afterwards the outgoing side receives
 * no frames: reading only notices the peer going away. */
static void link_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[256];
    struct link *l = h->data;
    (void)suggested;
    if (l->state == LINK_CHALLENGE || l->state == LINK_VERDICT) {
        *buf = uv_buf_init((char *)l->in + l->in_len, (unsigned)(sizeof l->in - l->in_len));
        return;
    }
    *buf = uv_buf_init(sink, sizeof(sink));
}

static int encode_handshake(const struct link *l, const struct wire_challenge *ch, struct buf *b)
{
    const struct transport *t = l->p->t;
    struct wire_handshake hs = {
        .node_id = t->self,
        .cluster_id = t->cluster_id,
        .cluster_id_len = (uint16_t)strlen(t->cluster_id),
        .client_addr = t->client_addr,
        .client_addr_len = (uint16_t)strlen(t->client_addr),
        .bulk = l->lane == LANE_BULK,
        .has_proof = t->auth,
    };
    memcpy(hs.answer, ch->nonce, sizeof hs.answer);
    if (t->auth) {
        /* For the node we meant to reach, not the one the challenge names: a challenge
         * relayed from another node gets a proof that node will not take. */
        peer_auth_proof(t->key, &hs, l->p->id, hs.proof);
    }
    return wire_encode_handshake_addr(b, &hs);
}

/* The challenge came: answer it. Returns why the connection must end, or NULL. */
static const char *link_answer(struct link *l, const struct wire_challenge *ch)
{
    struct transport *t = l->p->t;
    if (ch->node_id != l->p->id) {
        return "the node at that address is another node";
    }
    struct out_frame *f = out_frame_new(t, 0);
    if (f == NULL || encode_handshake(l, ch, &f->b) != 0) {
        if (f != NULL) {
            out_frame_free(t, f);
        }
        return "out of memory";
    }
    l->state = LINK_VERDICT;
    uv_timer_start(&l->timer, link_timer_cb, OPENING_MS_MAX, 0);
    link_enqueue(l, f);
    return NULL;
}

/* The acceptor took the handshake: frames may flow. */
static void link_accepted(struct link *l)
{
    struct transport *t = l->p->t;
    uv_timer_stop(&l->timer);
    l->state = LINK_UP;
    l->up_since_ms = uv_now(t->loop);
    l->said_crc = 0;
    if (l->lane == LANE_CONTROL && t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, l->p->id, true);
    }
}

/* Acts on the acceptor's frame at the front of l->in: returns its size, 0 when it is not
 * all in yet, or -1 once the link has failed. */
static int link_opening_frame(struct link *l)
{
    struct transport *t = l->p->t;
    char why[WIRE_REASON_BYTES_MAX + 64];
    struct wire_frame f;
    int64_t n = wire_decode(l->in, l->in_len, &t->limits, &f);
    bool want =
        n > 0 && (l->state == LINK_CHALLENGE ? f.type == WIRE_CHALLENGE
                                             : f.type == WIRE_ACCEPTED || f.type == WIRE_REFUSED);
    if (n == 0 && l->in_len < sizeof l->in) {
        return 0;
    }
    if (n <= 0 || !want) {
        if (n > 0) {
            wire_frame_free(&f);
        }
        snprintf(why, sizeof why, "the peer did not open the connection as this version does (%s)",
                 n < 0 ? wire_strerror((int)n) : "an unexpected frame");
        link_fail(l, why);
        return -1;
    }
    const char *bad = NULL;
    if (f.type == WIRE_CHALLENGE) {
        bad = link_answer(l, &f.challenge);
    } else if (f.type == WIRE_REFUSED) {
        snprintf(why, sizeof why, "%.*s", (int)f.refused.len,
                 f.refused.reason != NULL ? f.refused.reason : "");
        bad = why;
    } else {
        link_accepted(l);
    }
    if (bad != NULL) {
        link_fail(l, bad);
        return -1;
    }
    return (int)n;
}

static void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    (void)buf;
    bool opening = l->state == LINK_CHALLENGE || l->state == LINK_VERDICT;
    if (nread < 0 && opening) {
        link_fail(l, nread == UV_EOF ? "the peer closed the connection during the handshake"
                                     : uv_strerror((int)nread));
    } else if (nread < 0) {
        link_down(l, uv_strerror((int)nread));
    } else if (nread > 0 && !opening) {
        link_down(l, "unexpected bytes from the peer");
    } else if (nread > 0) {
        l->in_len += (size_t)nread;
        int n;
        while (l->in_len > 0 && (l->state == LINK_CHALLENGE || l->state == LINK_VERDICT) &&
               (n = link_opening_frame(l)) > 0) {
            memmove(l->in, l->in + n, l->in_len - (size_t)n);
            l->in_len -= (size_t)n;
        }
        if (l->state == LINK_UP && l->in_len > 0) {
            link_down(l, "unexpected bytes from the peer");
        }
    }
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
    l->state = LINK_CHALLENGE;
    l->in_len = 0;
    uv_tcp_nodelay(&l->tcp, 1);
    uv_timer_start(&l->timer, link_timer_cb, OPENING_MS_MAX, 0);
    int rv = uv_read_start((uv_stream_t *)&l->tcp, link_alloc_cb, link_read_cb);
    if (rv != 0) {
        link_down(l, "cannot start the connection");
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
    if (t->bind_source && t->source.ss_family == l->p->addr.ss_family) {
        rv = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&t->source, 0);
    }
    if (rv == 0) {
        rv = uv_tcp_connect(&l->connect, &l->tcp, (const struct sockaddr *)&l->p->addr,
                            link_connect_cb);
    }
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
    if (l->state != LINK_DOWN && l->state != LINK_CLOSING) {
        l->state = LINK_CLOSING;
        uv_close((uv_handle_t *)&l->tcp, link_tcp_close_cb);
    }
}
