/*
 * A small HTTP/1.1 server on the caller's libuv loop, for the node's /metrics, /health,
 * /status and status page: requests are parsed by http-parser (Debian's
 * libhttp-parser-dev), and each complete request is handed to the caller's handler on the
 * loop thread, which answers it at once.
 *
 * Built to face hostile clients: a request's head and body together may take at most
 * request_bytes_max bytes (beyond: 431 and the connection closes); a connection must
 * complete each request within request_ms of the previous answer or of its accept
 * (slow senders are closed); at most connections_max are open (more are closed at once);
 * unsent answers beyond out_bytes_max close the connection; a malformed request gets 400,
 * a method other than GET and HEAD 405, and the connection closes after either.
 * Keep-alive and pipelining work as HTTP/1.1 says; HEAD gets GET's headers without body.
 *
 * Threading: loop thread only.
 */
#ifndef LUARAFT_HTTP_SERVER_H
#define LUARAFT_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

struct http_server_options
{
    const char *host; /* numeric IPv4 or IPv6 */
    int port;
    uint32_t connections_max;
    uint32_t request_bytes_max;
    uint32_t request_ms;
    uint32_t out_bytes_max;
};

/* A request, valid during the handler's call. */
struct http_request
{
    const char *path;  /* as sent (not percent-decoded), without the query; NUL-terminated */
    const char *query; /* after '?', "" when none; NUL-terminated */
};

/* The handler's answer: status, content type, body (the server frees it), and whether
 * any origin may read it (Access-Control-Allow-Origin: *). */
struct http_answer
{
    int status;
    const char *content_type;
    struct buf body;
    bool cors;
};

typedef void http_handler(void *arg, const struct http_request *req, struct http_answer *ans);

struct http_server;

/* Returns 0, or -1 with the reason in errmsg (the port is taken, a bad address...). */
int http_server_start(struct http_server **out,
                      uv_loop_t *loop,
                      const struct http_server_options *o,
                      http_handler *handler,
                      void *arg,
                      char *errmsg,
                      size_t errmsg_size);

uint32_t http_server_connections(const struct http_server *s);

/* Closes the listener and every connection; closed(arg) follows once all are gone. */
void http_server_close(struct http_server *s, void (*closed)(void *arg), void *arg);

#endif
