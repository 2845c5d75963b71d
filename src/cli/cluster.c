/*
 * `luaraft cluster [options] SCRIPT.lua [-- NODE-OPTIONS...]`: the command line and the
 * data directory, everything before the first node starts. cluster_run.c starts, watches
 * and stops the nodes; cluster_log.c prints what they and the command have to say.
 */
#define _GNU_SOURCE
#include "cli/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include "cli/cluster_internal.h"

static const char cluster_usage_text[] =
    "Usage: luaraft cluster [--nodes N] [--data DIR] [--base-port P] [--fresh]\n"
    "                       SCRIPT.lua [-- NODE-OPTIONS...]\n"
    "\n"
    "Runs a local cluster of N `luaraft node` processes on 127.0.0.1 in the foreground,\n"
    "all with SCRIPT.lua as their state machine. Node i listens for clients on port\n"
    "P+i-1 (redis-cli -p P), for its peers on port P+1000+i-1, and serves HTTP on port\n"
    "P+2000+i-1 (/metrics, /health, /status and the status page at /, whose URL is\n"
    "printed at the start). Each node's log goes to this terminal and to DIR/n<i>.log;\n"
    "leader changes are reported as they happen. The nodes prove to each other that they\n"
    "belong with the secret in DIR/peer-secret (--peer-secret-file), made on the first\n"
    "start (32 random bytes, mode 600) and kept; a node started by hand to join them needs\n"
    "the same file.\n"
    "Ctrl-C (or SIGTERM) stops every node and exits 0. A node that exits on its own (say,\n"
    "after kill -9, to watch a failover) is reported and the others go on.\n"
    "\n"
    "Options (defaults in brackets):\n"
    "  --nodes N                number of nodes, 1..9 [3]\n"
    "  --data DIR               data directory: node i keeps its data in DIR/n<i> and\n"
    "                           its log in DIR/n<i>.log; created if missing, and kept,\n"
    "                           so a restart of the command finds the data again [./data]\n"
    "  --base-port P            client port of node 1 [6001]\n"
    "  --fresh                  delete DIR/n1..n9 and DIR/n1.log..n9.log first (nothing\n"
    "                           else in DIR), for a cluster with no data\n"
    "  -h, --help               this text\n"
    "\n"
    "NODE-OPTIONS after `--` are passed to every node (see 'luaraft node --help'), for\n"
    "example: luaraft cluster examples/kv.lua -- --snapshot-entries 1000\n"
    "\n"
    "From another terminal, 'luaraft cluster add [ID]', 'luaraft cluster remove ID' and\n"
    "'luaraft cluster restart ID' (same --data and --base-port) change the running cluster:\n"
    "see 'luaraft cluster add --help'.\n";

__attribute__((format(printf, 1, 2))) static int cluster_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "luaraft cluster: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'luaraft cluster --help'.\n");
    return 2;
}

