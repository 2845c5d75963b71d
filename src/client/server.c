/*
 * The client port. Per connection: a RESP parser fed by every read, and a FIFO of requests
 * in the order their commands arrived. The node answers them in any order; an answer only
 * marks its request done, and once per loop turn (a uv_prepare handle, Redis's beforeSleep)
 * the done requests at the head of each FIFO leave in one uv_write of many buffers. So
 * replies keep command order, and the answers of one turn cost one write per client.
 *
 * Flow control: a client stops being read while its FIFO holds pending_max requests or its
 * unsent replies pass a high-water mark; commands already parsed wait in the parser
 * ("parked") and run on a later turn once the FIFO drains, never from inside server_reply(),
 * so the node is not re-entered while it answers.
 *
 * Lifetime: a client is freed when its handle has closed and every request it handed the
 * node has been answered (a reference count holds both), so server_reply() on a request of
 * a client that has gone away is safe: the answer is dropped. The server itself goes when
 * its last client does, after server_close().
 *
 * This file holds the listener, the work lists of the loop turn, start and close; one
 * connection's reading, FIFO, writing and closing are in conn.c (shared structs in
 * server_internal.h).
 */
#include "client/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/resp.h"
#include "client/server_internal.h"
#include "util/assert.h"

/* Defaults for the options left at 0. */
#define SERVER_CLIENTS_MAX_DEFAULT 10000
#define SERVER_OUT_BYTES_MAX_DEFAULT ((uint64_t)64 * 1024 * 1024)
#define SERVER_PENDING_MAX_DEFAULT 1024

/* Reading pauses while a client has this many unsent reply bytes (or half its out_bytes_max,
 * if that is smaller), so a client that does not read its replies stops feeding us commands
 * long before it is disconnected. */
#define SERVER_OUT_HIGH_BYTES ((uint64_t)1024 * 1024)

#define SERVER_LISTEN_BACKLOG 511

/* What a connection may send before it authenticates (Redis's limits there). */
#define SERVER_UNAUTH_ARGS_MAX 10
#define SERVER_UNAUTH_BULK_BYTES_MAX 16384

static const char server_refused_text[] = "ERR max number of clients reached";

const char *server_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "success";
        case SERVER_ELISTEN:
            return "cannot listen on the address";
        case SERVER_ENOMEM:
            return "out of memory";
        case SERVER_EINVAL:
            return "invalid argument";
        default:
            return "unknown error";
    }
}

/* Frees the server once everything it owns is gone, and tells whoever closed it. */
void server_maybe_closed(struct server *s)
{
    if (!s->closing || s->handles_open > 0 || s->clients != NULL) {
        return;
    }
    void (*closed)(void *arg) = s->closed;
    void *arg = s->closed_arg;
    free(s);
    if (closed != NULL) {
        closed(arg);
    }
}

void server_list_remove(struct server_client *c, int list)
{
    if (!c->in_list[list]) {
        return;
    }
    if (c->list_prev[list] != NULL) {
        c->list_prev[list]->list_next[list] = c->list_next[list];
    } else {
        c->server->lists[list] = c->list_next[list];
    }
    if (c->list_next[list] != NULL) {
        c->list_next[list]->list_prev[list] = c->list_prev[list];
    }
    c->list_prev[list] = c->list_next[list] = NULL;
    c->in_list[list] = false;
}

static void turn_cb(uv_prepare_t *prepare);

void server_list_add(struct server_client *c, int list)
{
    struct server *s = c->server;
    lr_assert(!c->closing);
    if (c->in_list[list]) {
        return;
    }
    c->in_list[list] = true;
    c->list_prev[list] = NULL;
    c->list_next[list] = s->lists[list];
    if (s->lists[list] != NULL) {
        s->lists[list]->list_prev[list] = c;
    }
    s->lists[list] = c;
    uv_prepare_start(&s->turn, turn_cb);
}

