/*
 * RAFT.CHECK: are the replicas' states the same? The leader logs a CHECK entry; every
 * replica that applies it hashes its state there (fsm_state_hash: BLAKE2b-256 of what
 * M.snapshot writes, canonically), logs the hash and keeps the last few. The leader then
 * asks every member for its hash at that index (node frames, asked again while a member
 * has not applied it yet) and answers the caller with each node's hash and a verdict. A
 * mismatch is logged loudly on the leader and, through a last frame, on every node.
 *
 * Frame TRANSPORT_FRAME_CHECK, body: u8 kind (query, answer, verdict), u64 index, u8
 * state, 32 bytes of hash.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/resp.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "peer/transport.h"
#include "util/assert.h"

enum {
    check_ask_every_ms = 100,
    check_frame_body_bytes = 1 + 8 + 1 + FSM_STATE_HASH_BYTES,
};

enum check_kind { CHECK_QUERY = 1, CHECK_ANSWER = 2, CHECK_VERDICT = 3 };

/* What a member says of its hash at an index (also the verdict's: CHECK_HASH ok). */
enum check_state {
    CHECK_NONE = 0,    /* not asked, or no answer yet */
    CHECK_HASH = 1,    /* here is the hash */
    CHECK_LATER = 2,   /* not applied that far yet */
    CHECK_UNKNOWN = 3, /* applied past it without hashing there (restored from a snapshot) */
    CHECK_FAILED = 4,  /* M.snapshot failed there */
    CHECK_DIFFERS = 5, /* verdict: a mismatch */
};

static void hex(const unsigned char *h, char out[2 * FSM_STATE_HASH_BYTES + 1])
{
    for (int i = 0; i < FSM_STATE_HASH_BYTES; i++) {
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    }
}

static void send_frame(struct node *n,
                       raft_id to,
                       enum check_kind kind,
                       raft_index index,
                       enum check_state state,
                       const unsigned char *hash)
{
    static const unsigned char zeros[node_frame_headroom + FSM_STATE_HASH_BYTES];
    struct buf b;
    buf_init(&b);
    int rv = buf_append(&b, zeros, node_frame_headroom);
    uint8_t k = (uint8_t)kind, st = (uint8_t)state;
    rv = rv ? rv : buf_append(&b, &k, 1);
    rv = rv ? rv : buf_put_u64(&b, index);
    rv = rv ? rv : buf_append(&b, &st, 1);
    rv = rv ? rv : buf_append(&b, hash != NULL ? hash : zeros, FSM_STATE_HASH_BYTES);
    lr_assert(rv == 0);
    n->io->send_frame(n->io->arg, to, TRANSPORT_FRAME_CHECK, &b);
}

static const struct check_record *recorded(const struct node *n, raft_index index)
{
    for (unsigned i = 0; i < node_checks_kept; i++) {
        if (n->chk.recent[i].index == index) {
            return &n->chk.recent[i];
        }
    }
    return NULL;
}

/* This node's own answer for index. */
static enum check_state own_state(const struct node *n,
                                  raft_index index,
                                  const unsigned char **hash)
{
    const struct check_record *r = recorded(n, index);
    *hash = NULL;
    if (r != NULL) {
        *hash = r->hash;
        return r->rv == 0 ? CHECK_HASH : CHECK_FAILED;
    }
    return n->applied < index ? CHECK_LATER : CHECK_UNKNOWN;
}

void check_request(struct node *n, struct server_request *req)
{
    struct checks *c = &n->chk;
    if (raft_role_of(n->raft) != RAFT_LEADER) {
        const char *addr = n->io->peer_client_addr(n->io->arg, raft_leader_of(n->raft));
        conn_reply_error(n, req, "ERR RAFT.CHECK runs on the leader%s%s", addr ? ", at " : "",
                         addr ? addr : " (none is known now)");
        return;
    }
    if (c->req != NULL) {
        node_reply_text(n, req, "-ERR a check is already running; retry when it ends\r\n");
        return;
    }
    writes_check(n);
    c->req = req;
    c->index = 0;
    c->deadline_ms = node_now(n) + node_read_timeout_ms;
}

static void ask(struct node *n)
{
    struct checks *c = &n->chk;
    for (int i = 0; i < c->n; i++) {
        if (c->answers[i].id != n->c->id && c->answers[i].state != CHECK_HASH &&
            c->answers[i].state != CHECK_FAILED && c->answers[i].state != CHECK_UNKNOWN) {
            send_frame(n, c->answers[i].id, CHECK_QUERY, c->index, CHECK_NONE, NULL);
        }
    }
    c->asked_ms = node_now(n);
}

/* The leader's own CHECK entry was applied here: ask every member for theirs. */
static void start_asking(struct node *n, raft_index index)
{
    struct checks *c = &n->chk;
    c->index = index;
    c->n = 0;
    for (int i = 0; i < n->n_members; i++) {
        struct check_answer *a = &c->answers[c->n++];
        a->id = n->members[i].id;
        a->state = CHECK_NONE;
        if (a->id == n->c->id) {
            const unsigned char *h;
            a->state = own_state(n, index, &h);
            if (h != NULL) {
                memcpy(a->hash, h, FSM_STATE_HASH_BYTES);
            }
        }
    }
    ask(n);
}

