/*
 * The text lincheck_check() writes: for a violation the key, the longest linearized
 * prefix, the operation that could not follow it and the key's timeline; for a pass a
 * summary; for an undecided key why.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/lincheck_internal.h"

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

int lincheck_report_violation(struct writer *w, const struct search *se)
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
    if (lincheck_model_step(b, se->blocked_state, &next)) {
        put(w, " fits there, but no order of the operations after it does\n");
    } else {
        put(w, ", where the model answers ");
        put_model_answer(w, p, b, se->blocked_state);
        put(w, "\n");
    }
    return put_timeline(w, se);
}

void lincheck_report_end(struct writer *w, int result, const struct totals *t)
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
