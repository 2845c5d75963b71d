/*
 * A log entry's payload: the one definition, encoder and decoder side by side. The node
 * encodes a write when it takes it from a client (or from a follower that forwarded it),
 * a transaction at EXEC, and a tick when the log has been idle; it stamps the leader's
 * time just before proposing; the fsm thread decodes the payload on every replica before
 * handing it to the script (fsm/job.c). All integers big-endian.
 *
 *   payload     = u8 version 2 (command_version), u64 leader time in ms, u8 kind, body
 *   body        = COMMAND:     an argv blob
 *                 TICK:        nothing
 *                 CHECK:       nothing (RAFT.CHECK, src/node/check.c)
 *                 LOAD:        u8 name length (1 to 255), the script's file name (no
 *                              NUL), then the script's text to the end (RAFT.LOAD,
 *                              src/node/load.c; fsm_upgrade)
 *                 TRANSACTION: u32 n, then n times: u32 length and an argv blob of that
 *                              length (n may be 0: an empty MULTI ... EXEC)
 *   argv blob   = u32 argc (at least 1), then per argument u32 length and the bytes
 *
 * Version 1 (data directories written before the kinds): u8 1, u64 time, an argv blob; it
 * still decodes, as a COMMAND. The argv blob alone is what a follower forwards to the
 * leader and what a read carries to the fsm thread.
 */
#ifndef LUARAFT_COMMAND_H
#define LUARAFT_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum {
    command_version = 2,
    command_version_1 = 1,          /* no kind byte: always a COMMAND */
    command_argc_max = 1024 * 1024, /* arguments of one command, commands of a transaction */
    command_header_bytes = 10,      /* version, time and kind, before the body */
    COMMAND_EMALFORMED = -2,        /* command_put_transaction_body: not n argv blobs */
    command_load_name_max = 255,    /* a LOAD's script name (SCRIPT_NAME_BYTES_MAX) */
};

enum command_kind {
    COMMAND_KIND_COMMAND = 0,
    COMMAND_KIND_TICK = 1,
    COMMAND_KIND_TRANSACTION = 2,
    COMMAND_KIND_CHECK = 3, /* RAFT.CHECK: every replica hashes its state here */
    COMMAND_KIND_LOAD = 4,  /* RAFT.LOAD: every replica switches to a new script here */
};

/* The bytes an argv blob of these arguments takes. */
size_t command_argv_bytes(int argc, const size_t *argvlen);

/* Appends an argv blob to b. Errors: BUF_ENOMEM. */
int command_put_argv(struct buf *b, int argc, const char *const *argv, const size_t *argvlen);

/*
 * Decodes an argv blob of len bytes at data. On success *argc, *argv and *argvlen point
 * into arrays the caller frees with free(*argv) and free(*argvlen); the strings point
 * into data. Returns false on malformed input (or when the arrays cannot be allocated).
 */
bool command_get_argv(const void *data,
                      size_t len,
                      int *argc,
                      const char ***argv,
                      size_t **argvlen);

/* Whether data[0, len) is one well-formed argv blob; allocates nothing. */
bool command_argv_valid(const void *data, size_t len);

/* Appends a COMMAND payload (time 0) with the argv blob of len bytes to b. The time is
 * stamped later with command_stamp(). Errors: BUF_ENOMEM. */
int command_put(struct buf *b, const void *argv_blob, size_t len);

/* Appends a TICK payload (time 0) to b. Errors: BUF_ENOMEM. */
int command_put_tick(struct buf *b);

/* Appends a CHECK payload (time 0) to b. Errors: BUF_ENOMEM. */
int command_put_check(struct buf *b);

/* Appends a LOAD payload (time 0) of the script name[0, name_len) with its text. Errors:
 * COMMAND_EMALFORMED (a name empty, over command_load_name_max or with a NUL), BUF_ENOMEM. */
int command_put_load(struct buf *b,
                     const char *name,
                     size_t name_len,
                     const void *text,
                     size_t text_len);

/* Decodes a LOAD body (as command_get_kind gave it); false when malformed. With name NULL
 * it only checks. The outputs point into body. */
bool command_get_load(const void *body,
                      size_t len,
                      const char **name,
                      size_t *name_len,
                      const void **text,
                      size_t *text_len);

/* Appends a TRANSACTION payload (time 0) of n argv blobs to b (n <= command_argc_max; the
 * blobs are not checked). Errors: BUF_ENOMEM. */
int command_put_transaction(struct buf *b,
                            unsigned n,
                            const void *const *blobs,
                            const size_t *lens);

/*
 * Appends a TRANSACTION payload (time 0) whose n commands are already laid out as the
 * body has them after its u32 n (n times u32 length and argv blob), in body[0, len).
 * Errors: COMMAND_EMALFORMED (body is not exactly n well-formed argv blobs, or n is over
 * command_argc_max; b unchanged), BUF_ENOMEM.
 */
int command_put_transaction_body(struct buf *b, unsigned n, const void *body, size_t len);

/* Sets the leader time of a payload made by one of the command_put* functions. */
void command_stamp(void *payload, int64_t time_ms);

/*
 * Decodes a payload: its leader time, its kind and where its body lies (see the layout
 * above; a COMMAND's body is its argv blob). Returns false for another version, an
 * unknown kind, a truncated header, a TICK with a body, and a TRANSACTION that is not
 * exactly its n well-formed argv blobs (so command_tx_next cannot fail on what it
 * accepted). A COMMAND's argv blob is checked when command_get_argv decodes it.
 */
bool command_get_kind(const void *payload,
                      size_t len,
                      int64_t *time_ms,
                      enum command_kind *kind,
                      const void **body,
                      size_t *body_len);

/* Decodes a COMMAND payload: its leader time and where its argv blob lies. Returns false
 * for a payload command_get_kind refuses, and for the other kinds. */
bool command_get(const void *payload,
                 size_t len,
                 int64_t *time_ms,
                 const void **argv_blob,
                 size_t *argv_len);

/* Walks the argv blobs of a TRANSACTION body (as command_get_kind gave it). */
struct command_tx_iter
{
    struct cursor c;
    uint32_t n;    /* the transaction's commands */
    uint32_t left; /* not yet visited */
};

/* Starts at the first command; it->n is their number (0 for a body too short to say). */
void command_tx_begin(struct command_tx_iter *it, const void *body, size_t len);

/* The next command's argv blob; false after the last (or at a malformed one). */
bool command_tx_next(struct command_tx_iter *it, const void **blob, size_t *len);

#endif
