/*
 * `luaraft cluster add|remove|restart`: membership changes of a running `luaraft cluster`
 * (on the same --data and --base-port), from another terminal. The running command
 * starts and stops the node processes (it reads the lines written here from the FIFO
 * DIR/control, cluster_run.c); this command makes the membership change through the
 * nodes' client ports (RAFT.ADD, RAFT.REMOVE) and waits for its outcome:
 *
 *   add [ID]     starts node ID (the lowest id not in the configuration by default) with
 *                --join, adds it with RAFT.ADD, and waits until it is a voter;
 *   remove ID    removes node ID with RAFT.REMOVE, then stops it;
 *   restart ID   stops node ID (SIGTERM) and starts it again on its data directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cluster.h"
#include "cli/cluster_internal.h"
#include "client/resp_call.h"

enum {
    ctl_wait_ms = 60000, /* each step's bound */
    ctl_poll_ms = 100,
    ctl_reply_bytes = 8192,
};

static const char ctl_usage_text[] =
    "Usage: luaraft cluster add [--data DIR] [--base-port P] [ID]\n"
    "       luaraft cluster remove [--data DIR] [--base-port P] ID\n"
    "       luaraft cluster restart [--data DIR] [--base-port P] ID\n"
    "\n"
    "Changes a running `luaraft cluster` (the one on the same --data and --base-port,\n"
    "defaults ./data and 6001): add starts node ID (1..9; the lowest one not a member if\n"
    "none is given) with --join, adds it with RAFT.ADD and waits until the leader has made\n"
    "it a voter; remove removes node ID with RAFT.REMOVE, then stops it; restart stops\n"
    "node ID with SIGTERM and starts it again on its data.\n";

struct ctl
{
    char dir[PATH_MAX];
    unsigned long base;
    char reply[ctl_reply_bytes];
};

static void pause_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Node id's answer to a command (0, 1 for an error reply, -1 for none) in x->reply. */
static int call(struct ctl *x, int id, int argc, const char *const *argv)
{
    return resp_call("127.0.0.1", (int)(x->base + (unsigned long)id - 1), argc, argv, 2, x->reply,
                     sizeof x->reply);
}

/* RAFT.MEMBERS from the first node that answers, other than skip: roles[id] gets 'v'
 * (voter), 'l' (learner) or 0. Returns that node's id, or 0 when none answers. */
static int members(struct ctl *x, int skip, char roles[cluster_nodes_max + 1])
{
    static const char *const argv[] = {"RAFT.MEMBERS"};
    memset(roles, 0, cluster_nodes_max + 1);
    for (int id = 1; id <= cluster_nodes_max; id++) {
        if (id == skip || call(x, id, 1, argv) != 0 || strstr(x->reply, "member:") == NULL) {
            continue;
        }
        for (char *p = strstr(x->reply, "member:"); p != NULL; p = strstr(p + 1, "member:")) {
            int m;
            char role[16];
            if (sscanf(p, "member:%d %15s", &m, role) == 2 && m >= 1 && m <= cluster_nodes_max) {
                roles[m] = role[0];
            }
        }
        return id;
    }
    return 0;
}

static int tell(const struct ctl *x, const char *verb, int id)
{
    char path[PATH_MAX + 16], line[32];
    snprintf(path, sizeof path, "%s/control", x->dir);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "luaraft cluster: no luaraft cluster runs on %s (%s: %s)\n", x->dir, path,
                strerror(errno));
        return -1;
    }
    int k = snprintf(line, sizeof line, "%s %d\n", verb, id);
    ssize_t w = write(fd, line, (size_t)k);
    close(fd);
    return w == k ? 0 : -1;
}

/* A membership change sent to node via, retried while it answers -TRYAGAIN. */
static int change(struct ctl *x, int via, int argc, const char *const *argv)
{
    for (int waited = 0; waited < ctl_wait_ms; waited += ctl_poll_ms) {
        int rv = call(x, via, argc, argv);
        if (rv == 0 || (rv == 1 && strncmp(x->reply, "TRYAGAIN", 8) != 0)) {
            return rv;
        }
        pause_ms(ctl_poll_ms);
    }
    return -1;
}

static int fail(const char *what, const char *why)
{
    fprintf(stderr, "luaraft cluster: %s: %s\n", what, why);
    return 1;
}

