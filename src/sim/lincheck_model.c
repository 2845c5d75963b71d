/*
 * One key's operations as model values, and the sequential model of examples/kv.lua's
 * commands on one key (lincheck.h describes it).
 */
#include <stdlib.h>
#include <string.h>

#include "sim/lincheck_internal.h"
#include "util/assert.h"

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

/*
 * The sequential model, one step: whether o's output is what the model answers in state
 * s, and the state after o (Wing & Gong's "step" of the sequential specification).
 */
bool lincheck_model_step(const struct kop *o, struct val s, struct val *next)
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

int lincheck_part_init(struct part *p, const struct rec *const *recs, size_t n)
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

void lincheck_part_free(struct part *p)
{
    free(p->ops);
    interner_free(&p->in);
}
