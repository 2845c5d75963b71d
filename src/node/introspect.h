/*
 * The node's own commands (connection.c holds their table): the shape of a handler, and
 * the ones about the node and the cluster rather than the connection (introspect.c).
 */
#ifndef LUARAFT_NODE_INTROSPECT_H
#define LUARAFT_NODE_INTROSPECT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct node;
struct session;
struct server_request;

/* The Redis version the node answers as (HELLO, INFO): the one whose commands and replies
 * it follows. */
#define NODE_REDIS_VERSION "7.0.0"

/* One call of a node command: the command and who waits for it. */
struct conn_call
{
    struct node *n;
    struct server_request *req;
    struct session *s; /* NULL for a client without a connection (a simulator's) */
    int argc;
    const char *const *argv;
    const size_t *argvlen;
};

typedef void conn_handler(const struct conn_call *c);

struct conn_command
{
    const char *name;  /* lowercase, as COMMAND shows it */
    int arity;         /* Redis's convention: N exactly, -N at least N */
    const char *flags; /* COMMAND's flags, space-separated */
    conn_handler *fn;
};

/* connection.c: the table, sorted by name. */
const struct conn_command *connection_find(const char *name, size_t len);
size_t connection_count(void);
const struct conn_command *connection_at(size_t i);
void conn_reply_buf(struct node *n, struct server_request *req, struct buf *b); /* frees b */
__attribute__((format(printf, 3, 4))) void conn_reply_error(struct node *n,
                                                            struct server_request *req,
                                                            const char *fmt,
                                                            ...);

struct fsm_job_query;

/* introspect.c */
/* The fsm thread answered INFO's keyspace query. */
void introspect_info_done(struct node *n, struct fsm_job_query *q);
conn_handler introspect_command, introspect_config, introspect_info, introspect_cluster,
    introspect_raft_info, introspect_raft_snapshot, introspect_raft_backup, introspect_raft_check;

/* transfer.c: RAFT.TRANSFER [id]. */
conn_handler transfer_command;
/* members.c: RAFT.ADD id raft-address [client-address], RAFT.REMOVE id, RAFT.MEMBERS. */
conn_handler members_add_command, members_remove_command, members_info_command;

#endif
