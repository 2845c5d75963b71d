/*
 * The nodes of `luaraft cluster`: N `luaraft node` processes (this same executable,
 * through /proc/self/exe) on loopback, each in its own process group so that only this
 * process sees the terminal's Ctrl-C and stops them in order. Each node's stdout and
 * stderr go to a pipe read here (cluster_log.c passes the lines on). Signals reach the
 * poll() loop through a self-pipe. The FIFO DIR/control takes the lines of `luaraft
 * cluster add|remove|restart` (cluster_ctl.c): "start ID" (a node that is not running:
 * node ID of the first start with --cluster, any other with --join through a running
 * node), "stop ID" and "restart ID".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cluster_internal.h"

/* The nodes, and where the watch loop stands. */
struct cluster
{
    struct child kids[cluster_nodes_max];
    unsigned long nodes;
    struct leader_state ls;
    int running;       /* nodes started and not yet reaped */
    bool stopping;     /* SIGTERM sent to every node */
    uint64_t deadline; /* while stopping: when the nodes still running get SIGKILL */
    const struct cluster_options *o;
    const char *dir;
    char *members;                   /* the first start's --cluster */
    bool restart[cluster_nodes_max]; /* start node i again once it has exited */
    int ctl, ctl_keep;               /* DIR/control, read end and a write end that keeps it open */
    char ctl_buf[256];
    size_t ctl_len;
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

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Signals go to the self-pipe from here on: one that comes while the nodes start waits
 * there for the watch loop. */
static int install_signals(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        cluster_warn("pipe: %s", strerror(errno));
        return -1;
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
    return 0;
}

static pid_t spawn_node(struct child *c, char **args)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cluster_warn("pipe: %s", strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        cluster_warn("fork: %s", strerror(errno));
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
        cluster_warn("cannot run /proc/self/exe: %s", strerror(errno));
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

/* "1=127.0.0.1:P1,2=127.0.0.1:P2,...": every node's --cluster. */
static void members_text(const struct cluster_options *o, char *members, size_t size)
{
    size_t mlen = 0;
    for (unsigned long i = 0; i < o->nodes; i++) {
        mlen += (size_t)snprintf(members + mlen, size - mlen, "%s%lu=127.0.0.1:%lu",
                                 i > 0 ? "," : "", i + 1, o->base + peer_port_offset + i);
    }
}

/* Opens node i's log and starts it (with --join through join, if not NULL); a node that
 * cannot start is marked exited. */
static void start_node(struct cluster *cl, unsigned long i, const char *join)
{
    const struct cluster_options *o = cl->o;
    const char *dir = cl->dir;
    struct child *c = &cl->kids[i];
    if (c->log >= 0) {
        close(c->log);
    }
    *c = (struct child){.id = (int)i + 1, .out = -1, .log = -1};
    char idtext[16], ndir[PATH_MAX], listen[32], raft[32], http[32], logpath[PATH_MAX];
    char secret[PATH_MAX];
    snprintf(secret, sizeof secret, "%s/%s", dir, cluster_secret_name);
    snprintf(idtext, sizeof idtext, "%d", c->id);
    snprintf(ndir, sizeof ndir, "%s/n%d", dir, c->id);
    snprintf(listen, sizeof listen, "127.0.0.1:%lu", o->base + i);
    snprintf(raft, sizeof raft, "127.0.0.1:%lu", o->base + peer_port_offset + i);
    snprintf(http, sizeof http, "127.0.0.1:%lu", o->base + http_port_offset + i);
    snprintf(logpath, sizeof logpath, "%s/n%d.log", dir, c->id);
    c->log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (c->log < 0) {
        cluster_warn("cannot open %s: %s", logpath, strerror(errno));
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
    args[k++] = join != NULL ? (char *)"--join" : (char *)"--cluster";
    args[k++] = join != NULL ? (char *)join : cl->members;
    args[k++] = (char *)"--http";
    args[k++] = http;
    args[k++] = (char *)"--peer-secret-file";
    args[k++] = secret;
    for (int j = 0; j < o->extra && k < 16 + 62; j++) {
        args[k++] = o->extra_args[j];
    }
    args[k++] = (char *)o->script;
    args[k] = NULL;
    if (spawn_node(c, args) < 0) {
        c->exited = true;
        return;
    }
    cl->running++;
    char pidpath[PATH_MAX], pidtext[32];
    snprintf(pidpath, sizeof pidpath, "%s/n%d.pid", dir, c->id);
    snprintf(pidtext, sizeof pidtext, "%ld\n", (long)c->pid);
    FILE *f = fopen(pidpath, "w");
    if (f != NULL) {
        fputs(pidtext, f);
        fclose(f);
    }
}

/* Node id (1..9) starts: with --cluster if it is one of the first start's, else with
 * --join through the client port of a running node. */
static void start_id(struct cluster *cl, int id)
{
    char join[32];
    const char *via = NULL;
    for (int i = 0; i < cluster_nodes_max && id > (int)cl->o->nodes && via == NULL; i++) {
        if (cl->kids[i].pid > 0) {
            snprintf(join, sizeof join, "127.0.0.1:%lu", cl->o->base + (unsigned long)i);
            via = join;
        }
    }
    if (id > (int)cl->o->nodes && via == NULL) {
        cluster_say("node %d not started: no node runs to join through", id);
        return;
    }
    char data[PATH_MAX];
    snprintf(data, sizeof data, "%s/n%d/cluster", cl->dir, id);
    bool fresh = via != NULL && access(data, F_OK) != 0; /* else --join is not used */
    start_node(cl, (unsigned long)id - 1, via);
    if (cl->kids[id - 1].pid > 0) {
        cluster_say("node %d started%s%s, pid %ld", id, fresh ? " to join through " : "",
                    fresh ? via : "", (long)cl->kids[id - 1].pid);
    }
}

/* A line of DIR/control. */
static void control_line(struct cluster *cl, const char *line)
{
    char verb[16];
    int id;
    if (sscanf(line, "%15s %d", verb, &id) != 2 || id < 1 || id > cluster_nodes_max ||
        cl->stopping) {
        return;
    }
    struct child *c = &cl->kids[id - 1];
    if (strcmp(verb, "start") == 0 && c->pid == 0) {
        start_id(cl, id);
    } else if ((strcmp(verb, "stop") == 0 || strcmp(verb, "restart") == 0) && c->pid > 0) {
        cl->restart[id - 1] = strcmp(verb, "restart") == 0;
        cluster_say("%s node %d", cl->restart[id - 1] ? "restarting" : "stopping", id);
        kill(c->pid, SIGTERM);
    }
}

static void control_read(struct cluster *cl)
{
    ssize_t k = read(cl->ctl, cl->ctl_buf + cl->ctl_len, sizeof cl->ctl_buf - 1 - cl->ctl_len);
    if (k <= 0) {
        return;
    }
    cl->ctl_len += (size_t)k;
    cl->ctl_buf[cl->ctl_len] = '\0';
    char *nl;
    while ((nl = strchr(cl->ctl_buf, '\n')) != NULL) {
        *nl = '\0';
        control_line(cl, cl->ctl_buf);
        cl->ctl_len -= (size_t)(nl + 1 - cl->ctl_buf);
        memmove(cl->ctl_buf, nl + 1, cl->ctl_len + 1);
    }
    if (cl->ctl_len == sizeof cl->ctl_buf - 1) {
        cl->ctl_len = 0; /* a line too long: dropped */
    }
}

static void control_open(struct cluster *cl)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/control", cl->dir);
    unlink(path);
    cl->ctl = cl->ctl_keep = -1;
    if (mkfifo(path, 0600) != 0) {
        cluster_warn("cannot make %s: %s (add, remove and restart will not work)", path,
                     strerror(errno));
        return;
    }
    cl->ctl = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    cl->ctl_keep = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
}

/* What runs where (log lines: the time, each node's PID), and how to talk to it (plain
 * text). */
static void print_banner(const struct cluster *cl, const struct cluster_options *o, const char *dir)
{
    unsigned long nodes = o->nodes, base = o->base;
    const char *script = o->script;
    const char *name = strrchr(script, '/') != NULL ? strrchr(script, '/') + 1 : script;
    cluster_say("%lu node%s running %s", nodes, nodes == 1 ? "" : "s", name);
    for (unsigned long i = 0; i < nodes; i++) {
        if (cl->kids[i].pid > 0) {
            cluster_say(
                "node %lu  client 127.0.0.1:%lu  peer 127.0.0.1:%lu  http 127.0.0.1:%lu  "
                "pid %ld",
                i + 1, base + i, base + peer_port_offset + i, base + http_port_offset + i,
                (long)cl->kids[i].pid);
        }
    }
    printf("Connect with:  redis-cli -p %lu    (any node; writes are forwarded to the leader)\n",
           base);
    printf("Try:           redis-cli -p %lu SET greeting hello; redis-cli -p %lu GET greeting\n",
           base, nodes > 1 ? base + 1 : base);
    printf("               redis-cli -p %lu RAFT.INFO\n", base);
    printf("Status page:   http://127.0.0.1:%lu/?nodes=", base + http_port_offset);
    for (unsigned long i = 0; i < nodes; i++) {
        printf("%s127.0.0.1:%lu", i > 0 ? "," : "", base + http_port_offset + i);
    }
    printf("\n               (metrics: curl http://127.0.0.1:%lu/metrics)\n",
           base + http_port_offset);
    printf("Data in %s/n1..n%lu, logs in %s/n1.log..n%lu.log (kept across restarts;\n", dir, nodes,
           dir, nodes);
    printf("--fresh starts over). Ctrl-C stops the cluster.\n");
    fflush(stdout);
}

/* Marks the node of pid as exited and says so. */
static void node_exited(struct cluster *cl, pid_t pid, int status)
{
    for (unsigned long i = 0; i < cl->nodes; i++) {
        struct child *c = &cl->kids[i];
        if (c->pid != pid) {
            continue;
        }
        c->exited = true;
        c->pid = 0;
        cl->running--;
        char how[32];
        describe_exit(status, how, sizeof how);
        if (cl->stopping) {
            cluster_say("node %d stopped (%s)", c->id, how);
        } else if (cl->running > 0) {
            cluster_say("node %d exited (%s); the others go on", c->id, how);
        } else {
            cluster_say("node %d exited (%s)", c->id, how);
        }
        if (!cl->stopping && cl->ls.leader == (uint64_t)c->id) {
            cl->ls.leader = 0;
        }
        if (!cl->stopping && cl->restart[i]) {
            cl->restart[i] = false;
            start_id(cl, c->id);
        }
    }
}

static void reap(struct cluster *cl)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) {
            return;
        }
        node_exited(cl, pid, status);
    }
}

