/*
 * The luaraft protocol core: Raft as a pure, deterministic state machine.
 *
 * The core knows no sockets, files, clocks or Lua. A driver (src/sim/ in tests, the node
 * in production) feeds it events with raft_step() and carries out the update it gets
 * back. Time arrives as ticks, randomness from a seed in the configuration, and payload
 * bytes are never read but a membership change's: the core tracks each entry's term and
 * size, and the driver keeps the bytes (it fills outgoing AppendEntries from its own log).
 *
 * Paper references are to Ongaro and Ousterhout, "In Search of an Understandable
 * Consensus Algorithm" (2014), and to Ongaro's thesis "Consensus: Bridging Theory and
 * Practice" (2014) for pre-vote (section 9.6), check-quorum (6.2), leadership transfer
 * (3.10), ReadIndex (6.4) and membership changes (chapter 4).
 *
 * Memory: raft_init() allocates everything whose size the configuration bounds; after that
 * the only allocation is the log's term ring, which doubles up to log_entries_max.
 */
#ifndef LUARAFT_RAFT_H
#define LUARAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id; /* 0 means "nobody" */
typedef uint64_t raft_index;
typedef uint64_t raft_term;

/* Limits fixed at compile time. */
enum {
    RAFT_SERVERS_MAX = 16, /* voters plus learners in one configuration */
};

/* Error codes returned by raft_init() and raft_step(); 0 is success. */
enum {
    RAFT_ENOTLEADER = -1, /* a proposal or transfer on a node that is not the leader */
    RAFT_EBUSY = -2,      /* a leadership transfer is under way: retry after it ends */
    RAFT_ELOGFULL = -3,   /* the log holds log_entries_max entries: take a snapshot */
    RAFT_EINVAL = -4,     /* a malformed event or configuration */
    RAFT_ENOMEM = -5,     /* an allocation failed */
    RAFT_ETOOMANY = -6,   /* too many pending reads (reads_max) */
    RAFT_ECHANGE = -7,    /* a membership change now would be unsafe: the previous one is
                           * not committed, or the leader has not committed in its term */
};

/* Returns a static, human-readable name for an error code. */
const char *raft_strerror(int rv);

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRECANDIDATE = 2, /* running a pre-vote round; the term is not raised yet */
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};

const char *raft_role_name(enum raft_role role);

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* a client command */
    RAFT_ENTRY_NOOP = 2,   /* appended by each new leader (paper section 8) */
    RAFT_ENTRY_CONFIG = 3, /* a membership change: its payload starts with the encoded
                            * configuration (raft_members_encode) */
};

/*
 * A log entry as it crosses the core. The core reads only term, type and len; buf passes
 * through untouched (it may be NULL wherever the driver keeps the payload itself).
 */
struct raft_entry
{
    raft_term term;
    uint32_t type;
    uint32_t len;
    const void *buf;
};

/* One server of a configuration: a voter or a non-voting learner. */
struct raft_server
{
    raft_id id;
    bool voter;
};

/*
 * A configuration (thesis chapter 4). It changes one server at a time, by a CONFIG entry
 * that takes effect on each server as soon as the entry is in its log, committed or not:
 * a learner added, a learner made voter, a voter made learner, or a server removed. Any
 * two configurations one such step apart have overlapping majorities, so no two leaders
 * of one term can be elected or commit apart. The core refuses a change (RAFT_ECHANGE)
 * until the previous one is committed and the leader has committed an entry of its own
 * term: without the latter, a leader could append a change over an uncommitted one of an
 * earlier leader and two steps would be live at once (the bug of the single-server
 * algorithm that Ongaro described in 2015 on raft-dev, fixed by that rule).
 */
struct raft_members
{
    unsigned n;
    struct raft_server servers[RAFT_SERVERS_MAX];
};

/* The encoded form that starts a CONFIG entry's payload: a version byte (1), a count
 * byte, then per server its id (8 bytes, little-endian) and a flags byte (1: voter). The
 * driver may put bytes of its own after it (addresses); the core ignores them. */
