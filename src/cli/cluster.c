/*
 * `luaraft cluster [options] SCRIPT.lua [-- NODE-OPTIONS...]`: starts N `luaraft node`
 * processes (this same executable, through /proc/self/exe) on loopback, each in its own
 * process group so that only this process sees the terminal's Ctrl-C and stops them in
 * order. Each node's stdout and stderr go to a pipe read here: every line is forwarded to
 * our stderr and appended to DIR/n<i>.log. The nodes' "election won" and "leader changed"
 * lines are turned into one "leader is now node N (term T)" line on stdout per change.
 * Signals reach the poll() loop through a self-pipe.
 */
#define _GNU_SOURCE
#include "cli/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    cluster_nodes_max = 9,
    line_bytes_max = 4096,
    stop_wait_ms = 5000,
    peer_port_offset = 1000,
};

static const char cluster_usage_text[] =
    "Usage: luaraft cluster [--nodes N] [--data DIR] [--base-port P] [--fresh]\n"
    "                       SCRIPT.lua [-- NODE-OPTIONS...]\n"
    "\n"
    "Runs a local cluster of N `luaraft node` processes on 127.0.0.1 in the foreground,\n"
    "all with SCRIPT.lua as their state machine. Node i listens for clients on port\n"
    "P+i-1 (redis-cli -p P) and for its peers on port P+1000+i-1. Each node's log goes to\n"
    "this terminal and to DIR/n<i>.log; leader changes are reported as they happen.\n"
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
    "example: luaraft cluster examples/kv.lua -- --snapshot-entries 1000\n";

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

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signum)
{
    int saved = errno;
    unsigned char b = (unsigned char)signum;
    ssize_t rv = write(sig_pipe[1], &b, 1);
    (void)rv;
    errno = saved;
}

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

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("luaraft cluster: ", stdout);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
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

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* mkdir -p */
static int make_dirs(const char *path)
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
        fprintf(stderr, "luaraft cluster: cannot remove %s: %s\n", path, strerror(errno));
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
                    fprintf(stderr,
                            "luaraft cluster: --fresh: %s is not a node's data directory; "
                            "not removing anything\n",
                            path);
                    return -1;
                }
                if (pass == 1 && nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
                    return -1;
                }
            }
            snprintf(path, sizeof path, "%s/n%d.log", dir, i);
            if (lstat(path, &st) == 0) {
                if (!S_ISREG(st.st_mode)) {
                    fprintf(stderr,
                            "luaraft cluster: --fresh: %s is not a node's log file; "
                            "not removing anything\n",
                            path);
                    return -1;
                }
                if (pass == 1 && unlink(path) != 0) {
                    fprintf(stderr, "luaraft cluster: cannot remove %s: %s\n", path,
                            strerror(errno));
                    return -1;
                }
            }
        }
    }
    return 0;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

struct leader_state
{
    uint64_t leader;
    uint64_t term;
};

/* Looks at one complete line of node c's output (without its newline). */
static void handle_line(struct child *c, struct leader_state *ls, const char *line, size_t n)
{
    char prefix[32];
    size_t plen = 0;
    if (strncmp(line, "luaraft[", 8) != 0) {
        plen = (size_t)snprintf(prefix, sizeof prefix, "luaraft[%d] ", c->id);
    }
    char out[line_bytes_max + 40];
    memcpy(out, prefix, plen);
    memcpy(out + plen, line, n);
    out[plen + n] = '\n';
    write_all(STDERR_FILENO, out, plen + n + 1);
    if (c->log >= 0) {
        write_all(c->log, out, plen + n + 1);
    }

    char text[line_bytes_max + 1];
    memcpy(text, line, n);
    text[n] = '\0';
    uint64_t id, term, leader = 0;
    int off = -1;
    if (sscanf(text, "luaraft[%" SCNu64 "] term %" SCNu64 ": %n", &id, &term, &off) < 2 ||
        off < 0) {
        return;
    }
    const char *msg = text + off;
    if (strncmp(msg, "election won", 12) == 0) {
        leader = id;
    } else if (sscanf(msg, "leader changed: node %" SCNu64, &leader) != 1) {
        return;
    }
    if (leader == 0 || term < ls->term || (leader == ls->leader && term == ls->term)) {
        return;
    }
    ls->leader = leader;
    ls->term = term;
    say("leader is now node %" PRIu64 " (term %" PRIu64 ")", leader, term);
}

