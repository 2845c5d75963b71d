/*
 * Peer links on libuv TCP; see transport.h for the contract, and transport_internal.h for
 * how the files of src/peer/ share the work. This one starts and closes the transport: the
 * options, the peer table, the listener, the housekeeping timer, and the count of open
 * handles whose last close frees it all; and answers the queries of transport.h.
 */
#include "peer/transport.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer/transport_internal.h"
#include "util/assert.h"

#define HOUSEKEEPING_MS 1000
#define LISTEN_BACKLOG 128

#define RECONNECT_MS_MIN_DEFAULT 50
#define RECONNECT_MS_MAX_DEFAULT 2000

const char *transport_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "ok";
        case TRANSPORT_ENOTCONN:
            return "not connected to that peer";
        case TRANSPORT_EQUEUE:
            return "send queue full";
        case TRANSPORT_ENOMEM:
            return "out of memory";
        case TRANSPORT_EINVAL:
            return "invalid argument";
        case TRANSPORT_ELISTEN:
            return "cannot listen";
        case TRANSPORT_EIO:
            return "cannot read the snapshot file";
        default:
            return "unknown error";
    }
}

struct peer *peer_find(const struct transport *t, raft_id id)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i]->id == id) {
            return t->peers[i];
        }
    }
    return NULL;
}

void peer_handle_open(struct peer *p)
{
    p->handles++;
    p->t->handles_open++;
}

void peer_handle_gone(struct peer *p)
{
    struct transport *t = p->t;
    lr_assert(p->handles > 0);
    p->handles--;
    if (p->removed && p->handles == 0) {
        free(p);
    }
    transport_handle_gone(t);
}

static void peers_free(struct transport *t)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        free(t->peers[i]);
    }
    free(t->peers);
}

/* Every handle's close callback ends here, and every finished check of a received
 * snapshot; the last one frees the transport. */
void transport_handle_gone(struct transport *t)
{
    lr_assert(t->handles_open > 0);
    t->handles_open--;
    if (t->handles_open > 0 || !t->closing) {
        return;
    }
    lr_assert(t->conns == NULL);
    void (*closed)(void *arg) = t->closed;
    void *arg = t->closed_arg;
    spares_free(t, 0);
    free(t->chunk_scratch);
    peers_free(t);
    sodium_memzero(t->key, sizeof t->key);
    free(t);
    if (closed != NULL) {
        closed(arg);
    }
}

static void transport_handle_close_cb(uv_handle_t *h)
{
    transport_handle_gone(h->data);
}

/* Closes incoming connections that have not said who they are in time, and frees spare
 * buffers left unused for SPARE_IDLE_MS. */
static void transport_housekeeping_cb(uv_timer_t *timer)
{
    struct transport *t = timer->data;
    conns_expire_handshakes(t);
    spares_free(t, SPARE_IDLE_MS);
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    if (port < 0 || port > 65535) {
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) {
        return 0;
    }
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
        return 0;
    }
    return -1;
}

static void start_failed_close_cb(uv_handle_t *h)
{
    struct transport *t = h->data;
    peers_free(t);
    sodium_memzero(t->key, sizeof t->key);
    free(t);
}

static int copy_options(struct transport *t,
                        const struct transport_options *o,
                        char *errmsg,
                        size_t errmsg_size)
{
    const char *client_addr = o->client_addr != NULL ? o->client_addr : "";
    size_t cluster_len = o->cluster_id != NULL ? strlen(o->cluster_id) : 0;
    if (o->self == 0 || cluster_len == 0 || cluster_len > WIRE_CLUSTER_ID_BYTES_MAX ||
        strlen(client_addr) > WIRE_CLIENT_ADDR_BYTES_MAX || o->dir == NULL ||
        strlen(o->dir) >= sizeof(t->dir) - 64) {
        snprintf(errmsg, errmsg_size,
                 "transport: bad self id, cluster id, client address "
                 "or directory");
        return TRANSPORT_EINVAL;
    }
    t->self = o->self;
    memcpy(t->cluster_id, o->cluster_id, cluster_len + 1);
    memcpy(t->client_addr, client_addr, strlen(client_addr) + 1);
    memcpy(t->dir, o->dir, strlen(o->dir) + 1);
    t->send_queue_bytes_max =
        o->send_queue_bytes_max > 0 ? o->send_queue_bytes_max : SEND_QUEUE_BYTES_MAX_DEFAULT;
    t->reconnect_ms_min = o->reconnect_ms_min > 0 ? o->reconnect_ms_min : RECONNECT_MS_MIN_DEFAULT;
    t->reconnect_ms_max = o->reconnect_ms_max > 0 ? o->reconnect_ms_max : RECONNECT_MS_MAX_DEFAULT;
    if (t->reconnect_ms_max < t->reconnect_ms_min) {
        t->reconnect_ms_max = t->reconnect_ms_min;
    }
    wire_limits_default(&t->limits);
    if (sodium_init() < 0) { /* randombytes_buf for the challenges needs it */
        snprintf(errmsg, errmsg_size, "transport: libsodium does not start");
        return TRANSPORT_EINVAL;
    }
    t->auth = o->peer_key != NULL;
    if (t->auth) {
        memcpy(t->key, o->peer_key, sizeof t->key);
    }
    t->refusals.tokens = REFUSAL_BURST;
    return 0;
}

