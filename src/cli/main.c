/*
 * luaraft's command line: parses the flags of `luaraft node ...` into a node_config and
 * runs the node, hands `luaraft cluster ...` to cluster.c, or prints the version. Exit
 * codes: 0 after a clean stop, 1 when the node could not start (the reason is on stderr,
 * a log line), 2 for bad usage (an unknown command or option, a bad value).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <lua.h>
#include <uv.h>

#include "cli/cluster.h"
#include "cli/restore.h"
#include "node/config.h"
#include "node/node.h"
#include "peer/peer_auth.h"
#include "util/crash_point.h"
#include "util/log.h"

#ifndef LUARAFT_VERSION
#error "LUARAFT_VERSION is defined by CMakeLists.txt, from project(... VERSION ...)"
#endif

static const char usage_text[] =
    "Usage: luaraft node --id N --data DIR --listen HOST:PORT --raft HOST:PORT\n"
    "                    [--cluster ID=HOST:PORT,... | --join HOST:PORT] [options] SCRIPT.lua\n"
    "\n"
    "Runs one node of a Raft cluster whose replicated state machine is SCRIPT.lua.\n"
    "Clients talk to --listen with the Redis protocol (redis-cli -p PORT).\n"
    "\n"
    "Required:\n"
    "  --id N                   this node's id (a positive integer, unique in the cluster)\n"
    "  --data DIR               data directory (LMDB store and snapshot files); created,\n"
    "                           with the directories above it, if missing\n"
    "  --listen HOST:PORT       address of the client port (RESP)\n"
    "  --raft HOST:PORT         address of the peer port (Raft messages)\n"
    "  --cluster ID=HOST:PORT,...\n"
    "                           the initial configuration: every member's id and peer\n"
    "                           address, this node included. Used on first start only\n"
    "                           (it is then stored in DIR); afterwards the stored one wins\n"
    "  --join HOST:PORT         instead of --cluster, on first start: learn the cluster's\n"
    "                           id and members from the member whose client port this is,\n"
    "                           then wait to be added with RAFT.ADD (as a learner, made a\n"
    "                           voter once caught up)\n"
    "\n"
    "Options (defaults in brackets):\n"
    "  --tick-ms MS             length of one tick of the protocol clock [10]\n"
    "  --heartbeat-ticks N      ticks between leader heartbeats [5]\n"
    "  --election-ticks N       election timeout in ticks; each timeout is drawn from\n"
    "                           [N, 2N) [50: 500 to 1000 ms]\n"
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
    "  --http HOST:PORT         serve HTTP there: /metrics (Prometheus text), /health\n"
    "                           (200 or 503 with the reason), /status (JSON) and a live\n"
    "                           status page at /; keep it on loopback (127.0.0.1:PORT)\n"
    "                           or a trusted network: it has no authentication [none]\n"
    "  --health-lag N           /health answers 503 while more than N committed entries\n"
    "                           are not yet applied here [1000]\n"
    "  --max-clients N          client connections at once; one more gets an error and is\n"
    "                           closed [10000]\n"
    "  --client-memory BYTES    what all clients' buffers (commands being read, replies\n"
    "                           not yet sent) may hold together; past it the client\n"
    "                           holding the most is disconnected; 0: no limit [1G]\n"
    "  --requirepass-file PATH  clients must AUTH with the password on the first line of\n"
    "                           PATH before any other command [none]\n"
    "  --requirepass PASS       the same with the password on the command line (which\n"
    "                           other users of the machine can see) [none]\n"
    "  --peer-secret-file PATH  peers must prove they hold the secret in PATH before any\n"
    "                           Raft message of theirs is taken: 32 bytes or more (head -c\n"
    "                           32 /dev/urandom > PATH), mode 600, the same file on every\n"
    "                           node, --join ones too; without it anyone who can reach\n"
    "                           --raft can act as a member [none]\n"
    "  --lua-command-memory BYTES  bytes of new objects one command may ask for (tables,\n"
    "                           long strings, closures); over it the command gets\n"
    "                           -ERR ... memory budget; the same on every node [256M]\n"
    "  --lua-memory BYTES       bytes the Lua state may hold; give every node the same\n"
    "                           values [4G]\n"
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

/* What the flags fill in: the node_config, and the two addresses it holds parsed. */
struct node_args
{
    struct node_config c;
    const char *listen;
    const char *raft;
    const char *http;
    const char *requirepass_file;
    const char *peer_secret_file;
};

enum flag_kind {
    flag_text,    /* the argument as given */
    flag_integer, /* an integer in min..max */
    flag_size,    /* a size with suffixes K, M, G, at least min; with min 0, "0" too */
};

