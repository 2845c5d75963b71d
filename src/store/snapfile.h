/*
 * Snapshot files: snap-<index>-<term>.lrs in the data directory, each written to a
 * temporary name, fsynced, renamed, and the directory fsynced, so that a crash leaves
 * either the whole new file or none of it. The file ends in a trailer with the length and
 * a CRC-32C of the body, so a torn or corrupt file is recognised and skipped.
 *
 * Pure POSIX file IO on the calling thread (the node calls it from its snapshot child
 * process or its fsm thread); no libuv.
 */
#ifndef LUARAFT_STORE_SNAPFILE_H
#define LUARAFT_STORE_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    SNAPFILE_EIO = -300,      /* errno says why; see errmsg */
    SNAPFILE_ECORRUPT = -301, /* bad trailer or checksum */
    SNAPFILE_ENOENT = -302,   /* no valid snapshot file */
};

struct snapfile_writer
{
    int fd;
    uint32_t crc;
    uint64_t bytes;
    raft_index index;
    raft_term term;
    char tmp_path[512];
    char path[512];
    char dir[512];
};

/* Starts writing the snapshot at (index, term) in dir, under a temporary name. */
int snapfile_begin(struct snapfile_writer *w,
                   const char *dir,
                   raft_index index,
                   raft_term term,
                   char *errmsg,
                   size_t errmsg_size);
int snapfile_write(struct snapfile_writer *w, const void *data, size_t len);
/* Trailer, fsync, rename, fsync of the directory. Errors: SNAPFILE_EIO. */
int snapfile_commit(struct snapfile_writer *w, char *errmsg, size_t errmsg_size);
/* Removes the temporary file. */
void snapfile_abort(struct snapfile_writer *w);

/* The newest valid snapshot in dir: its index, term and path. Errors: SNAPFILE_ENOENT. */
int snapfile_latest(const char *dir,
                    raft_index *index,
                    raft_term *term,
                    char *path,
                    size_t path_size);

/* Deletes snapshot files older than (index, term), and stray temporary files. */
void snapfile_prune(const char *dir, raft_index index);

/* Verifies a whole file's trailer and checksum; *body_bytes gets the body length. */
int snapfile_verify(const char *path, uint64_t *body_bytes);

#endif
