/*
 * The search of one key (Wing & Gong 1993 with Lowe 2017's cache): a tree search over the
 * call and return entries sorted by time, cut wherever a configuration was seen before.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/lincheck_internal.h"
#include "util/assert.h"

/* A call or return entry in the circular list whose head (sentinel) is entry 0. */
struct entry
{
    int32_t prev, next;
    int32_t op;    /* search op index */
    int32_t match; /* a call's return entry */
    bool call;
};

/* A linearized call, with the state before it, to undo it on backtracking. */
struct frame
{
    int32_t entry;
    struct val state;
};

struct citem
{
    uint64_t hash;
    struct val state;
};

static size_t cache_bytes(const struct cache *c, size_t items_cap, size_t cap)
{
    return cap * sizeof *c->slots + items_cap * (sizeof *c->items + c->words * 8);
}

static int cache_grow_items(struct cache *c)
{
    size_t cap = c->items_cap ? c->items_cap * 2 : 256;
    if (cache_bytes(c, cap, c->cap) > lincheck_cache_bytes_max || cap >= UINT32_MAX) {
        return END_CACHE_FULL;
    }
    struct citem *items = realloc(c->items, cap * sizeof *items);
    if (items == NULL) return LINCHECK_ENOMEM;
    c->items = items;
    uint64_t *bits = realloc(c->bits, cap * c->words * 8);
    if (bits == NULL) return LINCHECK_ENOMEM;
    c->bits = bits;
    c->items_cap = cap;
    return 0;
}

static int cache_grow_slots(struct cache *c)
{
    size_t cap = c->cap ? c->cap * 2 : 1024;
    if (cache_bytes(c, c->items_cap, cap) > lincheck_cache_bytes_max) return END_CACHE_FULL;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return LINCHECK_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        size_t j = c->items[i].hash & (cap - 1);
        while (slots[j] != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->cap = cap;
    return 0;
}

/* Adds (bits, state) unless present: 1 added, 0 present, or END_CACHE_FULL / ENOMEM. */
static int cache_add(struct cache *c, uint64_t hash, struct val state, const uint64_t *bits)
{
    size_t mask = c->cap - 1;
    size_t i = hash & mask;
    for (; c->slots[i] != 0; i = (i + 1) & mask) {
        uint32_t k = c->slots[i] - 1;
        if (c->items[k].hash == hash && val_eq(c->items[k].state, state) &&
            memcmp(&c->bits[k * c->words], bits, c->words * 8) == 0) {
            return 0;
        }
    }
    int rv = c->n == c->items_cap ? cache_grow_items(c) : 0;
    if (rv == 0 && (c->n + 1) * 2 > c->cap) rv = cache_grow_slots(c);
    if (rv != 0) return rv;
    lr_assert(c->n < c->items_cap && (c->n + 1) * 2 <= c->cap);
    mask = c->cap - 1; /* the table may have grown: find the free slot again */
    i = hash & mask;
    while (c->slots[i] != 0)
        i = (i + 1) & mask;
    c->items[c->n] = (struct citem){hash, state};
    memcpy(&c->bits[c->n * c->words], bits, c->words * 8);
    c->slots[i] = (uint32_t)++c->n;
    return 1;
}

struct event
{
    uint64_t time;
    int32_t op;
    bool ret;
};

/* Porcupine's order: by time, and at equal times calls before returns, so operations
 * that touch count as concurrent (which can only make the check more permissive). */
static int event_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->time != y->time) return x->time < y->time ? -1 : 1;
    if (x->ret != y->ret) return x->ret ? 1 : -1;
    return (x->op > y->op) - (x->op < y->op);
}

/* Builds the sorted entry list of the search ops. */
static int search_entries(struct search *se)
{
    size_t m = 2 * se->s;
    struct event *ev = malloc((m + 1) * sizeof *ev);
    int32_t *call_entry = malloc((se->s + 1) * sizeof *call_entry);
    if (ev == NULL || call_entry == NULL) {
        free(ev);
        free(call_entry);
        return LINCHECK_ENOMEM;
    }
    for (size_t i = 0; i < se->s; i++) {
        const struct rec *r = se->p->ops[se->sop[i]].r;
        ev[2 * i] = (struct event){r->call, (int32_t)i, false};
        ev[2 * i + 1] = (struct event){r->ret, (int32_t)i, true};
    }
    qsort(ev, m, sizeof *ev, event_cmp);
    se->e[0] = (struct entry){.prev = (int32_t)m, .next = m ? 1 : 0, .op = -1};
    for (size_t k = 1; k <= m; k++) {
        const struct event *v = &ev[k - 1];
        se->e[k] = (struct entry){
            .prev = (int32_t)k - 1,
            .next = k == m ? 0 : (int32_t)k + 1,
            .op = v->op,
            .call = !v->ret,
        };
        if (!v->ret) {
            call_entry[v->op] = (int32_t)k;
        } else {
            se->e[call_entry[v->op]].match = (int32_t)k;
        }
    }
    free(ev);
    free(call_entry);
    return 0;
}

void lincheck_search_free(struct search *se)
{
    free(se->sop);
    free(se->e);
    free(se->bits);
    free(se->stack);
    free(se->longest);
    free(se->cache.slots);
    free(se->cache.items);
    free(se->cache.bits);
}

