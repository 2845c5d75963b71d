/*
 * Peer links on libuv TCP. A node connects to every peer it knows and sends on those
 * connections; it accepts connections from peers and receives on those. Each direction of
 * each pair of nodes has two connections, two lanes:
 *   control  votes and pre-votes, HEARTBEAT and its response, APPEND without entries,
 *            APPEND_RESP, TIMEOUT_NOW, READ_INDEX and its response;
 *   bulk     APPEND with entries, snapshot chunks and the SNAPSHOT message, node-level
 *            frames (transport_send_frame: forwarded commands and their replies).
 * So a heartbeat or a vote never waits behind bulk bytes, in our queues or the kernel's,
 * and a full bulk queue never drops a control message. Each lane keeps its frames in
 * order; a frame of one lane may overtake one of the other (Raft tolerates reordering).
 * A connection opens with an exchange (src/peer/wire.h): the acceptor's challenge, the
 * dialer's handshake (node id, cluster id, the node's client address, the answer to the
 * challenge and, with a peer secret, its proof; its type names the lane), the acceptor's
 * verdict; then it carries the dialer's frames of src/peer/wire.h. With a peer key, a
 * handshake is taken only with a proof that verifies (src/peer/peer_auth.h), on both
 * lanes; a node without one refuses a handshake with a proof, and one with a key a
 * handshake without. Outgoing
 * connections reconnect with exponential backoff, each on its own; each lane of each peer
 * has a send queue bounded by send_queue_bytes_max (a message that does not fit is
 * dropped: Raft retries).
 *
 * A malformed, truncated, oversized or unauthenticated frame closes that connection with
 * a log line; the node goes on. Lines of connections refused before their handshake was
 * taken are rate-limited (a burst of 10, then one per 6 s, with a count of those left out);
 * a dialer logs a refusal once per reason a minute.
 *
 * Snapshots travel in chunks on the bulk lane: transport_send_snapshot() streams a
 * snapshot file; the receiver writes the chunks to a temporary file in its data directory
 * (incoming-<peer>-<seq>.part), and once the last one is in, fsyncs the file and verifies
 * it whole (snapfile_verify) on libuv's threadpool, off the loop thread; only then does it
 * hand the SNAPSHOT message and the file's path to snapshot_cb. A verified file whose
 * SNAPSHOT message has not come yet is held for its peer, across lost connections: when
 * the same snapshot (index, term) is streamed again, the receiver says so at its first
 * chunk and the sender skips to the SNAPSHOT message instead of sending the body again.
 *
 * Threading: loop thread only. Errors: 0 or a negative TRANSPORT_E* code. Callbacks run
 * from the loop, and peer(id, false) also from inside a send function whose write fails at
 * once; none runs after transport_close().
 */
#ifndef LUARAFT_PEER_TRANSPORT_H
#define LUARAFT_PEER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/raft.h"

enum {
    TRANSPORT_ENOTCONN = -400, /* no connection to that peer now: dropped */
    TRANSPORT_EQUEUE = -401,   /* the peer's send queue is full: dropped */
    TRANSPORT_ENOMEM = -402,
    TRANSPORT_EINVAL = -403,  /* unknown peer, bad address, message too big */
    TRANSPORT_ELISTEN = -404, /* cannot listen on the address */
    TRANSPORT_EIO = -405,     /* transport_send_snapshot() cannot open the file */
};

const char *transport_strerror(int rv);

struct transport_peer
{
    raft_id id;
    char host[64]; /* numeric IPv4 or IPv6 */
    int port;
};

struct transport_options
{
    raft_id self;
    const char *listen_host;
    int listen_port;
    const char *cluster_id;  /* peers of another cluster are refused at the handshake */
    const char *client_addr; /* "host:port" of this node's client port, told to peers */
    const char *dir;         /* where incoming snapshot files are written */
    const uint8_t *peer_key; /* PEER_KEY_BYTES (peer_auth.h), or NULL: no peer secret */
    uint64_t send_queue_bytes_max;
    uint32_t reconnect_ms_min;
    uint32_t reconnect_ms_max;
};

struct transport_callbacks
{
    void *arg;
    /* A decoded raft message; entries point into the frame and live during the call. */
    void (*recv)(void *arg, struct raft_message *m);
    /* A complete, verified snapshot file for the SNAPSHOT message m. Its contents are
     * already durable (fsynced); the callee owns the file from then on: renaming it into
     * place and fsyncing the directory is all it needs to do to keep it, or it deletes it. */
    void (*snapshot)(void *arg, struct raft_message *m, const char *path);
    /* A node-level frame (e.g. a forwarded client command); body lives during the call. */
    void (*frame)(void *arg, raft_id from, uint8_t type, const void *body, size_t len);
    /* The control connection to or from a peer came up or went down (bulk connections
     * come and go silently, apart from a log line when one is lost). */
    void (*peer)(void *arg, raft_id id, bool up);
};

