/*
 * Replies for a connection's protocol (the mapping is in resp3.h): one recursive walk over
 * a reply, which either only looks for what must change (out NULL) or writes the edited
 * form.
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
    int proto;       /* 2 or 3: the connection's */
    struct buf *out; /* NULL: only look */
    bool found;      /* something the connection must not get as it is was seen */
    int error;
};

/* The attribute keys the fsm writes (fsm/reply.c) and what they ask of the reply after. */
enum hint {
    HINT_NONE,
    HINT_PAIRS,      /* *n of *2 pairs; RESP2 flattens them into *2n */
    HINT_NULL_ARRAY, /* _; RESP2 writes *-1 */
};

static const char hint_pairs[] = "+" RESP3_HINT_PAIRS "\r\n";
static const char hint_null_array[] = "+" RESP3_HINT_NULL_ARRAY "\r\n";

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

/* The header line of an aggregate of type at w->pos: its count in *v. */
static bool header(struct walk *w, char type, int64_t *v)
{
    const char *s;
    size_t n;
    return w->pos < w->len && w->p[w->pos] == type && line(w, &s, &n) && number(s, n, v) && *v >= 0;
}

/* The reply an attribute annotates, edited as its hint asks. */
static bool hinted(struct walk *w, enum hint hint, int depth)
{
    int64_t n, two;
    if (w->proto >= 3 || hint == HINT_NONE) {
        return element(w, depth);
    }
    if (hint == HINT_NULL_ARRAY) {
        const char *s;
        size_t len;
        if (w->pos >= w->len || w->p[w->pos] != '_' || !line(w, &s, &len) || len != 0) {
            return false;
        }
        emit(w, "*-1\r\n", 5);
        return true;
    }
    if (!header(w, '*', &n) || n > INT64_MAX / 2) {
        return false;
    }
    emit_header(w, '*', 2 * n);
    for (int64_t i = 0; i < n; i++) {
        if (!header(w, '*', &two) || two != 2 || !element(w, depth + 2) || !element(w, depth + 2)) {
            return false;
        }
    }
    return true;
}

/* An attribute of count pairs: no connection gets it (the node only writes hints); the
 * reply it annotates follows. */
static bool attribute(struct walk *w, int64_t count, int depth)
{
    struct buf *out = w->out;
    enum hint hint = HINT_NONE;
    w->out = NULL;
    for (int64_t i = 0; i < count; i++) {
        size_t key = w->pos;
        if (!element(w, depth + 1)) {
            return false;
        }
        size_t klen = w->pos - key;
        if (klen == sizeof hint_pairs - 1 && memcmp(w->p + key, hint_pairs, klen) == 0) {
            hint = HINT_PAIRS;
        } else if (klen == sizeof hint_null_array - 1 &&
                   memcmp(w->p + key, hint_null_array, klen) == 0) {
            hint = HINT_NULL_ARRAY;
        }
        if (!element(w, depth + 1)) {
            return false;
        }
    }
    w->out = out;
    return hinted(w, hint, depth);
}

/* An aggregate of count elements (pairs for maps). */
static bool aggregate(struct walk *w, char type, int64_t count, int depth)
{
    if (type == '|') {
        return attribute(w, count, depth);
    }
    int64_t n = type == '%' ? 2 * count : count;
    emit_header(w, w->proto >= 3 ? type : '*', w->proto >= 3 ? count : n);
    for (int64_t i = 0; i < n; i++) {
        if (!element(w, depth + 1)) {
            return false;
        }
    }
    return true;
}

/* A RESP3 scalar at w->pos, for a RESP3 connection: as it is. */
static bool scalar_as_is(struct walk *w, char type)
{
    const char *s;
    size_t n, start = w->pos;
    bool null, ok;
    if (type == '=' || type == '!') {
        ok = blob(w, &s, &n, &null) && !null;
    } else {
        ok = (type == '_' || type == '#' || type == ',' || type == '(') && line(w, &s, &n);
    }
    if (ok) {
        emit(w, w->p + start, w->pos - start);
    }
    return ok;
}

/* A RESP3 scalar at w->pos, in its RESP2 form. */
static bool scalar_to_resp2(struct walk *w, char type)
{
    const char *s;
    size_t n;
    bool null;
    switch (type) {
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
    if (type == '|' || w->proto < 3) {
        w->found = true;
    }
    switch (type) {
        case '%':
        case '~':
        case '>':
        case '|':
            if (!line(w, &s, &n) || !number(s, n, &v) || v < 0) {
                return false;
            }
            return aggregate(w, type, v, depth);
        default:
            break;
    }
    return w->proto >= 3 ? scalar_as_is(w, type) : scalar_to_resp2(w, type);
}

bool resp3_needs_edit(const void *data, size_t len, int proto)
{
    const char *p = data;
    if (len == 0 || p[0] == '+' || p[0] == '-' || p[0] == ':' || p[0] == '$') {
        return false; /* the common replies, at a glance */
    }
    if (proto >= 3 && memchr(p, '|', len) == NULL) {
        return false; /* no attribute anywhere, at a glance */
    }
    struct walk w = {p, len, 0, proto, NULL, false, 0};
    return element(&w, 0) && w.pos == len && w.found;
}

int resp3_edit(const void *data, size_t len, int proto, struct buf *out)
{
    struct walk w = {data, len, 0, proto, out, false, 0};
    if (!element(&w, 0) || w.pos != len) {
        return -1;
    }
    return w.error;
}
