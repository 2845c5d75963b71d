/*
 * What the files of the peer transport share: its state and the functions one file calls
 * in another. Not part of the API: transport.h is.
 *
 *   transport.c       start and close, the peer table, handle accounting, queries
 *   send.c            transport_send*(): which lane a message takes, APPEND coalescing
 *   sendq.c           each lane's bounded queue of encoded frames and its writes
 *   bufpool.c         the spare big buffers, reused warm
 *   link.c            outgoing connections: connect, handshake, reconnect with backoff
 *   conn.c            incoming connections: accept, challenge, read and dispatch frames
 *   conn_auth.c       the acceptor's side of the opening exchange, its rate-limited lines
 *   snapshot_send.c   streaming a snapshot file in chunks, paced by the bulk queue
 *   snapshot_recv.c   receiving one: chunks into a file, fsync and verify off the loop
 *
 * Handles: one listener; per peer, for each of its two lanes (control and bulk), one
 * reconnect timer and one TCP handle (the outgoing connection); one TCP handle per accepted
 * connection; one housekeeping timer that closes incoming connections which do not say who
 * they are in time and frees idle spare buffers. A received snapshot's fsync and check run
 * on the libuv threadpool, each counted like a handle. handles_open counts them all;
 * transport_close() closes them all and frees the transport in the close callback that
 * brings the count to zero (transport_handle_gone).
 *
 * Lanes: a heartbeat must not wait behind a 16 MiB APPEND, neither in our queue nor in the
 * kernel's socket buffers nor in the receiver's read of one frame, or the follower's
 * election timer fires while its leader is alive (Raft paper 5.2: followers time out when
 * no AppendEntries or heartbeat arrives). So each peer gets two outgoing connections with
 * a queue each; message_lane() in send.c says which carries what. Within a lane, frames
 * stay in order (the chunks of a snapshot before its SNAPSHOT message; forwarded commands
 * in the order of their clients); across lanes they may overtake each other, which the core
 * tolerates as it tolerates any reordering network (paper 5.3: stale and out-of-order
 * AppendEntries are rejected or ignored; heartbeats carry at most the follower's match).
 *
 * Threading: loop thread only, apart from the check of snapshot_recv.c on the threadpool.
 */
#ifndef LUARAFT_PEER_TRANSPORT_INTERNAL_H
#define LUARAFT_PEER_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "peer/peer_auth.h"
#include "peer/transport.h"
#include "peer/wire.h"
#include "util/buf.h"
#include "util/log.h"

/* Buffers of this size and more are kept as spares after use (bufpool.c)... */
#define SPARE_BYTES_MIN (1024 * 1024)
/* ...up to this many, of this many bytes in all, */
#define SPARES_MAX 4
#define SPARE_BYTES_MAX (256ULL * 1024 * 1024)
/* ...for this long unused. */
#define SPARE_IDLE_MS 10000
/* Room for an incoming snapshot file's path. */
#define SNAP_PATH_BYTES 512
/* The default bound of each lane's queue; snapshot_send.c paces its chunks below it. */
#define SEND_QUEUE_BYTES_MAX_DEFAULT (64ULL * 1024 * 1024)

enum lane { LANE_CONTROL, LANE_BULK, LANES };

/* What makes two APPENDs with entries to one peer carry the same entries: one leader (the
 * term) sends the same range after the same point, and a leader never changes an entry of
 * its own log (Raft paper 5.3, Log Matching). commit may differ; heartbeats carry it too. */
struct append_key
{
    raft_term term;
    raft_index prev_index;
    raft_term prev_term;
    uint32_t n_entries;
};

struct out_frame
{
    struct out_frame *next;
    bool keyed; /* an APPEND with entries: key is set */
    struct append_key key;
    struct buf b;
};

/* CONNECTING: TCP connecting; CHALLENGE: connected, waiting for the acceptor's challenge;
 * VERDICT: the handshake is written, waiting for WIRE_ACCEPTED; UP: frames flow. */
enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_CHALLENGE, LINK_VERDICT, LINK_UP, LINK_CLOSING };

/* The longest frame an acceptor sends: WIRE_REFUSED with the longest reason. */
#define LINK_IN_BYTES (WIRE_HEADER_BYTES + WIRE_REASON_BYTES_MAX)

