/*
 * luaraft's command line: parses the flags of `luaraft node ...` into a node_config and
 * runs the node, or hands `luaraft cluster ...` to cluster.c. Exit codes: 0 after a clean
 * stop, 1 when the node could not start (the reason is on stderr), 2 for bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cluster.h"
#include "node/node.h"

static const char usage_text[] =
    "Usage: luaraft node --id N --data DIR --listen HOST:PORT --raft HOST:PORT\n"
    "                    [--cluster ID=HOST:PORT,...] [options] SCRIPT.lua\n"
    "\n"
    "Runs one node of a Raft cluster whose replicated state machine is SCRIPT.lua.\n"
    "Clients talk to --listen with the Redis protocol (redis-cli -p PORT).\n"
    "\n"
    "Required:\n"
    "  --id N                   this node's id (a positive integer, unique in the cluster)\n"
    "  --data DIR               data directory (LMDB store and snapshot files); created\n"
    "                           if missing\n"
    "  --listen HOST:PORT       address of the client port (RESP)\n"
    "  --raft HOST:PORT         address of the peer port (Raft messages)\n"
    "  --cluster ID=HOST:PORT,...\n"
    "                           the initial configuration: every member's id and peer\n"
    "                           address, this node included. Used on first start only\n"
    "                           (it is then stored in DIR); afterwards the stored one wins\n"
    "\n"
    "Options (defaults in brackets):\n"
    "  --tick-ms MS             length of one tick of the protocol clock [10]\n"
    "  --heartbeat-ticks N      ticks between leader heartbeats [1]\n"
    "  --election-ticks N       election timeout in ticks; each timeout is drawn from\n"
    "                           [N, 2N) [10]\n"
    "  --snapshot-entries N     take a snapshot after N applied entries; 0: only on\n"
    "                           RAFT.SNAPSHOT [100000]\n"
    "  --snapshot-bytes BYTES   take one once the log held in memory passes BYTES;\n"
    "                           suffixes K, M, G accepted; 0: never [256M]\n"
    "  --snapshot-trailing N    log entries kept behind a snapshot, so that a briefly\n"
    "                           lagging follower catches up from the log [1000]\n"
    "  --map-size BYTES         LMDB map size; suffixes K, M, G accepted [1G]\n"
    "  --log-cache-bytes BYTES  log payloads kept in memory for followers; older ones are\n"
    "                           read from the store; suffixes K, M, G; 0: keep all [64M]\n"
    "  --write-timeout-ms MS    a write not applied within MS gets -TIMEOUT: its outcome\n"
    "                           is unknown [20000]\n"
    "  -h, --help               this text\n"
    "\n"
    "Built-in commands: PING, RAFT.INFO, RAFT.SNAPSHOT; every other command goes to\n"
    "the script (reads listed in its M.reads, the rest are writes).\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "luaraft: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'luaraft node --help'.\n");
    return 2;
}

static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (text[0] == '-' || text[0] == '\0') {
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    if (text[0] == '-' || text[0] == '\0') {
        return -1;
    }
    unsigned long long v = strtoull(text, &end, 10);
    uint64_t mult = 1;
    if (*end == 'K' || *end == 'k') {
        mult = 1ull << 10;
        end++;
    } else if (*end == 'M' || *end == 'm') {
        mult = 1ull << 20;
        end++;
    } else if (*end == 'G' || *end == 'g') {
        mult = 1ull << 30;
        end++;
    }
    if (errno != 0 || *end != '\0' || v == 0 || v > UINT64_MAX / mult) {
        return -1;
    }
    *out = v * mult;
    return 0;
}

enum {
    opt_id = 256,
    opt_data,
    opt_listen,
    opt_raft,
    opt_cluster,
    opt_tick_ms,
    opt_heartbeat_ticks,
    opt_election_ticks,
    opt_snapshot_entries,
    opt_snapshot_trailing,
    opt_snapshot_bytes,
    opt_map_size,
    opt_write_timeout_ms,
    opt_log_cache_bytes,
};

static int node_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"id", required_argument, NULL, opt_id},
        {"data", required_argument, NULL, opt_data},
        {"listen", required_argument, NULL, opt_listen},
        {"raft", required_argument, NULL, opt_raft},
        {"cluster", required_argument, NULL, opt_cluster},
        {"tick-ms", required_argument, NULL, opt_tick_ms},
        {"heartbeat-ticks", required_argument, NULL, opt_heartbeat_ticks},
        {"election-ticks", required_argument, NULL, opt_election_ticks},
        {"snapshot-entries", required_argument, NULL, opt_snapshot_entries},
        {"snapshot-trailing", required_argument, NULL, opt_snapshot_trailing},
        {"snapshot-bytes", required_argument, NULL, opt_snapshot_bytes},
        {"map-size", required_argument, NULL, opt_map_size},
        {"write-timeout-ms", required_argument, NULL, opt_write_timeout_ms},
        {"log-cache-bytes", required_argument, NULL, opt_log_cache_bytes},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct node_config c = {
        .tick_ms = 10,
        .heartbeat_ticks = 1,
        .election_ticks = 10,
        .snapshot_entries = 100000,
        .snapshot_trailing = 1000,
        .snapshot_bytes = 256ull << 20,
        .map_bytes = 1ull << 30,
        .write_timeout_ms = 20000,
        .log_cache_bytes = 64ull << 20,
    };
    const char *listen = NULL, *raft = NULL;
    uint64_t v;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
            case 'h':
                fputs(usage_text, stdout);
                exit(0);
            case opt_id:
                if (parse_u64(optarg, 1, UINT32_MAX, &v) != 0) {
                    return usage_error("--id: '%s' is not a positive integer", optarg);
                }
                c.id = v;
                break;
            case opt_data:
                c.data_dir = optarg;
                break;
            case opt_listen:
                listen = optarg;
                break;
            case opt_raft:
                raft = optarg;
                break;
            case opt_cluster:
                c.cluster = optarg;
                break;
            case opt_tick_ms:
                if (parse_u64(optarg, 1, 60000, &v) != 0) {
                    return usage_error("--tick-ms: '%s' is not in 1..60000", optarg);
                }
                c.tick_ms = (uint32_t)v;
                break;
            case opt_heartbeat_ticks:
                if (parse_u64(optarg, 1, 1u << 20, &v) != 0) {
                    return usage_error("--heartbeat-ticks: '%s' is not a positive integer", optarg);
                }
                c.heartbeat_ticks = (uint32_t)v;
                break;
            case opt_election_ticks:
                if (parse_u64(optarg, 2, 1u << 20, &v) != 0) {
                    return usage_error("--election-ticks: '%s' is not in 2..1048576", optarg);
                }
                c.election_ticks = (uint32_t)v;
                break;
            case opt_snapshot_entries:
                if (parse_u64(optarg, 0, UINT32_MAX, &v) != 0) {
                    return usage_error("--snapshot-entries: '%s' is not an integer", optarg);
                }
                c.snapshot_entries = v;
                break;
            case opt_snapshot_trailing:
                if (parse_u64(optarg, 0, UINT32_MAX, &v) != 0) {
                    return usage_error("--snapshot-trailing: '%s' is not an integer", optarg);
                }
                c.snapshot_trailing = v;
                break;
            case opt_snapshot_bytes:
                if (strcmp(optarg, "0") == 0) {
                    c.snapshot_bytes = 0;
                } else if (parse_size(optarg, &c.snapshot_bytes) != 0) {
                    return usage_error("--snapshot-bytes: '%s' is not a size", optarg);
                }
                break;
            case opt_log_cache_bytes:
                if (strcmp(optarg, "0") == 0) {
                    c.log_cache_bytes = 0;
                } else if (parse_size(optarg, &c.log_cache_bytes) != 0) {
                    return usage_error("--log-cache-bytes: '%s' is not a size", optarg);
                }
                break;
            case opt_write_timeout_ms:
                if (parse_u64(optarg, 10, 3600000, &v) != 0) {
                    return usage_error("--write-timeout-ms: '%s' is not in 10..3600000", optarg);
                }
                c.write_timeout_ms = (uint32_t)v;
                break;
            case opt_map_size:
                if (parse_size(optarg, &c.map_bytes) != 0 || c.map_bytes < (1u << 20)) {
                    return usage_error("--map-size: '%s' is not a size of 1M or more", optarg);
                }
                break;
            default:
                return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) {
        return usage_error("%s", optind >= argc ? "missing SCRIPT.lua" : "more than one script");
    }
    c.script = argv[optind];
    if (c.id == 0 || c.data_dir == NULL || listen == NULL || raft == NULL) {
        return usage_error("%s", "--id, --data, --listen and --raft are required");
    }
    if (c.heartbeat_ticks >= c.election_ticks) {
        return usage_error("%s", "--heartbeat-ticks must be below --election-ticks");
    }
    if (strlen(c.data_dir) >= node_path_bytes_max) {
        return usage_error("--data: '%s' is too long", c.data_dir);
    }
    if (node_parse_addr(listen, c.listen_host, sizeof c.listen_host, &c.listen_port) != 0) {
        return usage_error("--listen: '%s' is not HOST:PORT", listen);
    }
    if (node_parse_addr(raft, c.raft_host, sizeof c.raft_host, &c.raft_port) != 0) {
        return usage_error("--raft: '%s' is not HOST:PORT", raft);
    }
    if (c.cluster != NULL) {
        struct node_member members[RAFT_SERVERS_MAX];
        char msg[256];
        if (node_parse_cluster(c.cluster, members, msg, sizeof msg) < 0) {
            return usage_error("--cluster: %s", msg);
        }
    }
    return node_run(&c);
}

static const char main_usage_text[] =
    "Usage: luaraft node [options] SCRIPT.lua      run one node of a cluster\n"
    "       luaraft cluster [options] SCRIPT.lua   run a local cluster of N nodes in the\n"
    "                                              foreground (Ctrl-C stops it)\n"
    "\n"
    "'luaraft node --help' and 'luaraft cluster --help' explain each command.\n"
    "\n";

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(main_usage_text, stdout);
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "cluster") == 0) {
        return cluster_main(argc - 1, argv + 1);
    }
    if (argc < 2 || strcmp(argv[1], "node") != 0) {
        fputs(main_usage_text, stderr);
        fputs(usage_text, stderr);
        return 2;
    }
    return node_main(argc - 1, argv + 1);
}