/* The stop's deadline has passed: SIGKILL for the nodes still running. */
static void kill_stragglers(struct cluster *cl, uint64_t now)
{
    for (unsigned long i = 0; i < cl->nodes; i++) {
        if (cl->kids[i].pid > 0) {
            cluster_say("node %d did not stop within %d s; killing it", cl->kids[i].id,
                        stop_wait_ms / 1000);
            kill(cl->kids[i].pid, SIGKILL);
        }
    }
    cl->deadline = now + 60000; /* SIGKILL is not refused; just keep reaping */
}

/* Appends the pipes still open to pfd from np on, who[j] their node; returns the new np. */
static int add_children(struct cluster *cl, struct pollfd *pfd, struct child **who, int np)
{
    for (unsigned long i = 0; i < cl->nodes; i++) {
        if (cl->kids[i].out >= 0) {
            pfd[np].fd = cl->kids[i].out;
            pfd[np].events = POLLIN;
            who[np++] = &cl->kids[i];
        }
    }
    return np;
}

/* Reads the pipes poll() found ready (who[j] NULL: not a node's). */
static void forward_ready(struct cluster *cl, const struct pollfd *pfd, struct child **who, int np)
{
    for (int j = 0; j < np; j++) {
        if (who[j] != NULL && pfd[j].revents != 0) {
            cluster_read_child(who[j], &cl->ls);
        }
    }
}