/* One outgoing connection of a peer: the lane's queue, its reconnect timer and backoff. */
struct link
{
    struct peer *p;
    enum lane lane;
    enum link_state state;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_timer_t timer;
    uint32_t backoff_ms;
    uint64_t up_since_ms;
    struct out_frame *head, *tail; /* queued, not yet handed to uv_write */
    uint64_t queue_bytes;          /* queued plus in flight */
    bool writing;
    struct write_req *inflight; /* while writing */
    uint8_t in[LINK_IN_BYTES];  /* the acceptor's frames, while CHALLENGE or VERDICT */
    size_t in_len;
    uint32_t said_crc; /* the CRC-32C of the last refusal logged, 0 after an accepted one */
    uint64_t said_ms;  /* when it was logged */
};

enum recv_state {
    RECV_NONE,
    RECV_WRITING,  /* chunks arriving into fd */
    RECV_CHECKING, /* the last chunk is in; fsync and verify run on the threadpool */
    RECV_VERIFIED, /* durable and verified, waiting for its SNAPSHOT message */
};

/*
 * The snapshot file being received from a peer, or the verified one held for it. Kept per
 * peer rather than per connection: a verified file outlives the connection that brought it,
 * so that when its SNAPSHOT message was lost and the leader streams it again, the receiver
 * answers with WIRE_SNAPSHOT_HAVE instead of taking the whole body once more.
 */
struct snap_recv
{
    enum recv_state state;
    int fd; /* while RECV_WRITING, else -1 */
    raft_index index;
    raft_term term;
    uint64_t next_offset;
    uint64_t seq;             /* names the file; tells a finished check if it is still wanted */
    const struct conn *owner; /* the connection whose chunks write the file */
    bool msg_waiting;         /* msg came, to deliver once the file is verified */
    struct raft_message msg;
    char path[SNAP_PATH_BYTES]; /* "" when no file is ours */
};

struct peer
{
    struct transport *t;
    raft_id id;
    char host[64];
    int port;
    struct sockaddr_storage addr;
    struct link links[LANES];
    struct snap_send *snap; /* on the bulk lane */
    struct snap_recv recv;
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1]; /* from its handshake */
    /* Its handles open (link timers and connections, snapshot checks): a peer removed by
     * transport_set_peers is freed when the last one closes. */
    unsigned handles;
    bool removed;
};

struct conn
{
    struct transport *t;
    struct conn *next;
    uv_tcp_t tcp;
    bool closing;
    bool bulk;      /* the handshake opened a bulk connection */
    struct peer *p; /* NULL until the handshake */
    uint64_t accepted_ms;
    char addr[64];
    uint8_t nonce[WIRE_NONCE_BYTES]; /* the challenge sent at accept */
    struct buf in;
};

/* The rate limit of the lines of connections refused before their handshake was taken
 * (conn_auth.c): a burst of this many lines, then one per REFUSAL_REFILL_MS. */
#define REFUSAL_BURST 10

/* The rate limit of the lines of connections refused before their handshake was taken. */
struct refusal_log
{
    unsigned tokens;     /* lines that may be written now */
    uint64_t refill_ms;  /* when the last token came */
    uint64_t suppressed; /* lines left out since the last one written */
};

struct spare
{
    struct buf b;
    uint64_t since_ms;
};