static int parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (text[0] < '0' || text[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

int cli_make_dirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
        return -1;
    }
    struct stat st;
    if (stat(tmp, &st) != 0) {
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rv = flag == FTW_DP ? rmdir(path) : unlink(path);
    if (rv != 0) {
        cluster_warn("cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Removes DIR/n1..n9 (directories only, never through a symlink) and DIR/n1.log..n9.log
 * (regular files only). Anything else of that name makes it refuse before removing
 * anything; nothing else in DIR is touched. */
static int fresh_start(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 1; i <= cluster_nodes_max; i++) {
            snprintf(path, sizeof path, "%s/n%d", dir, i);
            if (lstat(path, &st) == 0) {
                if (!S_ISDIR(st.st_mode)) {
                    cluster_warn(
                        "--fresh: %s is not a node's data directory; not removing anything", path);
                    return -1;
                }
                if (pass == 1 && nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
                    return -1;
                }
            }
            snprintf(path, sizeof path, "%s/n%d.log", dir, i);
            if (lstat(path, &st) == 0) {
                if (!S_ISREG(st.st_mode)) {
                    cluster_warn("--fresh: %s is not a node's log file; not removing anything",
                                 path);
                    return -1;
                }
                if (pass == 1 && unlink(path) != 0) {
                    cluster_warn("cannot remove %s: %s", path, strerror(errno));
                    return -1;
                }
            }
        }
    }
    return 0;
}

static int option_is_ours(const char *arg)
{
    static const char *const ours[] = {"--id",      "--data", "--listen",          "--raft",
                                       "--cluster", "--http", "--peer-secret-file"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        size_t n = strlen(ours[i]);
        if (strncmp(arg, ours[i], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            return 1;
        }
    }
    return 0;
}

enum {
    opt_nodes = 256,
    opt_data,
    opt_base_port,
    opt_fresh,
};

/* Everything after the first "--" goes to the nodes untouched: returns its index (argc
 * when there is none) and points o at what follows. */
static int split_node_options(int argc, char **argv, struct cluster_options *o)
{
    int ours = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            ours = i;
            break;
        }
    }
    o->extra = ours < argc ? argc - ours - 1 : 0;
    o->extra_args = argv + ours + 1;
    return ours;
}

/* One option that getopt_long returned: -1 to go on, or the exit code. */
static int parse_option(int opt, char **argv, struct cluster_options *o)
{
    unsigned long v;
    switch (opt) {
        case 'h':
            fputs(cluster_usage_text, stdout);
            return 0;
        case opt_nodes:
            if (parse_uint(optarg, 1, cluster_nodes_max, &v) != 0) {
                return cluster_usage_error("--nodes: '%s' is not in 1..9", optarg);
            }
            o->nodes = v;
            return -1;
        case opt_data:
            if (optarg[0] == '\0') {
                return cluster_usage_error("%s", "--data: empty directory name");
            }
            o->data = optarg;
            return -1;
        case opt_base_port:
            if (parse_uint(optarg, 1, 65535, &v) != 0) {
                return cluster_usage_error("--base-port: '%s' is not a port", optarg);
            }
            o->base = v;
            return -1;
        case opt_fresh:
            o->fresh = true;
            return -1;
        default:
            return cluster_usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
    }
}

/* What no single option shows: room for the peer ports, NODE-OPTIONS that would clash
 * with ours, a script to run. -1 when all is well, else the exit code. */
static int check_options(const struct cluster_options *o)
{
    if (o->base + http_port_offset + o->nodes - 1 > 65535) {
        return cluster_usage_error(
            "--base-port: %lu leaves no room for the peer and HTTP ports (%lu+%d, %lu+%d)", o->base,
            o->base, peer_port_offset, o->base, http_port_offset);
    }
    for (int i = 0; i < o->extra; i++) {
        if (option_is_ours(o->extra_args[i])) {
            return cluster_usage_error("'%s' after '--': luaraft cluster sets it for each node",
                                       o->extra_args[i]);
        }
    }
    struct stat st;
    if (stat(o->script, &st) != 0 || !S_ISREG(st.st_mode) || access(o->script, R_OK) != 0) {
        return cluster_usage_error("no readable script at '%s'", o->script);
    }
    return -1;
}

/* Fills o from the command line: -1 to go on, or the exit code (0 after --help, 2 for
 * bad usage, said on stderr). */
static int parse_options(int argc, char **argv, struct cluster_options *o)
{
    static const struct option options[] = {
        {"nodes", required_argument, NULL, opt_nodes},
        {"data", required_argument, NULL, opt_data},
        {"base-port", required_argument, NULL, opt_base_port},
        {"fresh", no_argument, NULL, opt_fresh},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct cluster_options){.nodes = 3, .base = 6001, .data = "./data"};
    int ours = split_node_options(argc, argv, o);
    int opt;
    opterr = 0;
    while ((opt = getopt_long(ours, argv, "h", options, NULL)) != -1) {
        int rv = parse_option(opt, argv, o);
        if (rv >= 0) {
            return rv;
        }
    }
    if (optind != ours - 1) {
        return cluster_usage_error("%s",
                                   optind >= ours ? "missing SCRIPT.lua" : "more than one script");
    }
    o->script = argv[optind];
    return check_options(o);
}

/* Makes DIR/peer-secret (32 random bytes, the owner's only) unless it exists: the nodes'
 * --peer-secret-file. 0, or -1 with the reason on stderr. */
static int make_secret(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, cluster_secret_name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        return 0; /* kept from an earlier start: the node checks it */
    }
    unsigned char secret[32];
    if (fd < 0 || sodium_init() < 0) {
        cluster_warn("cannot create %s: %s", path, fd < 0 ? strerror(errno) : "no libsodium");
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    randombytes_buf(secret, sizeof secret);
    ssize_t n = write(fd, secret, sizeof secret);
    sodium_memzero(secret, sizeof secret);
    if (n != (ssize_t)sizeof secret || fsync(fd) != 0) {
        cluster_warn("cannot write %s: %s", path, n < 0 ? strerror(errno) : "short write");
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* Creates the data directory, puts its absolute path in dir (PATH_MAX bytes), applies
 * --fresh and makes the peer secret. 0, or -1 with the reason on stderr. */
static int prepare_data_dir(const struct cluster_options *o, char *dir)
{
    if (cli_make_dirs(o->data) != 0) {
        cluster_warn("cannot create data directory %s: %s", o->data, strerror(errno));
        return -1;
    }
    if (realpath(o->data, dir) == NULL) {
        cluster_warn("%s: %s", o->data, strerror(errno));
        return -1;
    }
    if (strlen(dir) + 16 >= 256) { /* the node's limit on --data (node_path_bytes_max) */
        cluster_warn("data directory path too long: %s", dir);
        return -1;
    }
    if (o->fresh && fresh_start(dir) != 0) {
        return -1;
    }
    return make_secret(dir);
}

int cluster_main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "remove") == 0 ||
                      strcmp(argv[1], "restart") == 0)) {
        return cluster_ctl_main(argc - 1, argv + 1);
    }
    struct cluster_options o;
    int rv = parse_options(argc, argv, &o);
    if (rv >= 0) {
        return rv;
    }
    char dir[PATH_MAX];
    if (prepare_data_dir(&o, dir) != 0) {
        return 1;
    }
    return cluster_run(&o, dir);
}
