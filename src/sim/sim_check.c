/*
 * The checker: Raft's safety properties (paper Figure 3), tested while the simulation
 * runs, plus the driver contract and the thesis's liveness-related rules.
 *
 *   election safety      at most one leader per term
 *   leader append-only   a leader never truncates its log (sim_disk.c)
 *   log matching         entries with the same index and term have the same history: every
 *                        entry carries a chain hash over its predecessors, and a global map
 *                        (index, term) -> chain must never see two chains
 *   durable commit       when a leader's commit index reaches c, a majority of voters hold
 *                        the entry at c (or a snapshot past it) on their durable disk
 *   leader completeness  a new leader holds the highest entry committed anywhere
 *   state machine safety every node that applies (or restores a snapshot at) index i has
 *                        the same state hash there; nothing is applied past commit
 *   durable acks         an APPEND_RESP success and a vote grant leave only once what they
 *                        vouch for is durable
 *   durable prefix       what the core counts as durable (raft_stable_index()) is on the
 *                        durable disk, with the entries the log holds now
 *   check-quorum         a leader unconfirmed by a majority for two election timeouts has
 *                        stepped down
 *   ReadIndex            a read index is at least the highest index committed anywhere when
 *                        the read was asked (a deposed leader cannot hand out a stale one)
 *
 * The first violation stops the simulation; its message names the rule, the node, the
 * index and the term, and carries the trace tail.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/assert.h"

int sim_check_init(struct sim_check *c)
{
    memset(c, 0, sizeof *c);
    c->terms_cap = 64;
    c->terms = calloc(c->terms_cap, sizeof *c->terms);
    c->chains_cap = 1024;
    c->chains = calloc(c->chains_cap, sizeof *c->chains);
    c->at_cap = 1024;
    c->committed = calloc(c->at_cap, sizeof *c->committed);
    c->fsm_at = calloc(c->at_cap, sizeof *c->fsm_at);
    if (c->terms == NULL || c->chains == NULL || c->committed == NULL || c->fsm_at == NULL) {
        sim_check_free(c);
        return RAFT_ENOMEM;
    }
    return 0;
}

void sim_check_free(struct sim_check *c)
{
    free(c->terms);
    free(c->chains);
    free(c->committed);
    free(c->fsm_at);
    memset(c, 0, sizeof *c);
}

/* Grows a zero-filled array of uint64 so that index `need` fits. */
static uint64_t *grow_zeroed(uint64_t *p, uint64_t old_cap, uint64_t new_cap)
{
    uint64_t *q = realloc(p, new_cap * sizeof *q);
    lr_assert(q != NULL);
    memset(q + old_cap, 0, (new_cap - old_cap) * sizeof *q);
    return q;
}

static void at_reserve(struct sim_check *c, raft_index index)
{
    if (index < c->at_cap) {
        return;
    }
    uint64_t cap = c->at_cap;
    while (cap <= index) {
        cap *= 2;
    }
    c->committed = grow_zeroed(c->committed, c->at_cap, cap);
    c->fsm_at = grow_zeroed(c->fsm_at, c->at_cap, cap);
    c->at_cap = cap;
}

void sim_fail(struct sim *s,
              const char *rule,
              raft_id node,
              raft_index index,
              raft_term term,
              const char *fmt,
              ...)
{
    if (s->failed) {
        return; /* the first violation is the one that matters */
    }
    s->failed = true;
    size_t size = sizeof s->failure;
    int n =
        snprintf(s->failure, size,
                 "violation: %s (node n%" PRIu64 ", index %" PRIu64 ", term %" PRIu64 "): ", rule,
                 node, index, term);
    size_t pos = n > 0 ? (size_t)n : 0;
    if (pos < size) {
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(s->failure + pos, size - pos, fmt, ap);
        va_end(ap);
        pos += n > 0 ? (size_t)n : 0;
    }
    if (pos < size) {
        n = snprintf(s->failure + pos, size - pos,
                     "\nseed %" PRIu64 ", step %" PRIu64 ", t=%" PRIu64 ".%03" PRIu64
                     " ms\ntrace (last %d events):\n",
                     s->opt.seed, s->steps, s->now_us / 1000, s->now_us % 1000,
                     sim_failure_trace_lines);
        pos += n > 0 ? (size_t)n : 0;
    }
    if (pos < size) {
        sim_trace(s, sim_failure_trace_lines, s->failure + pos, size - pos);
    }
}

/* --- Log matching ---------------------------------------------------------------- */

static uint64_t slot_hash(raft_index index, raft_term term)
{
    uint64_t h = index * 0x9e3779b97f4a7c15ULL ^ term * 0xc2b2ae3d27d4eb4fULL;
    return h ^ (h >> 29);
}

