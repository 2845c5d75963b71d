/*
 * Operations a spec asks of a node's core: proposing entries, a leadership transfer, an
 * injected message, a campaign. Each is one step of the core (sim_step.c). Reads are in
 * sim_read.c, snapshots in sim_snapshot.c.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

int sim_propose_many(struct sim *s,
                     raft_id id,
                     const uint64_t *values,
                     uint32_t count,
                     raft_index *first)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    if (count == 0 || count > sim_propose_batch_max) {
        return SIM_EINVAL;
    }
    struct raft_entry *entries = calloc(count, sizeof *entries);
    uint8_t(*payload)[sim_payload_bytes] = calloc(count, sizeof *payload);
    lr_assert(entries != NULL && payload != NULL);
    for (uint32_t k = 0; k < count; k++) {
        memcpy(payload[k], &values[k], sizeof values[k]);
        entries[k].type = RAFT_ENTRY_NORMAL;
        entries[k].len = sim_payload_bytes;
        entries[k].buf = payload[k];
    }
    raft_index last_before = raft_last_index(n->core);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_PROPOSE;
    ev.propose.entries = entries;
    ev.propose.n = count;
    sim_step_node(s, n, &ev, &rv);
    free(entries);
    free(payload);
    sim_trace_add(s, SIM_TR_PROPOSE, id, 0, 0, last_before + 1, count, (uint64_t)(int64_t)rv,
                  values[0], 0, 0);
    if (rv != 0) {
        return rv;
    }
    lr_assert(raft_last_index(n->core) >= last_before + count);
    s->stats.proposals += count;
    if (first != NULL) {
        *first = last_before + 1;
    }
    return 0;
}

int sim_propose(struct sim *s, raft_id id, uint64_t value, raft_index *index)
{
    return sim_propose_many(s, id, &value, 1, index);
}

int sim_transfer(struct sim *s, raft_id id, raft_id target)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_TRANSFER;
    ev.transfer.target = target;
    sim_step_node(s, n, &ev, &rv);
    sim_trace_add(s, SIM_TR_TRANSFER, id, target, 0, (uint64_t)(int64_t)rv, 0, 0, 0, 0, 0);
    return rv;
}

/* The configuration that kind makes of cur for target; false if it does not apply. */
static bool changed_members(const struct raft_members *cur,
                            enum sim_change_kind kind,
                            raft_id target,
                            struct raft_members *next)
{
    *next = *cur;
    const struct raft_server *was = raft_members_find(cur, target);
    if (kind == SIM_CHANGE_ADD) {
        if (was != NULL || cur->n == RAFT_SERVERS_MAX) {
            return false;
        }
        next->servers[next->n++] = (struct raft_server){target, false};
        return true;
    }
    if (was == NULL) {
        return false;
    }
    struct raft_server *it = &next->servers[was - cur->servers];
    switch (kind) {
        case SIM_CHANGE_PROMOTE:
        case SIM_CHANGE_DEMOTE:
            if (it->voter == (kind == SIM_CHANGE_PROMOTE)) {
                return false;
            }
            it->voter = kind == SIM_CHANGE_PROMOTE;
            return true;
        case SIM_CHANGE_REMOVE:
            *it = next->servers[--next->n];
            return true;
        default:
            return false;
    }
}

int sim_change(struct sim *s,
               raft_id id,
               enum sim_change_kind kind,
               raft_id target,
               raft_index *index)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    struct raft_members next;
    if (target < 1 || target > s->n_nodes ||
        !changed_members(raft_members_of(n->core), kind, target, &next)) {
        return SIM_ENOENT;
    }
    uint8_t buf[sim_entry_bytes_max];
    size_t len = raft_members_encode(&next, buf, sizeof buf);
    lr_assert(len > 0);
    struct raft_entry e = {.type = RAFT_ENTRY_CONFIG, .len = (uint32_t)len, .buf = buf};
    raft_index last_before = raft_last_index(n->core);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_PROPOSE;
    ev.propose.entries = &e;
    ev.propose.n = 1;
    sim_step_node(s, n, &ev, &rv);
    sim_trace_add(s, SIM_TR_CHANGE, id, target, (uint8_t)kind, last_before + 1,
                  (uint64_t)(int64_t)rv, sim_conf_pack(&next), 0, 0, 0);
    if (rv != 0) {
        return rv;
    }
    s->stats.changes++;
    if (index != NULL) {
        *index = last_before + 1;
    }
    return 0;
}

int sim_inject(struct sim *s, raft_id id, const struct raft_message *m)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_RECEIVE;
    ev.receive = *m;
    struct raft_entry entries[sim_inject_entries_max];
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        if (m->append.n_entries > sim_inject_entries_max || m->append.entries == NULL) {
            return SIM_EINVAL;
        }
        memcpy(entries, m->append.entries, m->append.n_entries * sizeof entries[0]);
        ev.receive.append.entries = entries;
    }
    sim_trace_add(s, SIM_TR_INJECT, id, m->from, m->type, m->term, 0, 0, 0, 0, 0);
    sim_step_node(s, n, &ev, &rv);
    return rv;
}

/*
 * Steps RAFT_EVENT_CAMPAIGN: pre-vote first, or with force no pre-vote and voters told to
 * disregard their leader lease, as a leadership transfer does. Scenario scripts use force
 * to make a chosen node campaign while the others still hear a leader.
 */
int sim_campaign(struct sim *s, raft_id id, bool force)
{
    struct sim_node *n;
    int rv = sim_node_usable(s, id, &n);
    if (rv != 0) {
        return rv;
    }
    sim_trace_add(s, SIM_TR_CAMPAIGN, id, 0, force, 0, 0, 0, 0, 0, 0);
    struct raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EVENT_CAMPAIGN;
    ev.campaign.force = force;
    sim_step_node(s, n, &ev, &rv);
    return rv;
}