/* One flag of `luaraft node`: where its argument goes and what it must be. */
struct node_flag
{
    const char *name; /* without "--" */
    enum flag_kind kind;
    size_t offset; /* of the field in struct node_args */
    size_t width;  /* of that field: sizeof (const char *), 4 or 8 */
    uint64_t min;
    uint64_t max;
    const char *error; /* the usage error after "--name: 'ARG' " */
};

/* offset and width of a field of struct node_args, as node_flag holds them. */
#define FIELD(member) offsetof(struct node_args, member), sizeof(((struct node_args *)0)->member)

/* In the order of usage_text; getopt_long sees them in this order too. */
static const struct node_flag node_flags[] = {
    {"id", flag_integer, FIELD(c.id), 1, UINT32_MAX, "is not a positive integer"},
    {"data", flag_text, FIELD(c.data_dir), 0, 0, NULL},
    {"listen", flag_text, FIELD(listen), 0, 0, NULL},
    {"raft", flag_text, FIELD(raft), 0, 0, NULL},
    {"cluster", flag_text, FIELD(c.cluster), 0, 0, NULL},
    {"join", flag_text, FIELD(c.join), 0, 0, NULL},
    {"tick-ms", flag_integer, FIELD(c.tick_ms), 1, 60000, "is not in 1..60000"},
    {"heartbeat-ticks", flag_integer, FIELD(c.heartbeat_ticks), 1, 1u << 20,
     "is not a positive integer"},
    {"election-ticks", flag_integer, FIELD(c.election_ticks), 2, 1u << 20, "is not in 2..1048576"},
    {"snapshot-entries", flag_integer, FIELD(c.snapshot_entries), 0, UINT32_MAX,
     "is not an integer"},
    {"snapshot-trailing", flag_integer, FIELD(c.snapshot_trailing), 0, UINT32_MAX,
     "is not an integer"},
    {"snapshot-bytes", flag_size, FIELD(c.snapshot_bytes), 0, 0, "is not a size"},
    {"map-size", flag_size, FIELD(c.map_bytes), 1u << 20, 0, "is not a size of 1M or more"},
    {"write-timeout-ms", flag_integer, FIELD(c.write_timeout_ms), 10, 3600000,
     "is not in 10..3600000"},
    {"log-cache-bytes", flag_size, FIELD(c.log_cache_bytes), 0, 0, "is not a size"},
    {"http", flag_text, FIELD(http), 0, 0, NULL},
    {"lua-command-memory", flag_size, FIELD(c.lua_command_memory), 1u << 20, 0,
     "is not a size of 1M or more"},
    {"lua-memory", flag_size, FIELD(c.lua_memory), 1u << 20, 0, "is not a size of 1M or more"},
    {"health-lag", flag_integer, FIELD(c.health_lag_max), 0, UINT32_MAX, "is not an integer"},
    {"max-clients", flag_integer, FIELD(c.clients_max), 1, 1000000, "is not in 1..1000000"},
    {"client-memory", flag_size, FIELD(c.client_memory_bytes), 0, 0, "is not a size"},
    {"requirepass", flag_text, FIELD(c.requirepass), 0, 0, NULL},
    {"requirepass-file", flag_text, FIELD(requirepass_file), 0, 0, NULL},
    {"peer-secret-file", flag_text, FIELD(peer_secret_file), 0, 0, NULL},
};

enum {
    node_flags_count = sizeof node_flags / sizeof node_flags[0],
    flag_first = 256, /* getopt_long's val for node_flags[i]: flag_first + i */
};

/* Stores v, or the text, in the field of f. */
static void store_flag(const struct node_flag *f, struct node_args *a, const char *text, uint64_t v)
{
    char *field = (char *)a + f->offset;
    if (f->kind == flag_text) {
        memcpy(field, &text, sizeof text);
    } else if (f->width == sizeof(uint32_t)) {
        uint32_t narrow = (uint32_t)v; /* the flag's max fits */
        memcpy(field, &narrow, sizeof narrow);
    } else {
        memcpy(field, &v, sizeof v);
    }
}

/* Reads the argument of flag f into a: -1 to go on, or the usage error's exit code. */
static int parse_flag(const struct node_flag *f, const char *arg, struct node_args *a)
{
    uint64_t v = 0;
    bool ok = true;
    if (f->kind == flag_integer) {
        ok = parse_u64(arg, f->min, f->max, &v) == 0;
    } else if (f->kind == flag_size && !(f->min == 0 && strcmp(arg, "0") == 0)) {
        ok = parse_size(arg, &v) == 0 && v >= f->min;
    }
    if (!ok) {
        return usage_error("--%s: '%s' %s", f->name, arg, f->error);
    }
    store_flag(f, a, arg, v);
    return -1;
}

