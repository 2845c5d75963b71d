/*
 * probes: what the machine itself costs, measured in the same run as the systems that
 * bench/compare.sh compares, so a ratio against them is fair on a noisy machine.
 *
 *   probes fsync DIR COUNT   4 KiB pwrite + fdatasync, COUNT times: once appending to a
 *                            new file (the file grows at every write, as a log does), once
 *                            overwriting a file written and synced beforehand
 *   probes lmdb DIR COUNT    COUNT LMDB write transactions of one 8-byte key each, with
 *                            LMDB's default durability (data pages synced, then the meta
 *                            page): one durable commit, what luaraft's store pays per batch
 *   probes rtt PORT COUNT    a 16-byte ping-pong over one TCP_NODELAY connection on
 *                            127.0.0.1 (a forked child echoes): one loopback round trip
 *
 * Each prints one line "probe.NAME ops_per_s=.. p50_us=.. p99_us=.. p999_us=..".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void fail(const char *what)
{
    fprintf(stderr, "probes: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts the COUNT samples in place and prints the line every probe ends with. */
static void report(const char *name, double *us, long count, double elapsed_us)
{
    qsort(us, (size_t)count, sizeof *us, by_value);
    long last = count - 1;
    printf("probe.%s ops_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f\n", name,
           (double)count / (elapsed_us / 1e6), us[last / 2], us[(long)(0.99 * (double)last)],
           us[(long)(0.999 * (double)last)]);
}

static void fsync_run(const char *name, const char *path, long count, int overwrite)
{
    static char block[4096];
    memset(block, 'b', sizeof block);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) {
        fail("open");
    }
    if (overwrite) {
        for (long i = 0; i < count; i++) {
            if (write(fd, block, sizeof block) != (ssize_t)sizeof block) {
                fail("write");
            }
        }
        if (fsync(fd) != 0) {
            fail("fsync");
        }
    }
    double *us = malloc(sizeof *us * (size_t)count);
    double start = now_us();
    for (long i = 0; i < count; i++) {
        double t = now_us();
        off_t at = (off_t)i * (off_t)sizeof block;
        if (pwrite(fd, block, sizeof block, at) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            fail("pwrite/fdatasync");
        }
        us[i] = now_us() - t;
    }
    report(name, us, count, now_us() - start);
    free(us);
    close(fd);
    unlink(path);
}

static void probe_fsync(const char *dir, long count)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    fsync_run("fdatasync_4k_append", path, count, 0);
    fsync_run("fdatasync_4k_overwrite", path, count, 1);
}

static void lmdb_check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "probes: %s: %s\n", what, mdb_strerror(rc));
        exit(1);
    }
}

static void probe_lmdb(const char *dir, long count)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fail("mkdir");
    }
    lmdb_check(mdb_env_create(&env), "mdb_env_create");
    lmdb_check(mdb_env_set_mapsize(env, (size_t)256 << 20), "mdb_env_set_mapsize");
    lmdb_check(mdb_env_open(env, dir, 0, 0644), "mdb_env_open");
    lmdb_check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
    lmdb_check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
    lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
    double *us = malloc(sizeof *us * (size_t)count);
    double start = now_us();
    for (long i = 0; i < count; i++) {
        /* Big-endian keys in increasing order: MDB_APPEND, as a log's index is. */
        uint8_t key[8];
        for (int b = 0; b < 8; b++) {
            key[b] = (uint8_t)((uint64_t)i >> (8 * (7 - b)));
        }
        MDB_val k = {sizeof key, key};
        MDB_val v = {sizeof key, key};
        double t = now_us();
        lmdb_check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
        lmdb_check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "mdb_put");
        lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
        us[i] = now_us() - t;
    }
    report("lmdb_commit", us, count, now_us() - start);
    free(us);
    mdb_env_close(env);
}

static int io_all(int fd, char *buf, size_t len, int writing)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

static void probe_rtt(int port, long count)
{
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* The port may be some connection's ephemeral port just now: try the next ones. */
    int bound = -1;
    for (int i = 0; i < 10 && bound != 0; i++) {
        addr.sin_port = htons((uint16_t)(port + i));
        bound = bind(listener, (struct sockaddr *)&addr, sizeof addr);
    }
    if (bound != 0 || listen(listener, 1) != 0) {
        fail("bind/listen");
    }
    char msg[16];
    memset(msg, 'r', sizeof msg);
    pid_t child = fork();
    if (child == 0) {
        int c = accept(listener, NULL, NULL);
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        while (io_all(c, msg, sizeof msg, 0) == 0 && io_all(c, msg, sizeof msg, 1) == 0) {
        }
        _exit(0);
    }
    close(listener);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fail("connect");
    }
    double *us = malloc(sizeof *us * (size_t)count);
    double start = now_us();
    for (long i = 0; i < count; i++) {
        double t = now_us();
        if (io_all(s, msg, sizeof msg, 1) != 0 || io_all(s, msg, sizeof msg, 0) != 0) {
            fail("ping-pong");
        }
        us[i] = now_us() - t;
    }
    report("loopback_rtt", us, count, now_us() - start);
    free(us);
    close(s);
    waitpid(child, NULL, 0);
}

int main(int argc, char **argv)
{
    long count = argc == 4 ? atol(argv[3]) : 0;
    if (count < 1) {
        fprintf(stderr, "usage: probes fsync|lmdb DIR COUNT | probes rtt PORT COUNT\n");
        return 2;
    }
    if (strcmp(argv[1], "fsync") == 0) {
        probe_fsync(argv[2], count);
    } else if (strcmp(argv[1], "lmdb") == 0) {
        probe_lmdb(argv[2], count);
    } else if (strcmp(argv[1], "rtt") == 0) {
        probe_rtt(atoi(argv[2]), count);
    } else {
        fprintf(stderr, "probes: unknown probe '%s'\n", argv[1]);
        return 2;
    }
    return 0;
}
