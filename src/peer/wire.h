/*
 * The peer wire format: framing and the codec of struct raft_message. Pure (no IO), so the
 * transport stays small and the decoder can be fuzzed from specs.
 *
 * A frame is a 16-byte header then a body, every integer big-endian:
 *
 *   magic u32 (WIRE_MAGIC)  version u8  type u8  flags u16 (0)  length u32  crc32c u32
 *
 * length counts the body bytes; crc32c is the CRC-32C of the header's first 12 bytes (magic
 * to length) followed by the body, so that a damaged type or length is caught as surely as
 * a damaged body (HEARTBEAT and SNAPSHOT bodies have the same shape). type is a raft message
 * type (RAFT_MSG_APPEND .. RAFT_MSG_TYPE_MAX, the same numbers) or WIRE_HANDSHAKE.
 *
 * Raft message body: from u64, to u64, term u64, then by type:
 *   APPEND           prev_index u64, prev_term u64, commit u64, n_entries u32, then per
 *                    entry: term u64, type u32, len u32, len payload bytes
 *   APPEND_RESP      success u8, index u64, conflict_term u64, conflict_index u64
 *   VOTE             prevote u8, transfer u8, last_index u64, last_term u64
 *   VOTE_RESP        prevote u8, granted u8
 *   HEARTBEAT        commit u64, read_seq u64
 *   HEARTBEAT_RESP   read_seq u64
 *   SNAPSHOT         index u64, term u64
 *   TIMEOUT_NOW      nothing
 *   READ_INDEX       id u64
 *   READ_INDEX_RESP  id u64, index u64
 * Booleans are one byte, 0 or 1. after_persist is local to a node and not sent.
 *
 * A connection opens with an exchange of four frames, before any raft message is taken:
 *
 *   acceptor -> dialer   WIRE_CHALLENGE: node_id u64 (the acceptor's), flags u8 (bit 0: the
 *                        acceptor has a peer secret and wants a proof; the others 0), then
 *                        WIRE_NONCE_BYTES fresh random bytes, the challenge
 *   dialer -> acceptor   WIRE_HANDSHAKE (a control connection) or WIRE_HANDSHAKE_BULK (a bulk
 *                        one): node_id u64, cluster_id_len u16, cluster_id bytes,
 *                        client_addr_len u16, client_addr bytes (the node's client
 *                        "host:port", printable ASCII without spaces; may be empty), the
 *                        challenge it answers (WIRE_NONCE_BYTES), proof_len u8 (0, or
 *                        WIRE_PROOF_BYTES with a peer secret), proof bytes
 *   acceptor -> dialer   WIRE_ACCEPTED (empty body), or WIRE_REFUSED: reason text (printable
 *                        ASCII, at most WIRE_REASON_BYTES_MAX bytes) before it closes
 *
 * Both handshake types decode to WIRE_HANDSHAKE with handshake.bulk telling them apart.
 * The proof (src/peer/peer_auth.c) is an HMAC under the cluster's secret over every field
 * that says who talks to whom on which lane, in answer to which challenge, so a handshake
 * recorded from one connection proves nothing on another.
 *
 * Snapshot chunk body: index u64, term u64, offset u64, last u8, then the data bytes (the
 * rest of the body). index and term name the snapshot; offset is where data goes in its
 * file; last is 1 on the final chunk.
 *
 * Snapshot-have body: index u64, term u64. Sent by a receiver that already holds that
 * snapshot, verified, when a stream of it starts again: the sender then skips to the
 * SNAPSHOT message instead of sending the file again.
 *
 * Version 3 (this one) added the challenge, the proof and the acceptor's verdict (peer
 * authentication); version 2 added WIRE_HANDSHAKE_BULK and WIRE_SNAPSHOT_HAVE; version 1
 * had one connection per direction. The versions refuse each other at the first header.
 *
 * Node-level frame body (type WIRE_NODE_FRAME_MIN .. 255): opaque bytes, the node's own.
 *
 * A decoder rejects, in this order, and before allocating anything: a bad magic, an
 * unknown version, an unknown type, nonzero flags, a length above the frame's limit
 * (handshake_bytes_max for the frames of the opening exchange and a snapshot-have, chunk_bytes_max
 * for a snapshot chunk, frame_bytes_max for the rest), then a checksum mismatch, then any body
 * field out of bounds, a count the remaining bytes cannot hold, or trailing bytes. A version bump
 * is how the format changes; flags are reserved for it.
 */