/* getopt_long's table for node_flags, and --help. */
static void make_options(struct option *options)
{
    for (int i = 0; i < node_flags_count; i++) {
        options[i] = (struct option){node_flags[i].name, required_argument, NULL, flag_first + i};
    }
    options[node_flags_count] = (struct option){"help", no_argument, NULL, 'h'};
    options[node_flags_count + 1] = (struct option){NULL, 0, NULL, 0};
}

/* The usage error of an option getopt_long refused: opt is its '?' (unknown or ambiguous)
 * or ':' (no argument), arg the word of argv it was in, options getopt_long's table. */
static int option_error(const struct option *options, int opt, const char *arg)
{
    if (opt == ':') {
        if (optopt >= flag_first && optopt < flag_first + node_flags_count) {
            return usage_error("option '--%s' needs an argument",
                               node_flags[optopt - flag_first].name);
        }
        return usage_error("option '%s' needs an argument", arg);
    }
    if (optopt != 0) {
        return usage_error("unknown option '-%c'", optopt);
    }
    size_t len = strcspn(arg, "=");
    char names[512] = "";
    int matches = 0;
    for (int i = 0; options[i].name != NULL && len > 2; i++) {
        if (strncmp(options[i].name, arg + 2, len - 2) == 0) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s--%s", matches > 0 ? ", " : "",
                     options[i].name);
            matches++;
        }
    }
    if (matches > 1) {
        return usage_error("ambiguous option '%.*s': it could be %s", (int)len, arg, names);
    }
    return usage_error("unknown option '%.*s'", (int)len, arg);
}

/* Reads the flags and SCRIPT.lua into a: -1 to go on, or the exit code (0 after --help,
 * 2 for bad usage). */
static int parse_node_args(int argc, char **argv, struct node_args *a)
{
    struct option options[node_flags_count + 2];
    make_options(options);
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (opt == '?' || opt == ':') {
            return option_error(options, opt, argv[optind - 1]);
        }
        int rv = parse_flag(&node_flags[opt - flag_first], optarg, a);
        if (rv >= 0) {
            return rv;
        }
    }
    if (optind != argc - 1) {
        return usage_error("%s", optind >= argc ? "missing SCRIPT.lua" : "more than one script");
    }
    a->c.script = argv[optind];
    return -1;
}

/* --listen or --raft (flag) from text into host and port: -1 to go on, or the exit code
 * (2 for bad usage, 1 for a host name that does not resolve: the node cannot start). */
static int resolve_flag(const char *flag, const char *text, char *host, size_t size, int *port)
{
    char msg[512];
    int rv = config_resolve_addr(text, host, size, port, msg, sizeof msg);
    if (rv == -1) {
        return usage_error("%s: %s", flag, msg);
    }
    if (rv != 0) {
        lr_log("cannot start: %s %s: %s", flag, text, msg);
        return 1;
    }
    return -1;
}

/*
 * What no single flag shows, and the addresses resolved into the config: -1 to go on, or
 * the exit code. Only the syntax of --cluster is checked here: the node resolves the
 * configuration it uses (--cluster on first start, the stored one afterwards).
 */
/* The first line of path, without its end of line, malloc'd (never freed: the node keeps
 * it), or NULL with the reason logged. */
