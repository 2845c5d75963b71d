/*
 * INFO's text (info.h). What struct node_io does not give (the process's id, age, memory
 * and CPU time, the machine's name) comes from libc and /proc here; the rest from the
 * node's rooms.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD, mallinfo2 */
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "node/cluster_view.h"
#include "node/info.h"
#include "node/internal.h"
#include "node/introspect.h"
#include "util/assert.h"

#ifndef LUARAFT_VERSION
#error "LUARAFT_VERSION is defined by CMakeLists.txt, from project(... VERSION ...)"
#endif

void info_printf(struct buf *out, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    lr_assert(k >= 0);
    if ((size_t)k < sizeof small) {
        lr_assert(buf_append(out, small, (size_t)k) == 0);
        return;
    }
    lr_assert(buf_reserve(out, (size_t)k + 1) == 0);
    va_start(ap, fmt);
    vsnprintf((char *)out->data + out->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)k;
}

/* ------------------------------------------------------------------------------------ */
/* The process, from libc and /proc. */

/* Seconds since this process started: /proc/self/stat's start time (clock ticks after
 * boot) against /proc/uptime. 0 when either cannot be read. */
static uint64_t process_uptime_s(void)
{
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL) {
        return 0;
    }
    size_t k = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[k] = '\0';
    /* The command name (field 2) may hold spaces: count fields after its ')'. */
    const char *p = strrchr(line, ')');
    unsigned long long start_ticks = 0;
    for (int field = 2; p != NULL && field < 22; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL || sscanf(p + 1, "%llu", &start_ticks) != 1) {
        return 0;
    }
    double up = 0;
    f = fopen("/proc/uptime", "r");
    if (f == NULL) {
        return 0;
    }
    int got = fscanf(f, "%lf", &up);
    fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    double started = hz > 0 ? (double)start_ticks / (double)hz : 0;
    return got == 1 && up > started ? (uint64_t)(up - started) : 0;
}

static uint64_t rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return got == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

/* Bytes the allocator handed out (every arena, mmapped blocks included); the RSS where
 * the allocator keeps no statistics (under a sanitizer's). */
static uint64_t used_memory_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    uint64_t used = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    return used > 0 ? used : rss_bytes();
}

/* Redis's bytesToHuman: B, K, M, G, T with two decimals. */
static void put_human(struct buf *out, const char *field, uint64_t bytes)
{
    static const char units[] = "BKMGTP";
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0) {
        info_printf(out, "%s:%" PRIu64 "B\r\n", field, bytes);
    } else {
        info_printf(out, "%s:%.2f%c\r\n", field, v, units[u]);
    }
}

static void put_timeval(struct buf *out, const char *field, struct timeval tv)
{
    info_printf(out, "%s:%ld.%06ld\r\n", field, (long)tv.tv_sec, (long)tv.tv_usec);
}

/* ------------------------------------------------------------------------------------ */
/* Sections. */

/* The port of a "host:port" address (IPv6 as [::1]:port), 0 when it has none. */
static int addr_port(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    return colon != NULL ? atoi(colon + 1) : 0;
}

