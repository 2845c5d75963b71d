/*
 * A small seeded pseudo-random generator (splitmix64) that gives the same sequence on
 * every platform. The protocol core and the simulator take all their randomness from it,
 * so a seed replays a run exactly.
 */
#ifndef LUARAFT_UTIL_RAND_H
#define LUARAFT_UTIL_RAND_H

#include <stdint.h>

struct lr_rand
{
    uint64_t state;
};

static inline void lr_rand_seed(struct lr_rand *r, uint64_t seed)
{
    r->state = seed;
}

static inline uint64_t lr_rand_next(struct lr_rand *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A number in [0, n). n must be positive. The modulo bias is irrelevant at our sizes. */
static inline uint64_t lr_rand_below(struct lr_rand *r, uint64_t n)
{
    return lr_rand_next(r) % n;
}

/* A number in [lo, hi]. */
static inline uint64_t lr_rand_range(struct lr_rand *r, uint64_t lo, uint64_t hi)
{
    return lo + lr_rand_below(r, hi - lo + 1);
}

/* True with probability per_million / 1,000,000. */
static inline int lr_rand_chance(struct lr_rand *r, uint32_t per_million)
{
    return lr_rand_below(r, 1000000) < per_million;
}

#endif
