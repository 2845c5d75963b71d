/*
 * server_test: the client port with a toy node behind it, for spec/server/. It answers
 *   PING        +PONG
 *   ECHO x      x as a bulk string
 *   SLOW ms x   x as a bulk string, after a timer of ms milliseconds (so answers come back
 *               out of order and the server must put them back in order)
 *   COUNT       the number of commands seen, this one included
 *   HELD        "held largest evicted": server_memory(), as text
 *   anything else  -ERR unknown command
 *
 * Usage: server_test PORT [CLIENTS_MAX [PENDING_MAX [OUT_BYTES_MAX]]]
 * Prints "ready" on stdout once it listens; exits 0 on SIGTERM after closing every handle.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/resp.h"
#include "client/server.h"
#include "util/assert.h"
#include "util/buf.h"

/* The longest SLOW delay, in milliseconds: a typo must not park a request for days. */
#define TEST_SLOW_MS_MAX 60000

struct slow
{
    uv_timer_t timer;
    struct server_request *req;
    struct slow *prev, *next;
    size_t len;
    char data[];
};

struct test_node
{
    uv_loop_t *loop;
    struct server *server;
    uv_signal_t sigterm;
    struct slow *slows; /* SLOW requests waiting for their timer */
    uint64_t commands;
    int closed;
};

static void reply_buf(struct server_request *req, struct buf *b, int rv)
{
    lr_assert(rv == 0); /* a few bytes: running out of memory here ends the test */
    server_reply(req, b->data, b->len);
    buf_free(b);
}

static void reply_bulk(struct server_request *req, const void *data, size_t len)
{
    struct buf b;
    buf_init(&b);
    reply_buf(req, &b, resp_put_bulk(&b, data, len));
}

static void reply_error(struct server_request *req, const char *text)
{
    struct buf b;
    buf_init(&b);
    reply_buf(req, &b, resp_put_error(&b, text, strlen(text)));
}

static void slow_unlink(struct test_node *n, struct slow *sl)
{
    if (sl->prev != NULL) {
        sl->prev->next = sl->next;
    } else {
        n->slows = sl->next;
    }
    if (sl->next != NULL) {
        sl->next->prev = sl->prev;
    }
}

static void slow_close_cb(uv_handle_t *handle)
{
    free(handle->data);
}

static void slow_timer_cb(uv_timer_t *timer)
{
    struct slow *sl = timer->data;
    struct test_node *n = timer->loop->data;
    slow_unlink(n, sl);
    reply_bulk(sl->req, sl->data, sl->len);
    uv_close((uv_handle_t *)&sl->timer, slow_close_cb);
}