static void section_server(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    struct utsname u;
    if (uname(&u) != 0) {
        memset(&u, 0, sizeof u);
    }
    uint64_t up = process_uptime_s();
    info_printf(out, "redis_version:%s\r\n", NODE_REDIS_VERSION);
    info_printf(out, "luaraft_version:%s\r\n", LUARAFT_VERSION);
    info_printf(out, "redis_mode:cluster\r\n");
    info_printf(out, "os:%s %s %s\r\n", u.sysname, u.release, u.machine);
    info_printf(out, "arch_bits:%d\r\n", (int)(sizeof(void *) * 8));
    info_printf(out, "multiplexing_api:epoll\r\n");
    info_printf(out, "process_id:%ld\r\n", (long)getpid());
    char run_id[CLUSTER_NODE_ID_HEX + 1];
    /* Another one for each start of the process, as Redis's. */
    cluster_hex_id(((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (up << 48) ^ n->c->id,
                   run_id);
    info_printf(out, "run_id:%s\r\n", run_id);
    info_printf(out, "tcp_port:%d\r\n", addr_port(n->client_addr));
    info_printf(out, "server_time_usec:%" PRId64 "\r\n", n->io->wall_ms(n->io->arg) * 1000);
    info_printf(out, "uptime_in_seconds:%" PRIu64 "\r\n", up);
    info_printf(out, "uptime_in_days:%" PRIu64 "\r\n", up / 86400);
}

static struct node_client_memory client_memory(struct node *n)
{
    struct node_client_memory m = {0};
    if (n->io->client_memory != NULL) {
        n->io->client_memory(n->io->arg, &m);
    }
    return m;
}

static void section_clients(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    struct node_client_memory m = client_memory(n);
    info_printf(out, "connected_clients:%" PRIu32 "\r\n", n->io->clients(n->io->arg));
    info_printf(out, "maxclients:%" PRIu32 "\r\n", n->c->clients_max);
    info_printf(out, "client_largest_buffers:%" PRIu64 "\r\n", m.largest_bytes);
    info_printf(out, "cluster_connections:0\r\n");
    info_printf(out, "blocked_clients:0\r\n");
    info_printf(out, "tracking_clients:0\r\n");
}

static void section_memory(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    struct node_client_memory m = client_memory(n);
    uint64_t used = used_memory_bytes(), rss = rss_bytes();
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    struct rusage ru;
    uint64_t peak = getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
    peak = peak > rss ? peak : rss; /* the kernel updates its high-water mark lazily */
    info_printf(out, "used_memory:%" PRIu64 "\r\n", used);
    put_human(out, "used_memory_human", used);
    info_printf(out, "used_memory_rss:%" PRIu64 "\r\n", rss);
    put_human(out, "used_memory_rss_human", rss);
    info_printf(out, "used_memory_peak_rss:%" PRIu64 "\r\n", peak);
    put_human(out, "used_memory_peak_rss_human", peak);
    uint64_t lua = n->io->lua_memory != NULL ? n->io->lua_memory(n->io->arg) : 0;
    info_printf(out, "used_memory_lua:%" PRIu64 "\r\n", lua);
    put_human(out, "used_memory_lua_human", lua);
    info_printf(out, "total_system_memory:%" PRIu64 "\r\n", total);
    put_human(out, "total_system_memory_human", total);
    info_printf(out, "maxmemory:0\r\n");
    info_printf(out, "maxmemory_human:0B\r\n");
    info_printf(out, "maxmemory_policy:noeviction\r\n");
    info_printf(out, "mem_clients_normal:%" PRIu64 "\r\n", m.held_bytes);
    info_printf(out, "maxmemory_clients:%" PRIu64 "\r\n", n->c->client_memory_bytes);
    info_printf(out, "mem_allocator:libc\r\n");
}

static void section_persistence(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    info_printf(out, "loading:0\r\n");
    info_printf(out, "async_loading:0\r\n");
    info_printf(out, "rdb_bgsave_in_progress:%d\r\n", n->snap.running ? 1 : 0);
    info_printf(out, "aof_enabled:0\r\n");
    info_printf(out, "aof_rewrite_in_progress:0\r\n");
}

static void section_stats(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    info_printf(out, "total_connections_received:%" PRIu64 "\r\n", n->session_seq);
    info_printf(out, "total_commands_processed:%" PRIu64 "\r\n", n->commands_processed);
    info_printf(out, "instantaneous_ops_per_sec:0\r\n");
    info_printf(out, "rejected_connections:0\r\n");
    info_printf(out, "evicted_clients:%" PRIu64 "\r\n", client_memory(n).evicted);
}

/* The leader: its connected followers whose client address it knows, as Redis lists its
 * replicas (slaveN:ip=..,port=..,state=online,offset=<match index>,lag=0). */
static void replication_master(struct node *n, struct buf *out)
{
    struct buf lines;
    buf_init(&lines);
    int k = 0;
    for (int i = 0; i < n->n_members; i++) {
        raft_id id = n->members[i].id;
        const char *addr = id != n->c->id ? n->io->peer_client_addr(n->io->arg, id) : NULL;
        char host[node_host_bytes_max];
        int port;
        struct raft_peer_info pi;
        if (addr == NULL || !n->io->peer_connected(n->io->arg, id) ||
            node_parse_addr(addr, host, sizeof host, &port) != 0) {
            continue;
        }
        bool known = raft_peer_info(n->raft, id, &pi);
        info_printf(&lines, "slave%d:ip=%s,port=%d,state=online,offset=%" PRIu64 ",lag=0\r\n", k++,
                    host, port, known ? pi.match : 0);
    }
    info_printf(out, "role:master\r\n");
    info_printf(out, "connected_slaves:%d\r\n", k);
    lr_assert(buf_append(out, lines.data, lines.len) == 0);
    buf_free(&lines);
}

/* A follower (or a node that knows no leader): the leader's client address. */
static void replication_slave(struct node *n, struct buf *out, raft_id leader)
{
    const char *addr = leader != 0 ? n->io->peer_client_addr(n->io->arg, leader) : NULL;
    char host[node_host_bytes_max] = "";
    int port = 0;
    if (addr == NULL || node_parse_addr(addr, host, sizeof host, &port) != 0) {
        host[0] = '\0';
        port = 0;
    }
    bool up = addr != NULL && n->io->peer_connected(n->io->arg, leader);
    info_printf(out, "role:slave\r\n");
    info_printf(out, "master_host:%s\r\n", host);
    info_printf(out, "master_port:%d\r\n", port);
    info_printf(out, "master_link_status:%s\r\n", up ? "up" : "down");
    info_printf(out, "master_sync_in_progress:0\r\n");
    info_printf(out, "slave_repl_offset:%" PRIu64 "\r\n", n->applied);
    info_printf(out, "slave_priority:100\r\n");
    /* Writes sent to a follower are forwarded to the leader, not refused. */
    info_printf(out, "slave_read_only:0\r\n");
    info_printf(out, "connected_slaves:0\r\n");
}

static void section_replication(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    raft_id leader = raft_leader_of(n->raft);
    if (leader == n->c->id && raft_role_of(n->raft) == RAFT_LEADER) {
        replication_master(n, out);
    } else {
        replication_slave(n, out, leader);
    }
    char replid[CLUSTER_NODE_ID_HEX + 1];
    /* One replication history per term, as Redis's changes with each new master. */
    cluster_hex_id(raft_current_term(n->raft) ^ 0x7265706cULL << 32, replid);
    info_printf(out, "master_failover_state:no-failover\r\n");
    info_printf(out, "master_replid:%s\r\n", replid);
    info_printf(out, "master_repl_offset:%" PRIu64 "\r\n", raft_commit_index(n->raft));
}

static void section_cpu(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)n;
    (void)keyspace;
    struct rusage self, children, thread;
    memset(&self, 0, sizeof self);
    memset(&children, 0, sizeof children);
    memset(&thread, 0, sizeof thread);
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    getrusage(RUSAGE_THREAD, &thread); /* INFO runs on the node's loop thread */
    put_timeval(out, "used_cpu_sys", self.ru_stime);
    put_timeval(out, "used_cpu_user", self.ru_utime);
    put_timeval(out, "used_cpu_sys_children", children.ru_stime);
    put_timeval(out, "used_cpu_user_children", children.ru_utime);
    put_timeval(out, "used_cpu_sys_main_thread", thread.ru_stime);
    put_timeval(out, "used_cpu_user_main_thread", thread.ru_utime);
}

static void section_cluster(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)n;
    (void)keyspace;
    info_printf(out, "cluster_enabled:1\r\n");
}

