/*
 * A session: the node's state of one client connection. The world opens one per accepted
 * connection (node_session_open) and hands it with every command of that connection;
 * commands without one (a simulator's clients, by choice) run at once, in no order.
 *
 *   session.c     lifetime, and the order of a connection's commands (phases)
 *   connection.c  the commands about the connection itself: HELLO, CLIENT, SELECT, ...
 *   multi.c       MULTI/EXEC/DISCARD and WATCH/UNWATCH
 *
 * A session lives until its connection is closed and its last command in flight is
 * answered (refs).
 */
#ifndef LUARAFT_NODE_SESSION_H
#define LUARAFT_NODE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"
#include "util/buf.h"

struct node;
struct server_request;
struct deferred;

/* What a command waits for, and what may run beside it (session.c). */
enum session_kind {
    SESSION_IDLE = 0,
    SESSION_READ = 1,  /* the script's reads: one ReadIndex batch */
    SESSION_WRITE = 2, /* writes and transactions: proposed, or forwarded to the leader */
    SESSION_WATCH = 3, /* WATCH: a read of the node's own (its index), in the reads' phase */
};

struct session
{
    struct session *prev, *next; /* the node's sessions */
    uint64_t id;                 /* CLIENT ID */
    uint32_t refs;               /* the connection (until closed) and each command in flight */
    bool closed;
    int proto; /* RESP version: 2, or 3 after HELLO 3 */
    char *name, *lib_name, *lib_ver;
    uint64_t opened_ms;

    /* Order. */
    enum session_kind phase; /* of the commands in flight */
    uint32_t inflight;
    struct deferred *queue, *queue_tail;
    bool draining;

    /* MULTI: the queued commands, each an argv blob after its u32 length. */
    bool in_multi;
    bool multi_dirty; /* a command was refused while queued: EXEC aborts */
    struct buf tx;
    uint32_t tx_n;

    /* WATCH: the keys (each after its u32 length) and the applied index they were
     * watched at. */
    bool watching;
    struct buf watched;
    uint32_t watched_n;
    raft_index watch_index;

    bool redirect;      /* RAFT.REDIRECT ON: writes on a follower get -MOVED, not forwarded */
    bool authenticated; /* AUTH given, or no password is set (auth.c) */
};

struct session *session_open(struct node *n);
void session_close(struct node *n, struct session *s);
/* Forgets MULTI and WATCH state. */
void session_reset_state(struct session *s);
void session_unwatch(struct session *s);

/* Runs a command of kind now, or queues it behind the commands before it; blob (what
 * session_run needs, taken: blob is left empty) goes with it. */
void session_submit(struct node *n,
                    struct session *s,
                    struct server_request *req,
                    enum session_kind kind,
                    struct buf *blob);
/* A command of s in flight was answered (node_reply, from the request's tag). */
void session_answered(struct node *n, struct session *s);
/* The node stops: waiting commands are answered. */
void sessions_stop(struct node *n);
void sessions_free(struct node *n);

/* commands.c: starts a command that its session let through. */
void session_run(struct node *n,
                 struct session *s,
                 struct server_request *req,
                 enum session_kind kind,
                 struct buf *blob);

/* connection.c: answers the node's own commands; false for the script's. */
bool connection_command(struct node *n,
                        struct server_request *req,
                        struct session *s,
                        int argc,
                        const char *const *argv,
                        const size_t *argvlen);

/* multi.c */
/* Inside MULTI: queues a script command (already checked against the table). */
void multi_queue(struct node *n,
                 struct server_request *req,
                 struct session *s,
                 int argc,
                 const char *const *argv,
                 const size_t *argvlen);
/* MULTI, EXEC, DISCARD, WATCH, UNWATCH; false for other commands. */
bool multi_command(struct node *n,
                   struct server_request *req,
                   struct session *s,
                   int argc,
                   const char *const *argv,
                   const size_t *argvlen);
/* A WATCH's ReadIndex round is through: every write up to index took effect before it. */
void multi_watch_done(struct node *n,
                      struct server_request *req,
                      struct session *s,
                      const void *keys,
                      size_t len,
                      raft_index index);

#endif
