/*
 * A fixed-bucket histogram of durations or sizes, as Prometheus exposes them: each
 * observation lands in the first bucket whose upper bound it does not pass (or in the
 * overflow bucket past the last), and the sum and count of every observation are kept.
 * Buckets are counted one by one; whoever renders them adds them up ("le" is cumulative).
 *
 * Not thread-safe: one owner updates it (the store's writer thread under its mutex, or
 * the loop thread), and readers take a copy the same way.
 */
#ifndef LUARAFT_UTIL_HISTOGRAM_H
#define LUARAFT_UTIL_HISTOGRAM_H

#include <stdint.h>

enum {
    histogram_bounds_max = 20,
};

struct histogram
{
    const double *bounds; /* upper bounds, increasing; static storage (copies share it) */
    unsigned n_bounds;
    uint64_t counts[histogram_bounds_max + 1]; /* counts[n_bounds]: above every bound */
    uint64_t count;
    double sum;
};

/* Bounds for latencies in seconds (0.1 ms .. 10 s), snapshot durations in seconds
 * (10 ms .. 10 min) and sizes in bytes (1 KiB .. 4 GiB, by fours). */
extern const double histogram_latency_bounds[];
extern const unsigned histogram_latency_bounds_n;
extern const double histogram_duration_bounds[];
extern const unsigned histogram_duration_bounds_n;
extern const double histogram_size_bounds[];
extern const unsigned histogram_size_bounds_n;

void histogram_init(struct histogram *h, const double *bounds, unsigned n_bounds);
void histogram_observe(struct histogram *h, double value);
/* Adds the observations of from (with the same bounds) to into. */
void histogram_merge(struct histogram *into, const struct histogram *from);

#endif