#ifndef LUARAFT_PEER_WIRE_H
#define LUARAFT_PEER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "util/buf.h"

#define WIRE_MAGIC 0x4c524654U /* "LRFT" */
#define WIRE_VERSION 3
#define WIRE_HEADER_BYTES 16
#define WIRE_HANDSHAKE 64       /* frame type of the handshake; raft message types are below */
#define WIRE_SNAPSHOT_CHUNK 65  /* frame type of a chunk of a snapshot file */
#define WIRE_SNAPSHOT_HAVE 66   /* frame type of "I hold that snapshot already" */
#define WIRE_HANDSHAKE_BULK 67  /* frame type of the handshake of a bulk connection */
#define WIRE_CHALLENGE 68       /* the acceptor's first frame: its challenge */
#define WIRE_ACCEPTED 69        /* the acceptor took the handshake */
#define WIRE_REFUSED 70         /* the acceptor refused it, and says why */
#define WIRE_NODE_FRAME_MIN 100 /* node-level frame types are WIRE_NODE_FRAME_MIN .. 255 */

/* Bytes of an entry's fixed part (term, type, len): bounds n_entries by the body length. */
#define WIRE_ENTRY_HEADER_BYTES 16

/* The longest cluster id, in bytes. */
#define WIRE_CLUSTER_ID_BYTES_MAX 255

/* The longest client address in a handshake, in bytes. */
#define WIRE_CLIENT_ADDR_BYTES_MAX 255

/* Bytes of a snapshot chunk body before its data (index, term, offset, last). */
#define WIRE_CHUNK_HEADER_BYTES 25

/* Bytes of a snapshot-have body (index, term). */
#define WIRE_HAVE_BYTES 16

/* Bytes of a challenge, and of a handshake's proof (crypto_auth_BYTES). */
#define WIRE_NONCE_BYTES 32
#define WIRE_PROOF_BYTES 32

/* Bytes of a challenge body (node id, flags, the challenge). */
#define WIRE_CHALLENGE_BODY_BYTES (8 + 1 + WIRE_NONCE_BYTES)

/* The longest reason of a WIRE_REFUSED, in bytes. */
#define WIRE_REASON_BYTES_MAX 255

/* Return codes; wire_strerror() names them. */
enum {
    WIRE_EMAGIC = -1,     /* "bad magic" */
    WIRE_EVERSION = -2,   /* "unsupported version" */
    WIRE_ETYPE = -3,      /* "unknown frame type" */
    WIRE_EFLAGS = -4,     /* "unknown flags" */
    WIRE_ETOOBIG = -5,    /* "frame too big" */
    WIRE_ECHECKSUM = -6,  /* "checksum mismatch" */
    WIRE_ETRUNCATED = -7, /* "truncated body" */
    WIRE_ETRAILING = -8,  /* "trailing bytes after body" */
    WIRE_ETOOMANY = -9,   /* "too many entries" */
    WIRE_EINVAL = -10,    /* "invalid field value" */
    WIRE_ENOMEM = -11,    /* "out of memory" */
};

/* Returns a static message for a code above (or "unknown error"). */
const char *wire_strerror(int rv);

/* Limits on what a decoder accepts. */
struct wire_limits
{
    uint32_t frame_bytes_max;     /* body of a raft message frame (default 64 MiB) */
    uint32_t handshake_bytes_max; /* body of a handshake, sent before authentication, and of
                                     a snapshot-have (4 KiB) */
    uint32_t entries_max;         /* entries in one APPEND (4096) */
    uint32_t chunk_bytes_max;     /* body of a snapshot chunk frame (4 MiB) */
};

