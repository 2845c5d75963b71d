/*
 * The node: the one module that sees every layer. It owns the libuv loop, feeds the
 * protocol core (src/raft/) with ticks, peer messages, client proposals and storage
 * acknowledgments, and carries out each update the core returns: persist through the
 * store, send through the transport, apply and query through the fsm thread, answer
 * clients through the server.
 */
#ifndef LUARAFT_NODE_H
#define LUARAFT_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    node_host_bytes_max = 64,  /* a numeric IPv4 or IPv6 address, NUL included */
    node_path_bytes_max = 400, /* the data directory's path */
};

/* One member of the configuration: of --cluster, and then of the configuration in force
 * (src/node/members.c), with its peer address resolved. */
struct node_member
{
    raft_id id;
    char host[node_host_bytes_max];
    int port;
    bool voter; /* false: a learner */
};

struct node_config
{
    raft_id id;
    const char *data_dir;
    char listen_host[node_host_bytes_max];
    int listen_port;
    char raft_host[node_host_bytes_max];
    int raft_port;
    const char *cluster; /* the --cluster text as given, or NULL */
    const char *join;    /* --join: a member's client address, or NULL */
    const char *script;
    uint32_t tick_ms;
    uint32_t heartbeat_ticks;
    uint32_t election_ticks;
    uint64_t snapshot_entries;  /* applied entries between automatic snapshots; 0: never */
    uint64_t snapshot_bytes;    /* log payload bytes in memory that trigger one; 0: never */
    uint64_t snapshot_trailing; /* entries kept in the log behind a snapshot */
    uint64_t map_bytes;
    uint32_t write_timeout_ms;           /* a write not applied by then gets -TIMEOUT (unknown) */
    uint64_t log_cache_bytes;            /* log payload bytes kept in memory; older ones are read */
    char http_host[node_host_bytes_max]; /* --http: /metrics, /health, /status, the page */
    int http_port;                       /* 0: no HTTP port */
    uint64_t lua_command_memory;         /* --lua-command-memory: bytes one command may ask for */
    uint64_t lua_memory;                 /* --lua-memory: bytes the Lua state may hold */
    uint64_t health_lag_max;             /* /health: committed entries not yet applied, at most */
    uint32_t clients_max;                /* client connections at once */
    uint64_t client_memory_bytes;        /* all clients' buffers together; 0: no limit */
    const char *requirepass;             /* clients must AUTH with it; NULL: no password */
    const uint8_t *peer_key; /* --peer-secret-file's key (src/peer/peer_auth.h); NULL: none */
};

/*
 * Parses "1=127.0.0.1:7001,2=..." into members (at most RAFT_SERVERS_MAX). Returns the
 * number of members, or -1 with a message in errmsg.
 */
int node_parse_cluster(const char *text,
                       struct node_member *members,
                       char *errmsg,
                       size_t errmsg_size);

/* Parses "host:port" (IPv6 as [::1]:port). Returns 0 or -1. */
int node_parse_addr(const char *text, char *host, size_t host_size, int *port);

/*
 * Runs the node until SIGINT or SIGTERM. Returns the process exit code: 0 after a clean
 * stop, 1 when start-up failed (the reason is on stderr).
 */
int node_run(const struct node_config *c);

#endif
