/* Fixed-bucket histograms (histogram.h). */
#include "util/histogram.h"

#include <string.h>

#include "util/assert.h"

const double histogram_latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                           1,      2.5,     5,      10};
const unsigned histogram_latency_bounds_n =
    sizeof histogram_latency_bounds / sizeof histogram_latency_bounds[0];

const double histogram_duration_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                            2.5,  5,     10,   30,  60,   120, 600};
const unsigned histogram_duration_bounds_n =
    sizeof histogram_duration_bounds / sizeof histogram_duration_bounds[0];

const double histogram_size_bounds[] = {1024.0,     4096.0,      16384.0,      65536.0,
                                        262144.0,   1048576.0,   4194304.0,    16777216.0,
                                        67108864.0, 268435456.0, 1073741824.0, 4294967296.0};
const unsigned histogram_size_bounds_n =
    sizeof histogram_size_bounds / sizeof histogram_size_bounds[0];

void histogram_init(struct histogram *h, const double *bounds, unsigned n_bounds)
{
    lr_assert(n_bounds > 0 && n_bounds <= histogram_bounds_max);
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n_bounds;
}

void histogram_observe(struct histogram *h, double value)
{
    unsigned i = 0;
    while (i < h->n_bounds && value > h->bounds[i]) {
        i++;
    }
    h->counts[i]++;
    h->count++;
    h->sum += value;
}

void histogram_merge(struct histogram *into, const struct histogram *from)
{
    lr_assert(into->bounds == from->bounds && into->n_bounds == from->n_bounds);
    for (unsigned i = 0; i <= from->n_bounds; i++) {
        into->counts[i] += from->counts[i];
    }
    into->count += from->count;
    into->sum += from->sum;
}
