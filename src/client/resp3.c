/*
 * RESP3 to RESP2 (the mapping is in resp3.h): one recursive walk over a reply, which either
 * only looks for RESP3 types (out NULL) or writes the RESP2 form.
 */
#include "client/resp3.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    resp3_depth_max = 256, /* nesting; the fsm's replies stay far below */
};

struct walk
{
    const char *p;
    size_t len, pos;
    struct buf *out; /* NULL: only look */
    bool found;      /* a RESP3-only type was seen */
    int error;
};

/* The line at w->pos (after its type byte), up to CRLF: [*s, *s + *n). */
static bool line(struct walk *w, const char **s, size_t *n)
{
    size_t start = w->pos + 1;
    for (size_t i = start; i + 1 < w->len; i++) {
        if (w->p[i] == '\r' && w->p[i + 1] == '\n') {
            *s = w->p + start;
            *n = i - start;
            w->pos = i + 2;
            return true;
        }
    }
    return false;
}

static bool number(const char *s, size_t n, int64_t *v)
{
    if (n == 0 || n > 19) {
        return false;
    }
    bool neg = s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i == n) {
        return false;
    }
    int64_t x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return true;
}

static void emit(struct walk *w, const void *data, size_t n)
{
    if (w->out != NULL && w->error == 0 && buf_append(w->out, data, n) != 0) {
        w->error = BUF_ENOMEM;
    }
}

static void emit_header(struct walk *w, char type, int64_t v)
{
    char text[32];
    int k = snprintf(text, sizeof text, "%c%lld\r\n", type, (long long)v);
    emit(w, text, (size_t)k);
}

static void emit_bulk(struct walk *w, const char *s, size_t n)
{
    emit_header(w, '$', (int64_t)n);
    emit(w, s, n);
    emit(w, "\r\n", 2);
}

/* The payload of a length-prefixed type ($ = ! and their CRLF) at w->pos. */
static bool blob(struct walk *w, const char **s, size_t *n, bool *null)
{
    const char *h;
    size_t hn;
    int64_t v;
    if (!line(w, &h, &hn) || !number(h, hn, &v) || v < -1) {
        return false;
    }
    *null = v == -1;
    if (v == -1) {
        return true;
    }
    if ((uint64_t)v > w->len - w->pos || w->len - w->pos - (size_t)v < 2) {
        return false;
    }
    *s = w->p + w->pos;
    *n = (size_t)v;
    w->pos += (size_t)v + 2;
    return w->p[w->pos - 2] == '\r' && w->p[w->pos - 1] == '\n';
}

static bool element(struct walk *w, int depth);

/* An aggregate of count elements (pairs for maps and attributes). */
static bool aggregate(struct walk *w, char type, int64_t count, int depth)
{
    if (type == '|') {
        /* An attribute: its pairs are dropped, the reply it annotates follows. */
        struct buf *out = w->out;
        w->out = NULL;
        for (int64_t i = 0; i < 2 * count; i++) {
            if (!element(w, depth + 1)) {
                return false;
            }
        }
        w->out = out;
        return element(w, depth);
    }
    int64_t n = type == '%' ? 2 * count : count;
    emit_header(w, '*', n);
    for (int64_t i = 0; i < n; i++) {
        if (!element(w, depth + 1)) {
            return false;
        }
    }
    return true;
}

static bool element(struct walk *w, int depth)
{
    if (depth > resp3_depth_max || w->pos >= w->len) {
        return false;
    }
    size_t start = w->pos;
    char type = w->p[w->pos];
    const char *s;
    size_t n;
    bool null;
    int64_t v;
    switch (type) {
        case '+':
        case '-':
        case ':':
            if (!line(w, &s, &n)) {
                return false;
            }
            emit(w, w->p + start, w->pos - start);
            return true;
        case '$':
            if (!blob(w, &s, &n, &null)) {
                return false;
            }
            emit(w, w->p + start, w->pos - start);
            return true;
        case '*':
            if (!line(w, &s, &n) || !number(s, n, &v) || v < -1) {
                return false;
            }
            if (v == -1) {
                emit(w, "*-1\r\n", 5);
                return true;
            }
            return aggregate(w, '*', v, depth);
        default:
            break;
    }
    w->found = true;
    switch (type) {
        case '%':
        case '~':
        case '>':
        case '|':
            if (!line(w, &s, &n) || !number(s, n, &v) || v < 0) {
                return false;
            }
            return aggregate(w, type, v, depth);
        case '_':
            if (!line(w, &s, &n) || n != 0) {
                return false;
            }
            emit(w, "$-1\r\n", 5);
            return true;
        case '#':
            if (!line(w, &s, &n) || n != 1 || (s[0] != 't' && s[0] != 'f')) {
                return false;
            }
            emit(w, s[0] == 't' ? ":1\r\n" : ":0\r\n", 4);
            return true;
        case ',':
        case '(':
            if (!line(w, &s, &n)) {
                return false;
            }
            emit_bulk(w, s, n);
            return true;
        case '=':
            if (!blob(w, &s, &n, &null) || null || n < 4 || s[3] != ':') {
                return false;
            }
            emit_bulk(w, s + 4, n - 4);
            return true;
        case '!':
            if (!blob(w, &s, &n, &null) || null || memchr(s, '\r', n) || memchr(s, '\n', n)) {
                return false;
            }
            emit(w, "-", 1);
            emit(w, s, n);
            emit(w, "\r\n", 2);
            return true;
        default:
            return false;
    }
}

bool resp3_has_resp3(const void *data, size_t len)
{
    const char *p = data;
    if (len == 0 || p[0] == '+' || p[0] == '-' || p[0] == ':' || p[0] == '$') {
        return false; /* the common replies, at a glance */
    }
    struct walk w = {p, len, 0, NULL, false, 0};
    return element(&w, 0) && w.pos == len && w.found;
}

int resp3_to_resp2(const void *data, size_t len, struct buf *out)
{
    struct walk w = {data, len, 0, out, false, 0};
    if (!element(&w, 0) || w.pos != len) {
        return -1;
    }
    return w.error;
}
