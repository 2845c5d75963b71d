/*
 * Writes: a loop turn's client writes become one proposal batch; each proposed entry is
 * remembered as pending (index, term) -> who waits for it, until the entry at that index
 * is applied (Raft paper §8: the client learns the result once the command is applied).
 * A follower forwards its clients' writes to the leader and waits for its answer.
 *
 * Every waiter has a deadline. An answer says what happened: the script's reply; an
 * unknown outcome because leadership was lost (another leader may still commit it); an
 * unknown outcome because the deadline passed; or a refusal (never proposed).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "fsm/fsm.h"
#include "node/internal.h"
#include "peer/transport.h"
#include "util/assert.h"

struct pending
{
    raft_index index;
    raft_term term;
    struct origin o;
    uint64_t deadline_ms;
    bool answered; /* timed out: the apply finds no one waiting */
};

struct proposal
{
    struct buf payload; /* command.h: version, time (stamped at propose), argv blob */
    struct origin o;
};

/* A write this follower forwarded to the leader. */
struct forward
{
    uint64_t id;
    raft_id leader; /* the node it was sent to: only its answer counts */
    struct server_request *req;
    uint64_t deadline_ms;
};

static const char shutdown_unknown_reply[] =
    "-UNKNOWN the write's outcome is unknown: this node is shutting down\r\n";

_Static_assert(node_frame_headroom == TRANSPORT_FRAME_HEADROOM, "node frames' headroom");

/* A frame for the transport: node_frame_headroom free bytes, then the forward id. */
static void frame_begin(struct buf *b, uint64_t id, size_t body_len)
{
    static const uint8_t zeros[node_frame_headroom];
    buf_init(b);
    int rv = buf_reserve(b, node_frame_headroom + 8 + body_len);
    rv = rv ? rv : buf_append(b, zeros, sizeof zeros);
    rv = rv ? rv : buf_put_u64(b, id);
    lr_assert(rv == 0);
}

void origin_reply(struct node *n, const struct origin *o, const void *resp, size_t len)
{
    if (o->req == NULL && o->peer == 0) {
        return; /* nobody waits: the leader's own TICK */
    }
    if (o->req != NULL) {
        node_reply(n, o->req, resp, len);
        return;
    }
    struct buf b;
    frame_begin(&b, o->fwd_id, len);
    lr_assert(buf_append(&b, resp, len) == 0);
    n->io->send_frame(n->io->arg, o->peer, TRANSPORT_FRAME_FORWARD_REPLY, &b);
}

/* The script's reply to a forwarded write goes out in its own buffer: a reply of tens of
 * megabytes copied on the loop thread would delay heartbeats. */
static void origin_reply_script(struct node *n, const struct origin *o, struct fsm_reply *r)
{
    lr_assert(r->len >= node_reply_headroom);
    if (o->req == NULL && o->peer == 0) {
        return;
    }
    if (o->req != NULL) {
        node_reply(n, o->req, r->data + node_reply_headroom, r->len - node_reply_headroom);
        return;
    }
    be_put_u64((uint8_t *)r->data + node_frame_headroom, o->fwd_id);
    struct buf b = {.data = (uint8_t *)r->data, .len = r->len, .cap = r->cap};
    *r = (struct fsm_reply){0};
    n->io->send_frame(n->io->arg, o->peer, TRANSPORT_FRAME_FORWARD_REPLY, &b);
}

void origin_reply_verror(struct node *n,
                         const struct origin *o,
                         const char *prefix,
                         const char *fmt,
                         va_list ap)
{
    char text[node_errmsg_bytes];
    int k = snprintf(text, sizeof text, "-ERR %s ", prefix);
    vsnprintf(text + k, sizeof text - (size_t)k - 2, fmt, ap);
    strcat(text, "\r\n");
    origin_reply(n, o, text, strlen(text));
}

static void origin_reply_text(struct node *n, const struct origin *o, const char *resp)
{
    origin_reply(n, o, resp, strlen(resp));
}

/* ------------------------------------------------------------------------------------ */
/* Pending writes, sorted by index. */

