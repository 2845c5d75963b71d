/*
 * lincheck: a linearizability checker for histories of examples/kv.lua's single-key
 * commands (GET, SET, DEL, INCR, CAS), recorded by simulated or real clients.
 *
 * A history is linearizable when every operation can be given a point between its call
 * and its return so that, in the order of those points, each output is what the
 * sequential model answers (Herlihy & Wing, "Linearizability: a correctness condition for
 * concurrent objects", TOPLAS 12(3), 1990). Linearizability is local: a history over
 * independent keys is linearizable iff each key's sub-history is, so lincheck_check()
 * checks one key at a time, each with the tree search of Wing & Gong ("Testing and
 * verifying concurrent objects", JPDC 17, 1993) and the cache of visited configurations
 * of Lowe ("Testing for linearizability", CCPE 29(4), 2017).
 *
 * The model, per key: a register holding nothing (nil) or a byte string, exactly as
 * examples/kv.lua's commands without options treat it:
 *
 *   GET key          -> the value (LINCHECK_REPLY_BULK), or LINCHECK_REPLY_NIL
 *   SET key value    -> LINCHECK_REPLY_OK
 *   DEL key          -> LINCHECK_REPLY_INT 1 when the key existed, 0 when not
 *   INCR key         -> LINCHECK_REPLY_INT, the new value (a missing key counts as 0); or
 *                       LINCHECK_REPLY_ERR, with no effect, when the value is not a
 *                       canonical 64-bit decimal integer or is INT64_MAX
 *   CAS key exp new  -> LINCHECK_REPLY_INT 1 when the value equals exp (it becomes new), 0
 *                       when not; a missing key never equals exp, so CAS on it answers 0
 *
 * Any other output is illegal for that operation, so an error reply is legal only from
 * INCR, and only where the model makes INCR fail. A client that cannot tell whether its
 * operation took effect (a timeout, a lost connection, an error that does not prove the
 * command was refused before it was logged) calls lincheck_unknown() instead: the
 * operation then returns at time +infinity with any output, so it may take effect at any
 * point after its call, or never.
 *
 * Recording discipline (checked): a client has at most one operation in flight, and a
 * client whose operation ended unknown is retired, as its next call may overlap the
 * unknown one: the caller starts a new client id. Times are caller-supplied integers
 * (virtual time, or CLOCK_MONOTONIC nanoseconds from one host); an operation whose call
 * time equals another's return time counts as concurrent with it. An operation still in
 * flight when lincheck_check() runs counts as unknown.
 *
 * Cost: exponential in the number of operations concurrent on one key, so keep per-key
 * concurrency small (<= 10 clients per key) and spread the load over many keys; the
 * budget bounds the search, and LINCHECK_UNDECIDED means "not verified", never a pass.
 * Pure C11: no IO and no clock; memory from malloc, all of it freed by lincheck_free().
 */
#ifndef LUARAFT_SIM_LINCHECK_H
#define LUARAFT_SIM_LINCHECK_H

#include <stddef.h>
#include <stdint.h>

enum {
    lincheck_ops_max = 1 << 22,         /* operations in one history */
    lincheck_ops_per_key_max = 8192,    /* operations on one key (a bitset of this many
                                           bits is stored per cached configuration) */
    lincheck_key_bytes_max = 4096,      /* bytes in a key */
    lincheck_value_bytes_max = 1 << 20, /* bytes in a value, argument or reply */
    lincheck_budget_default = 10000000, /* search steps per key: a suggestion for callers */
    lincheck_cache_bytes_max = 1 << 30, /* the visited-configuration cache of one key */
    lincheck_report_value_bytes = 40,   /* bytes of a value shown in a report */
};

/* A return time that never comes: the operation's outcome is unknown. */
#define LINCHECK_TIME_INFINITY UINT64_MAX

/* Results of lincheck_check(). */
enum {
    LINCHECK_OK = 0,        /* every key's history is linearizable */
    LINCHECK_VIOLATION = 1, /* some key's history is not (the report says which) */
    LINCHECK_UNDECIDED = 2, /* the search budget ran out on some key: not verified */
};

/* Errors (negative). */
enum {
    LINCHECK_EINVAL = -1,  /* bad argument: no such operation, time backwards, ... */
    LINCHECK_ENOMEM = -2,  /* malloc failed */
    LINCHECK_ELIMIT = -3,  /* a named limit above would be passed */
    LINCHECK_ECLIENT = -4, /* the client has an operation in flight, or is retired */
};

