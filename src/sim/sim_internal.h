/*
 * The simulator's private state, shared by its files:
 *
 *   sim.c          the cluster: creating, booting a node from its durable state, destroying
 *   sim_loop.c     the event queue, tick chains, events held while paused, sim_step()
 *   sim_step.c     stepping a core and carrying out its update
 *   sim_node.c     node accessors and lookups
 *   sim_ops.c      proposals, transfers, injected messages, campaigns
 *   sim_read.c     ReadIndex requests and their results
 *   sim_snapshot.c snapshots a node takes of itself
 *   sim_fault.c    crash, wipe, restart, pause/resume, clock rates, healing everything
 *   sim_abort.c    the trace printed when a core assertion aborts
 *   sim_disk.c     logs, durable and volatile state, persist requests
 *   sim_net.c      links, loss, duplication, delays, sending and delivering messages
 *   sim_check.c    the safety checker
 *   sim_trace.c    the trace ring
 *   sim_random.c   random runs
 *   sim_random_members.c  membership changes in random runs
 */
#ifndef LUARAFT_SIM_INTERNAL_H
#define LUARAFT_SIM_INTERNAL_H

#include "raft/raft.h"
#include "sim/sim.h"
#include "util/rand.h"

enum {
    sim_payload_bytes = 16,                       /* every NORMAL entry: the value, then zeros */
    sim_entry_bytes_max = RAFT_MEMBERS_BYTES_MAX, /* a CONFIG entry's payload at most */
    sim_trace_ring_max = sim_trace_lines_max,     /* binary records, formatted on demand */
};

/* One log entry as the simulator keeps it: what the core sees plus the payload value and
 * the chain hash H(chain at index - 1, index, term, type, value) used by the checker. A
 * CONFIG entry's value is its configuration packed (sim_conf_pack); its payload is that
 * configuration encoded, made again whenever a core needs it. */
struct sim_entry
{
    raft_term term;
    uint64_t value;
    uint64_t chain;
    uint32_t type;
    uint32_t len;
};

/* A log holding entries offset+1 .. offset+n. The entry at offset itself is known only by
 * its term and chain (it is compacted, or it is the snapshot's last entry). */
struct sim_log
{
    raft_index offset;
    raft_term offset_term;
    uint64_t offset_chain;
    struct sim_entry *e;
    uint64_t n;
    uint64_t cap;
};

/* A snapshot: the state machine after applying every entry up to index. */
struct sim_snap
{
    raft_index index;
    raft_term term;
    uint64_t fsm;   /* state hash at index */
    uint64_t chain; /* log chain hash at index */
    uint64_t conf;  /* the configuration as of index, packed */
};

/* A message on the network or held behind a persist request. APPEND messages carry copies
 * of their entries, SNAPSHOT messages the snapshot. */
struct sim_msg
{
    struct sim_msg *next; /* the held list of a persist request */
    struct raft_message m;
    struct sim_snap snap;
    uint64_t ack_chain;         /* APPEND_RESP success: the sender's chain at index when made */
    struct sim_entry entries[]; /* m.append.n_entries */
};

/* One persist request in a node's disk queue. */
struct sim_write
{
    struct raft_persist_token token;
    uint64_t done_us; /* completion time */
    bool hard_state;
    raft_term term;
    raft_id vote;
    bool install;
    struct sim_snap snap;
    bool entries;
    raft_index first;
    uint32_t n;
    struct sim_entry *e;
    /* The first index whose entry this request deletes (written over, or cut off); 0 when
     * it only appends. Earlier requests still in flight then vouch for replaced entries. */
    raft_index cuts_from;
    struct sim_msg *held; /* after_persist messages that leave when this is durable */
    struct sim_msg *held_tail;
};

enum sim_event_kind {
    SIM_EV_TICK = 1,
    SIM_EV_DELIVER = 2,
    SIM_EV_DISK = 3,
};

struct sim_event
{
    uint64_t time_us;
    uint64_t seq;
    struct sim_msg *msg; /* DELIVER */
    uint32_t gen;        /* TICK: the node's tick generation; DISK: its incarnation */
    uint8_t kind;
    uint8_t node;
};