static char *read_password(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        lr_log("cannot start: --requirepass-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[4096];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[got ? strcspn(line, "\r\n") : 0] = '\0';
    if (line[0] == '\0') {
        lr_log("cannot start: --requirepass-file %s: its first line is empty", path);
        return NULL;
    }
    return strdup(line);
}

/* The key of --peer-secret-file into c: 0, or -1 with the reason logged. */
static int load_peer_secret(const char *path, struct node_config *c)
{
    static uint8_t key[PEER_KEY_BYTES]; /* the node keeps it */
    char msg[512];
    if (peer_secret_load(path, key, msg, sizeof msg) != 0) {
        lr_log("cannot start: --peer-secret-file %s: %s", path, msg);
        return -1;
    }
    c->peer_key = key;
    return 0;
}

static int check_node_args(struct node_args *a)
{
    struct node_config *c = &a->c;
    if (a->peer_secret_file != NULL && load_peer_secret(a->peer_secret_file, c) != 0) {
        return 1;
    }
    if (a->requirepass_file != NULL && c->requirepass != NULL) {
        return usage_error("%s", "give --requirepass or --requirepass-file, not both");
    }
    if (c->requirepass != NULL && c->requirepass[0] == '\0') {
        return usage_error("%s", "--requirepass: the password is empty");
    }
    if (a->requirepass_file != NULL &&
        (c->requirepass = read_password(a->requirepass_file)) == NULL) {
        return 1;
    }
    if (c->id == 0 || c->data_dir == NULL || a->listen == NULL || a->raft == NULL) {
        return usage_error("%s", "--id, --data, --listen and --raft are required");
    }
    if (c->heartbeat_ticks >= c->election_ticks) {
        return usage_error("%s", "--heartbeat-ticks must be below --election-ticks");
    }
    if (strlen(c->data_dir) >= node_path_bytes_max) {
        return usage_error("--data: '%s' is too long", c->data_dir);
    }
    char msg[512];
    if (c->cluster != NULL && c->join != NULL) {
        return usage_error("%s", "--cluster and --join exclude each other");
    }
    if (c->cluster != NULL && config_check_cluster(c->cluster, msg, sizeof msg) < 0) {
        return usage_error("--cluster: %s", msg);
    }
    lr_log_set_id(c->id);
    int rv =
        resolve_flag("--listen", a->listen, c->listen_host, sizeof c->listen_host, &c->listen_port);
    if (rv < 0) {
        rv = resolve_flag("--raft", a->raft, c->raft_host, sizeof c->raft_host, &c->raft_port);
    }
    if (rv < 0 && a->http != NULL) {
        rv = resolve_flag("--http", a->http, c->http_host, sizeof c->http_host, &c->http_port);
    }
    return rv;
}

static int node_main(int argc, char **argv)
{
    struct node_args a = {
        .c =
            {
                .tick_ms = 10,
                /* 50 ms heartbeats, 500-1000 ms elections: a leader's loop thread
                 * may stall for tens of ms moving a 16 MiB value on a busy machine
                 * (luaraft_loop_stall_seconds), which must not cost an election. */
                .heartbeat_ticks = 5,
                .election_ticks = 50,
                .snapshot_entries = 100000,
                .snapshot_trailing = 1000,
                .snapshot_bytes = 256ull << 20,
                .map_bytes = 1ull << 30,
                .write_timeout_ms = 20000,
                .log_cache_bytes = 64ull << 20,
                .health_lag_max = 1000,
                .clients_max = 10000,
                .client_memory_bytes = 1ull << 30,
                .lua_command_memory = 256ull << 20,
                .lua_memory = 4ull << 30,
            },
    };
    if (!crash_point_init()) {
        return 2;
    }
    int rv = parse_node_args(argc, argv, &a);
    if (rv < 0) {
        rv = check_node_args(&a);
    }
    return rv >= 0 ? rv : node_run(&a.c);
}

static const char main_usage_text[] =
    "Usage: luaraft node [options] SCRIPT.lua      run one node of a cluster\n"
    "       luaraft cluster [options] SCRIPT.lua   run a local cluster of N nodes in the\n"
    "                                              foreground (Ctrl-C stops it)\n"
    "       luaraft restore BACKUP --data DIR      seed a data directory from a backup\n"
    "                                              that RAFT.BACKUP wrote\n"
    "       luaraft version                        the version, and those of Lua, libuv\n"
    "                                              and LMDB it was built with\n"
    "       luaraft help                           this text\n"
    "\n"
    "'luaraft node --help', 'luaraft cluster --help' and 'luaraft restore --help' explain\n"
    "each command.\n"
    "\n";

/* `luaraft version`: this build's version, then the libraries' it was compiled against
 * (and the loaded one's where the shared library in use is another). */
static int version_main(void)
{
    printf("luaraft %s\n", LUARAFT_VERSION);
    printf("built with %s, libuv %d.%d.%d, LMDB %d.%d.%d\n", LUA_RELEASE, UV_VERSION_MAJOR,
           UV_VERSION_MINOR, UV_VERSION_PATCH, MDB_VERSION_MAJOR, MDB_VERSION_MINOR,
           MDB_VERSION_PATCH);
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    if (uv_version() != UV_VERSION_HEX || major != MDB_VERSION_MAJOR ||
        minor != MDB_VERSION_MINOR || patch != MDB_VERSION_PATCH) {
        printf("running with libuv %s, LMDB %d.%d.%d\n", uv_version_string(), major, minor, patch);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc >= 2 ? argv[1] : NULL;
    if (cmd == NULL) {
        fputs(main_usage_text, stderr);
        fputs(usage_text, stderr);
        return 2;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_usage_text, stdout);
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        return version_main();
    }
    if (strcmp(cmd, "cluster") == 0) {
        return cluster_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "node") == 0) {
        return node_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "restore") == 0) {
        return restore_main(argc - 1, argv + 1);
    }
    fprintf(stderr, "luaraft: unknown command '%s'\n\n", cmd);
    fputs(main_usage_text, stderr);
    return 2;
}