static void pending_add(struct node *n, raft_index index, raft_term term, const struct origin *o)
{
    struct writes *w = &n->wr;
    if (w->pend_off > 0 && w->pend_off + w->pend_n == w->pend_cap) {
        memmove(w->pend, w->pend + w->pend_off, w->pend_n * sizeof *w->pend);
        w->pend_off = 0;
    }
    size_t used = w->pend_off + w->pend_n;
    VEC_RESERVE(w->pend, used, w->pend_cap, 1);
    /* Indexes only grow while this node stays leader; after a new term they may restart
     * lower, so keep the array sorted by index. */
    size_t i = w->pend_n;
    struct pending *p = w->pend + w->pend_off;
    while (i > 0 && p[i - 1].index > index) {
        p[i] = p[i - 1];
        i--;
    }
    p[i] = (struct pending){index, term, *o, node_now(n) + n->c->write_timeout_ms, false};
    w->pend_n++;
}

static struct pending *pending_find(struct node *n, raft_index index)
{
    struct writes *w = &n->wr;
    struct pending *p = w->pend + w->pend_off;
    size_t lo = 0, hi = w->pend_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p[mid].index < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < w->pend_n && p[lo].index == index ? &p[lo] : NULL;
}

bool writes_pending_has(struct node *n, raft_index index)
{
    struct pending *p = pending_find(n, index);
    return p != NULL && !p->answered;
}

/* Resolves every pending write at index <= upto: the one whose (index, term) matches the
 * applied entry gets the script's reply; any other was replaced by another leader's entry,
 * and its client learns that the outcome is unknown. */
void writes_resolve(struct node *n, raft_index upto, raft_term term, struct fsm_reply *reply)
{
    struct writes *w = &n->wr;
    while (w->pend_n > 0 && w->pend[w->pend_off].index <= upto) {
        struct pending p = w->pend[w->pend_off];
        w->pend_off++;
        w->pend_n--;
        if (p.answered) {
            continue;
        }
        if (p.index == upto && p.term == term && reply != NULL) {
            origin_reply_script(n, &p.o, reply);
        } else {
            origin_reply_text(n, &p.o, node_unknown_reply);
        }
    }
}

void writes_fail_all(struct node *n, const char *resp)
{
    struct writes *w = &n->wr;
    while (w->pend_n > 0) {
        struct pending p = w->pend[w->pend_off];
        w->pend_off++;
        w->pend_n--;
        if (!p.answered) {
            origin_reply_text(n, &p.o, resp);
        }
    }
    w->pend_off = 0;
}

/* ------------------------------------------------------------------------------------ */
/* Proposals. */

void writes_push(struct node *n, struct buf *payload, const struct origin *o)
{
    struct writes *w = &n->wr;
    VEC_RESERVE(w->props, w->props_n, w->props_cap, 1);
    struct proposal *p = &w->props[w->props_n++];
    p->payload = *payload;
    p->o = *o;
}

void writes_take(struct node *n, const void *blob, size_t len, const struct origin *o)
{
    struct buf payload;
    buf_init(&payload);
    if (transaction_is(blob, len)) {
        int rv = transaction_payload(n, blob, len, &payload);
        if (rv != 0) {
            buf_free(&payload);
            /* A watched key was written since the WATCH: EXEC's null reply. */
            origin_reply_text(n, o, rv > 0 ? "*-1\r\n" : "-ERR malformed transaction\r\n");
            return;
        }
    } else {
        lr_assert(command_put(&payload, blob, len) == 0);
    }
    writes_push(n, &payload, o);
}

void writes_tick(struct node *n)
{
    struct writes *w = &n->wr;
    int64_t every = fsm_tick_ms(n->fsm);
    if (every <= 0 || raft_role_of(n->raft) != RAFT_LEADER || n->dur.store_failed || n->stopping ||
        w->props_n > 0 || node_now(n) < w->last_propose_ms + (uint64_t)every) {
        return;
    }
    struct buf payload;
    buf_init(&payload);
    lr_assert(command_put_tick(&payload) == 0);
    struct origin none = {NULL, 0, 0};
    writes_push(n, &payload, &none);
}

void writes_check(struct node *n)
{
    struct buf payload;
    buf_init(&payload);
    lr_assert(command_put_check(&payload) == 0);
    struct origin none = {NULL, 0, 0};
    writes_push(n, &payload, &none);
}

size_t writes_turn_count(struct node *n)
{
    return n->wr.props_n;
}

const struct buf *writes_turn_payload(struct node *n, size_t i)
{
    lr_assert(i < n->wr.props_n);
    return &n->wr.props[i].payload;
}

