/*
 * The whole-node simulator's parts (see nodesim.h): the world, its nodes and clients.
 */
#ifndef LUARAFT_SIM_NODES_INTERNAL_H
#define LUARAFT_SIM_NODES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm/fsm.h"
#include "fsm/job.h"
#include "node/internal.h"
#include "sim/lincheck.h"
#include "sim/nodes/nodesim.h"
#include "util/rand.h"

enum {
    sim_nodes_max = 5,
    sim_clients = 6,
    sim_keys = 8,
    sim_tick_ms = 10,
    sim_net_delay_ms_max = 8,
    sim_disk_delay_ms_max = 6,
    sim_fsm_delay_ms_max = 3,
    sim_fault_every_ms = 250,
    sim_client_timeout_ms = 60000,
    sim_heal_ms_max = 120000, /* virtual time the cluster gets to converge */
    sim_reply_bytes_max = 4096,
    sim_files_max = 8,        /* snapshot files a node holds at once */
    sim_snapshot_ms_max = 40, /* a snapshot child's run */
};

enum ev_type {
    EV_TICK,
    EV_DELIVER,
    EV_FRAME,
    EV_PERSIST,
    EV_FSM,
    EV_CLIENT_SEND,
    EV_CLIENT_REPLY,
    EV_CLIENT_TIMEOUT,
    EV_FAULT,
    EV_SNAPSHOT_WRITTEN, /* a snapshot child finished: a = index, b = term, p = the bytes */
    EV_DELIVER_SNAPSHOT, /* p = struct sim_snapshot_msg */
    EV_EXIT,             /* a gracefully stopped node's store has drained: it exits */
};

/* A snapshot file: written whole and durable at once (the real ones are written to a
 * temporary name, fsynced and renamed). A received one is "incoming" until installed. */
struct sim_file
{
    char name[48];
    raft_index index;
    raft_term term;
    struct buf data;
    bool incoming;
};

struct sim_snapshot_msg
{
    struct raft_message m;
    struct buf data;
};

struct event
{
    uint64_t time, seq;
    enum ev_type type;
    int node;     /* the receiving node (0-based), or the client */
    uint64_t inc; /* the node's incarnation when it was scheduled */
    void *p;      /* owned payload */
    size_t len;
    uint64_t a, b;
    int status;
};

/* A persist request in flight: a deep copy of the write and the node's context. */
struct sim_write
{
    struct store_write w;
    struct raft_entry *e;
    struct raft_server servers[RAFT_SERVERS_MAX];
    void *ctx;
};

struct server_request
{
    int client;
    int64_t op;
    void *tag;  /* the node's word (node_io.set_tag) */
    bool aux;   /* MULTI or a queued command: its reply tells the checker nothing */
    bool admin; /* a RAFT.TRANSFER (transfers.c checks its reply), op its number */
    bool answered, lost;
    struct server_request *next; /* the node's list, freed at its crash */
};

struct sim_node
{
    struct world *w;
    int idx;
    bool up;
    uint64_t inc;
    struct node *n;
    struct fsm *fsm;
    struct node_io io;
    struct node_config cfg;
    char dir[32];
    /* The durable store: what completed persist requests wrote. */
    raft_term term;
    raft_id vote;
    struct raft_server servers[RAFT_SERVERS_MAX];
    unsigned n_servers;
    struct raft_entry *log; /* log[0] is index log_first */
    raft_index log_first, log_n, log_cap;
    raft_index stored_snap_index; /* what the store records of the newest snapshot */
    raft_term stored_snap_term;
    struct sim_file files[sim_files_max];
    int n_files;
    raft_index fsm_index; /* the state the fsm holds */
    raft_term fsm_term;
    bool snap_fail_next, slow_fsm, disk_full_next;
    uint64_t disk_free_at, fsm_free_at;
    bool disk_fail_next, slow_disk;
    int disk_failed; /* the store's sticky error, until the next restart */
    struct server_request *reqs;
    raft_id leader_seen;
    raft_term led_term; /* the newest term this node led, over all its lives */
    /* A graceful shutdown (transfers.c): node_shutdown at shutdown_at; exiting once
     * node_stop ran and the store drains its queue. */
    uint64_t shutdown_at;
    bool exiting;
};

