#include "peer/wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "peer/wire_internal.h"
#include "util/assert.h"
#include "util/crc32c.h"

/* from, to, term: the part every raft message body starts with. */
#define WIRE_MESSAGE_BASE_BYTES 24
/* prev_index, prev_term, commit, n_entries. */
#define WIRE_APPEND_FIXED_BYTES 28
/* magic, version, type, flags, length: the header bytes the checksum covers. */
#define WIRE_CRC_HEADER_BYTES 12

_Static_assert(WIRE_HANDSHAKE > RAFT_MSG_TYPE_MAX, "the handshake type is no raft type");
_Static_assert(WIRE_CLUSTER_ID_BYTES_MAX <= UINT16_MAX, "the cluster id length is a u16");
_Static_assert(WIRE_CLIENT_ADDR_BYTES_MAX <= UINT16_MAX, "the client address length is a u16");
_Static_assert(WIRE_SNAPSHOT_CHUNK > WIRE_HANDSHAKE, "the chunk type is no raft type");
_Static_assert(WIRE_SNAPSHOT_CHUNK < WIRE_NODE_FRAME_MIN, "the chunk type is no node type");
_Static_assert(WIRE_CHUNK_HEADER_BYTES == 8 + 8 + 8 + 1, "index, term, offset, last");
_Static_assert(WIRE_HAVE_BYTES == 8 + 8, "index, term");
_Static_assert(WIRE_HANDSHAKE_BULK < WIRE_NODE_FRAME_MIN, "the bulk handshake is no node type");

const char *wire_strerror(int rv)
{
    switch (rv) {
        case 0:
            return "ok";
        case WIRE_EMAGIC:
            return "bad magic";
        case WIRE_EVERSION:
            return "unsupported version";
        case WIRE_ETYPE:
            return "unknown frame type";
        case WIRE_EFLAGS:
            return "unknown flags";
        case WIRE_ETOOBIG:
            return "frame too big";
        case WIRE_ECHECKSUM:
            return "checksum mismatch";
        case WIRE_ETRUNCATED:
            return "truncated body";
        case WIRE_ETRAILING:
            return "trailing bytes after body";
        case WIRE_ETOOMANY:
            return "too many entries";
        case WIRE_EINVAL:
            return "invalid field value";
        case WIRE_ENOMEM:
            return "out of memory";
        default:
            return "unknown error";
    }
}

void wire_limits_default(struct wire_limits *l)
{
    l->frame_bytes_max = 64 * 1024 * 1024;
    l->handshake_bytes_max = 4 * 1024;
    l->entries_max = 4096;
    l->chunk_bytes_max = 4 * 1024 * 1024;
}

static bool message_type_valid(unsigned type)
{
    return type >= RAFT_MSG_APPEND && type <= RAFT_MSG_TYPE_MAX;
}

static bool frame_type_valid(unsigned type)
{
    return message_type_valid(type) || wire_type_opening(type) || type == WIRE_SNAPSHOT_CHUNK ||
           type == WIRE_SNAPSHOT_HAVE || type >= WIRE_NODE_FRAME_MIN;
}

/* Body bytes of m after the common part; for APPEND, including every entry. */
static size_t message_body_bytes(const struct raft_message *m)
{
    switch (m->type) {
        case RAFT_MSG_APPEND: {
            size_t n = WIRE_APPEND_FIXED_BYTES;
            lr_implies(m->append.n_entries > 0, m->append.entries != NULL);
            for (uint32_t i = 0; i < m->append.n_entries; i++) {
                n += WIRE_ENTRY_HEADER_BYTES + m->append.entries[i].len;
            }
            return n;
        }
        case RAFT_MSG_APPEND_RESP:
            return 1 + 8 + 8 + 8;
        case RAFT_MSG_VOTE:
            return 1 + 1 + 8 + 8;
        case RAFT_MSG_VOTE_RESP:
            return 1 + 1;
        case RAFT_MSG_HEARTBEAT:
            return 8 + 8;
        case RAFT_MSG_HEARTBEAT_RESP:
            return 8;
        case RAFT_MSG_SNAPSHOT:
            return 8 + 8;
        case RAFT_MSG_TIMEOUT_NOW:
            return 0;
        case RAFT_MSG_READ_INDEX:
            return 8;
        case RAFT_MSG_READ_INDEX_RESP:
            return 8 + 8;
        default:
            lr_assert(false && "unknown raft message type");
    }
}