struct sim_node
{
    raft_id id;
    bool up;
    bool paused;
    struct raft *core;
    uint32_t incarnation; /* bumped on crash: stale disk events are ignored */
    uint32_t tick_gen;    /* bumped whenever the tick chain is restarted */
    uint32_t rate_permille;

    /* Durable state: what survives a crash. */
    raft_term d_term;
    raft_id d_vote;
    struct sim_snap d_snap;
    struct sim_log d_log;     /* offset_term/offset_chain unused */
    raft_term d_recover_term; /* sim_lose_log: raft_boot.recover_term until recovered */

    /* Volatile state. */
    struct sim_snap snap; /* the latest snapshot (sent to followers) */
    struct sim_log log;   /* durable log plus pending writes */
    raft_index applied;
    uint64_t fsm;
    uint64_t applied_conf; /* the configuration as of applied, packed */
    uint64_t boot_conf;    /* the configuration it was created with (0 for a spare) */

    /* Disk queue: a FIFO ring of persist requests. */
    struct sim_write *writes;
    uint32_t writes_head;
    uint32_t writes_count;
    uint32_t writes_cap;
    uint64_t disk_last_us; /* completion time of the newest request */
    uint32_t installs_pending;
    uint64_t disk_min_us; /* this disk's latency range (sim_disk_delay()) */
    uint64_t disk_max_us;
    bool disk_held;            /* completions wait for sim_disk_release() */
    uint32_t disk_held_events; /* completions due while held, oldest write first */
    uint32_t disk_released;    /* of those, let go and on their way (sim_disk_release()) */

    /* Events held while paused, in arrival order. */
    struct sim_event *held;
    uint32_t held_count;
    uint32_t held_cap;

    uint32_t reads_waiting; /* answered reads not yet served */

    /* Checker. */
    enum raft_role role; /* after the last step (0 while down) */
    raft_term role_term;
    uint64_t leader_since_us;
    raft_index conf_index_seen;           /* raft_members_index() after the last step */
    uint64_t heard_us[sim_nodes_max + 1]; /* last delivery from each peer */
};

struct sim_read
{
    raft_id node;
    uint8_t state; /* enum sim_read_state */
    bool ready;    /* the core answered with status 0 */
    raft_index index;
    raft_index min_index; /* highest index committed anywhere when it was asked */
    raft_index applied;   /* applied index when served */
    uint32_t incarnation;
};

/* Binary trace records, formatted only when a report needs them. */
enum sim_trace_kind {
    SIM_TR_RECV = 1,
    SIM_TR_DROP,
    SIM_TR_ROLE,
    SIM_TR_PROPOSE,
    SIM_TR_PERSISTED,
    SIM_TR_COMMIT,
    SIM_TR_SNAP_TAKEN,
    SIM_TR_SNAP_INSTALL,
    SIM_TR_CRASH,
    SIM_TR_RESTART,
    SIM_TR_PAUSE,
    SIM_TR_RESUME,
    SIM_TR_LINK,
    SIM_TR_PARTITION,
    SIM_TR_HEAL,
    SIM_TR_NET,
    SIM_TR_RATE,
    SIM_TR_READ,
    SIM_TR_READ_DONE,
    SIM_TR_TRANSFER,
    SIM_TR_CAMPAIGN,
    SIM_TR_INJECT,
    SIM_TR_DISCARD,
    SIM_TR_WIPE,
    SIM_TR_DISK,
    SIM_TR_CHANGE,
};

struct sim_trace_rec
{
    uint64_t time_us;
    uint64_t a[6];
    uint8_t kind;
    uint8_t node;
    uint8_t peer;
    uint8_t sub;
};

/* Everything the checker remembers across steps. */
struct sim_check
{
    /* term -> its leader and the highest index it committed */
    struct sim_term_rec
    {
        raft_id leader;
        raft_index commit;
    } * terms;
    uint64_t terms_cap;

