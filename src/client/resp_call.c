/*
 * One blocking RESP call (resp_call.h): for start-up (`luaraft node --join`) and the
 * `luaraft cluster` commands, never the loop thread.
 */
#include "client/resp_call.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

static int connect_to(const char *host, int port, int timeout_s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    socklen_t len =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int send_command(int fd, int argc, const char *const *argv)
{
    char req[4096];
    int k = snprintf(req, sizeof req, "*%d\r\n", argc);
    for (int i = 0; i < argc && k > 0 && (size_t)k < sizeof req; i++) {
        k += snprintf(req + k, sizeof req - (size_t)k, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    }
    if (k <= 0 || (size_t)k >= sizeof req) {
        errno = E2BIG;
        return -1;
    }
    return write(fd, req, (size_t)k) == (ssize_t)k ? 0 : -1;
}

/* Whether buf[0, got) holds a whole reply of one of the kinds we read. */
static bool complete(const char *buf, size_t got)
{
    const char *nl = memchr(buf, '\n', got);
    if (nl == NULL) {
        return false;
    }
    if (buf[0] != '$') {
        return true;
    }
    long want = strtol(buf + 1, NULL, 10);
    size_t head = (size_t)(nl - buf) + 1;
    return want < 0 || got >= head + (size_t)want + 2;
}

int resp_call(const char *host,
              int port,
              int argc,
              const char *const *argv,
              int timeout_s,
              char *out,
              size_t size)
{
    int fd = connect_to(host, port, timeout_s);
    if (fd < 0) {
        snprintf(out, size, "cannot connect to %s:%d: %s", host, port, strerror(errno));
        return -1;
    }
    if (send_command(fd, argc, argv) != 0) {
        snprintf(out, size, "cannot send to %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got + 1 < size && !(got > 0 && complete(out, got))) {
        ssize_t k = read(fd, out + got, size - 1 - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
    }
    close(fd);
    out[got] = '\0';
    if (got == 0 || !complete(out, got)) {
        snprintf(out, size, "no whole answer from %s:%d", host, port);
        return -1;
    }
    char kind = out[0];
    char *nl = strchr(out, '\n');
    if (kind == '$') { /* the bulk string's bytes, in place */
        long n = strtol(out + 1, NULL, 10);
        size_t len = n > 0 ? (size_t)n : 0;
        memmove(out, nl + 1, len);
        out[len] = '\0';
    } else {
        memmove(out, out + 1, strlen(out));
        out[strcspn(out, "\r\n")] = '\0';
    }
    return kind == '-' ? 1 : 0;
}