/* The first SIGINT, SIGTERM or SIGHUP stops every node; a second SIGINT kills them now. */
static void handle_signals(struct cluster *cl)
{
    unsigned char sigs[64];
    ssize_t r = read(sig_pipe[0], sigs, sizeof sigs);
    for (ssize_t j = 0; j < r; j++) {
        if (sigs[j] == SIGCHLD) {
            continue;
        }
        if (!cl->stopping) {
            cl->stopping = true;
            cl->deadline = mono_ms() + stop_wait_ms;
            cluster_say("stopping %d node%s", cl->running, cl->running == 1 ? "" : "s");
            for (unsigned long i = 0; i < cl->nodes; i++) {
                if (cl->kids[i].pid > 0) {
                    kill(cl->kids[i].pid, SIGTERM);
                }
            }
        } else if (sigs[j] == SIGINT) {
            cl->deadline = 0; /* a second Ctrl-C: kill -9 now */
        }
    }
}

/* Reaps, forwards and handles signals until no node runs; returns the exit code. */
static int watch(struct cluster *cl)
{
    for (;;) {
        reap(cl);
        if (cl->running == 0) {
            if (cl->stopping) {
                return 0;
            }
            cluster_say("every node has exited; stopping");
            return 1;
        }
        uint64_t now = mono_ms();
        if (cl->stopping && now >= cl->deadline) {
            kill_stragglers(cl, now);
        }
        struct pollfd pfd[cluster_nodes_max + 2];
        struct child *who[cluster_nodes_max + 2];
        pfd[0].fd = sig_pipe[0];
        pfd[0].events = POLLIN;
        who[0] = NULL;
        pfd[1].fd = cl->ctl;
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        who[1] = NULL;
        int np = add_children(cl, pfd, who, 2);
        int timeout = cl->stopping ? (int)(cl->deadline > now ? cl->deadline - now : 0) : -1;
        if (poll(pfd, (nfds_t)np, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            cluster_warn("poll: %s", strerror(errno));
            return 0;
        }
        forward_ready(cl, pfd, who, np);
        if (pfd[0].revents != 0) {
            handle_signals(cl);
        }
        if (pfd[1].revents != 0) {
            control_read(cl);
        }
    }
}

/* Passes on what the nodes wrote last; a pipe a node's own child still holds open does not
 * keep us here for more than a moment. */
static void drain(struct cluster *cl)
{
    uint64_t drain_until = mono_ms() + 500;
    for (;;) {
        struct pollfd pfd[cluster_nodes_max];
        struct child *who[cluster_nodes_max];
        int np = add_children(cl, pfd, who, 0);
        uint64_t now = mono_ms();
        if (np == 0 || now >= drain_until) {
            return;
        }
        if (poll(pfd, (nfds_t)np, (int)(drain_until - now)) <= 0) {
            return;
        }
        forward_ready(cl, pfd, who, np);
    }
}

int cluster_run(const struct cluster_options *o, const char *dir)
{
    if (install_signals() != 0) {
        return 1;
    }
    char members[cluster_nodes_max * 32];
    members_text(o, members, sizeof members);
    struct cluster cl;
    memset(&cl, 0, sizeof cl);
    cl.nodes = cluster_nodes_max; /* room for the nodes added later */
    cl.o = o;
    cl.dir = dir;
    cl.members = members;
    for (unsigned long i = 0; i < cluster_nodes_max; i++) {
        cl.kids[i] = (struct child){.id = (int)i + 1, .out = -1, .log = -1};
    }
    for (unsigned long i = 0; i < o->nodes; i++) {
        start_node(&cl, i, NULL);
    }
    control_open(&cl);
    print_banner(&cl, o, dir);

    int exit_code = watch(&cl);
    drain(&cl);
    for (unsigned long i = 0; i < cl.nodes; i++) {
        if (cl.kids[i].out >= 0) {
            close(cl.kids[i].out);
        }
        if (cl.kids[i].log >= 0) {
            close(cl.kids[i].log);
        }
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/control", dir);
    unlink(path);
    if (exit_code == 0) {
        cluster_say("stopped; data kept in %s", dir);
    }
    return exit_code;
}
