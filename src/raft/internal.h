/*
 * The core's private state and the functions its files share. Nothing here is visible to
 * drivers: they see raft.h only.
 */
#ifndef LUARAFT_RAFT_INTERNAL_H
#define LUARAFT_RAFT_INTERNAL_H

#include "raft/log.h"
#include "raft/raft.h"
#include "util/rand.h"

/* Terms and indexes beyond these are refused from peers, so that no arithmetic on them
 * can wrap. Far beyond any real cluster's lifetime. */
#define raft_term_max (UINT64_C(1) << 62)
#define raft_index_max (UINT64_C(1) << 62)

/* How the leader replicates to one follower (cf. etcd's tracker). */
enum progress_state {
    PROGRESS_PROBE = 0,     /* one APPEND at a time until the follower's log matches */
    PROGRESS_REPLICATE = 1, /* pipelined APPENDs within the in-flight window */
    PROGRESS_SNAPSHOT = 2,  /* waiting for an InstallSnapshot to finish */
};

struct inflight
{
    raft_index last; /* last index the APPEND carried */
    uint32_t bytes;
};

/* The leader's record of one server (including itself). */
struct progress
{
    raft_id id;
    bool voter;
    uint8_t state;
    bool probe_sent;           /* PROBE: an APPEND is out; wait for its answer or a heartbeat's */
    bool recent_active;        /* heard from since the last check-quorum */
    raft_index match;          /* highest index known durable and matching on the follower */
    raft_index next;           /* next index to send */
    raft_index snapshot_index; /* SNAPSHOT: the snapshot being sent */
    uint32_t stall_ticks;      /* ticks with entries in flight and no progress */
    uint64_t read_ack;         /* newest ReadIndex round the follower answered */
    /* In-flight window (REPLICATE), a ring of cfg.inflight_msgs_max. */
    struct inflight *inflights;
    uint32_t inflight_start;
    uint32_t inflight_count;
    uint64_t inflight_bytes;
};

/* A ReadIndex request waiting for its heartbeat round. */
struct pending_read
{
    uint64_t id;
    raft_id from;     /* who asked: this node, or a follower */
    raft_index index; /* the commit index when its round started */
    uint64_t seq;     /* its round; 0 until the leader has committed in its term */
    uint32_t ticks;   /* follower: how long it has waited for the leader's answer */
};

struct raft
{
    struct raft_config cfg;
    struct lr_rand rand;

    /* Persistent state (Figure 2), mirrored from what the driver stores. */
    raft_term term;
    raft_id vote;
    struct raft_log log;
    raft_index snapshot_index;
    raft_term snapshot_term;
    raft_term recover_term; /* struct raft_boot; 0 once recovered */

    /* Volatile state. */
    enum raft_role role;
    raft_id leader;
    raft_index commit;
    raft_index stable;       /* durable prefix of the log */
    uint64_t generation;     /* bumped when the log loses a suffix; see raft_persist_token */
    uint64_t persist_seq;    /* persist requests made */
    uint64_t durable_seq;    /* the newest one known durable (they finish in order) */
    uint64_t hard_state_seq; /* the newest one that carried a term or vote */
    /* A candidate counts its own vote only once it is durable (self_vote_seq, the request
     * that carries it, known durable), as it counts no other vote before its voter's disk
     * has it: a lone voter must not lead in a term a crash can take back. */
    bool self_vote_pending;
    uint64_t self_vote_seq; /* 0 until this step's request is numbered */

    uint32_t election_elapsed; /* ticks since the leader was heard from / last check */
    uint32_t election_timeout; /* randomized, in [election_ticks, 2 * election_ticks) */
    uint32_t heartbeat_elapsed;

    /* The configuration in force and the one before it (members.c); the servers of the
     * first, in its order, are servers[0..n_servers). */
    struct raft_members conf;
    raft_index conf_index; /* its CONFIG entry; 0: from the snapshot or the boot state */
    struct raft_members conf_prev;
    raft_index conf_prev_index;
    struct progress servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    bool granted[RAFT_SERVERS_MAX]; /* election in progress: who granted */
    bool answered[RAFT_SERVERS_MAX];