struct transport
{
    uv_loop_t *loop;
    raft_id self;
    char cluster_id[WIRE_CLUSTER_ID_BYTES_MAX + 1];
    char client_addr[WIRE_CLIENT_ADDR_BYTES_MAX + 1];
    char dir[SNAP_PATH_BYTES];
    uint64_t send_queue_bytes_max;
    uint32_t reconnect_ms_min;
    uint32_t reconnect_ms_max;
    struct wire_limits limits;
    struct transport_callbacks cb;
    bool auth;                   /* a peer key is set */
    uint8_t key[PEER_KEY_BYTES]; /* when auth */
    struct refusal_log refusals;
    uv_tcp_t listen;
    /* The listen host with port 0, when it names one address (not 0.0.0.0 or ::): the
     * outgoing links bind to it, so that they leave from the node's own address on a
     * multi-homed host (and rules by source address see them as this node's). */
    struct sockaddr_storage source;
    bool bind_source;
    uv_timer_t housekeeping;
    struct peer **peers; /* each allocated on its own: handles point into it */
    unsigned n_peers, cap_peers;
    struct conn *conns;
    uint64_t snap_seq;      /* names incoming snapshot files uniquely */
    uint8_t *chunk_scratch; /* SNAPSHOT_CHUNK_BYTES, allocated with the first stream */
    struct spare spares[SPARES_MAX];
    unsigned n_spares;
    struct transport_stats stats;
    unsigned handles_open;
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

/* transport.c */

/* The peer of that id, or NULL. */
struct peer *peer_find(const struct transport *t, raft_id id);
/* Every handle's close callback, and every finished threadpool job, ends here; the last
 * one, once the transport is closing, frees it. */
void transport_handle_gone(struct transport *t);
/* A handle of peer p opened, or closed (its close callback, or a finished job): counted
 * for the transport too; a removed peer goes with its last one. */
void peer_handle_open(struct peer *p);
void peer_handle_gone(struct peer *p);

/* bufpool.c */

/* An empty buffer with room for n bytes, a spare if one fits. Errors: -1. */
int frame_buf_get(struct transport *t, struct buf *b, size_t n);
/* Takes *b back, to keep as a spare or free; leaves it empty. */
void frame_buf_put(struct transport *t, struct buf *b);
/* Frees the spares unused for idle_ms or more (0: all of them). */
void spares_free(struct transport *t, uint64_t idle_ms);

/* sendq.c */

/* A frame with room for n bytes, or NULL. */
struct out_frame *out_frame_new(struct transport *t, size_t n);
void out_frame_free(struct transport *t, struct out_frame *f);
/* Encodes m into a new frame, or NULL (*rv says why). */
struct out_frame *out_frame_encode_message(struct transport *t,
                                           const struct raft_message *m,
                                           int *rv);
/* Appends an encoded frame to the lane's queue, whatever its bound, and starts a write if
 * none is running. */
void link_enqueue(struct link *l, struct out_frame *f);
/* Queues an encoded frame on a lane, or says why not (TRANSPORT_ENOTCONN, _EQUEUE). Takes f
 * either way. */
int link_send(struct link *l, struct out_frame *f);
/* Frees every frame queued and not yet handed to uv_write. */
void link_queue_drop(struct link *l);
/* True when an APPEND with the same entries is still queued or being written on the lane. */
bool link_holds_append(const struct link *l, const struct append_key *k);

/* link.c */

/* Starts the lane's reconnect timer and its first connection. */
void link_start(struct link *l);
/* Ends an outgoing connection, to reconnect after the backoff. */
void link_down(struct link *l, const char *why);
/* At transport_close(): closes the lane's timer and connection and drops its queue. */
void link_close(struct link *l);

/* conn.c */

/* Closes an incoming connection, with the log line when why is not NULL. */
void conn_close(struct conn *c, const char *why);

/* The listener's connection callback. */
void conn_accept_cb(uv_stream_t *server, int status);
/* Closes incoming connections that have not said who they are in time. */
void conns_expire_handshakes(struct transport *t);
/* transport_set_peers removed p: closes its incoming connections. */
void conns_drop_peer(struct transport *t, struct peer *p);
/* At transport_close(): closes every incoming connection, without a word. */
void conns_close_all(struct transport *t);

/* conn_auth.c */

/* Writes the challenge of a connection just accepted. Errors: -1 (why in *why). */
int conn_send_challenge(struct conn *c, const char **why);
/* Takes the handshake of c, or says why not (NULL: taken, and WIRE_ACCEPTED written).
 * The verdict is written either way. */
const char *conn_take_handshake(struct conn *c, const struct wire_handshake *hs);
/* Writes the line of a connection closed before its handshake was taken, if the rate limit
 * lets it; counts it otherwise. */
void conn_log_refusal(struct conn *c, const char *why);

/* snapshot_send.c */

/* Queues the stream's next chunks while the bulk queue is short of them, and after the
 * last one the SNAPSHOT message; called again after every completed bulk write. */
void snap_send_pump(struct peer *p);
/* The receiver holds the snapshot being streamed to it: skip to the SNAPSHOT message. */
void snap_send_have(struct peer *p, const struct wire_have *h);
/* Stops the stream to p, if any. */
void snap_send_free(struct peer *p);

/* snapshot_recv.c */

/* A snapshot chunk from the peer of incoming connection c. */
void snap_recv_chunk(struct conn *c, const struct wire_chunk *ch);
/* The SNAPSHOT message from the peer of c: delivered with its file once that is verified. */
void snap_recv_message(struct conn *c, struct raft_message *m);
/* Forgets the file (closing and deleting it) unless it was handed over. */
void snap_recv_discard(struct snap_recv *s);

#endif