/* Parses a decimal count of milliseconds; returns -1 unless it is one. */
static long parse_ms(const char *s, size_t len)
{
    if (len == 0 || len > 9) {
        return -1;
    }
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void start_slow(struct test_node *n,
                       struct server_request *req,
                       const char *ms_text,
                       size_t ms_len,
                       const char *x,
                       size_t x_len)
{
    long ms = parse_ms(ms_text, ms_len);
    if (ms < 0 || ms > TEST_SLOW_MS_MAX) {
        reply_error(req, "ERR bad delay");
        return;
    }
    struct slow *sl = malloc(sizeof(*sl) + x_len);
    lr_assert(sl != NULL);
    memcpy(sl->data, x, x_len);
    sl->len = x_len;
    sl->req = req;
    sl->prev = NULL;
    sl->next = n->slows;
    if (n->slows != NULL) {
        n->slows->prev = sl;
    }
    n->slows = sl;
    uv_timer_init(n->loop, &sl->timer);
    sl->timer.data = sl;
    uv_timer_start(&sl->timer, slow_timer_cb, (uint64_t)ms, 0);
}

static bool is(const char *word, const char *arg, size_t len)
{
    return strlen(word) == len && strncasecmp(word, arg, len) == 0;
}

static void on_command(void *arg,
                       struct server_request *req,
                       void *session,
                       int argc,
                       const char *const *argv,
                       const size_t *argvlen)
{
    struct test_node *n = arg;
    (void)session;
    n->commands++;
    if (argc == 1 && is("PING", argv[0], argvlen[0])) {
        server_reply(req, "+PONG\r\n", 7);
    } else if (argc == 2 && is("ECHO", argv[0], argvlen[0])) {
        reply_bulk(req, argv[1], argvlen[1]);
    } else if (argc == 3 && is("SLOW", argv[0], argvlen[0])) {
        start_slow(n, req, argv[1], argvlen[1], argv[2], argvlen[2]);
    } else if (argc == 1 && is("COUNT", argv[0], argvlen[0])) {
        struct buf b;
        buf_init(&b);
        reply_buf(req, &b, resp_put_integer(&b, (int64_t)n->commands));
    } else if (argc == 1 && is("HELD", argv[0], argvlen[0])) {
        struct server_memory m;
        server_memory(n->server, &m);
        char text[96];
        int len = snprintf(text, sizeof text, "%llu %llu %llu", (unsigned long long)m.held_bytes,
                           (unsigned long long)m.largest_bytes, (unsigned long long)m.evicted);
        reply_bulk(req, text, (size_t)len);
    } else {
        reply_error(req, "ERR unknown command");
    }
}

static void on_server_closed(void *arg)
{
    struct test_node *n = arg;
    n->closed++;
}

static void on_sigterm(uv_signal_t *sig, int signum)
{
    (void)signum;
    struct test_node *n = sig->data;
    /* The server's contract: answer every pending request before closing it. */
    while (n->slows != NULL) {
        struct slow *sl = n->slows;
        slow_unlink(n, sl);
        reply_error(sl->req, "ERR shutting down");
        uv_close((uv_handle_t *)&sl->timer, slow_close_cb);
    }
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    server_close(n->server, on_server_closed, n);
}

static long parse_arg(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > max) {
        fprintf(stderr, "server_test: bad number '%s'\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 7) {
        fprintf(stderr,
                "usage: server_test PORT [CLIENTS_MAX [PENDING_MAX [OUT_BYTES_MAX "
                "[CLIENTS_BYTES_MAX [BULK_BYTES_MAX]]]]]\n");
        return 2;
    }
    /* A client that goes away mid-write must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);

    struct server_options o = {.host = "127.0.0.1", .port = (int)parse_arg(argv[1], 65535)};
    if (argc > 2) {
        o.clients_max = (uint32_t)parse_arg(argv[2], 1000000);
    }
    if (argc > 3) {
        o.pending_max = (uint32_t)parse_arg(argv[3], 1000000);
    }
    if (argc > 4) {
        o.out_bytes_max = (uint64_t)parse_arg(argv[4], 1L << 40);
    }
    if (argc > 5) {
        o.clients_bytes_max = (uint64_t)parse_arg(argv[5], 1L << 40);
    }
    if (argc > 6) {
        o.limits.bulk_bytes_max = (size_t)parse_arg(argv[6], 1L << 40);
    }

    uv_loop_t loop;
    lr_assert(uv_loop_init(&loop) == 0);
    struct test_node n = {.loop = &loop};
    loop.data = &n;
    struct server_callbacks cb = {.arg = &n, .command = on_command};
    char errmsg[256];
    int rv = server_start(&n.server, &loop, &o, &cb, errmsg, sizeof(errmsg));
    if (rv != 0) {
        fprintf(stderr, "server_test: %s (%s)\n", errmsg, server_strerror(rv));
        /* A failed start leaves handles closing: let them finish, then the loop is clean. */
        uv_run(&loop, UV_RUN_DEFAULT);
        lr_assert(uv_loop_close(&loop) == 0);
        return 1;
    }
    uv_signal_init(&loop, &n.sigterm);
    n.sigterm.data = &n;
    uv_signal_start(&n.sigterm, on_sigterm, SIGTERM);
    printf("ready\n");
    fflush(stdout);

    uv_run(&loop, UV_RUN_DEFAULT);
    lr_assert(n.closed == 1);
    lr_assert(n.slows == NULL);
    lr_assert(uv_loop_close(&loop) == 0);
    return 0;
}
