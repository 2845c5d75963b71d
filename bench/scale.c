/*
 * scale: the drivers of bench/compare.sh's "scale" run (issue 12, part 3: a state of a
 * million keys), speaking RESP over plain blocking sockets to one node on 127.0.0.1.
 *
 *   scale latency PORT CLIENTS SECONDS KEYS
 *       CLIENTS threads, one SET in flight each, on random keys among KEYS existing ones
 *       (key:%012d, redis-benchmark's shape, 3-byte values), for SECONDS of steady load;
 *       then RAFT.SNAPSHOT on a connection of its own while the load goes on, until its
 *       reply and as long again after it. Prints two lines, "steady ..." (the writes
 *       completed before RAFT.SNAPSHOT was sent) and "during ..." (those that overlapped
 *       the snapshot: sent before its reply came), each with ops, p50_ms, p99_ms, p999_ms
 *       and max_ms, the second also with snapshot_s (RAFT.SNAPSHOT's round trip) and
 *       max_sent_at_s (when the slowest of them was sent, from RAFT.SNAPSHOT's sending).
 *   scale wait PORT KEY VALUE SINCE_NS TIMEOUT_S
 *       GET KEY every millisecond until it answers VALUE (connecting again while the node
 *       is not up); prints "serving_s=..": the seconds from SINCE_NS (CLOCK_REALTIME, as
 *       `date +%s%N` gives it) to that answer. Exits 1 after TIMEOUT_S.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one reply of a simple shape (a line, or a bulk string) into out; returns its
 * first byte ('+', '-', '$', ...) or -1 when the connection is gone. */
static int read_reply(int fd, char *out, size_t cap)
{
    size_t len = 0;
    while (len < 2 || out[len - 2] != '\r' || out[len - 1] != '\n') {
        if (len + 1 >= cap || recv(fd, out + len, 1, 0) != 1) {
            return -1;
        }
        len++;
    }
    out[len] = '\0';
    if (out[0] == '$' && out[1] != '-') {
        long body = strtol(out + 1, NULL, 10) + 2;
        if (body < 2 || (size_t)body >= cap) {
            return -1;
        }
        for (long got = 0; got < body;) {
            ssize_t r = recv(fd, out + got, (size_t)(body - got), 0);
            if (r <= 0) {
                return -1;
            }
            got += r;
        }
        out[body - 2] = '\0';
        return '$';
    }
    return out[0];
}

/* One write's times, on CLOCK_MONOTONIC. */
struct sample
{
    double sent, done;
};

struct client
{
    pthread_t thread;
    int port;
    long keys;
    unsigned seed;
    struct sample *s;
    size_t n, cap;
    long errors;
};

static atomic_bool stop_load;

static void *client_run(void *arg)
{
    struct client *c = arg;
    int fd = dial(c->port);
    if (fd < 0) {
        perror("scale: connect");
        exit(1);
    }
    char cmd[96], reply[256];
    while (!atomic_load(&stop_load)) {
        long k = rand_r(&c->seed) % c->keys;
        int len =
            snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012ld\r\n$3\r\nxyz\r\n", k);
        double sent = now_s(CLOCK_MONOTONIC);
        if (send_all(fd, cmd, (size_t)len) != 0 || read_reply(fd, reply, sizeof reply) < 0) {
            fprintf(stderr, "scale: the connection to port %d was lost\n", c->port);
            exit(1);
        }
        c->errors += reply[0] == '-';
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 4096;
            c->s = realloc(c->s, c->cap * sizeof *c->s);
            if (c->s == NULL) {
                exit(1);
            }
        }
        c->s[c->n++] = (struct sample){sent, now_s(CLOCK_MONOTONIC)};
    }
    close(fd);
    return NULL;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *ms, size_t n, const char *extra)
{
    if (n == 0) {
        printf("%s ops=0%s\n", name, extra);
        return;
    }
    qsort(ms, n, sizeof *ms, by_value);
    size_t last = n - 1;
    printf("%s ops=%zu p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f%s\n", name, n, ms[last / 2],
           ms[(size_t)(0.99 * (double)last)], ms[(size_t)(0.999 * (double)last)], ms[last], extra);
}

