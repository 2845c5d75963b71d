/*
 * Durability: the persist requests the core asks for, in order; the messages that must not
 * leave before the state they vouch for is durable (raft.h, after_persist: a vote or an
 * APPEND_RESP, Raft paper §5.1 "respond to RPCs only after updating stable storage");
 * and what a node does when its store fails.
 *
 * Store failure is fail-stop, as etcd does: a node whose store failed cannot make its
 * log durable, so nothing it says about its log can be trusted again until a restart
 * finds out what the disk really holds. It hands leadership to the most caught-up voter
 * if it leads, then stops stepping the core altogether: it never campaigns, votes, leads
 * or acknowledges again, and refuses every command, saying why.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/internal.h"
#include "util/assert.h"
#include "util/crash_point.h"

/* A message that leaves once persist request seq is durable. */
struct held
{
    struct raft_message m;
    uint64_t seq;
};

/* One persist request, handed to the world and back in node_persisted(). */
struct persist_ctx
{
    struct raft_persist_token token;
    bool has_token;
    uint64_t seq;
    bool log; /* it writes the log: durable_last is its last index */
    bool hard_state;
    raft_index durable_last;
};

const char *durability_failed_reply(const struct node *n, const char *tail, char *buf, size_t size)
{
    snprintf(buf, size, "-ERR this node's store failed (%s; see its log)%s\r\n",
             store_strerror(n->dur.store_status), tail);
    return buf;
}

static void fail_stop(struct node *n, int status);

/* Fills in the payloads of an APPEND from the log cache and hands the message over. */
void node_send_message(struct node *n, struct raft_message *m)
{
    if (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.granted && !m->vote_resp.prevote) {
        /* Sent only once the vote is durable (after_persist, durability_send): what a
         * checker may hold the node to after any crash (spec/power/). */
        node_log(n, "vote: granted to node %" PRIu64 " in term %" PRIu64, m->to, m->term);
    }
    if (m->type == RAFT_MSG_VOTE_RESP && !m->vote_resp.granted && n->recovering) {
        /* The operator's (and spec/node/bitflip_spec's) sign that the cluster waits on it. */
        node_log(n,
                 "vote: refused %sto node %" PRIu64
                 ": this node is recovering a lost log "
                 "(runtime_recover.c)",
                 m->vote_resp.prevote ? "a pre-vote " : "", m->to);
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (n->snap.path[0] == '\0') {
            node_log(n, "cannot send a snapshot to %" PRIu64 ": no snapshot file", m->to);
            return;
        }
        n->io->send_snapshot(n->io->arg, m, n->snap.path);
        return;
    }
    struct raft_entry stack[64];
    struct raft_entry *entries = NULL;
    struct buf scratch; /* payloads read back from the store for a lagging follower */
    buf_init(&scratch);
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        uint32_t k = m->append.n_entries;
        entries = k <= 64 ? stack : malloc(k * sizeof *entries);
        lr_assert(entries != NULL);
        int rv = cache_entries(n, m->append.prev_index + 1, k, entries, &scratch);
        if (rv != 0) {
            /* The follower asks again; a store that cannot be read is the operator's to
             * see in the store's own log line. A damaged one (an entry failed its
             * checksum) must not serve, vote or lead on: the node stops. */
            node_log(n, "cannot read entries for node %" PRIu64 ": %s", m->to, store_strerror(rv));
            if (rv == STORE_ECORRUPT && !n->dur.store_failed) {
                fail_stop(n, rv);
            }
            if (entries != stack) {
                free(entries);
            }
            buf_free(&scratch);
            return;
        }
        m->append.entries = entries;
    }
    n->io->send(n->io->arg, m);
    if (entries != NULL) {
        m->append.entries = NULL;
        if (entries != stack) {
            free(entries);
        }
    }
    buf_free(&scratch);
}

static void hold(struct durability *d, const struct raft_message *m, uint64_t seq)
{
    if (d->held_off > 0 && d->held_off + d->held_n == d->held_cap) {
        memmove(d->held, d->held + d->held_off, d->held_n * sizeof *d->held);
        d->held_off = 0;
    }
    size_t used = d->held_off + d->held_n;
    VEC_RESERVE(d->held, used, d->held_cap, 1);
    d->held[d->held_off + d->held_n] = (struct held){*m, seq};
    d->held_n++;
}

static void release_held(struct node *n)
{
    struct durability *d = &n->dur;
    while (d->held_n > 0 && d->held[d->held_off].seq <= d->done) {
        struct raft_message m = d->held[d->held_off].m;
        d->held_off++;
        d->held_n--;
        node_send_message(n, &m);
    }
    if (d->held_n == 0) {
        d->held_off = 0;
    }
}

void durability_send(struct node *n, struct raft_message *m)
{
    struct durability *d = &n->dur;
    if (m->after_persist && d->store_failed) {
        return; /* it would vouch for state that can no longer become durable */
    }
    if (m->after_persist && d->done < d->submitted) {
        hold(d, m, d->submitted);
        return;
    }
    node_send_message(n, m);
}

