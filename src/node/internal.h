/*
 * The node's rooms and what they share. One struct node holds the state of every room;
 * each room's file owns its part of it (see README.md, Layout):
 *
 *   node.c        node_step(): the only caller of raft_step(), and the carrying out of
 *                 each update in the order raft.h binds (persist, send, apply, reads)
 *   log_cache.c   the log's tail in memory, with payloads, for AppendEntries and applies
 *   durability.c  persist requests, messages held until durable, the store-failure policy
 *   writes.c      proposal batches, pending index -> origin, forwards, deadlines
 *   reads.c       read batches, ReadIndex results, queries
 *   apply.c       committed entries to the fsm thread and its results back to the rooms
 *   snapshots.c   take, install, prune, back off
 *   check.c       RAFT.CHECK: every replica's state hash at one index
 *   backup.c      RAFT.BACKUP: a snapshot copied where the operator says
 *   members.c     the configuration in force with every member's addresses (CONFIG
 *                 entries, snapshots) and the peers it makes; members_change.c:
 *                 RAFT.ADD, RAFT.REMOVE, RAFT.MEMBERS, the promotion of learners
 *   transfer.c    leadership transfer (RAFT.TRANSFER, a graceful shutdown's): its target,
 *                 phases, deadlines and outcome, and the elections counted by cause
 *   commands.c    routing of client commands, the built-in commands
 *   metrics.c     counters and histograms the rooms feed, and /metrics's text
 *   status.c      /status's JSON and /health's verdict
 *   boot.c        the core and the log cache from loaded state
 *   config.c      --cluster and the stored cluster file
 *   runtime*.c    the real world: libuv loop, LMDB store, peer transport, fsm thread,
 *                 client port, HTTP port, signals (runtime.h); src/sim/nodes/ drives the same rooms
 *                 with a simulated one
 *
 * The rooms never step the core themselves: they report what happened to node_step() as
 * an event, so the split closes no circle. Everything they need from the world goes
 * through struct node_io, so the node's decisions can be driven deterministically.
 */
#ifndef LUARAFT_NODE_INTERNAL_H
#define LUARAFT_NODE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm/job.h"
#include "node/check.h"
#include "node/metrics.h"
#include "node/node.h"
#include "raft/raft.h"
#include "store/store.h"
#include "util/buf.h"

struct server_request; /* a client command awaiting its answer (opaque to the node) */
struct session;        /* a client connection (session.h) */

/* Named limits of the node, units last. */
enum {
    /* A follower waits this much longer than the leader's write deadline
     * (--write-timeout-ms) for a forwarded write's answer, so that the leader's own
     * -TIMEOUT usually comes first. */
    node_forward_grace_ms = 5000,
    node_read_timeout_ms = 10000,        /* a read that cannot be served in time: retry */
    node_snapshot_backoff_ms_min = 1000, /* after a failed snapshot */
    node_snapshot_backoff_ms_max = 60000,
    node_errmsg_bytes = 512,
    /* Free bytes in front of a node frame's body (TRANSPORT_FRAME_HEADROOM, checked in
     * writes.c), and in front of a reply for a forwarded write: the frame header and
     * the forward id, so a reply of megabytes goes out without a copy. */
    node_frame_headroom = 16,
    node_reply_headroom = node_frame_headroom + 8,
    node_info_bytes_max = 4096,
    node_snap_path_bytes_max = 512,
    /* A command's argv blob above this is refused before it is proposed: it must fit a
     * peer frame (64 MiB) with room for the entry header and other entries. */
    node_command_bytes_max = 32 << 20,
    /* A learner is promoted to voter once its log is within this many entries of the
     * leader's last index (members.c). */
    node_promote_lag_entries = 256,
    node_addr_text_bytes = 96, /* "host:port" of a member as the address book keeps it */
    node_cluster_id_bytes = 24,
    node_gone_ms = 5000, /* a removed member stays a peer this long (members.c) */
};

