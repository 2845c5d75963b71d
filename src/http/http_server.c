/*
 * The HTTP server (http_server.h). One struct http_conn per connection, with its TCP
 * handle and a timer: the timer closes a connection that has not completed its next
 * request within request_ms of the previous answer (or of its accept), which also bounds
 * keep-alive idleness and slow senders. http-parser calls back as the bytes arrive; the
 * request is answered from on_message_complete, so pipelined requests get their answers
 * in order. Each answer is one uv_write of head and body together.
 */
#include "http/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/assert.h"

enum {
    http_listen_backlog = 64,
    http_read_bytes = 4096,
    http_url_bytes_max = 2048,
    http_head_bytes_max = 512,
    http_header_overhead = 4, /* ": " and CR LF around each header field and value */
};

struct http_conn
{
    struct http_conn *prev, *next;
    struct http_server *s;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles_open;
    bool closing;
    bool close_after; /* answered a request that ends the connection: read no more */
    http_parser parser;
    uint32_t request_bytes; /* of the request being parsed */
    bool too_large;
    char url[http_url_bytes_max + 1];
    size_t url_len;
    size_t out_bytes; /* written, not yet sent */
    char rbuf[http_read_bytes];
};

struct http_write
{
    uv_write_t req;
    struct http_conn *c;
    size_t len;
    char data[];
};

struct http_server
{
    uv_loop_t *loop;
    struct http_server_options o;
    http_handler *handler;
    void *arg;
    uv_tcp_t listener;
    struct http_conn *conns;
    uint32_t n_conns;
    int handles_open; /* the listener and every connection */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

static http_parser_settings parser_settings;

static const char *reason_of(int status)
{
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 431:
            return "Request Header Fields Too Large";
        case 503:
            return "Service Unavailable";
        default:
            return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

static void server_maybe_closed(struct http_server *s)
{
    if (s->closing && s->handles_open == 0) {
        if (s->closed != NULL) {
            s->closed(s->closed_arg);
        }
        free(s);
    }
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    struct http_server *s = c->s;
    free(c);
    s->handles_open--;
    server_maybe_closed(s);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct http_server *s = c->s;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->n_conns--;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void write_done(uv_write_t *req, int status)
{
    struct http_write *w = (struct http_write *)req;
    struct http_conn *c = w->c;
    c->out_bytes -= w->len;
    free(w);
    if (status != 0 || (c->close_after && c->out_bytes == 0)) {
        conn_close(c);
    }
}

/* Writes head and body as one buffer. */
static void conn_write(struct http_conn *c,
                       const char *head,
                       size_t head_len,
                       const struct buf *body)
{
    size_t body_len = body != NULL ? body->len : 0;
    struct http_write *w = malloc(sizeof *w + head_len + body_len);
    lr_assert(w != NULL);
    w->c = c;
    w->len = head_len + body_len;
    memcpy(w->data, head, head_len);
    if (body_len > 0) {
        memcpy(w->data + head_len, body->data, body_len);
    }
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    c->out_bytes += w->len;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0) {
        c->out_bytes -= w->len;
        free(w);
        conn_close(c);
        return;
    }
    if (c->out_bytes > c->s->o.out_bytes_max) {
        conn_close(c); /* a client that does not read its answers */
    }
}

/* Sends an answer; keep_alive false closes the connection once it is sent. */
static void conn_answer(struct http_conn *c,
                        const struct http_answer *a,
                        bool head,
                        bool keep_alive)
{
    char text[http_head_bytes_max];
    int k = snprintf(text, sizeof text,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s"
                     "Connection: %s\r\n\r\n",
                     a->status, reason_of(a->status), a->content_type, a->body.len,
                     a->cors ? "Access-Control-Allow-Origin: *\r\n" : "",
                     a->status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     keep_alive ? "keep-alive" : "close");
    lr_assert(k > 0 && (size_t)k < sizeof text);
    if (!keep_alive) {
        c->close_after = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    conn_write(c, text, (size_t)k, head ? NULL : &a->body);
}

/* An answer of the server's own (an error): plain text, and the connection closes. */
static void conn_refuse(struct http_conn *c, int status, const char *why)
{
    struct http_answer a = {.status = status, .content_type = "text/plain; charset=utf-8"};
    buf_init(&a.body);
    lr_assert(buf_append(&a.body, why, strlen(why)) == 0 && buf_append(&a.body, "\n", 1) == 0);
    conn_answer(c, &a, false, false);
    buf_free(&a.body);
}

static void timeout_cb(uv_timer_t *t)
{
    conn_close(t->data); /* a request not completed in time: a slow or idle client */
}

static void timer_restart(struct http_conn *c)
{
    uv_timer_start(&c->timer, timeout_cb, c->s->o.request_ms, 0);
}

/* ------------------------------------------------------------------------------------ */
/* Parsing (http-parser's callbacks; a callback that returns nonzero stops the parse). */

/* Counts n more bytes of the request; false once it passes the bound. */
static bool count_bytes(struct http_conn *c, size_t n)
{
    c->request_bytes += (uint32_t)(n < UINT32_MAX / 2 ? n : UINT32_MAX / 2);
    if (c->request_bytes > c->s->o.request_bytes_max) {
        c->too_large = true;
        return false;
    }
    return true;
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    c->request_bytes = 0;
    c->url_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (!count_bytes(c, len) || c->url_len + len > http_url_bytes_max) {
        c->too_large = true;
        return 1;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_part(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_bytes(p->data, len + http_header_overhead) ? 0 : 1;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_bytes(p->data, len) ? 0 : 1; /* read and ignored */
}

/* A whole request: the handler answers it. */
static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *s = c->s;
    bool keep_alive = http_should_keep_alive(p) != 0;
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        conn_refuse(c, 405, "only GET and HEAD are served");
        return 1;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH))) {
        conn_refuse(c, 400, "malformed request target");
        return 1;
    }
    char path[http_url_bytes_max + 1], query[http_url_bytes_max + 1] = "";
    memcpy(path, c->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    path[u.field_data[UF_PATH].len] = '\0';
    if (u.field_set & (1 << UF_QUERY)) {
        memcpy(query, c->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
        query[u.field_data[UF_QUERY].len] = '\0';
    }
    struct http_request req = {.path = path, .query = query};
    struct http_answer a = {.status = 200, .content_type = "text/plain; charset=utf-8"};
    buf_init(&a.body);
    s->handler(s->arg, &req, &a);
    conn_answer(c, &a, p->method == HTTP_HEAD, keep_alive);
    buf_free(&a.body);
    if (c->closing) {
        return 1;
    }
    /* Also when the connection ends after this answer: a client that does not read it
     * is closed at the deadline. */
    timer_restart(c);
    return c->close_after ? 1 : 0; /* 1: stop parsing, nothing more is read */
}

/* ------------------------------------------------------------------------------------ */
/* Connections. */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct http_conn *c = h->data;
    *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = stream->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->close_after || c->closing) {
        return;
    }
    http_parser_execute(&c->parser, &parser_settings, b->base, (size_t)nread);
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (c->close_after || c->closing) {
        return; /* answered, and the connection ends */
    }
    if (c->too_large || err == HPE_HEADER_OVERFLOW) {
        conn_refuse(c, 431, "request too large");
    } else if (err != HPE_OK) {
        conn_refuse(c, 400, http_errno_description(err));
    } else if (c->parser.upgrade) {
        conn_refuse(c, 400, "no protocol upgrades here");
    }
}

static void connection_cb(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status != 0 || s->closing) {
        return;
    }
    struct http_conn *c = calloc(1, sizeof *c);
    lr_assert(c != NULL);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    s->handles_open++;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > s->o.connections_max) {
        conn_close(c); /* over the bound: closed at once, unanswered */
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    timer_restart(c);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* ------------------------------------------------------------------------------------ */

/* A listening socket opened without libuv, so that a start that fails (the port is
 * taken) leaves no handle for the caller's loop to close. The socket, or -errno. */
static int listen_socket(const char *host, int port)
{
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    bool v6 = strchr(host, ':') != NULL;
    int rv = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rv != 0) {
        return -EINVAL;
    }
    int fd = socket(addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return -errno;
    }
    int on = 1;
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (const struct sockaddr *)&addr, len) != 0 ||
        listen(fd, http_listen_backlog) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void listener_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->handles_open--;
    server_maybe_closed(s);
}