/* Fills *l with the defaults above. */
void wire_limits_default(struct wire_limits *l);

struct wire_header
{
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t length; /* body bytes */
    uint32_t crc;    /* of the body */
};

struct wire_handshake
{
    raft_id node_id;
    const char *cluster_id;           /* not NUL-terminated; when decoded, points into the frame */
    uint16_t cluster_id_len;          /* 1 .. WIRE_CLUSTER_ID_BYTES_MAX */
    const char *client_addr;          /* likewise; may be NULL when client_addr_len is 0 */
    uint16_t client_addr_len;         /* 0 .. WIRE_CLIENT_ADDR_BYTES_MAX */
    bool bulk;                        /* a bulk connection's handshake (WIRE_HANDSHAKE_BULK) */
    uint8_t answer[WIRE_NONCE_BYTES]; /* the challenge it answers */
    bool has_proof;                   /* the dialer has a peer secret */
    uint8_t proof[WIRE_PROOF_BYTES];  /* when has_proof */
};

/* The acceptor's challenge. */
struct wire_challenge
{
    raft_id node_id; /* the acceptor's */
    bool required;   /* it has a peer secret: a handshake without a proof is refused */
    uint8_t nonce[WIRE_NONCE_BYTES];
};

/* Why the acceptor refused a handshake. */
struct wire_refused
{
    const char *reason; /* not NUL-terminated; when decoded, points into the frame */
    uint16_t len;       /* 0 .. WIRE_REASON_BYTES_MAX */
};

/* A piece of a snapshot file. */
struct wire_chunk
{
    raft_index index; /* the snapshot's last index and term */
    raft_term term;
    uint64_t offset;     /* where data goes in the file */
    bool last;           /* the final chunk */
    const uint8_t *data; /* when decoded, points into the frame */
    uint32_t len;
};

/* A receiver's word that it holds the snapshot (index, term), verified. */
struct wire_have
{
    raft_index index;
    raft_term term;
};

/* A node-level frame's opaque body. */
struct wire_node_frame
{
    const uint8_t *body; /* when decoded, points into the frame */
    uint32_t len;
};

/* A decoded frame: type says which member is valid. */
struct wire_frame
{
    /* a raft message type, WIRE_HANDSHAKE (either lane), WIRE_CHALLENGE, WIRE_ACCEPTED,
     * WIRE_REFUSED, WIRE_SNAPSHOT_CHUNK, WIRE_SNAPSHOT_HAVE or >= 100 */
    uint8_t type;
    union {
        struct raft_message msg;
        struct wire_handshake handshake;
        struct wire_challenge challenge;
        struct wire_refused refused;
        struct wire_chunk chunk;
        struct wire_have have;
        struct wire_node_frame node;
    };
};

/*
 * Returns the bytes of the frame that carries m, header included. For an APPEND,
 * m->append.entries must hold the n_entries entries with their payloads.
 */
size_t wire_message_bytes(const struct raft_message *m);

/*
 * Encodes m as one frame into out, which has room for wire_message_bytes(m) bytes.
 *
 * Errors: WIRE_ETOOBIG (the body would not fit the u32 length; nothing useful is in out).
 */
int wire_encode_message_into(const struct raft_message *m, uint8_t *out);

/* Appends the frame that carries m to b. Errors: WIRE_ETOOBIG; WIRE_ENOMEM (b unchanged). */
int wire_encode_message(struct buf *b, const struct raft_message *m);

/*
 * Appends a handshake frame to b, client address included, of type WIRE_HANDSHAKE_BULK when
 * hs->bulk. hs->cluster_id_len must be 1 .. WIRE_CLUSTER_ID_BYTES_MAX, hs->client_addr_len
 * 0 .. WIRE_CLIENT_ADDR_BYTES_MAX. Errors: WIRE_ENOMEM (b unchanged).
 */
int wire_encode_handshake_addr(struct buf *b, const struct wire_handshake *hs);