size_t wire_message_bytes(const struct raft_message *m)
{
    return WIRE_HEADER_BYTES + WIRE_MESSAGE_BASE_BYTES + message_body_bytes(m);
}

/* A write position with the room checked once, up front, by the caller. */
struct writer
{
    uint8_t *p;
};

static void put_u8(struct writer *w, uint8_t v)
{
    *w->p++ = v;
}

static void put_u32(struct writer *w, uint32_t v)
{
    be_put_u32(w->p, v);
    w->p += 4;
}

static void put_u64(struct writer *w, uint64_t v)
{
    be_put_u64(w->p, v);
    w->p += 8;
}

static void put_bytes(struct writer *w, const void *data, size_t n)
{
    if (n > 0) {
        memcpy(w->p, data, n);
        w->p += n;
    }
}

/*
 * The checksum covers the header's first WIRE_CRC_HEADER_BYTES bytes as well as the body:
 * a body alone would leave the type byte unprotected, and HEARTBEAT and SNAPSHOT (two u64
 * each) differ only there, so one flipped bit would turn one into the other.
 */
static uint32_t frame_crc(const uint8_t *header, const uint8_t *body, uint32_t length)
{
    return crc32c(crc32c(0, header, WIRE_CRC_HEADER_BYTES), body, length);
}

void wire_put_header(uint8_t *out, uint8_t type, uint32_t length)
{
    be_put_u32(out, WIRE_MAGIC);
    out[4] = WIRE_VERSION;
    out[5] = type;
    be_put_u16(out + 6, 0);
    be_put_u32(out + 8, length);
    be_put_u32(out + 12, frame_crc(out, out + WIRE_HEADER_BYTES, length));
}

static void put_message_fields(struct writer *w, const struct raft_message *m)
{
    switch (m->type) {
        case RAFT_MSG_APPEND:
            put_u64(w, m->append.prev_index);
            put_u64(w, m->append.prev_term);
            put_u64(w, m->append.commit);
            put_u32(w, m->append.n_entries);
            for (uint32_t i = 0; i < m->append.n_entries; i++) {
                const struct raft_entry *e = &m->append.entries[i];
                lr_implies(e->len > 0, e->buf != NULL);
                put_u64(w, e->term);
                put_u32(w, e->type);
                put_u32(w, e->len);
                put_bytes(w, e->buf, e->len);
            }
            break;
        case RAFT_MSG_APPEND_RESP:
            put_u8(w, m->append_resp.success);
            put_u64(w, m->append_resp.index);
            put_u64(w, m->append_resp.conflict_term);
            put_u64(w, m->append_resp.conflict_index);
            break;
        case RAFT_MSG_VOTE:
            put_u8(w, m->vote.prevote);
            put_u8(w, m->vote.transfer);
            put_u64(w, m->vote.last_index);
            put_u64(w, m->vote.last_term);
            break;
        case RAFT_MSG_VOTE_RESP:
            put_u8(w, m->vote_resp.prevote);
            put_u8(w, m->vote_resp.granted);
            break;
        case RAFT_MSG_HEARTBEAT:
            put_u64(w, m->heartbeat.commit);
            put_u64(w, m->heartbeat.read_seq);
            break;
        case RAFT_MSG_HEARTBEAT_RESP:
            put_u64(w, m->heartbeat_resp.read_seq);
            break;
        case RAFT_MSG_SNAPSHOT:
            put_u64(w, m->snapshot.index);
            put_u64(w, m->snapshot.term);
            break;
        case RAFT_MSG_TIMEOUT_NOW:
            break;
        case RAFT_MSG_READ_INDEX:
            put_u64(w, m->read_index.id);
            break;
        case RAFT_MSG_READ_INDEX_RESP:
            put_u64(w, m->read_index_resp.id);
            put_u64(w, m->read_index_resp.index);
            break;
        default:
            lr_assert(false && "unknown raft message type");
    }
}

