/*
 * Membership (thesis chapter 4, single-server changes): the configuration in force and the
 * one before it, the encoding of CONFIG entries, the checks on a proposed change, and the
 * leader's per-server records rebuilt whenever the configuration changes.
 *
 * A configuration takes effect when its entry enters the log (thesis 4.1), so a truncation
 * can take it back. Only the last CONFIG entry of a log can be uncommitted: a leader
 * proposes a change only once the previous one is committed, and a follower's log is a
 * prefix of some leader's log followed by that leader's entries. So the core keeps two
 * configurations, the one in force and the one before it, and a truncation of the first's
 * entry brings back the second.
 */
#include <string.h>

#include "raft/internal.h"

enum {
    members_version = 1,
    members_flag_voter = 1,
    members_server_bytes = 9, /* id, flags */
};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

bool members_servers_valid(const struct raft_server *servers, unsigned n)
{
    if (n > RAFT_SERVERS_MAX) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (servers[i].id == 0) {
            return false;
        }
        for (unsigned j = 0; j < i; j++) {
            if (servers[j].id == servers[i].id) {
                return false;
            }
        }
    }
    return true;
}

static bool members_valid(const struct raft_members *m)
{
    return members_servers_valid(m->servers, m->n);
}

size_t raft_members_encode(const struct raft_members *m, void *buf, size_t size)
{
    size_t need = 2 + members_server_bytes * (size_t)m->n;
    if (!members_valid(m) || size < need) {
        return 0;
    }
    uint8_t *p = buf;
    p[0] = members_version;
    p[1] = (uint8_t)m->n;
    for (unsigned i = 0; i < m->n; i++) {
        uint8_t *s = p + 2 + members_server_bytes * i;
        put_u64(s, m->servers[i].id);
        s[8] = m->servers[i].voter ? members_flag_voter : 0;
    }
    return need;
}

int raft_members_decode(const void *buf, size_t len, struct raft_members *m, size_t *used)
{
    const uint8_t *p = buf;
    if (p == NULL || len < 2 || p[0] != members_version || p[1] > RAFT_SERVERS_MAX ||
        len < 2 + members_server_bytes * (size_t)p[1]) {
        return RAFT_EINVAL;
    }
    struct raft_members out;
    memset(&out, 0, sizeof out);
    out.n = p[1];
    for (unsigned i = 0; i < out.n; i++) {
        const uint8_t *s = p + 2 + members_server_bytes * i;
        if ((s[8] & ~members_flag_voter) != 0) {
            return RAFT_EINVAL;
        }
        out.servers[i].id = get_u64(s);
        out.servers[i].voter = s[8] == members_flag_voter;
    }
    if (!members_valid(&out)) {
        return RAFT_EINVAL;
    }
    *m = out;
    if (used != NULL) {
        *used = 2 + members_server_bytes * (size_t)out.n;
    }
    return 0;
}

const struct raft_server *raft_members_find(const struct raft_members *m, raft_id id)
{
    for (unsigned i = 0; i < m->n; i++) {
        if (m->servers[i].id == id) {
            return &m->servers[i];
        }
    }
    return NULL;
}

bool members_entry_decode(const struct raft_entry *e, struct raft_members *m)
{
    return e->buf != NULL && raft_members_decode(e->buf, e->len, m, NULL) == 0;
}

/* --------------------------------------------------------------------------------- */
/* The per-server records follow the configuration in force. */

/*
 * Rebuilds r->servers for r->conf: a server kept keeps its record (a leader's view of its
 * progress), a new one gets a fresh record, and every slot keeps its own in-flight ring,
 * so the RAFT_SERVERS_MAX rings allocated at boot are only ever permuted.
 */
static void rebuild_servers(struct raft *r)
{
    struct progress old[RAFT_SERVERS_MAX];
    bool used[RAFT_SERVERS_MAX] = {false};
    bool fresh[RAFT_SERVERS_MAX] = {false};
    memcpy(old, r->servers, sizeof old);
    const struct raft_members *m = &r->conf;
    for (unsigned i = 0; i < m->n; i++) {
        fresh[i] = true;
        for (unsigned j = 0; j < r->n_servers; j++) {
            if (!used[j] && old[j].id == m->servers[i].id) {
                r->servers[i] = old[j];
                used[j] = true;
                fresh[i] = false;
                break;
            }
        }
    }
    unsigned next_free = 0;
    for (unsigned i = 0; i < RAFT_SERVERS_MAX; i++) {
        if (i < m->n && !fresh[i]) {
            continue;
        }
        while (used[next_free]) {
            next_free++;
        }
        r->servers[i] = old[next_free];
        used[next_free] = true;
        if (i < m->n) {
            r->servers[i].id = m->servers[i].id;
            role_reset_progress(r, &r->servers[i]);
        } else {
            r->servers[i].id = 0;
        }
    }
    for (unsigned i = 0; i < m->n; i++) {
        r->servers[i].voter = m->servers[i].voter;
    }
    r->n_servers = m->n;
    memset(r->granted, 0, sizeof r->granted);
    memset(r->answered, 0, sizeof r->answered);
    if (r->transfer_target != 0 && !raft_self_is_voter(r)) {
        r->transfer_target = 0;
    }
    if (r->transfer_target != 0 && !raft_is_voter(r, r->transfer_target)) {
        r->transfer_target = 0;
    }
}

