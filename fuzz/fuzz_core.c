/* libFuzzer target: the protocol core (src/raft/) fed arbitrary events. One core, node 1
 * of three voters (1, 2, 3), boots empty; the input is a program, one op byte then its
 * operands per event: a tick, a message from a peer (any type, any sender among 0..4,
 * terms and indexes small or near the limits, APPENDs with up to four entries whose
 * CONFIG payloads are fuzzed bytes, SNAPSHOTs with a fuzzed configuration), a proposal, a
 * persist request finishing (the oldest one outstanding, as a driver's store finishes
 * them in order), a snapshot taken at the commit index, a ReadIndex, a transfer, a
 * campaign. Whatever a peer sends, after every step the core must keep what a correct
 * node keeps: its term never goes back; its vote changes only with its term (or from
 * nobody); its commit index never goes back and stays within its log; it is leader exactly
 * when it names itself the leader; every message it sends is from itself, to another
 * node, in a term no later than its own (the next, for a pre-vote; a pre-vote's answer
 * carries the asker's); and its own assertions (lr_assert) hold. A
 * broken one aborts. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "raft/raft.h"

struct prog
{
    const uint8_t *p;
    size_t left;
};

static uint8_t byte(struct prog *g)
{
    if (g->left == 0) return 0;
    g->left--;
    return *g->p++;
}

/* A term or an index: mostly small, sometimes at the edges the core must refuse. */
static uint64_t number(struct prog *g)
{
    uint8_t b = byte(g);
    switch (b >> 6) {
    case 0:
    case 1: return b & 0x0f;
    case 2: return 16 + (b & 0x3f);
    default: return (b & 1) ? ((uint64_t)1 << 62) - (b & 0x0e) : UINT64_MAX - (b & 0x0e);
    }
}

enum { entries_max = 4, payload_max = 64 };

struct message_space
{
    struct raft_entry entries[entries_max];
    uint8_t payloads[entries_max][payload_max];
    struct raft_members members;
};

static void fill_message(struct prog *g, struct raft_message *m, struct message_space *sp)
{
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)(byte(g) % (RAFT_MSG_TYPE_MAX + 2)); /* one unknown type too */
    m->from = byte(g) % 5;
    m->to = 1;
    m->term = number(g);
    uint8_t flags = byte(g);
    switch (m->type) {
    case RAFT_MSG_APPEND: {
        m->append.prev_index = number(g);
        m->append.prev_term = number(g);
        m->append.commit = number(g);
        m->append.n_entries = flags % (entries_max + 1);
        m->append.entries = sp->entries;
        for (uint32_t i = 0; i < m->append.n_entries; i++) {
            struct raft_entry *e = &sp->entries[i];
            e->term = number(g);
            e->type = 1 + byte(g) % 3;
            e->len = byte(g) % (payload_max + 1);
            for (uint32_t k = 0; k < e->len; k++) sp->payloads[i][k] = byte(g);
            e->buf = sp->payloads[i];
        }
        break;
    }
    case RAFT_MSG_APPEND_RESP:
        m->append_resp.success = flags & 1;
        m->append_resp.index = number(g);
        m->append_resp.conflict_term = number(g);
        m->append_resp.conflict_index = number(g);
        break;
    case RAFT_MSG_VOTE:
        m->vote.prevote = flags & 1;
        m->vote.transfer = flags & 2;
        m->vote.last_index = number(g);
        m->vote.last_term = number(g);
        break;
    case RAFT_MSG_VOTE_RESP:
        m->vote_resp.prevote = flags & 1;
        m->vote_resp.granted = flags & 2;
        break;
    case RAFT_MSG_HEARTBEAT:
        m->heartbeat.commit = number(g);
        m->heartbeat.read_seq = number(g);
        break;
    case RAFT_MSG_HEARTBEAT_RESP: m->heartbeat_resp.read_seq = number(g); break;
    case RAFT_MSG_SNAPSHOT:
        m->snapshot.index = number(g);
        m->snapshot.term = number(g);
        sp->members.n = flags % 5;
        for (unsigned i = 0; i < sp->members.n; i++) {
            sp->members.servers[i].id = 1 + byte(g) % 5;
            sp->members.servers[i].voter = byte(g) & 1;
        }
        m->snapshot.members = (flags & 0x80) ? NULL : &sp->members;
        break;
    case RAFT_MSG_READ_INDEX: m->read_index.id = number(g); break;
    case RAFT_MSG_READ_INDEX_RESP:
        m->read_index_resp.id = number(g);
        m->read_index_resp.index = number(g);
        break;
    default: break;
    }
}