enum { RAFT_MEMBERS_BYTES_MAX = 2 + 9 * RAFT_SERVERS_MAX };

/* Writes m's encoding into buf (RAFT_MEMBERS_BYTES_MAX bytes suffice); returns its length,
 * or 0 if m is not a valid configuration (see raft_members_decode) or size too small. */
size_t raft_members_encode(const struct raft_members *m, void *buf, size_t size);

/* Reads a configuration from the start of buf; *used gets the bytes it took. Errors:
 * RAFT_EINVAL for anything else than a version-1 encoding of at most RAFT_SERVERS_MAX
 * servers with distinct non-zero ids and known flags. An empty configuration is valid
 * (a server that joins boots with one). */
int raft_members_decode(const void *buf, size_t len, struct raft_members *m, size_t *used);

/* The server with id in m, or NULL. */
const struct raft_server *raft_members_find(const struct raft_members *m, raft_id id);

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,          /* AppendEntries carrying entries, or a probe */
    RAFT_MSG_APPEND_RESP = 2,     /* result of APPEND or SNAPSHOT */
    RAFT_MSG_VOTE = 3,            /* RequestVote, or a pre-vote when vote.prevote is set */
    RAFT_MSG_VOTE_RESP = 4,       /* */
    RAFT_MSG_HEARTBEAT = 5,       /* leader liveness, commit index, ReadIndex round */
    RAFT_MSG_HEARTBEAT_RESP = 6,  /* */
    RAFT_MSG_SNAPSHOT = 7,        /* InstallSnapshot; the driver streams the data */
    RAFT_MSG_TIMEOUT_NOW = 8,     /* leadership transfer: campaign at once */
    RAFT_MSG_READ_INDEX = 9,      /* a follower asks the leader for a read index */
    RAFT_MSG_READ_INDEX_RESP = 10 /* the leader's answer */
};

#define RAFT_MSG_TYPE_MAX 10

const char *raft_msg_name(int type);

/*
 * A message between cores. In outgoing APPEND messages entries is NULL: the driver
 * attaches the n_entries entries from prev_index + 1 on, from its own log (they are always
 * there: the core never names an entry below its first index). In incoming APPEND
 * messages entries points at the decoded entries, which need to live only during the
 * raft_step() call and the handling of its update.
 */
struct raft_message
{
    uint8_t type;
    bool after_persist; /* output only: see struct raft_update */
    raft_id from;
    raft_id to;
    raft_term term;
    union {
        struct
        {
            raft_index prev_index;
            raft_term prev_term;
            raft_index commit;
            uint32_t n_entries;
            struct raft_entry *entries;
        } append;
        struct
        {
            bool success;
            /* success: the follower's log matches the leader's up to index (durably).
             * failure: index is the prev_index of the rejected APPEND. */
            raft_index index;
            /* failure only: the follower's hint for fast backtracking. conflict_term is the
             * term of its entry at prev_index (0 if its log is shorter), conflict_index the
             * first index of that term in its log (or its last index + 1). */
            raft_term conflict_term;
            raft_index conflict_index;
        } append_resp;
        struct
        {
            bool prevote;
            bool transfer; /* sent on TIMEOUT_NOW: disregard the leader lease */
            raft_index last_index;
            raft_term last_term;
        } vote;
        struct
        {
            bool prevote;
            bool granted;
        } vote_resp;
        struct
        {
            raft_index commit;
            uint64_t read_seq; /* the leader's newest ReadIndex round */
        } heartbeat;
        struct
        {
            uint64_t read_seq;
        } heartbeat_resp;
        struct
        {
            raft_index index; /* last index the snapshot covers */
            raft_term term;   /* term of that entry */
            /* Incoming only: the configuration as of index, from the snapshot's own
             * metadata (the receiving driver decodes it); outgoing SNAPSHOT messages have
             * NULL, and the driver sends the snapshot's configuration with its data. A
             * SNAPSHOT without it is dropped. */
            const struct raft_members *members;
        } snapshot;
        struct
        {
            uint64_t id;
        } read_index;
        struct
        {
            uint64_t id;
            raft_index index; /* 0 when refused */
        } read_index_resp;
    };
};

