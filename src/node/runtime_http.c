/*
 * The node's HTTP port (--http): the routes on the node's own loop, so that every handler
 * reads the node's state on the loop thread, without locks.
 *
 *   /metrics  Prometheus text (metrics.c)
 *   /health   200 "ok" when the node is fit to serve, else 503 and why (status.c)
 *   /status   the node as JSON (status.c), readable from any origin (the status page
 *             served by one node polls all of them)
 *   /         the status page (status_page.html, built in)
 *
 * Anything else is 404. The server (src/http/) bounds requests, connections and time.
 */
#include "http/http_server.h"
#include "node/runtime.h"
#include "node/status.h"

enum {
    http_connections_max = 64,
    http_request_bytes_max = 8192,
    http_request_ms = 10000,
    http_out_bytes_max = 4 << 20,
};

/* status_page.html, as CMakeLists.txt builds it into a C array. */
extern const unsigned char luaraft_status_page[];
extern const size_t luaraft_status_page_len;

static void put_text(struct http_answer *a, int status, const char *text)
{
    a->status = status;
    lr_assert(buf_append(&a->body, text, strlen(text)) == 0);
    lr_assert(buf_append(&a->body, "\n", 1) == 0);
}

static void route(void *arg, const struct http_request *req, struct http_answer *a)
{
    struct runtime *rt = arg;
    struct node *n = rt->n;
    if (strcmp(req->path, "/metrics") == 0) {
        struct store_stats st;
        store_stats(rt->store, &st);
        struct metrics_world w = {.fsync_seconds = &st.commit_seconds,
                                  .loop_stall_seconds = &rt->tick_late_seconds,
                                  .http_connections = http_server_connections(rt->http)};
        a->content_type = "text/plain; version=0.0.4; charset=utf-8";
        metrics_render(n, &w, &a->body);
    } else if (strcmp(req->path, "/health") == 0) {
        char reason[256];
        bool ok = status_healthy(n, reason, sizeof reason);
        a->cors = true;
        put_text(a, ok ? 200 : 503, reason);
    } else if (strcmp(req->path, "/status") == 0) {
        a->cors = true;
        a->content_type = "application/json";
        status_json(n, &a->body);
    } else if (strcmp(req->path, "/") == 0) {
        a->content_type = "text/html; charset=utf-8";
        lr_assert(buf_append(&a->body, luaraft_status_page, luaraft_status_page_len) == 0);
    } else {
        put_text(a, 404, "not found: this port serves /metrics, /health, /status and /");
    }
}

int runtime_http_start(struct runtime *rt)
{
    const struct node_config *c = rt->c;
    if (c->http_port == 0) {
        return 0;
    }
    struct http_server_options o = {
        .host = c->http_host,
        .port = c->http_port,
        .connections_max = http_connections_max,
        .request_bytes_max = http_request_bytes_max,
        .request_ms = http_request_ms,
        .out_bytes_max = http_out_bytes_max,
    };
    char msg[node_errmsg_bytes];
    if (http_server_start(&rt->http, &rt->loop, &o, route, rt, msg, sizeof msg) != 0) {
        FAIL("cannot serve HTTP: %s", msg);
    }
    node_log(rt->n, "serving HTTP on http://%s%s%s:%d/ (/metrics, /health, /status)",
             strchr(c->http_host, ':') ? "[" : "", c->http_host,
             strchr(c->http_host, ':') ? "]" : "", c->http_port);
    return 0;
}

int runtime_http_close(struct runtime *rt, void (*closed)(void *arg))
{
    if (rt->http == NULL) {
        return 0;
    }
    http_server_close(rt->http, closed, rt);
    rt->http = NULL;
    return 1;
}
