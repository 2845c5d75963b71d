/*
 * The pool of big buffers: a few spares, reused warm.
 *
 * On the loop thread, the cost of a big frame is mostly page faults on fresh memory (a
 * 16 MiB frame is 4096 of them; malloc hands out blocks this big as new mappings each time),
 * measured at 10 to 150 ms per 16 MiB on a loaded two-core machine, against an election
 * timeout of 100 ms. So buffers of SPARE_BYTES_MIN and more, sent (sendq.c) or received
 * (conn.c), go back to a few spares and are reused warm; spares unused for SPARE_IDLE_MS are
 * freed by the housekeeping timer (transport.c).
 */
#include <stdlib.h>

#include "peer/transport_internal.h"

static uint64_t spares_bytes(const struct transport *t)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < t->n_spares; i++) {
        n += t->spares[i].b.cap;
    }
    return n;
}

/* Makes *b an empty buffer with room for n bytes: the smallest spare that fits, or a new
 * allocation of exactly n bytes (buf_reserve would double it). Errors: -1. */
int frame_buf_get(struct transport *t, struct buf *b, size_t n)
{
    buf_init(b);
    int best = -1;
    for (unsigned i = 0; n >= SPARE_BYTES_MIN && i < t->n_spares; i++) {
        size_t cap = t->spares[i].b.cap;
        if (cap >= n && (best < 0 || cap < t->spares[best].b.cap)) {
            best = (int)i;
        }
    }
    if (best >= 0) {
        *b = t->spares[best].b;
        b->len = 0;
        t->spares[best] = t->spares[--t->n_spares];
        return 0;
    }
    b->data = malloc(n > 0 ? n : 1);
    if (b->data == NULL) {
        return -1;
    }
    b->cap = n;
    return 0;
}

/* Takes *b back (leaving it empty): a big one is kept as a spare while there is room,
 * pushing out a smaller one if need be; the rest are freed. */
void frame_buf_put(struct transport *t, struct buf *b)
{
    if (b->cap < SPARE_BYTES_MIN || t->closing) {
        buf_free(b);
        return;
    }
    if (t->n_spares == SPARES_MAX || spares_bytes(t) + b->cap > SPARE_BYTES_MAX) {
        unsigned small = 0;
        for (unsigned i = 1; i < t->n_spares; i++) {
            if (t->spares[i].b.cap < t->spares[small].b.cap) {
                small = i;
            }
        }
        if (t->n_spares == 0 || t->spares[small].b.cap >= b->cap) {
            buf_free(b);
            return;
        }
        buf_free(&t->spares[small].b);
        t->spares[small] = t->spares[--t->n_spares];
        if (spares_bytes(t) + b->cap > SPARE_BYTES_MAX) {
            buf_free(b);
            return;
        }
    }
    t->spares[t->n_spares].b = *b;
    t->spares[t->n_spares].since_ms = uv_now(t->loop);
    t->n_spares++;
    buf_init(b);
}

void spares_free(struct transport *t, uint64_t idle_ms)
{
    uint64_t now = uv_now(t->loop);
    for (unsigned i = 0; i < t->n_spares;) {
        if (now - t->spares[i].since_ms >= idle_ms) {
            buf_free(&t->spares[i].b);
            t->spares[i] = t->spares[--t->n_spares];
        } else {
            i++;
        }
    }
}