/* What the client port's connections hold (client_memory.c), for INFO and /metrics: all
 * their buffers, the largest client's, and the clients evicted for --client-memory. */
struct node_client_memory
{
    uint64_t held_bytes, largest_bytes, evicted;
};

/* What the node needs from the world. Calls are made on the loop thread; completions
 * come back through the node_* entry points of node.h's internal part below. */
struct node_io
{
    void *arg;
    uint64_t (*now_ms)(void *arg); /* monotonic, for deadlines */
    int64_t (*wall_ms)(void *arg); /* the leader time stamped into entries */
    /* Starts a persist request; node_persisted(n, ctx, status) follows, in order. */
    int (*persist)(void *arg, const struct store_write *w, void *ctx);
    void (*send)(void *arg, const struct raft_message *m);
    void (*send_snapshot)(void *arg, const struct raft_message *m, const char *path);
    /* Sends a node frame (peer/transport.h) built in place: frame->data starts with
     * node_frame_headroom free bytes, the body follows. Takes the buffer whatever the
     * result. Returns 0, or an error if it cannot be sent (no connection). */
    int (*send_frame)(void *arg, raft_id to, uint8_t type, struct buf *frame);
    /* Calls fn for each durable entry first..last, whose buf lives during the call.
     * Returns 0, fn's result if not 0, or a store error. */
    int (*read_entries)(void *arg,
                        raft_index first,
                        raft_index last,
                        int (*fn)(void *fnarg, raft_index index, const struct raft_entry *e),
                        void *fnarg);
    /* Queues a job for the fsm thread; node_fsm_done(n, job) follows, in order. A
     * SNAPSHOT job ends with node_snapshot_written() once its file is complete. */
    void (*fsm_submit)(void *arg, struct fsm_job *job);
    void (*reply)(void *arg, struct server_request *req, const void *resp, size_t len);
    /* A word kept with req until it is answered (server_request_set_tag), NULL at first. */
    void (*set_tag)(void *arg, struct server_request *req, void *tag);
    void *(*tag_of)(void *arg, struct server_request *req);
    /* From req on, its connection speaks RESP version proto (2 or 3). */
    void (*set_protocol)(void *arg, struct server_request *req, int proto);
    /* Optional: req's connection's limits, small until it authenticates (auth.c). */
    void (*set_authenticated)(void *arg, struct server_request *req, bool on);
    /* Closes req's connection once req is answered and written (QUIT). */
    void (*close_after)(void *arg, struct server_request *req);
    /* Makes the received snapshot file at incoming durable under the name of the
     * snapshot (index, term), written to path. Returns 0 or a negative errno. */
    int (*snapshot_install)(void *arg,
                            const char *incoming,
                            raft_index index,
                            raft_term term,
                            char *path,
                            size_t path_size);
    /* Removes snapshot files older than index. */
    void (*snapshot_prune)(void *arg, raft_index index);
    /* Writes the snapshot file snap_path (of index, term) as a backup at dst
     * (store/backupfile.h), off the loop thread; node_backup_done(n, ctx, ...) follows.
     * NULL where backups cannot be written (a simulated world). */
    void (*backup)(void *arg,
                   const char *snap_path,
                   raft_index index,
                   raft_term term,
                   const char *dst,
                   void *ctx);
    const char *(*peer_client_addr)(void *arg, raft_id id);
    /* The configuration in force changed: connect to these members (self among them is
     * skipped), and to no other. NULL where peers are fixed (a simulated world). */
    void (*set_peers)(void *arg, const struct node_member *m, int n);
    bool (*peer_connected)(void *arg, raft_id id);
    uint32_t (*clients)(void *arg);
    void (*client_memory)(void *arg, struct node_client_memory *m); /* optional */
    uint64_t (*lua_memory)(void *arg); /* the Lua heap's bytes; optional */
    /* The node cannot go on (its store lost what it acknowledged): never returns in the
     * real world; a simulator marks the node crashed. */
    void (*fatal)(void *arg, const char *msg);
    /* A log line; NULL: to stderr. */
    void (*log)(void *arg, const char *line);
};