static int add(struct ctl *x, int id)
{
    char roles[cluster_nodes_max + 1];
    int via = members(x, 0, roles);
    if (via == 0) {
        return fail("add", "no node of the cluster answers");
    }
    for (int i = 1; i <= cluster_nodes_max && id == 0; i++) {
        id = roles[i] == 0 ? i : 0;
    }
    if (id == 0 || roles[id] != 0) {
        return fail("add", id == 0 ? "the cluster has 9 members already" : "already a member");
    }
    static const char *const ping[] = {"PING"};
    if (call(x, id, 1, ping) != 0 && tell(x, "start", id) != 0) {
        return 1;
    }
    int waited = 0;
    while (call(x, id, 1, ping) != 0 && (waited += ctl_poll_ms) < ctl_wait_ms) {
        pause_ms(ctl_poll_ms);
    }
    char sid[16], raft[32], client[32];
    snprintf(sid, sizeof sid, "%d", id);
    snprintf(raft, sizeof raft, "127.0.0.1:%lu",
             x->base + peer_port_offset + (unsigned long)id - 1);
    snprintf(client, sizeof client, "127.0.0.1:%lu", x->base + (unsigned long)id - 1);
    const char *const argv[] = {"RAFT.ADD", sid, raft, client};
    if (change(x, via, 4, argv) != 0) {
        return fail("RAFT.ADD", x->reply);
    }
    printf("node %d added as a learner; waiting for the leader to make it a voter\n", id);
    for (waited = 0; waited < ctl_wait_ms; waited += ctl_poll_ms) {
        if (members(x, 0, roles) != 0 && roles[id] == 'v') {
            printf("node %d is a voter: client 127.0.0.1:%lu\n", id,
                   x->base + (unsigned long)id - 1);
            return 0;
        }
        pause_ms(ctl_poll_ms);
    }
    return fail("add", "the node was not made a voter in time (is it running? see its log)");
}

static int remove_node(struct ctl *x, int id)
{
    char roles[cluster_nodes_max + 1];
    int via = members(x, id, roles);
    if (via == 0) {
        return fail("remove", "no other node of the cluster answers");
    }
    char sid[16];
    snprintf(sid, sizeof sid, "%d", id);
    const char *const argv[] = {"RAFT.REMOVE", sid};
    if (change(x, via, 2, argv) != 0) {
        return fail("RAFT.REMOVE", x->reply);
    }
    printf("node %d removed from the cluster; stopping it\n", id);
    return tell(x, "stop", id) == 0 ? 0 : 1;
}

static int restart(struct ctl *x, int id)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/n%d.pid", x->dir, id);
    FILE *f = fopen(path, "r");
    long before = 0, now = 0;
    if (f == NULL || fscanf(f, "%ld", &before) != 1) {
        before = 0;
    }
    if (f != NULL) {
        fclose(f);
    }
    if (tell(x, "restart", id) != 0) {
        return 1;
    }
    static const char *const ping[] = {"PING"};
    for (int waited = 0; waited < ctl_wait_ms; waited += ctl_poll_ms) {
        f = fopen(path, "r");
        if (f != NULL && fscanf(f, "%ld", &now) == 1 && now != before &&
            call(x, id, 1, ping) == 0) {
            fclose(f);
            printf("node %d restarted: pid %ld\n", id, now);
            return 0;
        }
        if (f != NULL) {
            fclose(f);
        }
        pause_ms(ctl_poll_ms);
    }
    return fail("restart", "the node did not come back in time (see its log)");
}

int cluster_ctl_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"data", required_argument, NULL, 'd'},
        {"base-port", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctl *x = calloc(1, sizeof *x);
    const char *data = "./data";
    x->base = 6001;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (opt == 'h' || opt == '?') {
            fputs(ctl_usage_text, opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
        if (opt == 'd') {
            data = optarg;
        } else {
            x->base = strtoul(optarg, NULL, 10);
        }
    }
    int id = optind < argc ? atoi(argv[optind]) : 0;
    bool add_cmd = strcmp(argv[0], "add") == 0;
    if (optind + 1 < argc || (optind < argc && (id < 1 || id > cluster_nodes_max)) ||
        (!add_cmd && id == 0) || x->base == 0 || realpath(data, x->dir) == NULL) {
        fputs(ctl_usage_text, stderr);
        return 2;
    }
    int rv = add_cmd                          ? add(x, id)
             : strcmp(argv[0], "remove") == 0 ? remove_node(x, id)
                                              : restart(x, id);
    free(x);
    return rv;
}