/* The RAFT.TRANSFER in flight (one at a time), and what its reply may say. */
struct sim_admin
{
    bool inflight;
    int64_t seq;
    uint64_t asked_at;
    raft_id target;      /* 0: the node picks */
    raft_id leader_then; /* whom the asked node followed (or was) when asked */
    raft_term term_then; /* the asked node's term then */
};

struct sim_client
{
    uint64_t uid; /* lincheck client id: a new one after every unknown outcome */
    int64_t op;   /* in flight, or -1 */
    enum lincheck_op kind;
    int target;
    uint64_t n;
    /* The client's connection to each node (a session of it), and the incarnation of the
     * node it was opened on: a crash frees the node's sessions. */
    struct session *sess[sim_nodes_max];
    uint64_t sess_inc[sim_nodes_max];
};

struct world
{
    const struct nodesim_options *o;
    struct lr_rand rng;
    uint64_t now, seq;
    struct event *heap;
    size_t heap_n, heap_cap;
    int n_nodes;
    struct sim_node nodes[sim_nodes_max];
    bool cut[sim_nodes_max]; /* partitioned away from the rest */
    unsigned drop_percent;
    struct sim_client clients[sim_clients];
    struct sim_admin adm;
    uint64_t next_uid;
    struct lincheck *h;
    bool healing;
    struct nodesim_stats *st;
    char *msg;
    size_t msg_size;
    bool failed;
};

/* queue.c: the event queue on the virtual clock, the seeded dice, the first violation. */
void ns_schedule(struct world *w, struct event ev);
struct event ns_pop(struct world *w);
uint64_t ns_rnd(struct world *w, uint64_t lo, uint64_t hi);
bool ns_chance(struct world *w, unsigned percent);
__attribute__((format(printf, 2, 3))) void ns_violation(struct world *w, const char *fmt, ...);

/* io.c: struct node_io, simulated. */
extern const struct node_io ns_io;
struct raft_entry *ns_copy_entries(const struct raft_entry *e, uint32_t n);
void ns_free_entries(struct raft_entry *e, uint32_t n);

/* nodes.c: a node's life (start from its durable store, crash) and its events. */
int ns_node_start(struct sim_node *s);
void ns_node_crash(struct sim_node *s);
void ns_event_free(struct event *ev);
void ns_node_event(struct world *w, struct sim_node *s, struct event *ev);
/* An event of a node that is exiting: only its store still works, until EV_EXIT. */
void ns_exiting_event(struct sim_node *s, struct event *ev);

/* snapshots.c: snapshot files, the snapshot and restore jobs, sending and receiving. */
struct sim_file *ns_file_find(struct sim_node *s, const char *name);
struct sim_file *ns_file_add(struct sim_node *s,
                             const char *name,
                             raft_index index,
                             raft_term term);
void ns_file_remove(struct sim_node *s, struct sim_file *f);
void ns_files_free(struct sim_node *s);
struct sim_file *ns_file_newest(struct sim_node *s);
int ns_fsm_restore(struct sim_node *s, const struct sim_file *f);
void ns_snapshot_job(struct sim_node *s, struct fsm_job *job);
void ns_restore_job(struct sim_node *s, struct fsm_job *job);
void ns_snapshot_written(struct sim_node *s, struct event *ev);
void ns_snapshot_delivered(struct sim_node *s, struct event *ev);

/* transfers.c: leadership transfers and graceful shutdowns among the faults. */
/* Nodes down, or on their way down (a crash waits while this many are leaving). */
int ns_nodes_leaving(struct world *w);
void ns_transfer_fault(struct world *w, struct sim_node *s);
void ns_shutdown_fault(struct world *w, struct sim_node *s);
void ns_admin_reply(struct world *w, struct server_request *req, const char *resp, size_t len);
/* After each event of s: a shutdown that is ready (or past its bound) stops the node. */
void ns_shutdown_check(struct world *w, struct sim_node *s);

/* clients.c: simulated clients, recorded for the linearizability checker. */
void ns_client_next(struct world *w, int c);
void ns_client_send(struct world *w, int c);
void ns_client_reply(struct world *w, struct event *ev);
/* The client's operation has an unknown outcome; it goes on as a new client. */
void ns_client_unknown(struct world *w, int c);

#endif