enum lincheck_op {
    LINCHECK_GET,
    LINCHECK_SET,
    LINCHECK_DEL,
    LINCHECK_INCR,
    LINCHECK_CAS,
};

/* The kind of a reply, as the client decoded it. */
enum lincheck_reply {
    LINCHECK_REPLY_NIL,  /* null bulk string */
    LINCHECK_REPLY_BULK, /* a byte string (value) */
    LINCHECK_REPLY_OK,   /* the status reply OK */
    LINCHECK_REPLY_INT,  /* an integer (n) */
    LINCHECK_REPLY_ERR,  /* an error reply that proves the command had no effect */
};

/* A byte string; data may be NULL when len is 0. */
struct lincheck_bytes
{
    const void *data;
    size_t len;
};

/* What a client asked. Unused arguments are ignored. */
struct lincheck_call
{
    enum lincheck_op op;
    struct lincheck_bytes key;
    struct lincheck_bytes arg;  /* SET: the value; CAS: the expected value */
    struct lincheck_bytes arg2; /* CAS: the new value */
};

/* What the client got back. */
struct lincheck_output
{
    enum lincheck_reply kind;
    int64_t n;                   /* LINCHECK_REPLY_INT */
    struct lincheck_bytes value; /* LINCHECK_REPLY_BULK */
};

struct lincheck;

/* An empty history, or NULL when out of memory. */
struct lincheck *lincheck_new(void);

/* Frees h and everything it holds. h may be NULL. */
void lincheck_free(struct lincheck *h);

/*
 * Records that client called call->op at time. The bytes are copied. Returns the
 * operation's id (0, 1, 2, ... in call order of this function), or an error.
 *
 * Errors: LINCHECK_EINVAL (call->op out of range, time is LINCHECK_TIME_INFINITY or
 * before the return of the client's previous operation), LINCHECK_ELIMIT (a byte string
 * too long, or lincheck_ops_max operations already), LINCHECK_ECLIENT (the client has an
 * operation in flight or is retired), LINCHECK_ENOMEM. On error nothing is recorded.
 */
int64_t lincheck_invoke(struct lincheck *h,
                        uint64_t client,
                        uint64_t time,
                        const struct lincheck_call *call);

/*
 * Records that operation id returned out at time (>= its call time). The bytes are copied.
 *
 * Errors: LINCHECK_EINVAL (no such operation, it is not in flight, time is before its
 * call or is LINCHECK_TIME_INFINITY, out->kind out of range), LINCHECK_ELIMIT (the value
 * is too long), LINCHECK_ENOMEM. On error nothing changes.
 */
int lincheck_complete(struct lincheck *h,
                      int64_t id,
                      uint64_t time,
                      const struct lincheck_output *out);

/*
 * Records that the outcome of operation id will never be known: it returns at +infinity
 * with any output. Its client is retired.
 *
 * Errors: LINCHECK_EINVAL (no such operation, or it is not in flight).
 */
int lincheck_unknown(struct lincheck *h, int64_t id);

/* The number of operations recorded. */
/*
 * Ends operation id with an error that proves it had no effect (refused before it was
 * proposed, say): it is left out of the check, as if never called, and its client may go
 * on. Use lincheck_unknown() for any error that does not prove that.
 */
int lincheck_failed(struct lincheck *h, int64_t id, uint64_t time);

size_t lincheck_size(const struct lincheck *h);

/*
 * Checks the history, key by key in byte order of the keys, spending at most budget
 * search steps (> 0) on each key. Stops at the first key that is not linearizable.
 * Writes a NUL-terminated report of at most size bytes into report (nothing when size is
 * 0): for LINCHECK_OK a summary; for LINCHECK_VIOLATION the key, the longest prefix of
 * its operations that could be linearized, the first operation that could not follow it
 * with the model's answer there, and the key's timeline (call and return times, client,
 * operation, arguments, output); for LINCHECK_UNDECIDED the key whose budget ran out.
 * A key with more than lincheck_ops_per_key_max operations, or whose search would cache
 * more than lincheck_cache_bytes_max bytes, is undecided too. The history is unchanged
 * and may be extended and checked again.
 *
 * Returns LINCHECK_OK, LINCHECK_VIOLATION or LINCHECK_UNDECIDED, or an error:
 * LINCHECK_EINVAL (budget is 0), LINCHECK_ENOMEM.
 */
int lincheck_check(const struct lincheck *h, uint64_t budget, char *report, size_t size);

/* A static name for a result or error code ("ok", "EINVAL", ...). */
const char *lincheck_strerror(int rv);

#endif
