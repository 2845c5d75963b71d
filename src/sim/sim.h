/*
 * The deterministic simulator: N protocol cores (src/raft/raft.h) driven by a virtual
 * clock, a virtual network and a virtual disk, with a checker that tests the Raft safety
 * properties after every step.
 *
 * Everything random (message delays, losses, disk latencies, the cores' own seeds, the
 * faults of a random run) comes from one seeded generator, and events are processed in
 * (time, insertion order), so a seed replays a run exactly, step for step.
 *
 * The model, in short:
 *
 * - Time is virtual, in microseconds. Each node ticks every tick_us times its clock rate;
 *   a tick, a message delivery and a disk completion are events, and one step processes
 *   one event.
 * - Disk: each node keeps a durable state (term, vote, snapshot, log) and a volatile one
 *   (the log as the node sees it, the state machine). A persist request from the core is
 *   applied to the volatile log at once and made durable when its write completes (after
 *   a random latency; completions are FIFO per node). A crash drops every pending write
 *   and all volatile state; a restart rebuilds the node from its durable state.
 * - Network: messages are delivered after a random delay and may be lost, duplicated or
 *   cut by a partition (a directed link matrix). Messages marked after_persist wait for
 *   the node's pending writes to be durable.
 * - State machine: entries carry a 64-bit value; applying one mixes (index, value) into a
 *   64-bit state hash. Snapshots carry that hash.
 *
 * Node ids run from 1: voters first (1..voters), then learners, then spares: nodes
 * outside the first configuration that boot knowing no configuration and can be added
 * (sim_change). Membership changes are CONFIG entries; a snapshot carries the
 * configuration as of its index.
 *
 * The checker (sim_check.c lists its rules) runs during and after every step; the first
 * violation stops the simulation and sim_failure() describes it. A core assertion aborts
 * the process instead: sim_create() installs a SIGABRT handler that first prints the
 * trace tail of the simulation whose core was being stepped.
 *
 * Errors are the core's (RAFT_E*, negative, see raft.h) plus the SIM_E* codes below;
 * sim_strerror() names both.
 */
#ifndef LUARAFT_SIM_H
#define LUARAFT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    sim_nodes_max = RAFT_SERVERS_MAX, /* voters plus learners in one simulated cluster */
    sim_trace_lines_max = 1024,       /* trace lines kept in the ring */
    sim_failure_trace_lines = 64,     /* trace lines in a failure message */
    sim_failure_bytes_max = 12288,    /* a failure message, trace tail included */
    sim_inject_entries_max = 64,      /* entries in one injected APPEND */
};

/* Error codes of the simulator itself. They do not overlap the core's RAFT_E* codes. */
enum {
    SIM_EDOWN = -100,        /* the node is crashed */
    SIM_EPAUSED = -101,      /* the node is paused */
    SIM_ENOENT = -102,       /* no such node or read request */
    SIM_EBUSY = -103,        /* a snapshot install is being persisted: try again later */
    SIM_EFAILED = -104,      /* the checker found a violation: the simulation is stopped */
    SIM_EINVAL = -105,       /* bad options or arguments */
    SIM_ENOTHING = -106,     /* nothing to snapshot (nothing applied since the last one) */
    SIM_EREAD_FAILED = -107, /* a ReadIndex request that could not be confirmed */
};

/* Returns a static name for a SIM_E* or RAFT_E* code. */
const char *sim_strerror(int rv);

struct sim_options
{
    unsigned voters;
    unsigned learners;
    unsigned spares; /* nodes outside the configuration, booted empty, that can be added */
    uint64_t seed;
    uint32_t election_ticks;  /* passed to every core */
    uint32_t heartbeat_ticks; /* passed to every core */
    uint64_t tick_us;         /* one tick of a node whose clock rate is 1 */
    uint64_t net_delay_min_us;
    uint64_t net_delay_max_us;
    uint64_t disk_delay_min_us;
    uint64_t disk_delay_max_us;
    uint64_t snapshot_threshold; /* take a snapshot after this many applied entries; 0: never */
    uint64_t snapshot_trailing;  /* entries kept behind a snapshot for slow followers */
    uint32_t append_entries_max; /* passed to every core; 0: the core's default */
    uint32_t inflight_msgs_max;  /* passed to every core; 0: the core's default */
    uint64_t log_entries_max;    /* passed to every core; 0: the core's default */
    bool fifo_links;   /* deliver in order on each link, as TCP does (random delays reorder) */
    bool trace_stderr; /* also print every trace line to stderr */
};

