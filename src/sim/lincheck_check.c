/*
 * lincheck_check(): the history split by key, each key's operations checked on their own
 * (linearizability is local), the first violation or undecided key reported.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/lincheck_internal.h"

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
    int rv = lincheck_part_init(&p, recs, n);
    t->unknown += p.unknown;
    if (rv == 0) rv = lincheck_search_init(&se, &p, budget);
    if (rv == 0) {
        rv = lincheck_search_run(&se);
        t->steps += se.steps;
        if (rv == LINCHECK_VIOLATION) {
            int wrv = lincheck_report_violation(w, &se);
            if (wrv != 0) rv = wrv;
        } else if (rv == END_BUDGET || rv == END_CACHE_FULL) {
            note_undecided(t, recs[0], rv, n,
                           se.depth > se.longest_len ? se.depth : se.longest_len);
            rv = LINCHECK_UNDECIDED;
        }
    }
    lincheck_search_free(&se);
    lincheck_part_free(&p);
    return rv;
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
    lincheck_report_end(&w, result, &t);
    return result;
}
