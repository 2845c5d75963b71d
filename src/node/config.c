/*
 * The cluster's configuration: --cluster on first start ("1=127.0.0.1:7001,2=..."), and
 * the peers' addresses stored beside the store as DIR/cluster (the store keeps the
 * configuration as ids). Host names in addresses are resolved here, once per start: the
 * text keeps the names (DIR/cluster too, and the cluster id is the text's hash), the
 * node_config and node_member hold numeric addresses.
 */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node/config.h"
#include "util/assert.h"

enum {
    reason_bytes = 320, /* why an address does not resolve */
};

/*
 * Splits "HOST:PORT" ("[HOST]:PORT" for IPv6) into name (the host as given) and port.
 * Returns 0 or -1.
 */
static int split_addr(const char *text, char name[config_name_bytes_max], int *port)
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
    if (hlen == 0 || hlen >= config_name_bytes_max) {
        return -1;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || p <= 0 || p > 65535) {
        return -1;
    }
    memcpy(name, h, hlen);
    name[hlen] = '\0';
    *port = (int)p;
    return 0;
}

/*
 * The numeric address of a host name, into host: a numeric address as it is, a name
 * through getaddrinfo (its first IPv4 address, or its first IPv6 one if it has none, so
 * that a name every node resolves alike gives the same address to the node that listens
 * and to the ones that connect). Returns 0, or -1 with the reason in errmsg.
 */
static int resolve_host(const char *name, char *host, size_t host_size, char *errmsg, size_t size)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    if (uv_ip4_addr(name, 0, &a4) == 0 || uv_ip6_addr(name, 0, &a6) == 0) {
        if (strlen(name) >= host_size) {
            snprintf(errmsg, size, "address '%s' is too long", name);
            return -1;
        }
        snprintf(host, host_size, "%s", name);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(name, NULL, &hints, &res);
    if (rv != 0) {
        snprintf(errmsg, size, "cannot resolve host name '%s': %s", name,
                 rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
        return -1;
    }
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        bool ours = ai->ai_family == AF_INET || ai->ai_family == AF_INET6;
        if (ours && (pick == NULL || (pick->ai_family != AF_INET && ai->ai_family == AF_INET))) {
            pick = ai;
        }
    }
    rv = pick == NULL ? EAI_FAMILY
                      : getnameinfo(pick->ai_addr, pick->ai_addrlen, host, (socklen_t)host_size,
                                    NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rv != 0) {
        snprintf(errmsg, size, "host name '%s' has no usable address: %s", name, gai_strerror(rv));
        return -1;
    }
    return 0;
}

int config_resolve_addr(const char *text,
                        char *host,
                        size_t host_size,
                        int *port,
                        char *errmsg,
                        size_t errmsg_size)
{
    char name[config_name_bytes_max];
    if (split_addr(text, name, port) != 0) {
        snprintf(errmsg, errmsg_size, "'%s' is not HOST:PORT", text);
        return -1;
    }
    return resolve_host(name, host, host_size, errmsg, errmsg_size) == 0 ? 0 : -2;
}

int node_parse_addr(const char *text, char *host, size_t host_size, int *port)
{
    char msg[reason_bytes];
    return config_resolve_addr(text, host, host_size, port, msg, sizeof msg) == 0 ? 0 : -1;
}

/* One member "ID=HOST:PORT" of --cluster into m, its host resolved if resolve is set.
 * Returns 0, or -1 with the reason in errmsg. */
static int parse_member(const char *item,
                        bool resolve,
                        struct node_member *m,
                        char *errmsg,
                        size_t errmsg_size)
{
    const char *eq = strchr(item, '=');
    char *idend;
    errno = 0;
    unsigned long long id = eq != NULL ? strtoull(item, &idend, 10) : 0;
    char name[config_name_bytes_max];
    if (eq == NULL || errno != 0 || idend != eq || id == 0 || id > UINT32_MAX ||
        split_addr(eq + 1, name, &m->port) != 0) {
        snprintf(errmsg, errmsg_size, "'%s' is not ID=HOST:PORT", item);
        return -1;
    }
    m->id = id;
    char why[reason_bytes];
    if (resolve && resolve_host(name, m->host, sizeof m->host, why, sizeof why) != 0) {
        snprintf(errmsg, errmsg_size, "member %llu: %s", id, why);
        return -1;
    }
    return 0;
}

/* node_parse_cluster, with the hosts resolved or only checked for their syntax. */
static int parse_cluster(const char *text,
                         bool resolve,
                         struct node_member *members,
                         char *errmsg,
                         size_t errmsg_size)
{
    int count = 0;
    const char *p = text;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[config_name_bytes_max + 32];
        if (len == 0 || len >= sizeof item) {
            snprintf(errmsg, errmsg_size, "bad member '%.*s'", (int)len, p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (count == RAFT_SERVERS_MAX) {
            snprintf(errmsg, errmsg_size, "more than %d members", RAFT_SERVERS_MAX);
            return -1;
        }
        struct node_member *m = &members[count];
        if (parse_member(item, resolve, m, errmsg, errmsg_size) != 0) {
            return -1;
        }
        for (int i = 0; i < count; i++) {
            if (members[i].id == m->id) {
                snprintf(errmsg, errmsg_size, "id %llu appears twice", (unsigned long long)m->id);
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

int node_parse_cluster(const char *text,
                       struct node_member *members,
                       char *errmsg,
                       size_t errmsg_size)
{
    return parse_cluster(text, true, members, errmsg, errmsg_size);
}

int config_check_cluster(const char *text, char *errmsg, size_t errmsg_size)
{
    struct node_member members[RAFT_SERVERS_MAX];
    return parse_cluster(text, false, members, errmsg, errmsg_size);
}

/* The store keeps the configuration as ids; the peers' addresses live in DIR/cluster,
 * written on first start (temporary name, fsync, rename, fsync of the directory). */
int config_write_file(const char *dir, const char *text)
{
    return config_write_named(dir, "cluster", text);
}

int config_write_named(const char *dir, const char *name, const char *text)
{
    char tmp[node_path_bytes_max + 32], path[node_path_bytes_max + 32];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
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
    return config_read_named(dir, "cluster");
}

char *config_read_named(const char *dir, const char *name)
{
    char path[node_path_bytes_max + 32];
    snprintf(path, sizeof path, "%s/%s", dir, name);
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
