/*
 * The event loop: the queue of timed events (ticks, deliveries, disk completions), the
 * tick chains of the nodes, the events a paused node holds, and sim_step(), which pops
 * the next event and hands it to its node.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

/* --- The event queue: a binary heap ordered by (time, insertion sequence) ---------- */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
    return a->time_us < b->time_us || (a->time_us == b->time_us && a->seq < b->seq);
}

void sim_schedule(struct sim *s,
                  uint64_t time_us,
                  uint8_t kind,
                  uint8_t node,
                  uint32_t gen,
                  struct sim_msg *msg)
{
    lr_assert(time_us >= s->now_us);
    if (s->heap_count == s->heap_cap) {
        uint64_t cap = s->heap_cap ? s->heap_cap * 2 : 256;
        struct sim_event *p = realloc(s->heap, cap * sizeof *p);
        lr_assert(p != NULL);
        s->heap = p;
        s->heap_cap = cap;
    }
    struct sim_event ev = {
        .time_us = time_us, .seq = s->seq++, .msg = msg, .gen = gen, .kind = kind, .node = node};
    uint64_t i = s->heap_count++;
    while (i > 0) {
        uint64_t parent = (i - 1) / 2;
        if (!ev_before(&ev, &s->heap[parent])) {
            break;
        }
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = ev;
}

static struct sim_event heap_pop(struct sim *s)
{
    lr_assert(s->heap_count > 0);
    struct sim_event top = s->heap[0];
    struct sim_event last = s->heap[--s->heap_count];
    uint64_t i = 0;
    for (;;) {
        uint64_t child = 2 * i + 1;
        if (child >= s->heap_count) {
            break;
        }
        if (child + 1 < s->heap_count && ev_before(&s->heap[child + 1], &s->heap[child])) {
            child++;
        }
        if (!ev_before(&s->heap[child], &last)) {
            break;
        }
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->heap_count > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* --- Ticks ------------------------------------------------------------------------ */

static uint64_t tick_interval_us(const struct sim *s, const struct sim_node *n)
{
    uint64_t t = s->opt.tick_us * n->rate_permille / 1000;
    return t > 0 ? t : 1;
}

/* Starts a new tick chain (boot, resume): the first tick lands at a random point of the
 * interval so that nodes do not tick in lockstep. */
void sim_tick_start(struct sim *s, struct sim_node *n)
{
    n->tick_gen++;
    uint64_t first = sim_rand_range(s, 1, tick_interval_us(s, n));
    sim_schedule(s, s->now_us + first, SIM_EV_TICK, (uint8_t)n->id, n->tick_gen, NULL);
}

static void do_tick(struct sim *s, struct sim_node *n, uint32_t gen)
{
    if (!n->up || n->paused || gen != n->tick_gen) {
        return; /* a stale chain; resume and restart start a new one */
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_TICK;
    sim_step_node(s, n, &ev, NULL);
    sim_schedule(s, s->now_us + tick_interval_us(s, n), SIM_EV_TICK, (uint8_t)n->id, gen, NULL);
}

/* --- Events held while paused ----------------------------------------------------- */

static void hold(struct sim_node *n, const struct sim_event *ev)
{
    if (n->held_count == n->held_cap) {
        uint32_t cap = n->held_cap ? n->held_cap * 2 : 64;
        struct sim_event *p = realloc(n->held, cap * sizeof *p);
        lr_assert(p != NULL);
        n->held = p;
        n->held_cap = cap;
    }
    n->held[n->held_count++] = *ev;
}

/* Frees the held events of a crashed or destroyed node. */
void sim_held_free(struct sim_node *n)
{
    for (uint32_t i = 0; i < n->held_count; i++) {
        free(n->held[i].msg);
    }
    n->held_count = 0;
}

/* --- Stepping ------------------------------------------------------------------------ */

bool sim_step(struct sim *s)
{
    if (s->failed || s->heap_count == 0) {
        return false;
    }
    struct sim_event ev = heap_pop(s);
    lr_assert(ev.time_us >= s->now_us);
    s->now_us = ev.time_us;
    s->steps++;
    s->stats.steps++;
    struct sim_node *n = &s->nodes[ev.node];
    switch (ev.kind) {
        case SIM_EV_TICK:
            do_tick(s, n, ev.gen);
            break;
        case SIM_EV_DELIVER:
            if (n->up && n->paused) {
                hold(n, &ev);
            } else {
                sim_net_deliver(s, ev.msg);
            }
            break;
        case SIM_EV_DISK:
            if (!n->up || ev.gen != n->incarnation) {
                break; /* the write was lost in a crash */
            }
            if (n->paused) {
                hold(n, &ev);
            } else {
                sim_disk_event(s, n);
            }
            break;
        default:
            lr_assert(false);
    }
    sim_check_global(s);
    return true;
}

void sim_run_for(struct sim *s, uint64_t us)
{
    uint64_t end = s->now_us + us;
    while (!s->failed && s->heap_count > 0 && s->heap[0].time_us <= end) {
        sim_step(s);
    }
    if (!s->failed) {
        s->now_us = end;
    }
}

uint64_t sim_now_us(const struct sim *s)
{
    return s->now_us;
}

bool sim_next_event_us(const struct sim *s, uint64_t *time_us)
{
    if (s->heap_count == 0) {
        return false;
    }
    *time_us = s->heap[0].time_us;
    return true;
}

uint64_t sim_steps(const struct sim *s)
{
    return s->steps;
}

const char *sim_failure(const struct sim *s)
{
    return s->failed ? s->failure : NULL;
}

const struct sim_stats *sim_stats(const struct sim *s)
{
    return &s->stats;
}
