/*
 * The linearizability checker (lincheck.h has the contract). In four parts:
 *
 * 1. Recording. Operations are kept in call order of lincheck_invoke(), each with copies
 *    of its bytes; a small hash table of clients enforces the recording discipline.
 * 2. Partitioning. lincheck_check() sorts the operations by key and checks each key on
 *    its own: linearizability is local (Herlihy & Wing 1990, Theorem 1), so the
 *    exponential part of the search depends on the concurrency of one key only.
 *    Within a key, every byte string is interned to a small id, and a string that is a
 *    canonical decimal integer becomes that integer, so a model state is a fixed-size
 *    value with O(1) equality and hash ("6" set by SET equals 6 made by INCR, as the
 *    bytes kv.lua stores are the same).
 * 3. Search. Wing & Gong's tree search (JPDC 1993) over a doubly linked list of call and
 *    return entries sorted by time, with Lowe's memoization (CCPE 2017): a configuration
 *    is the set of operations linearized so far plus the model state, and reaching one a
 *    second time cannot lead anywhere new, so it is cut. The set is a bitset with an
 *    incrementally kept Zobrist hash (xor of one random word per operation).
 * 4. Report. For a violation, the longest linearized prefix seen at any backtrack, the
 *    operation whose return forced that backtrack, and the key's timeline.
 *
 * Unknown outcomes (lincheck_unknown) return at +infinity and accept any output, so the
 * step function stays deterministic: linearizing such an operation "at the end" is the
 * same as it never happening. Two consequences used below: an unknown GET constrains
 * nothing and is left out of the search; and once only unknown operations are left
 * unlinearized the history is linearizable (as Knossos' wgl does with :info ops).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/lincheck.h"
#include "util/assert.h"

/* ------------------------------------------------------------------------------------- */
/* 1. Recording                                                                           */
/* ------------------------------------------------------------------------------------- */

/* STATUS_FAILED: an error proved the operation had no effect; it is left out of the
 * search altogether, as if never called. */
enum rec_status { STATUS_PENDING, STATUS_DONE, STATUS_UNKNOWN, STATUS_FAILED };

/* One recorded operation. */
struct rec
{
    uint64_t client;
    uint64_t call, ret; /* ret is LINCHECK_TIME_INFINITY unless STATUS_DONE */
    int64_t n;          /* LINCHECK_REPLY_INT */
    uint8_t *bytes;     /* the key, then arg, then arg2, in one allocation */
    uint8_t *value;     /* LINCHECK_REPLY_BULK's bytes, or NULL */
    size_t key_len, arg_len, arg2_len, value_len;
    uint32_t id;
    uint8_t op, status, reply;
};

struct client
{
    uint64_t id;
    int64_t pending;      /* the operation in flight, or -1 */
    uint64_t last_return; /* of its last completed operation */
    bool used, retired;
};

struct lincheck
{
    struct rec *ops;
    size_t n, cap;
    struct client *clients; /* open addressing, cap a power of two */
    size_t clients_n, clients_cap;
};

static const uint8_t *rec_key(const struct rec *r)
{
    return r->bytes;
}

static const uint8_t *rec_arg(const struct rec *r)
{
    return r->bytes + r->key_len;
}

static const uint8_t *rec_arg2(const struct rec *r)
{
    return r->bytes + r->key_len + r->arg_len;
}