    /* (index, term) -> chain: open addressing, linear probing, a power-of-two size. */
    struct sim_chain_slot
    {
        raft_index index;
        raft_term term;
        uint64_t chain;
    } * chains;
    uint64_t chains_cap;
    uint64_t chains_count;

    uint64_t *committed; /* index -> chain of the committed entry (0: unknown) */
    uint64_t *fsm_at;    /* index -> state hash after applying it (0: unknown) */
    uint64_t at_cap;
    raft_index commit_max; /* highest index committed anywhere */

    uint64_t quorum_window_us; /* check-quorum: how long a leader may go unconfirmed */
};

struct sim
{
    struct sim_options opt;
    struct lr_rand rand;
    uint64_t now_us;
    uint64_t seq;
    uint64_t steps;
    uint64_t random_steps; /* a random run's length, for the replay command; else 0 */
    bool failed;

    struct sim_event *heap;
    uint64_t heap_count;
    uint64_t heap_cap;

    unsigned n_nodes;
    struct sim_node nodes[sim_nodes_max + 1]; /* [0] unused: ids are indexes */

    /* Network. */
    bool link[sim_nodes_max + 1][sim_nodes_max + 1]; /* [from][to] */
    uint32_t loss_ppm;
    uint32_t dup_ppm;
    uint64_t link_last_us[sim_nodes_max + 1][sim_nodes_max + 1]; /* fifo_links: last delivery */
    uint64_t delay_min_us;
    uint64_t delay_max_us;

    /* The message being delivered: a SNAPSHOT update installs its snapshot. */
    const struct sim_msg *delivering;
    /* Scratch for delivering APPEND entries to a core. */
    struct raft_entry *rx_entries;
    uint8_t (*rx_payload)[sim_entry_bytes_max];
    uint32_t rx_cap;

    struct sim_read *reads; /* reqid - 1 -> read */
    uint64_t reads_count;
    uint64_t reads_cap;
    uint64_t reads_first_open; /* every read before it is served or failed */

    struct sim_check check;
    struct sim_stats stats;
    bool change_on_new_leader; /* random runs: see sim_random_change_deposed() */
    struct sim_trap
    {
        raft_id l, s, a, b, x;
        bool armed;
    } trap; /* random runs: see sim_random_change_trap() */

    struct sim_trace_rec trace[sim_trace_ring_max];
    uint64_t trace_count;

    char failure[sim_failure_bytes_max];
};

/* sim.c */
uint64_t sim_rand_range(struct sim *s, uint64_t lo, uint64_t hi);
uint64_t sim_value_of(const struct raft_entry *e);
/* A configuration of nodes 1..sim_nodes_max packed in 64 bits: bit id-1 for a member,
 * bit 16+id-1 for a voter. */
uint64_t sim_conf_pack(const struct raft_members *m);
void sim_conf_unpack(uint64_t packed, struct raft_members *m);
/* Writes e's payload into buf (sim_entry_bytes_max bytes) and points re at it. */
void sim_entry_to_core(const struct sim_entry *e, uint8_t *buf, struct raft_entry *re);
int sim_node_boot(struct sim *s, struct sim_node *n);

/* sim_loop.c */
void sim_schedule(struct sim *s,
                  uint64_t time_us,
                  uint8_t kind,
                  uint8_t node,
                  uint32_t gen,
                  struct sim_msg *msg);
void sim_tick_start(struct sim *s, struct sim_node *n);
void sim_held_free(struct sim_node *n);

/* sim_step.c */
void sim_step_node(struct sim *s, struct sim_node *n, struct raft_event *ev, int *rv);

/* sim_node.c */
int sim_node_lookup(struct sim *s, raft_id id, struct sim_node **out);
int sim_node_usable(struct sim *s, raft_id id, struct sim_node **out);

/* sim_read.c */
void sim_reads_result(struct sim *s, struct sim_node *n, const struct raft_update *u);
void sim_reads_serve(struct sim *s, struct sim_node *n);
void sim_reads_fail_node(struct sim *s, raft_id id);