/* Fills *o with a 3-voter cluster, 10 ms ticks, 10-tick elections, 1-5 ms network and
 * 0.1-2 ms disk delays, no snapshots. */
void sim_options_default(struct sim_options *o);

struct sim;

/*
 * Creates a simulated cluster of o->voters + o->learners nodes, all up, with empty logs.
 * Errors: SIM_EINVAL (no voter, too many nodes, heartbeat_ticks >= election_ticks, a delay
 * range with min > max, tick_us == 0), RAFT_ENOMEM, or any error of raft_init().
 */
int sim_create(struct sim **out, const struct sim_options *o);
void sim_destroy(struct sim *s);

/* The options the cluster was created with. */
const struct sim_options *sim_options_of(const struct sim *s);

/*
 * Processes the next event (a tick, a delivery or a disk completion) and everything it
 * causes, then runs the checker. Returns false, without doing anything, when no event is
 * left or when the checker has found a violation (see sim_failure()).
 */
bool sim_step(struct sim *s);

/* Processes every event due up to now + us, then sets the clock to now + us. Stops early
 * on a violation. */
void sim_run_for(struct sim *s, uint64_t us);

uint64_t sim_now_us(const struct sim *s);
/* The time of the next event, if any. */
bool sim_next_event_us(const struct sim *s, uint64_t *time_us);
uint64_t sim_steps(const struct sim *s);

/* NULL while the run is sound; else a message naming the broken rule, the node, index and
 * term involved, the seed and the trace tail. The simulation stops at the first one. */
const char *sim_failure(const struct sim *s);

/* --- Nodes -------------------------------------------------------------------------- */

unsigned sim_node_count(const struct sim *s);
bool sim_node_up(const struct sim *s, raft_id id);
bool sim_node_paused(const struct sim *s, raft_id id);

/* The node's core, or NULL when it is down (or id is unknown). Read-only accessors of
 * raft.h apply. */
const struct raft *sim_core(const struct sim *s, raft_id id);

/* The up node that is leader with the highest term, or 0. */
raft_id sim_leader(const struct sim *s);

/* The node's state machine: last applied index and state hash (0 when down). */
raft_index sim_applied(const struct sim *s, raft_id id);
uint64_t sim_fsm_hash(const struct sim *s, raft_id id);

/* The node's volatile log: entries first..last where first = sim_log_first(). */
raft_index sim_log_first(const struct sim *s, raft_id id);
raft_index sim_log_last(const struct sim *s, raft_id id);
/* The entry at index in the volatile log; false if the log does not hold it. */
bool sim_log_entry(const struct sim *s,
                   raft_id id,
                   raft_index index,
                   raft_term *term,
                   uint64_t *value,
                   bool *noop);
/* The node's latest snapshot index (0: none). */
raft_index sim_snapshot_index(const struct sim *s, raft_id id);

/* --- Client operations (each steps the node's core at the current time) ----------- */

/*
 * Proposes one entry carrying value on node id; *index gets its index.
 * Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, RAFT_ENOTLEADER, RAFT_EBUSY,
 * RAFT_ELOGFULL.
 */
int sim_propose(struct sim *s, raft_id id, uint64_t value, raft_index *index);

/* Proposes n entries in one batch (values[0..n)); *first gets the first one's index.
 * Errors: as sim_propose(), and SIM_EINVAL for n == 0 or n > sim_propose_batch_max. */
enum { sim_propose_batch_max = 65536 };
int sim_propose_many(struct sim *s,
                     raft_id id,
                     const uint64_t *values,
                     uint32_t n,
                     raft_index *first);

/* Asks node id for a ReadIndex; *reqid gets the request's id for sim_read_result().
 * Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, RAFT_ETOOMANY. */
int sim_read_index(struct sim *s, raft_id id, uint64_t *reqid);

enum sim_read_state {
    SIM_READ_PENDING = 0, /* waiting for the core's answer or for apply to reach index */
    SIM_READ_SERVED = 1,  /* *index: the read index; *applied: applied index when served */
    SIM_READ_FAILED = 2,  /* the core refused it, or the node crashed */
};
/* Errors: SIM_ENOENT (unknown reqid). */
int sim_read_result(const struct sim *s,
                    uint64_t reqid,
                    enum sim_read_state *state,
                    raft_index *index,
                    raft_index *applied);

/* Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, RAFT_ENOTLEADER, RAFT_EINVAL. */
int sim_transfer(struct sim *s, raft_id id, raft_id target);

/* One single-server membership change, proposed on node id from its core's configuration. */
enum sim_change_kind {
    SIM_CHANGE_ADD = 1,     /* target joins as a learner */
    SIM_CHANGE_PROMOTE = 2, /* learner target becomes a voter */
    SIM_CHANGE_DEMOTE = 3,  /* voter target becomes a learner */
    SIM_CHANGE_REMOVE = 4,  /* target leaves */
};
/* *index gets the CONFIG entry's index. Errors: SIM_ENOENT (no such node, or a target
 * the change cannot apply to), SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, and the core's
 * RAFT_ENOTLEADER, RAFT_EBUSY, RAFT_ECHANGE, RAFT_EINVAL, RAFT_ELOGFULL. */
int sim_change(struct sim *s,
               raft_id id,
               enum sim_change_kind kind,
               raft_id target,
               raft_index *index);
/*
 * Hands node id a message as if it came off the network now, bypassing links and faults:
 * for specs that feed a node what no correct peer sends. APPEND entries are copied (at
 * most sim_inject_entries_max; their buf may be NULL).
 * Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, SIM_EINVAL, or the core's
 * answer (RAFT_EINVAL for a message it dropped as malformed).
 */
int sim_inject(struct sim *s, raft_id id, const struct raft_message *m);
/* Makes node id campaign now. force: skip the pre-vote and have voters disregard their
 * leader lease, as a leadership transfer does.
 * Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED. */
int sim_campaign(struct sim *s, raft_id id, bool force);
/* Takes a snapshot at the node's applied index now.
 * Errors: SIM_ENOENT, SIM_EDOWN, SIM_EPAUSED, SIM_EFAILED, SIM_ENOTHING, SIM_EBUSY (an
 * install is being persisted, or the applied entry's term is not durable yet). */
int sim_snapshot(struct sim *s, raft_id id);

/* --- Faults ------------------------------------------------------------------------ */

/*
 * Sets the link matrix from group[]: group[id] for id in 1..sim_node_count() names the
 * node's group; two nodes can talk (both ways) when they are in the same group and that
 * group is not 0. Group 0 isolates a node.
 */
void sim_partition(struct sim *s, const unsigned *group);
/* One-way link from -> to, up or down. */
void sim_link(struct sim *s, raft_id from, raft_id to, bool up);
bool sim_link_up(const struct sim *s, raft_id from, raft_id to);
/* Cuts every link to and from id. */
void sim_isolate(struct sim *s, raft_id id);
/* Every link up; other faults unchanged. */
void sim_heal_links(struct sim *s);
/* Every link up, network faults off, paused nodes resumed, crashed nodes restarted,
 * clock rates back to 1, disks back to the options' latency and no longer held. */
void sim_heal_all(struct sim *s);

/* Crash: pending writes, held messages and all volatile state are lost. Restart: the core
 * boots from the durable state. Pause: no ticks, and deliveries and disk completions wait
 * for resume, which hands them over in their original order.
 * Errors of all four: SIM_ENOENT, SIM_EFAILED; crash: SIM_EDOWN if already down;
 * restart: SIM_EINVAL if up; pause: SIM_EDOWN, SIM_EPAUSED; resume: SIM_EINVAL if not
 * paused. */
int sim_crash(struct sim *s, raft_id id);
int sim_restart(struct sim *s, raft_id id);
int sim_pause(struct sim *s, raft_id id);
int sim_resume(struct sim *s, raft_id id);
/* Crashes the node (if up) and erases its durable state: amnesia, which Raft does not
 * tolerate; for showing that the checker notices. Errors: SIM_ENOENT, SIM_EFAILED. */
int sim_wipe(struct sim *s, raft_id id);
/* Crashes the node (if up) and erases its log and snapshot but not its term and vote, and
 * boots it from then on with raft_boot.recover_term (a store found damaged and moved
 * aside: src/node/runtime_recover.c) until its core says it recovered. Errors as wipe. */
int sim_lose_log(struct sim *s, raft_id id);

/* Scales the node's tick interval: 1000 is real time, 1300 a clock 30% slow. Allowed
 * range sim_clock_rate_permille_min..max. Errors: SIM_ENOENT, SIM_EINVAL. */