static void peer_init(struct transport *t, struct peer *p, const struct transport_peer *from)
{
    p->t = t;
    p->id = from->id;
    p->port = from->port;
    memcpy(p->host, from->host, sizeof(p->host));
    p->host[sizeof(p->host) - 1] = '\0';
    p->recv.fd = -1;
    for (int lane = 0; lane < LANES; lane++) {
        struct link *l = &p->links[lane];
        l->p = p;
        l->lane = (enum lane)lane;
        l->state = LINK_DOWN;
        l->backoff_ms = t->reconnect_ms_min;
    }
}

/* A new peer in the table (not started). Errors: TRANSPORT_EINVAL, _ENOMEM. */
static int peer_add(struct transport *t, const struct transport_peer *from, struct peer **out)
{
    struct sockaddr_storage addr;
    if (from->id == 0 || from->id == t->self || peer_find(t, from->id) != NULL ||
        parse_addr(from->host, from->port, &addr) != 0) {
        return TRANSPORT_EINVAL;
    }
    if (t->n_peers == t->cap_peers) {
        unsigned cap = t->cap_peers > 0 ? 2 * t->cap_peers : 8;
        struct peer **np = realloc(t->peers, cap * sizeof *np);
        if (np == NULL) {
            return TRANSPORT_ENOMEM;
        }
        t->peers = np;
        t->cap_peers = cap;
    }
    struct peer *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return TRANSPORT_ENOMEM;
    }
    peer_init(t, p, from);
    p->addr = addr;
    t->peers[t->n_peers++] = p;
    *out = p;
    return 0;
}

static int copy_peers(struct transport *t,
                      const struct transport_peer *peers,
                      unsigned n_peers,
                      char *errmsg,
                      size_t errmsg_size)
{
    for (unsigned i = 0; i < n_peers; i++) {
        struct peer *p;
        int rv = peer_add(t, &peers[i], &p);
        if (rv != 0) {
            snprintf(errmsg, errmsg_size, "transport: bad peer %" PRIu64 " at %s:%d", peers[i].id,
                     peers[i].host, peers[i].port);
            return rv;
        }
    }
    return 0;
}

static int transport_listen(struct transport *t,
                            const struct transport_options *o,
                            char *errmsg,
                            size_t errmsg_size)
{
    const char *host = o->listen_host != NULL ? o->listen_host : "0.0.0.0";
    struct sockaddr_storage ss;
    if (parse_addr(host, o->listen_port, &ss) != 0) {
        snprintf(errmsg, errmsg_size, "transport: bad listen address %s:%d", host, o->listen_port);
        return TRANSPORT_EINVAL;
    }
    int rv = uv_tcp_bind(&t->listen, (const struct sockaddr *)&ss, 0);
    if (o->listen_host != NULL && strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0) {
        t->bind_source = parse_addr(host, 0, &t->source) == 0;
    }
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&t->listen, LISTEN_BACKLOG, conn_accept_cb);
    }
    if (rv != 0) {
        snprintf(errmsg, errmsg_size, "transport: cannot listen on %s:%d: %s", host, o->listen_port,
                 uv_strerror(rv));
        return TRANSPORT_ELISTEN;
    }
    return 0;
}