/* splitmix64's finalizer: a cheap, well-mixed hash of a word. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

struct lincheck *lincheck_new(void)
{
    return calloc(1, sizeof(struct lincheck));
}

void lincheck_free(struct lincheck *h)
{
    if (h == NULL) return;
    for (size_t i = 0; i < h->n; i++) {
        free(h->ops[i].bytes);
        free(h->ops[i].value);
    }
    free(h->ops);
    free(h->clients);
    free(h);
}

size_t lincheck_size(const struct lincheck *h)
{
    return h->n;
}

static struct client *client_find(const struct lincheck *h, uint64_t id)
{
    if (h->clients_cap == 0) return NULL;
    size_t mask = h->clients_cap - 1;
    for (size_t i = mix64(id) & mask;; i = (i + 1) & mask) {
        struct client *c = &h->clients[i];
        if (!c->used) return NULL;
        if (c->id == id) return c;
    }
}

/* Rehashes into a table twice as large (or the first one). */
static int clients_grow(struct lincheck *h)
{
    size_t cap = h->clients_cap ? h->clients_cap * 2 : 16;
    struct client *t = calloc(cap, sizeof *t);
    if (t == NULL) return LINCHECK_ENOMEM;
    for (size_t i = 0; i < h->clients_cap; i++) {
        if (!h->clients[i].used) continue;
        size_t j = mix64(h->clients[i].id) & (cap - 1);
        while (t[j].used)
            j = (j + 1) & (cap - 1);
        t[j] = h->clients[i];
    }
    free(h->clients);
    h->clients = t;
    h->clients_cap = cap;
    return 0;
}

/* The entry for a new client id (not in the table), or NULL when out of memory. */
static struct client *client_add(struct lincheck *h, uint64_t id)
{
    if ((h->clients_n + 1) * 2 > h->clients_cap && clients_grow(h) != 0) return NULL;
    size_t mask = h->clients_cap - 1;
    size_t i = mix64(id) & mask;
    while (h->clients[i].used)
        i = (i + 1) & mask;
    h->clients_n++;
    h->clients[i] = (struct client){.id = id, .pending = -1, .used = true};
    return &h->clients[i];
}

static int ops_reserve(struct lincheck *h)
{
    if (h->n < h->cap) return 0;
    if (h->n >= lincheck_ops_max) return LINCHECK_ELIMIT;
    size_t cap = h->cap ? h->cap * 2 : 64;
    struct rec *ops = realloc(h->ops, cap * sizeof *ops);
    if (ops == NULL) return LINCHECK_ENOMEM;
    h->ops = ops;
    h->cap = cap;
    return 0;
}

static int call_check(const struct lincheck *h,
                      uint64_t client,
                      uint64_t time,
                      const struct lincheck_call *call)
{
    if ((unsigned)call->op > LINCHECK_CAS || time == LINCHECK_TIME_INFINITY) {
        return LINCHECK_EINVAL;
    }
    if (call->key.len > lincheck_key_bytes_max || call->arg.len > lincheck_value_bytes_max ||
        call->arg2.len > lincheck_value_bytes_max) {
        return LINCHECK_ELIMIT;
    }
    const struct client *c = client_find(h, client);
    if (c != NULL && (c->pending >= 0 || c->retired)) return LINCHECK_ECLIENT;
    if (c != NULL && time < c->last_return) return LINCHECK_EINVAL;
    return 0;
}

static void copy_bytes(uint8_t *dst, struct lincheck_bytes b)
{
    if (b.len > 0) memcpy(dst, b.data, b.len);
}

int64_t lincheck_invoke(struct lincheck *h,
                        uint64_t client,
                        uint64_t time,
                        const struct lincheck_call *call)
{
    int rv = call_check(h, client, time, call);
    if (rv != 0) return rv;
    rv = ops_reserve(h);
    if (rv != 0) return rv;
    /* SET has one argument, CAS two, the others none. */
    size_t arg_len = call->op == LINCHECK_SET || call->op == LINCHECK_CAS ? call->arg.len : 0;
    size_t arg2_len = call->op == LINCHECK_CAS ? call->arg2.len : 0;
    uint8_t *bytes = malloc(call->key.len + arg_len + arg2_len + 1);
    if (bytes == NULL) return LINCHECK_ENOMEM;
    struct client *c = client_find(h, client);
    if (c == NULL) c = client_add(h, client);
    if (c == NULL) {
        free(bytes);
        return LINCHECK_ENOMEM;
    }
    copy_bytes(bytes, call->key);
    if (arg_len > 0) copy_bytes(bytes + call->key.len, call->arg);
    if (arg2_len > 0) copy_bytes(bytes + call->key.len + arg_len, call->arg2);
    struct rec *r = &h->ops[h->n];
    *r = (struct rec){
        .client = client,
        .call = time,
        .ret = LINCHECK_TIME_INFINITY,
        .bytes = bytes,
        .key_len = call->key.len,
        .arg_len = arg_len,
        .arg2_len = arg2_len,
        .id = (uint32_t)h->n,
        .op = (uint8_t)call->op,
        .status = STATUS_PENDING,
    };
    c->pending = (int64_t)h->n;
    return (int64_t)h->n++;
}

