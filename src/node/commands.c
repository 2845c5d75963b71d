/*
 * Client commands: the built-in ones are answered here and never logged; the script's
 * reads (M.reads) join this turn's ReadIndex batch; every other command is a write,
 * proposed on the leader or forwarded to it by a follower.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/resp.h"
#include "command.h"
#include "fsm/fsm.h"
#include "node/internal.h"
#include "util/assert.h"

static bool name_is(const char *s, size_t len, const char *name)
{
    size_t k = strlen(name);
    if (len != k) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        char ch = s[i];
        if (ch >= 'a' && ch <= 'z') {
            ch = (char)(ch - 'a' + 'A');
        }
        if (ch != name[i]) {
            return false;
        }
    }
    return true;
}

static const char *role_text(struct node *n)
{
    if (n->dur.store_failed) {
        return "failed";
    }
    if (!raft_is_voter(n->raft, n->c->id)) {
        return "learner";
    }
    switch (raft_role_of(n->raft)) {
        case RAFT_LEADER:
            return "leader";
        case RAFT_CANDIDATE:
        case RAFT_PRECANDIDATE:
            return "candidate";
        default:
            return "follower";
    }
}

struct text
{
    char s[node_info_bytes_max];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->len, sizeof t->s - t->len, fmt, ap);
    va_end(ap);
    if (k > 0 && (size_t)k < sizeof t->s - t->len) {
        t->len += (size_t)k;
    }
}

static const char *leader_addr(struct node *n, raft_id leader)
{
    if (leader == n->c->id) {
        return n->client_addr;
    }
    const char *a = leader != 0 ? n->io->peer_client_addr(n->io->arg, leader) : NULL;
    return a != NULL ? a : "";
}

static void reply_info(struct node *n, struct server_request *req)
{
    struct text *t = calloc(1, sizeof *t);
    lr_assert(t != NULL);
    raft_id leader = raft_leader_of(n->raft);
    put(t, "# Raft\r\n");
    put(t, "role:%s\r\n", role_text(n));
    put(t, "node_id:%" PRIu64 "\r\n", n->c->id);
    put(t, "term:%" PRIu64 "\r\n", raft_current_term(n->raft));
    put(t, "leader_id:%" PRIu64 "\r\n", leader);
    put(t, "leader_addr:%s\r\n", leader_addr(n, leader));
    put(t, "commit_index:%" PRIu64 "\r\n", raft_commit_index(n->raft));
    put(t, "applied_index:%" PRIu64 "\r\n", n->applied);
    put(t, "last_log_index:%" PRIu64 "\r\n", raft_last_index(n->raft));
    put(t, "snapshot_index:%" PRIu64 "\r\n", n->snap.index);
    put(t, "log_cache_bytes:%" PRIu64 "\r\n", n->cache.bytes);
    put(t, "log_bytes:%" PRIu64 "\r\n", n->cache.log_bytes);
    put(t, "store_failed:%s\r\n", n->dur.store_failed ? "yes" : "no");
    put(t, "clients:%" PRIu32 "\r\n", n->io->clients(n->io->arg));
    put(t, "script:%s\r\n", n->script_name);
    put(t, "script_hash:%s\r\n", n->script_hash);
    for (int i = 0; i < n->n_members; i++) {
        raft_id id = n->members[i].id;
        if (id == n->c->id) {
            continue;
        }
        struct raft_peer_info pi;
        bool known = raft_peer_info(n->raft, id, &pi);
        put(t, "peer_%" PRIu64 ":match=%" PRIu64 ",state=%s,connected=%s\r\n", id,
            known ? pi.match : 0, known && pi.state != NULL ? pi.state : "unknown",
            n->io->peer_connected(n->io->arg, id) ? "yes" : "no");
    }
    struct buf b;
    buf_init(&b);
    resp_put_bulk(&b, t->s, t->len);
    node_reply(n, req, b.data, b.len);
    buf_free(&b);
    free(t);
}

static void reply_ping(struct node *n,
                       struct server_request *req,
                       int argc,
                       const char *const *argv,
                       const size_t *argvlen)
{
    if (argc != 2) {
        node_reply_text(n, req, "+PONG\r\n");
        return;
    }
    struct buf b;
    buf_init(&b);
    resp_put_bulk(&b, argv[1], argvlen[1]);
    node_reply(n, req, b.data, b.len);
    buf_free(&b);
}

/* Commands the node answers itself; returns false for the script's commands. */
static bool builtin(struct node *n,
                    struct server_request *req,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
    if (name_is(argv[0], argvlen[0], "PING")) {
        reply_ping(n, req, argc, argv, argvlen);
    } else if (name_is(argv[0], argvlen[0], "RAFT.INFO")) {
        reply_info(n, req);
    } else if (n->dur.store_failed) {
        node_reply_text(n, req,
                        "-ERR this node's store failed (see its log): it serves nothing until "
                        "it is restarted\r\n");
    } else if (name_is(argv[0], argvlen[0], "RAFT.SNAPSHOT")) {
        snapshots_request(n, req);
    } else {
        return false;
    }
    return true;
}

void commands_route(struct node *n,
                    struct server_request *req,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
    if (n->stopping) {
        node_reply_text(n, req, node_down_reply);
        return;
    }
    if (argc < 1) {
        node_reply_text(n, req, "-ERR empty command\r\n");
        return;
    }
    if (builtin(n, req, argc, argv, argvlen)) {
        return;
    }
    size_t bytes = command_argv_bytes(argc, argvlen);
    if (bytes > node_command_bytes_max) {
        char text[160];
        snprintf(text, sizeof text,
                 "-ERR the command takes %zu bytes, more than the limit of %d bytes\r\n", bytes,
                 (int)node_command_bytes_max);
        node_reply_text(n, req, text);
        return;
    }
    struct buf blob;
    buf_init(&blob);
    if (command_put_argv(&blob, argc, argv, argvlen) != 0) {
        buf_free(&blob);
        node_reply_text(n, req, "-ERR out of memory\r\n");
        return;
    }
    raft_id leader = raft_leader_of(n->raft);
    if (fsm_is_read(n->fsm, argv[0], argvlen[0])) {
        if (leader == 0) {
            buf_free(&blob);
            node_reply_text(n, req, "-TRYAGAIN no leader; retry\r\n");
            return;
        }
        reads_take(n, req, blob.data, blob.len); /* the batch owns the bytes now */
        return;
    }
    if (raft_role_of(n->raft) == RAFT_LEADER) {
        struct origin o = {req, 0, 0};
        writes_take(n, blob.data, blob.len, &o);
    } else if (leader != 0) {
        writes_forward(n, req, leader, blob.data, blob.len);
    } else {
        node_reply_text(n, req, "-TRYAGAIN no leader; retry\r\n");
    }
    buf_free(&blob);
}