/* Starts the housekeeping timer and every peer's links. */
static void transport_start_handles(struct transport *t)
{
    int rv = uv_timer_init(t->loop, &t->housekeeping);
    lr_assert(rv == 0);
    t->handles_open++;
    t->housekeeping.data = t;
    uv_timer_start(&t->housekeeping, transport_housekeeping_cb, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
    uv_unref((uv_handle_t *)&t->housekeeping);
    for (unsigned i = 0; i < t->n_peers; i++) {
        for (int lane = 0; lane < LANES; lane++) {
            link_start(&t->peers[i]->links[lane]);
        }
    }
}

int transport_start(struct transport **out,
                    uv_loop_t *loop,
                    const struct transport_options *o,
                    const struct transport_peer *peers,
                    unsigned n_peers,
                    const struct transport_callbacks *cb,
                    char *errmsg,
                    size_t errmsg_size)
{
    struct transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(errmsg, errmsg_size, "transport: out of memory");
        return TRANSPORT_ENOMEM;
    }
    t->loop = loop;
    t->cb = *cb;
    int rv = copy_options(t, o, errmsg, errmsg_size);
    if (rv == 0) {
        rv = copy_peers(t, peers, n_peers, errmsg, errmsg_size);
    }
    if (rv != 0) {
        peers_free(t);
        free(t);
        return rv;
    }
    rv = uv_tcp_init(loop, &t->listen);
    lr_assert(rv == 0);
    t->listen.data = t;
    rv = transport_listen(t, o, errmsg, errmsg_size);
    if (rv != 0) {
        /* The handle must close before its memory goes: the close callback frees t. */
        uv_close((uv_handle_t *)&t->listen, start_failed_close_cb);
        return rv;
    }
    t->handles_open = 1;
    transport_start_handles(t);
    *out = t;
    return 0;
}

bool transport_connected(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->links[LANE_CONTROL].state == LINK_UP;
}

const char *transport_client_addr(const struct transport *t, raft_id id)
{
    const struct peer *p = peer_find(t, id);
    return p != NULL && p->client_addr[0] != '\0' ? p->client_addr : NULL;
}

void transport_get_stats(const struct transport *t, struct transport_stats *out)
{
    *out = t->stats;
}

static void peer_close(struct peer *p)
{
    for (int lane = 0; lane < LANES; lane++) {
        link_close(&p->links[lane]);
    }
    snap_send_free(p);
    snap_recv_discard(&p->recv);
}

void transport_close(struct transport *t, void (*closed)(void *arg), void *arg)
{
    lr_assert(!t->closing);
    t->closing = true;
    t->closed = closed;
    t->closed_arg = arg;
    uv_close((uv_handle_t *)&t->listen, transport_handle_close_cb);
    uv_close((uv_handle_t *)&t->housekeeping, transport_handle_close_cb);
    for (unsigned i = 0; i < t->n_peers; i++) {
        peer_close(t->peers[i]);
    }
    conns_close_all(t);
}

/* Takes p out of the table and closes it; it is freed once its handles have closed. */
static void peer_remove(struct transport *t, struct peer *p)
{
    for (unsigned i = 0; i < t->n_peers; i++) {
        if (t->peers[i] == p) {
            t->peers[i] = t->peers[--t->n_peers];
            break;
        }
    }
    p->removed = true;
    peer_close(p);
    conns_drop_peer(t, p);
    lr_log_as(t->self, "peer %" PRIu64 " at %s:%d removed", p->id, p->host, p->port);
}

static bool peer_listed(const struct transport_peer *peers, unsigned n, raft_id id)
{
    for (unsigned i = 0; i < n; i++) {
        if (peers[i].id == id) {
            return true;
        }
    }
    return false;
}

int transport_set_peers(struct transport *t, const struct transport_peer *peers, unsigned n_peers)
{
    lr_assert(!t->closing);
    for (unsigned i = t->n_peers; i-- > 0;) {
        struct peer *p = t->peers[i];
        const struct transport_peer *want = NULL;
        for (unsigned j = 0; j < n_peers; j++) {
            want = peers[j].id == p->id ? &peers[j] : want;
        }
        if (want == NULL || strcmp(want->host, p->host) != 0 || want->port != p->port) {
            peer_remove(t, p); /* a new address is a new peer */
        }
    }
    int rv = 0;
    for (unsigned j = 0; j < n_peers; j++) {
        struct peer *p;
        if (peers[j].id == t->self || peer_find(t, peers[j].id) != NULL ||
            peer_listed(peers, j, peers[j].id)) {
            continue;
        }
        int r = peer_add(t, &peers[j], &p);
        if (r != 0) {
            rv = r;
            continue;
        }
        lr_log_as(t->self, "peer %" PRIu64 " at %s:%d added", p->id, p->host, p->port);
        for (int lane = 0; lane < LANES; lane++) {
            link_start(&p->links[lane]);
        }
    }
    return rv;
}
