/*
 * Transactions, with Redis's semantics: MULTI queues the script's commands on the
 * connection (each checked against the command table as it comes: a refused one makes
 * EXEC abort with -EXECABORT, nothing applied); EXEC sends them to the leader as one
 * write, logged as one TRANSACTION entry (command.h) whose commands every replica applies
 * back to back; DISCARD forgets them.
 *
 * WATCH: EXEC fails (a null reply) if a watched key was written since the WATCH. A WATCH
 * is a read of the node's own: after the connection's writes before it, it takes a
 * ReadIndex round, whose index covers every write that took effect before the WATCH, so
 * only writes above it can conflict (and none before it can, however far this node's
 * state lags). The leader decides, just before it proposes the transaction, by looking at
 * the writes in its log above that index (watch.c): nothing can come between that check
 * and the transaction's place in the log, since the leader alone appends.
 *
 * An EXEC, as a write, is forwarded by a follower in this form (writes.c tells it from a
 * command's argv blob by its first word, which no command has):
 *
 *   u32 0, u64 watch index (0: no WATCH), u32 watched keys, per key u32 length and bytes,
 *   u32 commands, per command u32 length and its argv blob
 */
#include <string.h>
#include <strings.h>

#include "command.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "node/session.h"
#include "util/assert.h"

static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

void multi_queue(struct node *n,
                 struct server_request *req,
                 struct session *s,
                 int argc,
                 const char *const *argv,
                 const size_t *argvlen)
{
    size_t bytes = command_argv_bytes(argc, argvlen);
    if (s->tx.len + bytes + 4 > node_command_bytes_max) {
        s->multi_dirty = true;
        conn_reply_error(n, req, "ERR the transaction passes the limit of %d bytes",
                         (int)node_command_bytes_max);
        return;
    }
    lr_assert(buf_put_u32(&s->tx, (uint32_t)bytes) == 0);
    lr_assert(command_put_argv(&s->tx, argc, argv, argvlen) == 0);
    s->tx_n++;
    node_reply_text(n, req, "+QUEUED\r\n");
}

/* The transaction as a write (the form above), and the session back out of MULTI. */
static void exec_submit(struct node *n, struct server_request *req, struct session *s)
{
    struct buf w;
    buf_init(&w);
    lr_assert(buf_put_u32(&w, 0) == 0);
    lr_assert(buf_put_u64(&w, s->watching ? s->watch_index : 0) == 0);
    lr_assert(buf_put_u32(&w, s->watching ? s->watched_n : 0) == 0);
    if (s->watching) {
        lr_assert(buf_append(&w, s->watched.data, s->watched.len) == 0);
    }
    lr_assert(buf_put_u32(&w, s->tx_n) == 0);
    lr_assert(buf_append(&w, s->tx.data, s->tx.len) == 0);
    session_reset_state(s); /* EXEC ends MULTI and every WATCH, as in Redis */
    session_submit(n, s, req, SESSION_WRITE, &w);
    buf_free(&w);
}

static void cmd_exec(struct node *n, struct server_request *req, struct session *s)
{
    if (!s->in_multi) {
        conn_reply_error(n, req, "ERR EXEC without MULTI");
    } else if (s->multi_dirty) {
        session_reset_state(s);
        conn_reply_error(n, req, "EXECABORT Transaction discarded because of previous errors.");
    } else if (s->tx_n == 0 && !s->watching) {
        session_reset_state(s);
        node_reply_text(n, req, "*0\r\n");
    } else {
        exec_submit(n, req, s);
    }
}

static void cmd_watch(struct node *n,
                      struct server_request *req,
                      struct session *s,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen)
{
    if (s->in_multi) {
        conn_reply_error(n, req, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    struct buf keys;
    buf_init(&keys);
    for (int i = 1; i < argc; i++) {
        lr_assert(buf_put_u32(&keys, (uint32_t)argvlen[i]) == 0);
        lr_assert(buf_append(&keys, argv[i], argvlen[i]) == 0);
    }
    session_submit(n, s, req, SESSION_WATCH, &keys);
    buf_free(&keys);
}

void multi_watch_done(struct node *n,
                      struct server_request *req,
                      struct session *s,
                      const void *keys,
                      size_t len,
                      raft_index index)
{
    if (!s->watching || index < s->watch_index) {
        /* Later WATCHes keep the oldest index: older is safe (it can only add conflicts). */
        s->watch_index = index;
        s->watching = true;
    }
    struct cursor c = cursor_make(keys, len);
    while (c.left > 0) {
        uint32_t k;
        const uint8_t *p;
        lr_assert(cursor_get_u32(&c, &k) && cursor_get_bytes(&c, k, &p));
        s->watched_n++;
    }
    lr_assert(buf_append(&s->watched, keys, len) == 0);
    node_reply_text(n, req, "+OK\r\n");
}

bool multi_command(struct node *n,
                   struct server_request *req,
                   struct session *s,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen)
{
    const char *name = argv[0];
    size_t len = argvlen[0];
    static const char *const names[] = {"multi", "exec", "discard", "watch", "unwatch"};
    static const int arity[] = {1, 1, 1, -2, 1};
    int which = -1;
    for (int i = 0; i < 5 && which < 0; i++) {
        which = word_is(name, len, names[i]) ? i : -1;
    }
    if (which < 0) {
        return false;
    }
    if (arity[which] > 0 ? argc != arity[which] : argc < -arity[which]) {
        conn_reply_error(n, req, "ERR wrong number of arguments for '%s' command", names[which]);
        if (s != NULL && s->in_multi) {
            s->multi_dirty = true;
        }
        return true;
    }
    if (s == NULL) {
        conn_reply_error(n, req, "ERR transactions need a client connection");
        return true;
    }
    switch (which) {
        case 0:
            if (s->in_multi) {
                conn_reply_error(n, req, "ERR MULTI calls can not be nested");
                return true;
            }
            s->in_multi = true;
            s->multi_dirty = false;
            s->tx_n = 0;
            buf_reset(&s->tx);
            node_reply_text(n, req, "+OK\r\n");
            return true;
        case 1:
            cmd_exec(n, req, s);
            return true;
        case 2:
            if (!s->in_multi) {
                conn_reply_error(n, req, "ERR DISCARD without MULTI");
                return true;
            }
            session_reset_state(s);
            node_reply_text(n, req, "+OK\r\n");
            return true;
        case 3:
            cmd_watch(n, req, s, argc, argv, argvlen);
            return true;
        default:
            if (!s->in_multi) {
                session_unwatch(s);
            }
            node_reply_text(n, req, "+OK\r\n");
            return true;
    }
}
