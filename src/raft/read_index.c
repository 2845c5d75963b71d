/*
 * ReadIndex (thesis 6.4): a linearizable read without writing to the log. The leader
 * records its commit index, confirms it is still the leader by a round of heartbeats
 * answered by a majority, and then the read may be served once the state machine has
 * applied up to the recorded index. A new leader first waits for its no-op to commit, so
 * that its commit index is at least every index committed before its term. A deposed
 * leader can never complete a round: a majority has moved to a newer term and rejects it.
 *
 * Rounds are numbered (read_seq); every heartbeat carries the newest one, so one round
 * confirms every read queued before it.
 */
#include "raft/internal.h"
#include "util/assert.h"

static struct pending_read *at(struct raft *r, uint32_t k)
{
    return &r->reads[(r->reads_start + k) % r->cfg.reads_max];
}

static void pop(struct raft *r)
{
    lr_assert(r->reads_count > 0);
    r->reads_start = (r->reads_start + 1) % r->cfg.reads_max;
    r->reads_count--;
}

/* Removes the k-th pending read, keeping the order of the others. */
static void remove_at(struct raft *r, uint32_t k)
{
    lr_assert(k < r->reads_count);
    for (uint32_t j = k; j + 1 < r->reads_count; j++) {
        *at(r, j) = *at(r, j + 1);
    }
    r->reads_count--;
}

static struct pending_read *push(struct raft *r, uint64_t id, raft_id from)
{
    lr_assert(r->reads_count < r->cfg.reads_max);
    struct pending_read *p = at(r, r->reads_count);
    r->reads_count++;
    p->id = id;
    p->from = from;
    p->index = 0;
    p->seq = 0;
    p->ticks = 0;
    return p;
}

static void answer(struct raft *r, const struct pending_read *p, int status, raft_index index)
{
    if (p->from == r->cfg.id) {
        raft_read_done(r, p->id, status, index);
        return;
    }
    struct raft_message *m = raft_msg_new(r, RAFT_MSG_READ_INDEX_RESP, p->from);
    m->read_index_resp.id = p->id;
    m->read_index_resp.index = status == 0 ? index : 0;
}

/* Starts one round for every read still waiting for its round. */
static void start_round(struct raft *r)
{
    lr_assert(r->committed_in_term);
    bool started = false;
    for (uint32_t k = 0; k < r->reads_count; k++) {
        struct pending_read *p = at(r, k);
        if (p->seq == 0) {
            if (!started) {
                r->read_seq++;
                started = true;
            }
            p->seq = r->read_seq;
            p->index = r->commit;
        }
    }
    if (started) {
        replicate_send_heartbeats(r);
        read_index_advance(r);
    }
}

int read_index_request(struct raft *r, uint64_t id, raft_id from)
{
    lr_assert(r->role == RAFT_LEADER);
    if (r->reads_count == r->cfg.reads_max) {
        return RAFT_ETOOMANY;
    }
    push(r, id, from);
    if (r->committed_in_term) {
        start_round(r);
    }
    return 0;
}

void read_index_start_rounds(struct raft *r)
{
    start_round(r);
}

/* Answers every read whose round a majority has confirmed. */
void read_index_advance(struct raft *r)
{
    uint64_t confirmed = quorum_read_seq(r);
    while (r->reads_count > 0) {
        struct pending_read *p = at(r, 0);
        if (p->seq == 0 || p->seq > confirmed) {
            break;
        }
        lr_assert(p->index <= r->commit);
        answer(r, p, 0, p->index);
        pop(r);
    }
}

void read_index_fail_all(struct raft *r)
{
    while (r->reads_count > 0) {
        answer(r, at(r, 0), RAFT_ENOTLEADER, 0);
        pop(r);
    }
}

/*
 * A follower forwards a read to the leader and remembers it until the answer comes, so
 * that a duplicated answer, or one addressed to this node before it restarted, is
 * dropped rather than handed to the driver as the answer to some newer read.
 */
int read_index_forward(struct raft *r, uint64_t id)
{
    lr_assert(r->role == RAFT_FOLLOWER && r->leader != 0);
    if (r->reads_count == r->cfg.reads_max) {
        return RAFT_ETOOMANY;
    }
    push(r, id, r->cfg.id);
    struct raft_message *m = raft_msg_new(r, RAFT_MSG_READ_INDEX, r->leader);
    m->read_index.id = id;
    return 0;
}

/* A forwarded read whose answer was lost would wait forever, and fill the ring: fail
 * those that waited two election timeouts. The oldest are at the front. */
void read_index_tick(struct raft *r)
{
    lr_assert(r->role != RAFT_LEADER);
    for (uint32_t k = 0; k < r->reads_count; k++) {
        at(r, k)->ticks++;
    }
    while (r->reads_count > 0 && at(r, 0)->ticks >= 2 * r->cfg.election_ticks) {
        raft_read_done(r, at(r, 0)->id, RAFT_ENOTLEADER, 0);
        pop(r);
    }
}

void read_index_recv_resp(struct raft *r, const struct raft_message *m)
{
    if (r->role != RAFT_FOLLOWER || m->from != r->leader) {
        return; /* forwarded reads were failed when the leader changed */
    }
    for (uint32_t k = 0; k < r->reads_count; k++) {
        if (at(r, k)->id == m->read_index_resp.id) {
            raft_index index = m->read_index_resp.index;
            raft_read_done(r, m->read_index_resp.id, index != 0 ? 0 : RAFT_ENOTLEADER, index);
            remove_at(r, k);
            return;
        }
    }
}
