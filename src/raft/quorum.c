/*
 * Majority arithmetic over the voters of the configuration. Learners never count.
 */
#include "raft/internal.h"
#include "util/assert.h"

/*
 * The k-th largest (k = floor(n/2), 0-based) of the voters' values is held by a majority:
 * for 3 voters the 2nd largest, for 4 the 3rd, for 5 the 3rd.
 */
static uint64_t majority_value(uint64_t *v, unsigned n)
{
    lr_assert(n > 0 && n <= RAFT_SERVERS_MAX);
    /* Insertion sort, descending: n is at most RAFT_SERVERS_MAX. */
    for (unsigned i = 1; i < n; i++) {
        uint64_t x = v[i];
        unsigned j = i;
        while (j > 0 && v[j - 1] < x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return v[n / 2];
}

/* The highest index durable on a majority: the leader counts its own durable prefix. */
raft_index quorum_commit_index(const struct raft *r)
{
    uint64_t v[RAFT_SERVERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (pr->voter) {
            v[n++] = pr->id == r->cfg.id ? r->stable : pr->match;
        }
    }
    return majority_value(v, n);
}

/* The newest ReadIndex round a majority has answered; the leader answers its own. */
uint64_t quorum_read_seq(const struct raft *r)
{
    uint64_t v[RAFT_SERVERS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (pr->voter) {
            v[n++] = pr->id == r->cfg.id ? r->read_seq : pr->read_ack;
        }
    }
    return majority_value(v, n);
}

/* Check-quorum (thesis 6.2): has a majority been heard from since the last check? */
bool quorum_active(const struct raft *r)
{
    unsigned active = 0;
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (pr->voter && (pr->id == r->cfg.id || pr->recent_active)) {
            active++;
        }
    }
    return active > raft_voters(r) / 2;
}
