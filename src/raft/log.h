/*
 * The core's view of the log: for each entry since the last compaction, its term and
 * payload size, in a ring that doubles up to a fixed maximum. Payload bytes live with the
 * driver.
 *
 * Entries are kept for indexes first..last (empty when last == first - 1). Terms never
 * decrease along a Raft log (a leader appends entries of its own term after entries of
 * older terms), so a term can be found by binary search.
 */
#ifndef LUARAFT_RAFT_LOG_H
#define LUARAFT_RAFT_LOG_H

#include "raft/raft.h"

struct log_slot
{
    raft_term term;
    uint32_t len;
};

struct raft_log
{
    struct log_slot *slots;
    uint64_t cap;     /* a power of two */
    uint64_t cap_max; /* the ring never grows beyond this */
    uint64_t entries_max;
    uint64_t noop_reserve; /* entries proposals leave free; see log_has_room() */
    uint64_t head;         /* ring position of first */
    raft_index first;
    raft_index last;
};

/* Errors: RAFT_ENOMEM. */
int log_init(struct raft_log *l, uint64_t entries_max, raft_index last);
void log_close(struct raft_log *l);

static inline uint64_t log_count(const struct raft_log *l)
{
    return l->last + 1 - l->first;
}

/* Term of the entry at index i, or 0 if it is not kept. */
raft_term log_term(const struct raft_log *l, raft_index i);
uint32_t log_len(const struct raft_log *l, raft_index i);

/* How many entries from index from on (at most n_max, stopping before the payload total
 * passes bytes_max, but at least one if there is one) fit in one message; *bytes gets
 * their payload total. The replication hot path: walks the ring directly. */
uint32_t log_batch(const struct raft_log *l,
                   raft_index from,
                   uint32_t n_max,
                   uint64_t bytes_max,
                   uint64_t *bytes);

/*
 * Room for n more entries proposed by a leader. Proposals stop short of entries_max by a
 * reserve kept for no-ops: a new leader must always be able to append its no-op, or with
 * a full log it could never commit again (nothing older than its term commits before the
 * no-op does; Figure 8), and so never compact. The reserve covers that many leaders in a
 * row that fail before committing their no-op.
 */
bool log_has_room(const struct raft_log *l, uint64_t n);

/* Room for n more entries of any kind (a follower's, a no-op): the hard limit. */
bool log_fits(const struct raft_log *l, uint64_t n);

/* Appends one entry at last + 1. Precondition: log_fits(l, 1); term positive and
 * not below the last entry's. Errors: RAFT_ENOMEM when the ring cannot grow. */
int log_append(struct raft_log *l, raft_term term, uint32_t len);

/* Drops entries at index >= i. Precondition: first <= i <= last + 1. */
void log_truncate(struct raft_log *l, raft_index i);

/* Drops entries at index <= i (no-op for i < first). Precondition: i <= last. */
void log_compact(struct raft_log *l, raft_index i);

/* Empties the log so that the next entry is at i + 1. */
void log_reset(struct raft_log *l, raft_index i);

/* The largest index j in [first, hi] whose term is <= t, or first - 1 if none. */
raft_index log_last_with_term_at_most(const struct raft_log *l, raft_index hi, raft_term t);

/* First index of the run of entries with the same term as the entry at i, not below lo. */
raft_index log_first_of_term(const struct raft_log *l, raft_index i, raft_index lo);

#endif