int http_server_start(struct http_server **out,
                      uv_loop_t *loop,
                      const struct http_server_options *o,
                      http_handler *handler,
                      void *arg,
                      char *errmsg,
                      size_t errmsg_size)
{
    parser_settings = (http_parser_settings){
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_part,
        .on_header_value = on_header_part,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    int fd = listen_socket(o->host, o->port);
    if (fd < 0) {
        snprintf(errmsg, errmsg_size, "cannot listen on %s port %d: %s", o->host, o->port,
                 strerror(-fd));
        return -1;
    }
    struct http_server *s = calloc(1, sizeof *s);
    lr_assert(s != NULL);
    s->loop = loop;
    s->o = *o;
    s->o.host = NULL; /* not ours to keep */
    s->handler = handler;
    s->arg = arg;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles_open = 1;
    int rv = uv_tcp_open(&s->listener, fd);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&s->listener, http_listen_backlog, connection_cb);
    } else {
        close(fd);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "cannot listen on %s port %d: %s", o->host, o->port,
                 uv_strerror(rv));
        s->closing = true; /* freed by the loop's next turn; nothing is called back */
        uv_close((uv_handle_t *)&s->listener, listener_closed);
        return -1;
    }
    *out = s;
    return 0;
}

uint32_t http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

void http_server_close(struct http_server *s, void (*closed)(void *arg), void *arg)
{
    lr_assert(!s->closing);
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    uv_close((uv_handle_t *)&s->listener, listener_closed);
    while (s->conns != NULL) {
        conn_close(s->conns);
    }
}