/* What raft_init() needs to know about the node. */
struct raft_config
{
    raft_id id;
    uint64_t seed;               /* seeds election timeout randomization */
    uint32_t election_ticks;     /* timeouts are drawn from [election_ticks, 2*election_ticks) */
    uint32_t heartbeat_ticks;    /* < election_ticks */
    uint32_t append_entries_max; /* entries per APPEND message */
    uint32_t append_bytes_max;   /* payload bytes per APPEND message (one entry may exceed) */
    uint32_t inflight_msgs_max;  /* APPEND messages in flight per follower */
    uint64_t inflight_bytes_max; /* payload bytes in flight per follower */
    uint64_t log_entries_max;    /* entries kept since the compaction point */
    uint32_t reads_max;          /* pending ReadIndex requests */
};

/* Fills *c with defaults suitable for a real node and the simulator. */
void raft_config_default(struct raft_config *c, raft_id id, uint64_t seed);

/* What the node found on its disk at start-up. */
struct raft_boot
{
    raft_term term;
    raft_id vote;
    raft_index snapshot_index; /* 0 when there is no snapshot */
    raft_term snapshot_term;
    /* The configuration as of the snapshot (the first one when there is none); empty for
     * a server that joins a cluster and learns it from the leader. */
    const struct raft_server *servers;
    unsigned n_servers;
    /* The log after the snapshot: entries[i] is at snapshot_index + 1 + i. Only term,
     * type and len are read, and the payload of CONFIG entries. All of it is durable. */
    const struct raft_entry *entries;
    raft_index n_entries;
    /* 0, or the node lost its durable log (found damaged, moved aside) while its term was
     * recover_term: it may have acknowledged entries it no longer holds, so it neither
     * grants votes (nor pre-votes) nor campaigns until it holds again everything those
     * acknowledgments could have helped commit. That is known once it follows a leader of
     * a later term and holds, durably, an entry of that leader's term up to its commit
     * index: such a leader's log held, when it was elected, every entry committed in an
     * earlier term (the leader completeness property, paper 5.4.3: its election did not
     * count this node's vote), and those entries precede its own. raft_recovering() says
     * when that is over; the driver must keep recover_term across restarts until then. */
    raft_term recover_term;
};

enum raft_event_type {
    RAFT_EVENT_TICK = 1,           /* one tick of the node's clock */
    RAFT_EVENT_RECEIVE = 2,        /* a message from a peer */
    RAFT_EVENT_PROPOSE = 3,        /* leader: append entries; the core sets their term */
    RAFT_EVENT_PERSISTED = 4,      /* a persist request finished (see raft_update.persist) */
    RAFT_EVENT_SNAPSHOT_TAKEN = 5, /* the driver stored a snapshot; compact the log */
    RAFT_EVENT_READ_INDEX = 6,     /* ask for a linearizable read index */
    RAFT_EVENT_TRANSFER = 7,       /* leader: hand leadership to target */
    RAFT_EVENT_CAMPAIGN = 8,       /* start an election now (pre-vote first unless forced) */
};

/* Identifies one persist request; the driver hands it back in RAFT_EVENT_PERSISTED. */
struct raft_persist_token
{
    raft_index last_index; /* the log's last index once the request is done */
    uint64_t generation;   /* bumped whenever the log loses a suffix */
    uint64_t seq;          /* the request's number: requests are numbered 1, 2, ... */
};

struct raft_event
{
    uint8_t type;
    union {
        struct raft_message receive;
        struct
        {
            struct raft_entry *entries; /* the core writes each entry's term */
            uint32_t n;
        } propose;
        struct raft_persist_token persisted;
        struct
        {
            raft_index index;      /* the snapshot covers entries up to index */
            raft_term term;        /* term of that entry */
            raft_index compact_to; /* entries up to here may go (<= index) */
        } snapshot_taken;
        struct
        {
            uint64_t id; /* the driver's, echoed in the raft_read */
        } read_index;
        struct
        {
            raft_id target;
        } transfer;
        struct
        {
            /* Skip the pre-vote and ask voters to disregard their leader lease, as a
             * transfer target does: for operators and scripted scenarios. */
            bool force;
        } campaign;
    };
};