int lincheck_search_init(struct search *se, const struct part *p, uint64_t budget)
{
    memset(se, 0, sizeof *se);
    se->p = p;
    se->budget = budget;
    se->state = (struct val){.tag = V_NIL};
    se->sop = malloc((p->n + 1) * sizeof *se->sop);
    if (se->sop == NULL) return LINCHECK_ENOMEM;
    for (size_t i = 0; i < p->n; i++) {
        const struct kop *o = &p->ops[i];
        if (o->unknown && o->r->op == LINCHECK_GET) continue; /* constrains nothing */
        se->sop[se->s++] = (int32_t)i;
        se->known_left += !o->unknown;
    }
    size_t words = se->s / 64 + 1;
    se->cache.words = words;
    se->e = malloc((2 * se->s + 1) * sizeof *se->e);
    se->bits = calloc(words, 8);
    se->stack = malloc((se->s + 1) * sizeof *se->stack);
    se->longest = malloc((se->s + 1) * sizeof *se->longest);
    if (!se->e || !se->bits || !se->stack || !se->longest) return LINCHECK_ENOMEM;
    int rv = cache_grow_items(&se->cache);
    if (rv == 0) rv = cache_grow_slots(&se->cache);
    if (rv != 0) return rv == END_CACHE_FULL ? LINCHECK_ENOMEM : rv;
    return search_entries(se);
}

/* Knuth's dancing links: unlink a call and its return, kept for unlift in reverse. */
static void lift(struct entry *e, int32_t call)
{
    lr_assert(e[call].call && !e[e[call].match].call);
    int32_t ids[2] = {call, e[call].match};
    for (int k = 0; k < 2; k++) {
        struct entry *x = &e[ids[k]];
        e[x->prev].next = x->next;
        e[x->next].prev = x->prev;
    }
}

static void unlift(struct entry *e, int32_t call)
{
    int32_t ids[2] = {e[call].match, call};
    for (int k = 0; k < 2; k++) {
        struct entry *x = &e[ids[k]];
        e[x->prev].next = ids[k];
        e[x->next].prev = ids[k];
    }
}

static void bit_flip(struct search *se, int32_t op)
{
    se->bits[op / 64] ^= (uint64_t)1 << (op % 64);
    se->bits_hash ^= mix64((uint64_t)op + 1); /* Zobrist: xor in or out */
}

/*
 * Wing & Gong's "try to linearize this call next": legal in the model and leading to a
 * configuration not seen before (Lowe's cache). Returns 1 when linearized, 0 when not, or
 * END_CACHE_FULL / ENOMEM.
 */
static int try_call(struct search *se, int32_t ei)
{
    const struct entry *e = &se->e[ei];
    const struct kop *o = &se->p->ops[se->sop[e->op]];
    struct val next;
    if (!lincheck_model_step(o, se->state, &next)) return 0;
    bit_flip(se, e->op);
    int rv = cache_add(&se->cache, se->bits_hash ^ val_hash(next), next, se->bits);
    if (rv <= 0 || rv == END_CACHE_FULL) {
        bit_flip(se, e->op);
        return rv;
    }
    se->stack[se->depth++] = (struct frame){ei, se->state};
    se->state = next;
    lift(se->e, ei);
    se->known_left -= !o->unknown;
    return 1;
}

/* Undoes the last linearized call; returns the entry to go on from (the one after it). */
static int32_t backtrack(struct search *se)
{
    lr_assert(se->depth > 0);
    struct frame f = se->stack[--se->depth];
    const struct entry *e = &se->e[f.entry];
    se->state = f.state;
    bit_flip(se, e->op);
    unlift(se->e, f.entry);
    se->known_left += !se->p->ops[se->sop[e->op]].unknown;
    return e->next;
}

/* Porcupine's "longest": the deepest stack seen when a return forced a backtrack. */
static void note_longest(struct search *se, int32_t blocked)
{
    if (se->have_longest && se->depth <= se->longest_len) return;
    se->have_longest = true;
    se->longest_len = se->depth;
    for (size_t i = 0; i < se->depth; i++)
        se->longest[i] = se->e[se->stack[i].entry].op;
    se->blocked = blocked;
    se->blocked_state = se->state;
}

/* Returns LINCHECK_OK, LINCHECK_VIOLATION, END_BUDGET, END_CACHE_FULL or ENOMEM. */
int lincheck_search_run(struct search *se)
{
    int32_t ei = se->e[0].next;
    while (se->known_left > 0) {
        if (se->steps >= se->budget) return END_BUDGET;
        se->steps++;
        lr_assert(ei != 0); /* a known op's return is always ahead while it is left */
        const struct entry *e = &se->e[ei];
        if (e->call) {
            int rv = try_call(se, ei);
            if (rv < 0 || rv == END_CACHE_FULL) return rv;
            ei = rv == 1 ? se->e[0].next : e->next;
        } else {
            /* The op closing here is pending and none of the pending calls could go
             * next: the prefix cannot be extended, so undo its last step. */
            note_longest(se, e->op);
            if (se->depth == 0) return LINCHECK_VIOLATION;
            ei = backtrack(se);
        }
    }
    lr_assert(se->depth <= se->s);
    return LINCHECK_OK; /* the stack is a witness; any unknown ops left go "never" */
}