static int latency(int port, int clients, double seconds, long keys)
{
    struct client *cs = calloc((size_t)clients, sizeof *cs);
    for (int i = 0; i < clients; i++) {
        cs[i] = (struct client){.port = port, .keys = keys, .seed = 7919u * (unsigned)(i + 1)};
        pthread_create(&cs[i].thread, NULL, client_run, &cs[i]);
    }
    int ctl = dial(port);
    if (ctl < 0) {
        perror("scale: connect");
        return 1;
    }
    usleep((useconds_t)(seconds * 1e6));
    char reply[256];
    const char *snap = "*1\r\n$13\r\nRAFT.SNAPSHOT\r\n";
    double t0 = now_s(CLOCK_MONOTONIC);
    if (send_all(ctl, snap, strlen(snap)) != 0 || read_reply(ctl, reply, sizeof reply) != '+') {
        fprintf(stderr, "scale: RAFT.SNAPSHOT failed: %s", reply);
        return 1;
    }
    double t1 = now_s(CLOCK_MONOTONIC);
    usleep((useconds_t)((t1 - t0) * 1e6));
    atomic_store(&stop_load, true);
    size_t total = 0;
    long errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(cs[i].thread, NULL);
        total += cs[i].n;
        errors += cs[i].errors;
    }
    double *steady = malloc((total + 1) * sizeof *steady);
    double *during = malloc((total + 1) * sizeof *during);
    size_t ns = 0, nd = 0;
    double worst = 0, worst_at = 0;
    for (int i = 0; i < clients; i++) {
        for (size_t j = 0; j < cs[i].n; j++) {
            struct sample s = cs[i].s[j];
            double ms = (s.done - s.sent) * 1e3;
            if (s.done < t0) {
                steady[ns++] = ms;
            } else if (s.sent < t1) {
                during[nd++] = ms;
                if (ms > worst) {
                    worst = ms;
                    worst_at = s.sent - t0;
                }
            }
        }
    }
    char extra[96];
    snprintf(extra, sizeof extra, " errors=%ld ops_per_s=%.0f", errors, (double)ns / seconds);
    report("steady", steady, ns, extra);
    snprintf(extra, sizeof extra, " snapshot_s=%.3f max_sent_at_s=%.3f", t1 - t0, worst_at);
    report("during", during, nd, extra);
    return 0;
}

static int wait_serving(int port, const char *key, const char *value, double since, double timeout)
{
    char cmd[256], reply[256];
    int len = snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
    double deadline = now_s(CLOCK_REALTIME) + timeout;
    int fd = -1;
    while (now_s(CLOCK_REALTIME) < deadline) {
        if (fd < 0) {
            fd = dial(port);
        }
        if (fd >= 0) {
            int kind =
                send_all(fd, cmd, (size_t)len) == 0 ? read_reply(fd, reply, sizeof reply) : -1;
            if (kind == '$' && strcmp(reply, value) == 0) {
                printf("serving_s=%.3f\n", now_s(CLOCK_REALTIME) - since);
                return 0;
            }
            if (kind < 0) {
                close(fd);
                fd = -1;
            }
        }
        usleep(1000);
    }
    fprintf(stderr, "scale: port %d did not answer GET %s with %s within %.0f s\n", port, key,
            value, timeout);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "latency") == 0) {
        return latency(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atol(argv[5]));
    }
    if (argc == 7 && strcmp(argv[1], "wait") == 0) {
        return wait_serving(atoi(argv[2]), argv[3], argv[4], atof(argv[5]) / 1e9, atof(argv[6]));
    }
    fprintf(stderr,
            "usage: scale latency PORT CLIENTS SECONDS KEYS\n"
            "       scale wait PORT KEY VALUE SINCE_NS TIMEOUT_S\n");
    return 2;
}
