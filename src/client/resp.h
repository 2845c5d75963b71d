/*
 * RESP2, the Redis protocol: an incremental request parser and a reply encoder. Pure: no IO,
 * no clock; the server feeds it the bytes it reads and writes the bytes it encodes.
 *
 * Requests come in two shapes, told apart by their first byte (as Redis does):
 *   multibulk  "*<argc>\r\n" then argc times "$<len>\r\n<len bytes>\r\n"  (every client
 *              library);
 *   inline     one line of space-separated words ending in "\n" or "\r\n", with Redis's
 *              quoting: "..." understands \n \r \t \b \a \\ \" and \xHH, '...' only \';
 *              a closing quote must be followed by a space or the end of the line (what
 *              people type into nc or telnet).
 * A multibulk count <= 0 and an empty inline line are not commands: they are skipped, as in
 * Redis. Many commands may arrive in one read (pipelining) and one command may arrive in
 * many reads; the result does not depend on where the bytes are split.
 *
 * Every size is checked against a named limit before anything is allocated for it. Any
 * violation, and any malformed input, is a protocol error: the parser stops for good and
 * keeps an error message in Redis's wording, which the server sends as "-<message>\r\n"
 * before it closes the connection.
 *
 *   struct resp_parser p;
 *   resp_parser_init(&p, NULL);
 *   while (read some bytes) {
 *       if (resp_parser_feed(&p, bytes, n) != 0) { reply resp_parser_error(&p); close; }
 *       struct resp_command cmd;
 *       while ((rv = resp_parser_next(&p, &cmd)) == 1) { ... cmd.argv[0..argc) ... }
 *       if (rv < 0) { reply resp_parser_error(&p); close; }
 *   }
 *   resp_parser_close(&p);
 */
#ifndef LUARAFT_CLIENT_RESP_H
#define LUARAFT_CLIENT_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Return codes. */
enum {
    RESP_EPROTO = -1, /* malformed input or a limit passed: see resp_parser_error() */
    RESP_ENOMEM = -2, /* an allocation failed */
};

/* Limits on one client's input. The defaults are Redis's (src/server.h PROTO_*, config.c). */
struct resp_limits
{
    size_t args_max;         /* arguments in one multibulk command (Redis: 1024*1024) */
    size_t bulk_bytes_max;   /* one bulk argument (proto-max-bulk-len: 512 MiB) */
    size_t inline_bytes_max; /* one inline line (PROTO_INLINE_MAX_SIZE: 64 KiB) */
    size_t line_bytes_max;   /* a "*<n>" or "$<n>" header line (Redis: the inline limit) */
    size_t query_bytes_max;  /* unparsed bytes held at once (client-query-buffer-limit: 1 GiB) */
};

/* Fills *l with the defaults above. */
void resp_limits_default(struct resp_limits *l);

/*
 * One parsed command. argv[i] points at argvlen[i] bytes; they are not NUL-terminated and may
 * hold any bytes. Lifetime: the argv and argvlen arrays until the next resp_parser_next(),
 * the argument bytes themselves until the next resp_parser_feed() or resp_parser_close()
 * (they point into the parser's input buffer: multibulk arguments are not copied, inline
 * arguments are unquoted in place).
 */
struct resp_command
{
    size_t argc; /* >= 1 */
    const char *const *argv;
    const size_t *argvlen;
};

/* Parser state. Treat as opaque, except errmsg. */
struct resp_parser
{
    struct resp_limits limits;
    struct buf in;    /* bytes fed; [0, pos) are consumed */
    size_t pos;       /* start of the command being parsed */
    size_t scan;      /* where the multibulk parse resumes */
    int64_t mb_argc;  /* arguments announced by "*<n>"; 0: not inside a multibulk command */
    size_t mb_done;   /* arguments of it parsed so far */
    int64_t bulk_len; /* length announced by the current "$<n>", or -1 before it */
    size_t *arg_off;  /* offsets into in.data, then pointers (in argv) once complete */
    size_t *arg_len;
    const char **argv;
    size_t arg_cap; /* entries allocated in arg_off, arg_len and argv */
    int error;      /* 0, or the sticky RESP_EPROTO / RESP_ENOMEM */
    char errmsg[64];
};

