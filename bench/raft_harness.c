/*
 * raft_harness: one server of a canonical raft (Debian libraft-dev, 0.15) cluster on
 * 127.0.0.1, with its libuv disk backend and TCP transport, for bench/compare.sh.
 *
 *   raft_harness ID N BASEPORT DIR OUTFILE PHASE...
 *
 * Server ID of N listens on 127.0.0.1:BASEPORT+ID and keeps its data in DIR/ID (its pid
 * in DIR/ID.pid). Every server bootstraps the same N voters; the one elected runs the
 * phases and the others serve it until the script kills them. A PHASE is
 * WINDOW:COUNT:BYTES: COUNT/10 warm-up entries, then COUNT raft_apply calls of BYTES
 * each with WINDOW of them in flight (a callback issues the next one), the closed loop of
 * WINDOW clients that never pipeline. Latency is raft_apply to its callback: the entry
 * committed by a majority and applied by the leader. Each phase appends one line to
 * OUTFILE, with the CPU time of all N servers over it (from /proc/PID/stat); after the
 * last the leader writes "done" and exits.
 *
 * The state machine only counts, so the figures are the library's (log, replication,
 * fsync) with no work of a state machine: an upper bound for a state machine on it.
 */
#define _GNU_SOURCE
#include <raft.h>
#include <raft/uv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_PHASES 16

struct phase
{
    unsigned window;
    long count;
    size_t bytes;
};

struct slot
{
    struct raft_apply req;
    double t0;
};

static struct
{
    unsigned id, n;
    const char *dir, *outfile;
    struct phase phases[MAX_PHASES];
    int n_phases, current, running;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct raft_fsm fsm;
    uint64_t applied;
    uv_loop_t loop;
    uv_timer_t poll;
    struct slot *slots;
    long issued, completed, failed, n_lat;
    double *lat_ms;
    double t_start;
    long cpu_start;
} h;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    h.applied++;
    *result = NULL;
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    uint64_t *copy = raft_malloc(sizeof *copy);
    if (*bufs == NULL || copy == NULL) {
        return RAFT_NOMEM;
    }
    *copy = h.applied;
    (*bufs)[0].base = copy;
    (*bufs)[0].len = sizeof *copy;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    if (buf->len == sizeof h.applied) {
        memcpy(&h.applied, buf->base, sizeof h.applied);
    }
    raft_free(buf->base);
    return 0;
}

/* utime + stime, in clock ticks, of every server whose DIR/ID.pid names it. */
static long servers_cpu_ticks(void)
{
    long sum = 0;
    for (unsigned i = 1; i <= h.n; i++) {
        char path[4096];
        int pid = 0;
        snprintf(path, sizeof path, "%s/%u.pid", h.dir, i);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fscanf(f, "%d", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        f = pid > 0 ? fopen(path, "r") : NULL;
        if (f == NULL) {
            continue;
        }
        char line[2048];
        size_t len = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[len] = '\0';
        /* The command name may hold spaces; fields 14 and 15 count from after it. */
        char *rest = strrchr(line, ')');
        long ut = 0, st = 0;
        if (rest != NULL && sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld",
                                   &ut, &st) == 2) {
            sum += ut + st;
        }
    }
    return sum;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static void issue(struct slot *s);

static void phase_start(void)
{
    struct phase *p = &h.phases[h.current];
    h.issued = h.completed = h.failed = h.n_lat = 0;
    for (unsigned i = 0; i < p->window; i++) {
        issue(&h.slots[i]);
    }
}

static void phase_end(void)
{
    struct phase *p = &h.phases[h.current];
    double elapsed = now_s() - h.t_start;
    double cpu = (double)(servers_cpu_ticks() - h.cpu_start) / (double)sysconf(_SC_CLK_TCK);
    qsort(h.lat_ms, (size_t)h.n_lat, sizeof *h.lat_ms, by_value);
    long last = h.n_lat > 0 ? h.n_lat - 1 : 0;
    FILE *out = fopen(h.outfile, "a");
    if (out == NULL) {
        perror(h.outfile);
        exit(1);
    }
    fprintf(out,
            "inflight=%u bytes=%zu ops=%ld errors=%ld ops_per_s=%.0f p50_ms=%.3f p99_ms=%.3f "
            "p999_ms=%.3f cpu_s=%.2f\n",
            p->window, p->bytes, h.n_lat, h.failed, (double)h.n_lat / elapsed,
            h.n_lat ? h.lat_ms[last / 2] : 0, h.n_lat ? h.lat_ms[(long)(0.99 * (double)last)] : 0,
            h.n_lat ? h.lat_ms[(long)(0.999 * (double)last)] : 0, cpu);
    if (++h.current == h.n_phases) {
        fprintf(out, "done\n");
        fclose(out);
        exit(0);
    }
    fclose(out);
    phase_start();
}

static void applied_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct slot *s = req->data;
    struct phase *p = &h.phases[h.current];
    long warmup = p->count / 10;
    h.completed++;
    if (status != 0) {
        h.failed++;
    } else if (h.completed > warmup && h.n_lat < p->count) {
        h.lat_ms[h.n_lat++] = (now_s() - s->t0) * 1e3;
    }
    if (h.completed == warmup) {
        h.t_start = now_s();
        h.cpu_start = servers_cpu_ticks();
    }
    if (h.issued < warmup + p->count) {
        issue(s);
    } else if (h.completed == h.issued) {
        phase_end();
    }
}

