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
#include "util/assert.h"
#include "util/buf.h"

/* Defaults for the options left at 0. */
#define SERVER_CLIENTS_MAX_DEFAULT 10000
#define SERVER_OUT_BYTES_MAX_DEFAULT ((uint64_t)64 * 1024 * 1024)
#define SERVER_PENDING_MAX_DEFAULT 1024

/* Reading pauses while a client has this many unsent reply bytes (or half its out_bytes_max,
 * if that is smaller), so a client that does not read its replies stops feeding us commands
 * long before it is disconnected. */
#define SERVER_OUT_HIGH_BYTES ((uint64_t)1024 * 1024)

/* One read from the socket, in bytes; the parser copies what it is fed, so one buffer serves
 * every client. */
#define SERVER_READ_BYTES (64 * 1024)

/* Replies gathered into one uv_write without allocating a buffer array. */
#define SERVER_WRITE_BUFS_INLINE 16

#define SERVER_LISTEN_BACKLOG 511

static const char server_refused_text[] = "ERR max number of clients reached";

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
    struct server_request *head, *tail; /* requests whose replies are not yet written */
    uint32_t fifo_len;
    uint32_t writes;    /* uv_writes in flight */
    uint64_t out_bytes; /* answered but not yet written reply bytes */
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
    int handles_open; /* listener and turn */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
    char read_buf[SERVER_READ_BYTES];
};

static void client_update(struct server_client *c);
static void client_close(struct server_client *c);
static void process_input(struct server_client *c);

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
static void server_maybe_closed(struct server *s)
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

static void list_remove(struct server_client *c, int list)
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

static void list_add(struct server_client *c, int list)
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

static void client_unref(struct server_client *c)
{
    lr_assert(c->refs > 0);
    c->refs--;
    if (c->refs > 0) {
        return;
    }
    lr_assert(c->closing);
    lr_assert(c->head == NULL);
    lr_assert(!c->in_list[SERVER_LIST_READY]);
    lr_assert(!c->in_list[SERVER_LIST_DIRTY]);
    struct server *s = c->server;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->clients = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    resp_parser_close(&c->parser);
    free(c);
    server_maybe_closed(s);
}

static struct server_request *request_new(struct server_client *c)
{
    struct server_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    req->client = c;
    c->refs++;
    return req;
}

static void request_free(struct server_request *req)
{
    struct server_client *c = req->client;
    free(req->reply);
    free(req);
    client_unref(c);
}

static void fifo_push(struct server_client *c, struct server_request *req)
{
    lr_assert(req->next == NULL);
    if (c->tail != NULL) {
        c->tail->next = req;
    } else {
        c->head = req;
    }
    c->tail = req;
    c->fifo_len++;
}

/* Whether the client may hand the node another command now. */
static bool client_can_take(const struct server_client *c)
{
    return c->fifo_len < c->server->options.pending_max && c->out_bytes < c->server->out_high_bytes;
}

static void client_close_cb(uv_handle_t *handle)
{
    struct server_client *c = handle->data;
    client_unref(c);
}

/*
 * Drops the connection now: writes in flight are cancelled, answered replies freed, and
 * requests the node has not answered yet stay allocated (each holding a reference) until
 * server_reply() frees them.
 */
static void client_close(struct server_client *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    list_remove(c, SERVER_LIST_READY);
    list_remove(c, SERVER_LIST_DIRTY);
    if (c->counted) {
        c->counted = false;
        c->server->clients_active--;
    }
    /* The handle's reference keeps c alive while the FIFO is emptied. */
    struct server_request *req = c->head;
    c->head = c->tail = NULL;
    c->fifo_len = 0;
    while (req != NULL) {
        struct server_request *next = req->next;
        req->next = NULL;
        if (req->done) {
            request_free(req);
        }
        req = next;
    }
    uv_close((uv_handle_t *)&c->tcp, client_close_cb);
}

static void client_write_cb(uv_write_t *wreq, int status)
{
    struct server_write *w = wreq->data;
    struct server_client *c = w->client;
    lr_assert(c->writes > 0);
    lr_assert(c->out_bytes >= w->bytes);
    c->writes--;
    c->out_bytes -= w->bytes;
    struct server_request *req = w->first;
    free(w);
    /* Hold c across the frees: the last request may carry its last reference. */
    c->refs++;
    while (req != NULL) {
        struct server_request *next = req->next;
        request_free(req);
        req = next;
    }
    if (status < 0) {
        client_close(c);
    } else {
        client_update(c);
    }
    client_unref(c);
}

/*
 * Writes the answered requests at the head of the FIFO, in order, with one uv_write. A
 * request answered out of order waits until every request before it is answered.
 */