static int submit(struct node *n, const struct store_write *w, const struct raft_update *u)
{
    struct persist_ctx *pc = calloc(1, sizeof *pc);
    lr_assert(pc != NULL);
    /* A write of entries replaces everything after first, an install everything: once
     * durable, the log is durable exactly up to its last index. */
    if (w->entries) {
        pc->log = true;
        pc->durable_last = w->first + w->n - 1;
    } else if (w->snapshot) {
        pc->log = true;
        pc->durable_last = w->snapshot_index;
    }
    pc->hard_state = w->hard_state;
    pc->has_token = u != NULL;
    if (u != NULL) {
        pc->token = u->persist;
    }
    pc->seq = n->dur.submitted + 1;
    int rv = n->io->persist(n->io->arg, w, pc);
    if (rv != 0) {
        free(pc);
        return rv;
    }
    n->dur.submitted++;
    return 0;
}

/* Submits a request the core did not ask for (configuration, compaction). It still counts
 * in the order of requests, so its completion advances done like any other. */
int durability_submit_plain(struct node *n, const struct store_write *w)
{
    return submit(n, w, NULL);
}

void durability_persist(struct node *n, const struct raft_update *u)
{
    struct store_write w;
    memset(&w, 0, sizeof w);
    if (u->flags & RAFT_UPDATE_HARD_STATE) {
        w.hard_state = true;
        w.term = u->term;
        w.vote = u->vote;
    }
    if (u->flags & RAFT_UPDATE_SNAPSHOT) {
        snapshots_install(n, u);
        w.snapshot = true;
        w.snapshot_index = u->snapshot.index;
        w.snapshot_term = u->snapshot.term;
    }
    if (u->flags & RAFT_UPDATE_ENTRIES) {
        cache_truncate(&n->cache, u->append.first);
        if (n->cache.n == 0) {
            n->cache.first = u->append.first;
        }
        for (uint32_t i = 0; i < u->append.n; i++) {
            cache_append(&n->cache, u->append.first + i, &u->append.entries[i]);
            members_appended(n, &u->append.entries[i]);
        }
        w.entries = true;
        w.first = u->append.first;
        w.n = u->append.n;
        w.e = u->append.entries;
    }
    if (n->dur.store_failed) {
        return;
    }
    int rv = submit(n, &w, u);
    if (rv != 0) {
        node_fatal(n, "store_submit: %s", store_strerror(rv));
    }
}

/* Hands leadership to the most caught-up voter (transfer.c chooses), if this node leads. */
static void hand_over_leadership(struct node *n)
{
    if (raft_role_of(n->raft) != RAFT_LEADER) {
        return;
    }
    raft_id best = transfer_choose(n);
    if (best == 0) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EVENT_TRANSFER};
    ev.transfer.target = best;
    node_step(n, &ev);
    node_log(n, "store failed: handing leadership to node %" PRIu64, best);
}

/* Nothing of the failed request was written, and the core must not believe it was. */
static void fail_stop(struct node *n, int status)
{
    node_log(n,
             "store: %s; this node stops: it no longer votes, leads or serves until it "
             "is restarted: %s",
             store_strerror(status),
             status == STORE_EFULL ? "raise --map-size (or take RAFT.SNAPSHOT earlier) and "
                                     "restart it"
             : status == STORE_ENOSPC
                 ? "free space on the file system of its data directory and restart it (it "
                   "catches up from the leader)"
             : status == STORE_ECORRUPT
                 ? "its data directory is damaged: restart it (it moves the damaged files "
                   "aside and recovers from the leader)"
                 : "check the disk and restart it");
    /* The writes waiting for their entries would wait forever: this node cannot make them
     * durable, so unless a majority of others commits them they never apply. */
    n->dur.store_status = status;
    char reply[256];
    writes_fail_all(
        n, durability_failed_reply(n, "; the write's outcome is unknown", reply, sizeof reply));
    /* Messages held behind this request vouch for what it failed to write: drop them. */
    n->dur.held_n = 0;
    n->dur.held_off = 0;
    n->dur.store_failed = true;
    if (!n->stopping) {
        hand_over_leadership(n); /* the last step this node takes */
    }
}

void node_persisted(struct node *n, void *ctx, int status)
{
    struct persist_ctx *pc = ctx;
    struct persist_ctx done = *pc;
    free(pc);
    if (n->dur.store_failed) {
        /* A later request may succeed where an earlier one failed (a smaller write fits a
         * full map), but the log it extends has a hole: it must never vouch for anything,
         * neither to the core (its own commit count) nor to peers (acknowledgments). */
        return;
    }
    if (status != 0) {
        fail_stop(n, status);
        return;
    }
    if (done.hard_state) {
        crash_point("node.after_hard_state");
    }
    n->dur.done = done.seq;
    if (done.log) {
        n->dur.durable = done.durable_last;
        node_cache_trim(n);
    }
    if (n->stopping) {
        return; /* the store drains its queue after the peers are gone: nothing to send */
    }
    if (done.has_token) {
        struct raft_event ev = {.type = RAFT_EVENT_PERSISTED};
        ev.persisted = done.token;
        node_step(n, &ev);
    }
    release_held(n);
}

void durability_free(struct node *n)
{
    free(n->dur.held);
    n->dur.held = NULL;
}
