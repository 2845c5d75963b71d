#include "client/resp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/assert.h"

/* Initial entries of the argument arrays; they double up to the announced count, so a
 * client that announces a million arguments gets arrays sized by what it actually sent. */
#define RESP_ARGS_INITIAL 8

/* Digits of the longest int64 plus sign: every header number fits in this. */
#define RESP_NUMBER_BYTES_MAX 20

void resp_limits_default(struct resp_limits *l)
{
    l->args_max = 1024 * 1024;
    l->bulk_bytes_max = (size_t)512 * 1024 * 1024;
    l->inline_bytes_max = 64 * 1024;
    l->line_bytes_max = 64 * 1024;
    l->query_bytes_max = (size_t)1024 * 1024 * 1024;
}

void resp_parser_init(struct resp_parser *p, const struct resp_limits *limits)
{
    memset(p, 0, sizeof(*p));
    if (limits != NULL) {
        p->limits = *limits;
    } else {
        resp_limits_default(&p->limits);
    }
    buf_init(&p->in);
    p->bulk_len = -1;
}

void resp_parser_close(struct resp_parser *p)
{
    buf_free(&p->in);
    free(p->arg_off);
    free(p->arg_len);
    free(p->argv);
    p->arg_off = NULL;
    p->arg_len = NULL;
    p->argv = NULL;
    p->arg_cap = 0;
}

const char *resp_parser_error(const struct resp_parser *p)
{
    return p->errmsg;
}

static int proto_error(struct resp_parser *p, const char *msg)
{
    size_t n = strlen(msg);
    lr_assert(n < sizeof(p->errmsg));
    memcpy(p->errmsg, msg, n + 1);
    p->error = RESP_EPROTO;
    return RESP_EPROTO;
}

static int nomem_error(struct resp_parser *p)
{
    memcpy(p->errmsg, "Out of memory", sizeof("Out of memory"));
    p->error = RESP_ENOMEM;
    return RESP_ENOMEM;
}

void resp_parser_set_limits(struct resp_parser *p, const struct resp_limits *limits)
{
    p->limits = *limits;
}

size_t resp_parser_bytes(const struct resp_parser *p)
{
    return p->in.cap + p->arg_cap * (2 * sizeof(size_t) + sizeof(const char *));
}

void resp_parser_shrink(struct resp_parser *p, size_t keep)
{
    if (p->error == 0 && p->mb_argc == 0 && p->pos == p->in.len && p->in.cap > keep) {
        buf_free(&p->in);
        p->pos = 0;
    }
}

void resp_parser_discard(struct resp_parser *p, const char *text)
{
    resp_parser_close(p);
    p->in.len = 0;
    p->pos = 0;
    p->mb_argc = 0;
    if (p->error == 0) {
        proto_error(p, text);
    }
}

int resp_parser_feed(struct resp_parser *p, const void *data, size_t n)
{
    if (p->error != 0) {
        return p->error;
    }
    size_t unparsed = p->in.len - p->pos;
    if (n > p->limits.query_bytes_max || unparsed > p->limits.query_bytes_max - n) {
        return proto_error(p, "Protocol error: too big query buffer");
    }
    /* Drop what was consumed, so the buffer holds at most one partial command plus this
     * read. Offsets of a partial command are relative to pos and survive the move. */
    buf_consume(&p->in, p->pos);
    p->pos = 0;
    if (buf_append(&p->in, data, n) != 0) {
        return nomem_error(p);
    }
    return 0;
}

/* Makes room for at least want arguments. */
static int args_reserve(struct resp_parser *p, size_t want)
{
    if (want <= p->arg_cap) {
        return 0;
    }
    size_t cap = p->arg_cap < RESP_ARGS_INITIAL ? RESP_ARGS_INITIAL : p->arg_cap * 2;
    if (cap < want) {
        cap = want;
    }
    size_t *off = realloc(p->arg_off, cap * sizeof(*off));
    if (off == NULL) {
        return nomem_error(p);
    }
    p->arg_off = off;
    size_t *len = realloc(p->arg_len, cap * sizeof(*len));
    if (len == NULL) {
        return nomem_error(p);
    }
    p->arg_len = len;
    const char **argv = realloc((void *)p->argv, cap * sizeof(*argv));
    if (argv == NULL) {
        return nomem_error(p);
    }
    p->argv = argv;
    p->arg_cap = cap;
    return 0;
}