/* Who waits for a write: a local client, or a follower that forwarded it to us. */
struct origin
{
    struct server_request *req; /* NULL: remote */
    raft_id peer;
    uint64_t fwd_id;
};

struct cache_entry
{
    raft_term term;
    uint32_t type;
    uint32_t len;
    void *buf;
};

/* Entries first..first+n-1 live at e[off..off+n). The payloads of a prefix of them, up to
 * evicted, are in the store only (buf NULL): the cache holds at most --log-cache-bytes of
 * payloads, and lets go only of entries that are durable here and handed to the fsm. */
struct log_cache
{
    struct cache_entry *e;
    size_t off, n, cap;
    raft_index first;
    raft_index evicted; /* payloads of entries first..evicted are in the store only */
    uint64_t bytes;     /* payload bytes held in memory */
    uint64_t log_bytes; /* payload bytes of every entry, held or not (snapshot trigger) */
};

struct held;
struct durability
{
    uint64_t submitted, done; /* persist requests, in order */
    raft_index durable;       /* the log is durable here up to this index */
    struct held *held;
    size_t held_off, held_n, held_cap;
    bool store_failed;
    int store_status; /* why it failed: a STORE_E* code */
};

struct pending;
struct proposal;
struct forward;
struct writes
{
    struct pending *pend;
    size_t pend_off, pend_n, pend_cap;
    struct proposal *props;
    size_t props_n, props_cap;
    uint64_t props_bytes;
    struct forward *fwds;
    size_t fwds_n, fwds_cap;
    uint64_t fwd_seq;
    int64_t last_time_ms;
    uint64_t last_propose_ms; /* node_now() of the last proposal, for TICKs */
};

struct read_item
{
    struct server_request *req;
    struct session *watch; /* a WATCH: answered by the node with the batch's index */
    void *blob;
    size_t len;
};

/* One ReadIndex round: every read of one loop turn. */
struct read_batch
{
    struct read_batch *next;
    uint64_t id;
    raft_index index; /* serve once applied (dispatched) up to here */
    bool confirmed;
    uint64_t deadline_ms;
    struct read_item *items;
    size_t n, cap;
};

struct reads
{
    struct read_batch turn;     /* gathered in this turn */
    struct read_batch *waiting; /* sent to the core */
    uint64_t seq;
};

struct snapshots
{
    raft_index index; /* the newest snapshot file */
    raft_term term;
    char path[node_snap_path_bytes_max];
    bool running;
    uint64_t retry_at_ms;  /* after a failure, no automatic snapshot before this */
    uint64_t log_bytes_at; /* cache.log_bytes of the entries the snapshot covers */
    uint64_t backoff_ms;
    struct server_request **waiters;
    size_t waiters_n, waiters_cap;
    const char *incoming; /* set during the step of a received snapshot */
    bool incoming_used;
};

/* RAFT.BACKUP requests (backup.c). */
struct backups
{
    struct backup_job *waiting; /* for a snapshot that covers them */
    unsigned copying;           /* handed to node_io.backup, not yet done */
};

/* What each peer's data directory was made with (script_check.c). */
struct script_peer
{
    raft_id id;
    bool sent;    /* told our base script on its current connection */
    bool known;   /* its frame arrived: until then its messages are dropped */
    bool foreign; /* its base script is another: its messages are dropped */
    uint64_t sent_ms, logged_ms, asked_ms;
};

struct script_checks
{
    bool has_base;
    struct script_identity base; /* since 0: the script the data directory was made with */
    struct script_peer peers[RAFT_SERVERS_MAX];
    int n;
};

/* RAFT.LOAD (load.c): the one script being checked on the fsm thread, and its caller. */
struct loads
{
    bool checking;
    bool stopped; /* load_stop ran: nobody is answered any more */
    struct origin o;
};

