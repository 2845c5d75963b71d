/*
 * What `luaraft cluster` prints: its own lines on stdout, and each node's output, line by
 * line, on stderr and in DIR/n<i>.log, prefixed "luaraft[<id>] " unless the node wrote
 * one. The nodes' "election won" and "leader changed" lines become one "leader is now
 * node N (term T)" line on stdout per change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cluster_internal.h"

void cluster_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("luaraft cluster: ", stdout);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
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
    cluster_say("leader is now node %" PRIu64 " (term %" PRIu64 ")", leader, term);
}

bool cluster_read_child(struct child *c, struct leader_state *ls)
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