static struct rec *pending_op(struct lincheck *h, int64_t id)
{
    if (id < 0 || (uint64_t)id >= h->n) return NULL;
    struct rec *r = &h->ops[id];
    return r->status == STATUS_PENDING ? r : NULL;
}

int lincheck_complete(struct lincheck *h,
                      int64_t id,
                      uint64_t time,
                      const struct lincheck_output *out)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL || time < r->call || time == LINCHECK_TIME_INFINITY) return LINCHECK_EINVAL;
    if ((unsigned)out->kind > LINCHECK_REPLY_ERR) return LINCHECK_EINVAL;
    if (out->kind == LINCHECK_REPLY_BULK) {
        if (out->value.len > lincheck_value_bytes_max) return LINCHECK_ELIMIT;
        r->value = malloc(out->value.len + 1);
        if (r->value == NULL) return LINCHECK_ENOMEM;
        copy_bytes(r->value, out->value);
        r->value_len = out->value.len;
    }
    r->reply = (uint8_t)out->kind;
    r->n = out->kind == LINCHECK_REPLY_INT ? out->n : 0;
    r->ret = time;
    r->status = STATUS_DONE;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->last_return = time;
    return 0;
}

int lincheck_unknown(struct lincheck *h, int64_t id)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL) return LINCHECK_EINVAL;
    r->status = STATUS_UNKNOWN;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->retired = true; /* its next call could overlap the unknown one: a new id must */
    return 0;
}

int lincheck_failed(struct lincheck *h, int64_t id, uint64_t time)
{
    struct rec *r = pending_op(h, id);
    if (r == NULL || time < r->call || time == LINCHECK_TIME_INFINITY) return LINCHECK_EINVAL;
    r->status = STATUS_FAILED;
    r->ret = time;
    struct client *c = client_find(h, r->client);
    lr_assert(c != NULL && c->pending == id);
    c->pending = -1;
    c->last_return = time;
    return 0;
}

const char *lincheck_strerror(int rv)
{
    switch (rv) {
        case LINCHECK_OK:
            return "ok";
        case LINCHECK_VIOLATION:
            return "violation";
        case LINCHECK_UNDECIDED:
            return "undecided";
        case LINCHECK_EINVAL:
            return "EINVAL";
        case LINCHECK_ENOMEM:
            return "ENOMEM";
        case LINCHECK_ELIMIT:
            return "ELIMIT";
        case LINCHECK_ECLIENT:
            return "ECLIENT";
        default:
            return "unknown error";
    }
}

/* ------------------------------------------------------------------------------------- */
/* 2. One key: values and the model                                                      */
/* ------------------------------------------------------------------------------------- */

enum val_tag { V_NIL, V_INT, V_STR };

/* A register value: nil, a canonical integer string (as its integer), or an interned
 * string. Unused fields are 0, so equality and hash read every field. */
struct val
{
    int64_t n;    /* V_INT */
    uint32_t sid; /* V_STR */
    uint8_t tag;
};

static bool val_eq(struct val a, struct val b)
{
    return a.tag == b.tag && a.n == b.n && a.sid == b.sid;
}