/* Reads what node c wrote; returns false at EOF. */
static bool read_child(struct child *c, struct leader_state *ls)
{
    ssize_t r = read(c->out, c->buf + c->len, sizeof c->buf - c->len);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
        return true;
    }
    if (r <= 0) {
        if (c->len > 0) {
            handle_line(c, ls, c->buf, c->len);
            c->len = 0;
        }
        close(c->out);
        c->out = -1;
        return false;
    }
    c->len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->buf[i] == '\n') {
            handle_line(c, ls, c->buf + start, i - start);
            start = i + 1;
        }
    }
    if (start == 0 && c->len == sizeof c->buf) {
        handle_line(c, ls, c->buf, c->len); /* an overlong line: pass it on in pieces */
        start = c->len;
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    return true;
}

static pid_t spawn_node(struct child *c, char **args)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "luaraft cluster: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "luaraft cluster: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* Own process group: the terminal's Ctrl-C reaches only the parent, which stops
         * the nodes itself. If the parent dies anyway, the node gets SIGTERM. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(1);
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
        }
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execv("/proc/self/exe", args);
        dprintf(STDERR_FILENO, "luaraft cluster: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    c->out = fds[0];
    c->pid = pid;
    return pid;
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status)) {
        snprintf(buf, size, "signal %d", WTERMSIG(status));
    } else {
        snprintf(buf, size, "status %d", WEXITSTATUS(status));
    }
}

