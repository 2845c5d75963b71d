/*
 * Client commands, routed: the node's own (connection.c, never logged); MULTI and WATCH
 * (multi.c); and the script's, checked against its command table (Redis's errors for an
 * unknown command or a wrong number of arguments, before anything is logged), then run in
 * the connection's order (session.c): reads join a ReadIndex batch, writes are proposed on
 * the leader or forwarded to it by a follower.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "command.h"
#include "fsm/fsm.h"
#include "node/cluster_view.h"
#include "node/auth.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "node/session.h"
#include "util/assert.h"

static bool name_is(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

static const char *leader_addr(struct node *n, raft_id leader)
{
    if (leader == n->c->id) {
        return n->client_addr;
    }
    const char *a = leader != 0 ? n->io->peer_client_addr(n->io->arg, leader) : NULL;
    return a != NULL ? a : "";
}

static const char no_leader_reply[] = "-TRYAGAIN no leader; retry\r\n";

struct first_key
{
    bool found;
    uint16_t slot;
};

static void note_first_key(void *arg, const char *key, size_t len)
{
    struct first_key *k = arg;
    if (!k->found) {
        k->found = true;
        k->slot = cluster_keyslot(key, len);
    }
}

/* The hash slot of a command's first key (0 without keys, and for a transaction). */
static uint16_t first_key_slot(struct node *n, const void *blob, size_t len)
{
    int argc;
    const char **argv;
    size_t *argvlen;
    struct first_key k = {false, 0};
    if (transaction_is(blob, len) || !command_get_argv(blob, len, &argc, &argv, &argvlen)) {
        return 0;
    }
    const struct fsm_command *c = argc > 0 ? fsm_command_find(n->fsm, argv[0], argvlen[0]) : NULL;
    if (c != NULL) {
        fsm_command_keys(c, argc, argv, argvlen, note_first_key, &k);
    }
    free(argv);
    free(argvlen);
    return k.slot;
}

/* Where a write on a follower goes for a client that asked for redirects (RAFT.REDIRECT
 * ON): Redis Cluster's -MOVED with the slot of its first key and the leader's client
 * address, which cluster clients follow (the whole cluster is one shard). */
static void reply_moved(struct node *n,
                        struct server_request *req,
                        raft_id leader,
                        const struct buf *blob)
{
    const char *addr = leader_addr(n, leader);
    if (addr[0] == '\0') {
        node_reply_text(n, req, no_leader_reply);
        return;
    }
    char text[node_host_bytes_max + 64];
    snprintf(text, sizeof text, "-MOVED %u %s\r\n",
             (unsigned)first_key_slot(n, blob->data, blob->len), addr);
    node_reply_text(n, req, text);
}

void session_run(struct node *n,
                 struct session *s,
                 struct server_request *req,
                 enum session_kind kind,
                 struct buf *blob)
{
    raft_id leader = raft_leader_of(n->raft);
    if (n->shutting_down) {
        node_reply_text(n, req, node_down_reply); /* the client goes on at another node */
        return;
    }
    if (kind == SESSION_READ || kind == SESSION_WATCH) {
        if (leader == 0) {
            node_reply_text(n, req, no_leader_reply);
            return;
        }
        /* The batch owns the bytes now. */
        reads_take(n, req, kind == SESSION_WATCH ? s : NULL, blob->data, blob->len);
        buf_init(blob);
        return;
    }
    if (raft_role_of(n->raft) == RAFT_LEADER) {
        struct origin o = {req, 0, 0};
        writes_take(n, blob->data, blob->len, &o);
    } else if (leader != 0 && s != NULL && s->redirect) {
        reply_moved(n, req, leader, blob);
    } else if (leader != 0) {
        writes_forward(n, req, leader, blob->data, blob->len);
    } else {
        node_reply_text(n, req, no_leader_reply);
    }
}

/* The script's command: checked, encoded, then run in the connection's order. */
static void script_command(struct node *n,
                           struct server_request *req,
                           struct session *s,
                           int argc,
                           const char *const *argv,
                           const size_t *argvlen)
{
    char err[fsm_command_err_bytes_max];
    const struct fsm_command *c = fsm_command_check(n->fsm, argc, argv, argvlen, err, sizeof err);
    if (c == NULL && err[0] != '\0') {
        if (s != NULL && s->in_multi) {
            s->multi_dirty = true;
        }
        conn_reply_error(n, req, "%s", err);
        return;
    }
    size_t bytes = command_argv_bytes(argc, argvlen);
    if (bytes > node_command_bytes_max) {
        if (s != NULL && s->in_multi) {
            s->multi_dirty = true;
        }
        conn_reply_error(n, req, "ERR the command takes %zu bytes, more than the limit of %d bytes",
                         bytes, (int)node_command_bytes_max);
        return;
    }
    if (s != NULL && s->in_multi) {
        multi_queue(n, req, s, argc, argv, argvlen);
        return;
    }
    struct buf blob;
    buf_init(&blob);
    if (command_put_argv(&blob, argc, argv, argvlen) != 0) {
        buf_free(&blob);
        node_reply_text(n, req, "-ERR out of memory\r\n");
        return;
    }
    bool read = c != NULL ? c->read : fsm_is_read(n->fsm, argv[0], argvlen[0]);
    enum session_kind kind = read ? SESSION_READ : SESSION_WRITE;
    if (s != NULL) {
        session_submit(n, s, req, kind, &blob);
    } else {
        session_run(n, NULL, req, kind, &blob);
    }
    buf_free(&blob);
}

void commands_route(struct node *n,
                    struct server_request *req,
                    struct session *s,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen)
{
    n->commands_processed++;
    if (n->stopping) {
        node_reply_text(n, req, node_down_reply);
        return;
    }
    if (argc < 1) {
        node_reply_text(n, req, "-ERR empty command\r\n");
        return;
    }
    if (auth_gate(n, req, s, argv[0], argvlen[0])) {
        return;
    }
    if (multi_command(n, req, s, argc, argv, argvlen)) {
        return;
    }
    if (s != NULL && s->in_multi && connection_find(argv[0], argvlen[0]) != NULL &&
        !name_is(argv[0], argvlen[0], "QUIT") && !name_is(argv[0], argvlen[0], "RESET")) {
        /* The node's own commands are not log entries, so they cannot run inside one. */
        s->multi_dirty = true;
        conn_reply_error(n, req, "ERR %.*s is answered by the node and cannot be queued in MULTI",
                         (int)(argvlen[0] > 64 ? 64 : argvlen[0]), argv[0]);
        return;
    }
    if (connection_command(n, req, s, argc, argv, argvlen)) {
        return;
    }
    if (n->dur.store_failed) {
        if (s != NULL && s->in_multi) {
            s->multi_dirty = true;
        }
        char reply[256];
        node_reply_text(n, req,
                        durability_failed_reply(n, ": it serves nothing until it is restarted",
                                                reply, sizeof reply));
        return;
    }
    script_command(n, req, s, argc, argv, argvlen);
}