int wire_encode_message_into(const struct raft_message *m, uint8_t *out)
{
    lr_assert(message_type_valid(m->type));
    size_t body = WIRE_MESSAGE_BASE_BYTES + message_body_bytes(m);
    if (body > UINT32_MAX) {
        return WIRE_ETOOBIG;
    }
    struct writer w = {out + WIRE_HEADER_BYTES};
    put_u64(&w, m->from);
    put_u64(&w, m->to);
    put_u64(&w, m->term);
    put_message_fields(&w, m);
    lr_assert((size_t)(w.p - out) == WIRE_HEADER_BYTES + body);
    wire_put_header(out, m->type, (uint32_t)body);
    return 0;
}

int wire_encode_message(struct buf *b, const struct raft_message *m)
{
    size_t n = wire_message_bytes(m);
    if (n - WIRE_HEADER_BYTES > UINT32_MAX) {
        return WIRE_ETOOBIG;
    }
    if (buf_reserve(b, n) != 0) {
        return WIRE_ENOMEM;
    }
    int rv = wire_encode_message_into(m, b->data + b->len);
    lr_assert(rv == 0);
    b->len += n;
    return 0;
}

int wire_encode_chunk(struct buf *b, const struct wire_chunk *c)
{
    lr_assert(c->len <= UINT32_MAX - WIRE_CHUNK_HEADER_BYTES);
    lr_implies(c->len > 0, c->data != NULL);
    size_t body = WIRE_CHUNK_HEADER_BYTES + (size_t)c->len;
    if (buf_reserve(b, WIRE_HEADER_BYTES + body) != 0) {
        return WIRE_ENOMEM;
    }
    uint8_t *out = b->data + b->len;
    struct writer w = {out + WIRE_HEADER_BYTES};
    put_u64(&w, c->index);
    put_u64(&w, c->term);
    put_u64(&w, c->offset);
    put_u8(&w, c->last ? 1 : 0);
    put_bytes(&w, c->data, c->len);
    lr_assert((size_t)(w.p - out) == WIRE_HEADER_BYTES + body);
    wire_put_header(out, WIRE_SNAPSHOT_CHUNK, (uint32_t)body);
    b->len += WIRE_HEADER_BYTES + body;
    return 0;
}

int wire_encode_have(struct buf *b, const struct wire_have *h)
{
    if (buf_reserve(b, WIRE_HEADER_BYTES + WIRE_HAVE_BYTES) != 0) {
        return WIRE_ENOMEM;
    }
    uint8_t *out = b->data + b->len;
    struct writer w = {out + WIRE_HEADER_BYTES};
    put_u64(&w, h->index);
    put_u64(&w, h->term);
    wire_put_header(out, WIRE_SNAPSHOT_HAVE, WIRE_HAVE_BYTES);
    b->len += WIRE_HEADER_BYTES + WIRE_HAVE_BYTES;
    return 0;
}

int wire_seal_node_frame(uint8_t *out, uint8_t type, size_t len)
{
    lr_assert(type >= WIRE_NODE_FRAME_MIN);
    if (len > UINT32_MAX) {
        return WIRE_ETOOBIG;
    }
    wire_put_header(out, type, (uint32_t)len);
    return 0;
}

int wire_encode_node_frame(struct buf *b, uint8_t type, const void *body, size_t len)
{
    lr_assert(type >= WIRE_NODE_FRAME_MIN);
    lr_implies(len > 0, body != NULL);
    if (len > UINT32_MAX) {
        return WIRE_ETOOBIG;
    }
    if (buf_reserve(b, WIRE_HEADER_BYTES + len) != 0) {
        return WIRE_ENOMEM;
    }
    uint8_t *out = b->data + b->len;
    struct writer w = {out + WIRE_HEADER_BYTES};
    put_bytes(&w, body, len);
    wire_put_header(out, type, (uint32_t)len);
    b->len += WIRE_HEADER_BYTES + len;
    return 0;
}

int wire_decode_header(const uint8_t *p, const struct wire_limits *limits, struct wire_header *h)
{
    if (be_get_u32(p) != WIRE_MAGIC) {
        return WIRE_EMAGIC;
    }
    h->version = p[4];
    h->type = p[5];
    h->flags = be_get_u16(p + 6);
    h->length = be_get_u32(p + 8);
    h->crc = be_get_u32(p + 12);
    if (h->version != WIRE_VERSION) {
        return WIRE_EVERSION;
    }
    if (!frame_type_valid(h->type)) {
        return WIRE_ETYPE;
    }
    if (h->flags != 0) {
        return WIRE_EFLAGS;
    }
    uint32_t max = limits->frame_bytes_max;
    if (wire_type_opening(h->type) || h->type == WIRE_SNAPSHOT_HAVE) {
        max = limits->handshake_bytes_max;
    } else if (h->type == WIRE_SNAPSHOT_CHUNK) {
        max = limits->chunk_bytes_max;
    }
    if (h->length > max) {
        return WIRE_ETOOBIG;
    }
    return 0;
}