static void section_keyspace(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)n;
    if (keyspace != NULL && keyspace[0] > 0) {
        info_printf(out, "db0:keys=%" PRId64 ",expires=%" PRId64 ",avg_ttl=0\r\n", keyspace[0],
                    keyspace[1]);
    }
}

const char *info_role_text(struct node *n)
{
    if (n->dur.store_failed) {
        return "failed";
    }
    if (!raft_is_voter(n->raft, n->c->id)) {
        return "learner";
    }
    switch (raft_role_of(n->raft)) {
        case RAFT_LEADER:
            return "leader";
        case RAFT_CANDIDATE:
            return "candidate";
        case RAFT_PRECANDIDATE:
            return "precandidate";
        default:
            return "follower";
    }
}

void info_raft_fields(struct node *n, const char *role_field, struct buf *out)
{
    raft_id leader = raft_leader_of(n->raft);
    const char *laddr = leader == n->c->id ? n->client_addr
                        : leader != 0      ? n->io->peer_client_addr(n->io->arg, leader)
                                           : NULL;
    info_printf(out, "%s:%s\r\n", role_field, info_role_text(n));
    info_printf(out, "node_id:%" PRIu64 "\r\n", n->c->id);
    info_printf(out, "term:%" PRIu64 "\r\n", raft_current_term(n->raft));
    info_printf(out, "leader_id:%" PRIu64 "\r\n", leader);
    info_printf(out, "leader_addr:%s\r\n", laddr != NULL ? laddr : "");
    info_printf(out, "commit_index:%" PRIu64 "\r\n", raft_commit_index(n->raft));
    info_printf(out, "applied_index:%" PRIu64 "\r\n", n->applied);
    info_printf(out, "last_log_index:%" PRIu64 "\r\n", raft_last_index(n->raft));
    info_printf(out, "snapshot_index:%" PRIu64 "\r\n", n->snap.index);
    info_printf(out, "log_cache_bytes:%" PRIu64 "\r\n", n->cache.bytes);
    info_printf(out, "log_bytes:%" PRIu64 "\r\n", n->cache.log_bytes);
    info_printf(out, "store_failed:%s\r\n", n->dur.store_failed ? "yes" : "no");
    info_printf(out, "clients:%" PRIu32 "\r\n", n->io->clients(n->io->arg));
    info_printf(out, "elections_timeout:%" PRIu64 "\r\n", n->tr.elections_timeout);
    info_printf(out, "elections_transfer:%" PRIu64 "\r\n", n->tr.elections_transfer);
    info_printf(out, "transfer:%s\r\n", transfer_phase_name(n));
    info_printf(out, "transfer_target:%" PRIu64 "\r\n", n->tr.target);
    info_printf(out, "transfers_done:%" PRIu64 "\r\n", n->tr.done);
    info_printf(out, "transfers_failed:%" PRIu64 "\r\n", n->tr.failed);
    info_printf(out, "script:%s\r\n", n->script_name);
    info_printf(out, "script_hash:%s\r\n", n->script_hash);
    info_printf(out, "script_since:%" PRIu64 "\r\n", n->script_since);
    /* Replication progress is the leader's to know; a follower's view of it is stale. */
    for (int i = 0; i < n->n_members && raft_role_of(n->raft) == RAFT_LEADER; i++) {
        raft_id id = n->members[i].id;
        struct raft_peer_info pi;
        if (id == n->c->id) {
            continue;
        }
        bool known = raft_peer_info(n->raft, id, &pi);
        info_printf(out, "peer_%" PRIu64 ":match=%" PRIu64 ",state=%s,connected=%s\r\n", id,
                    known ? pi.match : 0, known && pi.state != NULL ? pi.state : "unknown",
                    n->io->peer_connected(n->io->arg, id) ? "yes" : "no");
    }
}

