/*
 * The acceptor's side of the opening exchange (src/peer/wire.h): a fresh challenge at
 * accept, then the dialer's handshake checked before any other frame is taken (conn.c
 * refuses every other type until then), and the verdict written back, so that a refused
 * dialer can say why in its own log. The frames are a few hundred bytes on a connection
 * that has written nothing else, so they go out with uv_try_write: a write that does not go
 * out whole at once closes the connection, as a peer that does not read deserves.
 *
 * The lines of refused connections are the ones a stranger can cause at will, one per
 * connection: they go through a token bucket (a burst of REFUSAL_BURST, then one per
 * REFUSAL_REFILL_MS), and the next line written says how many were left out.
 */
#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#include "peer/transport_internal.h"

#define REFUSAL_REFILL_MS 6000

/* Writes b whole at once. Errors: -1 (why in *why). */
static int write_now(struct conn *c, const struct buf *b, const char **why)
{
    uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
    int rv = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
    if (rv < 0) {
        *why = uv_strerror(rv);
        return -1;
    }
    if ((size_t)rv != b->len) {
        *why = "the peer does not read";
        return -1;
    }
    return 0;
}

int conn_send_challenge(struct conn *c, const char **why)
{
    struct transport *t = c->t;
    struct wire_challenge ch = {.node_id = t->self, .required = t->auth};
    randombytes_buf(c->nonce, sizeof c->nonce);
    memcpy(ch.nonce, c->nonce, sizeof ch.nonce);
    struct buf b;
    buf_init(&b);
    int rv = -1;
    *why = "out of memory";
    if (wire_encode_challenge(&b, &ch) == 0) {
        rv = write_now(c, &b, why);
    }
    buf_free(&b);
    return rv;
}

/* Why hs cannot be taken, or NULL. Nothing in it is believed before its answer and proof
 * check out: the cluster id and node id are looked at only after. */
static const char *handshake_refusal(const struct conn *c, const struct wire_handshake *hs)
{
    const struct transport *t = c->t;
    if (memcmp(hs->answer, c->nonce, sizeof c->nonce) != 0) {
        return "handshake answers another challenge (one recorded from an earlier connection, "
               "or sent before this connection's)";
    }
    if (t->auth && !hs->has_proof) {
        return "handshake without a proof of the peer secret: the connecting node has no "
               "--peer-secret-file and the accepting node has one";
    }
    if (!t->auth && hs->has_proof) {
        return "handshake with a proof of a peer secret: the connecting node has a "
               "--peer-secret-file and the accepting node has none";
    }
    if (t->auth && !peer_auth_verify(t->key, hs, t->self)) {
        return "handshake proof does not verify: the two nodes' peer secrets "
               "(--peer-secret-file) differ";
    }
    if (hs->cluster_id_len != strlen(t->cluster_id) ||
        memcmp(hs->cluster_id, t->cluster_id, hs->cluster_id_len) != 0) {
        return "handshake from another cluster";
    }
    if (peer_find(t, hs->node_id) == NULL) {
        return "handshake from an unknown node id";
    }
    return NULL;
}

const char *conn_take_handshake(struct conn *c, const struct wire_handshake *hs)
{
    struct transport *t = c->t;
    c->bulk = hs->bulk;
    const char *refusal = handshake_refusal(c, hs);
    const char *why = "out of memory";
    struct buf b;
    buf_init(&b);
    int rv = refusal == NULL ? wire_encode_accepted(&b) : wire_encode_refused(&b, refusal);
    rv = rv == 0 ? write_now(c, &b, &why) : -1;
    buf_free(&b);
    if (refusal != NULL || rv != 0) {
        return refusal != NULL ? refusal : why;
    }
    struct peer *p = peer_find(t, hs->node_id);
    memcpy(p->client_addr, hs->client_addr != NULL ? hs->client_addr : "", hs->client_addr_len);
    p->client_addr[hs->client_addr_len] = '\0';
    c->p = p;
    if (!c->bulk && t->cb.peer != NULL) {
        t->cb.peer(t->cb.arg, p->id, true);
    }
    return NULL;
}

void conn_log_refusal(struct conn *c, const char *why)
{
    struct transport *t = c->t;
    struct refusal_log *r = &t->refusals;
    uint64_t now = uv_now(t->loop);
    uint64_t earned = (now - r->refill_ms) / REFUSAL_REFILL_MS;
    if (r->tokens + earned >= REFUSAL_BURST) {
        r->tokens = REFUSAL_BURST;
        r->refill_ms = now;
    } else {
        r->tokens += (unsigned)earned;
        r->refill_ms += earned * REFUSAL_REFILL_MS;
    }
    if (r->tokens == 0) {
        r->suppressed++;
        return;
    }
    r->tokens--;
    const char *lane = c->bulk ? "bulk connection" : "connection";
    if (r->suppressed > 0) {
        lr_log_as(t->self,
                  "peer %s from %s closed: %s (and %" PRIu64
                  " more refused before "
                  "this one, not logged)",
                  lane, c->addr, why, r->suppressed);
    } else {
        lr_log_as(t->self, "peer %s from %s closed: %s", lane, c->addr, why);
    }
    r->suppressed = 0;
}
