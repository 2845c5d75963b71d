/*
 * The follower's side: AppendEntries with the consistency check (5.3), heartbeats, and
 * InstallSnapshot (section 7). Every APPEND_RESP leaves after the entries it vouches for
 * are durable (the update marks it after_persist).
 */
#include "raft/internal.h"
#include "util/assert.h"

static void reply(struct raft *r, raft_id to, bool success, raft_index index)
{
    struct raft_message *m = raft_msg_new(r, RAFT_MSG_APPEND_RESP, to);
    m->append_resp.success = success;
    m->append_resp.index = index;
}

/* "Reply false if log doesn't contain an entry at prevLogIndex whose term matches
 * prevLogTerm" (Figure 2), with a hint so that the leader can skip a whole term. */
static void reject(struct raft *r, const struct raft_message *m)
{
    raft_index prev = m->append.prev_index;
    struct raft_message *resp = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
    resp->append_resp.success = false;
    resp->append_resp.index = prev;
    if (prev > r->log.last) {
        resp->append_resp.conflict_term = 0;
        resp->append_resp.conflict_index = r->log.last + 1;
        return;
    }
    lr_assert(prev > r->commit); /* checked by the caller */
    resp->append_resp.conflict_term = log_term(&r->log, prev);
    resp->append_resp.conflict_index = log_first_of_term(&r->log, prev, r->commit + 1);
}

static void advance_commit(struct raft *r, raft_index leader_commit, raft_index last_new)
{
    /* "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last
     * new entry)" (Figure 2). */
    raft_index c = leader_commit < last_new ? leader_commit : last_new;
    if (c > r->commit) {
        r->commit = c;
    }
}

/*
 * Appends what is new in entries[0..n) (the first at index first), truncating from the
 * first conflict. Returns how many of them now match the leader's log: all of them,
 * unless the log ran out of room.
 */
static uint32_t append_new(struct raft *r, raft_index first, struct raft_entry *e, uint32_t n)
{
    uint32_t k = 0;
    bool truncated = false;
    /* Skip the entries we already have. */
    while (k < n && first + k <= r->log.last) {
        raft_term have = log_term(&r->log, first + k);
        if (have != e[k].term) {
            /* "If an existing entry conflicts with a new one (same index but different
             * terms), delete the existing entry and all that follow it" (Figure 2). */
            lr_assert(first + k > r->commit);
            log_truncate(&r->log, first + k);
            members_truncated(r, first + k);
            r->generation++;
            if (r->stable >= first + k) {
                r->stable = first + k - 1;
            }
            truncated = true;
            break;
        }
        k++;
    }
    uint32_t start = k;
    while (k < n && log_fits(&r->log, 1)) {
        if (e[k].term > r->term || log_append(&r->log, e[k].term, e[k].len) != 0) {
            break;
        }
        struct raft_members m;
        if (e[k].type == RAFT_ENTRY_CONFIG && members_entry_decode(&e[k], &m)) {
            members_set(r, &m, first + k); /* in force from the log (thesis 4.1) */
        }
        k++;
    }
    /* A truncation is persisted even when nothing new fits after it, or a restart
     * would bring the deleted entries back. */
    if (k > start || truncated) {
        raft_persist_entries(r, first + start, e + start, k - start);
    }
    return k;
}

void follower_recv_append(struct raft *r, struct raft_message *m)
{
    lr_assert(r->role == RAFT_FOLLOWER && r->leader == m->from);
    raft_index prev = m->append.prev_index;
    struct raft_entry *e = m->append.entries;
    uint32_t n = m->append.n_entries;
    if (n > 0 && e == NULL) {
        return; /* a driver bug; drop rather than trust */
    }
    /* Entries up to our commit index are committed, hence identical to the leader's:
     * skip them, so an old or duplicated message can still teach us something. */
    if (prev < r->commit) {
        raft_index skip = r->commit - prev;
        if (skip >= n) {
            reply(r, m->from, true, r->commit);
            return;
        }
        prev = r->commit;
        e += skip;
        n -= (uint32_t)skip;
        if (e[-1].term != raft_term_of(r, prev)) {
            return; /* a committed entry differs: the sender is not a valid leader */
        }
    } else if (raft_term_of(r, prev) != m->append.prev_term || prev > r->log.last) {
        if (prev == r->commit) {
            return; /* our committed entry differs: the sender is not a valid leader */
        }
        reject(r, m);
        return;
    }
    uint32_t matched = append_new(r, prev + 1, e, n);
    raft_index last_new = prev + matched;
    advance_commit(r, m->append.commit, last_new);
    reply(r, m->from, true, last_new);
}

void follower_recv_heartbeat(struct raft *r, const struct raft_message *m)
{
    /* The leader sends at most our match index, which our log holds, unless we lost our
     * log (raft.h, raft_boot.recover_term): tell it where ours ends, as a rejection. */
    if (r->recover_term != 0 && m->heartbeat.commit > r->log.last) {
        struct raft_message *rej = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
        rej->append_resp.index = m->heartbeat.commit;
        rej->append_resp.conflict_index = r->log.last + 1;
    }
    advance_commit(r, m->heartbeat.commit, r->log.last);
    struct raft_message *resp = raft_msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp->heartbeat_resp.read_seq = m->heartbeat.read_seq;
}

void follower_recv_snapshot(struct raft *r, const struct raft_message *m)
{
    raft_index index = m->snapshot.index;
    raft_term term = m->snapshot.term;
    if (index <= r->commit) {
        reply(r, m->from, true, r->commit); /* we are past it already */
        return;
    }
    if (raft_term_of(r, index) == term) {
        /* We hold the snapshot's last entry: everything up to it is committed, and our
         * log already matches there. Keep the log. */
        r->commit = index;
        reply(r, m->from, true, index);
        return;
    }
    /* "If existing log entry has same index and term as snapshot's last included entry,
     * retain log entries following it" — not the case here: discard the entire log. */
    log_reset(&r->log, index);
    members_reset(r, m->snapshot.members);
    r->generation++;
    r->stable = r->stable < index ? r->stable : index;
    r->snapshot_index = index;
    r->snapshot_term = term;
    r->commit = index;
    r->u->flags |= RAFT_UPDATE_SNAPSHOT;
    r->u->snapshot.index = index;
    r->u->snapshot.term = term;
    r->u->snapshot.from = m->from;
    reply(r, m->from, true, index);
}