void writes_leader_start(struct node *n)
{
    /* The log's clock never goes backwards, across leaders too: a new leader whose clock
     * is behind the last entry's time stamps that time until its clock passes it. */
    struct writes *w = &n->wr;
    for (raft_index i = raft_last_index(n->raft); i >= n->cache.first && i > 0; i--) {
        struct cache_entry *e = cache_at(&n->cache, i);
        int64_t t;
        const void *body;
        size_t body_len;
        enum command_kind kind;
        if (e == NULL || e->buf == NULL) {
            break;
        }
        if (e->type == RAFT_ENTRY_NORMAL &&
            command_get_kind(e->buf, e->len, &t, &kind, &body, &body_len)) {
            if (t > w->last_time_ms) {
                w->last_time_ms = t;
            }
            break;
        }
    }
}

static void refuse_props(struct node *n, const char *text)
{
    struct writes *w = &n->wr;
    for (size_t i = 0; i < w->props_n; i++) {
        origin_reply_text(n, &w->props[i].o, text);
        buf_free(&w->props[i].payload);
    }
    w->props_n = 0;
}

/* One PROPOSE for every write of the turn, so the core, the disk and the wire see
 * batches, not commands. */
void writes_propose(struct node *n)
{
    struct writes *w = &n->wr;
    if (w->props_n == 0) {
        return;
    }
    if (n->dur.store_failed) {
        char reply[256];
        /* never proposed, so never applied */
        refuse_props(n, durability_failed_reply(n, "; writes are refused", reply, sizeof reply));
        return;
    }
    if (transfer_blocks_writes(n)) {
        refuse_props(n, transfer_busy_reply); /* so that the target can catch up */
        return;
    }
    if (members_blocks_writes(n)) {
        refuse_props(n, members_busy_reply); /* so that a voter has its whole log */
        return;
    }
    size_t k = w->props_n;
    struct raft_entry *entries = calloc(k, sizeof *entries);
    lr_assert(entries != NULL);
    int64_t t = n->io->wall_ms(n->io->arg);
    if (t < w->last_time_ms) {
        t = w->last_time_ms; /* ctx.time never goes backwards under one leader */
    }
    w->last_time_ms = t;
    w->last_propose_ms = node_now(n);
    for (size_t i = 0; i < k; i++) {
        struct proposal *p = &w->props[i];
        command_stamp(p->payload.data, t);
        entries[i] =
            (struct raft_entry){0, RAFT_ENTRY_NORMAL, (uint32_t)p->payload.len, p->payload.data};
    }
    struct raft_event ev = {.type = RAFT_EVENT_PROPOSE};
    ev.propose.entries = entries;
    ev.propose.n = (uint32_t)k;
    int rv = node_step(n, &ev);
    if (rv == 0) {
        raft_index first = raft_last_index(n->raft) - k + 1;
        n->metrics.proposals_total += k;
        metrics_proposed(n, first + k - 1);
        for (size_t i = 0; i < k; i++) {
            if (w->props[i].o.req != NULL || w->props[i].o.peer != 0) {
                pending_add(n, first + i, entries[i].term, &w->props[i].o);
            }
        }
        for (size_t i = 0; i < k; i++) {
            buf_free(&w->props[i].payload);
        }
        w->props_n = 0;
    } else {
        refuse_props(n, rv == RAFT_ELOGFULL ? "-ERR the log is full: a snapshot is needed; "
                                              "retry\r\n"
                        : rv == RAFT_EBUSY  ? transfer_busy_reply
                                            : "-TRYAGAIN not the leader; retry\r\n");
    }
    free(entries);
}

/* ------------------------------------------------------------------------------------ */
/* Forwarding. */

void writes_forward(struct node *n,
                    struct server_request *req,
                    raft_id leader,
                    const void *blob,
                    size_t len)
{
    struct writes *w = &n->wr;
    uint64_t id = ++w->fwd_seq;
    struct buf b;
    frame_begin(&b, id, len);
    lr_assert(buf_append(&b, blob, len) == 0);
    int rv = n->io->send_frame(n->io->arg, leader, TRANSPORT_FRAME_FORWARD, &b);
    if (rv != 0) {
        node_reply_text(n, req, "-TRYAGAIN cannot reach the leader; retry\r\n");
        return;
    }
    VEC_RESERVE(w->fwds, w->fwds_n, w->fwds_cap, 1);
    w->fwds[w->fwds_n++] = (struct forward){
        id, leader, req, node_now(n) + n->c->write_timeout_ms + node_forward_grace_ms};
}

