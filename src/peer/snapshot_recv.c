/*
 * Receiving a snapshot: the chunks of the bulk lane go into a temporary file in the data
 * directory (incoming-<peer>-<seq>.part); once the last one is in, the file is fsynced and
 * verified whole (snapfile_verify) on libuv's threadpool, off the loop thread, since both
 * take time in proportion to its size; then it is handed with its SNAPSHOT message to
 * cb.snapshot, which owns it from then on.
 *
 * The file is kept per peer, not per connection (struct snap_recv says why): a verified
 * one is held across lost connections, and a stream of the same snapshot again is
 * answered at its first chunk with WIRE_SNAPSHOT_HAVE.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer/transport_internal.h"
#include "store/snapfile.h"
#include "util/assert.h"
#include "util/crash_point.h"

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

/* Forgets the file (closing and deleting it) unless it was handed over. A check still
 * running finds its file no longer wanted when it ends (see snap_check_done). */
void snap_recv_discard(struct snap_recv *s)
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
    lr_log_as(p->t->self, "snapshot from node %" PRIu64 " dropped: %s", p->id, why);
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
    crash_point("recv.before_install");
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
    if (t->closing || p->removed || s->state != RECV_CHECKING || s->seq != ck->seq) {
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
    peer_handle_gone(p); /* last: it may free the peer and the transport */
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
    peer_handle_open(p);
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
void snap_recv_chunk(struct conn *c, const struct wire_chunk *ch)
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
    crash_point("recv.mid_chunk");
    if (ch->last) {
        snap_check_start(p);
    }
}

/* The SNAPSHOT message: delivered with its file once that is verified. */
void snap_recv_message(struct conn *c, struct raft_message *m)
{
    struct peer *p = c->p;
    struct snap_recv *s = &p->recv;
    if (!snap_recv_holds(s, m->snapshot.index, m->snapshot.term)) {
        /* Keep whatever else is held: it may still be asked for. */
        lr_log_as(c->t->self,
                  "snapshot from node %" PRIu64 " dropped: SNAPSHOT message without its file",
                  p->id);
        return;
    }
    s->msg = *m;
    s->msg_waiting = true;
    if (s->state == RECV_VERIFIED) {
        snap_recv_deliver(p);
    }
}
