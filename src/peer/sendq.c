/*
 * Each lane's send queue and its writes.
 *
 * Each lane of each peer has a queue of encoded frames (struct out_frame), bounded by
 * send_queue_bytes_max, counting the frames of the write in flight: a frame that does not
 * fit is dropped (Raft retries). At most one uv_write is in flight per lane; it takes up to
 * WRITE_FRAMES_MAX frames at once, so that a burst of messages in one loop turn leaves in
 * one system call. A finished write on the bulk lane lets a snapshot stream queue its next
 * chunks (snapshot_send.c); a failed one takes the connection down (link.c).
 */
#include <stdlib.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

/* Frames handed to one uv_write. */
#define WRITE_FRAMES_MAX 64

struct write_req
{
    uv_write_t req;
    struct link *l;
    struct out_frame *frames; /* the frames this write carries, in order */
    uv_buf_t bufs[WRITE_FRAMES_MAX];
};

/* A frame with room for n bytes, or NULL. */
struct out_frame *out_frame_new(struct transport *t, size_t n)
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

void out_frame_free(struct transport *t, struct out_frame *f)
{
    frame_buf_put(t, &f->b);
    free(f);
}

/* Encodes m into a new frame, or NULL (*rv says why). */
struct out_frame *out_frame_encode_message(struct transport *t,
                                           const struct raft_message *m,
                                           int *rv)
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

void link_queue_drop(struct link *l)
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

static void link_flush(struct link *l);

/* Appends an encoded frame to the lane's queue and starts a write if none is running. */
void link_enqueue(struct link *l, struct out_frame *f)
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
    if ((l->state != LINK_UP && l->state != LINK_VERDICT) || t->closing) {
        return;
    }
    if (status < 0) {
        link_down(l, uv_strerror(status));
        return;
    }
    if (l->lane == LANE_BULK) {
        snap_send_pump(l->p);
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
    /* VERDICT: the handshake, the only frame queued before the acceptor takes it. */
    if (l->writing || l->head == NULL || (l->state != LINK_UP && l->state != LINK_VERDICT)) {
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

/* Queues an encoded frame on a lane, or says why not. Takes f either way. */
int link_send(struct link *l, struct out_frame *f)
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
bool link_holds_append(const struct link *l, const struct append_key *k)
{
    return frames_hold(l->head, k) || (l->inflight != NULL && frames_hold(l->inflight->frames, k));
}