/* sim_snapshot.c */
int sim_snapshot_take(struct sim *s, struct sim_node *n);
void sim_snapshot_maybe(struct sim *s, struct sim_node *n);

/* sim_random_members.c */
void sim_random_change(struct sim *s);
void sim_random_change_deposed(struct sim *s);
void sim_random_change_trap(struct sim *s);
/* Right after an election (fresh): a change now and then, and always after
 * sim_random_change_deposed. */
void sim_random_change_if_new_leader(struct sim *s, bool fresh);
/* A voter (of the leader's configuration, or of its own) up and not paused other than
 * except, or 0. */
raft_id sim_random_voter(struct sim *s, raft_id except);
/* Whether id is a member of the leader's configuration (true while there is no leader). */
bool sim_in_final_configuration(const struct sim *s, raft_id id);

/* sim_abort.c */
void sim_abort_install(void);
void sim_abort_watch(struct sim *s);
void sim_abort_forget(const struct sim *s);

/* sim_disk.c */
void sim_log_init(struct sim_log *l);
void sim_log_free(struct sim_log *l);
raft_index sim_log_last_index(const struct sim_log *l);
struct sim_entry *sim_log_at(const struct sim_log *l, raft_index i);
bool sim_log_chain_at(const struct sim_log *l, raft_index i, raft_term *term, uint64_t *chain);
void sim_log_truncate(struct sim_log *l, raft_index from);
void sim_log_push(struct sim_log *l, const struct sim_entry *e);
void sim_log_compact(struct sim_log *l, raft_index to);
void sim_log_reset(struct sim_log *l, raft_index index, raft_term term, uint64_t chain);
uint64_t sim_chain(uint64_t prev, raft_index index, raft_term term, uint32_t type, uint64_t value);
uint64_t sim_fsm_mix(uint64_t fsm, raft_index index, uint64_t value);
void sim_disk_persist(struct sim *s, struct sim_node *n, const struct raft_update *u);
struct sim_write *sim_disk_last_write(struct sim_node *n);
void sim_disk_event(struct sim *s, struct sim_node *n);
void sim_disk_drop_all(struct sim *s, struct sim_node *n);
void sim_disk_snapshot_taken(struct sim_node *n, raft_index compact_to);
void sim_disk_free(struct sim_node *n);

/* sim_net.c */
void sim_net_send_update_msg(struct sim *s, struct sim_node *n, const struct raft_message *m);
void sim_net_send(struct sim *s, struct sim_msg *msg);
void sim_net_deliver(struct sim *s, struct sim_msg *msg);
void sim_msg_free_list(struct sim *s, struct sim_msg *head, bool count_lost);

/* sim_check.c */
int sim_check_init(struct sim_check *c);
void sim_check_free(struct sim_check *c);
void sim_fail(struct sim *s,
              const char *rule,
              raft_id node,
              raft_index index,
              raft_term term,
              const char *fmt,
              ...) __attribute__((format(printf, 6, 7)));
void sim_check_log_entry(struct sim *s,
                         raft_id node,
                         raft_index index,
                         raft_term term,
                         uint64_t chain);
void sim_check_apply(struct sim *s,
                     struct sim_node *n,
                     raft_index index,
                     uint64_t chain,
                     uint64_t fsm);
void sim_check_after_node_step(struct sim *s,
                               struct sim_node *n,
                               enum raft_role role_before,
                               raft_index commit_before);
void sim_check_send(struct sim *s, const struct sim_node *n, const struct sim_msg *msg);
void sim_check_read_ready(struct sim *s, struct sim_read *rd);
void sim_check_global(struct sim *s);

/* sim_trace.c */
void sim_trace_add(struct sim *s,
                   uint8_t kind,
                   raft_id node,
                   raft_id peer,
                   uint8_t sub,
                   uint64_t a0,
                   uint64_t a1,
                   uint64_t a2,
                   uint64_t a3,
                   uint64_t a4,
                   uint64_t a5);
void sim_trace_msg(struct sim *s, uint8_t kind, uint8_t sub, const struct raft_message *m);

#endif