static struct sim_chain_slot *chain_slot(struct sim_check *c, raft_index index, raft_term term)
{
    uint64_t mask = c->chains_cap - 1;
    uint64_t i = slot_hash(index, term) & mask;
    while (c->chains[i].index != 0 && (c->chains[i].index != index || c->chains[i].term != term)) {
        i = (i + 1) & mask;
    }
    return &c->chains[i];
}

static void chains_grow(struct sim_check *c)
{
    struct sim_chain_slot *old = c->chains;
    uint64_t old_cap = c->chains_cap;
    c->chains_cap *= 2;
    c->chains = calloc(c->chains_cap, sizeof *c->chains);
    lr_assert(c->chains != NULL);
    for (uint64_t i = 0; i < old_cap; i++) {
        if (old[i].index != 0) {
            *chain_slot(c, old[i].index, old[i].term) = old[i];
        }
    }
    free(old);
}

/* Log matching (paper 5.3): an entry (index, term) anywhere has one and the same history. */
void sim_check_log_entry(struct sim *s,
                         raft_id node,
                         raft_index index,
                         raft_term term,
                         uint64_t chain)
{
    struct sim_check *c = &s->check;
    if (index == 0) {
        return;
    }
    struct sim_chain_slot *slot = chain_slot(c, index, term);
    if (slot->index == 0) {
        slot->index = index;
        slot->term = term;
        slot->chain = chain;
        if (++c->chains_count * 2 > c->chains_cap) {
            chains_grow(c);
        }
        return;
    }
    if (slot->chain != chain) {
        sim_fail(s, "log matching", node, index, term,
                 "entry %" PRIu64 "/%" PRIu64 " has a history (chain %016" PRIx64
                 ") different from another node's (%016" PRIx64 ")",
                 index, term, chain, slot->chain);
    }
}

/* --- State machine safety ------------------------------------------------------ */

/* Node n applied index (or restored a snapshot there) and reached state hash fsm. */
void sim_check_apply(struct sim *s,
                     struct sim_node *n,
                     raft_index index,
                     uint64_t chain,
                     uint64_t fsm)
{
    struct sim_check *c = &s->check;
    at_reserve(c, index);
    if (c->committed[index] == 0) {
        c->committed[index] = chain;
    } else if (c->committed[index] != chain) {
        sim_fail(s, "state machine safety: applied entry is not the committed one", n->id, index, 0,
                 "chain %016" PRIx64 ", committed %016" PRIx64, chain, c->committed[index]);
        return;
    }
    if (c->fsm_at[index] == 0) {
        c->fsm_at[index] = fsm;
    } else if (c->fsm_at[index] != fsm) {
        sim_fail(s, "state machine safety", n->id, index, 0,
                 "state hash %016" PRIx64 " differs from %016" PRIx64 " seen elsewhere", fsm,
                 c->fsm_at[index]);
    }
}

/* --- Commit, leaders -------------------------------------------------------------- */

/* The voters of the configuration in force on leader n: the ones its majorities count. */
static unsigned voters_of(const struct sim_node *n)
{
    const struct raft_members *m = raft_members_of(n->core);
    unsigned k = 0;
    for (unsigned i = 0; i < m->n; i++) {
        k += m->servers[i].voter;
    }
    return k;
}

/* Does node v hold the entry at index with this chain durably (or a snapshot past it)? */
static bool durable_has(const struct sim_node *v, raft_index index, uint64_t chain)
{
    if (v->d_snap.index >= index) {
        return true;
    }
    const struct sim_entry *e = sim_log_at(&v->d_log, index);
    return e != NULL && e->chain == chain;
}

/*
 * A leader's commit index reached c: the entry at c must be durable on a majority of
 * voters ("A log entry is committed once the leader that created the entry has replicated
 * it on a majority of the servers", 5.3; durable, or a crash could undo it).
 */
static void check_leader_commit(struct sim *s, struct sim_node *n, raft_index c)
{
    raft_term term;
    uint64_t chain;
    if (!sim_log_chain_at(&n->log, c, &term, &chain)) {
        sim_fail(s, "leader commits an entry the driver does not hold", n->id, c,
                 raft_current_term(n->core), "log holds %" PRIu64 "..%" PRIu64, n->log.offset + 1,
                 sim_log_last_index(&n->log));
        return;
    }
    unsigned count = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *v = &s->nodes[id];
        if (raft_is_voter(n->core, id) && durable_has(v, c, chain)) {
            count++;
        }
    }
    if (count <= voters_of(n) / 2) {
        sim_fail(s, "committed entry not durable on a majority", n->id, c, term,
                 "%u of %u voters of its configuration hold it durably", count, voters_of(n));
    }
}

