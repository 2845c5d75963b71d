/*
 * Boot: the core and the log cache from the durable state the world loaded (the store's
 * hard state and configuration, the newest snapshot file, the log after it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/internal.h"
#include "util/assert.h"

void node_boot_append(struct node *n, raft_index index, const struct raft_entry *e)
{
    cache_append(&n->cache, index, e);
    members_appended(n, e);
}

/* The log joins the snapshot when it holds the snapshot's last entry, or starts right
 * after it (a local snapshot compacted without a tail). */
static bool log_holds_snapshot(struct node *n, raft_index snap_index, raft_term snap_term)
{
    struct log_cache *c = &n->cache;
    if (snap_index == 0 || (c->n > 0 && c->first == snap_index + 1)) {
        return true;
    }
    return c->n > 0 && c->first <= snap_index && cache_last(c) >= snap_index &&
           cache_at(c, snap_index)->term == snap_term;
}

/* A snapshot received from a leader is renamed into place before the store request that
 * drops the old log completes; a crash between the two leaves a log that does not hold
 * the snapshot's last entry (and may not even join it). Finish the install as the
 * interrupted request would have: drop that log. */
static int finish_interrupted_install(struct node *n,
                                      const struct node_boot_state *b,
                                      char *errmsg,
                                      size_t errmsg_size)
{
    if (n->cache.n == 0) {
        node_log(n,
                 "starting from the snapshot at index %" PRIu64 " (term %" PRIu64
                 "): no log goes with it (a restored backup, or a crash during an install)",
                 b->snapshot_index, b->snapshot_term);
    } else {
        node_log(n,
                 "finishing the install of snapshot %" PRIu64 " (term %" PRIu64
                 ") interrupted by a crash: dropping the old log",
                 b->snapshot_index, b->snapshot_term);
    }
    struct store_write w;
    memset(&w, 0, sizeof w);
    w.snapshot = true;
    w.snapshot_index = b->snapshot_index;
    w.snapshot_term = b->snapshot_term;
    int rv = durability_submit_plain(n, &w);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "cannot record the snapshot: %s", store_strerror(rv));
        return -1;
    }
    cache_reset(&n->cache, b->snapshot_index + 1);
    return 0;
}

static int check_log(struct node *n,
                     const struct node_boot_state *b,
                     char *errmsg,
                     size_t errmsg_size)
{
    raft_index si = b->snapshot_index;
    if (b->stored_snapshot_index > si) {
        snprintf(errmsg, errmsg_size,
                 "the store records a snapshot at index %" PRIu64
                 " but the newest snapshot file in %s is at %" PRIu64
                 ": the snapshot file at %" PRIu64
                 " is missing (a damaged one is moved aside "
                 "and named above)",
                 b->stored_snapshot_index, n->c->data_dir, si, b->stored_snapshot_index);
        return -1;
    }
    if (n->cache.n > 0 && n->cache.first > si + 1) {
        snprintf(errmsg, errmsg_size,
                 "the log in %s starts at %" PRIu64 ", after the snapshot at %" PRIu64
                 ": the snapshot file the log continues from (index %" PRIu64 ") is missing",
                 n->c->data_dir, n->cache.first, si, n->cache.first - 1);
        return -1;
    }
    if (si > b->stored_snapshot_index && !log_holds_snapshot(n, si, b->snapshot_term) &&
        finish_interrupted_install(n, b, errmsg, errmsg_size) != 0) {
        return -1;
    }
    if (n->cache.n == 0 || cache_last(&n->cache) < si + 1) {
        cache_reset(&n->cache, si + 1);
    }
    return 0;
}

/* A received snapshot is renamed into place before the store request that records it
 * (and the leader's term that came with it) completes. After a crash between the two, the
 * newest snapshot's term is above the stored term. Nothing was said in that term, since
 * votes and acknowledgments leave only after their state is durable (raft.h,
 * after_persist), so starting in it with no vote is safe (found by the whole-node
 * simulator; raft_init refuses a snapshot term above the current term). */
static void adopt_snapshot_term(struct node *n, struct node_boot_state *b)
{
    if (b->snapshot_term <= b->term) {
        return;
    }
    node_log(n,
             "the snapshot at index %" PRIu64 " is of term %" PRIu64
             ", above the stored term %" PRIu64
             " (a crash interrupted its install): starting in term %" PRIu64 " without a vote",
             b->snapshot_index, b->snapshot_term, b->term, b->snapshot_term);
    b->term = b->snapshot_term;
    b->vote = 0;
}

int node_boot(struct node *n, const struct node_boot_state *state, char *errmsg, size_t errmsg_size)
{
    const struct node_config *c = n->c;
    struct node_boot_state boot_state = *state;
    const struct node_boot_state *b = &boot_state;
    adopt_snapshot_term(n, &boot_state);
    raft_index si = b->snapshot_index;
    if (check_log(n, b, errmsg, errmsg_size) != 0) {
        return -1;
    }
    n->snap.index = si;
    n->snap.term = b->snapshot_term;
    snprintf(n->snap.path, sizeof n->snap.path, "%s",
             b->snapshot_path != NULL ? b->snapshot_path : "");
    raft_index n_boot =
        n->cache.n > 0 && cache_last(&n->cache) > si ? cache_last(&n->cache) - si : 0;
    struct raft_entry *entries = calloc(n_boot + 1, sizeof *entries);
    lr_assert(entries != NULL);
    for (raft_index i = 0; i < n_boot; i++) {
        struct cache_entry *ce = cache_at(&n->cache, si + 1 + i);
        entries[i] = (struct raft_entry){ce->term, ce->type, ce->len, ce->buf};
    }
    struct raft_config rc;
    raft_config_default(&rc, c->id, b->random_seed);
    rc.election_ticks = c->election_ticks;
    rc.heartbeat_ticks = c->heartbeat_ticks;
    if (rc.log_entries_max < 4 * (c->snapshot_entries + c->snapshot_trailing)) {
        rc.log_entries_max = 4 * (c->snapshot_entries + c->snapshot_trailing);
    }
    struct raft_boot boot = {
        .term = b->term,
        .vote = b->vote,
        .snapshot_index = si,
        .snapshot_term = b->snapshot_term,
        .servers = b->servers,
        .n_servers = b->n_servers,
        .entries = entries,
        .n_entries = n_boot,
        .recover_term = b->recover_term,
    };
    int rv = raft_init(&n->raft, &rc, &boot);
    free(entries);
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "cannot start the protocol core: %s", raft_strerror(rv));
        return -1;
    }
    n->term = b->term;
    n->recovering = b->recover_term != 0;
    n->role = raft_role_of(n->raft);
    n->applied_sent = si;
    n->applied = si;
    n->dur.durable = n->cache.n > 0 ? cache_last(&n->cache) : si; /* all of it was loaded */
    n->snap.log_bytes_at = cache_bytes_upto(&n->cache, si);
    members_start(n, b->servers, b->n_servers);
    node_log(n,
             "loaded state: vote %" PRIu64 ", snapshot at index %" PRIu64 " (term %" PRIu64
             "), log %" PRIu64 "..%" PRIu64 ", %d members",
             b->vote, si, b->snapshot_term, n->cache.n > 0 ? n->cache.first : 0,
             n->cache.n > 0 ? cache_last(&n->cache) : 0, n->n_members);
    return 0;
}
