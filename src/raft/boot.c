/*
 * Booting the core: the default configuration, the checks on a configuration and on the
 * state a driver boots from (raft_boot), the buffers a step writes into, and freeing it
 * all again.
 */
#include <stdlib.h>
#include <string.h>

#include "raft/internal.h"
#include "raft/raft.h"

void raft_config_default(struct raft_config *c, raft_id id, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->seed = seed;
    c->election_ticks = 10;
    c->heartbeat_ticks = 1;
    c->append_entries_max = 1024;
    c->append_bytes_max = 1u << 20;
    c->inflight_msgs_max = 64;
    c->inflight_bytes_max = 32u << 20;
    c->log_entries_max = 1u << 22;
    c->reads_max = 4096;
}

static int config_check(const struct raft_config *c, const struct raft_boot *b)
{
    if (c->id == 0 || c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
        c->heartbeat_ticks >= c->election_ticks || c->append_entries_max == 0 ||
        c->append_bytes_max == 0 || c->inflight_msgs_max == 0 || c->inflight_bytes_max == 0 ||
        c->log_entries_max == 0 || c->reads_max == 0) {
        return RAFT_EINVAL;
    }
    /* Upper bounds keep the arithmetic on them (2 * election_ticks, buffer sizes) far from
     * wrapping; they are far above any useful setting. */
    if (c->election_ticks > (1u << 20) || c->inflight_msgs_max > (1u << 16) ||
        c->reads_max > (1u << 20) || c->log_entries_max > (UINT64_C(1) << 40) ||
        c->append_entries_max > (1u << 20)) {
        return RAFT_EINVAL;
    }
    if (b->n_servers > RAFT_SERVERS_MAX || (b->n_servers > 0 && b->servers == NULL) ||
        b->n_entries > c->log_entries_max) {
        return RAFT_EINVAL;
    }
    if ((b->vote != 0 && b->term == 0) || b->snapshot_term > b->term || b->term >= raft_term_max ||
        b->snapshot_index >= raft_index_max) {
        return RAFT_EINVAL;
    }
    return members_servers_valid(b->servers, b->n_servers) ? 0 : RAFT_EINVAL;
}

static int boot_log(struct raft *r, const struct raft_boot *b)
{
    raft_term prev = b->snapshot_term;
    for (raft_index i = 0; i < b->n_entries; i++) {
        const struct raft_entry *e = &b->entries[i];
        if (e->term < prev || e->term > b->term) {
            return RAFT_EINVAL; /* terms never decrease, nor pass the current term */
        }
        int rv = log_append(&r->log, e->term, e->len);
        if (rv != 0) {
            return rv;
        }
        prev = e->term;
    }
    return 0;
}

static int alloc_buffers(struct raft *r)
{
    const struct raft_config *c = &r->cfg;
    /* Per step: for each server up to a window of APPENDs plus a heartbeat or two, and an
     * answer for every pending follower read. */
    r->out_cap = RAFT_SERVERS_MAX * (c->inflight_msgs_max + 4) + c->reads_max;
    r->out = calloc(r->out_cap, sizeof *r->out);
    r->read_out_cap = c->reads_max + 1;
    r->read_out = calloc(r->read_out_cap, sizeof *r->read_out);
    r->reads = calloc(c->reads_max, sizeof *r->reads);
    if (r->out == NULL || r->read_out == NULL || r->reads == NULL) {
        return RAFT_ENOMEM;
    }
    for (unsigned i = 0; i < RAFT_SERVERS_MAX; i++) {
        r->servers[i].inflights = calloc(c->inflight_msgs_max, sizeof(struct inflight));
        if (r->servers[i].inflights == NULL) {
            return RAFT_ENOMEM;
        }
    }
    return 0;
}

int raft_init(struct raft **out, const struct raft_config *config, const struct raft_boot *boot)
{
    int rv = config_check(config, boot);
    if (rv != 0) {
        return rv;
    }
    struct raft *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RAFT_ENOMEM;
    }
    r->cfg = *config;
    lr_rand_seed(&r->rand, config->seed ^ (config->id * 0x9e3779b97f4a7c15ULL));
    rv = alloc_buffers(r);
    if (rv != 0) {
        goto err_after_alloc;
    }
    rv = log_init(&r->log, config->log_entries_max, boot->snapshot_index);
    if (rv != 0) {
        goto err_after_alloc;
    }
    r->term = boot->term;
    r->vote = boot->vote;
    r->recover_term = boot->recover_term;
    r->snapshot_index = boot->snapshot_index;
    r->snapshot_term = boot->snapshot_term;
    rv = boot_log(r, boot);
    if (rv != 0) {
        goto err_after_log;
    }
    rv = members_boot(r, boot);
    if (rv != 0) {
        goto err_after_log;
    }
    /* Everything found on disk is durable; only the snapshot is known committed. */
    r->stable = r->log.last;
    r->commit = boot->snapshot_index;
    r->role = RAFT_FOLLOWER;
    r->noop.type = RAFT_ENTRY_NOOP;
    role_reset_timeout(r);
    *out = r;
    return 0;

err_after_log:
    log_close(&r->log);
err_after_alloc:
    raft_free(r);
    return rv;
}

void raft_free(struct raft *r)
{
    if (r == NULL) {
        return;
    }
    log_close(&r->log);
    for (unsigned i = 0; i < RAFT_SERVERS_MAX; i++) {
        free(r->servers[i].inflights);
    }
    free(r->out);
    free(r->read_out);
    free(r->reads);
    free(r);
}
