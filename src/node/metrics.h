/*
 * The node's counters and histograms (struct node_metrics, a part of struct node), where
 * the rooms count what happens, and their rendering as Prometheus text for /metrics
 * (metrics.c): https://prometheus.io/docs/instrumenting/exposition_formats/ (version
 * 0.0.4). Every number a rate is made of is a counter (_total): Prometheus's rate() turns
 * it into one. The gauges (role, term, indexes, per-peer match and lag) are read from the
 * core when rendered.
 *
 * Metrics observe and never decide: they may read the machine's monotonic clock
 * (metrics_now_s) also where the simulator drives the node, since nothing the node does
 * depends on them.
 */
#ifndef LUARAFT_NODE_METRICS_H
#define LUARAFT_NODE_METRICS_H

#include <stdint.h>

#include "raft/raft.h"
#include "util/buf.h"
#include "util/histogram.h"

struct node;

enum {
    /* Proposal batches of the leader waiting for their commit, for the commit latency;
     * a batch proposed while this many wait is not timed. */
    metrics_commit_waits_max = 1024,
};

/* A batch of entries proposed by this node as leader, up to last, at time at. */
struct commit_wait
{
    raft_index last;
    double at;
};

struct node_metrics
{
    uint64_t proposals_total;      /* entries this node proposed as leader */
    uint64_t applied_total;        /* entries applied here (every replica applies all) */
    uint64_t apply_errors_total;   /* applied commands whose reply is an error */
    uint64_t reads_total;          /* script reads served here after their ReadIndex */
    uint64_t read_errors_total;    /* those whose reply is an error */
    uint64_t read_rounds_total;    /* ReadIndex rounds those reads took */
    uint64_t leader_changes_total; /* times this node saw a new leader (itself included) */
    uint64_t snapshots_failed_total;
    struct histogram commit_seconds;   /* proposal on the leader .. known committed */
    struct histogram snapshot_seconds; /* snapshots taken here: start .. file complete */
    struct histogram snapshot_bytes;   /* their files' sizes */
    struct histogram install_seconds;  /* received snapshots: install .. restored */
    double snapshot_started, install_started;
    struct commit_wait waits[metrics_commit_waits_max]; /* a ring, oldest at waits_off */
    unsigned waits_off, waits_n;
};

/* What only the world knows, for metrics_render: NULL members are left out. */
struct metrics_world
{
    const struct histogram *fsync_seconds;      /* the store's commits (store_stats) */
    const struct histogram *loop_stall_seconds; /* how late the loop thread's ticks ran */
    uint32_t http_connections;
};

double metrics_now_s(void);
void metrics_init(struct node_metrics *m);
/* The leader proposed entries up to last. */
void metrics_proposed(struct node *n, raft_index last);
/* The core says entries up to commit are committed. */
void metrics_committed(struct node *n, raft_index commit);
/* The snapshot file at path (NULL: the snapshot failed) is complete. */
void metrics_snapshot_done(struct node *n, const char *path);

/* Appends the Prometheus text of every metric to out. */
void metrics_render(struct node *n, const struct metrics_world *w, struct buf *out);

#endif