static bool get_bool(struct cursor *c, bool *v, int *rv)
{
    uint8_t b = 0;
    if (!cursor_get_u8(c, &b)) {
        *rv = WIRE_ETRUNCATED;
        return false;
    }
    if (b > 1) {
        *rv = WIRE_EINVAL;
        return false;
    }
    *v = b == 1;
    return true;
}

/* Reads the entries of an APPEND, after n_entries. Allocates the array only once the count
 * is known to fit both the limit and the bytes left. */
static int decode_entries(struct cursor *c,
                          uint32_t n,
                          const struct wire_limits *limits,
                          struct raft_message *m)
{
    if (n > limits->entries_max) {
        return WIRE_ETOOMANY;
    }
    if (n > c->left / WIRE_ENTRY_HEADER_BYTES) {
        return WIRE_ETRUNCATED;
    }
    m->append.n_entries = n;
    m->append.entries = NULL;
    if (n == 0) {
        return 0;
    }
    struct raft_entry *entries = calloc(n, sizeof(*entries));
    if (entries == NULL) {
        return WIRE_ENOMEM;
    }
    int rv = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct raft_entry *e = &entries[i];
        const uint8_t *data = NULL;
        if (!cursor_get_u64(c, &e->term) || !cursor_get_u32(c, &e->type) ||
            !cursor_get_u32(c, &e->len) || !cursor_get_bytes(c, e->len, &data)) {
            rv = WIRE_ETRUNCATED;
            goto err_after_alloc;
        }
        if (e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONFIG) {
            rv = WIRE_EINVAL;
            goto err_after_alloc;
        }
        e->buf = e->len > 0 ? data : NULL;
    }
    m->append.entries = entries;
    return 0;

err_after_alloc:
    free(entries);
    return rv;
}

/* Reads the fields after from, to and term. */
static int decode_message_fields(struct cursor *c,
                                 const struct wire_limits *limits,
                                 struct raft_message *m)
{
    int rv = WIRE_ETRUNCATED;
    uint32_t n = 0;
    switch (m->type) {
        case RAFT_MSG_APPEND:
            if (!cursor_get_u64(c, &m->append.prev_index) ||
                !cursor_get_u64(c, &m->append.prev_term) || !cursor_get_u64(c, &m->append.commit) ||
                !cursor_get_u32(c, &n)) {
                return WIRE_ETRUNCATED;
            }
            return decode_entries(c, n, limits, m);
        case RAFT_MSG_APPEND_RESP:
            if (!get_bool(c, &m->append_resp.success, &rv) ||
                !cursor_get_u64(c, &m->append_resp.index) ||
                !cursor_get_u64(c, &m->append_resp.conflict_term) ||
                !cursor_get_u64(c, &m->append_resp.conflict_index)) {
                return rv;
            }
            return 0;
        case RAFT_MSG_VOTE:
            if (!get_bool(c, &m->vote.prevote, &rv) || !get_bool(c, &m->vote.transfer, &rv) ||
                !cursor_get_u64(c, &m->vote.last_index) || !cursor_get_u64(c, &m->vote.last_term)) {
                return rv;
            }
            return 0;
        case RAFT_MSG_VOTE_RESP:
            if (!get_bool(c, &m->vote_resp.prevote, &rv) ||
                !get_bool(c, &m->vote_resp.granted, &rv)) {
                return rv;
            }
            return 0;
        case RAFT_MSG_HEARTBEAT:
            if (!cursor_get_u64(c, &m->heartbeat.commit) ||
                !cursor_get_u64(c, &m->heartbeat.read_seq)) {
                return WIRE_ETRUNCATED;
            }
            return 0;
        case RAFT_MSG_HEARTBEAT_RESP:
            return cursor_get_u64(c, &m->heartbeat_resp.read_seq) ? 0 : WIRE_ETRUNCATED;
        case RAFT_MSG_SNAPSHOT:
            if (!cursor_get_u64(c, &m->snapshot.index) || !cursor_get_u64(c, &m->snapshot.term)) {
                return WIRE_ETRUNCATED;
            }
            return 0;
        case RAFT_MSG_TIMEOUT_NOW:
            return 0;
        case RAFT_MSG_READ_INDEX:
            return cursor_get_u64(c, &m->read_index.id) ? 0 : WIRE_ETRUNCATED;
        case RAFT_MSG_READ_INDEX_RESP:
            if (!cursor_get_u64(c, &m->read_index_resp.id) ||
                !cursor_get_u64(c, &m->read_index_resp.index)) {
                return WIRE_ETRUNCATED;
            }
            return 0;
        default:
            lr_assert(false && "type checked by wire_decode_header");
    }
}