/*
 * The same with an empty client address, for a control connection, answering a challenge
 * of zeros without a proof: reads only hs->node_id and hs->cluster_id*, so callers written
 * before those fields existed stay correct. Errors: WIRE_ENOMEM (b unchanged).
 */
int wire_encode_handshake(struct buf *b, const struct wire_handshake *hs);

/* Appends a challenge frame to b. Errors: WIRE_ENOMEM (b unchanged). */
int wire_encode_challenge(struct buf *b, const struct wire_challenge *c);

/* Appends a WIRE_ACCEPTED frame to b. Errors: WIRE_ENOMEM (b unchanged). */
int wire_encode_accepted(struct buf *b);

/* Appends a WIRE_REFUSED frame to b, its reason cut to WIRE_REASON_BYTES_MAX bytes and
 * every byte outside printable ASCII written as '?'. Errors: WIRE_ENOMEM (b unchanged). */
int wire_encode_refused(struct buf *b, const char *reason);

/*
 * Appends a snapshot chunk frame to b. c->len must be at most UINT32_MAX minus
 * WIRE_CHUNK_HEADER_BYTES. Errors: WIRE_ENOMEM (b unchanged).
 */
int wire_encode_chunk(struct buf *b, const struct wire_chunk *c);

/* Appends a snapshot-have frame to b. Errors: WIRE_ENOMEM (b unchanged). */
int wire_encode_have(struct buf *b, const struct wire_have *h);

/*
 * Appends a node-level frame of the given type (>= WIRE_NODE_FRAME_MIN) to b.
 * Errors: WIRE_ETOOBIG (len does not fit the u32 length), WIRE_ENOMEM (b unchanged).
 */
int wire_encode_node_frame(struct buf *b, uint8_t type, const void *body, size_t len);

/*
 * Writes the header of a node-level frame whose len body bytes already follow at
 * out + WIRE_HEADER_BYTES, checksum included: a frame built in place, without copying its
 * body. Errors: WIRE_ETOOBIG (len does not fit the u32 length; out unchanged).
 */
int wire_seal_node_frame(uint8_t *out, uint8_t type, size_t len);

/*
 * Decodes and checks a frame header from WIRE_HEADER_BYTES bytes at p: magic, version,
 * type, flags and the length against the limit of its type. Call it as soon as the header
 * has arrived, and allocate for the body only when it succeeds.
 *
 * Errors: WIRE_EMAGIC, WIRE_EVERSION, WIRE_ETYPE, WIRE_EFLAGS, WIRE_ETOOBIG.
 */
int wire_decode_header(const uint8_t *p, const struct wire_limits *limits, struct wire_header *h);

/*
 * Checks the body's checksum, then decodes it into *f. Zero-copy: entry payloads, the
 * handshake's strings, chunk data and node frame bodies point into body, which must
 * outlive them. For an APPEND with entries, f->msg.append.entries is malloc'ed (at most
 * min(entries_max, length / 16) entries);
 * release it with wire_frame_free().
 *
 * Errors: WIRE_ECHECKSUM, WIRE_ETRUNCATED, WIRE_ETRAILING, WIRE_ETOOMANY, WIRE_EINVAL,
 * WIRE_ENOMEM. *f holds nothing to free after an error.
 */
int wire_decode_body(const struct wire_header *h,
                     const uint8_t *body,
                     const struct wire_limits *limits,
                     struct wire_frame *f);

/*
 * Decodes the frame at the front of p[0, len): header, then body, as above. Returns the
 * frame's size in bytes (> 0), 0 when p holds too little of it yet (a header error is
 * reported as soon as the header is in, without waiting for the body), or an error of
 * wire_decode_header() or wire_decode_body().
 */
int64_t wire_decode(const uint8_t *p,
                    size_t len,
                    const struct wire_limits *limits,
                    struct wire_frame *f);

/* Frees what a successful decode allocated (the entry array). */
void wire_frame_free(struct wire_frame *f);

#endif