static void turn_cb(uv_prepare_t *prepare)
{
    struct server *s = prepare->data;
    server_enforce_memory(s); /* answers given since the last turn may have passed the cap */
    /* Running input can answer requests (dirty) and writing can unpark input (ready), so
     * go on until both lists are empty; each pass only consumes bytes already read. */
    while (s->lists[SERVER_LIST_READY] != NULL || s->lists[SERVER_LIST_DIRTY] != NULL) {
        while (s->lists[SERVER_LIST_READY] != NULL) {
            struct server_client *c = s->lists[SERVER_LIST_READY];
            server_list_remove(c, SERVER_LIST_READY);
            client_process_input(c);
        }
        while (s->lists[SERVER_LIST_DIRTY] != NULL) {
            struct server_client *c = s->lists[SERVER_LIST_DIRTY];
            server_list_remove(c, SERVER_LIST_DIRTY);
            client_flush(c);
            client_update(c);
        }
    }
    uv_prepare_stop(&s->turn);
}

static void server_connection_cb(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status < 0 || s->closing) {
        return; /* libuv retries: a failed accept is not the listener's end */
    }
    struct server_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->server = s;
    c->refs = 1;
    c->proto = 2;
    resp_parser_init(&c->parser, s->options.auth_required ? &s->unauth_limits : &s->options.limits);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->next = s->clients;
    if (s->clients != NULL) {
        s->clients->prev = c;
    }
    s->clients = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        client_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->clients_active >= s->options.clients_max) {
        client_fail(c, server_refused_text);
        return;
    }
    c->counted = true;
    s->clients_active++;
    if (s->cb.open != NULL) {
        c->session = s->cb.open(s->cb.arg);
        c->opened = true;
    }
    client_update(c);
}

static void server_handle_close_cb(uv_handle_t *handle)
{
    struct server *s = handle->data;
    lr_assert(s->handles_open > 0);
    s->handles_open--;
    server_maybe_closed(s);
}

static int server_addr(const struct server_options *o, struct sockaddr_storage *addr)
{
    if (strchr(o->host, ':') != NULL) {
        return uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)addr);
    }
    return uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)addr);
}

/*
 * Opens a listening socket without libuv, so that a start that fails (the usual failure:
 * the port is taken) leaves no handle behind for the caller's loop to close. Returns the
 * socket, or a negative errno.
 */
static int server_listen_socket(const struct sockaddr_storage *addr)
{
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return -errno;
    }
    int on = 1;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (const struct sockaddr *)addr, len) != 0 ||
        listen(fd, SERVER_LISTEN_BACKLOG) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* A server with o's options, the defaults filled in (NULL if out of memory). */
static struct server *server_new(uv_loop_t *loop,
                                 const struct server_options *o,
                                 const struct server_callbacks *cb)
{
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->loop = loop;
    s->options = *o;
    if (s->options.clients_max == 0) {
        s->options.clients_max = SERVER_CLIENTS_MAX_DEFAULT;
    }
    if (s->options.out_bytes_max == 0) {
        s->options.out_bytes_max = SERVER_OUT_BYTES_MAX_DEFAULT;
    }
    if (s->options.pending_max == 0) {
        s->options.pending_max = SERVER_PENDING_MAX_DEFAULT;
    }
    struct resp_limits l;
    resp_limits_default(&l);
    struct resp_limits *o_l = &s->options.limits;
    o_l->args_max = o_l->args_max != 0 ? o_l->args_max : l.args_max;
    o_l->bulk_bytes_max = o_l->bulk_bytes_max != 0 ? o_l->bulk_bytes_max : l.bulk_bytes_max;
    o_l->inline_bytes_max = o_l->inline_bytes_max != 0 ? o_l->inline_bytes_max : l.inline_bytes_max;
    o_l->line_bytes_max = o_l->line_bytes_max != 0 ? o_l->line_bytes_max : l.line_bytes_max;
    o_l->query_bytes_max = o_l->query_bytes_max != 0 ? o_l->query_bytes_max : l.query_bytes_max;
    s->unauth_limits = *o_l;
    s->unauth_limits.args_max = SERVER_UNAUTH_ARGS_MAX;
    s->unauth_limits.bulk_bytes_max = SERVER_UNAUTH_BULK_BYTES_MAX;
    s->out_high_bytes = s->options.out_bytes_max / 2;
    if (s->out_high_bytes > SERVER_OUT_HIGH_BYTES) {
        s->out_high_bytes = SERVER_OUT_HIGH_BYTES;
    }
    if (s->out_high_bytes == 0) {
        s->out_high_bytes = 1;
    }
    s->cb = *cb;
    s->options.host = NULL; /* not ours to keep */
    return s;
}