static int decode_chunk(struct cursor *c, struct wire_chunk *chunk)
{
    int rv = WIRE_ETRUNCATED;
    if (!cursor_get_u64(c, &chunk->index) || !cursor_get_u64(c, &chunk->term) ||
        !cursor_get_u64(c, &chunk->offset) || !get_bool(c, &chunk->last, &rv)) {
        return rv;
    }
    lr_assert(c->left <= UINT32_MAX);
    chunk->len = (uint32_t)c->left;
    const uint8_t *data = NULL;
    bool ok = cursor_get_bytes(c, c->left, &data);
    lr_assert(ok);
    chunk->data = chunk->len > 0 ? data : NULL;
    return 0;
}

int wire_decode_body(const struct wire_header *h,
                     const uint8_t *body,
                     const struct wire_limits *limits,
                     struct wire_frame *f)
{
    uint8_t header[WIRE_CRC_HEADER_BYTES];
    be_put_u32(header, WIRE_MAGIC);
    header[4] = h->version;
    header[5] = h->type;
    be_put_u16(header + 6, h->flags);
    be_put_u32(header + 8, h->length);
    if (frame_crc(header, body, h->length) != h->crc) {
        return WIRE_ECHECKSUM;
    }
    memset(f, 0, sizeof(*f));
    f->type = h->type;
    struct cursor c = cursor_make(body, h->length);
    int rv;
    if (wire_type_opening(h->type)) {
        rv = wire_decode_opening(h->type, &c, f);
    } else if (h->type == WIRE_SNAPSHOT_HAVE) {
        rv = cursor_get_u64(&c, &f->have.index) && cursor_get_u64(&c, &f->have.term)
                 ? 0
                 : WIRE_ETRUNCATED;
    } else if (h->type == WIRE_SNAPSHOT_CHUNK) {
        rv = decode_chunk(&c, &f->chunk);
    } else if (h->type >= WIRE_NODE_FRAME_MIN) {
        f->node.len = h->length;
        f->node.body = h->length > 0 ? body : NULL;
        c.left = 0;
        rv = 0;
    } else {
        lr_assert(message_type_valid(h->type));
        struct raft_message *m = &f->msg;
        m->type = h->type;
        if (!cursor_get_u64(&c, &m->from) || !cursor_get_u64(&c, &m->to) ||
            !cursor_get_u64(&c, &m->term)) {
            return WIRE_ETRUNCATED;
        }
        rv = decode_message_fields(&c, limits, m);
    }
    if (rv != 0) {
        return rv;
    }
    if (c.left != 0) {
        wire_frame_free(f);
        return WIRE_ETRAILING;
    }
    return 0;
}

int64_t wire_decode(const uint8_t *p,
                    size_t len,
                    const struct wire_limits *limits,
                    struct wire_frame *f)
{
    if (len < WIRE_HEADER_BYTES) {
        return 0;
    }
    struct wire_header h;
    int rv = wire_decode_header(p, limits, &h);
    if (rv != 0) {
        return rv;
    }
    if (len - WIRE_HEADER_BYTES < h.length) {
        return 0;
    }
    rv = wire_decode_body(&h, p + WIRE_HEADER_BYTES, limits, f);
    if (rv != 0) {
        return rv;
    }
    return (int64_t)WIRE_HEADER_BYTES + h.length;
}

void wire_frame_free(struct wire_frame *f)
{
    if (f->type == RAFT_MSG_APPEND) {
        free(f->msg.append.entries);
        f->msg.append.entries = NULL;
        f->msg.append.n_entries = 0;
    }
}