void members_reset(struct raft *r, const struct raft_members *m)
{
    r->conf = *m;
    r->conf_index = 0;
    r->conf_prev = *m;
    r->conf_prev_index = 0;
    rebuild_servers(r);
}

void members_set(struct raft *r, const struct raft_members *m, raft_index index)
{
    /* index > conf_index, unless a leader that is not a correct one cut two changes (see
     * members_truncated): go on with what it says rather than crash. */
    r->conf_prev = r->conf;
    r->conf_prev_index = r->conf_index;
    r->conf = *m;
    r->conf_index = index;
    rebuild_servers(r);
}

void members_truncated(struct raft *r, raft_index from)
{
    if (r->conf_index < from) {
        return;
    }
    /* Only the last CONFIG entry can be uncommitted, hence cut (see the top); a leader
     * that cuts the one before too is not a correct one, and gets the best we know. */
    r->conf = r->conf_prev;
    r->conf_index = r->conf_prev_index;
    rebuild_servers(r);
}

int members_boot(struct raft *r, const struct raft_boot *b)
{
    struct raft_members m;
    memset(&m, 0, sizeof m);
    m.n = b->n_servers;
    memcpy(m.servers, b->servers, b->n_servers * sizeof *b->servers);
    members_reset(r, &m);
    for (raft_index i = 0; i < b->n_entries; i++) {
        const struct raft_entry *e = &b->entries[i];
        if (e->type != RAFT_ENTRY_CONFIG) {
            continue;
        }
        if (!members_entry_decode(e, &m)) {
            return RAFT_EINVAL;
        }
        members_set(r, &m, b->snapshot_index + 1 + i);
    }
    return 0;
}

/* --------------------------------------------------------------------------------- */
/* Changes proposed to a leader. */

/* Whether next is one single-server step from cur: one server added as a learner, one
 * removed, or one server's vote given or taken; and a voter remains. */
static bool one_step(const struct raft_members *cur, const struct raft_members *next)
{
    unsigned changed = 0, voters = 0;
    for (unsigned i = 0; i < next->n; i++) {
        const struct raft_server *s = &next->servers[i];
        const struct raft_server *was = raft_members_find(cur, s->id);
        voters += s->voter;
        if (was == NULL) {
            changed++;
            if (s->voter) {
                return false; /* a new server starts as a learner */
            }
        } else if (was->voter != s->voter) {
            changed++;
        }
    }
    for (unsigned i = 0; i < cur->n; i++) {
        changed += raft_members_find(next, cur->servers[i].id) == NULL;
    }
    return changed == 1 && voters > 0;
}

int members_propose(struct raft *r, const struct raft_entry *e, raft_index index)
{
    struct raft_members next;
    if (!members_entry_decode(e, &next) || !one_step(&r->conf, &next)) {
        return RAFT_EINVAL;
    }
    if (r->conf_index > r->commit || !r->committed_in_term) {
        return RAFT_ECHANGE;
    }
    members_set(r, &next, index);
    return 0;
}

/*
 * Whether this server starts elections: a voter does; and so does a server that its latest
 * configuration removed or demoted while that configuration is not known committed
 * (thesis 4.2.2: "it might still be needed until the Cnew entry is committed"). Its own
 * vote does not count then. Without this, a leader that removed itself and lost its
 * followers' attention before the change committed could leave the only up-to-date log
 * with a server that never campaigns, and the old configuration no majority.
 */
bool members_may_campaign(const struct raft *r)
{
    if (r->recover_term != 0) {
        return false; /* it lost a log it may have acknowledged: raft.h, raft_boot */
    }
    if (raft_self_is_voter(r)) {
        return true;
    }
    const struct raft_server *was = raft_members_find(&r->conf_prev, r->cfg.id);
    return r->conf_index > r->commit && was != NULL && was->voter;
}

/*
 * After a step: a leader that is not a voter of a committed configuration steps down
 * (thesis 4.2.2), first handing leadership to the most caught-up voter that has its whole
 * log, so that the cluster need not wait an election timeout.
 */
void members_after_step(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->conf_index > r->commit || raft_self_is_voter(r)) {
        return;
    }
    const struct progress *best = NULL;
    for (unsigned i = 0; i < r->n_servers; i++) {
        const struct progress *pr = &r->servers[i];
        if (pr->voter && pr->match == r->log.last && (best == NULL || pr->match > best->match)) {
            best = pr;
        }
    }
    if (best != NULL) {
        raft_msg_new(r, RAFT_MSG_TIMEOUT_NOW, best->id);
    }
    role_become_follower(r, r->term, 0);
}
