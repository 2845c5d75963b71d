/*
 * A client command as a log entry's payload: the one definition, encoder and decoder side
 * by side. The node encodes a write when it takes it from a client (or from a follower
 * that forwarded it) and stamps the leader's time just before proposing; the fsm thread
 * decodes it on every replica before handing it to the script.
 *
 *   payload   = u8 version (command_version), u64 leader time in ms, then an argv blob
 *   argv blob = u32 argc, then per argument u32 length and the bytes (big-endian)
 *
 * The argv blob alone is what a follower forwards to the leader and what a read carries
 * to the fsm thread.
 */
#ifndef LUARAFT_COMMAND_H
#define LUARAFT_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum {
    command_version = 1,
    command_argc_max = 1024 * 1024, /* arguments of one command */
    command_header_bytes = 9,       /* version and time, before the argv blob */
};

/* The bytes an argv blob of these arguments takes. */
size_t command_argv_bytes(int argc, const size_t *argvlen);

/* Appends an argv blob to b. Errors: BUF_ENOMEM. */
int command_put_argv(struct buf *b, int argc, const char *const *argv, const size_t *argvlen);

/*
 * Decodes an argv blob of len bytes at data. On success *argc, *argv and *argvlen point
 * into arrays the caller frees with free(*argv) and free(*argvlen); the strings point
 * into data. Returns false on malformed input.
 */
bool command_get_argv(const void *data,
                      size_t len,
                      int *argc,
                      const char ***argv,
                      size_t **argvlen);

/* Appends a payload header (version, time 0) and the argv blob of len bytes to b. The
 * time is stamped later with command_stamp(). Errors: BUF_ENOMEM. */
int command_put(struct buf *b, const void *argv_blob, size_t len);

/* Sets the leader time of a payload made by command_put(). */
void command_stamp(void *payload, int64_t time_ms);

/* Decodes a payload: its leader time and where its argv blob lies. Returns false if the
 * payload is too short or of another version. */
bool command_get(const void *payload,
                 size_t len,
                 int64_t *time_ms,
                 const void **argv_blob,
                 size_t *argv_len);

#endif
