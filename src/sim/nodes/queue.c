/* The whole-node simulator: the event queue, the dice, the first violation. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/nodes/internal.h"
#include "util/assert.h"

void ns_violation(struct world *w, const char *fmt, ...)
{
    if (w->failed) {
        return;
    }
    w->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->msg, w->msg_size, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------ */
/* The event queue: a binary heap ordered by (time, seq). */

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

void ns_schedule(struct world *w, struct event ev)
{
    ev.seq = w->seq++;
    VEC_RESERVE(w->heap, w->heap_n, w->heap_cap, 1);
    size_t i = w->heap_n++;
    while (i > 0 && ev_before(&ev, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = ev;
}

struct event ns_pop(struct world *w)
{
    struct event top = w->heap[0];
    struct event last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_n) {
            break;
        }
        if (c + 1 < w->heap_n && ev_before(&w->heap[c + 1], &w->heap[c])) {
            c++;
        }
        if (!ev_before(&w->heap[c], &last)) {
            break;
        }
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_n > 0) {
        w->heap[i] = last;
    }
    return top;
}

uint64_t ns_rnd(struct world *w, uint64_t lo, uint64_t hi)
{
    return lr_rand_range(&w->rng, lo, hi);
}

bool ns_chance(struct world *w, unsigned percent)
{
    return lr_rand_below(&w->rng, 100) < percent;
}