/* A leadership transfer's phases (transfer.c). */
enum transfer_phase {
    TRANSFER_IDLE = 0,
    TRANSFER_DRAINING, /* new writes refused; the ones proposed are being applied */
    TRANSFER_HANDING,  /* the core brings the target up to date and tells it to campaign */
    TRANSFER_ELECTING, /* this node stepped down: waiting to learn who leads */
};

struct transfers
{
    enum transfer_phase phase;
    raft_id target;
    raft_term term;       /* this node's term as the leader that began it */
    uint64_t deadline_ms; /* of the phase under way */
    struct origin o;      /* who waits for the outcome (nobody: a shutdown's transfer) */
    uint64_t done, failed;
    /* Elections this node began, by cause: its election timeout passed (it became a
     * precandidate), or a leader handed it leadership (TIMEOUT_NOW). */
    uint64_t elections_timeout, elections_transfer;
};

/* A member's addresses, as the CONFIG entries and snapshots carry them (members.c). */
struct member_addr
{
    raft_id id;
    char raft[node_addr_text_bytes];
    char client[node_addr_text_bytes]; /* "" when not known */
};

/* The membership room (members.c). */
struct membership
{
    char cluster_id[node_cluster_id_bytes]; /* hex; "" in a simulated world */
    struct member_addr book[2 * RAFT_SERVERS_MAX];
    unsigned book_n;
    bool shown_valid; /* n->members shows the configuration below */
    raft_index shown_index;
    struct raft_members shown;
    bool was_member;     /* this node was in a configuration in force */
    uint64_t removed_ms; /* when the configuration in force left this node out, or 0 */
    struct node_member gone[RAFT_SERVERS_MAX]; /* members removed lately (members.c) */
    uint64_t gone_until_ms[RAFT_SERVERS_MAX];
    raft_index gone_index[RAFT_SERVERS_MAX]; /* of the configuration that left it out */
    bool gone_told[RAFT_SERVERS_MAX];        /* the leader told it (TRANSPORT_FRAME_REMOVED) */
    unsigned gone_n;
    struct node_member peers[RAFT_SERVERS_MAX]; /* as last given to node_io.set_peers */
    int peers_n;
    /* The CONFIG payload of the configuration as of applied_sent (snapshots carry it). */
    struct buf applied;
    /* The client waiting for the leader's change under way: answered once it commits. */
    bool waiting;
    raft_index wait_index;
    raft_term wait_term;
    struct origin wait_o;
    uint64_t wait_deadline_ms;
    uint64_t changes, promotions; /* committed here as leader */
};

struct node
{
    const struct node_config *c;
    const struct node_io *io;
    struct raft *raft;
    struct fsm *fsm; /* owned by the fsm thread; the loop only calls fsm_is_read */

    struct node_member members[RAFT_SERVERS_MAX];
    int n_members;
    char client_addr[node_host_bytes_max + 16];

    struct log_cache cache;
    struct durability dur;
    struct writes wr;
    struct reads rd;
    struct snapshots snap;
    struct checks chk;
    struct backups bk;
    struct transfers tr;
    struct membership mb;

    raft_index applied_sent; /* dispatched to the fsm thread */
    raft_index applied;      /* reported back by it */

    struct session *sessions; /* session.h: one per client connection */
    uint64_t session_seq;
    uint32_t sessions_n;
    uint64_t commands_processed; /* client commands taken, for INFO */
    struct node_metrics metrics; /* for /metrics (metrics.h) */

    enum raft_role role;
    raft_id leader;
    raft_term term;
    bool stopping, recovering; /* recovering: booted with raft_boot.recover_term, not done */
    bool shutting_down;        /* node_shutdown: no new reads or writes; leadership handed over */
    bool stepping_timeout_now; /* node_step is stepping a TIMEOUT_NOW from the leader */

    /* The script this node runs as the world identified it (runtime.c: its file name and
     * hash in hex, struct script_identity), for RAFT.INFO; empty where nobody set them
     * (the simulator). */
    char script_name[SCRIPT_NAME_BYTES_MAX + 1];
    char script_hash[SCRIPT_HASH_HEX_BYTES];
    raft_index script_since; /* the index the script runs from: 0, or a RAFT.LOAD's */
    struct loads ld;
    struct script_checks sc;
};