static void client_flush(struct server_client *c)
{
    if (c->closing || c->head == NULL || !c->head->done) {
        return;
    }
    unsigned n = 0;
    uint64_t bytes = 0;
    struct server_request *last = NULL;
    for (struct server_request *r = c->head; r != NULL && r->done; r = r->next) {
        n++;
        bytes += r->reply_len;
        last = r;
    }
    struct server_write *w = malloc(sizeof(*w));
    uv_buf_t inline_bufs[SERVER_WRITE_BUFS_INLINE];
    uv_buf_t *bufs = inline_bufs;
    if (n > SERVER_WRITE_BUFS_INLINE) {
        bufs = malloc(n * sizeof(*bufs));
    }
    if (w == NULL || bufs == NULL) {
        free(w);
        if (bufs != inline_bufs) {
            free(bufs);
        }
        client_close(c);
        return;
    }
    w->client = c;
    w->first = c->head;
    w->bytes = bytes;
    w->req.data = w;
    c->head = last->next;
    if (c->head == NULL) {
        c->tail = NULL;
    }
    last->next = NULL;
    lr_assert(c->fifo_len >= n);
    c->fifo_len -= n;
    unsigned i = 0;
    for (struct server_request *r = w->first; r != NULL; r = r->next) {
        bufs[i++] = uv_buf_init(r->reply, (unsigned)r->reply_len);
    }
    lr_assert(i == n);
    /* uv_write copies the buffer array, so ours may go once it returns. */
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, client_write_cb);
    if (bufs != inline_bufs) {
        free(bufs);
    }
    if (rv != 0) {
        /* No callback will come: undo by hand. */
        c->refs++;
        struct server_request *r = w->first;
        free(w);
        while (r != NULL) {
            struct server_request *next = r->next;
            c->out_bytes -= r->reply_len;
            request_free(r);
            r = next;
        }
        client_close(c);
        client_unref(c);
        return;
    }
    c->writes++;
}

/* Queues a reply the server itself makes (protocol error, refusal) after the pending ones,
 * and closes the connection once it is written. */
static void client_fail(struct server_client *c, const char *text)
{
    c->close_after_flush = true;
    c->parked = false;
    list_remove(c, SERVER_LIST_READY);
    struct server_request *req = request_new(c);
    struct buf b;
    buf_init(&b);
    if (req == NULL || resp_put_error(&b, text, strlen(text)) != 0) {
        buf_free(&b);
        if (req != NULL) {
            request_free(req);
        }
        client_close(c);
        return;
    }
    req->reply = (char *)b.data;
    req->reply_len = b.len;
    req->done = true;
    c->out_bytes += b.len;
    fifo_push(c, req);
    list_add(c, SERVER_LIST_DIRTY);
    client_update(c);
}

static void client_shutdown_cb(uv_shutdown_t *sreq, int status)
{
    (void)status;
    struct server_client *c = sreq->data;
    client_close(c);
}

static void client_set_reading(struct server_client *c, bool want);

static void turn_cb(uv_prepare_t *prepare)
{
    struct server *s = prepare->data;
    /* Running input can answer requests (dirty) and writing can unpark input (ready), so
     * go on until both lists are empty; each pass only consumes bytes already read. */
    while (s->lists[SERVER_LIST_READY] != NULL || s->lists[SERVER_LIST_DIRTY] != NULL) {
        while (s->lists[SERVER_LIST_READY] != NULL) {
            struct server_client *c = s->lists[SERVER_LIST_READY];
            list_remove(c, SERVER_LIST_READY);
            process_input(c);
        }
        while (s->lists[SERVER_LIST_DIRTY] != NULL) {
            struct server_client *c = s->lists[SERVER_LIST_DIRTY];
            list_remove(c, SERVER_LIST_DIRTY);
            client_flush(c);
            client_update(c);
        }
    }
    uv_prepare_stop(&s->turn);
}

/*
 * Brings the client's state in line with its counters: resumes parked input (from the loop,
 * never from inside server_reply(), so the node is not called back while it answers),
 * starts or stops reading, and shuts the connection down once a closing client has nothing
 * left to send.
 */
