/*
 * The client port: RESP over libuv TCP. Accepts connections, parses each one's pipelined
 * commands with resp.c (multibulk and inline, so redis-cli and nc both work), hands every
 * command to the node, and writes the answers back in the order the commands came on
 * that connection, whatever order the node answers them in.
 *
 * A protocol error gets Redis's error reply and the connection is closed after it. A
 * client whose unsent replies pass out_bytes_max is disconnected. When the bytes every
 * client holds together (unparsed input and unsent replies) pass clients_bytes_max, the
 * client holding the most is evicted, as Redis's maxmemory-clients does, until they are
 * below it again (client_memory.c). A connection that goes
 * away keeps its pending requests alive until the node answers them (the answers are then
 * dropped), so the node never holds a dangling handle.
 *
 * Threading: loop thread only. Errors: 0 or a negative SERVER_E* code.
 */
#ifndef LUARAFT_CLIENT_SERVER_H
#define LUARAFT_CLIENT_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client/resp.h"

enum {
    SERVER_ELISTEN = -500, /* cannot listen on the address */
    SERVER_ENOMEM = -501,
    SERVER_EINVAL = -502,
};

const char *server_strerror(int rv);

struct server_options
{
    const char *host; /* numeric IPv4 or IPv6 */
    int port;
    uint32_t clients_max;
    uint64_t out_bytes_max; /* unsent reply bytes per client before it is disconnected */
    uint32_t pending_max;   /* commands awaiting an answer per client; reading pauses */
    /* Per client: the parser's limits; a field left 0 keeps Redis's default. */
    struct resp_limits limits;
    /* Every client's held bytes together; past it the largest client is evicted. 0: no
     * limit. */
    uint64_t clients_bytes_max;
    /* Connections start unauthenticated, held to small limits (10 arguments of at most
     * 16 KiB each, as Redis holds a client before AUTH) until server_set_authenticated. */
    bool auth_required;
};

/* What the clients hold, for INFO and metrics. */
struct server_memory
{
    uint64_t held_bytes;    /* every client's unparsed input and unsent replies, allocated */
    uint64_t largest_bytes; /* the one client holding the most */
    uint64_t evicted;       /* clients evicted for clients_bytes_max since the start */
};

/* One client command awaiting its answer. */
struct server_request;

struct server_callbacks
{
    void *arg;
    /* A connection was accepted: returns its session, the node's state of it (NULL is a
     * valid session), handed to every command of the connection. Optional. */
    void *(*open)(void *arg);
    /* The connection is gone; commands of it not yet answered still are, later (into the
     * void). Called once per opened session, also when the server closes. Optional. */
    void (*close)(void *arg, void *session);
    /* A command. argv lives during the call only; the node must eventually call
     * server_reply(req, ...) exactly once. */
    void (*command)(void *arg,
                    struct server_request *req,
                    void *session,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen);
};

struct server;

int server_start(struct server **out,
                 uv_loop_t *loop,
                 const struct server_options *o,
                 const struct server_callbacks *cb,
                 char *errmsg,
                 size_t errmsg_size);

/* Answers req with RESP bytes (copied); req is invalid afterwards. Replies may use RESP3
 * types: a connection that speaks RESP2 gets them converted (client/resp3.h). */
void server_reply(struct server_request *req, const void *resp, size_t len);

/* From req on (its own reply included), the connection speaks RESP version proto (2 or 3;
 * every connection starts with 2). */
void server_set_protocol(struct server_request *req, int proto);

/* Closes req's connection once req's reply is written (QUIT): commands after it are not
 * read. */
void server_close_after(struct server_request *req);

/* req's connection has authenticated (on: the full limits) or signed out (RESET: the
 * small ones again). Nothing if the server does not require authentication. */
void server_set_authenticated(struct server_request *req, bool on);

/* A word the node keeps with a request until it is answered (NULL at first). */
void server_request_set_tag(struct server_request *req, void *tag);
void *server_request_tag(const struct server_request *req);

/* Number of connected clients, for RAFT.INFO. */
uint32_t server_clients(const struct server *s);
void server_memory(const struct server *s, struct server_memory *m);

/* Closes the listener and every connection, then calls closed(arg) once the last handle
 * is closed. Answer every pending request first. */
void server_close(struct server *s, void (*closed)(void *arg), void *arg);

#endif
