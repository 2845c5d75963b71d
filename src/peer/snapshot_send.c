/*
 * Streaming a snapshot file to a peer on its bulk lane: chunks of SNAPSHOT_CHUNK_BYTES,
 * read from the file only while the bulk queue holds less than SNAPSHOT_QUEUE_LOW_BYTES
 * (so the file is paced by the socket, not read into memory whole), then the SNAPSHOT
 * message behind the last chunk. One stream per peer; it stops when the bulk connection
 * goes down, and skips to the SNAPSHOT message when the receiver says it holds that
 * snapshot already (WIRE_SNAPSHOT_HAVE, see snapshot_recv.c).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

/* Data bytes of one snapshot chunk. */
#define SNAPSHOT_CHUNK_BYTES (1024 * 1024)
/* The next snapshot chunk is read once the bulk queue holds less than this. */
#define SNAPSHOT_QUEUE_LOW_BYTES (4 * 1024 * 1024)

_Static_assert(WIRE_CHUNK_HEADER_BYTES + SNAPSHOT_CHUNK_BYTES <= 4 * 1024 * 1024,
               "a chunk fits the default chunk_bytes_max");
_Static_assert(SNAPSHOT_QUEUE_LOW_BYTES + SNAPSHOT_CHUNK_BYTES + 1024 <=
                   SEND_QUEUE_BYTES_MAX_DEFAULT,
               "pacing stays below the default queue bound");

/* An outgoing snapshot stream. */
struct snap_send
{
    int fd;
    uint64_t size;
    uint64_t offset;
    struct raft_message m; /* the SNAPSHOT message that follows the last chunk */
};

void snap_send_free(struct peer *p)
{
    if (p->snap != NULL) {
        close(p->snap->fd);
        free(p->snap);
        p->snap = NULL;
    }
}

/* Ends the stream: queues its SNAPSHOT message behind the chunks. The queue bound does not
 * apply to it (it is tiny, and dropping it would waste the whole file). */
static void snap_send_finish(struct peer *p)
{
    struct raft_message m = p->snap->m;
    snap_send_free(p);
    struct link *l = &p->links[LANE_BULK];
    int rv = 0;
    struct out_frame *f = out_frame_encode_message(p->t, &m, &rv);
    if (f != NULL && l->state == LINK_UP) {
        link_enqueue(l, f);
    } else if (f != NULL) {
        out_frame_free(p->t, f);
    }
}

/* The receiver holds the snapshot being streamed to it: skip to the SNAPSHOT message. */
void snap_send_have(struct peer *p, const struct wire_have *h)
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
        lr_log_as(t->self, "snapshot to node %" PRIu64 " stopped: %s", p->id,
                  f == NULL ? "out of memory" : "cannot read the file");
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
void snap_send_pump(struct peer *p)
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
    snap_send_pump(p);
    return 0;
}