/* Small growable arrays. */
#define VEC_RESERVE(ptr, len, cap, extra)                     \
    do {                                                      \
        if ((len) + (extra) > (cap)) {                        \
            size_t ncap_ = (cap) ? (cap)*2 : 16;              \
            while (ncap_ < (len) + (extra)) {                 \
                ncap_ *= 2;                                   \
            }                                                 \
            void *p_ = realloc((ptr), ncap_ * sizeof *(ptr)); \
            lr_assert(p_ != NULL);                            \
            (ptr) = p_;                                       \
            (cap) = ncap_;                                    \
        }                                                     \
    } while (0)

/* node.c */
int node_step(struct node *n, struct raft_event *ev);
__attribute__((format(printf, 2, 3))) void node_log(struct node *n, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void node_fatal(struct node *n, const char *fmt, ...);
void node_reply(struct node *n, struct server_request *req, const void *resp, size_t len);
void node_reply_text(struct node *n, struct server_request *req, const char *resp);
uint64_t node_now(struct node *n);
/* A node id as a command gives it: 1 to 19 decimal digits, not 0. */
bool node_parse_id(const char *s, size_t len, raft_id *out);
extern const char node_unknown_reply[];
extern const char node_timeout_reply[];
extern const char node_down_reply[];

/* log_cache.c */
raft_index cache_last(const struct log_cache *c);
struct cache_entry *cache_at(struct log_cache *c, raft_index index);
void cache_truncate(struct log_cache *c, raft_index from);
void cache_reset(struct log_cache *c, raft_index first);
void cache_append(struct log_cache *c, raft_index index, const struct raft_entry *e);
void cache_compact(struct log_cache *c, raft_index to);
void cache_free(struct log_cache *c);
/* Payload bytes of the entries at index <= index (held in memory or not). */
uint64_t cache_bytes_upto(struct log_cache *c, raft_index index);
/* Lets go of the oldest payloads while more than bytes_max are held, up to index upto. */
void cache_evict(struct log_cache *c, uint64_t bytes_max, raft_index upto);
/* Fills in e[0..k) with entries first..first+k-1, reading evicted payloads from the store
 * into *scratch (the caller frees it with buf_free). Returns 0 or a store error. */
int cache_entries(struct node *n,
                  raft_index first,
                  uint32_t k,
                  struct raft_entry *e,
                  struct buf *scratch);
/* Evicts what may go now (after a persist completes or applies are dispatched). */
void node_cache_trim(struct node *n);

/* durability.c */
void durability_persist(struct node *n, const struct raft_update *u);
int durability_submit_plain(struct node *n, const struct store_write *w);
/* Sends m now, or holds it until every persist request submitted so far is durable. */
void durability_send(struct node *n, struct raft_message *m);
void durability_free(struct node *n);
/* The error reply of a node whose store failed: "-ERR this node's store failed (WHY; see
 * its log)" and tail, written into buf. */
const char *durability_failed_reply(const struct node *n, const char *tail, char *buf, size_t size);
void node_send_message(struct node *n, struct raft_message *m);

/* writes.c */
/* A write: a command's argv blob, or a transaction in multi.c's form. */
void writes_take(struct node *n, const void *blob, size_t len, const struct origin *o);
/* On the leader of a script with M.tick_ms: a TICK entry once nothing was proposed for
 * that long, so the log's clock moves while the cluster is idle. */
void writes_tick(struct node *n);
/* This node became leader. */
void writes_leader_start(struct node *n);
/* This turn's proposals so far (transaction.c looks at them for WATCH). */
size_t writes_turn_count(struct node *n);
const struct buf *writes_turn_payload(struct node *n, size_t i);
void writes_propose(struct node *n);
/* On the leader: a CHECK entry (RAFT.CHECK), nobody waiting for its reply. */
void writes_check(struct node *n);
/* Queues a payload (command.h) made elsewhere for this turn's proposal, for o. */
void writes_push(struct node *n, struct buf *payload, const struct origin *o);
bool writes_pending_has(struct node *n, raft_index index);
/* reply: the script's reply for the entry at upto, after node_reply_headroom free bytes
 * (its buffer may be taken), or NULL. */
void writes_resolve(struct node *n, raft_index upto, raft_term term, struct fsm_reply *reply);
void writes_fail_all(struct node *n, const char *resp);
void writes_forward(struct node *n,
                    struct server_request *req,
                    raft_id leader,
                    const void *blob,
                    size_t len);
/* A node command that the leader carries out (RAFT.TRANSFER, ADD, REMOVE): false when this
 * node leads and runs it; else req is answered (shutting down, no leader) or the command
 * forwarded to the leader, whose answer goes to req. */
bool writes_to_leader(struct node *n,
                      struct server_request *req,
                      int argc,
                      const char *const *argv,
                      const size_t *argvlen);
void writes_frame(struct node *n, raft_id from, uint8_t type, const void *body, size_t len);
void writes_expire(struct node *n);
void writes_stop(struct node *n);
void writes_free(struct node *n); /* without answering anyone: the node is gone */
void origin_reply(struct node *n, const struct origin *o, const void *resp, size_t len);
/* "-ERR prefix " and fmt's text, to o. */
void origin_reply_verror(struct node *n,
                         const struct origin *o,
                         const char *prefix,
                         const char *fmt,
                         va_list ap);

/* reads.c */
/* A read of the script, or (watch set) a WATCH of that session, with its keys in blob. */
void reads_take(struct node *n,
                struct server_request *req,
                struct session *watch,
                void *blob,
                size_t len);
void reads_start(struct node *n);
void reads_results(struct node *n, const struct raft_update *u);
void reads_dispatch(struct node *n);
void reads_expire(struct node *n);
void reads_stop(struct node *n);
void reads_free(struct node *n);

/* apply.c */
void apply_dispatch(struct node *n, raft_index commit);

/* snapshots.c */
void snapshots_maybe_start(struct node *n);
void snapshots_request(struct node *n, struct server_request *req);
/* Starts a snapshot unless one is running (for backup.c). */
void snapshots_want(struct node *n);
/* Removes the files older than the newest snapshot, unless a backup copy runs. */
void snapshots_prune(struct node *n);
void snapshots_install(struct node *n, const struct raft_update *u);
void snapshots_restored(struct node *n, const struct fsm_job *job);
void snapshots_stop(struct node *n);
void snapshots_free(struct node *n);

/* backup.c */
void backup_request(struct node *n, struct server_request *req, const char *path, size_t len);
/* A snapshot finished (ok) or failed: start the copies it covers. */
void backups_snapshot_done(struct node *n, bool ok);
void backups_stop(struct node *n);
void backups_free(struct node *n);
/* transfer.c */
/* Whether new writes wait (they get transfer_busy_reply): a transfer is under way. */
bool transfer_blocks_writes(struct node *n);
extern const char transfer_busy_reply[];
/* A write a follower forwarded: true if it was a RAFT.TRANSFER, now taken care of. */
bool transfer_forwarded(struct node *n, const struct origin *o, const void *blob, size_t len);
/* After each update: the outcome, once this node no longer leads (never steps). */
void transfer_observe(struct node *n);
/* From the world's ticks, turns and applies: the next phase, or a deadline. */
void transfer_poll(struct node *n);
/* node_shutdown: a leader hands its leadership to the most caught-up voter. */
void transfer_shutdown(struct node *n);
/* The voter the leader would hand leadership to: connected first, then the most caught
 * up, then the lowest id; 0 if there is none. */
raft_id transfer_choose(struct node *n);
void transfer_stop(struct node *n);
const char *transfer_phase_name(const struct node *n);

/* s authenticated (on) or not any more (RESET). */
void auth_set(struct node *n, struct session *s, struct server_request *req, bool on);
/* Answers -NOAUTH and returns true when s may not run the command name yet. */
bool auth_gate(struct node *n,
               struct server_request *req,
               const struct session *s,
               const char *name,
               size_t len);

/* transaction.c */
bool transaction_is(const void *blob, size_t len);
/* The TRANSACTION payload of a transaction in multi.c's form: 0, 1 if a watched key was
 * written since its WATCH (nothing to propose), -1 if malformed. */
int transaction_payload(struct node *n, const void *blob, size_t len, struct buf *payload);

/* commands.c */
void commands_route(struct node *n,
                    struct server_request *req,
                    struct session *s,
                    int argc,
                    const char *const *argv,
                    const size_t *argvlen);

/*
 * Entry points for the world (runtime.c, or a simulator).
 */

/* Makes a node that talks to the world through io (which must outlive it). */
struct node *node_new(const struct node_config *c, const struct node_io *io, struct fsm *f);

/* What boot needs: the durable state as loaded. The log itself is handed over before,
 * entry by entry, with node_boot_append(). */
struct node_boot_state
{
    raft_term term, recover_term; /* recover_term: raft_boot's (runtime_recover.c) */
    raft_id vote;
    raft_index snapshot_index; /* of the newest snapshot file, restored into the fsm */
    raft_term snapshot_term;
    const char *snapshot_path;
    raft_index stored_snapshot_index; /* what the store records */
    const struct raft_server *servers;
    unsigned n_servers;
    uint64_t random_seed; /* for the core's election timeouts */
};

/* Adds a stored log entry (in index order; the entry is copied). */
void node_boot_append(struct node *n, raft_index index, const struct raft_entry *e);

/* Starts the core from loaded state. Returns 0, or -1 with a message in errmsg. */
int node_boot(struct node *n, const struct node_boot_state *b, char *errmsg, size_t errmsg_size);

void node_tick(struct node *n);
/* The end of a loop turn: propose this turn's writes and start its reads, in batches. */
void node_turn(struct node *n);
void node_receive(struct node *n, struct raft_message *m);
/* A received snapshot with its file; rec is the file's members record (NULL: none, and
 * the configuration in force stands for the snapshot's). */
void node_receive_snapshot(struct node *n,
                           struct raft_message *m,
                           const char *path,
                           const void *rec,
                           size_t rec_len);
void node_frame(struct node *n, raft_id from, uint8_t type, const void *body, size_t len);
/* A client connection opened (its session goes with each of its commands) or closed. */
struct session *node_session_open(struct node *n);
void node_session_close(struct node *n, struct session *s);
/* A client command; s may be NULL (no order, no MULTI, no connection state). */
void node_command(struct node *n,
                  struct server_request *req,
                  struct session *s,
                  int argc,
                  const char *const *argv,
                  const size_t *argvlen);
void node_persisted(struct node *n, void *ctx, int status);
void node_fsm_done(struct node *n, struct fsm_job *job);
/* The snapshot job's file is complete at path (status 0), or it failed. */
void node_snapshot_written(struct node *n,
                           raft_index index,
                           raft_term term,
                           const char *path,
                           int status);
/* A backup copy (node_io.backup) finished: status 0 and its length, or errmsg. */
void node_backup_done(struct node *n, void *ctx, int status, uint64_t bytes, const char *errmsg);
/* A graceful stop begins: new reads and writes are refused (-TRYAGAIN), and a leader hands
 * its leadership to the most caught-up voter. The world calls node_stop once
 * node_shutdown_ready says so, or once its own bound passes. */
void node_shutdown(struct node *n);
bool node_shutdown_ready(const struct node *n);
/* Answers every waiting client (the node is going away) and stops stepping the core. */
void node_stop(struct node *n);
/* Frees everything; whoever still waits is never answered (a crash, in a simulator). */
void node_free(struct node *n);

#include "node/load.h"         /* RAFT.LOAD's */
#include "node/script_check.h" /* every member runs the same script */
#include "node/members.h"      /* the membership room's functions */

#endif
