/*
 * The linearizability checker's private parts, shared by its files (lincheck.h has the
 * contract):
 *
 *   lincheck.c         recording: operations in call order of lincheck_invoke(), each with
 *                      copies of its bytes; a small hash table of clients enforces the
 *                      recording discipline
 *   lincheck_check.c   lincheck_check(): the operations sorted by key, each key checked on
 *                      its own: linearizability is local (Herlihy & Wing 1990, Theorem 1),
 *                      so the exponential part of the search depends on the concurrency of
 *                      one key only
 *   lincheck_model.c   one key's operations as model values (every byte string interned to
 *                      a small id, and a canonical decimal integer string becomes that
 *                      integer, so a model state is a fixed-size value with O(1) equality
 *                      and hash: "6" set by SET equals 6 made by INCR, as the bytes kv.lua
 *                      stores are the same), and the sequential model's step
 *   lincheck_search.c  Wing & Gong's tree search (JPDC 1993) over a doubly linked list of
 *                      call and return entries sorted by time, with Lowe's memoization
 *                      (CCPE 2017): a configuration is the set of operations linearized so
 *                      far plus the model state, and reaching one a second time cannot
 *                      lead anywhere new, so it is cut. The set is a bitset with an
 *                      incrementally kept Zobrist hash (xor of one random word per op)
 *   lincheck_report.c  the report: for a violation, the longest linearized prefix seen at
 *                      any backtrack, the operation whose return forced that backtrack, and
 *                      the key's timeline; else a summary, or why a key is undecided
 *
 * Unknown outcomes (lincheck_unknown) return at +infinity and accept any output, so the
 * step function stays deterministic: linearizing such an operation "at the end" is the
 * same as it never happening. Two consequences used by the search: an unknown GET
 * constrains nothing and is left out of it; and once only unknown operations are left
 * unlinearized the history is linearizable (as Knossos' wgl does with :info ops).
 */
#ifndef LUARAFT_SIM_LINCHECK_INTERNAL_H
#define LUARAFT_SIM_LINCHECK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/lincheck.h"

/* --- Recording (lincheck.c) ------------------------------------------------------------ */

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

struct client; /* private to lincheck.c */

struct lincheck
{
    struct rec *ops;
    size_t n, cap;
    struct client *clients; /* open addressing, cap a power of two */
    size_t clients_n, clients_cap;
};

static inline const uint8_t *rec_key(const struct rec *r)
{
    return r->bytes;
}

static inline const uint8_t *rec_arg(const struct rec *r)
{
    return r->bytes + r->key_len;
}

static inline const uint8_t *rec_arg2(const struct rec *r)
{
    return r->bytes + r->key_len + r->arg_len;
}

/* splitmix64's finalizer: a cheap, well-mixed hash of a word. */
static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* --- One key: values and the model (lincheck_model.c) ----------------------------------- */

enum val_tag { V_NIL, V_INT, V_STR };

/* A register value: nil, a canonical integer string (as its integer), or an interned
 * string. Unused fields are 0, so equality and hash read every field. */
struct val
{
    int64_t n;    /* V_INT */
    uint32_t sid; /* V_STR */
    uint8_t tag;
};

static inline bool val_eq(struct val a, struct val b)
{
    return a.tag == b.tag && a.n == b.n && a.sid == b.sid;
}

static inline uint64_t val_hash(struct val v)
{
    return mix64(mix64((uint64_t)v.n ^ ((uint64_t)v.tag << 56)) ^ v.sid);
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

/* One operation of the key being checked, its strings as values. */
struct kop
{
    const struct rec *r;
    struct val a, b; /* SET: a; CAS: a expected, b new */
    struct val out;  /* BULK: the value; INT: n */
    bool unknown;    /* any output, return at +infinity */
};

/* The operations of one key. */
struct part
{
    const struct rec *const *recs; /* in id order */
    size_t n;
    struct kop *ops; /* ops[i] is recs[i] */
    struct interner in;
    size_t unknown; /* operations with an unknown outcome */
};

/*
 * The sequential model, one step: whether o's output is what the model answers in state
 * s, and the state after o (Wing & Gong's "step" of the sequential specification).
 */
bool lincheck_model_step(const struct kop *o, struct val s, struct val *next);
int lincheck_part_init(struct part *p, const struct rec *const *recs, size_t n);
void lincheck_part_free(struct part *p);

/* --- The search (lincheck_search.c) ---------------------------------------------------- */

/* Private to lincheck_search.c. */
struct entry;
struct frame;
struct citem;

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

int lincheck_search_init(struct search *se, const struct part *p, uint64_t budget);
/* Returns LINCHECK_OK, LINCHECK_VIOLATION, END_BUDGET, END_CACHE_FULL or ENOMEM. */
int lincheck_search_run(struct search *se);
void lincheck_search_free(struct search *se);

/* --- Reports (lincheck_report.c) -------------------------------------------------------- */

/* A report being written: NUL-terminated, never more than size bytes. */
struct writer
{
    char *buf;
    size_t size, len;
};

/* What lincheck_check() counted over the keys, for the report's last line. */
struct totals
{
    size_t keys, ops, unknown;
    uint64_t steps;
    const struct rec *undecided; /* the first undecided key's first op */
    int undecided_why;
    size_t undecided_n, undecided_linearized;
};

/* The report of a violation found by se: the key, the longest prefix, the operation that
 * could not follow it, the timeline. 0 or LINCHECK_ENOMEM. */
int lincheck_report_violation(struct writer *w, const struct search *se);
/* The last line: a summary for LINCHECK_OK, the undecided key for LINCHECK_UNDECIDED. */
void lincheck_report_end(struct writer *w, int result, const struct totals *t);

#endif