/*
 * A ReadIndex result. Each READ_INDEX event that raft_step() accepted (it did not return
 * RAFT_ETOOMANY) gets exactly one, in this update or a later one: a follower forwards the
 * request to its leader and fails it if the leader changes or does not answer within two
 * election timeouts. Ids are the driver's; a core that restarts forgets the requests of
 * its previous life and drops answers to them.
 */
struct raft_read
{
    uint64_t id;
    /* 0: serve the read once this node has applied up to index.
     * RAFT_ENOTLEADER: the read could not be confirmed (leadership lost or unknown). */
    int status;
    raft_index index;
};

/* Bits of raft_update.flags. */
enum {
    RAFT_UPDATE_ROLE = 1u << 0,       /* role or leader changed */
    RAFT_UPDATE_HARD_STATE = 1u << 1, /* term and/or vote changed: persist them */
    RAFT_UPDATE_ENTRIES = 1u << 2,    /* entries to persist */
    RAFT_UPDATE_SNAPSHOT = 1u << 3,   /* install the snapshot received from a leader */
    RAFT_UPDATE_MESSAGES = 1u << 4,   /* messages to send */
    RAFT_UPDATE_COMMIT = 1u << 5,     /* the commit index advanced */
    RAFT_UPDATE_READS = 1u << 6,      /* ReadIndex results */
};

/*
 * What one raft_step() asks of the driver, valid until the next call on the same core.
 * The driver carries it out in this order:
 *
 * 1. Persist. HARD_STATE, SNAPSHOT and ENTRIES together form one persist request, to be
 *    made durable in this order, atomically or in order: the hard state (term, vote);
 *    then the snapshot install (discard the whole log and the state machine and take the
 *    snapshot at snapshot.index from the leader that sent it); then the entries (delete
 *    every entry at index >= append.first, write the append.n entries there; n may be 0,
 *    a truncation alone). Requests finish in the order they were made; when one is
 *    durable, the driver steps RAFT_EVENT_PERSISTED with persist. The entries must be
 *    readable by the driver at once (to fill APPEND messages and to apply), before they
 *    are durable.
 *
 * 2. Send messages. A message with after_persist set leaves only once every persist
 *    request made so far, including this update's, is durable: vote grants and requests
 *    carry a term and vote, and append acknowledgments a match index, that must not be
 *    lost in a crash; and every message waits while the term it carries is not yet
 *    durable (a leader elected by its own vote alone sends no vote request that would
 *    wait for it). The rest may leave at once; in particular a leader's APPEND goes out
 *    while its own write of the entries is in flight (thesis 10.2.1).
 *
 * 3. Apply. Entries up to commit are committed: apply them in order, once they are in the
 *    driver's log (they may not yet be durable here; they are on a majority).
 *
 * 4. Reads. Each raft_read with status 0 may be served once this node has applied up to
 *    its index; otherwise fail it.
 */
struct raft_update
{
    uint32_t flags;

    enum raft_role role; /* current role and known leader (0 if unknown) */
    raft_id leader;

    raft_term term; /* HARD_STATE */
    raft_id vote;

    struct
    {
        raft_index index;
        raft_term term;
        raft_id from;
    } snapshot; /* SNAPSHOT */

    struct
    {
        raft_index first;
        uint32_t n;
        const struct raft_entry *entries;
    } append; /* ENTRIES */

    struct raft_persist_token persist; /* any of HARD_STATE, SNAPSHOT, ENTRIES */

    struct raft_message *messages; /* MESSAGES */
    unsigned n_messages;

    raft_index commit; /* COMMIT */

    struct raft_read *reads; /* READS */
    unsigned n_reads;
};

struct raft; /* opaque */

/*
 * Creates a core in *out from its configuration and what was found on disk.
 * Errors: RAFT_EINVAL (bad configuration or boot state), RAFT_ENOMEM.
 */