/* Grows the arrays for one more argument, doubling but never past max arguments. */
static int args_push(struct resp_parser *p, size_t n, size_t max, size_t off, size_t len)
{
    if (n == p->arg_cap) {
        size_t want = p->arg_cap < RESP_ARGS_INITIAL ? RESP_ARGS_INITIAL : p->arg_cap * 2;
        if (want > max) {
            want = max;
        }
        int rv = args_reserve(p, want);
        if (rv != 0) {
            return rv;
        }
    }
    lr_assert(n < p->arg_cap);
    p->arg_off[n] = off;
    p->arg_len[n] = len;
    return 0;
}

/* Points the command at the parsed arguments, now that the buffer stops moving until the
 * next feed. */
static void command_fill(struct resp_parser *p, size_t argc, struct resp_command *cmd)
{
    lr_assert(argc >= 1);
    lr_assert(argc <= p->arg_cap);
    for (size_t i = 0; i < argc; i++) {
        p->argv[i] = (const char *)p->in.data + p->pos + p->arg_off[i];
    }
    cmd->argc = argc;
    cmd->argv = p->argv;
    cmd->argvlen = p->arg_len;
}

/*
 * Finds the end of a header line ("*<n>\r\n" or "$<n>\r\n") that starts at start. Returns 1
 * with *cr at its '\r' once the '\r' and the byte after it are in, 0 when more bytes are
 * needed, -1 when the line is longer than max (decided the same way whatever the split).
 */
static int line_find(const struct resp_parser *p, size_t start, size_t max, size_t *cr)
{
    size_t avail = p->in.len - start;
    size_t window = avail <= max ? avail : max + 1;
    const uint8_t *r = memchr(p->in.data + start, '\r', window);
    if (r == NULL) {
        return avail > max ? -1 : 0;
    }
    *cr = (size_t)(r - p->in.data);
    if (*cr + 1 >= p->in.len) {
        return 0;
    }
    return 1;
}

/* Parses a whole decimal integer the way Redis's string2ll does: an optional '-', no '+', no
 * spaces, no leading zeros. Returns false when s[0, n) is not one. */
static bool number_parse(const uint8_t *s, size_t n, int64_t *v)
{
    if (n == 0 || n > RESP_NUMBER_BYTES_MAX) {
        return false;
    }
    bool negative = s[0] == '-';
    size_t i = negative ? 1 : 0;
    if (i == n || s[i] < '0' || s[i] > '9' || (s[i] == '0' && n - i > 1)) {
        return false;
    }
    uint64_t u = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (u > (UINT64_MAX - d) / 10) {
            return false;
        }
        u = u * 10 + d;
    }
    if (negative) {
        if (u > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX) {
            return false;
        }
        *v = (int64_t)u;
    }
    return true;
}

/* Parses the number between the line's first byte and its "\r\n". */
static bool line_number(const struct resp_parser *p, size_t start, size_t cr, int64_t *v)
{
    if (p->in.data[cr + 1] != '\n') {
        return false;
    }
    return number_parse(p->in.data + start + 1, cr - start - 1, v);
}

/* Reads "*<n>\r\n" at pos. Returns 1 when it starts a command, 2 when it was an empty one
 * (skipped), 0 for more bytes, or an error. */
static int multibulk_header(struct resp_parser *p)
{
    size_t cr = 0;
    int found = line_find(p, p->pos, p->limits.line_bytes_max, &cr);
    if (found < 0) {
        return proto_error(p, "Protocol error: too big mbulk count string");
    }
    if (found == 0) {
        return 0;
    }
    int64_t n = 0;
    if (!line_number(p, p->pos, cr, &n) || (n > 0 && (uint64_t)n > p->limits.args_max)) {
        return proto_error(p, "Protocol error: invalid multibulk length");
    }
    if (n <= 0) {
        p->pos = cr + 2;
        return 2;
    }
    p->mb_argc = n;
    p->mb_done = 0;
    p->bulk_len = -1;
    p->scan = cr + 2 - p->pos;
    return 1;
}

/* Reads "$<n>\r\n" at pos + scan. Returns 1 when done, 0 for more bytes, or an error. */
static int bulk_header(struct resp_parser *p)
{
    size_t start = p->pos + p->scan;
    if (start == p->in.len) {
        return 0;
    }
    uint8_t c = p->in.data[start];
    if (c != '$') {
        /* The byte goes into an error reply: a '\r' or '\n' there would break the stream. */
        char msg[] = "Protocol error: expected '$', got '?'";
        if (c >= 0x20 && c < 0x7f) {
            msg[sizeof(msg) - 3] = (char)c;
        }
        return proto_error(p, msg);
    }
    size_t cr = 0;
    int found = line_find(p, start, p->limits.line_bytes_max, &cr);
    if (found < 0) {
        return proto_error(p, "Protocol error: too big bulk count string");
    }
    if (found == 0) {
        return 0;
    }
    int64_t n = 0;
    if (!line_number(p, start, cr, &n) || n < 0 || (uint64_t)n > p->limits.bulk_bytes_max) {
        return proto_error(p, "Protocol error: invalid bulk length");
    }
    p->bulk_len = n;
    p->scan = cr + 2 - p->pos;
    return 1;
}