static int option_is_ours(const char *arg)
{
    static const char *const ours[] = {"--id", "--data", "--listen", "--raft", "--cluster"};
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

int cluster_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"nodes", required_argument, NULL, opt_nodes},
        {"data", required_argument, NULL, opt_data},
        {"base-port", required_argument, NULL, opt_base_port},
        {"fresh", no_argument, NULL, opt_fresh},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned long nodes = 3, base = 6001, v;
    const char *data = "./data";
    bool fresh = false;

    /* Everything after the first "--" goes to the nodes untouched. */
    int ours = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            ours = i;
            break;
        }
    }
    int extra = ours < argc ? argc - ours - 1 : 0;
    char **extra_args = argv + ours + 1;

    int opt;
    opterr = 0;
    while ((opt = getopt_long(ours, argv, "h", options, NULL)) != -1) {
        switch (opt) {
            case 'h':
                fputs(cluster_usage_text, stdout);
                return 0;
            case opt_nodes:
                if (parse_uint(optarg, 1, cluster_nodes_max, &v) != 0) {
                    return cluster_usage_error("--nodes: '%s' is not in 1..9", optarg);
                }
                nodes = v;
                break;
            case opt_data:
                if (optarg[0] == '\0') {
                    return cluster_usage_error("%s", "--data: empty directory name");
                }
                data = optarg;
                break;
            case opt_base_port:
                if (parse_uint(optarg, 1, 65535, &v) != 0) {
                    return cluster_usage_error("--base-port: '%s' is not a port", optarg);
                }
                base = v;
                break;
            case opt_fresh:
                fresh = true;
                break;
            default:
                return cluster_usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind != ours - 1) {
        return cluster_usage_error("%s",
                                   optind >= ours ? "missing SCRIPT.lua" : "more than one script");
    }
    const char *script = argv[optind];
    if (base + peer_port_offset + nodes - 1 > 65535) {
        return cluster_usage_error("--base-port: %lu leaves no room for the peer ports (%lu+%d)",
                                   base, base, peer_port_offset);
    }
    for (int i = 0; i < extra; i++) {
        if (option_is_ours(extra_args[i])) {
            return cluster_usage_error("'%s' after '--': luaraft cluster sets it for each node",
                                       extra_args[i]);
        }
    }
    struct stat st;
    if (stat(script, &st) != 0 || !S_ISREG(st.st_mode) || access(script, R_OK) != 0) {
        return cluster_usage_error("no readable script at '%s'", script);
    }

    if (make_dirs(data) != 0) {
        fprintf(stderr, "luaraft cluster: cannot create data directory %s: %s\n", data,
                strerror(errno));
        return 1;
    }
    char dir[PATH_MAX];
    if (realpath(data, dir) == NULL) {
        fprintf(stderr, "luaraft cluster: %s: %s\n", data, strerror(errno));
        return 1;
    }
    if (strlen(dir) + 16 >= 256) { /* the node's limit on --data (node_path_bytes_max) */
        fprintf(stderr, "luaraft cluster: data directory path too long: %s\n", dir);
        return 1;
    }
    if (fresh && fresh_start(dir) != 0) {
        return 1;
    }

    /* Signals go to the self-pipe from here on; block them while the nodes start. */
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "luaraft cluster: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char members[cluster_nodes_max * 32];
    size_t mlen = 0;
    for (unsigned long i = 0; i < nodes; i++) {
        mlen += (size_t)snprintf(members + mlen, sizeof members - mlen, "%s%lu=127.0.0.1:%lu",
                                 i > 0 ? "," : "", i + 1, base + peer_port_offset + i);
    }

    struct child kids[cluster_nodes_max];
    memset(kids, 0, sizeof kids);
    struct leader_state ls = {0, 0};
    int running = 0;
    for (unsigned long i = 0; i < nodes; i++) {
        struct child *c = &kids[i];
        c->id = (int)i + 1;
        c->out = -1;
        char idtext[16], ndir[PATH_MAX], listen[32], raft[32], logpath[PATH_MAX];
        snprintf(idtext, sizeof idtext, "%d", c->id);
        snprintf(ndir, sizeof ndir, "%s/n%d", dir, c->id);
        snprintf(listen, sizeof listen, "127.0.0.1:%lu", base + i);
        snprintf(raft, sizeof raft, "127.0.0.1:%lu", base + peer_port_offset + i);
        snprintf(logpath, sizeof logpath, "%s/n%d.log", dir, c->id);
        c->log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (c->log < 0) {
            fprintf(stderr, "luaraft cluster: cannot open %s: %s\n", logpath, strerror(errno));
        }
        char *args[16 + 64];
        int k = 0;
        args[k++] = (char *)"luaraft";
        args[k++] = (char *)"node";
        args[k++] = (char *)"--id";
        args[k++] = idtext;
        args[k++] = (char *)"--data";
        args[k++] = ndir;
        args[k++] = (char *)"--listen";
        args[k++] = listen;
        args[k++] = (char *)"--raft";
        args[k++] = raft;
        args[k++] = (char *)"--cluster";
        args[k++] = members;
        for (int j = 0; j < extra && k < 16 + 62; j++) {
            args[k++] = extra_args[j];
        }
        args[k++] = (char *)script;
        args[k] = NULL;
        if (spawn_node(c, args) < 0) {
            c->exited = true;
            continue;
        }
        running++;
    }

    const char *name = strrchr(script, '/') != NULL ? strrchr(script, '/') + 1 : script;
    say("%lu node%s running %s", nodes, nodes == 1 ? "" : "s", name);
    for (unsigned long i = 0; i < nodes; i++) {
        if (kids[i].pid > 0) {
            printf("  node %lu  client 127.0.0.1:%lu  peer 127.0.0.1:%lu  pid %ld\n", i + 1,
                   base + i, base + peer_port_offset + i, (long)kids[i].pid);
        }
    }
    printf("Connect with:  redis-cli -p %lu    (any node; writes are forwarded to the leader)\n",
           base);
    printf("Try:           redis-cli -p %lu SET greeting hello; redis-cli -p %lu GET greeting\n",
           base, nodes > 1 ? base + 1 : base);
    printf("               redis-cli -p %lu RAFT.INFO\n", base);
    printf("Data in %s/n1..n%lu, logs in %s/n1.log..n%lu.log (kept across restarts;\n", dir, nodes,
           dir, nodes);
    printf("--fresh starts over). Ctrl-C stops the cluster.\n");
    fflush(stdout);

    bool stopping = false;
    uint64_t deadline = 0;
    int exit_code = 0;
    for (;;) {
        /* Reap. */
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) {
                break;
            }
            for (unsigned long i = 0; i < nodes; i++) {
                struct child *c = &kids[i];
                if (c->pid != pid) {
                    continue;
                }
                c->exited = true;
                c->pid = 0;
                running--;
                char how[32];
                describe_exit(status, how, sizeof how);
                if (stopping) {
                    say("node %d stopped (%s)", c->id, how);
                } else if (running > 0) {
                    say("node %d exited (%s); the others go on", c->id, how);
                } else {
                    say("node %d exited (%s)", c->id, how);
                }
                if (!stopping && ls.leader == (uint64_t)c->id) {
                    ls.leader = 0;
                }
            }
        }
        if (running == 0) {
            if (!stopping) {
                say("every node has exited; stopping");
                exit_code = 1;
            }
            break;
        }
        uint64_t now = mono_ms();
        if (stopping && now >= deadline) {
            for (unsigned long i = 0; i < nodes; i++) {
                if (kids[i].pid > 0) {
                    say("node %d did not stop within %d s; killing it", kids[i].id,
                        stop_wait_ms / 1000);
                    kill(kids[i].pid, SIGKILL);
                }
            }
            deadline = now + 60000; /* SIGKILL is not refused; just keep reaping */
        }

        struct pollfd pfd[cluster_nodes_max + 1];
        struct child *who[cluster_nodes_max + 1];
        int np = 0;
        pfd[np].fd = sig_pipe[0];
        pfd[np].events = POLLIN;
        who[np++] = NULL;
        for (unsigned long i = 0; i < nodes; i++) {
            if (kids[i].out >= 0) {
                pfd[np].fd = kids[i].out;
                pfd[np].events = POLLIN;
                who[np++] = &kids[i];
            }
        }
        int timeout = stopping ? (int)(deadline > now ? deadline - now : 0) : -1;
        int rv = poll(pfd, (nfds_t)np, timeout);
        if (rv < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "luaraft cluster: poll: %s\n", strerror(errno));
            break;
        }
        for (int j = 1; j < np; j++) {
            if (pfd[j].revents != 0) {
                read_child(who[j], &ls);
            }
        }
        if (pfd[0].revents != 0) {
            unsigned char sigs[64];
            ssize_t r = read(sig_pipe[0], sigs, sizeof sigs);
            for (ssize_t j = 0; j < r; j++) {
                if (sigs[j] == SIGCHLD) {
                    continue;
                }
                if (!stopping) {
                    stopping = true;
                    deadline = mono_ms() + stop_wait_ms;
                    say("stopping %d node%s", running, running == 1 ? "" : "s");
                    for (unsigned long i = 0; i < nodes; i++) {
                        if (kids[i].pid > 0) {
                            kill(kids[i].pid, SIGTERM);
                        }
                    }
                } else if (sigs[j] == SIGINT) {
                    deadline = 0; /* a second Ctrl-C: kill -9 now */
                }
            }
        }
    }

    /* Pass on what the nodes wrote last; a pipe a node's own child still holds open does
     * not keep us here for more than a moment. */
    uint64_t drain_until = mono_ms() + 500;
    for (;;) {
        struct pollfd pfd[cluster_nodes_max];
        struct child *who[cluster_nodes_max];
        int np = 0;
        for (unsigned long i = 0; i < nodes; i++) {
            if (kids[i].out >= 0) {
                pfd[np].fd = kids[i].out;
                pfd[np].events = POLLIN;
                who[np++] = &kids[i];
            }
        }
        uint64_t now = mono_ms();
        if (np == 0 || now >= drain_until) {
            break;
        }
        if (poll(pfd, (nfds_t)np, (int)(drain_until - now)) <= 0) {
            break;
        }
        for (int j = 0; j < np; j++) {
            if (pfd[j].revents != 0) {
                read_child(who[j], &ls);
            }
        }
    }
    for (unsigned long i = 0; i < nodes; i++) {
        if (kids[i].out >= 0) {
            close(kids[i].out);
        }
        if (kids[i].log >= 0) {
            close(kids[i].log);
        }
    }
    if (exit_code == 0) {
        say("stopped; data kept in %s", dir);
    }
    return exit_code;
}
