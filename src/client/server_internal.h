/*
 * What the client port's two files share: server.c (the listener, the per-turn work
 * lists, start and close) and conn.c (one connection: reading and parsing, the FIFO of
 * requests, in-order replies, limits, closing). The design is described at the top of
 * server.c.
 */
#ifndef LUARAFT_CLIENT_SERVER_INTERNAL_H
#define LUARAFT_CLIENT_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "client/resp.h"
#include "client/server.h"

/* One read from the socket, in bytes; the parser copies what it is fed, so one buffer serves
 * every client. */
#define SERVER_READ_BYTES (64 * 1024)

/* An idle client keeps an input buffer of up to this many bytes; a larger one is freed
 * once it holds no partial command (Redis shrinks idle query buffers too). */
#define CLIENT_INPUT_KEEP_BYTES ((size_t)64 * 1024)

/* The work lists a client may be on. */
enum {
    SERVER_LIST_READY, /* parked input that may now run */
    SERVER_LIST_DIRTY, /* answered replies at the head of the FIFO, to write */
    SERVER_LISTS,
};

struct server_client;

struct server_request
{
    struct server_client *client;
    struct server_request *next; /* in the client's FIFO, then in a write */
    char *reply;                 /* the answer, once done */
    size_t reply_len;
    void *tag;
    int proto; /* the connection's RESP version when the command came */
    bool done;
};

/* One uv_write carrying the replies of consecutive answered requests. */
struct server_write
{
    uv_write_t req;
    struct server_client *client;
    struct server_request *first; /* the requests it carries, freed when it completes */
    uint64_t bytes;
};

struct server_client
{
    uv_tcp_t tcp;
    uv_shutdown_t shutdown;
    struct server *server;
    struct server_client *prev, *next; /* every client of the server */
    /* Links in the server's work lists (SERVER_LIST_*), for the next loop turn. */
    struct server_client *list_prev[SERVER_LISTS], *list_next[SERVER_LISTS];
    bool in_list[SERVER_LISTS];
    struct resp_parser parser;
    void *session;                      /* from callbacks.open */
    int proto;                          /* RESP version of the next command: 2 until HELLO 3 */
    bool opened;                        /* callbacks.open was called: close must follow */
    struct server_request *head, *tail; /* requests whose replies are not yet written */
    uint32_t fifo_len;
    uint32_t writes;     /* uv_writes in flight */
    uint64_t out_bytes;  /* answered but not yet written reply bytes */
    uint64_t held_bytes; /* this client's share of server->held_bytes (client_memory.c) */
    /* What keeps the struct alive: the open handle (1) and every request allocated. */
    uint32_t refs;
    bool counted; /* in server->clients_active */
    bool reading;
    bool in_process;        /* process_input() is on the stack */
    bool parked;            /* the parser may hold commands not taken because of a limit */
    bool eof;               /* the client sent its last byte */
    bool close_after_flush; /* after the pending replies, close (protocol error, refusal) */
    bool shutting;          /* uv_shutdown issued */
    bool closing;           /* uv_close issued: pending requests are answered into the void */
};

struct server
{
    uv_loop_t *loop;
    uv_tcp_t listener;
    /* Once per loop turn, before the loop blocks (Redis's beforeSleep): runs parked input
     * whose limits have cleared, then writes every client's answered replies, so replies
     * the node gives in one turn leave in one uv_write per client. */
    uv_prepare_t turn;
    struct server_options options;
    struct server_callbacks cb;
    uint64_t out_high_bytes;
    struct server_client *clients;
    struct server_client *lists[SERVER_LISTS];
    uint32_t clients_active;
    uint64_t held_bytes;              /* every client's held bytes together (client_memory.c) */
    struct resp_limits unauth_limits; /* before AUTH, with options.auth_required */
    uint64_t evicted;
    int handles_open; /* listener and turn */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
    char read_buf[SERVER_READ_BYTES];
};

/* server.c: frees the server once everything it owns is gone, and tells whoever closed
 * it. */
void server_maybe_closed(struct server *s);

/* server.c: puts c on, or takes it off, one of the server's work lists (SERVER_LIST_*)
 * for the next loop turn. */
void server_list_add(struct server_client *c, int list);
void server_list_remove(struct server_client *c, int list);

/* conn.c: what the server does to a connection. */
void client_close(struct server_client *c);
void client_fail(struct server_client *c, const char *text);
void client_update(struct server_client *c);
void client_flush(struct server_client *c);
void client_process_input(struct server_client *c);

/* client_memory.c: brings c's share of the server's held bytes up to date (call after
 * anything that changes its parser's buffer or its out_bytes); evicts the largest
 * clients while the sum is above clients_bytes_max (call where closing a client is safe:
 * from libuv's callbacks, never from inside server_reply). */
void client_account(struct server_client *c);
void server_enforce_memory(struct server *s);

#endif
