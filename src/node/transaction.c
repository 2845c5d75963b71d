/*
 * The leader's side of a transaction (multi.c has the client's): the write a session or
 * a follower sends (its form is at the top of multi.c) becomes one TRANSACTION entry
 * (command.h), unless a key it watched was written since its WATCH, which is decided here,
 * just before the entry is proposed.
 *
 * A key counts as written by every write in the leader's log above the watch index (and
 * by this turn's proposals before it) that names it among its keys (the script's command
 * table). Where the answer cannot be known cheaply, a conflict is assumed, which is always
 * safe (the client retries): the entries are gone into a snapshot, a payload was evicted
 * from the log cache, more than transaction_scan_max entries would be read, or the script
 * has no command table (any write may touch any key).
 */
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "fsm/fsm.h"
#include "node/internal.h"
#include "node/session.h"
#include "util/assert.h"

enum {
    transaction_scan_max = 100000, /* log entries looked at for one EXEC */
};

bool transaction_is(const void *blob, size_t len)
{
    return len >= 4 && memcmp(blob, "\0\0\0\0", 4) == 0;
}

struct watched
{
    const uint8_t *keys; /* each after its u32 length */
    size_t len;
    uint32_t n;
    bool hit;
};

static bool key_watched(const struct watched *w, const char *key, size_t len)
{
    struct cursor c = cursor_make(w->keys, w->len);
    while (c.left > 0) {
        uint32_t k;
        const uint8_t *p;
        if (!cursor_get_u32(&c, &k) || !cursor_get_bytes(&c, k, &p)) {
            return true;
        }
        if (k == len && memcmp(p, key, len) == 0) {
            return true;
        }
    }
    return false;
}

static void check_key(void *arg, const char *key, size_t len)
{
    struct watched *w = arg;
    w->hit = w->hit || key_watched(w, key, len);
}

/* Whether the command in an argv blob may write a watched key. */
static bool blob_touches(struct node *n, const void *blob, size_t len, struct watched *w)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    if (!command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        return false; /* applies as an error reply: it writes nothing */
    }
    bool touches = false;
    if (argc > 0) {
        const struct fsm_command *c = fsm_command_find(n->fsm, argv[0], argvlen[0]);
        if (!fsm_has_commands(n->fsm)) {
            touches = !fsm_is_read(n->fsm, argv[0], argvlen[0]);
        } else if (c != NULL && !c->read) {
            w->hit = false;
            fsm_command_keys(c, argc, argv, argvlen, check_key, w);
            touches = w->hit;
        }
    }
    free(argv);
    free(argvlen);
    return touches;
}

/* Whether an entry's payload may write a watched key. */
static bool payload_touches(struct node *n, const void *payload, size_t len, struct watched *w)
{
    int64_t time_ms;
    enum command_kind kind;
    const void *body;
    size_t body_len;
    if (!command_get_kind(payload, len, &time_ms, &kind, &body, &body_len)) {
        return false;
    }
    if (kind == COMMAND_KIND_COMMAND) {
        return blob_touches(n, body, body_len, w);
    }
    if (kind == COMMAND_KIND_TRANSACTION) {
        struct command_tx_iter it;
        command_tx_begin(&it, body, body_len);
        const void *blob;
        size_t blob_len;
        while (command_tx_next(&it, &blob, &blob_len)) {
            if (blob_touches(n, blob, blob_len, w)) {
                return true;
            }
        }
    }
    return false; /* a TICK's M.tick only expires keys, which WATCH ignores, as Redis does */
}

static bool written_since(struct node *n, raft_index since, struct watched *w)
{
    raft_index last = raft_last_index(n->raft);
    if (last > since && last - since > transaction_scan_max) {
        return true;
    }
    if (since + 1 < n->cache.first) {
        return true; /* compacted into a snapshot: unknown */
    }
    for (raft_index i = since + 1; i <= last; i++) {
        struct cache_entry *e = cache_at(&n->cache, i);
        if (e == NULL || (e->buf == NULL && e->len > 0)) {
            return true;
        }
        if (e->type == RAFT_ENTRY_NORMAL && payload_touches(n, e->buf, e->len, w)) {
            return true;
        }
    }
    for (size_t i = 0; i < writes_turn_count(n); i++) {
        const struct buf *p = writes_turn_payload(n, i);
        if (payload_touches(n, p->data, p->len, w)) {
            return true;
        }
    }
    return false;
}

int transaction_payload(struct node *n, const void *blob, size_t len, struct buf *payload)
{
    struct cursor c = cursor_make(blob, len);
    uint32_t marker, n_keys, n_cmds;
    uint64_t since;
    if (!cursor_get_u32(&c, &marker) || !cursor_get_u64(&c, &since) ||
        !cursor_get_u32(&c, &n_keys)) {
        return -1;
    }
    struct watched w = {c.p, 0, n_keys, false};
    for (uint32_t i = 0; i < n_keys; i++) {
        uint32_t k;
        const uint8_t *p;
        if (!cursor_get_u32(&c, &k) || !cursor_get_bytes(&c, k, &p)) {
            return -1;
        }
    }
    w.len = (size_t)(c.p - w.keys);
    if (!cursor_get_u32(&c, &n_cmds) || n_cmds > command_argc_max) {
        return -1;
    }
    if (n_keys > 0 && written_since(n, since, &w)) {
        return 1;
    }
    return command_put_transaction_body(payload, n_cmds, c.p, c.left) == 0 ? 0 : -1;
}
