/*
 * The frames that open a peer connection (src/peer/wire.h): the acceptor's challenge, the
 * dialer's handshake that answers it, and the acceptor's verdict. They are read before the
 * peer is known, so every length is bounded by a constant of wire.h before it is used.
 */
#include <string.h>

#include "peer/wire_internal.h"
#include "util/assert.h"

_Static_assert(WIRE_CHALLENGE > WIRE_HANDSHAKE_BULK, "the opening types follow the bulk handshake");
_Static_assert(WIRE_REFUSED < WIRE_NODE_FRAME_MIN, "the verdicts are no node types");
_Static_assert(WIRE_REASON_BYTES_MAX <= UINT16_MAX, "a reason's length fits a u16");
_Static_assert(WIRE_PROOF_BYTES <= UINT8_MAX, "the proof length is a u8");

/* Bits of a challenge's flags byte. */
#define CHALLENGE_REQUIRED 1u

/* Reserves a frame of body bytes at the end of b; returns where its body goes, or NULL. */
static uint8_t *frame_begin(struct buf *b, size_t body)
{
    if (buf_reserve(b, WIRE_HEADER_BYTES + body) != 0) {
        return NULL;
    }
    return b->data + b->len + WIRE_HEADER_BYTES;
}

/* Seals the frame frame_begin reserved, body bytes long, and counts it into b. */
static void frame_end(struct buf *b, uint8_t type, size_t body)
{
    wire_put_header(b->data + b->len, type, (uint32_t)body);
    b->len += WIRE_HEADER_BYTES + body;
}

static uint8_t *put_str16(uint8_t *p, const char *s, uint16_t n)
{
    be_put_u16(p, n);
    if (n > 0) {
        memcpy(p + 2, s, n);
    }
    return p + 2 + n;
}

int wire_encode_handshake_addr(struct buf *b, const struct wire_handshake *hs)
{
    lr_assert(hs->cluster_id_len >= 1);
    lr_assert(hs->cluster_id_len <= WIRE_CLUSTER_ID_BYTES_MAX);
    lr_assert(hs->client_addr_len <= WIRE_CLIENT_ADDR_BYTES_MAX);
    lr_implies(hs->client_addr_len > 0, hs->client_addr != NULL);
    size_t proof = hs->has_proof ? WIRE_PROOF_BYTES : 0;
    size_t body = 8 + 2 + (size_t)hs->cluster_id_len + 2 + (size_t)hs->client_addr_len +
                  WIRE_NONCE_BYTES + 1 + proof;
    uint8_t *p = frame_begin(b, body);
    if (p == NULL) {
        return WIRE_ENOMEM;
    }
    uint8_t *start = p;
    be_put_u64(p, hs->node_id);
    p = put_str16(p + 8, hs->cluster_id, hs->cluster_id_len);
    p = put_str16(p, hs->client_addr, hs->client_addr_len);
    memcpy(p, hs->answer, WIRE_NONCE_BYTES);
    p += WIRE_NONCE_BYTES;
    *p++ = (uint8_t)proof;
    if (proof > 0) {
        memcpy(p, hs->proof, proof);
        p += proof;
    }
    lr_assert((size_t)(p - start) == body);
    frame_end(b, hs->bulk ? WIRE_HANDSHAKE_BULK : WIRE_HANDSHAKE, body);
    return 0;
}

int wire_encode_handshake(struct buf *b, const struct wire_handshake *hs)
{
    struct wire_handshake full = {
        .node_id = hs->node_id,
        .cluster_id = hs->cluster_id,
        .cluster_id_len = hs->cluster_id_len,
    };
    return wire_encode_handshake_addr(b, &full);
}

int wire_encode_challenge(struct buf *b, const struct wire_challenge *c)
{
    uint8_t *p = frame_begin(b, WIRE_CHALLENGE_BODY_BYTES);
    if (p == NULL) {
        return WIRE_ENOMEM;
    }
    be_put_u64(p, c->node_id);
    p[8] = c->required ? CHALLENGE_REQUIRED : 0;
    memcpy(p + 9, c->nonce, WIRE_NONCE_BYTES);
    frame_end(b, WIRE_CHALLENGE, WIRE_CHALLENGE_BODY_BYTES);
    return 0;
}

int wire_encode_accepted(struct buf *b)
{
    if (frame_begin(b, 0) == NULL) {
        return WIRE_ENOMEM;
    }
    frame_end(b, WIRE_ACCEPTED, 0);
    return 0;
}