static void issue(struct slot *s)
{
    struct phase *p = &h.phases[h.current];
    struct raft_buffer buf = {.len = p->bytes, .base = raft_malloc(p->bytes)};
    memset(buf.base, 'e', p->bytes);
    s->req.data = s;
    s->t0 = now_s();
    h.issued++;
    int rv = raft_apply(&h.raft, &s->req, &buf, 1, applied_cb);
    if (rv != 0) {
        fprintf(stderr, "raft_apply: %s\n", raft_strerror(rv));
        exit(1);
    }
}

/* Starts the phases once this server leads and has applied its term's first entry. */
static void poll_cb(uv_timer_t *t)
{
    if (h.running || raft_state(&h.raft) != RAFT_LEADER ||
        raft_last_applied(&h.raft) < raft_last_index(&h.raft)) {
        return;
    }
    h.running = 1;
    uv_timer_stop(t);
    phase_start();
}

static int parse_phases(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        struct phase *p = &h.phases[h.n_phases];
        if (h.n_phases == MAX_PHASES ||
            sscanf(argv[i], "%u:%ld:%zu", &p->window, &p->count, &p->bytes) != 3 || p->window < 1 ||
            p->count < 10 || p->bytes < 1) {
            fprintf(stderr, "raft_harness: bad phase '%s' (WINDOW:COUNT:BYTES)\n", argv[i]);
            return -1;
        }
        h.n_phases++;
    }
    if (h.n_phases == 0) {
        return -1;
    }
    /* Allocated once for every phase: the library may still touch a request after its
     * callback returns, and the last callback of a phase starts the next one. */
    unsigned window = 0;
    long count = 0;
    for (int i = 0; i < h.n_phases; i++) {
        window = h.phases[i].window > window ? h.phases[i].window : window;
        count = h.phases[i].count > count ? h.phases[i].count : count;
    }
    h.slots = calloc(window, sizeof *h.slots);
    h.lat_ms = calloc((size_t)count, sizeof *h.lat_ms);
    return h.slots != NULL && h.lat_ms != NULL ? 0 : -1;
}

static int start_server(int baseport)
{
    char dir[4096], addr[64];
    snprintf(dir, sizeof dir, "%s/%u", h.dir, h.id);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", baseport + (int)h.id);
    uv_loop_init(&h.loop);
    h.fsm = (struct raft_fsm){
        .version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
    int rv = raft_uv_tcp_init(&h.transport, &h.loop);
    if (rv == 0) {
        rv = raft_uv_init(&h.io, &h.loop, dir, &h.transport);
    }
    if (rv == 0) {
        rv = raft_init(&h.raft, &h.io, &h.fsm, h.id, addr);
    }
    if (rv != 0) {
        fprintf(stderr, "raft_harness: init: %s\n", raft_strerror(rv));
        return -1;
    }
    /* luaraft's defaults (--snapshot-entries, --snapshot-trailing), for a fair compare. */
    raft_set_snapshot_threshold(&h.raft, 100000);
    raft_set_snapshot_trailing(&h.raft, 1000);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 1; i <= h.n; i++) {
        char a[64];
        snprintf(a, sizeof a, "127.0.0.1:%d", baseport + (int)i);
        raft_configuration_add(&conf, i, a, RAFT_VOTER);
    }
    rv = raft_bootstrap(&h.raft, &conf);
    raft_configuration_close(&conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
        fprintf(stderr, "raft_harness: bootstrap: %s\n", raft_strerror(rv));
        return -1;
    }
    if ((rv = raft_start(&h.raft)) != 0) {
        fprintf(stderr, "raft_harness: start: %s\n", raft_strerror(rv));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: raft_harness ID N BASEPORT DIR OUTFILE WINDOW:COUNT:BYTES...\n");
        return 2;
    }
    h.id = (unsigned)atoi(argv[1]);
    h.n = (unsigned)atoi(argv[2]);
    h.dir = argv[4];
    h.outfile = argv[5];
    if (parse_phases(argc - 6, argv + 6) != 0) {
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%u.pid", h.dir, h.id);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    if (start_server(atoi(argv[3])) != 0) {
        return 1;
    }
    uv_timer_init(&h.loop, &h.poll);
    uv_timer_start(&h.poll, poll_cb, 10, 10);
    return uv_run(&h.loop, UV_RUN_DEFAULT);
}