int server_start(struct server **out,
                 uv_loop_t *loop,
                 const struct server_options *o,
                 const struct server_callbacks *cb,
                 char *errmsg,
                 size_t errmsg_size)
{
    lr_assert(out != NULL);
    lr_assert(loop != NULL);
    lr_assert(cb != NULL);
    lr_assert(cb->command != NULL);
    *out = NULL;
    if (o == NULL || o->host == NULL || o->port < 0 || o->port > 65535) {
        snprintf(errmsg, errmsg_size, "server: bad host or port");
        return SERVER_EINVAL;
    }
    /* One reply goes into one uv_buf_t, whose length is an unsigned int. */
    if (o->out_bytes_max > UINT32_MAX) {
        snprintf(errmsg, errmsg_size, "server: out_bytes_max above 4 GiB");
        return SERVER_EINVAL;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    if (server_addr(o, &addr) != 0) {
        snprintf(errmsg, errmsg_size, "server: '%s' is not a numeric IPv4 or IPv6 address",
                 o->host);
        return SERVER_EINVAL;
    }
    int fd = server_listen_socket(&addr);
    if (fd < 0) {
        snprintf(errmsg, errmsg_size, "server: cannot listen on %s port %d: %s", o->host, o->port,
                 strerror(-fd));
        return SERVER_ELISTEN;
    }
    struct server *s = server_new(loop, o, cb);
    if (s == NULL) {
        close(fd);
        snprintf(errmsg, errmsg_size, "server: out of memory");
        return SERVER_ENOMEM;
    }

    uv_prepare_init(loop, &s->turn);
    s->turn.data = s;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles_open = 2;
    int rv = uv_tcp_open(&s->listener, fd);
    if (rv != 0) {
        close(fd);
    } else {
        rv = uv_listen((uv_stream_t *)&s->listener, SERVER_LISTEN_BACKLOG, server_connection_cb);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "server: cannot listen on %s port %d: %s", o->host, o->port,
                 uv_strerror(rv));
        /* Not expected on a socket that listens already, but the handles are initialized, so
         * they close like any others and the loop's next turn frees the server. closed is
         * NULL: a start that fails calls nothing back. */
        s->closing = true;
        uv_close((uv_handle_t *)&s->turn, server_handle_close_cb);
        uv_close((uv_handle_t *)&s->listener, server_handle_close_cb);
        return SERVER_ELISTEN;
    }
    *out = s;
    return 0;
}

uint32_t server_clients(const struct server *s)
{
    return s->clients_active;
}

void server_close(struct server *s, void (*closed)(void *arg), void *arg)
{
    lr_assert(!s->closing);
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    uv_close((uv_handle_t *)&s->turn, server_handle_close_cb);
    uv_close((uv_handle_t *)&s->listener, server_handle_close_cb);
    /* Replies answered before the close go out first, as far as the socket takes them
     * at once: waiting for slow readers would let one client hold the shutdown. */
    for (struct server_client *c = s->clients; c != NULL; c = c->next) {
        server_list_remove(c, SERVER_LIST_DIRTY);
        client_flush(c);
        client_close(c);
    }
}
