/*
 * The send functions of transport.h, but for snapshots (snapshot_send.c): each picks the
 * lane, encodes the frame at once and queues it (sendq.c). Raft messages take the lane
 * message_lane() says; node frames take the bulk lane. An APPEND with entries carries a key
 * so that a copy of one still queued is not queued again (link_holds_append).
 */
#include <stdlib.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

_Static_assert(TRANSPORT_FRAME_HEADROOM == WIRE_HEADER_BYTES, "the headroom is one header");

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
    struct out_frame *f = out_frame_encode_message(t, m, &rv);
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