bool writes_to_leader(struct node *n,
                      struct server_request *req,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen)
{
    raft_id leader = raft_leader_of(n->raft);
    if (n->shutting_down) {
        node_reply_text(n, req, node_down_reply);
    } else if (leader == n->c->id) {
        return false;
    } else if (leader == 0) {
        node_reply_text(n, req, "-TRYAGAIN no leader; retry\r\n");
    } else {
        struct buf blob;
        buf_init(&blob);
        lr_assert(command_put_argv(&blob, argc, argv, argvlen) == 0);
        writes_forward(n, req, leader, blob.data, blob.len);
        buf_free(&blob);
    }
    return true;
}

/* A write a follower forwarded to this node. */
static void forwarded_write(struct node *n, const struct origin *o, const void *blob, size_t len)
{
    if (transfer_forwarded(n, o, blob, len) || members_forwarded(n, o, blob, len) ||
        load_forwarded(n, o, blob, len)) {
        return; /* a RAFT.TRANSFER, ADD, REMOVE or LOAD, which the leader carries out */
    }
    if (n->stopping || raft_role_of(n->raft) != RAFT_LEADER) {
        origin_reply_text(n, o, "-TRYAGAIN not the leader; retry\r\n");
    } else if (n->shutting_down) {
        origin_reply_text(n, o, node_down_reply);
    } else if (n->dur.store_failed) {
        origin_reply_text(n, o, "-ERR the leader's store failed; writes are refused\r\n");
    } else if (len > node_command_bytes_max) {
        origin_reply_text(n, o, "-ERR the command is larger than the leader accepts\r\n");
    } else {
        writes_take(n, blob, len, o);
    }
}

void writes_frame(struct node *n, raft_id from, uint8_t type, const void *body, size_t len)
{
    struct writes *w = &n->wr;
    struct cursor c = cursor_make(body, len);
    uint64_t id;
    if (!cursor_get_u64(&c, &id)) {
        node_log(n, "dropped a short frame of type %u from node %" PRIu64, type, from);
        return;
    }
    if (type == TRANSPORT_FRAME_FORWARD) {
        struct origin o = {NULL, from, id};
        forwarded_write(n, &o, c.p, c.left);
        return;
    }
    if (type == TRANSPORT_FRAME_FORWARD_REPLY) {
        for (size_t i = 0; i < w->fwds_n; i++) {
            if (w->fwds[i].id == id && w->fwds[i].leader == from) {
                node_reply(n, w->fwds[i].req, c.p, c.left);
                w->fwds[i] = w->fwds[--w->fwds_n];
                return;
            }
        }
    }
}

/* Waiters past their deadline learn that the outcome is unknown: the write may still be
 * applied later (it is in the log, or on its way to the leader). */
void writes_expire(struct node *n)
{
    struct writes *w = &n->wr;
    uint64_t now = node_now(n);
    size_t k = 0;
    for (size_t i = 0; i < w->fwds_n; i++) {
        if (w->fwds[i].deadline_ms <= now) {
            node_reply_text(n, w->fwds[i].req, node_timeout_reply);
        } else {
            w->fwds[k++] = w->fwds[i];
        }
    }
    w->fwds_n = k;
    struct pending *p = w->pend + w->pend_off;
    for (size_t i = 0; i < w->pend_n; i++) {
        if (!p[i].answered && p[i].deadline_ms <= now) {
            origin_reply_text(n, &p[i].o, node_timeout_reply);
            p[i].answered = true;
        }
    }
}

void writes_stop(struct node *n)
{
    struct writes *w = &n->wr;
    refuse_props(n, node_down_reply);
    writes_fail_all(n, shutdown_unknown_reply);
    for (size_t i = 0; i < w->fwds_n; i++) {
        node_reply_text(n, w->fwds[i].req, shutdown_unknown_reply);
    }
    w->fwds_n = 0;
    free(w->props);
    free(w->pend);
    free(w->fwds);
    w->props = NULL;
    w->pend = NULL;
    w->fwds = NULL;
    w->props_cap = w->pend_cap = w->fwds_cap = 0;
    w->pend_off = w->pend_n = 0;
}

void writes_free(struct node *n)
{
    struct writes *w = &n->wr;
    for (size_t i = 0; i < w->props_n; i++) {
        buf_free(&w->props[i].payload);
    }
    free(w->props);
    free(w->pend);
    free(w->fwds);
    memset(w, 0, sizeof *w);
}