static void client_update(struct server_client *c)
{
    if (c->closing || c->in_process) {
        return;
    }
    bool can_take = client_can_take(c);
    if (c->parked && can_take && !c->close_after_flush) {
        list_add(c, SERVER_LIST_READY);
    }
    /* After a protocol error input is read and dropped, so that the kernel holds no unread
     * bytes when the socket closes (they would turn the close into a reset that can destroy
     * the error reply before the client reads it). */
    bool want = !c->eof && !c->shutting && (c->close_after_flush || (can_take && !c->parked));
    client_set_reading(c, want);
    bool finishing = c->close_after_flush || (c->eof && !c->parked);
    if (finishing && !c->shutting && c->head == NULL && c->writes == 0) {
        c->shutting = true;
        c->shutdown.data = c;
        if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, client_shutdown_cb) != 0) {
            client_close(c);
        }
    }
}

static void dispatch(struct server_client *c, const struct resp_command *cmd)
{
    struct server_request *req = request_new(c);
    if (req == NULL) {
        client_close(c);
        return;
    }
    fifo_push(c, req);
    lr_assert(cmd->argc >= 1);
    lr_assert(cmd->argc <= (size_t)INT32_MAX);
    c->server->cb.command(c->server->cb.arg, req, (int)cmd->argc, cmd->argv, cmd->argvlen);
}

/* Hands the node every complete command the parser holds, as far as the limits allow. */
static void process_input(struct server_client *c)
{
    if (c->closing || c->close_after_flush) {
        return;
    }
    c->in_process = true;
    c->parked = false;
    while (!c->closing && !c->close_after_flush) {
        if (!client_can_take(c)) {
            c->parked = true;
            break;
        }
        struct resp_command cmd;
        int rv = resp_parser_next(&c->parser, &cmd);
        if (rv == 0) {
            break;
        }
        if (rv < 0) {
            c->in_process = false;
            if (rv == RESP_EPROTO) {
                char text[128];
                snprintf(text, sizeof(text), "ERR %s", resp_parser_error(&c->parser));
                client_fail(c, text);
            } else {
                client_close(c);
            }
            return;
        }
        dispatch(c, &cmd);
    }
    c->in_process = false;
    client_update(c);
}

static void client_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct server_client *c = handle->data;
    *buf = uv_buf_init(c->server->read_buf, sizeof(c->server->read_buf));
}

static void client_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct server_client *c = stream->data;
    if (nread == 0) {
        return;
    }
    if (nread == UV_EOF) {
        c->eof = true;
        client_update(c);
        return;
    }
    if (nread < 0) {
        client_close(c);
        return;
    }
    if (c->close_after_flush) {
        return; /* input after a protocol error is dropped */
    }
    int rv = resp_parser_feed(&c->parser, buf->base, (size_t)nread);
    if (rv == RESP_EPROTO) {
        char text[128];
        snprintf(text, sizeof(text), "ERR %s", resp_parser_error(&c->parser));
        client_fail(c, text);
        return;
    }
    if (rv != 0) {
        client_close(c);
        return;
    }
    process_input(c);
}

static void client_set_reading(struct server_client *c, bool want)
{
    if (want == c->reading) {
        return;
    }
    int rv;
    if (want) {
        rv = uv_read_start((uv_stream_t *)&c->tcp, client_alloc_cb, client_read_cb);
    } else {
        rv = uv_read_stop((uv_stream_t *)&c->tcp);
    }
    if (rv != 0) {
        client_close(c);
        return;
    }
    c->reading = want;
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
    resp_parser_init(&c->parser, NULL);
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
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        snprintf(errmsg, errmsg_size, "server: out of memory");
        return SERVER_ENOMEM;
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
    s->out_high_bytes = s->options.out_bytes_max / 2;
    if (s->out_high_bytes > SERVER_OUT_HIGH_BYTES) {
        s->out_high_bytes = SERVER_OUT_HIGH_BYTES;
    }
    if (s->out_high_bytes == 0) {
        s->out_high_bytes = 1;
    }
    s->cb = *cb;
    s->options.host = NULL; /* not ours to keep */

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

void server_reply(struct server_request *req, const void *resp, size_t len)
{
    lr_assert(req != NULL);
    lr_assert(!req->done);
    lr_assert(resp != NULL || len == 0);
    struct server_client *c = req->client;
    if (c->closing) {
        request_free(req);
        return;
    }
    if (len > 0) {
        req->reply = malloc(len);
        if (req->reply == NULL) {
            /* The reply cannot be sent, and the ones after it must not overtake it. */
            client_close(c);
            request_free(req);
            return;
        }
        memcpy(req->reply, resp, len);
    }
    req->reply_len = len;
    req->done = true;
    c->out_bytes += len;
    if (c->out_bytes > c->server->options.out_bytes_max) {
        client_close(c);
        return;
    }
    list_add(c, SERVER_LIST_DIRTY);
    client_update(c);
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
        list_remove(c, SERVER_LIST_DIRTY);
        client_flush(c);
        client_close(c);
    }
}
