/*
 * The cluster's configuration: --cluster on first start ("1=127.0.0.1:7001,2=..."), and
 * the peers' addresses stored beside the store as DIR/cluster (the store keeps the
 * configuration as ids).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node/config.h"
#include "util/assert.h"

int node_parse_addr(const char *text, char *host, size_t host_size, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL || end[1] != ':') {
            return -1;
        }
        h = text + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            return -1;
        }
        hlen = (size_t)(colon - text);
    }
    if (hlen == 0 || hlen >= host_size) {
        return -1;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p <= 0 || p > 65535) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    if (uv_ip4_addr(host, (int)p, &a4) != 0 && uv_ip6_addr(host, (int)p, &a6) != 0) {
        return -1;
    }
    *port = (int)p;
    return 0;
}

int node_parse_cluster(const char *text,
                       struct node_member *members,
                       char *errmsg,
                       size_t errmsg_size)
{
    int count = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[128];
        if (len == 0 || len >= sizeof item) {
            snprintf(errmsg, errmsg_size, "bad member '%.*s'", (int)len, p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *eq = strchr(item, '=');
        char *idend;
        errno = 0;
        unsigned long long id = eq != NULL ? strtoull(item, &idend, 10) : 0;
        if (eq == NULL || errno != 0 || idend != eq || id == 0 || id > UINT32_MAX) {
            snprintf(errmsg, errmsg_size, "'%s' is not ID=HOST:PORT", item);
            return -1;
        }
        if (count == RAFT_SERVERS_MAX) {
            snprintf(errmsg, errmsg_size, "more than %d members", RAFT_SERVERS_MAX);
            return -1;
        }
        struct node_member *m = &members[count];
        m->id = id;
        if (node_parse_addr(eq + 1, m->host, sizeof m->host, &m->port) != 0) {
            snprintf(errmsg, errmsg_size, "'%s' is not ID=HOST:PORT", item);
            return -1;
        }
        for (int i = 0; i < count; i++) {
            if (members[i].id == id) {
                snprintf(errmsg, errmsg_size, "id %llu appears twice", id);
                return -1;
            }
        }
        count++;
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    if (count == 0) {
        snprintf(errmsg, errmsg_size, "no members");
        return -1;
    }
    return count;
}

/* The store keeps the configuration as ids; the peers' addresses live in DIR/cluster,
 * written on first start (temporary name, fsync, rename, fsync of the directory). */
int config_write_file(const char *dir, const char *text)
{
    char tmp[node_path_bytes_max + 16], path[node_path_bytes_max + 16];
    snprintf(tmp, sizeof tmp, "%s/cluster.tmp", dir);
    snprintf(path, sizeof path, "%s/cluster", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return -errno;
    }
    size_t len = strlen(text);
    int rv = 0;
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rv = -errno;
    }
    close(fd);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = -errno;
    }
    if (rv == 0) {
        rv = config_fsync_dir(dir);
    }
    return rv;
}

char *config_read_file(const char *dir)
{
    char path[node_path_bytes_max + 16];
    snprintf(path, sizeof path, "%s/cluster", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *line = calloc(1, 4096);
    lr_assert(line != NULL);
    if (fgets(line, 4096, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

int config_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

uint64_t config_hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, 64 bits */
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h;
}

uint64_t config_random_u64(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, &v, sizeof v);
        close(fd);
        if (r == (ssize_t)sizeof v) {
            return v;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}