enum { tokens_max = 64 };

struct driver
{
    struct raft *r;
    struct raft_persist_token tokens[tokens_max]; /* outstanding persist requests, in order */
    unsigned n_tokens;
    bool overflow; /* more outstanding than tokens_max: requests finish in order, so stop */
};

static void check(struct driver *d, const struct raft_update *u, raft_term term0, raft_id vote0,
                  raft_index commit0)
{
    struct raft *r = d->r;
    raft_term term = raft_current_term(r);
    if (term < term0) abort();
    if (term == term0 && raft_voted_for(r) != vote0 && vote0 != 0) abort();
    if (raft_commit_index(r) < commit0) abort();
    if (raft_commit_index(r) > raft_last_index(r)) abort();
    if ((raft_role_of(r) == RAFT_LEADER) != (raft_leader_of(r) == 1)) abort();
    if (raft_snapshot_index(r) > raft_last_index(r)) abort();
    for (unsigned i = 0; i < u->n_messages; i++) {
        const struct raft_message *m = &u->messages[i];
        /* A pre-vote asks for the next term without entering it, and its answer carries
         * the term asked for (thesis 9.6). */
        bool prevote = m->type == RAFT_MSG_VOTE && m->vote.prevote;
        bool answer = m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.prevote;
        if (m->from != 1 || m->to == 1 || m->to == 0 || (!answer && m->term > term + prevote))
            abort();
    }
    if (u->flags & (RAFT_UPDATE_HARD_STATE | RAFT_UPDATE_ENTRIES | RAFT_UPDATE_SNAPSHOT)) {
        if (d->n_tokens == tokens_max) d->overflow = true; /* then none finishes any more */
        if (!d->overflow) d->tokens[d->n_tokens++] = u->persist;
    }
}

static void step(struct driver *d, struct raft_event *ev)
{
    raft_term term0 = raft_current_term(d->r);
    raft_id vote0 = raft_voted_for(d->r);
    raft_index commit0 = raft_commit_index(d->r);
    struct raft_update u;
    raft_step(d->r, ev, &u);
    check(d, &u, term0, vote0, commit0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_config c;
    raft_config_default(&c, 1, 7);
    c.election_ticks = 4;
    c.heartbeat_ticks = 1;
    c.log_entries_max = 64;
    struct raft_server servers[3] = {{1, true}, {2, true}, {3, true}};
    struct raft_boot b = {.servers = servers, .n_servers = 3};
    struct driver d = {0};
    if (raft_init(&d.r, &c, &b) != 0) abort();
    struct prog g = {data, size};
    struct message_space sp;
    static const uint8_t noop[1];
    for (unsigned steps = 0; g.left > 0 && steps < 4096; steps++) {
        struct raft_event ev;
        memset(&ev, 0, sizeof ev);
        struct raft_entry prop = {0, RAFT_ENTRY_NORMAL, 1, noop};
        switch (byte(&g) % 9) {
        case 0: ev.type = RAFT_EVENT_TICK; break;
        case 1:
        case 2:
            ev.type = RAFT_EVENT_RECEIVE;
            fill_message(&g, &ev.receive, &sp);
            break;
        case 3:
            ev.type = RAFT_EVENT_PROPOSE;
            ev.propose.entries = &prop;
            ev.propose.n = 1;
            break;
        case 4:
            if (d.n_tokens == 0 || d.overflow) continue;
            ev.type = RAFT_EVENT_PERSISTED;
            ev.persisted = d.tokens[0];
            memmove(d.tokens, d.tokens + 1, --d.n_tokens * sizeof d.tokens[0]);
            break;
        case 5: {
            raft_index at = raft_commit_index(d.r);
            if (at == 0 || at <= raft_snapshot_index(d.r)) continue;
            ev.type = RAFT_EVENT_SNAPSHOT_TAKEN;
            ev.snapshot_taken.index = at;
            ev.snapshot_taken.term = raft_term_at(d.r, at);
            ev.snapshot_taken.compact_to = at - (byte(&g) % (at + 1));
            break;
        }
        case 6:
            ev.type = RAFT_EVENT_READ_INDEX;
            ev.read_index.id = byte(&g);
            break;
        case 7:
            ev.type = RAFT_EVENT_TRANSFER;
            ev.transfer.target = byte(&g) % 5;
            break;
        default:
            ev.type = RAFT_EVENT_CAMPAIGN;
            ev.campaign.force = byte(&g) & 1;
            break;
        }
        step(&d, &ev);
    }
    raft_free(d.r);
    return 0;
}