int wire_encode_refused(struct buf *b, const char *reason)
{
    size_t n = strlen(reason);
    n = n > WIRE_REASON_BYTES_MAX ? WIRE_REASON_BYTES_MAX : n;
    uint8_t *p = frame_begin(b, n);
    if (p == NULL) {
        return WIRE_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)reason[i];
        p[i] = ch >= ' ' && ch <= '~' ? ch : '?';
    }
    frame_end(b, WIRE_REFUSED, n);
    return 0;
}

/* A string of printable ASCII: what goes into log lines and replies. */
static bool printable(const uint8_t *s, size_t n, bool spaces)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < (spaces ? ' ' : '!') || s[i] > '~') {
            return false;
        }
    }
    return true;
}

/* A u16 length, then that many bytes, at most max; *s is NULL when empty. */
static int get_str16(struct cursor *c, uint16_t max, const char **s, uint16_t *len)
{
    uint16_t n = 0;
    const uint8_t *p = NULL;
    if (!cursor_get_u16(c, &n)) {
        return WIRE_ETRUNCATED;
    }
    if (n > max) {
        return WIRE_EINVAL;
    }
    if (!cursor_get_bytes(c, n, &p)) {
        return WIRE_ETRUNCATED;
    }
    *s = n > 0 ? (const char *)p : NULL;
    *len = n;
    return 0;
}

static int decode_handshake(struct cursor *c, struct wire_handshake *hs)
{
    if (!cursor_get_u64(c, &hs->node_id)) {
        return WIRE_ETRUNCATED;
    }
    int rv = get_str16(c, WIRE_CLUSTER_ID_BYTES_MAX, &hs->cluster_id, &hs->cluster_id_len);
    if (rv == 0 && hs->cluster_id_len == 0) {
        rv = WIRE_EINVAL;
    }
    rv = rv != 0 ? rv
                 : get_str16(c, WIRE_CLIENT_ADDR_BYTES_MAX, &hs->client_addr, &hs->client_addr_len);
    if (rv != 0) {
        return rv;
    }
    /* A "host:port" string goes into log lines and replies: printable, without spaces. */
    if (!printable((const uint8_t *)hs->client_addr, hs->client_addr_len, false)) {
        return WIRE_EINVAL;
    }
    const uint8_t *answer = NULL, *proof = NULL;
    uint8_t proof_len = 0;
    if (!cursor_get_bytes(c, WIRE_NONCE_BYTES, &answer) || !cursor_get_u8(c, &proof_len)) {
        return WIRE_ETRUNCATED;
    }
    if (proof_len != 0 && proof_len != WIRE_PROOF_BYTES) {
        return WIRE_EINVAL;
    }
    if (!cursor_get_bytes(c, proof_len, &proof)) {
        return WIRE_ETRUNCATED;
    }
    memcpy(hs->answer, answer, WIRE_NONCE_BYTES);
    hs->has_proof = proof_len > 0;
    if (hs->has_proof) {
        memcpy(hs->proof, proof, WIRE_PROOF_BYTES);
    }
    return 0;
}

static int decode_challenge(struct cursor *c, struct wire_challenge *ch)
{
    uint8_t flags = 0;
    const uint8_t *nonce = NULL;
    if (!cursor_get_u64(c, &ch->node_id) || !cursor_get_u8(c, &flags) ||
        !cursor_get_bytes(c, WIRE_NONCE_BYTES, &nonce)) {
        return WIRE_ETRUNCATED;
    }
    if ((flags & ~CHALLENGE_REQUIRED) != 0) {
        return WIRE_EINVAL;
    }
    ch->required = (flags & CHALLENGE_REQUIRED) != 0;
    memcpy(ch->nonce, nonce, WIRE_NONCE_BYTES);
    return 0;
}

int wire_decode_opening(uint8_t type, struct cursor *c, struct wire_frame *f)
{
    f->type = type;
    switch (type) {
        case WIRE_HANDSHAKE:
        case WIRE_HANDSHAKE_BULK:
            f->type = WIRE_HANDSHAKE;
            f->handshake.bulk = type == WIRE_HANDSHAKE_BULK;
            return decode_handshake(c, &f->handshake);
        case WIRE_CHALLENGE:
            return decode_challenge(c, &f->challenge);
        case WIRE_ACCEPTED:
            return 0;
        case WIRE_REFUSED: {
            const uint8_t *p = NULL;
            size_t n = c->left;
            if (n > WIRE_REASON_BYTES_MAX) {
                return WIRE_EINVAL;
            }
            bool ok = cursor_get_bytes(c, n, &p);
            lr_assert(ok);
            if (!printable(p, n, true)) {
                return WIRE_EINVAL;
            }
            f->refused.reason = n > 0 ? (const char *)p : NULL;
            f->refused.len = (uint16_t)n;
            return 0;
        }
        default:
            lr_assert(false && "an opening type");
    }
}