/* Makes an empty parser. limits may be NULL for the defaults; it is copied. */
void resp_parser_init(struct resp_parser *p, const struct resp_limits *limits);

/* Frees everything the parser holds. Commands it returned become invalid. */
void resp_parser_close(struct resp_parser *p);

/*
 * Appends n bytes read from the client. Invalidates the argument bytes of every command
 * returned so far.
 *
 * Errors (sticky; the connection is to be closed):
 *   RESP_EPROTO  unparsed bytes would pass query_bytes_max ("Protocol error: too big query
 *                buffer"), or an earlier protocol error.
 *   RESP_ENOMEM  the input buffer could not grow.
 */
int resp_parser_feed(struct resp_parser *p, const void *data, size_t n);

/*
 * Parses the next complete command out of the bytes fed so far.
 *
 * Returns 1 with *cmd filled, 0 when more bytes are needed, or an error (sticky):
 *   RESP_EPROTO  malformed input or a limit passed; resp_parser_error() gives one of
 *                "Protocol error: invalid multibulk length"      (count not a number, or
 *                                                                 above args_max)
 *                "Protocol error: too big mbulk count string"    (line_bytes_max)
 *                "Protocol error: expected '$', got 'x'"          (non-printable x shown
 *                                                                 as '?')
 *                "Protocol error: invalid bulk length"           (not a number, negative, or
 *                                                                 above bulk_bytes_max)
 *                "Protocol error: too big bulk count string"     (line_bytes_max)
 *                "Protocol error: expected CRLF after bulk data" (stricter than Redis,
 *                                                                 which skips two bytes)
 *                "Protocol error: too big inline request"        (inline_bytes_max)
 *                "Protocol error: unbalanced quotes in request"
 *   RESP_ENOMEM  the argument arrays could not grow ("Out of memory").
 */
int resp_parser_next(struct resp_parser *p, struct resp_command *cmd);

/* Replaces the limits from the next byte parsed on (a connection that authenticates). */
void resp_parser_set_limits(struct resp_parser *p, const struct resp_limits *limits);

/* Bytes the parser holds allocated (its input buffer and argument arrays), for the
 * server's accounting of client memory. */
size_t resp_parser_bytes(const struct resp_parser *p);

/* Between commands (nothing unparsed, no command begun), frees an input buffer of more
 * than keep bytes, so a client that once sent a large command does not hold its buffer
 * while idle. Commands returned before become invalid. */
void resp_parser_shrink(struct resp_parser *p, size_t keep);

/* Frees the input and makes the parser fail from now on with text (a static string): a
 * client the server gives up on, whose unparsed bytes must not wait for its close. */
void resp_parser_discard(struct resp_parser *p, const char *text);

/* The message of the parser's error, without the leading '-'; "" when there is none. */
const char *resp_parser_error(const struct resp_parser *p);

/*
 * Reply encoders: each appends one RESP2 value to b. A status or error text that holds
 * '\r' or '\n' gets spaces in their place, so that no reply can break the stream (Redis
 * does the same to error replies). An error text is written as given: start it with a
 * code word ("ERR ...", "MOVED ...").
 *
 * Errors: RESP_ENOMEM (b could not grow; it may hold part of the value, so the caller
 * drops the connection).
 */
int resp_put_status(struct buf *b, const char *text, size_t len);
int resp_put_error(struct buf *b, const char *text, size_t len);
int resp_put_integer(struct buf *b, int64_t v);
int resp_put_bulk(struct buf *b, const void *data, size_t len);
int resp_put_null(struct buf *b);                /* the null bulk string, "$-1\r\n" */
int resp_put_array(struct buf *b, size_t n);     /* then put the n elements */
int resp_put_cstr(struct buf *b, const char *s); /* a bulk string */
/* RESP3 (a RESP2 connection gets them converted, client/resp3.h): */
int resp_put_map(struct buf *b, size_t pairs); /* then the keys and values, in turn */
int resp_put_set(struct buf *b, size_t n);
int resp_put_null3(struct buf *b);                                  /* "_\r\n" */
int resp_put_verbatim(struct buf *b, const void *data, size_t len); /* a "txt" verbatim */

#endif
