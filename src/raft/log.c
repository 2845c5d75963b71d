#include "raft/log.h"

#include <stdlib.h>
#include <string.h>

#include "util/assert.h"

enum {
    log_cap_initial = 1024,
    log_noop_reserve_max = 64, /* at most this many entries kept for no-ops */
};

static uint64_t pow2_at_least(uint64_t n)
{
    uint64_t p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

int log_init(struct raft_log *l, uint64_t entries_max, raft_index last)
{
    lr_assert(entries_max > 0);
    l->entries_max = entries_max;
    l->noop_reserve =
        entries_max / 2 < log_noop_reserve_max ? entries_max / 2 : log_noop_reserve_max;
    l->cap_max = pow2_at_least(entries_max);
    l->cap = l->cap_max < log_cap_initial ? l->cap_max : log_cap_initial;
    l->slots = malloc(l->cap * sizeof *l->slots);
    if (l->slots == NULL) {
        return RAFT_ENOMEM;
    }
    l->head = 0;
    l->first = last + 1;
    l->last = last;
    return 0;
}

void log_close(struct raft_log *l)
{
    free(l->slots);
    l->slots = NULL;
}

static struct log_slot *slot_at(const struct raft_log *l, raft_index i)
{
    lr_assert(i >= l->first && i <= l->last);
    return &l->slots[(l->head + (i - l->first)) & (l->cap - 1)];
}

raft_term log_term(const struct raft_log *l, raft_index i)
{
    if (i < l->first || i > l->last) {
        return 0;
    }
    return slot_at(l, i)->term;
}

uint32_t log_len(const struct raft_log *l, raft_index i)
{
    return slot_at(l, i)->len;
}

uint32_t log_batch(const struct raft_log *l,
                   raft_index from,
                   uint32_t n_max,
                   uint64_t bytes_max,
                   uint64_t *bytes)
{
    lr_assert(from >= l->first);
    uint64_t avail = from > l->last ? 0 : l->last - from + 1;
    uint32_t n = avail < n_max ? (uint32_t)avail : n_max;
    uint64_t pos = l->head + (from - l->first);
    uint64_t mask = l->cap - 1;
    uint64_t total = 0;
    uint32_t k = 0;
    for (; k < n; k++) {
        uint32_t len = l->slots[(pos + k) & mask].len;
        if (k > 0 && total + len > bytes_max) {
            break;
        }
        total += len;
    }
    *bytes = total;
    return k;
}

bool log_has_room(const struct raft_log *l, uint64_t n)
{
    return n <= l->entries_max - l->noop_reserve &&
           log_count(l) + n <= l->entries_max - l->noop_reserve;
}

bool log_fits(const struct raft_log *l, uint64_t n)
{
    return n <= l->entries_max && log_count(l) + n <= l->entries_max;
}

/* Doubles the ring, unwrapping it so that first sits at position 0. */
static int grow(struct raft_log *l)
{
    uint64_t cap = l->cap * 2;
    lr_assert(cap <= l->cap_max);
    struct log_slot *slots = malloc(cap * sizeof *slots);
    if (slots == NULL) {
        return RAFT_ENOMEM;
    }
    uint64_t n = log_count(l);
    for (uint64_t k = 0; k < n; k++) {
        slots[k] = l->slots[(l->head + k) & (l->cap - 1)];
    }
    free(l->slots);
    l->slots = slots;
    l->cap = cap;
    l->head = 0;
    return 0;
}

int log_append(struct raft_log *l, raft_term term, uint32_t len)
{
    lr_assert(log_fits(l, 1));
    lr_assert(term > 0);
    lr_implies(l->last >= l->first, term >= log_term(l, l->last));
    if (log_count(l) == l->cap) {
        int rv = grow(l);
        if (rv != 0) {
            return rv;
        }
    }
    l->last++;
    struct log_slot *s = slot_at(l, l->last);
    s->term = term;
    s->len = len;
    return 0;
}

void log_truncate(struct raft_log *l, raft_index i)
{
    lr_assert(i >= l->first && i <= l->last + 1);
    l->last = i - 1;
}

void log_compact(struct raft_log *l, raft_index i)
{
    lr_assert(i <= l->last);
    if (i < l->first) {
        return;
    }
    uint64_t drop = i + 1 - l->first;
    l->head = (l->head + drop) & (l->cap - 1);
    l->first = i + 1;
}

void log_reset(struct raft_log *l, raft_index i)
{
    l->head = 0;
    l->first = i + 1;
    l->last = i;
}

raft_index log_last_with_term_at_most(const struct raft_log *l, raft_index hi, raft_term t)
{
    if (hi > l->last) {
        hi = l->last;
    }
    raft_index lo = l->first; /* answer lies in [lo - 1, hi] */
    if (hi < lo || slot_at(l, lo)->term > t) {
        return l->first - 1;
    }
    while (lo < hi) { /* invariant: term(lo) <= t */
        raft_index mid = lo + (hi - lo + 1) / 2;
        if (slot_at(l, mid)->term <= t) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

raft_index log_first_of_term(const struct raft_log *l, raft_index i, raft_index lo)
{
    raft_term t = log_term(l, i);
    lr_assert(t != 0);
    if (lo < l->first) {
        lo = l->first;
    }
    /* Binary search for the first index in [lo, i] whose term is t. */
    raft_index a = lo, b = i;
    while (a < b) {
        raft_index mid = a + (b - a) / 2;
        if (slot_at(l, mid)->term < t) {
            a = mid + 1;
        } else {
            b = mid;
        }
    }
    return a;
}
