/*
 * One client connection of the client port (the design is at the top of server.c): its
 * reads fed to the RESP parser, the commands handed to the node as far as the limits
 * allow, the FIFO of requests whose answers leave in command order, the reference count
 * that keeps it alive until both its handle and its requests are gone, and closing it.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/resp.h"
#include "client/resp3.h"
#include "client/server_internal.h"
#include "util/assert.h"
#include "util/buf.h"

/* Replies gathered into one uv_write without allocating a buffer array. */
#define SERVER_WRITE_BUFS_INLINE 16

static void client_set_reading(struct server_client *c, bool want);

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
    req->proto = c->proto;
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
void client_close(struct server_client *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    client_account(c);
    if (c->opened && c->server->cb.close != NULL) {
        c->opened = false;
        c->server->cb.close(c->server->cb.arg, c->session);
    }
    server_list_remove(c, SERVER_LIST_READY);
    server_list_remove(c, SERVER_LIST_DIRTY);
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
    client_account(c);
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
void client_flush(struct server_client *c)
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
        client_account(c);
        client_close(c);
        client_unref(c);
        return;
    }
    c->writes++;
}

/* Queues a reply the server itself makes (protocol error, refusal) after the pending ones,
 * and closes the connection once it is written. */
void client_fail(struct server_client *c, const char *text)
{
    c->close_after_flush = true;
    c->parked = false;
    server_list_remove(c, SERVER_LIST_READY);
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
    client_account(c);
    fifo_push(c, req);
    server_list_add(c, SERVER_LIST_DIRTY);
    client_update(c);
}

static void client_shutdown_cb(uv_shutdown_t *sreq, int status)
{
    (void)status;
    struct server_client *c = sreq->data;
    client_close(c);
}

/*
 * Brings the client's state in line with its counters: resumes parked input (from the loop,
 * never from inside server_reply(), so the node is not called back while it answers),
 * starts or stops reading, and shuts the connection down once a closing client has nothing
 * left to send.
 */
void client_update(struct server_client *c)
{
    if (c->closing || c->in_process) {
        return;
    }
    bool can_take = client_can_take(c);
    if (c->parked && can_take && !c->close_after_flush) {
        server_list_add(c, SERVER_LIST_READY);
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
    c->server->cb.command(c->server->cb.arg, req, c->session, (int)cmd->argc, cmd->argv,
                          cmd->argvlen);
}

/* Hands the node every complete command the parser holds, as far as the limits allow. */
void client_process_input(struct server_client *c)
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
    resp_parser_shrink(&c->parser, CLIENT_INPUT_KEEP_BYTES);
    client_account(c);
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
    client_account(c);
    if (rv == 0) {
        server_enforce_memory(c->server); /* c itself may be the one evicted */
        if (c->closing || c->close_after_flush) {
            return;
        }
    }
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
    client_process_input(c);
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
    if (resp3_needs_edit(resp, len, req->proto < 3 ? 2 : 3)) {
        struct buf b;
        buf_init(&b);
        if (resp3_edit(resp, len, req->proto < 3 ? 2 : 3, &b) != 0) {
            buf_free(&b);
            client_close(c);
            request_free(req);
            return;
        }
        req->reply = (char *)b.data;
        len = b.len;
    } else if (len > 0) {
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
    client_account(c); /* the cap is enforced on the loop's turn, not inside an answer */
    if (c->out_bytes > c->server->options.out_bytes_max) {
        client_close(c);
        return;
    }
    server_list_add(c, SERVER_LIST_DIRTY);
    client_update(c);
}

void server_set_protocol(struct server_request *req, int proto)
{
    lr_assert(proto == 2 || proto == 3);
    req->proto = proto;
    req->client->proto = proto;
}

void server_set_authenticated(struct server_request *req, bool on)
{
    struct server *s = req->client->server;
    if (s->options.auth_required) {
        resp_parser_set_limits(&req->client->parser, on ? &s->options.limits : &s->unauth_limits);
    }
}

void server_close_after(struct server_request *req)
{
    struct server_client *c = req->client;
    if (c->closing) {
        return;
    }
    c->close_after_flush = true;
    c->parked = false;
    server_list_remove(c, SERVER_LIST_READY);
}

void server_request_set_tag(struct server_request *req, void *tag)
{
    req->tag = tag;
}

void *server_request_tag(const struct server_request *req)
{
    return req->tag;
}