/* Frame types for transport_send_frame(), beside the raft messages of wire.h. */
enum {
    TRANSPORT_FRAME_FORWARD = 100,       /* a client command for the leader */
    TRANSPORT_FRAME_FORWARD_REPLY = 101, /* its reply */
    TRANSPORT_FRAME_CHECK = 102,         /* RAFT.CHECK's questions and answers */
    TRANSPORT_FRAME_REMOVED = 103,       /* the leader to a member it removed */
    TRANSPORT_FRAME_SCRIPT = 104         /* the script a node's data directory was made with */
};

struct transport;

/* Listens, and starts connecting to every peer. Zero fields of o take the defaults
 * (send_queue_bytes_max 64 MiB per lane, reconnect 50 ms .. 2 s); listen_host NULL is
 * 0.0.0.0.
 * Errors: TRANSPORT_ELISTEN, _ENOMEM, _EINVAL (errmsg says why). After TRANSPORT_ELISTEN
 * the listener's handle is still closing on loop: a run of the loop frees it. */
int transport_start(struct transport **out,
                    uv_loop_t *loop,
                    const struct transport_options *o,
                    const struct transport_peer *peers,
                    unsigned n_peers,
                    const struct transport_callbacks *cb,
                    char *errmsg,
                    size_t errmsg_size);

/*
 * Sends one raft message to m->to on its lane (above): encodes it at once (APPEND entries
 * must have their payloads; they are copied), so nothing needs to outlive the call. An
 * APPEND whose entries (same term, prev_index, prev_term, n_entries) are still queued or
 * being written to that peer is not queued again (returns 0): the earlier one is only
 * lost with the connection, and this one would be lost with it.
 * Errors: TRANSPORT_ENOTCONN (that lane's connection is down), _EQUEUE (that lane's queue
 * is full), _EINVAL, _ENOMEM.
 */
int transport_send(struct transport *t, const struct raft_message *m);

/* Streams the snapshot file at path to m->to, then the SNAPSHOT message m, on the bulk lane.
 * A stream already under way to that peer for the same index is left to finish (returns
 * 0); one for another index is dropped for this one. The stream stops if the bulk
 * connection goes down. The SNAPSHOT message is queued whatever the queue's bound.
 * Errors: TRANSPORT_ENOTCONN, _EINVAL (unknown peer), _EIO (cannot open the file), _ENOMEM.
 */
int transport_send_snapshot(struct transport *t, const struct raft_message *m, const char *path);

/* Sends a node-level frame (type >= 100) with an opaque body to peer to, on the bulk lane
 * (so node frames keep their order among themselves).
 * Errors: TRANSPORT_ENOTCONN, _EQUEUE, _EINVAL (unknown peer, type < 100, body above
 * frame_bytes_max), _ENOMEM. */
int transport_send_frame(struct transport *t,
                         raft_id to,
                         uint8_t type,
                         const void *body,
                         size_t len);

/* Bytes a caller of transport_send_frame_buf() leaves free at the front of its buffer. */
#define TRANSPORT_FRAME_HEADROOM 16

struct buf;

/*
 * transport_send_frame() without the copy of the body, for bodies of megabytes (a
 * forwarded reply), whose copy into fresh pages on the loop thread is what costs:
 * frame->data[0, TRANSPORT_FRAME_HEADROOM) is room for the frame's header, the body
 * follows up to frame->len. The transport takes the buffer whatever the result (frame is
 * left empty, as buf_init makes it) and frees it once written. Errors: as
 * transport_send_frame(), and _EINVAL when frame->len < TRANSPORT_FRAME_HEADROOM.
 */
int transport_send_frame_buf(struct transport *t, raft_id to, uint8_t type, struct buf *frame);

/*
 * Makes the peer table peers (self, if listed, is skipped): a peer no longer listed, or
 * listed at another address, is disconnected (its queues and snapshot streams dropped,
 * its incoming connections closed, its handshakes refused from then on); a new one is
 * connected to. Returns 0, or TRANSPORT_EINVAL/_ENOMEM when some peer could not be added
 * (the others are).
 */
int transport_set_peers(struct transport *t, const struct transport_peer *peers, unsigned n_peers);

/* True while the outgoing control connection to peer id is up. */
bool transport_connected(const struct transport *t, raft_id id);

/* Counters since transport_start(), for specs and reports. */
struct transport_stats
{
    uint64_t frames_queued[2];    /* frames queued on [0] control, [1] bulk connections */
    uint64_t snapshot_bytes_sent; /* file bytes queued in snapshot chunks */
    uint64_t snapshots_held;      /* streams cut short: the receiver held the file already */
    uint64_t appends_coalesced;   /* APPENDs not queued: the same entries were still queued */
};

void transport_get_stats(const struct transport *t, struct transport_stats *out);

/* The client address peer id told us in its handshake, or NULL. */
const char *transport_client_addr(const struct transport *t, raft_id id);

/* Closes every connection and the listener, frees the transport, then calls closed(arg). */
void transport_close(struct transport *t, void (*closed)(void *arg), void *arg);

#endif