/* Continues the multibulk command at pos. Returns 1 with *cmd, 0 for more bytes, or an
 * error. */
static int multibulk_body(struct resp_parser *p, struct resp_command *cmd)
{
    lr_assert(p->mb_argc > 0);
    while (p->mb_done < (uint64_t)p->mb_argc) {
        if (p->bulk_len < 0) {
            int rv = bulk_header(p);
            if (rv <= 0) {
                return rv;
            }
        }
        lr_assert(p->bulk_len >= 0);
        size_t len = (size_t)p->bulk_len;
        size_t start = p->pos + p->scan;
        if (p->in.len - start < len + 2) {
            return 0;
        }
        if (p->in.data[start + len] != '\r' || p->in.data[start + len + 1] != '\n') {
            return proto_error(p, "Protocol error: expected CRLF after bulk data");
        }
        int rv = args_push(p, p->mb_done, (size_t)p->mb_argc, p->scan, len);
        if (rv != 0) {
            return rv;
        }
        p->mb_done++;
        p->scan += len + 2;
        p->bulk_len = -1;
    }
    command_fill(p, p->mb_done, cmd);
    p->pos += p->scan;
    p->scan = 0;
    p->mb_argc = 0;
    p->mb_done = 0;
    return 1;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static uint8_t escape_value(uint8_t c)
{
    switch (c) {
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'b':
            return '\b';
        case 'a':
            return '\a';
        default:
            return c;
    }
}

/*
 * Splits d[*r, end) from one argument's start up to its end, unquoting into d[*w...] (never
 * ahead of *r, since every escape is longer than what it stands for). The rules are Redis's
 * sdssplitargs(), except that a NUL byte is an ordinary byte here. Returns 0, or -1 for
 * unbalanced quotes.
 */
static int inline_word(uint8_t *d, size_t end, size_t *r, size_t *w)
{
    enum { bare, in_double, in_single } mode = bare;
    size_t i = *r;
    size_t o = *w;
    for (;;) {
        if (mode == bare) {
            if (i == end || d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
                break;
            }
            if (d[i] == '"') {
                mode = in_double;
            } else if (d[i] == '\'') {
                mode = in_single;
            } else {
                d[o++] = d[i];
            }
            i++;
            continue;
        }
        if (i == end) {
            return -1;
        }
        uint8_t quote = mode == in_double ? '"' : '\'';
        if (d[i] == quote) {
            /* A closing quote must end the word. */
            if (i + 1 < end && !is_space(d[i + 1])) {
                return -1;
            }
            i++;
            break;
        }
        if (mode == in_double && d[i] == '\\' && i + 3 < end && d[i + 1] == 'x' &&
            hex_value(d[i + 2]) >= 0 && hex_value(d[i + 3]) >= 0) {
            d[o++] = (uint8_t)(hex_value(d[i + 2]) * 16 + hex_value(d[i + 3]));
            i += 4;
        } else if (mode == in_double && d[i] == '\\' && i + 1 < end) {
            d[o++] = escape_value(d[i + 1]);
            i += 2;
        } else if (mode == in_single && d[i] == '\\' && i + 1 < end && d[i + 1] == '\'') {
            d[o++] = '\'';
            i += 2;
        } else {
            d[o++] = d[i++];
        }
    }
    lr_assert(o <= i);
    *r = i;
    *w = o;
    return 0;
}

/* Parses the inline command at pos. Returns 1 with *cmd, 2 for an empty line (skipped), 0
 * for more bytes, or an error. */
static int inline_command(struct resp_parser *p, struct resp_command *cmd)
{
    size_t max = p->limits.inline_bytes_max;
    size_t avail = p->in.len - p->pos;
    size_t window = avail <= max ? avail : max + 1;
    const uint8_t *nl = memchr(p->in.data + p->pos, '\n', window);
    if (nl == NULL) {
        if (avail > max) {
            return proto_error(p, "Protocol error: too big inline request");
        }
        return 0;
    }
    uint8_t *d = p->in.data;
    size_t end = (size_t)(nl - d);
    size_t next = end + 1;
    if (end > p->pos && d[end - 1] == '\r') {
        end--;
    }
    size_t r = p->pos;
    size_t w = p->pos;
    size_t argc = 0;
    for (;;) {
        while (r < end && is_space(d[r])) {
            r++;
        }
        if (r == end) {
            break;
        }
        size_t word = w;
        if (inline_word(d, end, &r, &w) != 0) {
            return proto_error(p, "Protocol error: unbalanced quotes in request");
        }
        /* At most one word per two bytes of a line no longer than inline_bytes_max. */
        int rv = args_push(p, argc, max, word - p->pos, w - word);
        if (rv != 0) {
            return rv;
        }
        argc++;
    }
    if (argc == 0) {
        p->pos = next;
        return 2;
    }
    command_fill(p, argc, cmd);
    p->pos = next;
    return 1;
}

int resp_parser_next(struct resp_parser *p, struct resp_command *cmd)
{
    for (;;) {
        if (p->error != 0) {
            return p->error;
        }
        int rv;
        if (p->mb_argc > 0) {
            rv = multibulk_body(p, cmd);
        } else if (p->pos == p->in.len) {
            return 0;
        } else if (p->in.data[p->pos] == '*') {
            rv = multibulk_header(p);
            if (rv == 1) {
                continue;
            }
        } else {
            rv = inline_command(p, cmd);
        }
        if (rv != 2) {
            lr_implies(rv < 0, p->error == rv);
            return rv;
        }
    }
}

/* Writes v in decimal at the end of out[RESP_NUMBER_BYTES_MAX]; returns where it starts. */
static char *number_format(char *end, int64_t v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char *s = end;
    do {
        *--s = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--s = '-';
    }
    return s;
}

/* Appends "<type><number>\r\n". */
static int put_header(struct buf *b, char type, int64_t v)
{
    char out[RESP_NUMBER_BYTES_MAX + 3];
    char *end = out + RESP_NUMBER_BYTES_MAX + 1;
    char *s = number_format(end, v);
    *--s = type;
    end[0] = '\r';
    end[1] = '\n';
    return buf_append(b, s, (size_t)(end + 2 - s)) == 0 ? 0 : RESP_ENOMEM;
}

/* Appends "<type><text>\r\n" with the line breaks of text made spaces. */
static int put_line(struct buf *b, char type, const char *text, size_t len)
{
    if (buf_reserve(b, len + 3) != 0) {
        return RESP_ENOMEM;
    }
    uint8_t *o = b->data + b->len;
    *o++ = (uint8_t)type;
    for (size_t i = 0; i < len; i++) {
        o[i] = text[i] == '\r' || text[i] == '\n' ? ' ' : (uint8_t)text[i];
    }
    o[len] = '\r';
    o[len + 1] = '\n';
    b->len += len + 3;
    return 0;
}

int resp_put_status(struct buf *b, const char *text, size_t len)
{
    return put_line(b, '+', text, len);
}

int resp_put_error(struct buf *b, const char *text, size_t len)
{
    return put_line(b, '-', text, len);
}

int resp_put_integer(struct buf *b, int64_t v)
{
    return put_header(b, ':', v);
}

int resp_put_bulk(struct buf *b, const void *data, size_t len)
{
    lr_assert(len <= (size_t)INT64_MAX);
    if (put_header(b, '$', (int64_t)len) != 0 || buf_append(b, data, len) != 0 ||
        buf_append(b, "\r\n", 2) != 0) {
        return RESP_ENOMEM;
    }
    return 0;
}

int resp_put_null(struct buf *b)
{
    return buf_append(b, "$-1\r\n", 5) == 0 ? 0 : RESP_ENOMEM;
}

int resp_put_array(struct buf *b, size_t n)
{
    lr_assert(n <= (size_t)INT64_MAX);
    return put_header(b, '*', (int64_t)n);
}

int resp_put_map(struct buf *b, size_t pairs)
{
    lr_assert(pairs <= (size_t)INT64_MAX);
    return put_header(b, '%', (int64_t)pairs);
}

int resp_put_set(struct buf *b, size_t n)
{
    lr_assert(n <= (size_t)INT64_MAX);
    return put_header(b, '~', (int64_t)n);
}

int resp_put_null3(struct buf *b)
{
    return buf_append(b, "_\r\n", 3) == 0 ? 0 : RESP_ENOMEM;
}

int resp_put_verbatim(struct buf *b, const void *data, size_t len)
{
    lr_assert(len <= (size_t)INT64_MAX - 4);
    if (put_header(b, '=', (int64_t)len + 4) != 0 || buf_append(b, "txt:", 4) != 0 ||
        buf_append(b, data, len) != 0 || buf_append(b, "\r\n", 2) != 0) {
        return RESP_ENOMEM;
    }
    return 0;
}

int resp_put_cstr(struct buf *b, const char *s)
{
    return resp_put_bulk(b, s, strlen(s));
}