    /* Leader only. */
    bool committed_in_term; /* an entry of this term is committed (the no-op) */
    raft_id transfer_target;
    uint32_t transfer_elapsed;
    /* Pending reads, a FIFO ring of cfg.reads_max: on a leader, those waiting for their
     * heartbeat round; on a follower, those forwarded to its leader. Either way they are
     * failed whenever the role or the leader changes. */
    struct pending_read *reads;
    uint32_t reads_start;
    uint32_t reads_count;
    uint64_t read_seq; /* newest ReadIndex round */

    struct raft_entry noop;

    /* The update being built by the current raft_step(). */
    struct raft_update *u;
    struct raft_message *out;
    unsigned out_cap;
    struct raft_read *read_out;
    unsigned read_out_cap;
};

/* raft.c: shared helpers. */
struct progress *raft_progress(struct raft *r, raft_id id);
raft_term raft_term_of(const struct raft *r, raft_index i);
raft_term raft_last_term(const struct raft *r);
unsigned raft_voters(const struct raft *r);
bool raft_self_is_voter(const struct raft *r);

/* update.c: what a step adds to its update. */
struct raft_message *raft_msg_new(struct raft *r, int type, raft_id to);
void raft_read_done(struct raft *r, uint64_t id, int status, raft_index index);
void raft_persist_entries(struct raft *r, raft_index first, const struct raft_entry *e, uint32_t n);

/* role.c: transitions (Figure 4). */
void role_become_follower(struct raft *r, raft_term term, raft_id leader);
void role_become_precandidate(struct raft *r);
void role_become_candidate(struct raft *r, bool transfer);
void role_become_leader(struct raft *r);
void role_reset_timeout(struct raft *r);
void role_reset_progress(struct raft *r, struct progress *pr);

/* members.c */
bool members_servers_valid(const struct raft_server *servers, unsigned n);
bool members_entry_decode(const struct raft_entry *e, struct raft_members *m);
void members_reset(struct raft *r, const struct raft_members *m);
void members_set(struct raft *r, const struct raft_members *m, raft_index index);
void members_truncated(struct raft *r, raft_index from);
int members_boot(struct raft *r, const struct raft_boot *b);
int members_propose(struct raft *r, const struct raft_entry *e, raft_index index);
bool members_may_campaign(const struct raft *r);
void members_after_step(struct raft *r);

/* election.c */
void election_tick(struct raft *r);
void election_campaign(struct raft *r, bool transfer);
void election_recv_vote(struct raft *r, const struct raft_message *m);
void election_recv_vote_resp(struct raft *r, const struct raft_message *m);
void election_self_vote_durable(struct raft *r);

/* replicate.c: leader side. */
void replicate_tick(struct raft *r);
bool replicate_append_noop(struct raft *r);
int replicate_propose(struct raft *r, struct raft_entry *entries, uint32_t n);
void replicate_send_append(struct raft *r, struct progress *pr, bool allow_empty);
void replicate_broadcast_append(struct raft *r);
void replicate_send_heartbeats(struct raft *r);
void replicate_recv_append_resp(struct raft *r, const struct raft_message *m);
void replicate_recv_heartbeat_resp(struct raft *r, const struct raft_message *m);
void replicate_maybe_commit(struct raft *r);
void replicate_self_persisted(struct raft *r);
int replicate_transfer(struct raft *r, raft_id target);

/* follower.c: follower side. */
void follower_recv_append(struct raft *r, struct raft_message *m);
void follower_recv_heartbeat(struct raft *r, const struct raft_message *m);
void follower_recv_snapshot(struct raft *r, const struct raft_message *m);

/* read_index.c */
int read_index_request(struct raft *r, uint64_t id, raft_id from);
void read_index_start_rounds(struct raft *r);
void read_index_advance(struct raft *r);
void read_index_fail_all(struct raft *r);
int read_index_forward(struct raft *r, uint64_t id);
void read_index_tick(struct raft *r);
void read_index_recv_resp(struct raft *r, const struct raft_message *m);

/* quorum.c */
raft_index quorum_commit_index(const struct raft *r);
uint64_t quorum_read_seq(const struct raft *r);
bool quorum_active(const struct raft *r);

#endif