static void record_commit(struct sim *s, struct sim_node *n, raft_index commit_before, raft_index c)
{
    struct sim_check *ck = &s->check;
    at_reserve(ck, c);
    for (raft_index i = commit_before + 1; i <= c; i++) {
        raft_term term;
        uint64_t chain;
        if (!sim_log_chain_at(&n->log, i, &term, &chain)) {
            continue; /* covered by an installed snapshot */
        }
        if (ck->committed[i] == 0) {
            ck->committed[i] = chain;
        } else if (ck->committed[i] != chain) {
            sim_fail(s, "two different entries committed at one index", n->id, i, term,
                     "chain %016" PRIx64 ", committed before %016" PRIx64, chain, ck->committed[i]);
            return;
        }
    }
    if (c > ck->commit_max) {
        ck->commit_max = c;
        s->stats.commits = c;
    }
}

static struct sim_term_rec *term_rec(struct sim_check *c, raft_term term)
{
    if (term >= c->terms_cap) {
        uint64_t cap = c->terms_cap;
        while (cap <= term) {
            cap *= 2;
        }
        struct sim_term_rec *p = realloc(c->terms, cap * sizeof *p);
        lr_assert(p != NULL);
        memset(p + c->terms_cap, 0, (cap - c->terms_cap) * sizeof *p);
        c->terms = p;
        c->terms_cap = cap;
    }
    return &c->terms[term];
}

/*
 * Leader completeness (5.4.1): "If a log entry is committed in a given term, then that
 * entry will be present in the logs of the leaders for all higher-numbered terms." Only
 * lower terms count: a leader of an old term (a candidate paused mid-election, say) may
 * win late without what newer terms committed, and is deposed on first contact.
 */
static void check_leader_complete(struct sim *s, struct sim_node *n)
{
    struct sim_check *c = &s->check;
    raft_term term_now = raft_current_term(n->core);
    raft_index cm = 0;
    for (raft_term t = 1; t < term_now && t < c->terms_cap; t++) {
        if (c->terms[t].commit > cm) {
            cm = c->terms[t].commit;
        }
    }
    if (cm == 0) {
        return;
    }
    raft_term term;
    uint64_t chain;
    if (cm < n->log.offset) {
        /* Compacted: the snapshot covers it, and the log's base must be committed. */
        cm = n->log.offset;
        if (cm >= c->at_cap || c->committed[cm] == 0) {
            return;
        }
    }
    lr_assert(cm < c->at_cap);
    if (!sim_log_chain_at(&n->log, cm, &term, &chain)) {
        sim_fail(s, "leader completeness", n->id, cm, term_now,
                 "new leader's log ends at %" PRIu64
                 ", before an entry committed in an "
                 "earlier term",
                 sim_log_last_index(&n->log));
        return;
    }
    if (chain != c->committed[cm]) {
        sim_fail(s, "leader completeness", n->id, cm, term_now,
                 "new leader holds %" PRIu64 "/%" PRIu64 " but a different entry was committed", cm,
                 term);
    }
}

/*
 * Durable prefix: the core's stable index is "the durable prefix of the log" (raft.h), and
 * a leader counts it as its own match (quorum.c). It must be durable with the entries the
 * log holds now, not with entries a truncation replaced while their write was in flight
 * (raft.h: a persist token's generation "bumped whenever the log loses a suffix"). The
 * chain at the stable index covers every entry below it, so one comparison checks the
 * whole prefix. Indexes at or below the log's base belong to a snapshot, taken (durable
 * at once) or being installed (it replaces the whole log): nothing to compare there.
 */
static void check_stable(struct sim *s, const struct sim_node *n)
{
    raft_index i = raft_stable_index(n->core);
    if (i <= n->log.offset || i <= n->d_snap.index) {
        return;
    }
    const struct sim_entry *v = sim_log_at(&n->log, i);
    const struct sim_entry *d = sim_log_at(&n->d_log, i);
    if (v == NULL || d == NULL || d->chain != v->chain) {
        sim_fail(s, "durable prefix: the core counts entries as durable that are not", n->id, i,
                 v != NULL ? v->term : 0,
                 "stable index %" PRIu64 "; the durable log ends at %" PRIu64 "%s", i,
                 sim_log_last_index(&n->d_log), d != NULL ? " and holds another entry there" : "");
    }
}

static void check_election(struct sim *s, struct sim_node *n)
{
    raft_term term = raft_current_term(n->core);
    struct sim_term_rec *t = term_rec(&s->check, term);
    if (t->leader == 0) {
        t->leader = n->id;
    } else if (t->leader != n->id) {
        sim_fail(s, "election safety", n->id, 0, term, "n%" PRIu64 " was leader in this term",
                 t->leader);
    }
}

