/*
 * The log's tail in memory: every entry since the compaction point, with its payload, so
 * that AppendEntries and applies need not read LMDB. bytes counts the payloads held.
 */
#include <stdlib.h>
#include <string.h>

#include "node/internal.h"
#include "util/assert.h"

raft_index cache_last(const struct log_cache *c)
{
    return c->first + c->n - 1;
}

struct cache_entry *cache_at(struct log_cache *c, raft_index index)
{
    lr_assert(index >= c->first && index <= cache_last(c));
    return &c->e[c->off + (index - c->first)];
}

/* Drops every entry at index >= from. */
void cache_truncate(struct log_cache *c, raft_index from)
{
    while (c->n > 0 && cache_last(c) >= from) {
        struct cache_entry *ce = &c->e[c->off + c->n - 1];
        c->bytes -= ce->len;
        free(ce->buf);
        c->n--;
    }
}

/* Empties the cache; the next entry appended will be at first. */
void cache_reset(struct log_cache *c, raft_index first)
{
    cache_truncate(c, 0);
    c->off = 0;
    c->first = first;
}

void cache_append(struct log_cache *c, raft_index index, const struct raft_entry *e)
{
    if (c->n == 0) {
        c->off = 0;
        c->first = index;
    }
    lr_assert(index == c->first + c->n);
    if (c->off > 0 && c->off + c->n == c->cap && c->off >= c->n) {
        memmove(c->e, c->e + c->off, c->n * sizeof *c->e);
        c->off = 0;
    }
    size_t used = c->off + c->n;
    VEC_RESERVE(c->e, used, c->cap, 1);
    struct cache_entry *ce = &c->e[c->off + c->n];
    ce->term = e->term;
    ce->type = e->type;
    ce->len = e->buf != NULL ? e->len : 0;
    ce->buf = NULL;
    if (ce->len > 0) {
        ce->buf = malloc(ce->len);
        lr_assert(ce->buf != NULL);
        memcpy(ce->buf, e->buf, ce->len);
    }
    c->bytes += ce->len;
    c->n++;
}

/* Drops the entries at index <= to. */
void cache_compact(struct log_cache *c, raft_index to)
{
    while (c->n > 0 && c->first <= to) {
        c->bytes -= c->e[c->off].len;
        free(c->e[c->off].buf);
        c->off++;
        c->n--;
        c->first++;
    }
}

void cache_free(struct log_cache *c)
{
    cache_truncate(c, 0);
    free(c->e);
    memset(c, 0, sizeof *c);
}