/* "raft_role": INFO's Replication section has Redis's "role" (master or slave). */
static void section_raft(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)keyspace;
    info_raft_fields(n, "raft_role", out);
}

static void section_empty(struct node *n, struct buf *out, const int64_t *keyspace)
{
    (void)n;
    (void)out;
    (void)keyspace;
}

static const struct
{
    const char *name; /* as its header shows it */
    bool in_default;
    void (*fn)(struct node *n, struct buf *out, const int64_t *keyspace);
} sections[] = {
    {"Server", true, section_server},
    {"Clients", true, section_clients},
    {"Memory", true, section_memory},
    {"Persistence", true, section_persistence},
    {"Stats", true, section_stats},
    {"Replication", true, section_replication},
    {"CPU", true, section_cpu},
    {"Modules", true, section_empty},
    {"Commandstats", false, section_empty},
    {"Errorstats", true, section_empty},
    {"Latencystats", false, section_empty},
    {"Cluster", true, section_cluster},
    {"Keyspace", true, section_keyspace},
    {"Raft", true, section_raft},
};

static bool word_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

void info_text(struct node *n,
               const char *section,
               size_t section_len,
               const int64_t *keyspace,
               struct buf *out)
{
    bool dflt = section == NULL || word_is(section, section_len, "default");
    bool all = section != NULL && (word_is(section, section_len, "all") ||
                                   word_is(section, section_len, "everything"));
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        bool wanted = all || (dflt && sections[i].in_default) ||
                      (section != NULL && word_is(section, section_len, sections[i].name));
        if (!wanted) {
            continue;
        }
        if (out->len > 0) {
            info_printf(out, "\r\n");
        }
        info_printf(out, "# %s\r\n", sections[i].name);
        sections[i].fn(n, out, keyspace);
    }
}