/* Everything to check about node n after one of its steps. */
void sim_check_after_node_step(struct sim *s,
                               struct sim_node *n,
                               enum raft_role role_before,
                               raft_index commit_before)
{
    const struct raft *r = n->core;
    enum raft_role role = raft_role_of(r);
    raft_term term = raft_current_term(r);
    if (role != role_before || term != n->role_term) {
        sim_trace_add(s, SIM_TR_ROLE, n->id, 0, (uint8_t)role, term, raft_leader_of(r), 0, 0, 0, 0);
        if (role == RAFT_CANDIDATE && (role_before != RAFT_CANDIDATE || term != n->role_term)) {
            s->stats.elections++;
        }
    }
    if (role == RAFT_LEADER) {
        check_election(s, n);
        if (role_before != RAFT_LEADER || term != n->role_term) {
            s->stats.leaders++;
            n->leader_since_us = s->now_us;
            check_leader_complete(s, n);
        }
        /* New voters, new majorities: check-quorum's window starts again. */
        if (raft_members_index(r) != n->conf_index_seen) {
            n->leader_since_us = s->now_us;
        }
    }
    n->conf_index_seen = raft_members_index(r);
    n->role = role;
    n->role_term = term;
    check_stable(s, n);

    raft_index c = raft_commit_index(r);
    if (c > commit_before) {
        if (role == RAFT_LEADER) {
            check_leader_commit(s, n, c);
            struct sim_term_rec *t = term_rec(&s->check, raft_current_term(r));
            t->commit = c > t->commit ? c : t->commit;
        }
        record_commit(s, n, commit_before, c);
    }
}

/* --- Messages ---------------------------------------------------------------------- */

/* Acknowledgments vouch for durable state (thesis 3.8: "servers must persist their state
 * before responding"), checked when the message actually leaves. An APPEND_RESP vouches
 * for the entry the sender held at index when the core made it (its log may have moved on
 * since, with the ack waiting behind the write). */
void sim_check_send(struct sim *s, const struct sim_node *n, const struct sim_msg *msg)
{
    const struct raft_message *m = &msg->m;
    if (m->type == RAFT_MSG_APPEND_RESP && m->append_resp.success) {
        raft_index i = m->append_resp.index;
        if (i == 0 || n->d_snap.index >= i) {
            return;
        }
        const struct sim_entry *d = sim_log_at(&n->d_log, i);
        if (d == NULL || (msg->ack_chain != 0 && d->chain != msg->ack_chain)) {
            sim_fail(s, "acknowledged entries not durable", n->id, i, m->term,
                     "APPEND_RESP ok %" PRIu64 " to n%" PRIu64 "; durable log ends at %" PRIu64
                     "%s",
                     i, m->to, sim_log_last_index(&n->d_log),
                     d != NULL ? " with a different entry there" : "");
        }
    } else if (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.granted && !m->vote_resp.prevote) {
        if (n->d_term != m->term || n->d_vote != m->to) {
            sim_fail(s, "vote granted before it was durable", n->id, 0, m->term,
                     "grant to n%" PRIu64 "; durable term %" PRIu64 " vote n%" PRIu64, m->to,
                     n->d_term, n->d_vote);
        }
    }
}

/* Linearizable ReadIndex (thesis 6.4): the index covers every write committed before the
 * read began. */
void sim_check_read_ready(struct sim *s, struct sim_read *rd)
{
    if (rd->index < rd->min_index) {
        sim_fail(s, "ReadIndex returned a stale index", rd->node, rd->index, 0,
                 "%" PRIu64 " was already committed when the read was asked", rd->min_index);
    }
}

/* --- After every step ------------------------------------------------------------------ */

/* Check-quorum (thesis 6.2): a leader that has not heard from a majority of voters for the
 * quorum window must have stepped down. Paused leaders are exempt: they cannot tick. */
static void check_quorum(struct sim *s, const struct sim_node *n)
{
    uint64_t window = s->check.quorum_window_us * n->rate_permille / 1000;
    if (s->now_us - n->leader_since_us <= window) {
        return;
    }
    unsigned heard = 0;
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        if (!raft_is_voter(n->core, id)) {
            continue;
        }
        if (id == n->id || n->heard_us[id] + window >= s->now_us) {
            heard++;
        }
    }
    if (heard <= voters_of(n) / 2) {
        sim_fail(s, "check-quorum: leader did not step down", n->id, 0, raft_current_term(n->core),
                 "heard from %u of %u voters in the last %" PRIu64 " us (leader since t=%" PRIu64
                 " us)",
                 heard, voters_of(n), window, n->leader_since_us);
    }
}

void sim_check_global(struct sim *s)
{
    for (raft_id id = 1; id <= s->n_nodes; id++) {
        const struct sim_node *n = &s->nodes[id];
        if (n->up && !n->paused && n->role == RAFT_LEADER) {
            check_quorum(s, n);
        }
    }
}