enum {
    sim_clock_rate_permille_min = 500,
    sim_clock_rate_permille_max = 2000,
};
int sim_clock_rate(struct sim *s, raft_id id, uint32_t permille);

/*
 * A slow (or fast) disk: the node's persist requests complete after a delay drawn from
 * [min_us, max_us], never before its previous one. Errors: SIM_ENOENT, SIM_EINVAL.
 */
int sim_disk_delay(struct sim *s, raft_id id, uint64_t min_us, uint64_t max_us);
/*
 * Holds (hold) the node's persist completions: requests go on being made and applied to
 * the volatile log, but none becomes durable, no message waiting behind one leaves and
 * the core hears no RAFT_EVENT_PERSISTED. Ending the hold lets every held completion
 * happen now, in order. A crash drops the held completions with their writes; the disk
 * stays held. Errors: SIM_ENOENT.
 */
int sim_disk_hold(struct sim *s, raft_id id, bool hold);
/* While the disk is held: lets the `count` oldest held completions happen now (fewer if
 * fewer are due) and keeps holding the rest; *released (if not NULL) gets how many.
 * Errors: SIM_ENOENT, SIM_EINVAL (the disk is not held). */
int sim_disk_release(struct sim *s, raft_id id, uint32_t count, uint32_t *released);
/* The node's persist requests in flight, and how many of them are due but held. */
int sim_disk_pending(const struct sim *s, raft_id id, uint32_t *writes, uint32_t *held);

/* Message loss and duplication, in parts per million, and the delivery delay range. */
void sim_net_faults(struct sim *s,
                    uint32_t loss_ppm,
                    uint32_t dup_ppm,
                    uint64_t delay_min_us,
                    uint64_t delay_max_us);

/* --- Trace and statistics ----------------------------------------------------------- */

/* Writes the last `lines` trace lines (at most sim_trace_lines_max) into buf, each ending
 * in a newline, NUL-terminated and truncated to size. Returns the length written. */
size_t sim_trace(const struct sim *s, unsigned lines, char *buf, size_t size);

struct sim_stats
{
    uint64_t steps;
    uint64_t msgs_sent;      /* put on the network */
    uint64_t msgs_delivered; /* handed to a core */
    uint64_t msgs_dropped;   /* lost, cut by a partition, or addressed to a down node */
    uint64_t msgs_duplicated;
    uint64_t msgs_held_lost; /* after_persist messages lost in a crash */
    uint64_t elections;      /* campaigns started (candidate, not pre-candidate) */
    uint64_t leaders;        /* times a node became leader */
    uint64_t proposals;      /* entries accepted by a leader */
    uint64_t commits;        /* highest index committed anywhere */
    uint64_t writes;         /* persist requests */
    uint64_t snapshots_taken;
    uint64_t snapshots_sent;
    uint64_t snapshots_installed;
    uint64_t crashes;
    uint64_t restarts;
    uint64_t reads_served;
    uint64_t reads_failed;
    uint64_t changes; /* membership changes accepted by a leader */
    /* Persist completions that arrived while a later request, still in flight, deleted
     * entries they vouch for (a truncation behind a write): the core must ignore them. */
    uint64_t persisted_after_truncation;
};
const struct sim_stats *sim_stats(const struct sim *s);

/* --- Random runs -------------------------------------------------------------------- */

/*
 * One random run: a 3- or 5-voter cluster (sometimes with a learner) whose parameters
 * (snapshot threshold, batch and window sizes, disk speed, fault mix, workload rates) come
 * from the seed; `steps` steps with faults coming and going (partitions of every shape,
 * crashes below quorum, pauses, clock skew, loss, duplication, delays, slow and stalled
 * disks, a leader deposed right after a burst of proposals), client proposals (one in
 * ten to a node that must refuse it), ReadIndex requests, transfers and campaigns; then
 * every fault healed and a liveness check: within 20 maximal election timeouts (plus the
 * time to replicate the backlog) a value proposed after the heal is committed and applied
 * on every node. LUARAFT_TRACE=1 prints every trace line to stderr.
 *
 * Returns 0 if the run held up, else SIM_EFAILED with the failure (rule, seed, the command
 * that replays it, trace tail) in msg. *stats, if not NULL, gets the run's statistics.
 */
int sim_random_run(uint64_t seed,
                   uint64_t steps,
                   char *msg,
                   size_t msg_size,
                   struct sim_stats *stats);

#endif