static uint64_t val_hash(struct val v)
{
    return mix64(mix64((uint64_t)v.n ^ ((uint64_t)v.tag << 56)) ^ v.sid);
}

/*
 * Redis's string2ll, as examples/kv.lua's parse_int: an optional '-', then decimal digits
 * without leading zeros ("0" itself is fine, "-0" is not), within int64. Exactly the
 * strings that are tostring() of some integer, so the mapping string <-> integer is 1:1.
 */
static bool parse_int(const uint8_t *p, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = len > 0 && p[0] == '-';
    if (neg) i = 1;
    if (i == len || len > 20) return false;
    if (p[i] == '0' && (len - i > 1 || neg)) return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (limit - d) / 10) return false;
        v = v * 10 + d;
    }
    if (neg) {
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        *out = (int64_t)v;
    }
    return true;
}

struct istr
{
    const uint8_t *p;
    size_t len;
};

/* The strings of one key, interned: sid -> bytes, and a hash set to find a sid. */
struct interner
{
    struct istr *strs; /* by sid */
    uint32_t *slots;   /* sid + 1, or 0 when free */
    size_t n, cap;     /* cap: a power of two, at least twice the strings there can be */
};

static int interner_init(struct interner *in, size_t strings_max)
{
    in->n = 0;
    in->cap = 16;
    while (in->cap < 2 * strings_max)
        in->cap *= 2;
    in->strs = malloc((strings_max + 1) * sizeof *in->strs);
    in->slots = calloc(in->cap, sizeof *in->slots);
    return in->strs && in->slots ? 0 : LINCHECK_ENOMEM;
}

static void interner_free(struct interner *in)
{
    free(in->strs);
    free(in->slots);
}

static uint64_t bytes_hash(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return mix64(h ^ len);
}

static struct val to_val(struct interner *in, const uint8_t *p, size_t len)
{
    struct val v = {0};
    if (parse_int(p, len, &v.n)) {
        v.tag = V_INT;
        return v;
    }
    v.tag = V_STR;
    size_t mask = in->cap - 1;
    size_t i = bytes_hash(p, len) & mask;
    for (; in->slots[i] != 0; i = (i + 1) & mask) {
        const struct istr *s = &in->strs[in->slots[i] - 1];
        if (s->len == len && (len == 0 || memcmp(s->p, p, len) == 0)) {
            v.sid = in->slots[i] - 1;
            return v;
        }
    }
    lr_assert(in->n * 2 < in->cap); /* interner_init sized it for every string */
    in->strs[in->n] = (struct istr){p, len};
    v.sid = (uint32_t)in->n++;
    in->slots[i] = v.sid + 1;
    return v;
}

/* One operation of the key being checked, its strings as values. */
struct kop
{
    const struct rec *r;
    struct val a, b; /* SET: a; CAS: a expected, b new */
    struct val out;  /* BULK: the value; INT: n */
    bool unknown;    /* any output, return at +infinity */
};

/*
 * The sequential model, one step: whether o's output is what the model answers in state
 * s, and the state after o (Wing & Gong's "step" of the sequential specification).
 */