void check_applied(struct node *n, raft_index index, int rv, const unsigned char *hash)
{
    struct checks *c = &n->chk;
    struct check_record *r = &c->recent[c->next];
    c->next = (c->next + 1) % node_checks_kept;
    r->index = index;
    r->rv = rv;
    memcpy(r->hash, hash, FSM_STATE_HASH_BYTES);
    char h[2 * FSM_STATE_HASH_BYTES + 1];
    hex(hash, h);
    if (rv == 0) {
        node_log(n, "consistency check at index %" PRIu64 ": state hash %s", index, h);
    } else {
        node_log(n, "consistency check at index %" PRIu64 ": M.snapshot failed (%d)", index, rv);
    }
    if (c->req != NULL && c->index == 0) {
        start_asking(n, index);
    }
}

/* Every member answered for good, or time is up: the verdict to the caller. */
static void finish(struct node *n)
{
    struct checks *c = &n->chk;
    const unsigned char *first = NULL;
    bool same = c->index > 0, all = c->index > 0;
    for (int i = 0; i < c->n; i++) {
        if (c->answers[i].state != CHECK_HASH) {
            all = false;
            continue;
        }
        same =
            same && (first == NULL || memcmp(first, c->answers[i].hash, FSM_STATE_HASH_BYTES) == 0);
        first = first != NULL ? first : c->answers[i].hash;
    }
    struct buf b;
    buf_init(&b);
    char line[160];
    resp_put_array(&b, (size_t)c->n + 1);
    snprintf(line, sizeof line, "%s at index %" PRIu64,
             c->index == 0 ? "not applied in time (leadership changed?): retry"
             : !same       ? "MISMATCH"
             : all         ? "consistent"
                           : "consistent so far (not every node answered)",
             c->index);
    resp_put_cstr(&b, line);
    static const char *const says[] = {"no answer", "", "not applied yet", "restored past it",
                                       "M.snapshot failed"};
    for (int i = 0; i < c->n; i++) {
        char h[2 * FSM_STATE_HASH_BYTES + 1];
        hex(c->answers[i].hash, h);
        snprintf(line, sizeof line, "node %" PRIu64 ": %s", c->answers[i].id,
                 c->answers[i].state == CHECK_HASH ? h : says[c->answers[i].state]);
        resp_put_cstr(&b, line);
    }
    conn_reply_buf(n, c->req, &b);
    c->req = NULL;
    if (c->index > 0 && !same) {
        node_log(n,
                 "CONSISTENCY CHECK FAILED at index %" PRIu64
                 ": the replicas' states differ "
                 "(RAFT.CHECK lists each node's hash)",
                 c->index);
        for (int i = 0; i < c->n; i++) {
            if (c->answers[i].id != n->c->id) {
                send_frame(n, c->answers[i].id, CHECK_VERDICT, c->index, CHECK_DIFFERS, NULL);
            }
        }
    }
}

static bool settled(const struct checks *c)
{
    for (int i = 0; i < c->n; i++) {
        int st = c->answers[i].state;
        if (st != CHECK_HASH && st != CHECK_UNKNOWN && st != CHECK_FAILED) {
            return false;
        }
    }
    return true;
}

void check_tick(struct node *n)
{
    struct checks *c = &n->chk;
    if (c->req == NULL) {
        return;
    }
    if (node_now(n) >= c->deadline_ms || (c->index > 0 && settled(c))) {
        finish(n);
    } else if (c->index > 0 && node_now(n) >= c->asked_ms + check_ask_every_ms) {
        ask(n);
    }
}

void check_frame(struct node *n, raft_id from, const void *body, size_t len)
{
    if (len != check_frame_body_bytes) {
        return;
    }
    const unsigned char *p = body;
    raft_index index = 0;
    for (int i = 0; i < 8; i++) {
        index = (index << 8) | p[1 + i];
    }
    struct checks *c = &n->chk;
    if (p[0] == CHECK_QUERY) {
        const unsigned char *h;
        enum check_state st = own_state(n, index, &h);
        send_frame(n, from, CHECK_ANSWER, index, st, h);
    } else if (p[0] == CHECK_ANSWER && c->req != NULL && index == c->index) {
        for (int i = 0; i < c->n; i++) {
            if (c->answers[i].id == from && p[9] >= CHECK_HASH && p[9] <= CHECK_FAILED) {
                c->answers[i].state = p[9];
                memcpy(c->answers[i].hash, p + 10, FSM_STATE_HASH_BYTES);
            }
        }
        if (settled(c)) {
            finish(n);
        }
    } else if (p[0] == CHECK_VERDICT && p[9] == CHECK_DIFFERS) {
        node_log(n,
                 "CONSISTENCY CHECK FAILED at index %" PRIu64 ": node %" PRIu64
                 " found the replicas' states differ (this node's hash there is logged "
                 "above)",
                 index, from);
    }
}

void check_stop(struct node *n)
{
    if (n->chk.req != NULL) {
        node_reply_text(n, n->chk.req, node_down_reply);
        n->chk.req = NULL;
    }
}
