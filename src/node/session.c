/*
 * Sessions: the node's state of one client connection (src/node/session.h), and the order
 * of its commands.
 *
 * Per-connection order: every command takes effect after the ones sent before it on the
 * same connection. Commands run in phases: the script's reads of a connection may run
 * together, and so may its writes, but a read waits until the writes before it are
 * answered (so it sees them, on a follower too: its ReadIndex round starts after they
 * are applied on the leader), and a write waits for the reads before it (so they cannot
 * see it). A WATCH is a read of the node's own: it joins the reads' phase. Pipelined commands of
 * one kind still go out in one batch; only a change of kind waits for a round trip.
 */
#include <stdlib.h>
#include <string.h>

#include "node/auth.h"
#include "node/internal.h"
#include "node/session.h"
#include "util/assert.h"

/* A command that waits for the commands before it on its connection. */
struct deferred
{
    struct deferred *next;
    struct server_request *req;
    enum session_kind kind;
    struct buf blob; /* what session_run needs to start it */
};

static void session_unref(struct node *n, struct session *s)
{
    lr_assert(s->refs > 0);
    if (--s->refs > 0) {
        return;
    }
    lr_assert(s->closed && s->queue == NULL);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        n->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    session_reset_state(s);
    free(s->name);
    free(s->lib_name);
    free(s->lib_ver);
    free(s);
}

struct session *session_open(struct node *n)
{
    struct session *s = calloc(1, sizeof *s);
    lr_assert(s != NULL);
    s->id = ++n->session_seq;
    s->refs = 1;
    s->proto = 2;
    s->opened_ms = node_now(n);
    s->authenticated = !auth_required(n);
    buf_init(&s->tx);
    buf_init(&s->watched);
    s->next = n->sessions;
    if (n->sessions != NULL) {
        n->sessions->prev = s;
    }
    n->sessions = s;
    n->sessions_n++;
    return s;
}

/* Answers every command still waiting (into the void if the connection is gone). */
static void drop_queue(struct node *n, struct session *s, const char *text)
{
    struct deferred *d = s->queue;
    s->queue = s->queue_tail = NULL;
    while (d != NULL) {
        struct deferred *next = d->next;
        node_reply_text(n, d->req, text);
        buf_free(&d->blob);
        free(d);
        d = next;
    }
}

void session_close(struct node *n, struct session *s)
{
    lr_assert(!s->closed);
    s->closed = true;
    n->sessions_n--;
    drop_queue(n, s, "-ERR the connection is gone\r\n");
    session_unref(n, s);
}

void session_reset_state(struct session *s)
{
    s->in_multi = false;
    s->multi_dirty = false;
    s->tx_n = 0;
    buf_free(&s->tx);
    session_unwatch(s);
}

void session_unwatch(struct session *s)
{
    s->watching = false;
    s->watched_n = 0;
    buf_free(&s->watched);
}

/* Whether a command of kind may start now, after what is in flight; a new command also
 * waits while older ones are queued. */
static bool may_join(const struct session *s, enum session_kind kind)
{
    enum session_kind phase = kind == SESSION_WATCH ? SESSION_READ : kind;
    return s->inflight == 0 || phase == s->phase;
}

static bool may_start(const struct session *s, enum session_kind kind)
{
    return s->queue == NULL && may_join(s, kind);
}

static void start(struct node *n,
                  struct session *s,
                  struct server_request *req,
                  enum session_kind kind,
                  struct buf *blob)
{
    s->phase = kind == SESSION_WATCH ? SESSION_READ : kind;
    s->inflight++;
    s->refs++;
    n->io->set_tag(n->io->arg, req, s);
    session_run(n, s, req, kind, blob); /* may answer at once, reentering session_answered */
}

/* Starts the queued commands that may start now. */
static void drain(struct node *n, struct session *s)
{
    if (s->draining) {
        return; /* the outer call goes on */
    }
    s->draining = true;
    s->refs++;
    while (s->queue != NULL && !s->closed && may_join(s, s->queue->kind)) {
        struct deferred *d = s->queue;
        s->queue = d->next;
        if (s->queue == NULL) {
            s->queue_tail = NULL;
        }
        d->next = NULL;
        start(n, s, d->req, d->kind, &d->blob);
        buf_free(&d->blob);
        free(d);
    }
    s->draining = false;
    session_unref(n, s);
}

void session_submit(struct node *n,
                    struct session *s,
                    struct server_request *req,
                    enum session_kind kind,
                    struct buf *blob)
{
    if (may_start(s, kind)) {
        start(n, s, req, kind, blob);
        return;
    }
    struct deferred *d = calloc(1, sizeof *d);
    lr_assert(d != NULL);
    d->req = req;
    d->kind = kind;
    d->blob = *blob;
    buf_init(blob);
    if (s->queue_tail != NULL) {
        s->queue_tail->next = d;
    } else {
        s->queue = d;
    }
    s->queue_tail = d;
}

void session_answered(struct node *n, struct session *s)
{
    lr_assert(s->inflight > 0);
    s->inflight--;
    if (s->inflight == 0) {
        s->phase = SESSION_IDLE;
        drain(n, s);
    }
    session_unref(n, s);
}

void sessions_stop(struct node *n)
{
    for (struct session *s = n->sessions; s != NULL; s = s->next) {
        drop_queue(n, s, node_down_reply);
    }
}

void sessions_free(struct node *n)
{
    struct session *s = n->sessions;
    while (s != NULL) {
        struct session *next = s->next;
        struct deferred *d = s->queue;
        while (d != NULL) {
            struct deferred *dn = d->next;
            buf_free(&d->blob);
            free(d);
            d = dn;
        }
        session_reset_state(s);
        free(s->name);
        free(s->lib_name);
        free(s->lib_ver);
        free(s);
        s = next;
    }
    n->sessions = NULL;
}
