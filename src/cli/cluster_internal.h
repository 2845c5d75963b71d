/*
 * Shared between the files of `luaraft cluster`: cluster.c (the command line and the data
 * directory), cluster_run.c (the nodes: start, watch, stop) and cluster_log.c (what the
 * command prints). Not part of cluster.h's interface.
 */
#ifndef LUARAFT_CLI_CLUSTER_INTERNAL_H
#define LUARAFT_CLI_CLUSTER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    cluster_nodes_max = 9,
    line_bytes_max = 4096,
    stop_wait_ms = 5000,
    peer_port_offset = 1000,
    http_port_offset = 2000, /* node i's --http port: base+2000+i-1 */
};

/* The peer secret every node gets (--peer-secret-file), in the data directory: made by
 * cluster.c on the first start, kept afterwards. */
static const char cluster_secret_name[] = "peer-secret";

/* The command line, checked by cluster.c. */
struct cluster_options
{
    unsigned long nodes;
    unsigned long base; /* client port of node 1; node i's peer port is base+1000+i-1 */
    const char *data;   /* --data as given */
    bool fresh;
    const char *script;
    int extra;         /* NODE-OPTIONS after "--", passed to every node */
    char **extra_args; /* they are not ours (cluster.c refuses --id, --data, ...) */
};

/* One node process and what is left of its output's last, incomplete line. */
struct child
{
    int id;
    pid_t pid;   /* 0 once reaped */
    int out;     /* read end of the node's stdout/stderr pipe; -1 after EOF */
    int log;     /* DIR/n<i>.log, append-only */
    bool exited; /* reaped */
    char buf[line_bytes_max];
    size_t len;
};

/* The leader the nodes' lines reported last, to report each change once. */
struct leader_state
{
    uint64_t leader;
    uint64_t term;
};

/* Prints "<time> luaraft cluster: <text>" on stdout and flushes it (the time as the log's
 * lines show it, util/log.h). */
__attribute__((format(printf, 1, 2))) void cluster_say(const char *fmt, ...);

/* The same line on stderr, in one write(2) (so also in a child between fork and exec). */
__attribute__((format(printf, 1, 2))) void cluster_warn(const char *fmt, ...);

/* Reads what node c wrote, forwarding and recording each complete line; returns false at
 * EOF (c->out is then closed and -1). */
bool cluster_read_child(struct child *c, struct leader_state *ls);

/* Starts the nodes with their data in dir (an absolute path that exists), runs them in the
 * foreground until a signal stops them or they all exit, and returns the exit code. */
int cluster_run(const struct cluster_options *o, const char *dir);

#endif
