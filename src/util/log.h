/*
 * The one format of every log line luaraft writes, on stderr:
 *
 *   2026-12-03T10:34:22.123Z luaraft[1] term 5: leader changed: node 2
 *   2026-12-03T10:34:22.123Z luaraft[1]: store: mdb_txn_commit: ...      (no term known)
 *   2026-12-03T10:34:22.123Z luaraft: ...                     (before the node id is set)
 *
 * The time is the wall clock in UTC with milliseconds (RFC 3339, always 24 characters);
 * the id is the node's (lr_log_set_id, once at start-up); the term is the node's current
 * term where the layer that logs knows it (the node's own lines). A message is one line:
 * a control character in it (a newline of a Lua error, a byte a peer sent) is written as
 * a space, and a message longer than lr_log_line_bytes_max is cut short, ending "...".
 *
 * Each line leaves in one write(2) of at most PIPE_BUF bytes, so that lines from the loop
 * thread, the store's writer thread, the fsm thread and a forked snapshot child never
 * interleave, into a pipe or a file opened for appending. Every function here may be
 * called from any thread, and in a child forked from a threaded process (it takes no lock
 * and allocates nothing).
 */
#ifndef LUARAFT_UTIL_LOG_H
#define LUARAFT_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    lr_log_line_bytes_max = 4096, /* a whole line, newline included (PIPE_BUF on Linux) */
    lr_log_time_bytes = 25,       /* "2026-12-03T10:34:22.123Z" and its NUL */
};

/* The term of a line that shows none. */
#define LR_LOG_NO_TERM UINT64_MAX

/* Sets the node id every later line carries (0: none). */
void lr_log_set_id(uint64_t id);

/* The id set by lr_log_set_id, or 0. */
uint64_t lr_log_id(void);

/* A line with the process's node id and no term. */
__attribute__((format(printf, 1, 2))) void lr_log(const char *fmt, ...);

/* A line with the process's node id and a term. */
__attribute__((format(printf, 2, 3))) void lr_log_term(uint64_t term, const char *fmt, ...);

/* A line with the given id (0: the process's) and no term: for a layer that knows its
 * node's id itself (the transport, of which a test process holds several). */
__attribute__((format(printf, 2, 3))) void lr_log_as(uint64_t id, const char *fmt, ...);

/* A line of an already formatted message, with an id (0: the process's) and a term
 * (LR_LOG_NO_TERM: none). */
void lr_log_msg(uint64_t id, uint64_t term, const char *msg);

/* The general form of the above. */
__attribute__((format(printf, 3, 0))) void lr_vlog(uint64_t id,
                                                   uint64_t term,
                                                   const char *fmt,
                                                   va_list ap);

/* The wall clock, in milliseconds since the epoch. */
uint64_t lr_log_now_ms(void);

/* unix_ms as the lines show it, "2026-12-03T10:34:22.123Z", into out. */
void lr_log_time(uint64_t unix_ms, char out[lr_log_time_bytes]);

/* What lr_log_parse finds in a line. */
struct lr_log_fields
{
    uint64_t id;   /* 0 when the line shows none */
    uint64_t term; /* LR_LOG_NO_TERM when the line shows none */
    size_t msg;    /* offset of the message in the line */
};

/* Whether the first len bytes of line are a line of this format; if so, fills f. */
bool lr_log_parse(const char *line, size_t len, struct lr_log_fields *f);

#endif