static bool step(const struct kop *o, struct val s, struct val *next)
{
    uint8_t reply = o->r->reply;
    *next = s;
    switch (o->r->op) {
        case LINCHECK_GET:
            if (s.tag == V_NIL) return o->unknown || reply == LINCHECK_REPLY_NIL;
            return o->unknown || (reply == LINCHECK_REPLY_BULK && val_eq(s, o->out));
        case LINCHECK_SET:
            *next = o->a;
            return o->unknown || reply == LINCHECK_REPLY_OK;
        case LINCHECK_DEL:
            *next = (struct val){.tag = V_NIL};
            return o->unknown || (reply == LINCHECK_REPLY_INT && o->out.n == (s.tag != V_NIL));
        case LINCHECK_INCR: {
            /* kv.lua: a missing key counts as 0; a non-integer or INT64_MAX is an error. */
            if (s.tag == V_STR || (s.tag == V_INT && s.n == INT64_MAX)) {
                return o->unknown || reply == LINCHECK_REPLY_ERR;
            }
            int64_t n = (s.tag == V_INT ? s.n : 0) + 1;
            *next = (struct val){.tag = V_INT, .n = n};
            return o->unknown || (reply == LINCHECK_REPLY_INT && o->out.n == n);
        }
        case LINCHECK_CAS: {
            /* kv.lua: data[key] ~= expected answers 0, and nil never equals a string. */
            bool swap = s.tag != V_NIL && val_eq(s, o->a);
            if (swap) *next = o->b;
            return o->unknown || (reply == LINCHECK_REPLY_INT && o->out.n == (int64_t)swap);
        }
        default:
            lr_assert(false);
            return false;
    }
}

/* The operations of one key. */
struct part
{
    const struct rec *const *recs; /* in id order */
    size_t n;
    struct kop *ops; /* ops[i] is recs[i] */
    struct interner in;
    size_t unknown; /* operations with an unknown outcome */
};

static int part_init(struct part *p, const struct rec *const *recs, size_t n)
{
    p->recs = recs;
    p->n = n;
    p->unknown = 0;
    p->ops = calloc(n, sizeof *p->ops);
    if (interner_init(&p->in, 3 * n) != 0 || p->ops == NULL) return LINCHECK_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct rec *r = recs[i];
        struct kop *o = &p->ops[i];
        o->r = r;
        o->unknown = r->status != STATUS_DONE;
        p->unknown += o->unknown;
        if (r->op == LINCHECK_SET || r->op == LINCHECK_CAS) {
            o->a = to_val(&p->in, rec_arg(r), r->arg_len);
        }
        if (r->op == LINCHECK_CAS) o->b = to_val(&p->in, rec_arg2(r), r->arg2_len);
        if (!o->unknown && r->reply == LINCHECK_REPLY_BULK) {
            o->out = to_val(&p->in, r->value, r->value_len);
        } else if (!o->unknown && r->reply == LINCHECK_REPLY_INT) {
            o->out = (struct val){.tag = V_INT, .n = r->n};
        }
    }
    return 0;
}

static void part_free(struct part *p)
{
    free(p->ops);
    interner_free(&p->in);
}

/* ------------------------------------------------------------------------------------- */
/* 3. The search (Wing & Gong 1993 with Lowe 2017's cache)                                */
/* ------------------------------------------------------------------------------------- */

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

/* The set of configurations (linearized bitset, state) reached so far. */
struct cache
{
    uint32_t *slots; /* item + 1, or 0 when free; cap a power of two */
    size_t cap;
    struct citem *items;
    uint64_t *bits; /* items_cap bitsets of words words each */
    size_t n, items_cap, words;
};

enum search_end { END_BUDGET = 10, END_CACHE_FULL = 11, END_TOO_MANY = 12 };