int raft_init(struct raft **out, const struct raft_config *config, const struct raft_boot *boot);

void raft_free(struct raft *r);

/*
 * Feeds one event to the core and fills *u with what to do (see struct raft_update).
 * Errors (the update is still valid and must still be carried out):
 *   PROPOSE: RAFT_ENOTLEADER, RAFT_EBUSY (transferring leadership), RAFT_ELOGFULL,
 *     RAFT_EINVAL (no entries), RAFT_ENOMEM. A CONFIG entry is proposed alone, with its
 *     payload in buf; it is refused with RAFT_EINVAL unless it encodes a configuration
 *     one step from the current one that keeps a voter, and with RAFT_ECHANGE while a
 *     change would be unsafe (see struct raft_members).
 *   TRANSFER: RAFT_ENOTLEADER, RAFT_EINVAL (unknown target or self).
 *   READ_INDEX: RAFT_ETOOMANY.
 *   SNAPSHOT_TAKEN: RAFT_EINVAL (index past the commit index, or term not the entry's).
 *   RECEIVE: RAFT_EINVAL for a message no correct peer sends (unknown type or sender,
 *     a term or index near 2^62, entries whose terms decrease or pass the message's);
 *     the message was dropped and the node goes on. Drivers should log and count these.
 *   any: RAFT_EINVAL for an event of unknown type.
 *
 * Duties the core leaves to the driver:
 *   - Deliver a SNAPSHOT message only once its data has arrived whole and verified; the
 *     install in the update refers to that data. A leader re-sends SNAPSHOT when a
 *     transfer seems stuck (2 election timeouts without an answer); a driver that is
 *     still streaming the same (index, term) should carry on rather than restart.
 *   - Take snapshots and step SNAPSHOT_TAKEN so that the log can be compacted: a log of
 *     log_entries_max entries makes proposals fail with RAFT_ELOGFULL on a leader, and
 *     makes a follower accept no more entries.
 */
int raft_step(struct raft *r, struct raft_event *ev, struct raft_update *u);

/* Read-only accessors. */
raft_id raft_id_of(const struct raft *r);
enum raft_role raft_role_of(const struct raft *r);
raft_term raft_current_term(const struct raft *r);
raft_id raft_voted_for(const struct raft *r);
raft_id raft_leader_of(const struct raft *r);
/* The leader's transfer under way (RAFT_EVENT_TRANSFER): its target until the target is
 * told to campaign and this node steps down, or the transfer gives up after an election
 * timeout; 0 when there is none (and on every node but a leader). */
raft_id raft_transfer_target(const struct raft *r);
raft_index raft_commit_index(const struct raft *r);
raft_index raft_last_index(const struct raft *r);
raft_index raft_stable_index(const struct raft *r);   /* durable prefix of the log */
raft_index raft_snapshot_index(const struct raft *r); /* log starts after it */
raft_index raft_first_index(const struct raft *r);    /* first entry kept (may be <= it) */
/* Term of the entry at index, or 0 if the core does not know it (compacted or past the end).
 * The snapshot's own index is known. */
raft_term raft_term_at(const struct raft *r, raft_index index);
bool raft_is_voter(const struct raft *r, raft_id id);
/* True while the node recovers a lost log (struct raft_boot, recover_term). */
bool raft_recovering(const struct raft *r);
/* The configuration in force (the latest in the log), and the index of the CONFIG entry
 * it comes from (0: from the snapshot or the boot state). It is committed once the
 * commit index reaches that index. A leader that is no longer a voter of a committed
 * configuration steps down. */
const struct raft_members *raft_members_of(const struct raft *r);
raft_index raft_members_index(const struct raft *r);

/* The leader's view of one peer, for monitoring. Returns false if id is unknown. */
struct raft_peer_info
{
    raft_id id;
    bool voter;
    raft_index match;
    raft_index next;
    const char *state; /* "probe", "replicate" or "snapshot" */
};
bool raft_peer_info(const struct raft *r, raft_id id, struct raft_peer_info *info);

#endif
