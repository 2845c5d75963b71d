/*
 * What `luaraft cluster` prints: its own lines on stdout ("<time> luaraft cluster: ...",
 * the time as in the log's lines, util/log.h), and each node's output, line by line, on
 * stderr and in DIR/n<i>.log, in the log's format (a line the node wrote in another gets
 * the time and "luaraft[<id>]: "). The nodes' "election won" and "leader changed" lines
 * become one "leader is now node N (term T)" line on stdout per change.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cluster_internal.h"
#include "util/log.h"

/* "<time> luaraft cluster: <text>" into out (line_bytes_max bytes), newline included;
 * returns its length. */
static size_t cluster_line(char *out, const char *fmt, va_list ap)
{
    char now[lr_log_time_bytes];
    lr_log_time(lr_log_now_ms(), now);
    int head = snprintf(out, line_bytes_max, "%s luaraft cluster: ", now);
    int n = vsnprintf(out + head, line_bytes_max - (size_t)head - 1, fmt, ap);
    size_t len = (size_t)head + (n < 0 ? 0 : (size_t)n);
    if (len > line_bytes_max - 2) {
        len = line_bytes_max - 2;
    }
    out[len++] = '\n';
    out[len] = '\0';
    return len;
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

void cluster_warn(const char *fmt, ...)
{
    char line[line_bytes_max];
    va_list ap;
    va_start(ap, fmt);
    size_t len = cluster_line(line, fmt, ap);
    va_end(ap);
    write_all(STDERR_FILENO, line, len);
}

void cluster_say(const char *fmt, ...)
{
    char line[line_bytes_max];
    va_list ap;
    va_start(ap, fmt);
    cluster_line(line, fmt, ap);
    va_end(ap);
    fputs(line, stdout);
    fflush(stdout);
}

/* Reports the leader a node's line (in the log's format) names, once per change. */
static void watch_leader(struct leader_state *ls, const char *line, size_t n)
{
    struct lr_log_fields f;
    uint64_t leader = 0;
    if (!lr_log_parse(line, n, &f) || f.id == 0 || f.term == LR_LOG_NO_TERM) {
        return;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "%.*s", (int)(n - f.msg), line + f.msg);
    if (strncmp(msg, "election won", 12) == 0) {
        leader = f.id;
    } else if (sscanf(msg, "leader changed: node %" SCNu64, &leader) != 1) {
        return;
    }
    if (leader == 0 || f.term < ls->term || (leader == ls->leader && f.term == ls->term)) {
        return;
    }
    ls->leader = leader;
    ls->term = f.term;
    cluster_say("leader is now node %" PRIu64 " (term %" PRIu64 ")", leader, f.term);
}

/*
 * Looks at one complete line of node c's output (without its newline), and passes it on
 * in the log's format: a line without the time gets it, and one without the node's tag
 * (a start-up error, anything a library printed) gets "luaraft[<id>]: " too, in place of
 * the "luaraft: " it may start with.
 */
static void handle_line(struct child *c, struct leader_state *ls, const char *line, size_t n)
{
    char out[lr_log_time_bytes + 32 + line_bytes_max + 1];
    size_t len = 0;
    struct lr_log_fields f;
    if (!lr_log_parse(line, n, &f)) {
        char now[lr_log_time_bytes];
        lr_log_time(lr_log_now_ms(), now);
        if (n >= 8 && memcmp(line, "luaraft[", 8) == 0) {
            len = (size_t)snprintf(out, sizeof out, "%s ", now);
        } else {
            len = (size_t)snprintf(out, sizeof out, "%s luaraft[%d]: ", now, c->id);
            if (n >= 9 && memcmp(line, "luaraft: ", 9) == 0) {
                line += 9;
                n -= 9;
            }
        }
    }
    memcpy(out + len, line, n);
    len += n;
    out[len++] = '\n';
    write_all(STDERR_FILENO, out, len);
    if (c->log >= 0) {
        write_all(c->log, out, len);
    }
    watch_leader(ls, out, len - 1);
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