struct search
{
    const struct part *p;
    int32_t *sop; /* search op -> part op: every op but the unknown GETs */
    size_t s;
    struct entry *e; /* 2 s + 1 */
    uint64_t *bits;  /* linearized search ops */
    uint64_t bits_hash;
    struct frame *stack;
    size_t depth;
    struct cache cache;
    struct val state;
    size_t known_left; /* ops with a known outcome not yet linearized */
    uint64_t steps, budget;
    /* For the report: the longest linearized prefix at a backtrack, and what blocked it. */
    int32_t *longest;
    size_t longest_len;
    bool have_longest;
    int32_t blocked;
    struct val blocked_state;
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

static void search_free(struct search *se)
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

static int search_init(struct search *se, const struct part *p, uint64_t budget)
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
    if (!step(o, se->state, &next)) return 0;
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
static int search_run(struct search *se)
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

/* ------------------------------------------------------------------------------------- */
/* 4. Reports                                                                             */
/* ------------------------------------------------------------------------------------- */

struct writer
{
    char *buf;
    size_t size, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct writer *w, const char *fmt, ...)
{
    if (w->len + 1 >= w->size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf + w->len, w->size - w->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t room = w->size - w->len - 1;
    w->len += (size_t)n < room ? (size_t)n : room;
}

/* A byte string, quoted, with escapes, cut at lincheck_report_value_bytes. */
static void put_bytes(struct writer *w, const uint8_t *p, size_t len)
{
    size_t shown = len < lincheck_report_value_bytes ? len : lincheck_report_value_bytes;
    put(w, "\"");
    for (size_t i = 0; i < shown; i++) {
        if (p[i] == '"' || p[i] == '\\') {
            put(w, "\\%c", p[i]);
        } else if (p[i] >= 0x20 && p[i] < 0x7f) {
            put(w, "%c", p[i]);
        } else {
            put(w, "\\x%02x", p[i]);
        }
    }
    if (shown < len) {
        put(w, "\"...(%zu bytes)", len);
    } else {
        put(w, "\"");
    }
}

static void put_val(struct writer *w, const struct part *p, struct val v)
{
    if (v.tag == V_NIL) {
        put(w, "nil");
    } else if (v.tag == V_INT) {
        put(w, "\"%" PRId64 "\"", v.n);
    } else {
        put_bytes(w, p->in.strs[v.sid].p, p->in.strs[v.sid].len);
    }
}

static const char *op_name(uint8_t op)
{
    static const char *const names[] = {"GET", "SET", "DEL", "INCR", "CAS"};
    return op <= LINCHECK_CAS ? names[op] : "?";
}

/* "SET "v" -> OK", "CAS "a" "b" -> (integer) 1", "GET -> unknown", ... */
static void put_op(struct writer *w, const struct kop *o)
{
    const struct rec *r = o->r;
    put(w, "%s", op_name(r->op));
    if (r->op == LINCHECK_SET || r->op == LINCHECK_CAS) {
        put(w, " ");
        put_bytes(w, rec_arg(r), r->arg_len);
    }
    if (r->op == LINCHECK_CAS) {
        put(w, " ");
        put_bytes(w, rec_arg2(r), r->arg2_len);
    }
    put(w, " -> ");
    if (r->status != STATUS_DONE) {
        put(w, r->status == STATUS_UNKNOWN ? "unknown" : "unknown (in flight)");
        return;
    }
    switch (r->reply) {
        case LINCHECK_REPLY_NIL:
            put(w, "nil");
            break;
        case LINCHECK_REPLY_BULK:
            put_bytes(w, r->value, r->value_len);
            break;
        case LINCHECK_REPLY_OK:
            put(w, "OK");
            break;
        case LINCHECK_REPLY_INT:
            put(w, "(integer) %" PRId64, r->n);
            break;
        default:
            put(w, "(error)");
            break;
    }
}

/* What the model answers to o in state s. */
static void put_model_answer(struct writer *w,
                             const struct part *p,
                             const struct kop *o,
                             struct val s)
{
    switch (o->r->op) {
        case LINCHECK_GET:
            put_val(w, p, s);
            break;
        case LINCHECK_SET:
            put(w, "OK");
            break;
        case LINCHECK_DEL:
            put(w, "(integer) %d", s.tag != V_NIL);
            break;
        case LINCHECK_INCR:
            if (s.tag == V_STR || (s.tag == V_INT && s.n == INT64_MAX)) {
                put(w, "(error)");
            } else {
                put(w, "(integer) %" PRId64, (s.tag == V_INT ? s.n : 0) + 1);
            }
            break;
        default:
            put(w, "(integer) %d", s.tag != V_NIL && val_eq(s, o->a));
            break;
    }
}

static int time_order(const void *a, const void *b)
{
    const struct kop *x = *(const struct kop *const *)a, *y = *(const struct kop *const *)b;
    if (x->r->call != y->r->call) return x->r->call < y->r->call ? -1 : 1;
    return (x->r->id > y->r->id) - (x->r->id < y->r->id);
}

static void put_time(struct writer *w, uint64_t t)
{
    if (t == LINCHECK_TIME_INFINITY) {
        put(w, "%14s", "inf");
    } else {
        put(w, "%14" PRIu64, t);
    }
}

/* One line per operation of the key, by call time, marked with its place in the
 * longest prefix, or "!" for the operation that could not follow it. */
static int put_timeline(struct writer *w, const struct search *se)
{
    const struct part *p = se->p;
    const struct kop **by_time = malloc((p->n + 1) * sizeof *by_time);
    size_t *place = calloc(p->n + 1, sizeof *place);
    if (by_time == NULL || place == NULL) {
        free(by_time);
        free(place);
        return LINCHECK_ENOMEM;
    }
    for (size_t i = 0; i < se->longest_len; i++)
        place[se->sop[se->longest[i]]] = i + 1;
    for (size_t i = 0; i < p->n; i++)
        by_time[i] = &p->ops[i];
    qsort(by_time, p->n, sizeof *by_time, time_order);
    put(w, "timeline (place in the prefix, op, call .. return, client, operation -> output):\n");
    for (size_t i = 0; i < p->n; i++) {
        const struct kop *o = by_time[i];
        size_t k = (size_t)(o - p->ops);
        if (se->sop[se->blocked] == (int32_t)k) {
            put(w, "  %5s", "!");
        } else if (place[k] > 0) {
            put(w, "  %5zu", place[k]);
        } else {
            put(w, "  %5s", "");
        }
        put(w, "  #%-6" PRIu32, o->r->id);
        put_time(w, o->r->call);
        put(w, " ..");
        put_time(w, o->r->ret);
        put(w, "  client %-6" PRIu64 "  ", o->r->client);
        put_op(w, o);
        put(w, "\n");
    }
    free(by_time);
    free(place);
    return 0;
}

static void put_key(struct writer *w, const struct rec *r)
{
    put_bytes(w, rec_key(r), r->key_len);
}

static int report_violation(struct writer *w, const struct search *se)
{
    const struct part *p = se->p;
    const struct kop *b = &p->ops[se->sop[se->blocked]];
    put(w, "not linearizable: key ");
    put_key(w, p->recs[0]);
    put(w, " (%zu operations, %zu unknown)\n", p->n, p->unknown);
    put(w, "longest linearizable prefix (%zu operations):", se->longest_len);
    for (size_t i = 0; i < se->longest_len; i++) {
        put(w, " #%" PRIu32, p->ops[se->sop[se->longest[i]]].r->id);
    }
    put(w, "\nthen #%" PRIu32 " could not follow it: the value there is ", b->r->id);
    put_val(w, p, se->blocked_state);
    put(w, ";\n  #%" PRIu32 " ", b->r->id);
    put_op(w, b);
    struct val next;
    if (step(b, se->blocked_state, &next)) {
        put(w, " fits there, but no order of the operations after it does\n");
    } else {
        put(w, ", where the model answers ");
        put_model_answer(w, p, b, se->blocked_state);
        put(w, "\n");
    }
    return put_timeline(w, se);
}

/* ------------------------------------------------------------------------------------- */
/* lincheck_check                                                                         */
/* ------------------------------------------------------------------------------------- */

struct totals
{
    size_t keys, ops, unknown;
    uint64_t steps;
    const struct rec *undecided; /* the first undecided key's first op */
    int undecided_why;
    size_t undecided_n, undecided_linearized;
};

static int key_order(const void *a, const void *b)
{
    const struct rec *x = *(const struct rec *const *)a, *y = *(const struct rec *const *)b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = n ? memcmp(rec_key(x), rec_key(y), n) : 0;
    if (c != 0) return c;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool same_key(const struct rec *x, const struct rec *y)
{
    return x->key_len == y->key_len &&
           (x->key_len == 0 || memcmp(rec_key(x), rec_key(y), x->key_len) == 0);
}

static void note_undecided(struct totals *t,
                           const struct rec *first,
                           int why,
                           size_t n,
                           size_t linearized)
{
    if (t->undecided != NULL) return;
    t->undecided = first;
    t->undecided_why = why;
    t->undecided_n = n;
    t->undecided_linearized = linearized;
}

/* Checks one key: LINCHECK_OK, LINCHECK_VIOLATION (reported), LINCHECK_UNDECIDED, or
 * an error. */
static int check_key(const struct rec *const *recs,
                     size_t n,
                     uint64_t budget,
                     struct writer *w,
                     struct totals *t)
{
    t->keys++;
    t->ops += n;
    if (n > lincheck_ops_per_key_max) {
        note_undecided(t, recs[0], END_TOO_MANY, n, 0);
        return LINCHECK_UNDECIDED;
    }
    struct part p;
    struct search se;
    memset(&se, 0, sizeof se);
    int rv = part_init(&p, recs, n);
    t->unknown += p.unknown;
    if (rv == 0) rv = search_init(&se, &p, budget);
    if (rv == 0) {
        rv = search_run(&se);
        t->steps += se.steps;
        if (rv == LINCHECK_VIOLATION) {
            int wrv = report_violation(w, &se);
            if (wrv != 0) rv = wrv;
        } else if (rv == END_BUDGET || rv == END_CACHE_FULL) {
            note_undecided(t, recs[0], rv, n,
                           se.depth > se.longest_len ? se.depth : se.longest_len);
            rv = LINCHECK_UNDECIDED;
        }
    }
    search_free(&se);
    part_free(&p);
    return rv;
}

static void report_end(struct writer *w, int result, const struct totals *t)
{
    if (result == LINCHECK_OK) {
        put(w, "linearizable: %zu key%s, %zu operations (%zu unknown), %" PRIu64 " search steps\n",
            t->keys, t->keys == 1 ? "" : "s", t->ops, t->unknown, t->steps);
    } else if (result == LINCHECK_UNDECIDED) {
        put(w, "undecided: key ");
        put_key(w, t->undecided);
        if (t->undecided_why == END_TOO_MANY) {
            put(w, " has %zu operations, more than lincheck_ops_per_key_max (%d)\n", t->undecided_n,
                lincheck_ops_per_key_max);
        } else {
            put(w, " (%zu operations): %s after a prefix of %zu linearized\n", t->undecided_n,
                t->undecided_why == END_BUDGET ? "search budget exhausted"
                                               : "the cache passed lincheck_cache_bytes_max",
                t->undecided_linearized);
        }
    }
}

int lincheck_check(const struct lincheck *h, uint64_t budget, char *report, size_t size)
{
    struct writer w = {report, size, 0};
    if (size > 0) report[0] = '\0';
    if (budget == 0) return LINCHECK_EINVAL;
    const struct rec **recs = malloc((h->n + 1) * sizeof *recs);
    if (recs == NULL) return LINCHECK_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->ops[i].status != STATUS_FAILED) recs[n++] = &h->ops[i];
    qsort(recs, n, sizeof *recs, key_order);
    struct totals t = {0};
    int result = LINCHECK_OK;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && same_key(recs[i], recs[j]);)
            j++;
        int rv = check_key(recs + i, j - i, budget, &w, &t);
        if (rv < 0 || rv == LINCHECK_VIOLATION) {
            result = rv;
            break;
        }
        if (rv == LINCHECK_UNDECIDED) result = LINCHECK_UNDECIDED;
    }
    free(recs);
    report_end(&w, result, &t);
    return result;
}
