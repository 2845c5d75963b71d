/*
 * The log's tail in memory: every entry since the compaction point, with its term and
 * length, and the payloads of the newest ones, so that AppendEntries to followers that
 * keep up and applies need not read LMDB. At most --log-cache-bytes of payloads stay in
 * memory; an older payload is read from the store when a lagging follower needs it.
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

static void entry_free(struct log_cache *c, struct cache_entry *ce)
{
    if (ce->buf != NULL) {
        c->bytes -= ce->len;
    }
    c->log_bytes -= ce->len;
    free(ce->buf);
    ce->buf = NULL;
}

/* Drops every entry at index >= from. */
void cache_truncate(struct log_cache *c, raft_index from)
{
    while (c->n > 0 && cache_last(c) >= from) {
        entry_free(c, &c->e[c->off + c->n - 1]);
        c->n--;
    }
    if (c->evicted >= from) {
        c->evicted = from > 0 ? from - 1 : 0;
    }
}

/* Empties the cache; the next entry appended will be at first. */
void cache_reset(struct log_cache *c, raft_index first)
{
    cache_truncate(c, 0);
    c->off = 0;
    c->first = first;
    c->evicted = first - 1;
}

void cache_append(struct log_cache *c, raft_index index, const struct raft_entry *e)
{
    if (c->n == 0) {
        c->off = 0;
        c->first = index;
        c->evicted = index - 1;
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
    c->log_bytes += ce->len;
    c->n++;
}

/* Drops the entries at index <= to. */
void cache_compact(struct log_cache *c, raft_index to)
{
    while (c->n > 0 && c->first <= to) {
        entry_free(c, &c->e[c->off]);
        c->off++;
        c->n--;
        c->first++;
    }
    if (c->evicted < c->first - 1) {
        c->evicted = c->first - 1;
    }
}

void cache_evict(struct log_cache *c, uint64_t bytes_max, raft_index upto)
{
    while (c->bytes > bytes_max && c->evicted + 1 <= upto && c->n > 0 &&
           c->evicted + 1 <= cache_last(c)) {
        struct cache_entry *ce = cache_at(c, c->evicted + 1);
        if (ce->buf != NULL) {
            c->bytes -= ce->len;
            free(ce->buf);
            ce->buf = NULL;
        }
        c->evicted++;
    }
}

void node_cache_trim(struct node *n)
{
    if (n->c->log_cache_bytes == 0) {
        return; /* keep everything */
    }
    raft_index upto = n->dur.durable < n->applied_sent ? n->dur.durable : n->applied_sent;
    cache_evict(&n->cache, n->c->log_cache_bytes, upto);
}

struct load
{
    struct raft_entry *e;
    raft_index first;
    struct buf *scratch;
    size_t *offsets;
};

/* Copies each read payload into scratch; offsets are fixed up once it stops growing. */
static int load_one(void *arg, raft_index index, const struct raft_entry *e)
{
    struct load *l = arg;
    size_t i = index - l->first;
    l->offsets[i] = l->scratch->len;
    return buf_append(l->scratch, e->buf, e->len) == 0 ? 0 : -1;
}

int cache_entries(struct node *n,
                  raft_index first,
                  uint32_t k,
                  struct raft_entry *e,
                  struct buf *scratch)
{
    struct log_cache *c = &n->cache;
    for (uint32_t i = 0; i < k; i++) {
        struct cache_entry *ce = cache_at(c, first + i);
        e[i] = (struct raft_entry){ce->term, ce->type, ce->len, ce->buf};
    }
    if (first > c->evicted) {
        return 0;
    }
    raft_index last = c->evicted < first + k - 1 ? c->evicted : first + k - 1;
    size_t *offsets = calloc(last - first + 1, sizeof *offsets);
    lr_assert(offsets != NULL);
    struct load l = {e, first, scratch, offsets};
    int rv = n->io->read_entries(n->io->arg, first, last, load_one, &l);
    if (rv == 0) {
        for (raft_index i = first; i <= last; i++) {
            struct raft_entry *x = &e[i - first];
            x->buf = x->len > 0 ? scratch->data + offsets[i - first] : NULL;
        }
    }
    free(offsets);
    return rv;
}

uint64_t cache_bytes_upto(struct log_cache *c, raft_index index)
{
    uint64_t sum = 0;
    for (raft_index i = c->first; c->n > 0 && i <= index && i <= cache_last(c); i++) {
        sum += cache_at(c, i)->len;
    }
    return sum;
}

void cache_free(struct log_cache *c)
{
    cache_truncate(c, 0);
    free(c->e);
    memset(c, 0, sizeof *c);
}
